//! `backprop predict`: the class of an image (made MNIST-like) or of one
//! sample of a data set.

use crate::args::PredictArgs;
use crate::data_path;
use crate::eval::load_saved;
use anyhow::{bail, Context};
use backprop::data;
use backprop::nn::{Module, ModuleExt};
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

pub fn run(a: PredictArgs) -> anyhow::Result<()> {
    let model = load_saved(&a.weights, a.model.as_deref())?;
    let (x, label, what) = match (&a.image, &a.data, a.index) {
        (Some(img), None, None) => {
            let x = data::load_image(img)?;
            let x = if a.raw { x } else { like_mnist(&x, img)? };
            (x, None, img.display().to_string())
        }
        (None, d, Some(i)) => {
            let (tr, te) = data::load_data(&data_path(d.clone())?, None, None)?;
            let set = te.unwrap_or(tr);
            if i >= set.len() {
                bail!(Error::Config(format!(
                    "--index {i}: {} has {} samples (0..{})",
                    set.source.display(),
                    set.len(),
                    set.len().saturating_sub(1)
                )));
            }
            let (x, y) = set.batch(&[i]);
            (
                x,
                Some(y[0]),
                format!("sample {i} of {}", set.source.display()),
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
    let probs = model.probabilities(&out.reshape(&[1, c]));
    let class = probs.argmax_rows()[0];
    let probs = probs.data().to_vec();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"input": what, "class": class, "label": label, "probabilities": probs})
        );
    } else {
        println!(
            "{what}: class {class} ({:.1}%){}",
            probs[class] * 100.0,
            label.map(|l| format!(", label {l}")).unwrap_or_default()
        );
        let mut order: Vec<usize> = (0..c).collect();
        order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
        for &i in order.iter().take(5) {
            println!("  {i}: {:.4}", probs[i]);
        }
    }
    Ok(())
}
