#!/bin/sh
# Before and after a change, in one call: builds commit REF beside this
# tree's build, then runs `hiercl bench` from each build in turn (A B A B ...,
# ROUNDS rounds) on the same machine, so both sides see the same load, and
# prints every case's replica-steps/s (median and range over the rounds) and
# the after/before ratio of the medians.
#
#   bench/compare.sh REF [ROUNDS] [-- hiercl bench options...]
#   e.g. bench/compare.sh ce1f66b~1 3 -- --only staircase
#
# Each --only takes one substring; pass the options the REF build knows.
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bench/compare.sh REF [ROUNDS] [-- hiercl bench options...]" >&2; exit 2; }
ref=$1
shift
rounds=3
if [ $# -ge 1 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
[ $# -ge 1 ] && [ "$1" = "--" ] && shift
git rev-parse --verify -q "$ref^{commit}" >/dev/null || { echo "bench/compare.sh: $ref: not a commit of this repository" >&2; exit 2; }
[ -x build/hiercl ] || ./scripts/setup.sh >&2

tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/ref" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT INT TERM
git worktree add --detach -q "$tmp/ref" "$ref"
echo "bench/compare.sh: building $ref ($(git rev-parse --short "$ref")) in $tmp/ref" >&2
cmake -S "$tmp/ref" -B "$tmp/ref/build" -DCMAKE_BUILD_TYPE=Release -DHCL_TESTS=OFF -DHCL_MPI=OFF >/dev/null
cmake --build "$tmp/ref/build" -j"$(nproc)" >/dev/null

# Untimed first: PoCL compiles a kernel at its first launch, and the REF
# build's bench may predate its own untimed run (a cold first round read
# 20x too few steps/s).
echo "bench/compare.sh: one untimed --quick pass of each build" >&2
"$tmp/ref/build/hiercl" bench --quick -o json --plugin-path "$tmp/ref/build/plugins" "$@" >/dev/null
./build/hiercl bench --quick -o json --plugin-path build/plugins "$@" >/dev/null

i=1
while [ "$i" -le "$rounds" ]; do
  echo "bench/compare.sh: round $i of $rounds" >&2
  "$tmp/ref/build/hiercl" bench -o json --plugin-path "$tmp/ref/build/plugins" "$@" >"$tmp/before_$i.json"
  ./build/hiercl bench -o json --plugin-path build/plugins "$@" >"$tmp/after_$i.json"
  i=$((i + 1))
done

python3 - "$tmp" "$rounds" "$ref" <<'EOF'
import json, statistics, subprocess, sys
tmp, rounds, ref = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def load(side):
    out = {}
    for i in range(1, rounds + 1):
        for row in json.load(open(f"{tmp}/{side}_{i}.json"))["rows"]:
            if row.get("ok"):
                out.setdefault(row["experiment"], []).append(row["replica_per_s"])
    return out
a, b = load("before"), load("after")
head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"| experiment | before ({ref}) replica-steps/s | after ({head}) | after / before |")
print("|---|---:|---:|---:|")
for exp in a:
    if exp not in b:
        continue
    ma, mb = statistics.median(a[exp]), statistics.median(b[exp])
    print(f"| {exp} | {ma:.4g} ({min(a[exp]):.4g}–{max(a[exp]):.4g}) | "
          f"{mb:.4g} ({min(b[exp]):.4g}–{max(b[exp]):.4g}) | {mb / ma:.3f} |")
print(f"\nmedian and range over {rounds} alternating rounds of `hiercl bench`")
EOF
