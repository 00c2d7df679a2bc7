//! Mini-batch order for one epoch: file order, or a seeded Fisher-Yates
//! shuffle, cut into batches with the last partial batch kept.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The order of mini-batches for one epoch: indices `0..n` in file order
/// (`shuffle = false`) or a permutation drawn from `rng` (Fisher-Yates via
/// rand's `SliceRandom::shuffle`), cut into batches of `batch_size`, the last
/// partial batch kept. `n = 0` gives no batches.
///
/// Panics if `batch_size` is 0 (the caller validates the option).
///
/// ```
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let b = backprop::data::epoch_batches(10, 4, false, &mut rng);
/// assert_eq!(b, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
/// ```
pub fn epoch_batches(
    n: usize,
    batch_size: usize,
    shuffle: bool,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    assert!(
        batch_size > 0,
        "epoch_batches: batch_size must be at least 1"
    );
    let mut idx: Vec<usize> = (0..n).collect();
    if shuffle {
        idx.shuffle(rng);
    }
    idx.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    #[test]
    fn partial_last_batch_kept() {
        for shuffle in [false, true] {
            let b = epoch_batches(10, 4, shuffle, &mut rng(1));
            let sizes: Vec<usize> = b.iter().map(Vec::len).collect();
            assert_eq!(sizes, vec![4, 4, 2]);
        }
        assert_eq!(epoch_batches(8, 4, false, &mut rng(1)).len(), 2);
        assert_eq!(
            epoch_batches(3, 100, false, &mut rng(1)),
            vec![vec![0, 1, 2]]
        );
        assert!(epoch_batches(0, 4, true, &mut rng(1)).is_empty());
    }

    #[test]
    fn file_order_when_not_shuffled() {
        let flat: Vec<usize> = epoch_batches(10, 3, false, &mut rng(7)).concat();
        assert_eq!(flat, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_same_order() {
        let a = epoch_batches(1000, 32, true, &mut rng(42));
        let b = epoch_batches(1000, 32, true, &mut rng(42));
        let c = epoch_batches(1000, 32, true, &mut rng(43));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // successive epochs from one generator differ
        let mut r = rng(42);
        let e1 = epoch_batches(1000, 32, true, &mut r);
        let e2 = epoch_batches(1000, 32, true, &mut r);
        assert_eq!(e1, a);
        assert_ne!(e1, e2);
    }

    #[test]
    fn permutation_covers_every_index_once() {
        let b = epoch_batches(1001, 64, true, &mut rng(3));
        let mut flat = b.concat();
        assert_ne!(flat, (0..1001).collect::<Vec<_>>());
        flat.sort_unstable();
        assert_eq!(flat, (0..1001).collect::<Vec<_>>());
    }
}
