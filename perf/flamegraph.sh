#!/usr/bin/env bash
# Profile a command with `perf record` and draw a flamegraph with inferno.
#
#   perf/flamegraph.sh OUT -- COMMAND [ARGS...]
#
# Writes OUT.svg (the flamegraph), OUT.folded (folded stacks, for perf/diff.sh) and
# OUT.perf.data. Build with the release profile first: it keeps line tables for perf.
# Examples:
#   perf/flamegraph.sh /tmp/sim -- target/release/meridian sim --seeds 50
#   perf/flamegraph.sh /tmp/tick -- target/release/deps/core-<hash> --bench zone_tick --profile-time 10
set -euo pipefail

if [ $# -lt 3 ] || [ "$2" != "--" ]; then
    sed -n '2,11p' "$0" >&2
    exit 2
fi
out=$1
shift 2

if ! command -v perf >/dev/null; then
    echo "perf not found: install it (Debian: apt-get install linux-perf)" >&2
    exit 1
fi
if ! command -v inferno-collapse-perf >/dev/null; then
    echo "installing inferno (cargo install inferno)…" >&2
    cargo install --locked inferno
fi

# DWARF unwinding works without frame pointers; 999 Hz avoids lockstep with timers.
perf record -F 999 --call-graph dwarf,16384 -o "$out.perf.data" -- "$@"
perf script -i "$out.perf.data" | inferno-collapse-perf > "$out.folded"
inferno-flamegraph --title "$*" < "$out.folded" > "$out.svg"
echo "wrote $out.svg (and $out.folded for perf/diff.sh)" >&2
