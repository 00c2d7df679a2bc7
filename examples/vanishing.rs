//! The vanishing gradient, and why cross-entropy learns faster than the
//! quadratic cost with sigmoid outputs: the two experiments of the seeds,
//! run on MNIST and drawn.
//!
//! `cargo run --release --example vanishing [-- OUT_DIR]` (default `runs/vanishing`; under a minute)
//!
//! 1. The same deep network, `flatten,linear(784,64)` then seven
//!    `linear(64,64)` and `linear(64,10)`, with He-initialized weights and
//!    plain SGD, once with sigmoid and once with relu between the layers, and
//!    once with batch norm before each sigmoid, trained side by side for 400
//!    steps. Every 10 steps the
//!    diagnostics measure each layer's weight gradient ‖∂C/∂W‖. Backward
//!    through a sigmoid multiplies δ by σ'(z) ≤ 1/4 at every layer, so the
//!    first layers of the sigmoid net get gradients orders of magnitude
//!    smaller than the last, and barely learn; relu passes δ through
//!    unchanged where it is active. `gradients.png` / `.svg` shows the mean
//!    gradient norm of each layer, and the accuracy of each net over the steps.
//!
//!    Must reach: the first sigmoid layer's mean gradient norm is below 1/100
//!    of the last sigmoid layer's, the relu net's is above 1/10 of its last
//!    layer's, and the relu net's test accuracy beats the sigmoid net's by 20
//!    points.
//!
//! 2. `flatten,linear(784,30),sigmoid,linear(30,10),sigmoid` trained with the
//!    quadratic cost (`mse`) and with cross-entropy (`bce`) from the same
//!    weights, same SGD learning rate. With the quadratic cost the output
//!    error is multiplied by σ'(z), which is tiny for a saturated output, so a
//!    badly wrong output learns slowly; cross-entropy's δ = a − y has no such
//!    factor. `losses.png` / `.svg` shows the accuracy of both over the steps
//!    and the norm of the output layer's δ.
//!
//!    Must reach: after 300 steps cross-entropy's test accuracy is higher than
//!    the quadratic cost's by 5 points.
//!
//! The example exits non-zero if any statement fails.

use backprop::data::{load_data, TensorDataset};
use backprop::inspect::diagnostics::Sample;
use backprop::nn::{Init, Sequential};
use backprop::optim::{OptimizerConfig, OptimizerKind};
use backprop::train::metrics::{Recorder, RowKind};
use backprop::train::plots::{ordered_color, Figure, Panel, Series, Style, TEST, TRAIN};
use backprop::train::{self, EpochRecord, LossKind, Observer, StepInfo, TrainConfig};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Keeps the diagnostics' samples and the metrics rows of a run.
struct Collect {
    samples: Vec<Sample>,
    rec: Recorder,
}

impl Observer for Collect {
    fn epoch_start(&mut self, e: usize, b: usize) {
        self.rec.epoch_start(e, b);
    }
    fn step(&mut self, s: &StepInfo) {
        self.rec.step(s);
    }
    fn epoch_end(&mut self, r: &EpochRecord) {
        self.rec.epoch_end(r);
    }
    fn diagnostics(&mut self, s: &Sample) {
        self.samples.push(s.clone());
        self.rec.diagnostics(s);
    }
}

/// What one training run left.
struct Run {
    name: String,
    samples: Vec<Sample>,
    rec: Recorder,
    test_accuracy: f64,
}

