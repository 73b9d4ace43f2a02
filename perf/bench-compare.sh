#!/usr/bin/env bash
# Compare the criterion benches of two revisions, built in temporary git worktrees.
#
#   perf/bench-compare.sh BASE [HEAD] [-- FILTER [CRITERION ARGS...]]
#
# BASE and HEAD are any git revisions (HEAD defaults to HEAD). Both are checked out into
# temporary worktrees and benched one after the other with the same target directory, so
# criterion compares HEAD against BASE's saved baseline. FILTER is criterion's (a regex
# over bench ids, e.g. `session_inputs/meridian` or `udp/`); without it every bench runs
# (tens of minutes). Prints one row per bench: id, BASE median, HEAD median, change, and
# criterion's verdict (its confidence interval of the change against its noise threshold).
#
# Exits 1 when a bench regressed: criterion says "regressed" AND the median is slower by
# more than BENCH_COMPARE_THRESHOLD percent (default 10: this shared 2-core machine drifts
# by several percent between runs even when nothing changed). Exits 0 otherwise.
#
# BENCH_COMPARE_TARGET keeps the target directory between runs (faster rebuilds); by
# default a temporary one is used and removed.
set -euo pipefail

usage() { sed -n '2,16p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
base=$1; shift
head=HEAD
if [ $# -ge 1 ] && [ "$1" != "--" ]; then head=$1; shift; fi
filter=()
if [ $# -ge 1 ]; then
    [ "$1" = "--" ] || usage
    shift
    filter=("$@")
fi
threshold=${BENCH_COMPARE_THRESHOLD:-10}

repo=$(git rev-parse --show-toplevel)
base_rev=$(git -C "$repo" rev-parse --verify "$base^{commit}")
head_rev=$(git -C "$repo" rev-parse --verify "$head^{commit}")
work=$(mktemp -d /tmp/bench-compare.XXXXXX)
target=${BENCH_COMPARE_TARGET:-$work/target}
cleanup() {
    git -C "$repo" worktree remove --force "$work/base" 2>/dev/null || true
    git -C "$repo" worktree remove --force "$work/head" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

git -C "$repo" worktree add --detach --quiet "$work/base" "$base_rev"
git -C "$repo" worktree add --detach --quiet "$work/head" "$head_rev"

run() { # worktree, criterion args...
    local tree=$1; shift
    # Cargo names a workspace crate's build by its path relative to the workspace, so both
    # worktrees share one in the target directory, and it decides freshness by mtime: a
    # worktree whose files are older than the other's build would run that build. Touch
    # this one's sources so the revision measured is the revision built.
    find "$tree" -path "$tree/target" -prune -o \( -name '*.rs' -o -name 'Cargo.toml' \) \
        -exec touch {} +
    (cd "$tree" && CARGO_TARGET_DIR=$target cargo bench --quiet -p meridian-benches --bench '*' -- \
        "${filter[@]}" "$@") | grep -E '^[a-z_]+/' >&2 || true
}
echo "== $base (${base_rev:0:10})" >&2
run "$work/base" --save-baseline bench-compare-base
echo "== $head (${head_rev:0:10})" >&2
run "$work/head" --baseline bench-compare-base

python3 - "$target/criterion" "$threshold" "$base" "$head" <<'EOF'
import json, os, sys
root, threshold, base, head = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
rows, regressed = [], []
for dirpath, dirnames, filenames in os.walk(root):
    if os.path.basename(dirpath) != "change" or "estimates.json" not in filenames:
        continue
    bench = os.path.dirname(dirpath)
    try:
        old = json.load(open(os.path.join(bench, "bench-compare-base", "estimates.json")))
        new = json.load(open(os.path.join(bench, "new", "estimates.json")))
        change = json.load(open(os.path.join(dirpath, "estimates.json")))
    except FileNotFoundError:
        continue
    bench_id = json.load(open(os.path.join(bench, "new", "benchmark.json")))["full_id"]
    b, h = old["median"]["point_estimate"], new["median"]["point_estimate"]
    ci = change["mean"]["confidence_interval"]
    # Criterion's own verdict: its noise threshold is 1 %.
    if ci["lower_bound"] > 0.01:
        verdict = "regressed"
    elif ci["upper_bound"] < -0.01:
        verdict = "improved"
    else:
        verdict = "no change"
    pct = (h / b - 1.0) * 100.0
    rows.append((bench_id, b, h, pct, verdict))
    if verdict == "regressed" and pct > threshold:
        regressed.append(bench_id)

def fmt(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.3g} ns"

if not rows:
    print("no bench ran in both revisions (check the filter)", file=sys.stderr)
    sys.exit(2)
w = max(len(r[0]) for r in rows)
print(f"{'bench':<{w}}  {base:>12}  {head:>12}  {'change':>8}  verdict")
for bench_id, b, h, pct, verdict in sorted(rows):
    print(f"{bench_id:<{w}}  {fmt(b):>12}  {fmt(h):>12}  {pct:>+7.1f}%  {verdict}")
if regressed:
    print(f"regressed by more than {threshold:g} %: {', '.join(regressed)}", file=sys.stderr)
    sys.exit(1)
EOF
