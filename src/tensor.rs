//! `Tensor`: an n-dimensional, row-major `f32` array that owns its data.
//!
//! There are no strides and no views: every op writes a fresh contiguous
//! buffer (or adds into one), which keeps the kernels simple and the memory
//! layout predictable. Transposes in matrix products are expressed as strides
//! handed to the matrix-product kernel instead of as copies. The loops that
//! do the work live in [`crate::cpu`].

use crate::cpu::{add_into, as_uninit, par};
use std::fmt;

/// An n-dimensional row-major `f32` array.
///
/// ```
/// use backprop::Tensor;
/// let t = Tensor::from_vec(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]);
/// assert_eq!(t.shape(), &[2, 3]);
/// assert_eq!(t.at(&[1, 2]), 6.0);
/// ```
#[derive(Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor with `shape` holding `data` (row-major). Panics if the sizes disagree.
    pub fn from_vec(shape: Vec<usize>, data: Vec<f32>) -> Self {
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            data.len(),
            "Tensor::from_vec: shape {shape:?} needs {n} values, got {}",
            data.len()
        );
        Tensor { shape, data }
    }

    /// All zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, 0.0)
    }

    /// Every element equal to `v`.
    pub fn full(shape: &[usize], v: f32) -> Self {
        let n = shape.iter().product();
        Tensor {
            shape: shape.to_vec(),
            data: vec![v; n],
        }
    }

    /// A 0-d tensor (a scalar).
    pub fn scalar(v: f32) -> Self {
        Tensor {
            shape: vec![],
            data: vec![v],
        }
    }

    /// Zeros shaped like `self`.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(&self.shape)
    }

    /// The size of each dimension (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    /// The elements, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// The elements, row-major, for writing in place.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
    /// The elements, row-major, without a copy.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> f32 {
        assert_eq!(
            self.numel(),
            1,
            "item() on a tensor of shape {:?}",
            self.shape
        );
        self.data[0]
    }

    /// The element at a multi-index.
    pub fn at(&self, idx: &[usize]) -> f32 {
        assert_eq!(
            idx.len(),
            self.ndim(),
            "at({idx:?}) on shape {:?}",
            self.shape
        );
        let mut off = 0;
        for (i, (&ix, &d)) in idx.iter().zip(&self.shape).enumerate() {
            assert!(
                ix < d,
                "at({idx:?}): index {i} out of range for shape {:?}",
                self.shape
            );
            off = off * d + ix;
        }
        self.data[off]
    }

    /// The same data under a new shape with the same number of elements.
    pub fn reshape(mut self, shape: &[usize]) -> Self {
        let n: usize = shape.iter().product();
        assert_eq!(n, self.numel(), "reshape {:?} -> {shape:?}", self.shape);
        self.shape = shape.to_vec();
        self
    }

    /// Rows `start..end` along the first axis, copied.
    pub fn rows(&self, start: usize, end: usize) -> Tensor {
        assert!(
            start <= end && end <= self.shape[0],
            "rows {start}..{end} of {:?}",
            self.shape
        );
        let row: usize = self.shape[1..].iter().product();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Tensor::from_vec(shape, self.data[start * row..end * row].to_vec())
    }

    /// Rows picked by `idx` along the first axis, copied into a new tensor.
    ///
    /// A training batch is a gather of rows scattered over a data set far
    /// larger than the caches (MNIST: 188 MB), so the copy waits on memory:
    /// from 16 384 values on, each kernel thread copies its share of the
    /// rows (the same values either way).
    pub fn gather_rows(&self, idx: &[usize]) -> Tensor {
        let row: usize = self.shape[1..].iter().product();
        let data = par::written(idx.len() * row, |out| {
            par::by_row_blocks(out, row, |first, block| {
                for (o, &i) in block.chunks_exact_mut(row.max(1)).zip(&idx[first..]) {
                    o.copy_from_slice(as_uninit(&self.data[i * row..(i + 1) * row]));
                }
            })
        });
        let mut shape = self.shape.clone();
        shape[0] = idx.len();
        Tensor::from_vec(shape, data)
    }

    /// Elementwise map into a new tensor.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Tensor {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }

    /// `self += other`, same shapes.
    pub fn add_assign(&mut self, other: &Tensor) {
        assert_eq!(self.shape, other.shape, "add_assign shapes");
        add_into(&mut self.data, &other.data);
    }

    /// `self *= s`.
    pub fn scale(&mut self, s: f32) {
        for a in &mut self.data {
            *a *= s;
        }
    }

    /// Sum of all elements, accumulated in f64.
    pub fn sum_all(&self) -> f64 {
        self.data.iter().map(|&v| v as f64).sum()
    }

    /// Euclidean norm of all elements, accumulated in f64.
    pub fn norm(&self) -> f64 {
        self.data
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt()
    }

    /// Index of the largest value in each row of a 2-d tensor (first on ties).
    pub fn argmax_rows(&self) -> Vec<usize> {
        assert_eq!(self.ndim(), 2, "argmax_rows on shape {:?}", self.shape);
        let c = self.shape[1];
        self.data
            .chunks(c)
            .map(|r| {
                let mut best = 0;
                for j in 1..c {
                    if r[j] > r[best] {
                        best = j;
                    }
                }
                best
            })
            .collect()
    }

    /// Largest absolute elementwise difference, for tests.
    pub fn max_abs_diff(&self, other: &Tensor) -> f32 {
        assert_eq!(self.shape, other.shape, "max_abs_diff shapes");
        self.data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.data.len().min(8);
        write!(f, "Tensor{:?} {:?}", self.shape, &self.data[..n])?;
        if self.data.len() > n {
            write!(f, "…")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_rows_splits_over_threads_and_copies_the_picked_rows() {
        // 27 rows of 1000 (above the split size), some picked twice.
        let x = Tensor::from_vec(vec![40, 10, 100], (0..40_000).map(|v| v as f32).collect());
        let idx: Vec<usize> = (0..27).map(|i| (i * 17) % 40).chain([3, 3]).collect();
        let want: Vec<f32> = idx
            .iter()
            .flat_map(|&i| (i * 1000..(i + 1) * 1000).map(|v| v as f32))
            .collect();
        for t in [1, 2, 3] {
            let got = crate::cpu::with_threads(t, || x.gather_rows(&idx));
            assert_eq!(got.shape(), &[29, 10, 100]);
            assert_eq!(got.data(), &want[..], "{t} threads");
        }
        let empty = x.gather_rows(&[]);
        assert_eq!(empty.shape(), &[0, 10, 100]);
    }
}
