//! Command-line tests of `backprop train`, `eval` and `predict`: the options
//! of the issue, the `--json` summary, saved files, and every bad input
//! (one `error:` line on stderr, a non-zero exit, no panic).
//!
//! Data sets are tiny CSV files written to temporary folders; the few MNIST
//! runs use `--max-steps` and the copy shipped in `data/mnist`.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A small MLP whose names match PyTorch's `nn.Sequential(Flatten, Linear, ReLU, Linear)`.
const CSV_MODEL: &str = "flatten,linear(4,8),relu,linear(8,3)";
/// The MNIST model of the PyTorch fixture `tests/fixtures/torch_mlp.safetensors`.
const MNIST_MODEL: &str = "flatten,linear(784,16),relu,linear(16,10)";
const TORCH_MLP: &str = "tests/fixtures/torch_mlp.safetensors";
const MNIST: &str = "data/mnist";

// ---------------------------------------------------------------- helpers

mod common;
use common::run;

/// Runs and asserts success; returns stdout.
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.success,
        "backprop {args:?} failed (exit {:?}):\nstdout: {}\nstderr: {}",
        o.code, o.stdout, o.stderr
    );
    o.stdout
}

/// Runs (with `--json` among the args) and parses the last line of stdout.
fn json(args: &[&str]) -> Value {
    let stdout = ok(args);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("backprop {args:?}: empty stdout"));
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("backprop {args:?}: last stdout line is not JSON ({e}): {last}"))
}

