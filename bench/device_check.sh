#!/bin/sh
# Every check of one device in one call, for a machine lent for minutes:
# the devices OpenCL sees, the test suite on the device, `hiercl bench`
# against its PyTorch twin (CUDA on a GPU), and the cross-device byte check
# of every target's samples against the CPU. Each step has its own time
# limit, so a slow step cannot take the others' time; a bench stopped by its
# limit still prints the rounds it finished. Build first (scripts/setup.sh);
# nothing is installed here.
#
#   bench/device_check.sh [DEVICE] [OUTDIR]    (default gpu, $OUT or ./device_check)
#   QUICK=1: bench --quick and one round (a dry run of the script itself)
#
# OUTDIR gets one log per step, bench.json, and summary.txt (each step's
# exit status and seconds). Where .devdeps/env.sh exists (an OpenCL loader
# and libraries unpacked beside the build) it is sourced first.
set -u
cd "$(dirname "$0")/.." || exit 2
dev=${1:-gpu}
out=${2:-${OUT:-device_check}}
mkdir -p "$out"
: >"$out/summary.txt"
# shellcheck disable=SC1091
[ -f .devdeps/env.sh ] && . .devdeps/env.sh
if [ "${QUICK:-0}" = 1 ]; then quick="--quick" rounds=1; else quick="" rounds=3; fi

# step NAME SECONDS COMMAND...: the command's output in NAME.log, its status
# and time in summary.txt
step() {
  name=$1 limit=$2
  shift 2
  t0=$(date +%s)
  timeout -k 30 "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  echo "$name: exit $rc, $(($(date +%s) - t0)) s" | tee -a "$out/summary.txt"
}

[ -x build/hiercl ] || { echo "device_check: build/hiercl not built (scripts/setup.sh)" >&2; exit 2; }
step devices 30 build/hiercl devices
step tests 180 env HIERCL_TEST_DEVICE="$dev" ctest --test-dir build -j"$(nproc)" --output-on-failure
step bench 270 sh -c "exec build/hiercl bench --device '$dev' --torch --repeat $rounds $quick -o json \
  >'$out/bench.json'"
step xdev 90 sh bench/xdev_check.sh "$dev" cpu 4000
! grep -qv ": exit 0," "$out/summary.txt"
