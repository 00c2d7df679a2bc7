//! What a saved model must know to read its data again: the class names
//! (an image folder's subfolders), the CSV columns it was trained on, the
//! features' standardization, the image size. Saved as JSON in the model
//! file's metadata under [`DATA_KEY`].

use crate::error::{Error, Result};
use crate::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The metadata key of a saved model's [`DataInfo`] (JSON).
pub const DATA_KEY: &str = "backprop.data";

/// Names and preprocessing that travel with a data set and its model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// Class names in index order (an image folder's subfolders, sorted);
    /// empty when the classes are only numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The feature columns' names (a CSV's header).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// The target columns' names (a CSV read with named targets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// The features' standardization, computed on the training split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardize: Option<Standardize>,
    /// Images: each channel's mean and deviation, subtracted and divided
    /// (torchvision's `Normalize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<ChannelNorm>,
    /// Images: `[channels, height, width]` every image was made into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<[usize; 3]>,
    /// What the model was trained to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<super::Task>,
    /// The loss it was trained with, by name (`mse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
}

impl DataInfo {
    /// Whether there is nothing to save.
    pub fn is_empty(&self) -> bool {
        *self == DataInfo::default()
    }

    /// The JSON saved under [`DATA_KEY`].
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("names and finite numbers serialize")
    }

    /// Read it back from a model file's metadata (`path` names the file).
    pub fn from_json(json: &str, path: &Path) -> Result<DataInfo> {
        serde_json::from_str(json).map_err(|e| {
            Error::weights(
                path,
                format!(
                    "its data description ({DATA_KEY}) is not valid ({e}); save the model again"
                ),
            )
        })
    }

    /// How to read data for a model trained on data described by `self`:
    /// the same target columns (as classes when it was trained with
    /// cross-entropy); `csv_scale` as given.
    pub fn data_options(&self, csv_scale: Option<f32>) -> super::DataOptions {
        super::DataOptions {
            csv_scale,
            target: self.targets.clone(),
            classes: self.task == Some(super::Task::Classification),
            image_size: self.image.map(|[_, h, _]| h),
            standardize: self.standardize.clone(),
            normalize: self.normalize.clone().map(Normalize::Given),
            ..Default::default()
        }
    }

    /// Read a model file's description of its data ([`DATA_KEY`]); an empty
    /// one when it has none.
    pub fn of_model(w: &crate::io::Weights, path: &Path) -> Result<DataInfo> {
        match w.metadata.get(DATA_KEY) {
            Some(j) => DataInfo::from_json(j, path),
            None => Ok(DataInfo::default()),
        }
    }

    /// The name of class `c`: its folder's name, or the number.
    pub fn class_name(&self, c: usize) -> String {
        self.classes
            .get(c)
            .cloned()
            .unwrap_or_else(|| c.to_string())
    }
}

/// `x' = (x − mean) / std`, one mean and one standard deviation per
/// feature (scikit-learn's `StandardScaler`: the population deviation, and
/// 1 where a feature is constant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardize {
    /// Each feature's mean over the training split.
    pub mean: Vec<f32>,
    /// Each feature's standard deviation over the training split.
    pub std: Vec<f32>,
}

impl Standardize {
    /// The means and deviations of `x: [N, F]` (sums in f64).
    pub fn fit(x: &Tensor) -> Standardize {
        let f = x.shape()[1..].iter().product::<usize>();
        let (mean, std) = group_moments(x.data(), f, 1);
        Standardize { mean, std }
    }

    /// Standardize `x: [N, F]` in place; `source` names the data when its
    /// width is not the one fitted.
    pub fn apply(&self, x: &mut Tensor, source: &Path) -> Result<()> {
        let f = x.shape()[1..].iter().product::<usize>();
        if f != self.mean.len() {
            return Err(Error::data(
                source,
                format!(
                    "has {f} features per sample, but the model was trained on {}; use data with the same columns",
                    self.mean.len()
                ),
            ));
        }
        normalize_groups(x.data_mut(), &self.mean, &self.std, 1);
        Ok(())
    }
}

/// Each group's mean and population deviation (1 where a group is
/// constant) over samples of `groups × plane` values laid out group after
/// group: the features of `[N, F]` (`plane` 1), the channels of
/// `[N, C, H, W]` (`plane` H·W). Two passes, sums in f64.
fn group_moments(x: &[f32], groups: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    let (groups, plane) = (groups.max(1), plane.max(1));
    let per_group = (x.len() / groups).max(1) as f64;
    let mut s = vec![0f64; groups];
    for sample in x.chunks(groups * plane) {
        for (g, p) in sample.chunks(plane).enumerate() {
            s[g] += p.iter().map(|&v| v as f64).sum::<f64>();
        }
    }
    let mean: Vec<f64> = s.iter().map(|v| v / per_group).collect();
    let mut s2 = vec![0f64; groups];
    for sample in x.chunks(groups * plane) {
        for (g, p) in sample.chunks(plane).enumerate() {
            s2[g] += p.iter().map(|&v| (v as f64 - mean[g]).powi(2)).sum::<f64>();
        }
    }
    let std = s2
        .iter()
        .map(|v| match (v / per_group).sqrt() {
            d if d > 0.0 => d as f32,
            _ => 1.0,
        })
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

/// `v = (v − mean[g]) / std[g]` for every value of group `g` (the layout of
/// [`group_moments`]).
fn normalize_groups(x: &mut [f32], mean: &[f32], std: &[f32], plane: usize) {
    let plane = plane.max(1);
    for sample in x.chunks_mut(mean.len().max(1) * plane) {
        for (p, (m, s)) in sample.chunks_mut(plane).zip(mean.iter().zip(std)) {
            p.iter_mut().for_each(|v| *v = (*v - m) / s);
        }
    }
}

/// `x' = (x − mean[c]) / std[c]` for each channel `c` of `[N, C, …]`
/// samples (torchvision's `Normalize`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelNorm {
    /// Each channel's mean.
    pub mean: Vec<f32>,
    /// Each channel's standard deviation.
    pub std: Vec<f32>,
}