#[allow(clippy::too_many_arguments)]
fn run(
    name: &str,
    line: &str,
    init: Init,
    loss: LossKind,
    lr: f32,
    steps: usize,
    train_set: &TensorDataset,
    test_set: &TensorDataset,
) -> backprop::Result<Run> {
    let mut model = Sequential::parse(line, init, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
    let mut cfg = TrainConfig::new(OptimizerConfig::new(OptimizerKind::Sgd));
    cfg.optimizer.lr = lr;
    cfg.loss = loss;
    cfg.max_steps = Some(steps);
    cfg.diagnostics_every = 10;
    cfg.seed = 1;
    let mut obs = Collect {
        samples: Vec::new(),
        rec: Recorder::new(10, true),
    };
    let (summary, _) = train::train(&mut model, train_set, Some(test_set), &cfg, &mut obs)?;
    let test_accuracy = summary.test_accuracy.unwrap_or(0.0);
    println!(
        "  {name:<28} test accuracy {:5.1} % after {steps} steps{}",
        100.0 * test_accuracy,
        if summary.warnings.is_empty() {
            String::new()
        } else {
            format!(" ({} warning(s))", summary.warnings.len())
        }
    );
    Ok(Run {
        name: name.to_string(),
        samples: obs.samples,
        rec: obs.rec,
        test_accuracy,
    })
}

/// Mean ‖∂C/∂W‖ of each `linear` layer over a run's samples, in layer order.
fn mean_grad_by_layer(r: &Run) -> Vec<f64> {
    let Some(first) = r.samples.first() else {
        return Vec::new();
    };
    first
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.name.starts_with("linear"))
        .map(|(k, _)| {
            let v: Vec<f64> = r
                .samples
                .iter()
                .filter_map(|s| s.layers[k].grad_norm)
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        })
        .collect()
}

/// Accuracy (%) over the steps: the step rows, plus the final test accuracy.
fn accuracy_series(r: &Run, color: plotters::style::RGBColor) -> Series {
    Series {
        label: r.name.clone(),
        color,
        points: r
            .rec
            .rows_of(RowKind::Step)
            .map(|row| (row.step as f64, 100.0 * row.accuracy))
            .collect(),
        style: Style::Line,
    }
}

fn deep(act: &str, bn: bool) -> String {
    let block = |n: usize| {
        if bn {
            format!("linear({n},64),batchnorm1d(64),{act}")
        } else {
            format!("linear({n},64),{act}")
        }
    };
    let mut parts = vec!["flatten".to_string(), block(784)];
    parts.extend((0..7).map(|_| block(64)));
    parts.push("linear(64,10)".into());
    parts.join(",")
}

