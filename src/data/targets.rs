//! What a data set asks the model to produce for each sample: a class index
//! (single-label classification) or a row of floats (regression values, or
//! the 0/1 labels of a multi-label task).

use crate::Tensor;
use serde::{Deserialize, Serialize};

/// What a model is trained to do: told by the targets and the loss
/// (`Task::of`, in `train::task`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Task {
    /// One class per sample, scored by accuracy.
    #[cfg_attr(feature = "cli", value(alias = "classify"))]
    #[default]
    Classification,
    /// Float targets, scored by MAE, RMSE and R².
    #[cfg_attr(feature = "cli", value(alias = "regress"))]
    Regression,
    /// Several yes/no labels per sample, scored by precision, recall and F1.
    MultiLabel,
}

impl Task {
    /// The name in messages and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
            Task::MultiLabel => "multi-label",
        }
    }
}

/// The targets of a data set or of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// One class index per sample (`nn.CrossEntropyLoss`'s targets).
    Classes(Vec<usize>),
    /// `[N, K]` floats: K regression values per sample, or K labels of 0
    /// and 1 for a multi-label task (`nn.MSELoss`'s, `nn.BCEWithLogitsLoss`'s
    /// targets).
    Values(Tensor),
}

impl Targets {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(y) => y.len(),
            Targets::Values(t) => t.shape()[0],
        }
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class indices, if these are classes.
    pub fn classes(&self) -> Option<&[usize]> {
        match self {
            Targets::Classes(y) => Some(y),
            Targets::Values(_) => None,
        }
    }

    /// The `[N, K]` values, if these are values.
    pub fn values(&self) -> Option<&Tensor> {
        match self {
            Targets::Classes(_) => None,
            Targets::Values(t) => Some(t),
        }
    }

    /// Values per sample: 1 for classes, K for `[N, K]` values.
    pub fn width(&self) -> usize {
        match self {
            Targets::Classes(_) => 1,
            Targets::Values(t) => t.shape()[1],
        }
    }

    /// The targets of the samples at `idx`, in that order. Panics if an
    /// index is out of range.
    pub fn gather(&self, idx: &[usize]) -> Targets {
        match self {
            Targets::Classes(y) => Targets::Classes(idx.iter().map(|&i| y[i]).collect()),
            Targets::Values(t) => Targets::Values(t.gather_rows(idx)),
        }
    }

    /// Samples `lo..hi`.
    pub fn range(&self, lo: usize, hi: usize) -> Targets {
        match self {
            Targets::Classes(y) => Targets::Classes(y[lo..hi].to_vec()),
            Targets::Values(_) => self.gather(&(lo..hi).collect::<Vec<_>>()),
        }
    }

    /// Mix every target into a digest (see `TensorDataset::fingerprint`).
    pub(crate) fn digest(&self, mut mix: impl FnMut(u64)) {
        match self {
            Targets::Classes(y) => y.iter().for_each(|&c| mix(c as u64)),
            Targets::Values(t) => {
                mix(u64::MAX); // values never digest like classes
                t.shape().iter().for_each(|&d| mix(d as u64));
                t.data().iter().for_each(|v| mix(v.to_bits() as u64));
            }
        }
    }
}

/// Class targets equal a list of the same classes (`d.y == vec![3, 1]`).
impl PartialEq<Vec<usize>> for Targets {
    fn eq(&self, other: &Vec<usize>) -> bool {
        self.classes() == Some(other.as_slice())
    }
}

impl From<Vec<usize>> for Targets {
    fn from(y: Vec<usize>) -> Targets {
        Targets::Classes(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_and_range_pick_rows_of_either_kind() {
        let c = Targets::Classes(vec![3, 1, 4]);
        assert_eq!(c.gather(&[2, 0]), Targets::Classes(vec![4, 3]));
        assert_eq!(c.range(1, 3), Targets::Classes(vec![1, 4]));
        assert_eq!((c.len(), c.width()), (3, 1));
        let v = Targets::Values(Tensor::from_vec(vec![3, 2], vec![0., 1., 2., 3., 4., 5.]));
        assert_eq!(
            v.gather(&[2, 0]).values().unwrap().data(),
            &[4., 5., 0., 1.]
        );
        assert_eq!(v.range(1, 2).values().unwrap().data(), &[2., 3.]);
        assert_eq!((v.len(), v.width()), (3, 2));
        assert!(v.classes().is_none() && c.values().is_none());
    }
}
