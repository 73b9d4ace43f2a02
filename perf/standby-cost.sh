#!/usr/bin/env bash
# What a warm standby costs: two `meridian node` processes on loopback, one zone each, run
# once without standbys and once with each node keeping the other's (`standby_for`), the
# same NPCs and duration both times. Prints, per run and zone: tick p99 (whole run), the
# handoff latency from the crossing to DONE (p50 and p99 in ticks from the histogram's
# buckets, mean in ms), departures, and how far the standby's acknowledgements trail the
# WAL's appends, and the stream's bytes on the wire per second (frames whole, resyncs
# included; sampled 2 s before the end), and how long the ticks whose datagrams waited
# for their records waited, mean: for the WAL's fdatasync, and in all (the disk and the
# standby's acknowledgement), and the tick's busy time, mean (its work and the ingest and
# transmit around it: the signed datagrams verified and signed).
#
#   perf/standby-cost.sh [NPCS_PER_ZONE (20000)] [SECONDS (20)] [PATTERN (border_dancers)] [LAYOUT (pair)]
#
# LAYOUT `in-node`: three zones in a row, zones 0 and 1 on node n0 (cores 0 and 1), zone 2
# on n1 (core 0); with standbys n1 keeps those of zones 0 and 1 and n0 that of zone 2.
# Zone 0's row is then the handoffs between two zones of one node (zone 0 borders only
# zone 1); the other rows are not printed.
#
# Uses target/release/meridian (MERIDIAN overrides); ports 7300-7421 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MERIDIAN:-target/release/meridian}
npcs=${1:-20000}
secs=${2:-20}
pattern=${3:-border_dancers}
layout=${4:-pair}
columns=2 width=4096.0
if [ "$layout" = in-node ]; then columns=3 width=6144.0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { "$bin" keygen --out "$tmp/$1" | grep -o '[0-9a-f]\{64\}' | head -1; }
k0=$(key k0)
k1=$(key k1)

world() { # $1: "on" to make each node the other's standby
    cat <<TOML
[world]
id = 3
bounds = { x_min = 0.0, y_min = 0.0, x_max = $width, y_max = 2048.0 }
tick_rate_hz = 30
margin_m = 8.0
aura_m = 32.0
cell_size_m = 32.0

[zones]
columns = $columns
rows = 1

[npcs]
pattern = "$pattern"
per_zone = $npcs
speed_mps = 5.0

[limits]
entities_per_zone = $((npcs * 3))
TOML
    # Node n hosts zone n on core n; ports 7300 + 100 n (zone), + 10 (control), + 20 (admin).
    local n keys=("$k0" "$k1") zones=("0" "1") cores=("0" "1") kept=("1" "0")
    if [ "$layout" = in-node ]; then zones=("0, 1" "2") cores=("0, 1" "0") kept=("2" "0, 1"); fi
    for n in 0 1; do
        printf '\n[[nodes]]\nname = "n%s"\nzones = [%s]\ncores = [%s]\n' "$n" "${zones[$n]}" "${cores[$n]}"
        printf 'udp = "127.0.0.1:%s"\ncontrol = "127.0.0.1:%s"\nadmin = "127.0.0.1:%s"\n' \
            $((7300 + 100 * n)) $((7310 + 100 * n)) $((7320 + 100 * n))
        printf 'public_key = "%s"\n' "${keys[$n]}"
        if [ "$1" = on ]; then printf 'standby_for = [%s]\n' "${kept[$n]}"; fi
    done
}

# p50, p99 (bucket bounds) and mean of zone $2's handoff latency in metrics file $1.
latency() {
    awk -v zone="$2" '
        /^meridian_handoff_latency_ticks_bucket/ && $0 ~ "zone=\"" zone "\"" {
            match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
            n++; les[n] = le; cum[n] = $NF
        }
        /^meridian_handoff_latency_seconds_sum/ && $0 ~ "zone=\"" zone "\"" { sum = $NF }
        /^meridian_handoff_latency_seconds_count/ && $0 ~ "zone=\"" zone "\"" { count = $NF }
        END {
            total = cum[n]; p50 = "-"; p99 = "-"
            for (i = 1; i <= n; i++) {
                if (p50 == "-" && cum[i] >= 0.5 * total) p50 = les[i]
                if (p99 == "-" && cum[i] >= 0.99 * total) p99 = les[i]
            }
            printf "%s %s %.1f", p50, p99, count ? 1000 * sum / count : 0
        }' "$1"
}

# Mean of histogram $2 of zone $3 in metrics file $1, in ms.
mean_ms() {
    awk -v name="$2" -v zone="$3" '
        $1 ~ "^" name "_sum\\{" && $0 ~ "zone=\"" zone "\"" { sum = $NF }
        $1 ~ "^" name "_count\\{" && $0 ~ "zone=\"" zone "\"" { count = $NF }
        END { printf "%.2f", count ? 1000 * sum / count : 0 }' "$1"
}

metric() { awk -v name="$2" -v zone="$3" '$1 ~ "^" name "\\{" && $0 ~ "zone=\"" zone "\"" { print $NF }' "$1"; }

printf '%-8s %4s %12s %14s %14s %16s %10s %12s %12s %14s %14s %14s\n' standbys zone "tick p99 ms" "handoff p50 t" "handoff p99 t" "handoff mean ms" departed "ack behind" "stream MB/s" "disk wait ms" "gate wait ms" "busy mean ms"
for mode in off on; do
    world "$mode" > "$tmp/world.toml"
    rm -rf "$tmp/d0" "$tmp/d1"
    for n in 0 1; do
        "$bin" node --world "$tmp/world.toml" --name "n$n" --key "$tmp/k$n" --data "$tmp/d$n" \
            --fresh --duration "$secs" > "$tmp/out$n" 2> "$tmp/err$n" &
    done
    sleep $((secs - 2))
    for n in 0 1; do
        curl -s "http://127.0.0.1:$((7320 + 100 * n))/metrics" > "$tmp/m$n" || true
    done
    wait
    for n in 0 1; do
        if [ "$layout" = in-node ] && [ "$n" = 1 ]; then continue; fi
        m="$tmp/m$((n))"
        p99=$(awk '$1 == "'"$n"'" && NF == 11 { print $7 }' "$tmp/out$n")
        read -r l50 l99 lmean <<< "$(latency "$m" "$n")"
        wal=$(metric "$m" meridian_persist_wal_appends_total "$n")
        acked=$(metric "$m" meridian_persist_standby_appends_acked_total "$n")
        behind=- rate=-
        if [ "$mode" = on ]; then
            behind=$(( ${wal:-0} - ${acked:-0} ))
            sent=$(metric "$m" meridian_persist_standby_bytes_sent_total "$n")
            rate=$(awk -v b="${sent:-0}" -v s="$((secs - 2))" 'BEGIN { printf "%.2f", b / s / 1e6 }')
        fi
        printf '%-8s %4s %12s %14s %14s %16s %10s %12s %12s %14s %14s %14s\n' "$mode" "$n" "${p99:--}" "$l50" "$l99" "$lmean" \
            "$(metric "$m" meridian_handoff_departures_total "$n")" "$behind" "$rate" \
            "$(mean_ms "$m" meridian_persist_gate_disk_seconds "$n")" "$(mean_ms "$m" meridian_persist_gate_seconds "$n")" \
            "$(mean_ms "$m" meridian_tick_busy_seconds "$n")"
    done
done
