//! The `mlp` preset on MNIST: `flatten,linear(784,128),relu,linear(128,10)`,
//! Adam 1e-3, batch 64, 5 epochs. Must reach 97.0 % test accuracy.
//!
//! `cargo run --release --example mnist_mlp`

mod common;

fn main() {
    common::run("mlp", common::adam(1e-3), 64, 5, 0.970);
}
