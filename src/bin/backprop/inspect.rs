//! `backprop graph` (the tape of one step) and `backprop gradcheck`
//! (gradients against finite differences).

use crate::args::{GradcheckArgs, GraphArgs};
use crate::set_threads;
use anyhow::{anyhow, bail};
use backprop::inspect;
use backprop::nn::{Init, Module, Sequential};
use backprop::{io, Error};
use rand::SeedableRng;
use std::path::Path;

/// `1,28,28` (or `1x28x28`) → `[1, 28, 28]`.
fn parse_shape(s: &str) -> anyhow::Result<Vec<usize>> {
    let dims: Option<Vec<usize>> = s
        .split([',', 'x', ' '])
        .filter(|p| !p.is_empty())
        .map(|p| p.trim().parse::<usize>().ok().filter(|&d| d > 0))
        .collect();
    match dims {
        Some(d) if !d.is_empty() && d.len() <= 8 => Ok(d),
        _ => bail!(Error::Config(format!(
            "--input-shape {s}: give the shape of one sample as positive whole numbers, e.g. 1,28,28"
        ))),
    }
}

/// `--input-shape`, or `[in]` for a model that starts with `linear(in,…)`, or MNIST's `[1, 28, 28]`.
fn sample_shape(model: &dyn Module, given: Option<&str>) -> anyhow::Result<Vec<usize>> {
    if let Some(s) = given {
        return parse_shape(s);
    }
    Ok(model.input_shape_hint().unwrap_or_else(|| vec![1, 28, 28]))
}

pub fn graph(a: GraphArgs) -> anyhow::Result<()> {
    let loss = a.loss;
    let model = Sequential::parse(
        a.model.line(),
        Init::Default,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
    )?;
    if a.batch == 0 {
        bail!("--batch 0: use at least 1 sample");
    }
    let shape = sample_shape(&model, a.input_shape.as_deref())?;
    let tape = inspect::tape::record(&model, &shape, a.batch, loss)?;
    let dot = tape.to_dot();
    match &a.out {
        None => {
            print!("{dot}");
            eprint!("{}", tape.report());
        }
        Some(p) => {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() || p.is_dir() {
                bail!(Error::Config(format!(
                    "--out {}: {} is not a folder; create it first or give a file in an existing folder",
                    p.display(),
                    dir.display()
                )));
            }
            io::write_atomic(p, dot.as_bytes())?;
            print!("{}", tape.report());
            let svg = p.with_extension("svg");
            match std::process::Command::new("dot")
                .arg("-Tsvg")
                .arg(p)
                .arg("-o")
                .arg(&svg)
                .status()
            {
                Ok(st) if st.success() => println!("wrote {} and {}", p.display(), svg.display()),
                Ok(st) => bail!(Error::Config(format!(
                    "Graphviz `dot -Tsvg {}` failed ({st}); the DOT file is there",
                    p.display()
                ))),
                Err(_) => println!(
                    "wrote {} (Graphviz's `dot` is not installed: install graphviz and run `dot -Tsvg {} -o {}`)",
                    p.display(),
                    p.display(),
                    svg.display()
                ),
            }
        }
    }
    Ok(())
}

pub fn gradcheck(a: GradcheckArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    if let Some(t) = a.tolerance.filter(|t| !(*t > 0.0 && t.is_finite())) {
        bail!("--tolerance {t}: must be a number > 0");
    }
    if a.batch == 0 {
        bail!("--batch 0: use at least 1 sample");
    }
    let init: Init = a
        .weight_init
        .parse()
        .map_err(|e| anyhow!("--weight-init {}: {e}", a.weight_init))?;
    let model = Sequential::parse(
        a.model.line(),
        init,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(a.seed),
    )?;
    let shape = sample_shape(&model, a.input_shape.as_deref())?;
    let cfg = inspect::gradcheck::CheckConfig {
        sample_shape: shape.clone(),
        batch: a.batch,
        seed: a.seed,
        samples: a.samples,
        tolerance: a.tolerance.unwrap_or(0.0),
    };
    let res = inspect::gradcheck::check_model(&model, &cfg)?;
    println!(
        "gradient check of `{}` on {} random samples of shape {shape:?} (seed {}): L = Σ r·output with random r, \
         central differences with h = 1e-2·max(1, |θ|) (smaller where that crosses a kink), error = |analytic − numeric| / max(1, |analytic|, |numeric|)",
        model.describe(),
        a.batch,
        a.seed,
    );
    print!("{}", res.report());
    println!("{}", res.verdict()?);
    Ok(())
}
