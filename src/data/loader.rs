//! Mini-batches of a [`Dataset`], prepared ahead: a background thread
//! reads (or decodes) the next batches and augments them while the current
//! step runs, a bounded queue between the two. The batches, their order
//! and their augmentations are the same, bit for bit, with the thread or
//! without it: the order is drawn before the epoch, and each sample's
//! augmentation from its own generator ([`sample_rng`](super::sample_rng)).

use super::augment::{augment_batch, Augment};
use super::{epoch_batches, Dataset, Targets};
use crate::error::Result;
use crate::Tensor;
use rand_chacha::ChaCha8Rng;
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};

/// How an epoch's batches are drawn and prepared (PyTorch's `DataLoader`).
///
/// ```
/// use backprop::data::{Dataset, Loader, TensorDataset};
/// use backprop::Tensor;
/// use rand::SeedableRng;
/// let d = TensorDataset::new(Tensor::zeros(&[10, 2]), vec![0; 10], "mem");
/// let loader = Loader::new(&d, 4).drop_last(true).ahead(2);
/// let order = loader.order(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
/// assert_eq!(order.len(), 2); // 10 samples: two full batches, the last 2 dropped
/// let sizes = loader.prepare(&order, 0, |batches| {
///     batches.map(|b| b.map(|(x, _)| x.shape()[0])).collect::<Result<Vec<_>, _>>()
/// });
/// assert_eq!(sizes.unwrap(), vec![4, 4]);
/// ```
pub struct Loader<'d> {
    data: &'d dyn Dataset,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    augment: Vec<Augment>,
    seed: u64,
    ahead: usize,
}

impl<'d> Loader<'d> {
    /// Batches of `batch_size` samples of `data`, shuffled each epoch, the
    /// last partial batch kept, no augmentation, two batches prepared ahead
    /// on a background thread. Panics if `batch_size` is 0.
    pub fn new(data: &'d dyn Dataset, batch_size: usize) -> Loader<'d> {
        assert!(batch_size > 0, "Loader: batch_size must be at least 1");
        Loader {
            data,
            batch_size,
            shuffle: true,
            drop_last: false,
            augment: Vec::new(),
            seed: 0,
            ahead: 2,
        }
    }

    /// Shuffle the samples anew each epoch (else file order).
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// Leave out the last batch of an epoch when it is smaller.
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }

    /// Augment every training sample with these, in order, seeded by `seed`.
    pub fn augment(mut self, augs: Vec<Augment>, seed: u64) -> Self {
        self.augment = augs;
        self.seed = seed;
        self
    }

    /// Prepare up to `n` batches ahead on a background thread (0: on the
    /// calling thread, when they are asked for). Data in memory without
    /// augmentation is always gathered on the calling thread
    /// ([`Dataset::in_memory`]).
    pub fn ahead(mut self, n: usize) -> Self {
        self.ahead = n;
        self
    }

    /// An epoch's batches of indices, drawn from `rng` when shuffling.
    pub fn order(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        let mut b = epoch_batches(self.data.len(), self.batch_size, self.shuffle, rng);
        if self.drop_last && b.last().is_some_and(|l| l.len() < self.batch_size) {
            b.pop();
        }
        b
    }

