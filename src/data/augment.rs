//! Random augmentations of training images, torchvision's: a crop after
//! zero padding, a horizontal flip, an affine shift and rotation. Each is
//! applied to one sample `[C, H, W]` with a generator seeded from the run's
//! seed, the epoch and the sample's index ([`sample_rng`]), so a sample is
//! changed the same way whichever thread prepares it, and differently in
//! each epoch.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One random change of a training image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// `RandomCrop(size, padding)`: pad every side with `padding` zeros,
    /// then cut a random window of the image's own size.
    Crop {
        /// Zeros added on each side.
        padding: usize,
    },
    /// `RandomHorizontalFlip(0.5)`: mirror left to right half the time.
    Flip,
    /// `RandomAffine(degrees, translate=(t, t))`: rotate by a uniform angle
    /// in `[-degrees, degrees]` about the centre and shift by up to `t` of
    /// the width and height, nearest-neighbour, zeros outside.
    Affine {
        /// The largest rotation, in degrees.
        degrees: f32,
        /// The largest shift, as a fraction of the side.
        translate: f32,
    },
}

/// Read a list of augmentations, comma-separated: `crop:4` (padding 4),
/// `flip`, `affine:15:0.1` (±15°, shifts up to a tenth of the side).
///
/// ```
/// use backprop::data::{parse_augments, Augment};
/// let a = parse_augments("crop:4, flip").unwrap();
/// assert_eq!(a, vec![Augment::Crop { padding: 4 }, Augment::Flip]);
/// assert!(parse_augments("blur").is_err());
/// ```
pub fn parse_augments(s: &str) -> crate::Result<Vec<Augment>> {
    let bad = |item: &str, why: &str| {
        crate::Error::invalid(
            crate::Setting::Augment,
            item.to_string(),
            format!("{why}; write e.g. crop:4,flip,affine:15:0.1"),
        )
    };
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parts: Vec<&str> = item.split(':').collect();
        let num = |i: usize| -> crate::Result<f32> {
            let v: f32 = parts[i]
                .parse()
                .map_err(|_| bad(item, &format!("{:?} is not a number", parts[i])))?;
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(bad(item, "the numbers must be finite and at least 0"))
            }
        };
        out.push(match (parts[0], parts.len()) {
            ("flip", 1) => Augment::Flip,
            ("crop", 2) => Augment::Crop {
                padding: num(1)? as usize,
            },
            ("affine", 3) => Augment::Affine {
                degrees: num(1)?,
                translate: num(2)?,
            },
            ("flip" | "crop" | "affine", _) => {
                return Err(bad(item, "flip takes no numbers, crop one, affine two"))
            }
            _ => return Err(bad(item, "the augmentations are crop, flip and affine")),
        });
    }
    Ok(out)
}

/// The generator of sample `index` in epoch `epoch` of a run seeded `seed`.
pub fn sample_rng(seed: u64, epoch: usize, index: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x6175_676d_656e_7400);
    r.set_stream(((epoch as u64) << 40) ^ index as u64);
    r
}

impl Augment {
    /// Change `x` (one sample of `shape` `[C, H, W]`) in place.
    pub fn apply(&self, x: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) {
        let [c, h, w] = match *shape {
            [c, h, w] => [c, h, w],
            [h, w] => [1, h, w],
            _ => return, // not an image: nothing to do
        };
        match *self {
            Augment::Crop { padding } => {
                let p = padding as i64;
                let (dy, dx) = (rng.random_range(-p..=p), rng.random_range(-p..=p));
                remap(x, [c, h, w], |y, xx| {
                    Some((y as f32 + dy as f32, xx as f32 + dx as f32))
                });
            }
            Augment::Flip => {
                if rng.random::<f32>() < 0.5 {
                    for row in x.chunks_mut(w) {
                        row.reverse();
                    }
                }
            }
            Augment::Affine { degrees, translate } => {
                let a = rng
                    .random_range(-degrees..=degrees.max(f32::MIN_POSITIVE))
                    .to_radians();
                let tx = (rng.random_range(-1.0..=1.0f32) * translate * w as f32).round();
                let ty = (rng.random_range(-1.0..=1.0f32) * translate * h as f32).round();
                let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
                let (s, co) = a.sin_cos();
                // Each output pixel reads the input at the inverse map.
                remap(x, [c, h, w], |y, xx| {
                    let (yy, xr) = (y as f32 - cy - ty, xx as f32 - cx - tx);
                    Some((co * yy - s * xr + cy, s * yy + co * xr + cx))
                });
            }
        }
    }
}

/// `x[c, y, x] = x_old[c, round(src(y, x))]`, zero outside the image.
fn remap(x: &mut [f32], [c, h, w]: [usize; 3], src: impl Fn(usize, usize) -> Option<(f32, f32)>) {
    let old = x.to_vec();
    for y in 0..h {
        for xx in 0..w {
            let from = src(y, xx).and_then(|(sy, sx)| {
                let (sy, sx) = (sy.round(), sx.round());
                (sy >= 0.0 && sx >= 0.0 && (sy as usize) < h && (sx as usize) < w)
                    .then(|| sy as usize * w + sx as usize)
            });
            for ch in 0..c {
                x[ch * h * w + y * w + xx] = from.map_or(0.0, |f| old[ch * h * w + f]);
            }
        }
    }
}

