//! A seeded random split of a data set (`torch.utils.data.random_split`).

use super::TensorDataset;
use crate::error::{Error, Result};
use crate::Setting;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Split `data` at random into `(rest, held out)`, the held-out part being
/// `fraction` of the samples (rounded, at least 1, and leaving at least 1).
/// The permutation is drawn from a generator seeded with `seed`, so the same
/// seed gives the same split; both parts keep the permutation's order.
///
/// ```
/// use backprop::{data::{random_split, TensorDataset}, Tensor};
/// let d = TensorDataset::new(Tensor::zeros(&[10, 1]), vec![0; 10], "mem");
/// let (train, test) = random_split(&d, 0.2, 7).unwrap();
/// assert_eq!((train.len(), test.len()), (8, 2));
/// ```
pub fn random_split(
    data: &TensorDataset,
    fraction: f64,
    seed: u64,
) -> Result<(TensorDataset, TensorDataset)> {
    let (train, test) = split_indices(data.len(), fraction, seed, &data.source)?;
    Ok((data.subset(&train), data.subset(&test)))
}

/// The indices of a [`random_split`] of `n` samples: `(rest, held out)`,
/// both in the permutation's order; `source` names the data when there
/// are too few samples. Every data set's split draws it.
pub(crate) fn split_indices(
    n: usize,
    fraction: f64,
    seed: u64,
    source: &std::path::Path,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::invalid(
            Setting::TestSplit,
            fraction,
            "the held-out fraction must be between 0 and 1, e.g. 0.2",
        ));
    }
    if n < 2 {
        return Err(Error::data(
            source,
            format!("holds {n} sample(s): too few to split into training and test samples"),
        ));
    }
    let held = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let rest = idx.split_off(held); // the first `held` are held out
    Ok((rest, idx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let x = Tensor::from_vec(vec![50, 1], (0..50).map(|v| v as f32).collect());
        let d = TensorDataset::new(x, (0..50).collect::<Vec<_>>(), "mem");
        let (a, b) = random_split(&d, 0.3, 1).unwrap();
        assert_eq!((a.len(), b.len()), (35, 15));
        let (a2, _) = random_split(&d, 0.3, 1).unwrap();
        assert_eq!(a.y, a2.y);
        let (a3, _) = random_split(&d, 0.3, 2).unwrap();
        assert_ne!(a.y, a3.y);
        let mut all: Vec<usize> = [a.labels().unwrap(), b.labels().unwrap()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        // features travel with their targets
        for (i, &y) in a.labels().unwrap().iter().enumerate() {
            assert_eq!(a.x.data()[i], y as f32);
        }
        assert!(random_split(&d, 1.0, 0).is_err());
        let one = TensorDataset::new(Tensor::zeros(&[1, 1]), vec![0], "one.csv");
        assert!(random_split(&one, 0.5, 0)
            .unwrap_err()
            .to_string()
            .contains("one.csv"));
    }
}
