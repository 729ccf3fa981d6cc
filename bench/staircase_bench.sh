#!/bin/sh
# Benchmark: the staircase paper's training step (ResNet n=30, W=40, L=5,
# batch 20, SGD, MSE) in hiercl and in PyTorch, on the same machine in the
# same call, for R = 1, 10, 100 replicas (independent seeds).
# Usage: bench/staircase_bench.sh [cpu|gpu] [steps]   (from the project root,
# after scripts/setup.sh; PyTorch from python3-torch or pip).
# Prints a Markdown table of replica-steps per second and hiercl/PyTorch ratios.
set -eu
dev=${1:-cpu}
steps=${2:-5000}
py=${HIERCL_PYTHON:-python3}
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null && py=/usr/bin/python3
tdev=cpu
[ "$dev" = gpu ] && tdev=cuda
out=$(mktemp -d)
echo "| replicas | hiercl replica-steps/s | PyTorch replica-steps/s | ratio |"
echo "|---:|---:|---:|---:|"
for R in 1 10 100; do
  run=$(./build/hiercl run configs/staircase_resnet.ini --device "$dev" --replicas $R \
        --set train.steps=$steps --set eval.every=0 --set eval.test_size=1000 \
        --set eval.probes=false --out "$out" -q 2>/dev/null)
  h=$(sed -n 's/^"steps_per_s":\([0-9.e+-]*\),*/\1/p' "$run/summary.json")
  best=0
  for th in 1 2; do # PERF-NOTES: report the faster of 1 and 2 torch threads
    t=$(OMP_WAIT_POLICY=PASSIVE $py bench/torch/staircase_resnet.py --device $tdev --threads $th \
        --replicas $R --steps $steps --eval-every $steps --test-size 1000 |
        $py -c 'import json,sys; print(json.load(sys.stdin)["replica_steps_per_s"])')
    best=$($py -c "print(max($best, $t))")
    [ "$dev" = gpu ] && break
  done
  $py -c "h=$h*$R; t=$best; print('| %d | %.0f | %.0f | %.2f |' % ($R, h, t, h / t))"
done
rm -rf "$out"