/// Apply `augs` in order to every sample of a batch `x: [N, ..sample]`,
/// sample `i` with the generator of data index `idx[i]`.
pub fn augment_batch(
    augs: &[Augment],
    x: &mut crate::Tensor,
    idx: &[usize],
    seed: u64,
    epoch: usize,
) {
    if augs.is_empty() {
        return;
    }
    let shape = x.shape()[1..].to_vec();
    let per: usize = shape.iter().product();
    for (s, &i) in x.data_mut().chunks_mut(per.max(1)).zip(idx) {
        let mut rng = sample_rng(seed, epoch, i);
        for a in augs {
            a.apply(s, &shape, &mut rng);
        }
    }
}

/// What the augmentation makes of `samples` training images (spread over
/// the data set): one row per image, the image itself, then as epochs
/// `0..epochs` of a run seeded `seed` augment it. For the page's grid.
pub fn preview(
    data: &dyn super::Dataset,
    augs: &[Augment],
    seed: u64,
    samples: usize,
    epochs: usize,
) -> crate::Result<Vec<Vec<Vec<f32>>>> {
    let n = data.len();
    let idx: Vec<usize> = (0..samples.min(n))
        .map(|i| i * n / samples.min(n).max(1))
        .collect();
    let plain = data.features(&idx)?;
    let mut rows: Vec<Vec<Vec<f32>>> = (0..idx.len())
        .map(|i| vec![plain.rows(i, i + 1).data().to_vec()])
        .collect();
    for e in 0..epochs {
        let mut x = plain.clone();
        augment_batch(augs, &mut x, &idx, seed, e);
        for (i, row) in rows.iter_mut().enumerate() {
            row.push(x.rows(i, i + 1).data().to_vec());
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(c: usize, h: usize, w: usize) -> Vec<f32> {
        (0..c * h * w).map(|v| v as f32 + 1.0).collect()
    }

    #[test]
    fn a_crop_shifts_the_image_and_fills_zeros() {
        let shape = [1, 4, 4];
        for seed in 0..20 {
            let mut x = ramp(1, 4, 4);
            Augment::Crop { padding: 1 }.apply(&mut x, &shape, &mut sample_rng(seed, 0, 0));
            let zeros = x.iter().filter(|&&v| v == 0.0).count();
            assert!([0, 3, 4, 7].contains(&zeros), "{x:?}");
            // what is left is a shifted window of the ramp: rows differ by 4
            let kept: Vec<f32> = x.iter().copied().filter(|&v| v > 0.0).collect();
            assert!(kept.windows(2).all(|p| p[1] > p[0]));
        }
    }

    #[test]
    fn a_flip_mirrors_rows_and_is_seeded_per_sample_and_epoch() {
        let shape = [2, 2, 3];
        let mut flipped = 0;
        for i in 0..40 {
            let mut x = ramp(2, 2, 3);
            Augment::Flip.apply(&mut x, &shape, &mut sample_rng(7, 1, i));
            if x[0] == 3.0 {
                flipped += 1;
                assert_eq!(x, vec![3., 2., 1., 6., 5., 4., 9., 8., 7., 12., 11., 10.]);
            } else {
                assert_eq!(x, ramp(2, 2, 3));
            }
        }
        assert!((10..30).contains(&flipped), "{flipped} of 40");
        let once = |e| {
            let mut x = crate::Tensor::from_vec(vec![8, 1, 2, 3], ramp(8, 2, 3));
            augment_batch(&[Augment::Flip], &mut x, &(0..8).collect::<Vec<_>>(), 3, e);
            x
        };
        assert_eq!(once(0).data(), once(0).data());
        assert_ne!(once(0).data(), once(1).data());
    }

    #[test]
    fn an_affine_map_without_rotation_or_shift_is_the_identity() {
        let mut x = ramp(3, 5, 5);
        let a = Augment::Affine {
            degrees: 0.0,
            translate: 0.0,
        };
        a.apply(&mut x, &[3, 5, 5], &mut sample_rng(1, 0, 0));
        assert_eq!(x, ramp(3, 5, 5));
        // a rotation keeps the centre pixel; most draws move the others
        let r = Augment::Affine {
            degrees: 90.0,
            translate: 0.0,
        };
        let mut moved = 0;
        for i in 0..10 {
            let mut x = ramp(1, 5, 5);
            r.apply(&mut x, &[1, 5, 5], &mut sample_rng(2, 0, i));
            assert_eq!(x[12], 13.0);
            moved += (x != ramp(1, 5, 5)) as usize;
        }
        assert!(moved >= 5, "{moved} of 10 moved");
    }
}
