//! `backprop predict`: the class of an image (made MNIST-like) or of one
//! sample of a data set.

use crate::args::PredictArgs;
use crate::eval::load_saved;
use anyhow::{bail, Context};
use backprop::data::{self, DataInfo, Targets};
use backprop::nn::{Module, ModuleExt};
use backprop::train::Task;
use backprop::{Error, Tensor};
use std::path::Path;

/// An image `[1, 1, H, W]` made MNIST-like (`data::mnist_like`).
fn like_mnist(x: &Tensor, path: &Path) -> anyhow::Result<Tensor> {
    let (h, w) = (x.shape()[2], x.shape()[3]);
    match data::mnist_like(x.data(), w, h) {
        Some(v) => Ok(Tensor::from_vec(
            vec![1, 1, data::MNIST_SIDE, data::MNIST_SIDE],
            v,
        )),
        None => bail!(
            "{}: the image is blank (one gray level); draw a digit on it",
            path.display()
        ),
    }
}

/// `x` normalized as the model's training images were, if they were.
fn normalized(mut x: Tensor, info: &DataInfo, path: &Path) -> anyhow::Result<Tensor> {
    if let Some(n) = &info.normalize {
        n.apply(&mut x, path)?;
    }
    Ok(x)
}

pub fn run(a: PredictArgs) -> anyhow::Result<()> {
    let (model, info) = load_saved(&a.weights, a.model.as_deref())?;
    let (x, label, what) = match (&a.image, &a.data, a.index) {
        (Some(img), None, None) if info.image.is_some() => {
            let shape = info.image.expect("checked");
            let x = normalized(data::load_sample(img, shape)?, &info, img)?;
            (x, None, img.display().to_string())
        }
        (Some(img), None, None) => {
            let x = data::load_image(img)?;
            let x = if a.raw { x } else { like_mnist(&x, img)? };
            (normalized(x, &info, img)?, None, img.display().to_string())
        }
        (None, d, Some(i)) => {
            let set = crate::eval::eval_set(d.clone(), None, &info)?;
            if i >= set.len() {
                bail!(Error::Config(format!(
                    "--index {i}: {} has {} samples (0..{})",
                    set.source().display(),
                    set.len(),
                    set.len().saturating_sub(1)
                )));
            }
            let (x, y) = set.batch(&[i])?;
            (
                x,
                Some(y),
                format!("sample {i} of {}", set.source().display()),
            )
        }
        (None, _, None) => bail!(Error::Config(
            "give an IMAGE file, or --index N (with --data)".into()
        )),
        (Some(_), _, _) => bail!(Error::Config(
            "give either an IMAGE or --index, not both".into()
        )),
    };
    let sample: Vec<usize> = x.shape()[1..].to_vec();
    let out_shape = model
        .output_shape(&sample)
        .with_context(|| format!("input {what}"))?;
    let out = model.predict(&x);
    let c = out_shape.iter().product::<usize>();
    let out = out.reshape(&[1, c]);
    if info.task == Some(Task::Regression) {
        return print_values(&out, label.as_ref(), &what, &info, a.json);
    }
    let label = label.and_then(|t| t.classes().map(|y| y[0]));
    let probs = model.probabilities(&out);
    let class = probs.argmax_rows()[0];
    let probs = probs.data().to_vec();
    let name = |c: usize| info.class_name(c);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"input": what, "class": class, "name": name(class), "label": label,
                "probabilities": probs})
        );
    } else {
        let shown = |c: usize| match info.classes.is_empty() {
            true => format!("class {c}"),
            false => format!("{} (class {c})", name(c)),
        };
        println!(
            "{what}: {} ({:.1}%){}",
            shown(class),
            probs[class] * 100.0,
            label
                .map(|l| format!(", label {}", name(l)))
                .unwrap_or_default()
        );
        let mut order: Vec<usize> = (0..c).collect();
        order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
        for &i in order.iter().take(5) {
            println!("  {}: {:.4}", name(i), probs[i]);
        }
    }
    Ok(())
}

/// A regression model's outputs, named by the target columns.
fn print_values(
    out: &Tensor,
    truth: Option<&Targets>,
    what: &str,
    info: &DataInfo,
    json: bool,
) -> anyhow::Result<()> {
    let names: Vec<String> = (0..out.data().len())
        .map(|j| {
            info.targets
                .get(j)
                .cloned()
                .unwrap_or_else(|| format!("output {j}"))
        })
        .collect();
    let truth = truth.and_then(Targets::values).map(|t| t.data().to_vec());
    if json {
        println!(
            "{}",
            serde_json::json!({"input": what, "names": names, "values": out.data(), "targets": truth})
        );
        return Ok(());
    }
    let parts: Vec<String> = names
        .iter()
        .zip(out.data())
        .enumerate()
        .map(|(j, (n, v))| match &truth {
            Some(t) => format!("{n} {v:.4} (true {})", t[j]),
            None => format!("{n} {v:.4}"),
        })
        .collect();
    println!("{what}: {}", parts.join(", "));
    Ok(())
}
