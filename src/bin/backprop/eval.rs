//! `backprop eval`: a saved model's loss and the figures of its task
//! (accuracy, MAE/RMSE/R², precision/recall/F1) on a data set.

use crate::args::EvalArgs;
use crate::{data_path, set_threads};
use anyhow::{bail, Context};
use backprop::data::{self, DataInfo, Dataset};
use backprop::nn::Sequential;
use backprop::train::{self, task, LossKind, Task};
use backprop::{io, Error};
use std::path::{Path, PathBuf};

/// A saved model and what it knows of its data.
pub fn load_saved(weights: &Path, model: Option<&str>) -> anyhow::Result<(Sequential, DataInfo)> {
    let w = io::load(weights)?;
    if model.is_none() && !w.metadata.contains_key(io::MODEL_KEY) {
        bail!(Error::weights(
            weights,
            "the file holds no model line (it was not written by backprop from a model line); pass it with --model",
        ));
    }
    let info = DataInfo::of_model(&w, weights)?;
    Ok((io::model_from_weights(&w, weights, model)?, info))
}

/// The data to evaluate on (its test set if it has one), read as the
/// model's training data was: the same target columns, the saved
/// standardization.
pub fn eval_set(
    data: Option<PathBuf>,
    csv_scale: Option<f32>,
    info: &DataInfo,
) -> anyhow::Result<Box<dyn Dataset>> {
    let d = data_path(data)?;
    let (tr, te) = data::open(&d, None, &info.data_options(csv_scale))?;
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
    let (model, info) = load_saved(&a.weights, a.model.as_deref())?;
    let set = eval_set(a.data, a.csv_scale, &info)?;
    let saved: Option<LossKind> = info.loss.as_deref().and_then(|l| l.parse().ok());
    let loss = a
        .loss
        .or(saved)
        .unwrap_or(Task::of(set.targets(), LossKind::CrossEntropy).default_loss());
    train::check_compatible(&model, &set, loss)
        .with_context(|| format!("data {}", set.source().display()))?;
    let e = train::evaluate_full(&model, &set, loss, 1000)?;
    let t = Task::of(set.targets(), loss);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"samples": set.len(), "task": t, "loss": e.loss, "accuracy": e.accuracy,
                "metrics": e.metrics, "confusion": e.confusion, "data": set.source()})
        );
        return Ok(());
    }
    let headline = match t {
        Task::Regression => task::metrics_line(&e.metrics),
        _ => format!("accuracy {:.2}%", e.accuracy * 100.0),
    };
    println!(
        "{}: {headline} (loss {:.4}) on {} samples",
        set.source().display(),
        e.loss,
        set.len()
    );
    if t == Task::MultiLabel {
        println!("{}", task::metrics_line(&e.metrics));
    }
    if let Some(m) = &e.confusion {
        if !e.metrics.is_empty() {
            println!("{}", task::metrics_line(&e.metrics));
        }
        if m.len() <= 20 {
            println!("{}", task::confusion_text(m, &|c| info.class_name(c)));
        }
    }
    Ok(())
}