    /// Run `body` over the batches of `order` (indices into the data),
    /// prepared and augmented for epoch `epoch`. When `body` returns early
    /// the background thread stops after the batch it is preparing.
    pub fn prepare<R>(
        &self,
        order: &[Vec<usize>],
        epoch: usize,
        body: impl FnOnce(&mut Batches<'_>) -> R,
    ) -> R {
        let make = |idx: &[usize]| -> Result<(Tensor, Targets)> {
            let (mut x, y) = self.data.batch(idx)?;
            augment_batch(&self.augment, &mut x, idx, self.seed, epoch);
            Ok((x, y))
        };
        let nothing_to_hide = self.data.in_memory() && self.augment.is_empty();
        if self.ahead == 0 || nothing_to_hide {
            let mut it = order.iter().map(|i| make(i));
            let mut b = Batches {
                source: Source::Here(&mut it),
                waited: Duration::ZERO,
            };
            return body(&mut b);
        }
        std::thread::scope(|s| {
            let (tx, rx) = sync_channel(self.ahead);
            // The kernels' threads stay the training thread's.
            s.spawn(move || {
                crate::cpu::team::alone(|| {
                    for idx in order {
                        let stop = tx.send(make(idx)).is_err(); // the receiver is gone
                        if stop {
                            break;
                        }
                    }
                })
            });
            let mut b = Batches {
                source: Source::Ahead(rx),
                waited: Duration::ZERO,
            };
            body(&mut b)
            // `b` (the receiver) is dropped here: a thread blocked in `send` returns.
        })
    }
}

/// Where [`Batches`] come from.
enum Source<'a> {
    Here(&'a mut dyn Iterator<Item = Result<(Tensor, Targets)>>),
    Ahead(Receiver<Result<(Tensor, Targets)>>),
}

/// The prepared batches of an epoch, in order: an iterator of
/// `(features, targets)` or the error that stopped reading.
pub struct Batches<'a> {
    source: Source<'a>,
    waited: Duration,
}

impl Batches<'_> {
    /// How long the caller has waited for batches so far (with a background
    /// thread, the time it was not ready; without one, the time spent
    /// preparing them).
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(Tensor, Targets)>;

    fn next(&mut self) -> Option<Self::Item> {
        let t0 = Instant::now();
        let item = match &mut self.source {
            Source::Here(it) => it.next(),
            Source::Ahead(rx) => rx.recv().ok(),
        };
        self.waited += t0.elapsed();
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TensorDataset;
    use rand::SeedableRng;

    fn data(n: usize) -> TensorDataset {
        let x = Tensor::from_vec(vec![n, 1, 2, 3], (0..n * 6).map(|v| v as f32).collect());
        TensorDataset::new(x, (0..n).map(|i| i % 3).collect::<Vec<_>>(), "mem")
    }

    #[test]
    fn the_background_thread_gives_the_same_batches_bit_for_bit() {
        let d = data(37);
        let augs = vec![Augment::Flip, Augment::Crop { padding: 1 }];
        let run = |ahead: usize| {
            let l = Loader::new(&d, 5).augment(augs.clone(), 9).ahead(ahead);
            let order = l.order(&mut ChaCha8Rng::seed_from_u64(4));
            l.prepare(&order, 2, |b| b.map(|r| r.unwrap()).collect::<Vec<_>>())
        };
        let (here, ahead) = (run(0), run(3));
        assert_eq!(here.len(), 8);
        for ((xa, ya), (xb, yb)) in here.iter().zip(&ahead) {
            assert_eq!(xa.data(), xb.data());
            assert_eq!(ya, yb);
        }
        // the augmentation changed something
        let plain = Loader::new(&d, 5).ahead(0);
        let order = plain.order(&mut ChaCha8Rng::seed_from_u64(4));
        let raw: Vec<Tensor> = plain.prepare(&order, 2, |b| b.map(|r| r.unwrap().0).collect());
        assert!(raw
            .iter()
            .zip(&here)
            .any(|(a, (b, _))| a.data() != b.data()));
    }

    #[test]
    fn stopping_early_stops_the_thread_and_drop_last_drops() {
        let d = data(10);
        let l = Loader::new(&d, 3)
            .shuffle(false)
            .ahead(1)
            .augment(vec![Augment::Flip], 0);
        let order = l.order(&mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(order.len(), 4);
        let first = l.prepare(&order, 0, |b| b.next().unwrap().unwrap().1);
        assert_eq!(first, vec![0, 1, 2]);
        let l = Loader::new(&d, 3).drop_last(true);
        assert_eq!(l.order(&mut ChaCha8Rng::seed_from_u64(0)).len(), 3);
    }
}
