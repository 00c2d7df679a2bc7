//! Seeing inside, from the command line: the vanishing-gradient and dead-ReLU
//! warnings (and their absence on a healthy network), the files a run leaves
//! (`metrics.csv` with its documented columns, loss and gradient plots as
//! valid PNG and SVG), `backprop graph` and `backprop gradcheck`.
//!
//! The runs use the MNIST copy in `data/mnist` and `--max-steps`.

use serde_json::Value;
use std::path::Path;
use tempfile::TempDir;

const MNIST: &str = "data/mnist";

mod common;
use common::{run, Out};

fn ok(args: &[&str]) -> Out {
    let o = run(args);
    assert!(
        o.success,
        "backprop {args:?} failed:\nstdout: {}\nstderr: {}",
        o.stdout, o.stderr
    );
    o
}

/// A failure reported as one `error: …` line naming every needle.
fn fail(args: &[&str], needles: &[&str]) -> String {
    let o = run(args);
    assert!(
        !o.success,
        "backprop {args:?} should have failed:\n{}",
        o.stdout
    );
    let err = o.stderr.trim_end();
    assert!(
        !err.contains('\n') && err.starts_with("error: "),
        "backprop {args:?}: not one error line:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "backprop {args:?}: no {n:?} in:\n{err}");
    }
    err.to_string()
}

fn last_json(stdout: &str) -> Value {
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    serde_json::from_str(last).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `flatten,linear(784,64)` then `act,linear(64,64)` × (layers − 2), `act,linear(64,10)`.
fn deep(act: &str, layers: usize) -> String {
    let mut v = vec!["flatten".to_string(), "linear(784,64)".to_string()];
    for _ in 0..layers - 2 {
        v.push(format!("{act},linear(64,64)"));
    }
    v.push(format!("{act},linear(64,10)"));
    v.join(",")
}

fn assert_png(p: &Path) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(b.len() > 1000, "{} is tiny", p.display());
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        p.display()
    );
    assert_eq!(&b[12..16], b"IHDR", "{}: no IHDR chunk", p.display());
    assert_eq!(
        &b[b.len() - 8..b.len() - 4],
        b"IEND",
        "{}: no IEND chunk",
        p.display()
    );
}

