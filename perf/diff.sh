#!/usr/bin/env bash
# Differential flamegraph of two runs recorded with perf/flamegraph.sh.
#
#   perf/diff.sh BEFORE.folded AFTER.folded OUT.svg
#
# Red: more samples after; blue: fewer. Record both runs with the same workload and
# duration, on the same machine, or the comparison means nothing.
set -euo pipefail

if [ $# -ne 3 ]; then
    sed -n '2,7p' "$0" >&2
    exit 2
fi
if ! command -v inferno-diff-folded >/dev/null; then
    echo "installing inferno (cargo install inferno)…" >&2
    cargo install --locked inferno
fi
inferno-diff-folded "$1" "$2" | inferno-flamegraph --title "$1 → $2" > "$3"
echo "wrote $3" >&2