/// Runs and asserts a failure reported as exactly one `error: ...` line on
/// stderr that contains every one of `needles`. Returns that line.
fn fail(args: &[&str], needles: &[&str]) -> String {
    let o = run(args);
    assert!(
        !o.success,
        "backprop {args:?} succeeded but should have failed:\nstdout: {}\nstderr: {}",
        o.stdout, o.stderr
    );
    let err = o.stderr.trim_end();
    assert!(
        !err.contains('\n'),
        "backprop {args:?}: stderr is not one line:\n{err}"
    );
    assert!(
        err.starts_with("error: "),
        "backprop {args:?}: stderr does not start with `error: `:\n{err}"
    );
    for n in needles {
        assert!(
            err.contains(n),
            "backprop {args:?}: error does not mention {n:?}:\n{err}"
        );
    }
    err.to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `n` separable rows `label,f0,f1,f2,f3`, 3 classes (label = i % 3).
fn csv_text(n: usize) -> String {
    let mut t = String::new();
    for i in 0..n {
        let c = i % 3;
        let mut row = vec![c.to_string()];
        for j in 0..3 {
            let v = if j == c { 1.0 } else { 0.0 } + ((i * 7 + j * 3) % 5) as f32 * 0.05;
            row.push(format!("{v}"));
        }
        row.push(format!("{}", ((i * 11) % 7) as f32 * 0.1));
        t.push_str(&row.join(","));
        t.push('\n');
    }
    t
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A temp folder holding `train.csv` (40 rows) and `test.csv` (12 rows).
fn csv_dir() -> (TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let train = write(d.path(), "train.csv", csv_text(40));
    let test = write(d.path(), "test.csv", csv_text(12));
    (d, train, test)
}

fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

fn images_idx(n: u32) -> Vec<u8> {
    let px: Vec<u8> = (0..n * 16).map(|i| (i * 37 % 256) as u8).collect();
    idx(0x803, &[n, 4, 4], &px)
}

fn labels_idx(n: u32) -> Vec<u8> {
    let lab: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    idx(0x801, &[n], &lab)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A 28x28 binary PGM (P5) with a vertical bar, like a handwritten `1`.
fn pgm_one() -> Vec<u8> {
    let mut v = b"P5\n# a one\n28 28\n255\n".to_vec();
    for r in 0..28 {
        for c in 0..28 {
            v.push(if (5..23).contains(&r) && (13..16).contains(&c) {
                255
            } else {
                0
            });
        }
    }
    v
}

fn train_csv_args<'a>(train: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["train", "--model", CSV_MODEL, "--data", train, "--json"];
    if !extra.contains(&"--epochs") {
        a.extend_from_slice(&["--epochs", "2"]);
    }
    a.extend_from_slice(extra);
    a
}

/// A model trained for 5 steps on MNIST, saved once for all the predict tests.
fn mnist_model() -> &'static Path {
    static M: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    let (_, p) = M.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mnist.safetensors");
        let j = json(&[
            "train",
            "--model",
            MNIST_MODEL,
            "--data",
            MNIST,
            "--max-steps",
            "5",
            "--save",
            s(&p),
            "--json",
        ]);
        assert_eq!(j["steps"], 5, "{j}");
        (d, p)
    });
    p
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn tensor_names(p: &Path) -> (Vec<String>, std::collections::HashMap<String, String>) {
    let bytes = std::fs::read(p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(|n| n.to_string()).collect();
    names.sort();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    (names, meta)
}

// ---------------------------------------------------------------- train --json

#[test]
fn train_csv_json_summary_without_test_set() {
    let (_d, train, _) = csv_dir();
    let j = json(&train_csv_args(s(&train), &["--epochs", "1"]));
    let e = &j["epochs"];
    assert_eq!(e.as_array().unwrap().len(), 1, "{j}");
    assert_eq!(e[0]["epoch"], 1, "{j}");
    assert!(f64_of(&e[0]["train_loss"]).is_finite(), "{j}");
    assert!(f64_of(&e[0]["train_seconds"]) >= 0.0, "{j}");
    assert!(e[0]["test_loss"].is_null(), "{j}");
    assert!(e[0]["test_accuracy"].is_null(), "{j}");
    assert!(j["test_loss"].is_null(), "{j}");
    assert!(j["test_accuracy"].is_null(), "{j}");
    // 40 rows, default batch 64: one step.
    assert_eq!(j["steps"], 1, "{j}");
}

#[test]
fn train_csv_json_with_test_data() {
    let (_d, train, test) = csv_dir();
    let j = json(&train_csv_args(
        s(&train),
        &[
            "--test-data",
            s(&test),
            "--optimizer",
            "adam",
            "--lr",
            "0.05",
            "--epochs",
            "20",
        ],
    ));
    let last = j["epochs"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(j["epochs"][0]["epoch"], 1);
    assert_eq!(last["epoch"], 20);
    for v in [&j["epochs"][0]["test_loss"], &j["test_loss"]] {
        assert!(f64_of(v).is_finite(), "{j}");
    }
    for v in [&j["epochs"][0]["test_accuracy"], &j["test_accuracy"]] {
        let a = f64_of(v);
        assert!((0.0..=1.0).contains(&a), "{j}");
    }
    // Separable data: it learns.
    assert!(f64_of(&j["test_accuracy"]) > 0.9, "{j}");
    assert_eq!(j["test_accuracy"], last["test_accuracy"]);
}

#[test]
fn plain_output_ends_with_accuracy_line() {
    let (_d, train, test) = csv_dir();
    let out = ok(&[
        "train",
        "--model",
        CSV_MODEL,
        "--data",
        s(&train),
        "--epochs",
        "1",
    ]);
    assert!(
        out.contains("train accuracy") && out.contains("no test set"),
        "{out}"
    );
    let out = ok(&[
        "train",
        "--model",
        CSV_MODEL,
        "--data",
        s(&train),
        "--test-data",
        s(&test),
        "--epochs",
        "1",
    ]);
    assert!(
        out.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("test accuracy"),
        "{out}"
    );
}

#[test]
fn max_steps_stops_after_k_steps() {
    let (_d, train, _) = csv_dir();
    let j = json(&train_csv_args(
        s(&train),
        &["--batch-size", "4", "--max-steps", "3", "--epochs", "5"],
    ));
    assert_eq!(j["steps"], 3, "{j}");
    assert_eq!(j["epochs"].as_array().unwrap().len(), 1, "{j}");
    // Spanning an epoch boundary: 40 rows / 16 = 3 steps per epoch.
    let j = json(&train_csv_args(
        s(&train),
        &["--batch-size", "16", "--max-steps", "4", "--epochs", "5"],
    ));
    assert_eq!(j["steps"], 4, "{j}");
    assert_eq!(j["epochs"].as_array().unwrap().len(), 2, "{j}");
}

#[test]
fn partial_last_batch_is_kept() {
    let (_d, train, _) = csv_dir();
    let j = json(&train_csv_args(
        s(&train),
        &["--epochs", "2", "--batch-size", "16"],
    ));
    assert_eq!(j["steps"], 6, "{j}");
    let e = j["epochs"].as_array().unwrap();
    assert_eq!(e.len(), 2, "{j}");
    assert_eq!(e[0]["steps"], 3, "{j}");
    assert_eq!(e[1]["epoch"], 2, "{j}");
    // Same with --no-shuffle (file order).
    let j = json(&train_csv_args(
        s(&train),
        &["--epochs", "2", "--batch-size", "16", "--no-shuffle"],
    ));
    assert_eq!(j["steps"], 6, "{j}");
}

#[test]
fn every_optimizer_loss_and_option_runs() {
    let (_d, train, _) = csv_dir();
    let sig = "flatten,linear(4,8),relu,linear(8,3),sigmoid";
    let cases: &[&[&str]] = &[
        &["--optimizer", "sgd", "--lr", "0.1"],
        &["--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9"],
        &[
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--momentum",
            "0.9",
            "--nesterov",
        ],
        &["--optimizer", "adam"],
        &["--optimizer", "adam", "--weight-decay", "0.01"],
        &["--optimizer", "adamw"],
        &["--optimizer", "adamw", "--weight-decay", "0.1"],
        &["--optimizer", "rmsprop"],
        &["--optimizer", "rmsprop", "--momentum", "0.5"],
        &["--optimizer", "sgd", "--weight-decay", "0.001"],
        &["--loss", "cross-entropy"],
        &["--loss", "mse"],
        &["--loss", "bce-logits"],
        &["--clip-grad-norm", "0.5"],
        &["--clip-grad-value", "0.01"],
        &[
            "--clip-grad-norm",
            "1.0",
            "--clip-grad-value",
            "0.1",
            "--optimizer",
            "sgd",
        ],
        &[
            "--lr-schedule",
            "step",
            "--lr-step-size",
            "1",
            "--lr-gamma",
            "0.5",
        ],
        &["--lr-schedule", "cosine"],
        &["--lr-schedule", "constant"],
        &["--weight-init", "xavier-uniform"],
        &["--weight-init", "kaiming-normal"],
        &["--seed", "7"],
        &["--no-shuffle"],
        &["--threads", "1"],
        &["--batch-size", "1", "--max-steps", "5"],
        &["--quiet"],
    ];
    let bce: &[&str] = &[
        "train",
        "--model",
        sig,
        "--data",
        s(&train),
        "--loss",
        "bce",
        "--epochs",
        "2",
        "--json",
    ];
    let j = json(bce);
    assert!(f64_of(&j["train_loss"]).is_finite(), "bce: {j}");
    for extra in cases {
        let j = json(&train_csv_args(s(&train), extra));
        let epochs = if extra.contains(&"--max-steps") { 1 } else { 2 };
        assert_eq!(
            j["epochs"].as_array().unwrap().len(),
            epochs,
            "{extra:?}: {j}"
        );
        assert!(f64_of(&j["train_loss"]).is_finite(), "{extra:?}: {j}");
        assert!(j["steps"].as_u64().unwrap() >= 1, "{extra:?}: {j}");
    }
}

#[test]
fn lr_schedules_show_in_epoch_records() {
    let (_d, train, _) = csv_dir();
    let j = json(&train_csv_args(
        s(&train),
        &[
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--lr-schedule",
            "step",
            "--lr-step-size",
            "1",
            "--lr-gamma",
            "0.5",
        ],
    ));
    assert!((f64_of(&j["epochs"][0]["lr"]) - 0.1).abs() < 1e-6, "{j}");
    assert!((f64_of(&j["epochs"][1]["lr"]) - 0.05).abs() < 1e-6, "{j}");
    let j = json(&train_csv_args(
        s(&train),
        &[
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--lr-schedule",
            "cosine",
            "--epochs",
            "2",
        ],
    ));
    // CosineAnnealingLR(T_max=2): 0.1, then 0.05.
    assert!((f64_of(&j["epochs"][0]["lr"]) - 0.1).abs() < 1e-6, "{j}");
    assert!((f64_of(&j["epochs"][1]["lr"]) - 0.05).abs() < 1e-6, "{j}");
}

#[test]
fn same_seed_gives_identical_loss() {
    let (_d, train, _) = csv_dir();
    let args = train_csv_args(s(&train), &["--seed", "42", "--batch-size", "8"]);
    let a = json(&args);
    let b = json(&args);
    assert_eq!(a["train_loss"], b["train_loss"], "{a}\n{b}");
    assert_eq!(a["epochs"][0]["train_loss"], b["epochs"][0]["train_loss"]);
    // A different seed gives a different run.
    let c = json(&train_csv_args(
        s(&train),
        &["--seed", "43", "--batch-size", "8"],
    ));
    assert_ne!(a["train_loss"], c["train_loss"], "{a}\n{c}");
}

#[test]
fn no_shuffle_gives_identical_loss() {
    let (_d, train, _) = csv_dir();
    let args = train_csv_args(
        s(&train),
        &[
            "--no-shuffle",
            "--batch-size",
            "8",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--threads",
            "1",
        ],
    );
    let a = json(&args);
    let b = json(&args);
    assert_eq!(a["train_loss"], b["train_loss"], "{a}\n{b}");
    assert_eq!(a["epochs"][1]["train_loss"], b["epochs"][1]["train_loss"]);
}

// ---------------------------------------------------------------- save / eval / predict

#[test]
fn save_then_eval_predict_and_init() {
    let (d, train, _) = csv_dir();
    let m = d.path().join("m.safetensors");
    let j = json(&train_csv_args(
        s(&train),
        &["--epochs", "30", "--lr", "0.05", "--save", s(&m)],
    ));
    assert!(m.is_file());
    let optim = d.path().join("m.state.safetensors");
    assert!(optim.is_file(), "no run state file beside {}", m.display());
    // No temporary files left behind.
    let mut files: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "m.grads.png",
            "m.grads.svg",
            "m.loss.png",
            "m.loss.svg",
            "m.metrics.csv",
            "m.safetensors",
            "m.state.safetensors",
            "test.csv",
            "train.csv"
        ],
        "{files:?}"
    );

    // The model file is exactly the state_dict of nn.Sequential, plus the model line.
    let (names, meta) = tensor_names(&m);
    assert_eq!(names, ["1.bias", "1.weight", "3.bias", "3.weight"]);
    assert_eq!(
        meta.get("backprop.model").map(String::as_str),
        Some(CSV_MODEL),
        "{meta:?}"
    );
    let (onames, ometa) = tensor_names(&optim);
    assert!(
        onames.contains(&"1.weight.exp_avg".to_string()),
        "{onames:?}"
    );
    assert_eq!(ometa.get("backprop.step"), meta.get("backprop.step"));

    // eval: the file alone is enough.
    let e = json(&["eval", s(&m), "--data", s(&train), "--json"]);
    assert_eq!(e["samples"], 40, "{e}");
    let acc = f64_of(&e["accuracy"]);
    assert!(acc > 0.9, "{e} (train: {j})");
    assert!(f64_of(&e["loss"]).is_finite());
    let out = ok(&["eval", s(&m), "--data", s(&train)]);
    assert!(
        out.contains("accuracy") && out.contains("40 samples"),
        "{out}"
    );

    // predict a sample of the CSV: label 0.
    let out = ok(&["predict", s(&m), "--index", "0", "--data", s(&train)]);
    assert!(out.contains("class 0") && out.contains("label 0"), "{out}");
    let p = json(&[
        "predict",
        s(&m),
        "--index",
        "1",
        "--data",
        s(&train),
        "--json",
    ]);
    assert_eq!(p["label"], 1, "{p}");
    let probs = p["probabilities"].as_array().unwrap();
    assert_eq!(probs.len(), 3);
    let sum: f64 = probs.iter().map(f64_of).sum();
    assert!((sum - 1.0).abs() < 1e-4, "{p}");
    // index out of range
    fail(
        &["predict", s(&m), "--index", "40", "--data", s(&train)],
        &["--index 40", "train.csv"],
    );

    // --init from the saved file: starts where it ended.
    let j2 = json(&train_csv_args(
        s(&train),
        &[
            "--init",
            s(&m),
            "--epochs",
            "1",
            "--lr",
            "0.0",
            "--no-shuffle",
        ],
    ));
    let loss0 = f64_of(&e["loss"]);
    assert!(
        (f64_of(&j2["train_loss"]) - loss0).abs() < 1e-4 * loss0.max(1.0),
        "init from saved: {j2} vs eval {e}"
    );
}