fn assert_svg(p: &Path) {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let t = t.trim();
    assert!(
        t.starts_with("<svg") || t.starts_with("<?xml"),
        "{} does not start as SVG",
        p.display()
    );
    assert!(
        t.ends_with("</svg>"),
        "{} does not end with </svg>",
        p.display()
    );
    // Well-formed tags: every element closed, in order.
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find('<') {
        let j = i + rest[i..]
            .find('>')
            .unwrap_or_else(|| panic!("{}: unclosed <", p.display()));
        let tag = &rest[i + 1..j];
        rest = &rest[j + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        let name = tag
            .trim_start_matches('/')
            .split_whitespace()
            .next()
            .unwrap_or("");
        if tag.starts_with('/') {
            assert_eq!(
                stack.pop(),
                Some(name),
                "{}: mismatched </{name}>",
                p.display()
            );
        } else {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "{}: unclosed {stack:?}", p.display());
    assert!(t.contains("<text"), "{}: no text", p.display());
}

#[test]
fn ten_sigmoid_layers_with_small_init_warn_of_vanishing_gradients() {
    let model = deep("sigmoid", 10);
    let o = ok(&[
        "train",
        "--model",
        &model,
        "--data",
        MNIST,
        "--weight-init",
        "small-normal",
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
        "--max-steps",
        "3",
        "--json",
    ]);
    let warnings: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert!(!warnings.is_empty(), "no warning:\n{}", o.stderr);
    let w = warnings[0];
    assert!(
        w.contains("vanishing gradient at step 1") && w.contains("layer 1 linear(784,64)"),
        "{w}"
    );
    assert!(
        w.contains("layer 19 linear(64,10)"),
        "names the last layer: {w}"
    );
    for remedy in [
        "relu instead of sigmoid",
        "--weight-init kaiming-normal",
        "batch norm",
    ] {
        assert!(w.contains(remedy), "no remedy {remedy:?}: {w}");
    }
    // Warned once per layer and kind, and listed in the summary.
    assert_eq!(
        warnings.iter().filter(|l| l.contains("vanishing")).count(),
        1,
        "{warnings:?}"
    );
    let j = last_json(&o.stdout);
    let ws = j["warnings"].as_array().unwrap();
    assert!(
        ws.iter().any(|v| v.as_str().unwrap().contains("vanishing")),
        "{j}"
    );
    // stdout is the JSON alone.
    assert_eq!(o.stdout.trim().lines().count(), 1, "{}", o.stdout);
    // --quiet keeps the warnings out of stderr (they stay in the JSON).
    let o = ok(&[
        "train",
        "--model",
        &model,
        "--data",
        MNIST,
        "--weight-init",
        "small-normal",
        "--max-steps",
        "1",
        "--json",
        "--quiet",
    ]);
    assert!(!o.stderr.contains("warning"), "{}", o.stderr);
    assert!(!last_json(&o.stdout)["warnings"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_sigmoid_net_stuck_at_chance_is_named() {
    // The net a new user tries: stays at 10 % and loss 2.30 with SGD 0.1,
    // its first layer's updates 1/100 of the last's.
    let o = ok(&[
        "train",
        "--model",
        "flatten,linear(784,64),sigmoid,linear(64,64),sigmoid,linear(64,64),sigmoid,linear(64,10)",
        "--data",
        MNIST,
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
        "--max-steps",
        "400",
        "--json",
    ]);
    let warnings: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    let chance = warnings.iter().find(|w| w.contains("chance level"));
    assert!(
        chance.is_some_and(|w| w.contains("relu instead of sigmoid") && w.contains("Adam")),
        "{warnings:?}"
    );
    let slow = warnings.iter().find(|w| w.contains("barely learn"));
    assert!(
        slow.is_some_and(|w| w.contains("layer 1 linear(784,64)") && w.contains("batch norm")),
        "{warnings:?}"
    );
}

#[test]
fn ten_relu_layers_with_he_init_raise_no_warning() {
    let model = deep("relu", 10);
    let o = ok(&[
        "train",
        "--model",
        &model,
        "--data",
        MNIST,
        "--weight-init",
        "kaiming-normal",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--max-steps",
        "101",
        "--json",
    ]);
    assert!(!o.stderr.contains("warning"), "{}", o.stderr);
    let j = last_json(&o.stdout);
    assert_eq!(j["warnings"], serde_json::json!([]), "{j}");
    assert!(j["train_accuracy"].as_f64().unwrap() > 0.3, "{j}");
}

#[test]
fn dead_relus_are_reported() {
    // Negative constant weights and zero biases: every pre-activation of the
    // first layer is ≤ 0 on MNIST's non-negative pixels, so its ReLUs are dead.
    let o = ok(&[
        "train",
        "--model",
        "flatten,linear(784,32),relu,linear(32,10)",
        "--data",
        MNIST,
        "--weight-init",
        "constant(-0.01)",
        "--max-steps",
        "2",
        "--quiet",
        "--json",
    ]);
    let j = last_json(&o.stdout);
    let ws: Vec<&str> = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        ws.iter().any(
            |w| w.contains("100 % of the units of layer 2 relu are dead")
                && w.contains("leaky_relu")
        ),
        "{ws:?}"
    );
}

/// The columns `metrics.csv` documents for `flatten,linear(784,32),relu,linear(32,10)`.
// The test set's top-5 accuracy: MNIST has 10 classes. A layer with
// parameters has its norms, then five quantiles of its weights and of
// their gradients (histograms over time).
const COLUMNS: &str =
    "kind,step,epoch,loss,accuracy,lr,test_loss,test_accuracy,test_top5_accuracy,\
    L1.grad_norm,L1.delta_norm,L1.weight_norm,L1.update_ratio,\
    L1.w_q0,L1.w_q16,L1.w_q50,L1.w_q84,L1.w_q100,L1.g_q0,L1.g_q16,L1.g_q50,L1.g_q84,L1.g_q100,\
    L2.dead_frac,\
    L3.grad_norm,L3.delta_norm,L3.weight_norm,L3.update_ratio,\
    L3.w_q0,L3.w_q16,L3.w_q50,L3.w_q84,L3.w_q100,L3.g_q0,L3.g_q16,L3.g_q50,L3.g_q84,L3.g_q100";

#[test]
fn a_saved_run_leaves_metrics_and_plots_beside_the_model() {
    let d = TempDir::new().unwrap();
    let m = d.path().join("x.safetensors");
    ok(&[
        "train",
        "--model",
        "flatten,linear(784,32),relu,linear(32,10)",
        "--data",
        MNIST,
        "--max-steps",
        "25",
        "--diagnostics-every",
        "10",
        "--save",
        s(&m),
        "--quiet",
    ]);
    let mut files: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "x.grads.png",
            "x.grads.svg",
            "x.loss.png",
            "x.loss.svg",
            "x.metrics.csv",
            "x.safetensors",
            "x.state.safetensors"
        ]
    );
    for f in ["x.grads.png", "x.loss.png"] {
        assert_png(&d.path().join(f));
    }
    for f in ["x.grads.svg", "x.loss.svg"] {
        assert_svg(&d.path().join(f));
    }
    let csv = std::fs::read_to_string(d.path().join("x.metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], COLUMNS);
    let n = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == n), "{csv}");
    // Step rows at 1, 10, 20, then the epoch row at step 25 with the test figures.
    let kinds: Vec<(&str, &str)> = lines[1..]
        .iter()
        .map(|l| {
            let mut f = l.split(',');
            (f.next().unwrap(), f.next().unwrap())
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("step", "1"),
            ("step", "10"),
            ("step", "20"),
            ("epoch", "25")
        ]
    );
    let row: Vec<&str> = lines[1].split(',').collect();
    // Every per-layer column of a step row is measured (the test set's
    // figures are on epoch rows only).
    for (i, col) in lines[0].split(',').enumerate().skip(9) {
        let v: f64 = row[i]
            .parse()
            .unwrap_or_else(|_| panic!("{col} = {:?}", row[i]));
        // norms and shares are ≥ 0; quantiles of weights and gradients have a sign
        let signed = col.contains("_q");
        assert!(v.is_finite() && (signed || v >= 0.0), "{col} = {v}");
        if col.ends_with("dead_frac") {
            assert!(v <= 1.0, "{col} = {v}");
        }
    }
    // The quantiles rise from the least to the greatest.
    let q: Vec<f64> = ["L1.w_q0", "L1.w_q16", "L1.w_q50", "L1.w_q84", "L1.w_q100"]
        .iter()
        .map(|c| {
            row[lines[0].split(',').position(|h| h == *c).unwrap()]
                .parse()
                .unwrap()
        })
        .collect();
    assert!(q.windows(2).all(|w| w[0] <= w[1]) && q[0] < q[4], "{q:?}");
    let epoch: Vec<&str> = lines[4].split(',').collect();
    let (acc, top5): (f64, f64) = (epoch[7].parse().unwrap(), epoch[8].parse().unwrap());
    assert!(top5 >= acc && top5 <= 1.0, "top-5 {top5}, accuracy {acc}");
    assert!(
        epoch[6].parse::<f64>().is_ok() && epoch[7].parse::<f64>().is_ok(),
        "{}",
        lines[4]
    );
}

#[test]
fn out_folder_and_diagnostics_off() {
    let d = TempDir::new().unwrap();
    let out = d.path().join("run1");
    ok(&[
        "train",
        "--model",
        "flatten,linear(784,16),tanh,linear(16,10)",
        "--data",
        MNIST,
        "--max-steps",
        "3",
        "--diagnostics-every",
        "1",
        "--out",
        s(&out),
        "--quiet",
    ]);
    for f in ["loss.png", "grads.png"] {
        assert_png(&out.join(f));
    }
    for f in ["loss.svg", "grads.svg"] {
        assert_svg(&out.join(f));
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(
        "L1.grad_norm,L1.delta_norm,L1.weight_norm,L1.update_ratio,\
         L1.w_q0,L1.w_q16,L1.w_q50,L1.w_q84,L1.w_q100,L1.g_q0,L1.g_q16,L1.g_q50,L1.g_q84,L1.g_q100,\
         L2.saturated_frac,\
         L3.grad_norm,L3.delta_norm,L3.weight_norm,L3.update_ratio,\
         L3.w_q0,L3.w_q16,L3.w_q50,L3.w_q84,L3.w_q100,L3.g_q0,L3.g_q16,L3.g_q50,L3.g_q84,L3.g_q100"
    ));
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("step,")).count(),
        3,
        "{csv}"
    );

    // Off: no per-layer columns, no gradient plot, no --no-plots pictures.
    let out = d.path().join("run2");
    ok(&[
        "train",
        "--model",
        "flatten,linear(784,16),tanh,linear(16,10)",
        "--data",
        MNIST,
        "--max-steps",
        "3",
        "--diagnostics-every",
        "0",
        "--out",
        s(&out),
        "--quiet",
        "--no-plots",
    ]);
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        "kind,step,epoch,loss,accuracy,lr,test_loss,test_accuracy,test_top5_accuracy"
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    // An --out that is a file fails before training.
    let f = d.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    fail(
        &["train", "--data", MNIST, "--max-steps", "1", "--out", s(&f)],
        &["file"],
    );
}

