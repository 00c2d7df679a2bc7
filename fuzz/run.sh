#!/usr/bin/env bash
# Run one fuzz target (or all of them, one after the other) for N inputs:
#   fuzz/run.sh idx 1000000      fuzz/run.sh all 1000000
# from the repository root. Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz
# New inputs go to fuzz/corpus/<target>/ (not committed), crashes to
# fuzz/artifacts/<target>/; the committed seeds are read from fuzz/seeds/<target>/.
set -euo pipefail
target=${1:?usage: fuzz/run.sh <idx|csv|safetensors|model_line|image|run_state|text|npy|cifar|csv_columns|image_sample|all> [runs]}
runs=${2:-1000000}
max_len() {
    case $1 in
        idx) echo 4096 ;;          # 2 MNIST images + header, gzip inside
        csv) echo 4096 ;;          # 2 MNIST rows as CSV
        safetensors) echo 8192 ;;  # small models, ours and PyTorch's
        model_line) echo 512 ;;    # a long model line
        image) echo 8192 ;;        # small PNG / PGM files
        run_state) echo 16384 ;;   # a run's state file: optimizer tensors, JSON metadata
        text) echo 4096 ;;         # a few lines of a play, UTF-8 or not
        npy) echo 4096 ;;          # small .npy arrays and .npz archives
        cifar) echo 8192 ;;        # two CIFAR records
        csv_columns) echo 2048 ;;  # a header and a few rows
        image_sample) echo 8192 ;; # small PNG / JPEG files
        *) echo "unknown target $1" >&2; exit 2 ;;
    esac
}
run() {
    mkdir -p "fuzz/corpus/$1"
    # -O: optimized; -a: with debug assertions, so integer overflow panics.
    cargo +nightly fuzz run -O -a "$1" "fuzz/corpus/$1" "fuzz/seeds/$1" -- \
        -runs="$runs" -max_len="$(max_len "$1")" -timeout=5 \
        -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1
}
if [ "$target" = all ]; then
    for t in idx csv safetensors model_line image run_state text npy cifar csv_columns image_sample; do run "$t"; done
else
    run "$target"
fi