#[test]
fn init_from_pytorch_file_on_mnist() {
    let j = json(&[
        "train",
        "--init",
        TORCH_MLP,
        "--model",
        MNIST_MODEL,
        "--data",
        MNIST,
        "--max-steps",
        "1",
        "--json",
    ]);
    assert_eq!(j["steps"], 1, "{j}");
    // data/mnist has t10k-* files: a test set.
    let a = f64_of(&j["test_accuracy"]);
    assert!((0.0..=1.0).contains(&a), "{j}");
    assert!(f64_of(&j["epochs"][0]["test_loss"]).is_finite(), "{j}");
}

#[test]
fn eval_pytorch_file_with_model_line() {
    let e = json(&[
        "eval",
        TORCH_MLP,
        "--model",
        MNIST_MODEL,
        "--data",
        MNIST,
        "--json",
    ]);
    assert_eq!(e["samples"], 10000, "{e}");
}

#[test]
fn predict_pgm_image() {
    let m = mnist_model();
    let d = tempfile::tempdir().unwrap();
    let img = write(d.path(), "one.pgm", pgm_one());
    let out = ok(&["predict", s(m), s(&img)]);
    assert!(out.contains("one.pgm") && out.contains("class "), "{out}");
    let p = json(&["predict", s(m), s(&img), "--json"]);
    let c = p["class"].as_u64().unwrap_or_else(|| panic!("{p}"));
    assert!(c < 10, "{p}");
    let probs = p["probabilities"].as_array().unwrap();
    assert_eq!(probs.len(), 10, "{p}");
    let sum: f64 = probs.iter().map(f64_of).sum();
    assert!((sum - 1.0).abs() < 1e-4, "{p}");
    assert!(probs.iter().all(|v| f64_of(v) >= 0.0), "{p}");
    let argmax = (0..10)
        .max_by(|&a, &b| f64_of(&probs[a]).total_cmp(&f64_of(&probs[b])))
        .unwrap();
    assert_eq!(argmax as u64, c, "{p}");
}

