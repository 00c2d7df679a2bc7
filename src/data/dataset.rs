//! The [`Dataset`] trait: what the trainer, the evaluation and the
//! [`Loader`](super::Loader) read samples through. The built-in sets
//! ([`TensorDataset`]: IDX, CSV, CIFAR, NumPy arrays; [`ImageFolder`](super::ImageFolder))
//! implement it; a user's own data is one `impl`.

use super::{DataInfo, Fnv, Targets, TensorDataset};
use crate::error::Result;
use crate::Tensor;
use std::path::Path;

/// A data set: samples of one shape, each with a target.
///
/// Only [`Dataset::len`], [`Dataset::sample_shape`], [`Dataset::targets`],
/// [`Dataset::features`] and [`Dataset::source`] must be written. The
/// features may be read from memory or decoded from files on each call
/// (the [`Loader`](super::Loader) calls it on a background thread, hence
/// `Sync`).
///
/// ```
/// use backprop::data::{Dataset, Targets};
/// use backprop::{Result, Tensor};
/// use std::path::Path;
///
/// /// y = 2x, for x = 0, 1, …, n − 1.
/// struct Doubles { targets: Targets }
///
/// impl Dataset for Doubles {
///     fn len(&self) -> usize { self.targets.len() }
///     fn sample_shape(&self) -> &[usize] { &[1] }
///     fn targets(&self) -> &Targets { &self.targets }
///     fn features(&self, idx: &[usize]) -> Result<Tensor> {
///         Ok(Tensor::from_vec(vec![idx.len(), 1], idx.iter().map(|&i| i as f32).collect()))
///     }
///     fn source(&self) -> &Path { Path::new("doubles") }
/// }
///
/// let n = 8;
/// let t = Tensor::from_vec(vec![n, 1], (0..n).map(|i| 2.0 * i as f32).collect());
/// let d = Doubles { targets: Targets::Values(t) };
/// let (x, y) = d.batch(&[3, 5]).unwrap();
/// assert_eq!((x.data(), y.values().unwrap().data()), (&[3.0, 5.0][..], &[6.0, 10.0][..]));
/// ```
pub trait Dataset: Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// True when the data set holds no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of one sample's features, e.g. `[1, 28, 28]` or `[F]`.
    fn sample_shape(&self) -> &[usize];

    /// Every sample's target, in order (known without reading the features).
    fn targets(&self) -> &Targets;

    /// The features of the samples at `idx`, in that order:
    /// `[idx.len(), ..sample_shape]`. Errors name the file that could not
    /// be read.
    fn features(&self, idx: &[usize]) -> Result<Tensor>;

    /// Where the data came from (a file or folder), for messages.
    fn source(&self) -> &Path;

    /// Class names, columns, preprocessing to save with a model.
    fn info(&self) -> DataInfo {
        DataInfo::default()
    }

    /// Whether a batch is a copy from memory: then the
    /// [`Loader`](super::Loader) gathers it on the training thread (with the
    /// kernels' threads), as handing it over from a background thread would
    /// cost more than the copy.
    fn in_memory(&self) -> bool {
        false
    }

    /// The features and targets of the samples at `idx`.
    fn batch(&self, idx: &[usize]) -> Result<(Tensor, Targets)> {
        Ok((self.features(idx)?, self.targets().gather(idx)))
    }

    /// A 64-bit digest that tells whether a resumed run sees the data it
    /// was saved with. By default: the length, the sample shape and every
    /// target ([`TensorDataset`] also digests every feature).
    fn fingerprint(&self) -> u64 {
        let mut f = Fnv::new();
        f.word(self.len() as u64);
        for &d in self.sample_shape() {
            f.word(d as u64);
        }
        self.targets().digest(|v| f.word(v));
        f.finish()
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.y.len()
    }

    fn sample_shape(&self) -> &[usize] {
        &self.x.shape()[1..]
    }

    fn targets(&self) -> &Targets {
        &self.y
    }

    fn features(&self, idx: &[usize]) -> Result<Tensor> {
        Ok(self.x.gather_rows(idx))
    }

    fn source(&self) -> &Path {
        &self.source
    }

    fn info(&self) -> DataInfo {
        self.info.clone()
    }

    fn in_memory(&self) -> bool {
        true
    }

    fn fingerprint(&self) -> u64 {
        TensorDataset::fingerprint(self)
    }
}

/// A boxed data set is one (what [`open`](super::open) returns).
impl<T: Dataset + ?Sized> Dataset for Box<T> {
    fn len(&self) -> usize {
        (**self).len()
    }

    fn sample_shape(&self) -> &[usize] {
        (**self).sample_shape()
    }

    fn targets(&self) -> &Targets {
        (**self).targets()
    }

    fn features(&self, idx: &[usize]) -> Result<Tensor> {
        (**self).features(idx)
    }

    fn source(&self) -> &Path {
        (**self).source()
    }

    fn info(&self) -> DataInfo {
        (**self).info()
    }

    fn in_memory(&self) -> bool {
        (**self).in_memory()
    }

    fn batch(&self, idx: &[usize]) -> Result<(Tensor, Targets)> {
        (**self).batch(idx)
    }

    fn fingerprint(&self) -> u64 {
        (**self).fingerprint()
    }
}
