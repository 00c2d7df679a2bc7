//! The loop of `examples/custom_loop.rs`, written by hand against the
//! library, ends with bit-identical weights (and batch-norm statistics) to
//! `backprop train` with the same model, seed and settings.

mod common;

/// The example itself, compiled into this test.
#[allow(dead_code)]
#[path = "../examples/custom_loop.rs"]
mod example;

#[test]
fn a_hand_written_loop_gives_the_weights_of_backprop_train() {
    let d = tempfile::tempdir().unwrap();
    let (ours, cli) = (
        d.path().join("loop.safetensors"),
        d.path().join("cli.safetensors"),
    );
    // Two epochs' worth of batch orders are not needed: 150 steps cross no
    // epoch boundary on MNIST, 1100 do (938 steps per epoch).
    for steps in ["150", "1100"] {
        example::run(&example::Args {
            epochs: 2,
            max_steps: Some(steps.parse().unwrap()),
            seed: 3,
            save: Some(ours.clone()),
        })
        .unwrap();
        let o = common::run(&[
            "train",
            "--model",
            "flatten,linear(784,256),batchnorm1d(256),relu,dropout(0.1),linear(256,10)",
            "--optimizer",
            "adam",
            "--epochs",
            "2",
            "--max-steps",
            steps,
            "--seed",
            "3",
            "--quiet",
            "--no-plots",
            "--diagnostics-every",
            "0",
            "--save",
            cli.to_str().unwrap(),
            "--force", // the second pass replaces the first pass's run
        ]);
        assert!(o.success, "{}", o.stderr);
        let (a, b) = (common::tensor_bytes(&ours), common::tensor_bytes(&cli));
        assert_eq!(a.len(), 9, "weights, biases and the batch-norm buffers");
        for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            assert!(
                ta == tb,
                "{steps} steps: `{na}` differs between the loop and backprop train"
            );
        }
    }
}
