#!/usr/bin/env bash
# One epoch of a workload, ours (1 and 2 threads) and PyTorch's (1 and 2
# threads), while a compiler keeps both cores busy beside it (a `cargo build
# --release` of another crate, cleaned and rebuilt in a loop).
# usage: tools/busy_bench.sh CRATE_DIR [WORKLOAD...]   (build ours first: cargo build --release)
# BACKPROP_BIN=path times another build of ours; NO_TORCH=1 skips PyTorch.
set -euo pipefail
crate=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
workloads=${*:-mlp-small cnn-lenet}
# The load in its own process group, so that all of it stops at the end.
setsid bash -c "cd '$crate' && while true; do cargo clean -q 2>/dev/null; cargo build -q --release -j2 2>/dev/null; done" &
load=$!
trap 'kill -- -$load 2>/dev/null; true' EXIT
sleep 5
declare -A flags=(
  [mlp-small]="--model flatten,linear(784,128),relu,linear(128,10) --batch-size 64 --optimizer adam --lr 1e-3"
  [cnn-lenet]="--model lenet --batch-size 64 --optimizer adam --lr 1e-3"
)
for w in $workloads; do
  for t in 1 2; do
    s=$("${BACKPROP_BIN:-$root/target/release/backprop}" train ${flags[$w]} --epochs 1 --threads $t --json --no-plots 2>/dev/null | tail -1 \
        | python3 -c "import json,sys; print(round(json.load(sys.stdin)['epochs'][0]['train_seconds'],3))")
    echo "$w backprop threads=$t epoch_s=$s (busy)"
  done
  [ -n "${NO_TORCH:-}" ] && continue
  for t in 1 2; do
    timeout 300 python3 "$root/../shared/bench/torch_bench.py" $w --epochs 1 --threads $t --data "$root/data/mnist" | sed 's/$/ (busy)/' || echo "$w torch threads=$t: over 300 s"
  done
done
