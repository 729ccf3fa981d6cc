#!/bin/sh
# Cross-device check: every target's samples (train and test streams) from
# device A and device B, byte for byte, and against reference files made
# elsewhere (e.g. on the build machine's PoCL) when REF_DIR holds them.
# Usage: bench/xdev_check.sh DEV_A DEV_B [N]   e.g. gpu cpu 4000
# Make references: REF_MAKE=DIR bench/xdev_check.sh cpu cpu
set -eu
a=${1:-gpu}
b=${2:-cpu}
n=${3:-4000}
tmp=$(mktemp -d)
configs="quickstart staircase_biased_resnet staircase_gaussian_resnet multi_staircase_resnet
rhm_cnn_sweep rhm_ridge_chain three_layer_single_index three_layer_quadratic neural_rep_taylor
linear_teacher"
fail=0
echo "| config (target) | stream | $a vs $b | vs reference |"
echo "|---|---|---|---|"
for c in $configs; do
  t=$(sed -n 's/^plugin = //p' configs/$c.ini | head -1)
  for s in train test; do
    for d in "$a" "$b"; do
      ./build/hiercl sample configs/$c.ini --n $n --stream $s --format npy --device "$d" \
        --set run.seed=7 --out "$tmp/$c.$s.$d.npy" 2>/dev/null
    done
    same=identical
    cmp -s "$tmp/$c.$s.$a.npy" "$tmp/$c.$s.$b.npy" || { same=DIFFERENT; fail=1; }
    ref=-
    if [ -n "${REF_MAKE:-}" ]; then
      mkdir -p "$REF_MAKE" && cp "$tmp/$c.$s.$a.npy" "$REF_MAKE/$c.$s.npy"
    elif [ -n "${REF_DIR:-}" ] && [ -f "$REF_DIR/$c.$s.npy" ]; then
      ref=identical
      cmp -s "$tmp/$c.$s.$a.npy" "$REF_DIR/$c.$s.npy" || { ref=DIFFERENT; fail=1; }
    fi
    echo "| $c ($t) | $s | $same | $ref |"
  done
done
rm -rf "$tmp"
exit $fail