#[test]
fn presets_lists_mlp() {
    let out = ok(&["presets"]);
    assert!(out.contains("mlp"), "{out}");
}

// ---------------------------------------------------------------- bad input: data

#[test]
fn missing_data_path() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("nowhere.csv");
    fail(
        &["train", "--model", CSV_MODEL, "--data", s(&p)],
        &["nowhere.csv", "does not exist"],
    );
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            MNIST,
            "--test-data",
            s(&p),
        ],
        &["nowhere.csv", "does not exist"],
    );
}

#[test]
fn folder_without_idx_files() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "notes.txt", "hello");
    fail(
        &["train", "--data", s(d.path())],
        &["train-images-idx3-ubyte", "notes.txt"],
    );
}

#[test]
fn truncated_gzip_idx() {
    let d = tempfile::tempdir().unwrap();
    let full = gz(&images_idx(50));
    write(
        d.path(),
        "train-images-idx3-ubyte.gz",
        &full[..full.len() * 2 / 3],
    );
    write(d.path(), "train-labels-idx1-ubyte.gz", gz(&labels_idx(50)));
    fail(
        &[
            "train",
            "--model",
            "flatten,linear(16,10)",
            "--data",
            s(d.path()),
        ],
        &["train-images-idx3-ubyte.gz", "truncated"],
    );
    // The real MNIST file, cut short.
    let real = std::fs::read("data/mnist/train-labels-idx1-ubyte.gz").unwrap();
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        "data/mnist/train-images-idx3-ubyte.gz",
        d.path().join("train-images-idx3-ubyte.gz"),
    )
    .unwrap();
    write(
        d.path(),
        "train-labels-idx1-ubyte.gz",
        &real[..real.len() / 2],
    );
    fail(
        &["train", "--data", s(d.path()), "--max-steps", "1"],
        &["train-labels-idx1-ubyte.gz", "truncated"],
    );
}

#[test]
fn wrong_idx_magic_labels_as_images() {
    let d = tempfile::tempdir().unwrap();
    // The images file is actually a labels file.
    write(d.path(), "train-images-idx3-ubyte", labels_idx(10));
    write(d.path(), "train-labels-idx1-ubyte", labels_idx(10));
    fail(
        &[
            "train",
            "--model",
            "flatten,linear(16,10)",
            "--data",
            s(d.path()),
        ],
        &["train-images-idx3-ubyte", "magic"],
    );
    // Not IDX at all.
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "train-images-idx3-ubyte",
        "this is not an IDX file",
    );
    write(d.path(), "train-labels-idx1-ubyte", labels_idx(10));
    fail(
        &[
            "train",
            "--model",
            "flatten,linear(16,10)",
            "--data",
            s(d.path()),
        ],
        &["train-images-idx3-ubyte", "IDX"],
    );
}

#[test]
fn image_label_count_mismatch() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "train-images-idx3-ubyte", images_idx(5));
    write(d.path(), "train-labels-idx1-ubyte", labels_idx(4));
    fail(
        &[
            "train",
            "--model",
            "flatten,linear(16,10)",
            "--data",
            s(d.path()),
        ],
        &["train-images-idx3-ubyte", "5 images", "4 labels"],
    );
}

#[test]
fn tiny_idx_folder_trains() {
    // The counterpart of the bad folders above: a good one works.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "train-images-idx3-ubyte", images_idx(20));
    write(d.path(), "train-labels-idx1-ubyte.gz", gz(&labels_idx(20)));
    let j = json(&[
        "train",
        "--model",
        "flatten,linear(16,10)",
        "--data",
        s(d.path()),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--json",
    ]);
    assert_eq!(j["steps"], 3, "{j}");
    assert!(j["test_accuracy"].is_null(), "{j}");
}

#[test]
fn label_out_of_range_for_model() {
    let d = tempfile::tempdir().unwrap();
    let mut text = csv_text(10);
    text.push_str("7,0.1,0.2,0.3,0.4\n");
    let p = write(d.path(), "labels.csv", text);
    fail(
        &["train", "--model", "linear(4,3)", "--data", s(&p)],
        &["labels.csv", "label 7"],
    );
}

#[test]
fn malformed_csv_names_line() {
    let d = tempfile::tempdir().unwrap();
    let mut text = csv_text(2);
    text.push_str("1,0.5,abc,0.1,0.2\n");
    let p = write(d.path(), "bad.csv", text);
    fail(
        &["train", "--model", CSV_MODEL, "--data", s(&p)],
        &["bad.csv", "line 3", "abc"],
    );
    // A short row.
    let mut text = csv_text(4);
    text.push_str("1,0.5,0.1\n");
    let p = write(d.path(), "short.csv", text);
    fail(
        &["train", "--model", CSV_MODEL, "--data", s(&p)],
        &["short.csv", "line 5"],
    );
    // A bad --test-data CSV is named too.
    let (_d2, train, _) = csv_dir();
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            s(&train),
            "--test-data",
            s(&p),
        ],
        &["short.csv", "line 5"],
    );
}

