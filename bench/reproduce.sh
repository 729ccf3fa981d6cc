#!/bin/sh
# Run every headline experiment of configs/ on one device and collect the run
# and sweep directories under OUT (default results/). Each experiment is
# bounded by LIMIT seconds (default 600); an interrupted sweep resumes when
# the script runs again. Usage: bench/reproduce.sh [DEVICE] [OUT]
# Then: ./build/hiercl plot OUT/<dir> for the curves; docs/results.md has
# the numbers of the last full pass.
set -u
dev=${1:-gpu}
out=${2:-results}
limit=${LIMIT:-600}
mkdir -p "$out"
runs="staircase_resnet parity_resnet staircase_biased_resnet staircase_gaussian_resnet
multi_staircase_resnet staircase_regular_scd linear_teacher"
sweeps="rhm_cnn_sweep rhm_fcn_sweep rhm_ridge_chain three_layer_single_index
three_layer_single_index_rf three_layer_quadratic neural_rep_taylor"
for c in ${ONLY:-$runs $sweeps}; do
  start=$(date +%s)
  case " $(echo $sweeps) " in
    *" $c "*) timeout "$limit" ./build/hiercl sweep "configs/$c.ini" --device "$dev" --out "$out" \
                > "$out/$c.table.txt" 2> "$out/$c.log" ;;
    *) timeout "$limit" ./build/hiercl run "configs/$c.ini" --device "$dev" --out "$out" -q \
         > "$out/$c.dir" 2> "$out/$c.log" ;;
  esac
  echo "$c: exit $? in $(( $(date +%s) - start )) s" | tee -a "$out/times.txt"
done
