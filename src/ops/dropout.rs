//! Dropout (inverted, as PyTorch's `nn.Dropout`).
//!
//! In training each element is kept with probability `1 − p` and scaled by
//! `1/(1 − p)`, so the expected value of every output equals its input; the
//! rest are zeroed. Each sample (row of axis 0) draws its own mask, from
//! `ChaCha8Rng::seed_from_u64(seed ^ mix(index))` with `index` the sample's
//! index in the batch (in the global batch, for a shard of a data-parallel
//! run: `first_row` + its row), one `f32` in `[0, 1)` per element in
//! row-major order (kept when `u < 1−p`): the same seed gives the same mask
//! (gradient checkpointing recomputes a layer and must draw the same one),
//! and a sample's mask does not depend on which process holds it.
//!
//! - `p = 0`, or evaluation: the identity (the input node itself is returned).
//! - `p = 1`: every output is zero, and so is every gradient (as PyTorch).
//!
//! # Shapes
//! `x: any` → `y` shaped as `x`.
//!
//! Backward: `∂x = g · mask · 1/(1−p)`, with the mask saved as a bitset
//! (one bit per element) and the scale as one number.

use crate::autograd::{Backward, Op};
use crate::{Graph, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The keep mask, one bit per element (bit `i % 64` of word `i / 64`):
/// element `i` is kept when the `i`-th `rng.random::<f32>()` is below `1 − p`.
///
/// `random::<f32>()` is `(u >> 8)·2⁻²⁴` for the next `u32` `u`, so the test
/// is done on the integers, `u >> 8 < ⌈(1−p)·2²⁴⌉` (exact), with the words
/// drawn 64 at a time: the same mask, several times faster.
fn draw_mask(rows: usize, per_row: usize, p: f32, seed: u64, first_row: usize) -> Vec<u64> {
    let keep = 1.0 - p;
    let threshold = (keep * 16_777_216.0).ceil() as u32;
    let n = rows * per_row;
    let mut buf = [0u32; 64];
    let mut bits = vec![0u64; n.div_ceil(64)];
    for r in 0..rows {
        let index = (first_row + r) as u64;
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed ^ (index + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let mut at = r * per_row;
        let end = at + per_row;
        while at < end {
            let len = (end - at).min(64);
            let buf = &mut buf[..len];
            rng.fill(buf);
            for &u in buf.iter() {
                bits[at / 64] |= (((u >> 8) < threshold) as u64) << (at % 64);
                at += 1;
            }
        }
    }
    bits
}

/// `out[i] = src[i]·scale` where the mask bit is set, else `src[i]·0`.
fn apply_mask(src: &[f32], bits: &[u64], scale: f32, out: &mut [f32]) {
    for ((o, s), &word) in out.chunks_mut(64).zip(src.chunks(64)).zip(bits) {
        let mut lane = [0f32; 64];
        for (b, l) in lane.iter_mut().enumerate() {
            *l = if (word >> b) & 1 != 0 { scale } else { 0.0 };
        }
        for ((o, &v), &m) in o.iter_mut().zip(s).zip(&lane) {
            *o = v * m;
        }
    }
}

struct DropoutBack {
    /// Which elements were kept.
    mask: Vec<u64>,
    /// `1/(1−p)`.
    scale: f32,
}

impl Backward for DropoutBack {
    fn backward(
        &self,
        g: &Tensor,
        _inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let mut gx = g.zeros_like();
        apply_mask(g.data(), &self.mask, self.scale, gx.data_mut());
        vec![Some(gx)]
    }
}

impl Graph {
    /// Dropout with drop probability `p`, mask drawn from `seed` (see the
    /// [module docs](self)). Panics unless `0 ≤ p ≤ 1`.
    pub fn dropout(&mut self, x: Var, p: f32, training: bool, seed: u64) -> Var {
        self.dropout_from(x, p, training, seed, 0)
    }

    /// [`Graph::dropout`] on rows `first_row..` of a larger batch: each
    /// row's mask is the one that row would draw in the whole batch.
    pub fn dropout_from(
        &mut self,
        x: Var,
        p: f32,
        training: bool,
        seed: u64,
        first_row: usize,
    ) -> Var {
        self.dropout_units(x, p, training, seed, first_row, 1)
    }

    /// Channel dropout (`nn.Dropout2d`): for `x: [N, C, …]`, each sample's
    /// channel is zeroed whole with probability `p` (the rest scaled by
    /// `1/(1−p)`), one draw per channel (the masks of [`Graph::dropout`] on
    /// a `[N, C]` tensor, so the same seed picks the same channels).
    /// Panics unless `0 ≤ p ≤ 1`.
    ///
    /// ```
    /// use backprop::{Graph, Tensor};
    /// let mut g = Graph::new();
    /// let x = g.input(Tensor::full(&[4, 8, 3, 3], 1.0));
    /// let y = g.dropout2d(x, 0.5, true, 7, 0);
    /// for plane in g.value(y).data().chunks(9) {
    ///     assert!(plane.iter().all(|&v| v == plane[0]) && (plane[0] == 0.0 || plane[0] == 2.0));
    /// }
    /// ```
    pub fn dropout2d(
        &mut self,
        x: Var,
        p: f32,
        training: bool,
        seed: u64,
        first_row: usize,
    ) -> Var {
        let s = self.shape(x);
        let unit = s.get(2..).map_or(1, |r| r.iter().product::<usize>()).max(1);
        self.dropout_units(x, p, training, seed, first_row, unit)
    }

    /// Dropout of units of `unit` consecutive elements (1: elements; a
    /// channel's plane: whole channels), one draw per unit, each row of
    /// axis 0 with its own generator.
    fn dropout_units(
        &mut self,
        x: Var,
        p: f32,
        training: bool,
        seed: u64,
        first_row: usize,
        unit: usize,
    ) -> Var {
        assert!(
            (0.0..=1.0).contains(&p),
            "dropout: probability has to be between 0 and 1, but got {p}"
        );
        if !training || p == 0.0 {
            return x;
        }
        let xv = self.value(x);
        let n = xv.numel();
        let (mask, scale) = if p == 1.0 {
            (vec![0u64; n.div_ceil(64)], 0.0)
        } else {
            // As PyTorch: the scale in double, then applied in f32.
            let rows = xv.shape().first().copied().unwrap_or(1).max(1);
            let units = draw_mask(rows, n / rows / unit, p, seed, first_row);
            (spread(units, n, unit), (1.0 / (1.0 - p as f64)) as f32)
        };
        let mut y = xv.zeros_like();
        apply_mask(xv.data(), &mask, scale, y.data_mut());
        self.push(Op::Dropout, y, &[x], DropoutBack { mask, scale })
    }
}

/// A mask of one bit per unit as one bit per element (`unit` each); the
/// mask itself when `unit` is 1.
fn spread(units: Vec<u64>, n: usize, unit: usize) -> Vec<u64> {
    if unit == 1 {
        return units;
    }
    let mut mask = vec![0u64; n.div_ceil(64)];
    for u in 0..n / unit {
        if (units[u / 64] >> (u % 64)) & 1 != 0 {
            for i in u * unit..(u + 1) * unit {
                mask[i / 64] |= 1 << (i % 64);
            }
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::{Graph, Tensor};

    fn run(x: &Tensor, p: f32, training: bool, seed: u64) -> (Tensor, Tensor) {
        let mut g = Graph::new();
        let xv = g.param(x.clone());
        let y = g.dropout(xv, p, training, seed);
        let l = g.sum(y);
        let grads = g.backward(l);
        (g.value(y).clone(), grads.get(xv).unwrap().clone())
    }

    #[test]
    fn same_seed_same_mask_other_seed_other_mask() {
        let x = Tensor::full(&[1000], 1.0);
        let (a, _) = run(&x, 0.5, true, 42);
        let (b, _) = run(&x, 0.5, true, 42);
        let (c, _) = run(&x, 0.5, true, 43);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn mask_is_random_f32_below_one_minus_p_per_row() {
        use rand::{Rng, SeedableRng};
        for (rows, per_row, p, seed, first) in [
            (1usize, 1000usize, 0.3f32, 1u64, 0usize),
            (3, 130, 0.5, 2, 5),
            (2, 64, 0.9, 3, 0),
            (7, 1, 0.01, 4, 9),
        ] {
            let bits = super::draw_mask(rows, per_row, p, seed, first);
            for r in 0..rows {
                let k = (first + r + 1) as u64;
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                    seed ^ k.wrapping_mul(0xD6E8_FEB8_6659_FD93),
                );
                for j in 0..per_row {
                    let i = r * per_row + j;
                    let kept = rng.random::<f32>() < 1.0 - p;
                    assert_eq!(kept, (bits[i / 64] >> (i % 64)) & 1 == 1, "row {r} {j}");
                }
            }
        }
    }

    #[test]
    fn a_shard_draws_the_masks_of_its_rows_in_the_whole_batch() {
        let x = pseudo_random(&[10, 7], 5);
        let mut g = Graph::new();
        let xv = g.input(x.clone());
        let whole = g.dropout(xv, 0.5, true, 11);
        let shard = g.input(x.gather_rows(&[6, 7, 8, 9]));
        let part = g.dropout_from(shard, 0.5, true, 11, 6);
        assert_eq!(g.value(whole).data()[42..], g.value(part).data()[..]);
    }

    #[test]
    fn kept_fraction_and_mean_follow_p() {
        let n = 200_000;
        let x = Tensor::full(&[n / 100, 100], 1.0);
        for p in [0.1f32, 0.3, 0.5, 0.9] {
            let (y, _) = run(&x, p, true, 7);
            let kept = y.data().iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
            // std of the fraction ≤ √(0.25/n) ≈ 0.0011.
            assert!(
                (kept - (1.0 - p as f64)).abs() < 0.008,
                "p={p}: kept {kept}"
            );
            let scale = 1.0 / (1.0 - p);
            assert!(y.data().iter().all(|&v| v == 0.0 || v == scale));
            // Inverted dropout keeps the mean: E[y] = x.
            let mean = y.sum_all() / n as f64;
            // Var(y) = p/(1−p): allow six standard deviations of the mean.
            let tol = 6.0 * (p as f64 / (1.0 - p as f64) / n as f64).sqrt();
            assert!((mean - 1.0).abs() < tol, "p={p}: mean {mean}");
        }
    }

    #[test]
    fn gradient_is_mask_times_scale() {
        // x = 1: the output is mask·scale, and so must be the gradient of Σy.
        let x = Tensor::full(&[7, 13], 1.0);
        let (y, gx) = run(&x, 0.4, true, 3);
        assert_eq!(y, gx);
        assert!(y.data().contains(&0.0) && y.data().iter().any(|&v| v != 0.0));
        // Finite differences with a fixed seed (the mask is fixed, the op linear).
        check("dropout", &[pseudo_random(&[5, 11], 1)], |g, v| {
            g.dropout(v[0], 0.3, true, 99)
        });
        // Fan-out: x kept and dropped.
        check("dropout fan-out", &[pseudo_random(&[70], 2)], |g, v| {
            let d = g.dropout(v[0], 0.5, true, 5);
            g.mul(d, v[0])
        });
    }

    #[test]
    fn eval_and_p_zero_are_identity() {
        let x = pseudo_random(&[4, 9], 1);
        let mut g = Graph::new();
        let xv = g.param(x.clone());
        assert_eq!(g.dropout(xv, 0.5, false, 1), xv);
        assert_eq!(g.dropout(xv, 0.0, true, 1), xv);
        let (y, gx) = run(&x, 0.5, false, 1);
        assert_eq!(y, x);
        assert_eq!(gx, Tensor::full(&[4, 9], 1.0));
    }

    #[test]
    fn p_one_zeroes_everything() {
        let x = pseudo_random(&[3, 5], 1);
        let (y, gx) = run(&x, 1.0, true, 1);
        assert!(y.data().iter().all(|&v| v == 0.0));
        assert!(gx.data().iter().all(|&v| v == 0.0));
    }

    #[test]
    #[should_panic(expected = "between 0 and 1")]
    fn p_out_of_range_panics() {
        let mut g = Graph::new();
        let x = g.input(Tensor::zeros(&[2]));
        g.dropout(x, 1.5, true, 0);
    }
}