// ---------------------------------------------------------------- bad input: model line

#[test]
fn spec_errors() {
    let (_d, train, _) = csv_dir();
    let t = s(&train);
    fail(
        &["train", "--model", "flatten,linear(4)", "--data", t],
        &["layer 1", "linear(4)"],
    );
    fail(
        &["train", "--model", "foo", "--data", t],
        &["foo", "layer 0"],
    );
    fail(
        &["train", "--model", "linear(5,3)", "--data", t],
        &["layer 0", "linear(5,3)", "[N, 5]", "[N, 4]"],
    );
    fail(
        &[
            "train",
            "--model",
            "linear(4,8),relu,linear(7,3)",
            "--data",
            t,
        ],
        &["layer 2", "linear(7,3)", "[N, 7]", "[N, 8]"],
    );
    fail(
        &["train", "--model", "linear(4,3", "--data", t],
        &["linear(4,3"],
    );
    // bce needs probabilities
    fail(
        &["train", "--model", CSV_MODEL, "--data", t, "--loss", "bce"],
        &["--loss bce", "sigmoid"],
    );
}

// ---------------------------------------------------------------- bad input: options

#[test]
fn negative_lr_as_separate_argument() {
    let (_d, train, _) = csv_dir();
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            s(&train),
            "--lr",
            "-1",
        ],
        &["--lr", "learning rate"],
    );
}

#[test]
fn bad_hyper_parameters() {
    let (_d, train, _) = csv_dir();
    let t = s(&train);
    let base = |extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = ["train", "--model", CSV_MODEL, "--data", t]
            .iter()
            .map(|x| x.to_string())
            .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let check = |extra: &[&'static str], needles: &[&str]| {
        let a = base(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        fail(&a, needles)
    };
    check(&["--lr=-1"], &["--lr -1", "learning rate"]);
    check(&["--batch-size", "0"], &["--batch-size 0"]);
    check(&["--optimizer", "adagrad"], &["adagrad", "sgd"]);
    check(&["--loss", "hinge"], &["hinge", "cross-entropy"]);
    check(&["--epochs", "0"], &["--epochs 0"]);
    check(&["--max-steps", "0"], &["--max-steps 0"]);
    check(&["--momentum=-0.5"], &["--momentum"]);
    check(&["--weight-decay=-1"], &["--weight-decay"]);
    check(
        &["--optimizer", "sgd", "--nesterov"],
        &["--nesterov", "--momentum"],
    );
    check(
        &["--optimizer", "adam", "--nesterov"],
        &["--nesterov", "sgd"],
    );
    check(&["--clip-grad-norm", "0"], &["--clip-grad-norm"]);
    check(&["--clip-grad-value=-1"], &["--clip-grad-value"]);
    check(&["--lr-schedule", "exponential"], &["exponential"]);
    check(&["--weight-init", "glorious"], &["glorious"]);
    check(&["--threads", "0"], &["--threads 0"]);
}

#[test]
fn save_into_a_folder_that_cannot_be_made_fails_before_training() {
    let d = tempfile::tempdir().unwrap();
    // A "folder" that is a file cannot be created.
    let blocker = write(d.path(), "blocker", "a file");
    let target = blocker.join("sub").join("m.safetensors");
    let t0 = Instant::now();
    // Default mlp on the full MNIST copy: training would take many seconds and print to stderr.
    fail(
        &["train", "--data", MNIST, "--save", s(&target)],
        &["--save", "blocker", "cannot create the folder"],
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(std::fs::read(&blocker).unwrap(), b"a file");
}

#[test]
fn save_to_a_folder_fails_before_training() {
    let d = tempfile::tempdir().unwrap();
    fail(
        &["train", "--data", MNIST, "--save", s(d.path())],
        &["--save", "is a folder"],
    );
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn init_with_missing_or_misshapen_tensor() {
    let (d, train, _) = csv_dir();
    let t = s(&train);
    let small = d.path().join("small.safetensors");
    json(&[
        "train",
        "--model",
        "linear(4,3)",
        "--data",
        t,
        "--epochs",
        "1",
        "--save",
        s(&small),
        "--json",
    ]);
    // The model needs more tensors than the file has.
    fail(
        &[
            "train",
            "--model",
            "linear(4,3),relu,linear(3,3)",
            "--data",
            t,
            "--init",
            s(&small),
        ],
        &["small.safetensors", "2.weight"],
    );
    // The file has tensors the model lacks.
    let big = d.path().join("big.safetensors");
    json(&[
        "train",
        "--model",
        "linear(4,5),relu,linear(5,3)",
        "--data",
        t,
        "--epochs",
        "1",
        "--save",
        s(&big),
        "--json",
    ]);
    fail(
        &[
            "train",
            "--model",
            "linear(4,3)",
            "--data",
            t,
            "--init",
            s(&big),
        ],
        &["big.safetensors", "2."],
    );
    // Wrong shape.
    fail(
        &[
            "train",
            "--model",
            "linear(4,6),relu,linear(6,3)",
            "--data",
            t,
            "--init",
            s(&big),
        ],
        &["big.safetensors", "0.weight", "[5, 4]", "[6, 4]"],
    );
    // eval with an explicit --model that does not fit the file.
    fail(
        &["eval", s(&big), "--model", "linear(4,3)", "--data", t],
        &["big.safetensors", "2."],
    );
}

#[test]
fn init_with_non_safetensors_file() {
    let (d, train, _) = csv_dir();
    let junk = write(
        d.path(),
        "junk.safetensors",
        "this is not a safetensors file at all",
    );
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            s(&train),
            "--init",
            s(&junk),
        ],
        &["junk.safetensors", "safetensors"],
    );
    let missing = d.path().join("missing.safetensors");
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            s(&train),
            "--init",
            s(&missing),
        ],
        &["missing.safetensors"],
    );
    fail(
        &["eval", s(&junk), "--data", s(&train)],
        &["junk.safetensors"],
    );
    fail(
        &["predict", s(&junk), "--index", "0", "--data", s(&train)],
        &["junk.safetensors"],
    );
}

