#!/bin/sh
# The hardening checks: build with clang + ASan + UBSan (and the libFuzzer
# targets), run the whole test suite under the sanitizers, then fuzz each
# target for HIERCL_FUZZ_SECONDS (default 60) from its seed corpus.
# Needs what scripts/setup.sh installs, plus clang (installed here if missing).
set -eu
cd "$(dirname "$0")/.."
if ! command -v clang >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang >&2
fi
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHCL_SANITIZE=ON -DHCL_FUZZ=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
# PoCL runs under ASan with these (its JIT maps memory ASan cannot shadow).
export ASAN_OPTIONS="detect_leaks=0:protect_shadow_gap=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
ctest --test-dir build-asan --output-on-failure --timeout 1200 -j"$(nproc)"
if [ -z "${HIERCL_FUZZ_SECONDS:-}" ] && [ -n "${HCL_FUZZ_SECONDS:-}" ]; then
  echo "sanitize: warning: HCL_FUZZ_SECONDS is deprecated; set HIERCL_FUZZ_SECONDS instead" >&2
  HIERCL_FUZZ_SECONDS="$HCL_FUZZ_SECONDS"
fi
secs="${HIERCL_FUZZ_SECONDS:-60}"
for f in build-asan/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus="fuzz/corpus/${name#fuzz_}"
  work=$(mktemp -d)
  echo "fuzz: $name for ${secs}s from $corpus" >&2
  # New inputs go to a scratch folder: the committed corpus only changes by hand.
  rc=0
  "$f" -max_total_time="$secs" -print_final_stats=1 "$work" "$corpus" >"$work.log" 2>&1 || rc=$?
  tail -n 12 "$work.log"
  rm -rf "$work" "$work.log"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $name failed (exit $rc)" >&2
    exit 1
  fi
done
