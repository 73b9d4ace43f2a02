#!/usr/bin/env bash
# What watching a node costs its zones: tick p99 with nobody watching, and with three live
# maps open (Server-Sent Events, the whole world in view) plus three scrapers of /metrics
# at 5 Hz — alternating, so drift on a shared machine hits both alike.
#
#   perf/map-load.sh [WORLD]          (default: node/worlds/default.toml)
#   PHASE_SECONDS=15 ROUNDS=3 WATCH=map perf/map-load.sh     (WATCH: map, metrics or both)
#
# Prints, per phase, the median and the mean over the phase's seconds of each zone's
# per-second tick p99 (from the node's status line), then both kinds of phase side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
world=${1:-node/worlds/default.toml}
phase_seconds=${PHASE_SECONDS:-15}
rounds=${ROUNDS:-3}
warmup=${WARMUP_SECONDS:-15}
# What the watched phases open: "map metrics" (both), "map" or "metrics".
what=${WATCH:-map metrics}

cargo build --release -q -p meridian-node
bin=target/release/meridian
log=$(mktemp)
watchers=()
cleanup() {
    for pid in "${watchers[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -n ${node:-} ]] && kill "$node" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT

"$bin" node --world "$world" --ephemeral >/dev/null 2>"$log" &
node=$!
for _ in $(seq 100); do
    grep -q 'live map: http' "$log" && break
    sleep 0.2
done
admin=$(grep -o 'live map: http://[0-9.:]*' "$log" | head -1 | sed 's/live map: //')
[[ -n $admin ]] || { echo "the node did not start:" >&2; cat "$log" >&2; exit 1; }
echo "node at $admin (world $world); warming up ${warmup} s" >&2
sleep "$warmup"

watch() {
    for _ in 1 2 3; do
        if [[ $what == *map* ]]; then
            curl -sN "$admin/map/stream" >/dev/null &
            watchers+=($!)
        fi
        if [[ $what == *metrics* ]]; then
            # One kept-alive connection, as a Prometheus server or a browser holds one.
            python3 - "$admin" <<'EOF' &
import http.client, sys, time
host = sys.argv[1].removeprefix("http://")
c = http.client.HTTPConnection(host)
while True:
    c.request("GET", "/metrics")
    c.getresponse().read()
    time.sleep(0.2)
EOF
            watchers+=($!)
        fi
    done
}
unwatch() {
    for pid in "${watchers[@]}"; do kill "$pid" 2>/dev/null || true; done
    watchers=()
}

# The per-second tick p99 of every zone in the status lines after line $1.
p99s() {
    tail -n +"$(($1 + 1))" "$log" | grep -o 'p99 [0-9.]* max' | awk '{print $2}'
}
stats() { sort -n | awk '{v[NR]=$1; s+=$1} END {if (NR) printf "%.2f %.2f %d\n", v[int((NR+1)/2)], s/NR, NR; else print "- - 0"}'; }

results=$(mktemp)
for round in $(seq "$rounds"); do
    for kind in idle watched; do
        [[ $kind == watched ]] && watch
        sleep 2 # let the first second settle
        from=$(wc -l <"$log")
        sleep "$phase_seconds"
        [[ $kind == watched ]] && unwatch
        read -r median mean n < <(p99s "$from" | stats)
        printf '%-8s round %d: zone tick p99 median %s ms, mean %s ms (%s zone-seconds)\n' \
            "$kind" "$round" "$median" "$mean" "$n" >&2
        p99s "$from" | sed "s/^/$kind /" >>"$results"
    done
done
echo
printf '%-8s %12s %12s %14s\n' phase "p99 median" "p99 mean" "zone-seconds"
for kind in idle watched; do
    read -r median mean n < <(grep "^$kind " "$results" | awk '{print $2}' | stats)
    printf '%-8s %9s ms %9s ms %14s\n' "$kind" "$median" "$mean" "$n"
done
rm -f "$results"