/// How to normalize the channels of images.
#[derive(Clone, Debug, PartialEq)]
pub enum Normalize {
    /// With each channel's mean and deviation over the training set.
    Fit,
    /// With these.
    Given(ChannelNorm),
}

impl std::str::FromStr for Normalize {
    type Err = Error;

    /// `auto`, or `MEANS/STDS` as comma lists (`0.5,0.5,0.5/0.25,0.25,0.25`).
    fn from_str(s: &str) -> Result<Normalize> {
        if s.trim() == "auto" {
            return Ok(Normalize::Fit);
        }
        let list = |t: &str| -> Option<Vec<f32>> {
            t.split(',')
                .map(|v| v.trim().parse::<f32>().ok().filter(|v| v.is_finite()))
                .collect()
        };
        let bad = || {
            Error::invalid(
                crate::Setting::Normalize,
                s,
                "write auto, or the channels' means and deviations as MEANS/STDS, e.g. 0.49,0.48,0.45/0.25,0.24,0.26",
            )
        };
        let (m, d) = s.split_once('/').ok_or_else(bad)?;
        let (mean, std) = (list(m).ok_or_else(bad)?, list(d).ok_or_else(bad)?);
        if mean.len() != std.len() || std.iter().any(|&v| v <= 0.0) {
            return Err(bad());
        }
        Ok(Normalize::Given(ChannelNorm { mean, std }))
    }
}

impl ChannelNorm {
    /// Each channel's mean and population deviation over `x: [N, C, …]`
    /// (1 where a channel is constant), summed in f64.
    pub fn fit(x: &Tensor) -> ChannelNorm {
        let c = x.shape().get(1).copied().unwrap_or(1);
        let plane = x.shape().get(2..).map_or(1, |r| r.iter().product());
        let (mean, std) = group_moments(x.data(), c, plane);
        ChannelNorm { mean, std }
    }

    /// Normalize `x: [N, C, …]` in place; `source` names the data when its
    /// channels are not the ones fitted.
    pub fn apply(&self, x: &mut Tensor, source: &Path) -> Result<()> {
        let c = x.shape().get(1).copied().unwrap_or(0);
        if c != self.mean.len() || x.shape().len() < 3 {
            return Err(Error::data(
                source,
                format!(
                    "has samples of shape {:?}, but the normalization is for images of {} channels",
                    &x.shape()[1..],
                    self.mean.len()
                ),
            ));
        }
        let plane = x.shape()[2..].iter().product::<usize>();
        normalize_groups(x.data_mut(), &self.mean, &self.std, plane);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardize_matches_the_population_deviation_and_keeps_constants() {
        let mut x = Tensor::from_vec(vec![4, 2], vec![1., 5., 2., 5., 3., 5., 4., 5.]);
        let s = Standardize::fit(&x);
        assert_eq!(s.mean, vec![2.5, 5.0]);
        assert!((s.std[0] - 1.118034).abs() < 1e-6);
        assert_eq!(s.std[1], 1.0);
        s.apply(&mut x, Path::new("m")).unwrap();
        assert!((x.data()[0] + 1.3416408).abs() < 1e-6);
        assert_eq!(x.data()[1], 0.0);
        let mut wrong = Tensor::zeros(&[1, 3]);
        let e = s
            .apply(&mut wrong, Path::new("t.csv"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.csv") && e.contains("3 features") && e.contains("2"),
            "{e}"
        );
    }

    #[test]
    fn channel_norm_fits_each_channel_and_parses() {
        let mut x = Tensor::from_vec(vec![2, 2, 1, 2], vec![0., 2., 5., 5., 4., 6., 5., 5.]);
        let n = ChannelNorm::fit(&x);
        assert_eq!(n.mean, vec![3.0, 5.0]);
        assert!((n.std[0] - 5f32.sqrt()).abs() < 1e-6 && n.std[1] == 1.0);
        n.apply(&mut x, Path::new("m")).unwrap();
        assert_eq!(&x.data()[2..4], &[0.0, 0.0]);
        assert_eq!("auto".parse::<Normalize>().unwrap(), Normalize::Fit);
        let g: Normalize = "0.5,0.4/0.2,0.1".parse().unwrap();
        assert_eq!(
            g,
            Normalize::Given(ChannelNorm {
                mean: vec![0.5, 0.4],
                std: vec![0.2, 0.1]
            })
        );
        assert!("0.5/0".parse::<Normalize>().is_err() && "0.5".parse::<Normalize>().is_err());
    }

    #[test]
    fn info_round_trips_as_json() {
        let i = DataInfo {
            classes: vec!["cat".into(), "dog".into()],
            image: Some([3, 32, 32]),
            ..Default::default()
        };
        let back = DataInfo::from_json(&i.to_json(), Path::new("m")).unwrap();
        assert_eq!(back, i);
        assert_eq!(
            (i.class_name(1), i.class_name(5)),
            ("dog".into(), "5".into())
        );
        assert!(DataInfo::from_json("{", Path::new("m.safetensors"))
            .unwrap_err()
            .to_string()
            .contains("m.safetensors"));
    }
}