#[test]
fn predict_missing_or_garbage_image() {
    let m = mnist_model();
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing.png");
    fail(&["predict", s(m), s(&missing)], &["missing.png"]);
    let garbage = write(
        d.path(),
        "garbage.png",
        [0x13u8, 0x37, 0, 1, 2, 3, 4, 5, 6, 7],
    );
    fail(&["predict", s(m), s(&garbage)], &["garbage.png", "PNG"]);
    let truncated = write(d.path(), "cut.pgm", &pgm_one()[..300]);
    fail(&["predict", s(m), s(&truncated)], &["cut.pgm"]);
    // A 10x10 image for a 784-input model: names the shapes.
    let mut small = b"P5 10 10 255\n".to_vec();
    small.extend(std::iter::repeat_n(0u8, 100));
    let small = write(d.path(), "small.pgm", small);
    fail(&["predict", s(m), s(&small)], &["small.pgm"]);
    // Neither image nor index.
    fail(&["predict", s(m)], &["--index"]);
}

#[test]
fn predict_makes_a_photo_of_a_digit_mnist_like() {
    // Test sample 0 as a 28×28 PGM, and the same digit three times larger,
    // dark on light, off centre in a 120×100 image: made MNIST-like, both
    // are the same 28×28 image, so the same probabilities.
    let m = mnist_model();
    let d = tempfile::tempdir().unwrap();
    let (_, test) = backprop::data::load_data(Path::new(MNIST), None, None).unwrap();
    let (x, y) = test.unwrap().batch(&[0]);
    let px: Vec<u8> = x.data().iter().map(|v| (v * 255.0).round() as u8).collect();
    let mut small = b"P5\n28 28\n255\n".to_vec();
    small.extend(&px);
    let small = write(d.path(), "small.pgm", small);
    let mut big = b"P5\n120 100\n255\n".to_vec();
    for r in 0..100 {
        for c in 0..120 {
            let (rr, cc) = (r as isize - 5, c as isize - 30);
            let v = if (0..84).contains(&rr) && (0..84).contains(&cc) {
                px[(rr / 3 * 28 + cc / 3) as usize]
            } else {
                0
            };
            big.push(255 - v);
        }
    }
    let big = write(d.path(), "big.pgm", big);
    let a = json(&["predict", s(m), s(&small), "--json"]);
    let b = json(&["predict", s(m), s(&big), "--json"]);
    assert_eq!(a["class"], b["class"], "{a} {b}");
    for (p, q) in a["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["probabilities"].as_array().unwrap())
    {
        assert!((f64_of(p) - f64_of(q)).abs() < 1e-4, "{a} {b}");
    }
    assert!(y.classes().unwrap()[0] < 10);
    // --raw feeds the 120×100 pixels as they are: the model refuses them.
    fail(&["predict", s(m), s(&big), "--raw"], &["big.pgm"]);
}

#[test]
fn eval_pytorch_file_without_model_line() {
    fail(
        &["eval", TORCH_MLP, "--data", MNIST],
        &["torch_mlp.safetensors", "--model"],
    );
    let d = tempfile::tempdir().unwrap();
    let img = write(d.path(), "one.pgm", pgm_one());
    fail(
        &["predict", TORCH_MLP, s(&img)],
        &["torch_mlp.safetensors", "--model"],
    );
}

// ---------------------------------------------------------------- divergence

/// A model file saved by an earlier run, as a target that must stay intact.
fn saved_model(d: &Path, train: &Path, name: &str) -> PathBuf {
    let f = d.join(name);
    json(&train_csv_args(
        s(train),
        &["--epochs", "1", "--save", s(&f), "--no-plots"],
    ));
    std::fs::remove_file(f.with_file_name(name.replace(".safetensors", ".metrics.csv"))).ok();
    f
}

#[test]
fn divergence_stops_and_keeps_the_save_file() {
    let (d, train, _) = csv_dir();
    let f = saved_model(d.path(), &train, "keep.safetensors");
    let kept = std::fs::read(&f).unwrap();
    let kept_state = std::fs::read(backprop::run::state_path(&f)).unwrap();
    let err = fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            s(&train),
            "--optimizer",
            "sgd",
            "--lr",
            "1e30",
            "--batch-size",
            "8",
            "--epochs",
            "3",
            "--save",
            s(&f),
            "--force",
            "--quiet",
        ],
        &["step", "learning rate"],
    );
    assert!(err.contains("--lr") || err.contains("clip"), "{err}");
    assert_eq!(std::fs::read(&f).unwrap(), kept);
    assert_eq!(
        std::fs::read(backprop::run::state_path(&f)).unwrap(),
        kept_state
    );
    // Nothing else was left in the folder (no temporary files): the data,
    // the model and its state file.
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    // The same without --quiet still ends in the error line.
    let o = run(&[
        "train",
        "--model",
        CSV_MODEL,
        "--data",
        s(&train),
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--batch-size",
        "8",
        "--epochs",
        "3",
    ]);
    assert!(!o.success);
    let last = o.stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.contains("step"),
        "{}",
        o.stderr
    );
}

#[test]
fn divergence_on_the_last_step_keeps_the_save_file() {
    let (d, train, test) = csv_dir();
    let f = saved_model(d.path(), &train, "keep.safetensors");
    let kept = std::fs::read(&f).unwrap();
    // One SGD step with lr 1e30: the training loss of that step is finite,
    // but the model after it outputs NaN (its test loss is NaN).
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            s(&train),
            "--test-data",
            s(&test),
            "--optimizer",
            "sgd",
            "--lr",
            "1e30",
            "--max-steps",
            "1",
            "--save",
            s(&f),
            "--force",
            "--quiet",
        ],
        &["step", "learning rate"],
    );
    assert_eq!(std::fs::read(&f).unwrap(), kept);
}