#[test]
fn graph_prints_dot_and_the_memory_it_holds() {
    let o = ok(&["graph", "mlp"]);
    assert!(o.stdout.contains("digraph tape {") && o.stdout.trim_end().ends_with('}'));
    assert!(o.stdout.contains("param 1.weight") && o.stdout.contains("cross_entropy (loss)"));
    assert!(o.stderr.contains("activations on the tape") && o.stderr.contains("checkpointing"));
    let d = TempDir::new().unwrap();
    let f = d.path().join("g.dot");
    let o = ok(&[
        "graph",
        &deep("sigmoid", 6),
        "--batch",
        "8",
        "--loss",
        "mse",
        "--out",
        s(&f),
    ]);
    let dot = std::fs::read_to_string(&f).unwrap();
    assert!(
        dot.contains("cluster_layer11") && dot.contains("mse (loss)"),
        "{dot}"
    );
    assert!(o.stdout.contains("[8, 1, 28, 28]"), "{}", o.stdout);
    assert!(o.stdout.contains("saving"), "{}", o.stdout);
    if d.path().join("g.svg").exists() {
        assert_svg(&d.path().join("g.svg"));
    }
    // A model that starts with linear(in, …) gets [in] samples.
    let o = ok(&["graph", "linear(5,3),relu,linear(3,2)", "--batch", "4"]);
    assert!(o.stderr.contains("[4, 5]"), "{}", o.stderr);
    fail(&["graph", "flatten,relu2"], &["unknown layer `relu2`"]);
    fail(
        &["graph", "linear(10,2)", "--input-shape", "1,28,28"],
        &["layer 0", "[N, 10]"],
    );
    fail(
        &["graph", "mlp", "--input-shape", "1,-28"],
        &["--input-shape"],
    );
    fail(&["graph", "mlp", "--batch", "0"], &["--batch 0"]);
    fail(&["graph", "mlp", "--loss", "hinge"], &["--loss hinge"]);
    fail(
        &["graph", "mlp", "--out", s(&d.path().join("no/such/g.dot"))],
        &["--out"],
    );
}

