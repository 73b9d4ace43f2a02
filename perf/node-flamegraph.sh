#!/usr/bin/env bash
# Flamegraph of a loaded node: `meridian node` (release build) for SECONDS under
# perf/flamegraph.sh, with its NPCs as the load.
#
#   perf/node-flamegraph.sh SECONDS [WORLD] [OUT]
#
# WORLD defaults to node/worlds/default.toml (2 zones, 250,000 NPCs each); OUT (default
# /tmp/node-flamegraph) gets OUT.svg, OUT.folded (for perf/diff.sh) and OUT.perf.data.
# The node runs with --ephemeral (nothing persisted). To profile with clients too, give a
# world with a [clients] section and run `meridian swarm` against it in another shell.
set -euo pipefail

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
    sed -n '2,10p' "$0" >&2
    exit 2
fi
seconds=$1
repo=$(git rev-parse --show-toplevel)
world=${2:-$repo/node/worlds/default.toml}
out=${3:-/tmp/node-flamegraph}
[ -f "$world" ] || { echo "no world file at $world" >&2; exit 2; }

(cd "$repo" && cargo build --release --quiet -p meridian-node)
"$repo/perf/flamegraph.sh" "$out" -- "$repo/target/release/meridian" node \
    --world "$world" --duration "$seconds" --ephemeral