#[test]
fn single_output_with_cross_entropy() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "bin.csv", "0,1,2,3,4\n1,1,2,3,5\n1,0,2,3,5\n");
    // PyTorch's CrossEntropyLoss rejects target 1 for one class: an error
    // naming the loss and what to use instead, not a panic.
    fail(
        &[
            "train",
            "--model",
            "linear(4,1)",
            "--data",
            s(&p),
            "--epochs",
            "1",
            "--quiet",
        ],
        &["cross-entropy", "2 outputs", "bce-logits"],
    );
}

#[test]
fn bad_schedule_parameters() {
    let (_d, train, _) = csv_dir();
    let t = s(&train);
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            t,
            "--lr-schedule",
            "step",
            "--lr-gamma=-2",
            "--epochs",
            "3",
        ],
        &["--lr-gamma"],
    );
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            t,
            "--lr-schedule",
            "step",
            "--lr-gamma",
            "nan",
            "--epochs",
            "3",
        ],
        &["--lr-gamma"],
    );
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            t,
            "--lr-schedule",
            "cosine",
            "--lr-min=-5",
            "--epochs",
            "3",
        ],
        &["--lr-min"],
    );
}

#[test]
fn more_bad_inputs() {
    let (d, train, test) = csv_dir();
    let t = s(&train);
    // A header and no rows; an empty file.
    let h = write(d.path(), "header.csv", "label,a,b,c,d\n");
    fail(
        &["train", "--model", CSV_MODEL, "--data", s(&h)],
        &["header.csv", "no data rows"],
    );
    let e = write(d.path(), "empty.csv", "");
    fail(
        &["train", "--model", CSV_MODEL, "--data", s(&e)],
        &["empty.csv", "empty"],
    );
    // An IDX file given as --data instead of its folder.
    fail(
        &["train", "--data", "data/mnist/train-images-idx3-ubyte.gz"],
        &["train-images-idx3-ubyte.gz", "folder"],
    );
    // A test set with other features than the training set.
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            t,
            "--test-data",
            MNIST,
        ],
        &["t10k-images-idx3-ubyte", "784 values", "4 values"],
    );
    // A test-set label out of range.
    let bad_test = write(d.path(), "badtest.csv", "9,0,0,0,0\n");
    fail(
        &[
            "train",
            "--model",
            CSV_MODEL,
            "--data",
            t,
            "--test-data",
            s(&bad_test),
        ],
        &["badtest.csv", "label 9"],
    );
    // eval: bce on a model without sigmoid; a missing data set.
    let m = d.path().join("m.safetensors");
    json(&train_csv_args(t, &["--epochs", "1", "--save", s(&m)]));
    fail(
        &["eval", s(&m), "--data", s(&test), "--loss", "bce"],
        &["--loss bce"],
    );
    fail(
        &["eval", s(&m), "--data", s(&d.path().join("gone.csv"))],
        &["gone.csv"],
    );
    fail(
        &["eval", s(&d.path().join("gone.safetensors")), "--data", t],
        &["gone.safetensors"],
    );
    // predict: a sample of the wrong shape for the model; an image and --index.
    fail(
        &["predict", s(&m), "--index", "0", "--data", MNIST],
        &["sample 0", "linear(4,8)", "[N, 4]", "[N, 784]"],
    );
    let img = write(d.path(), "one.pgm", pgm_one());
    fail(&["predict", s(&m), s(&img), "--index", "0"], &["--index"]);
    fail(
        &["predict", s(&m), s(&img)],
        &["one.pgm", "[N, 4]", "[N, 784]"],
    );
}

#[test]
fn predict_mnist_index() {
    let m = mnist_model();
    let p = json(&["predict", s(m), "--index", "0", "--data", MNIST, "--json"]);
    // The first t10k label is 7.
    assert_eq!(p["label"], 7, "{p}");
    assert_eq!(p["probabilities"].as_array().unwrap().len(), 10, "{p}");
}

#[test]
fn layer_shape_errors_come_before_training() {
    // Each fails in well under the time one epoch would take, naming the layer and the shapes.
    for (model, needles) in [
        (
            "conv2d(1,6,30),flatten,linear(6,10)",
            vec!["layer 0", "kernel 30×30", "28×28"],
        ),
        (
            "conv2d(3,6,5),relu,flatten,linear(3456,10)",
            vec!["layer 0", "3 input channels", "[N, 1, 28, 28]"],
        ),
        (
            "rnn(28,16),linear(16,10)",
            vec!["layer 0", "[N, T, 28]", "reshape(28,28)"],
        ),
        (
            "maxpool2d(2),maxpool2d(2),maxpool2d(2),maxpool2d(2),maxpool2d(2),flatten,linear(1,10)",
            vec!["layer 4", "window 2×2"],
        ),
    ] {
        let t0 = std::time::Instant::now();
        fail(
            &["train", "--model", model, "--data", "data/mnist", "--quiet"],
            &needles,
        );
        assert!(t0.elapsed().as_secs() < 20, "{model}: the error came late");
    }
}

#[test]
fn batch_norm_with_a_last_batch_of_one_is_refused_before_training() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "t.csv", csv_text(41));
    fail(
        &[
            "train",
            "--model",
            "linear(4,8),batchnorm1d(8),relu,linear(8,3)",
            "--data",
            s(&p),
            "--batch-size",
            "8",
        ],
        &["layer 1", "batchnorm1d(8)", "batch of 1"],
    );
}

// ------------------------------------------------- tasks beyond single-label