#[test]
fn gradcheck_passes_on_correct_models_and_fails_cleanly_on_bad_lines() {
    let o = ok(&["gradcheck", "mlp", "--samples", "50"]);
    assert!(o.stdout.contains("layer 1 linear(784,128)"), "{}", o.stdout);
    assert!(o.stdout.contains("layer 3 linear(128,10)"), "{}", o.stdout);
    assert!(
        o.stdout.lines().last().unwrap().starts_with("ok: "),
        "{}",
        o.stdout
    );
    let o = ok(&[
        "gradcheck",
        "linear(6,5),tanh,linear(5,4),sigmoid,linear(4,3),elu,linear(3,2),log_softmax",
        "--samples",
        "0",
    ]);
    assert!(o.stdout.contains("layer 6 linear(3,2)"), "{}", o.stdout);
    assert!(
        o.stdout.contains("(30 of 30)"),
        "all elements checked: {}",
        o.stdout
    );
    fail(&["gradcheck", "flatten,relu2"], &["unknown layer `relu2`"]);
    fail(
        &["gradcheck", "linear(10,2)", "--input-shape", "3"],
        &["[N, 10]"],
    );
    fail(&["gradcheck", "mlp", "--tolerance", "0"], &["--tolerance"]);
    fail(
        &["gradcheck", "mlp", "--weight-init", "glorious"],
        &["--weight-init glorious"],
    );
}

/// Healthy LeNet runs on the shipped MNIST (98 % and more) raise no
/// exploding-gradient warning: the growth check judges a gradient against
/// its recent level, not against the smallest value of the whole run (one
/// near-zero batch made later normal values look like a hundredfold rise),
/// and not in the first steps, where gradients rise from the initial
/// weights' small values. The remedies name a learning rate as a person
/// writes it.
#[test]
fn healthy_lenet_runs_raise_no_exploding_gradient_warning() {
    for seed in ["1", "2", "3"] {
        let o = ok(&[
            "train",
            "--model",
            "lenet",
            "--epochs",
            "3",
            "--seed",
            seed,
            "--diagnostics-every",
            "10",
        ]);
        assert!(!o.stderr.contains("exploding"), "seed {seed}: {}", o.stderr);
        assert!(
            o.stdout.contains("test accuracy 98."),
            "seed {seed}: {}",
            o.stdout
        );
    }
}

/// A wide MLP on 300 training images overfits: its test loss rises for two
/// epochs while its training loss falls, and the run says so once, naming
/// the epoch of the best test loss.
#[test]
fn an_overfitting_run_is_told_so_once() {
    let d = TempDir::new().unwrap();
    let data = common::small_mnist(d.path(), 300, 300);
    let o = ok(&[
        "train",
        "--model",
        "flatten,linear(784,256),relu,linear(256,10)",
        "--data",
        s(&data),
        "--epochs",
        "40",
        "--batch-size",
        "32",
        "--lr",
        "0.003",
        "--json",
    ]);
    let v = last_json(&o.stdout);
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .filter(|w| w.starts_with("overfitting"))
        .collect();
    eprintln!("{}", o.stderr);
    assert_eq!(warnings.len(), 1, "{warnings:?}\n{}", o.stdout);
    assert!(warnings[0].contains("--epochs "), "{}", warnings[0]);
}
