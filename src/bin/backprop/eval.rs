//! `backprop eval`: a saved model's loss and accuracy on a data set.

use crate::args::EvalArgs;
use crate::{data_path, set_threads};
use anyhow::{bail, Context};
use backprop::data::{self, Dataset};
use backprop::nn::Sequential;
use backprop::{io, train, Error};
use std::path::{Path, PathBuf};

pub fn load_saved(weights: &Path, model: Option<&str>) -> anyhow::Result<Sequential> {
    if model.is_none() {
        let w = io::load(weights)?;
        if !w.metadata.contains_key(io::MODEL_KEY) {
            bail!(Error::weights(
                weights,
                "the file holds no model line (it was not written by backprop from a model line); pass it with --model",
            ));
        }
    }
    Ok(io::load_model(weights, model)?)
}

fn eval_set(data: Option<PathBuf>, csv_scale: Option<f32>) -> anyhow::Result<Dataset> {
    let d = data_path(data)?;
    let (tr, te) = data::load_data(&d, None, csv_scale)?;
    Ok(te.unwrap_or(tr))
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    if let Some(d) = a
        .data
        .as_ref()
        .filter(|_| crate::lm::is_text(a.data.as_ref()))
    {
        return crate::lm::eval(&a.weights, d, a.json);
    }
    let loss = a.loss;
    let model = load_saved(&a.weights, a.model.as_deref())?;
    let set = eval_set(a.data, a.csv_scale)?;
    train::check_compatible(&model, &set, loss)
        .with_context(|| format!("data {}", set.source.display()))?;
    let (l, acc) = train::evaluate(&model, &set, loss, 1000);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"samples": set.len(), "loss": l, "accuracy": acc, "data": set.source})
        );
    } else {
        println!(
            "{}: accuracy {:.2}% (loss {l:.4}) on {} samples",
            set.source.display(),
            acc * 100.0,
            set.len()
        );
    }
    Ok(())
}