#[test]
fn a_csv_with_a_named_float_target_trains_a_regressor_that_eval_and_predict_follow() {
    let dir = TempDir::new().unwrap();
    let m = dir.path().join("d.safetensors");
    let data = "data/diabetes.csv";
    let model = "linear(10,16),relu,linear(16,1)";
    let base = [
        "train",
        "--data",
        data,
        "--target",
        "target",
        "--test-split",
        "0.2",
        "--model",
        model,
        "--epochs",
        "40",
        "--batch-size",
        "32",
        "--lr",
        "0.02",
        "--diagnostics-every",
        "0",
    ];
    let mut args = base.to_vec();
    args.extend(["--json", "--save", m.to_str().unwrap()]);
    let s = json(&args);
    assert_eq!(s["task"], "regression");
    let mae = s["test_metrics"]["mae"].as_f64().unwrap();
    let r2 = s["test_metrics"]["r2"].as_f64().unwrap();
    // The targets run 25..346 (mean 152, deviation 77): a model that learnt
    // nothing has an R² near 0 and an MAE near 65.
    assert!(mae < 55.0 && r2 > 0.3, "mae {mae}, r2 {r2}");
    assert!(s.get("confusion").is_none() && s["test_metrics"].get("rmse").is_some());
    // metrics.csv carries the figures on its epoch rows
    let csv = std::fs::read_to_string(dir.path().join("d.metrics.csv")).unwrap();
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let at = head
        .iter()
        .position(|h| *h == "test_mae")
        .expect("a test_mae column");
    let last = csv.lines().last().unwrap().split(',').nth(at).unwrap();
    assert!(
        (last.parse::<f64>().unwrap() - mae).abs() < 1e-3 * mae,
        "{last} vs {mae}"
    );
    // eval reads the same columns and standardizes with the saved figures
    let e = json(&["eval", m.to_str().unwrap(), "--data", data, "--json"]);
    assert_eq!(e["task"], "regression");
    assert_eq!(e["samples"], 442);
    assert!(e["metrics"]["mae"].as_f64().unwrap() < 60.0, "{e}");
    // predict prints the named target
    let p = ok(&[
        "predict",
        m.to_str().unwrap(),
        "--data",
        data,
        "--index",
        "0",
    ]);
    assert!(
        p.starts_with("sample 0 of data/diabetes.csv: target ") && p.contains("(true 151)"),
        "{p}"
    );
    // a wrong column, the wrong loss, a task the data cannot be
    let mut bad = base.to_vec();
    bad[4] = "price";
    fail(&bad, &["diabetes.csv", "no column \"price\"", "\"bmi\""]);
    let mut ce = base.to_vec();
    ce.extend(["--loss", "cross-entropy"]);
    fail(&ce, &["--loss cross-entropy", "values, not classes", "mse"]);
    let mut ml = base.to_vec();
    ml.extend(["--task", "multi-label"]);
    fail(&ml, &["diabetes.csv", "multi-label targets", "0 or 1"]);
}

#[test]
fn classification_reports_a_confusion_matrix_and_top5() {
    let s = json(&[
        "train",
        "--data",
        MNIST,
        "--model",
        MNIST_MODEL,
        "--max-steps",
        "30",
        "--epochs",
        "1",
        "--json",
        "--diagnostics-every",
        "0",
    ]);
    let m = s["confusion"].as_array().expect("a confusion matrix");
    assert_eq!(m.len(), 10);
    let total: u64 = m
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10_000);
    let diag: u64 = (0..10).map(|i| m[i][i].as_u64().unwrap()).sum();
    let acc = s["test_accuracy"].as_f64().unwrap();
    assert!((diag as f64 / 1e4 - acc).abs() < 1e-12);
    let top5 = s["test_metrics"]["top5_accuracy"].as_f64().unwrap();
    assert!(top5 >= acc && top5 <= 1.0);
    // the matrix is printed on standard error, the result alone on standard output
    let o = run(&[
        "train",
        "--data",
        MNIST,
        "--model",
        MNIST_MODEL,
        "--max-steps",
        "5",
        "--epochs",
        "1",
    ]);
    assert!(
        o.stderr.contains("rows: true class, columns: predicted"),
        "{}",
        o.stderr
    );
    assert_eq!(o.stdout.lines().count(), 1, "{}", o.stdout);
}

#[test]
fn named_zero_one_columns_train_a_multi_label_classifier() {
    let dir = TempDir::new().unwrap();
    let csv = dir.path().join("labels.csv");
    let mut text = String::from("x1,x2,a,b\n");
    for i in 0..400 {
        let (x1, x2) = (
            ((i * 37) % 101) as f32 / 50.0 - 1.0,
            ((i * 53) % 97) as f32 / 48.0 - 1.0,
        );
        text += &format!("{x1},{x2},{},{}\n", (x1 > 0.0) as u8, (x2 > 0.0) as u8);
    }
    std::fs::write(&csv, text).unwrap();
    let c = csv.to_str().unwrap();
    let s = json(&[
        "train",
        "--data",
        c,
        "--target",
        "a,b",
        "--task",
        "multi-label",
        "--test-split",
        "0.25",
        "--model",
        "linear(2,16),relu,linear(16,2)",
        "--epochs",
        "40",
        "--batch-size",
        "32",
        "--lr",
        "0.02",
        "--json",
        "--diagnostics-every",
        "0",
    ]);
    assert_eq!(s["task"], "multi-label");
    let m = &s["test_metrics"];
    assert!(m["f1"].as_f64().unwrap() > 0.9, "{m}");
    assert!(m["precision"].as_f64().is_some() && m["recall"].as_f64().is_some());
    // the share of samples with both labels right
    assert!(s["test_accuracy"].as_f64().unwrap() > 0.8, "{s}");
    // mse on 0/1 targets is a regression, which --task multi-label refuses
    fail(
        &[
            "train",
            "--data",
            c,
            "--target",
            "a,b",
            "--task",
            "multi-label",
            "--loss",
            "mse",
            "--model",
            "linear(2,2)",
            "--epochs",
            "1",
        ],
        &["--task multi-label", "bce-logits"],
    );
}