fn main() -> ExitCode {
    match main_() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main_() -> backprop::Result<bool> {
    let out: PathBuf = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("runs/vanishing"), PathBuf::from);
    std::fs::create_dir_all(&out).map_err(|e| backprop::Error::io(&out, e))?;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let (train_set, test_set) = load_data(&data, None, None)?;
    let test_set = test_set.expect("data/mnist has the t10k files");
    let mut ok = true;
    let mut check = |cond: bool, what: String| {
        println!("  [{}] {what}", if cond { "ok" } else { "FAILED" });
        ok &= cond;
    };

    // 1. Vanishing gradients: sigmoid against relu, same network, same init.
    println!(
        "1. a deep network ({} linear layers), He init, SGD lr 0.1, 400 steps of 64:",
        9
    );
    let steps = 400;
    let he = Init::KaimingNormal;
    let mut runs = vec![
        run(
            "sigmoid",
            &deep("sigmoid", false),
            he,
            LossKind::CrossEntropy,
            0.1,
            steps,
            &train_set,
            &test_set,
        )?,
        run(
            "relu",
            &deep("relu", false),
            he,
            LossKind::CrossEntropy,
            0.1,
            steps,
            &train_set,
            &test_set,
        )?,
    ];
    runs.push(run(
        "batchnorm1d + sigmoid",
        &deep("sigmoid", true),
        he,
        LossKind::CrossEntropy,
        0.1,
        steps,
        &train_set,
        &test_set,
    )?);
    let grads: Vec<Vec<f64>> = runs.iter().map(mean_grad_by_layer).collect();
    for (r, g) in runs.iter().zip(&grads) {
        let v: Vec<String> = g.iter().map(|x| format!("{x:.1e}")).collect();
        println!("  mean ‖∂C/∂W‖ by layer, {:<22} {}", r.name, v.join(" "));
    }
    let ratio = |g: &[f64]| g.first().copied().unwrap_or(0.0) / g.last().copied().unwrap_or(1.0);
    let (rs, rr) = (ratio(&grads[0]), ratio(&grads[1]));
    check(
        rs < 1e-2,
        format!("the first sigmoid layer's gradient is {rs:.1e} × the last's (must be < 1/100)"),
    );
    check(
        rr > 1e-1,
        format!("the first relu layer's gradient is {rr:.2} × the last's (must be > 1/10)"),
    );
    let (acc_s, acc_r) = (runs[0].test_accuracy, runs[1].test_accuracy);
    check(
        acc_r > acc_s + 0.2,
        format!(
            "relu reaches {:.1} % test accuracy, sigmoid {:.1} % (must be 20 points apart)",
            100.0 * acc_r,
            100.0 * acc_s
        ),
    );
    let n = runs.len();
    let by_layer = Panel {
        title: "mean weight gradient ‖∂C/∂W‖ by depth".into(),
        y_label: "‖∂C/∂W‖ (log scale)".into(),
        log_y: true,
        series: runs
            .iter()
            .zip(&grads)
            .enumerate()
            .map(|(i, (r, g))| Series {
                label: r.name.clone(),
                color: ordered_color(i, n.max(2)),
                points: g
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| ((k + 1) as f64, v))
                    .collect(),
                style: Style::Markers,
            })
            .collect(),
        ..Default::default()
    };
    let accuracy = Panel {
        title: "training accuracy (mean over 10 steps)".into(),
        x_label: Some("step".into()),
        y_label: "accuracy (%)".into(),
        y_range: Some((0.0, 100.0)),
        series: runs
            .iter()
            .enumerate()
            .map(|(i, r)| accuracy_series(r, ordered_color(i, n.max(2))))
            .collect(),
        legend_at: plotters::chart::SeriesLabelPosition::LowerRight,
        ..Default::default()
    };
    let f1 = Figure {
        title: "vanishing gradient: 9 linear layers, sigmoid vs relu (He init, SGD lr 0.1)".into(),
        x_label: "linear layer (1 = first)".into(),
        panels: vec![by_layer, accuracy],
        cols: 2,
        size: (1300, 540),
        side_legend: false,
    };
    let mut written = f1.write(&out.join("gradients"))?;

    // 2. Quadratic cost against cross-entropy with sigmoid outputs.
    println!("2. flatten,linear(784,30),sigmoid,linear(30,10),sigmoid, SGD lr 2, 300 steps of 64:");
    let small = "flatten,linear(784,30),sigmoid,linear(30,10),sigmoid";
    let mse = run(
        "sigmoid + quadratic (mse)",
        small,
        Init::Default,
        LossKind::Mse,
        2.0,
        300,
        &train_set,
        &test_set,
    )?;
    let ce = run(
        "sigmoid + cross-entropy (bce)",
        small,
        Init::Default,
        LossKind::Bce,
        2.0,
        300,
        &train_set,
        &test_set,
    )?;
    check(
        ce.test_accuracy > mse.test_accuracy + 0.05,
        format!(
            "cross-entropy reaches {:.1} % test accuracy, the quadratic cost {:.1} % (must be 5 points ahead)",
            100.0 * ce.test_accuracy,
            100.0 * mse.test_accuracy
        ),
    );
    // δ at the output layer's z: the quadratic cost's carries the factor σ'(z).
    let delta = |r: &Run, color| Series {
        label: r.name.clone(),
        color,
        points: r
            .samples
            .iter()
            .filter_map(|s| {
                let last = s.layers.iter().rev().find(|l| l.delta_norm.is_some())?;
                Some((s.step as f64, last.delta_norm?))
            })
            .collect(),
        style: Style::Line,
    };
    let f3 = Figure {
        title: "sigmoid outputs: quadratic cost vs cross-entropy (784-30-10, same start, SGD lr 2)"
            .into(),
        x_label: "step".into(),
        panels: vec![
            Panel {
                title: "training accuracy (mean over 10 steps)".into(),
                y_label: "accuracy (%)".into(),
                y_range: Some((0.0, 100.0)),
                series: vec![accuracy_series(&mse, TEST), accuracy_series(&ce, TRAIN)],
                legend_at: plotters::chart::SeriesLabelPosition::LowerRight,
                ..Default::default()
            },
            Panel {
                title: "output error ‖δ‖ = ‖∂C/∂z‖ of the last layer".into(),
                y_label: "‖δ‖ (log scale)".into(),
                log_y: true,
                series: vec![delta(&mse, TEST), delta(&ce, TRAIN)],
                ..Default::default()
            },
        ],
        cols: 2,
        size: (1300, 520),
        side_legend: false,
    };
    written.extend(f3.write(&out.join("losses"))?);
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    println!("wrote {}", names.join(", "));
    Ok(ok)
}
