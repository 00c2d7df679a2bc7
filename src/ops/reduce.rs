//! `sum` and `mean`, over all elements or over chosen axes.
//!
//! Backward: the upstream gradient is broadcast back over the reduced axes
//! (times `1/n` for the mean).

use super::broadcast::for_each;
use crate::autograd::{Backward, Op};
use crate::{Graph, Tensor, Var};

/// The reduced shape with the reduced axes kept as size 1.
fn kept_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect()
}

struct ReduceBack {
    kept: Vec<usize>,
    scale: f32,
}

impl Backward for ReduceBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let x = inp[0];
        let mut gx = x.zeros_like();
        let (gd, d) = (g.data(), gx.data_mut());
        for_each(x.shape(), x.shape(), &self.kept, |o, _, j| {
            d[o] = gd[j] * self.scale
        });
        vec![Some(gx)]
    }
}

impl Graph {
    fn reduce(&mut self, x: Var, axes: Option<&[usize]>, keepdim: bool, mean: bool) -> Var {
        let xv = self.value(x);
        let shape = xv.shape().to_vec();
        let axes: Vec<usize> = match axes {
            Some(a) => a.to_vec(),
            None => (0..shape.len()).collect(),
        };
        for &a in &axes {
            assert!(
                a < shape.len(),
                "sum/mean: axis {a} out of range for shape {shape:?}"
            );
        }
        let kept = kept_shape(&shape, &axes);
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        let scale = if mean { 1.0 / count as f32 } else { 1.0 };
        // Accumulate in f64: long sums (a batch mean) lose little precision.
        let mut acc = vec![0f64; kept.iter().product()];
        let xd = xv.data();
        for_each(&shape, &shape, &kept, |o, _, j| acc[j] += xd[o] as f64);
        let out_shape: Vec<usize> = if keepdim {
            kept.clone()
        } else {
            shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect()
        };
        let out = Tensor::from_vec(
            out_shape,
            acc.iter().map(|&v| (v * scale as f64) as f32).collect(),
        );
        self.push(
            if mean { Op::Mean } else { Op::Sum },
            out,
            &[x],
            ReduceBack { kept, scale },
        )
    }

    /// Sum of all elements (a scalar).
    pub fn sum(&mut self, x: Var) -> Var {
        self.reduce(x, None, false, false)
    }

    /// Mean of all elements (a scalar).
    pub fn mean(&mut self, x: Var) -> Var {
        self.reduce(x, None, false, true)
    }

    /// Sum over `axes`, keeping them as size 1 if `keepdim`.
    pub fn sum_axes(&mut self, x: Var, axes: &[usize], keepdim: bool) -> Var {
        self.reduce(x, Some(axes), keepdim, false)
    }

    /// Mean over `axes`, keeping them as size 1 if `keepdim`.
    pub fn mean_axes(&mut self, x: Var, axes: &[usize], keepdim: bool) -> Var {
        self.reduce(x, Some(axes), keepdim, true)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::{Graph, Tensor};

    #[test]
    fn values() {
        let mut g = Graph::no_grad();
        let x = g.input(Tensor::from_vec(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]));
        let s = g.sum_axes(x, &[0], false);
        assert_eq!(g.value(s).data(), &[5., 7., 9.]);
        let m = g.mean_axes(x, &[1], true);
        assert_eq!(g.value(m).shape(), &[2, 1]);
        assert_eq!(g.value(m).data(), &[2., 5.]);
        let a = g.mean(x);
        assert_eq!(g.value(a).shape(), &[] as &[usize]);
        assert_eq!(g.value(a).item(), 3.5);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let x = pseudo_random(&[3, 4, 5], 1);
        check("sum", std::slice::from_ref(&x), |g, v| g.sum(v[0]));
        check("mean", std::slice::from_ref(&x), |g, v| g.mean(v[0]));
        check("sum axis 1", std::slice::from_ref(&x), |g, v| {
            g.sum_axes(v[0], &[1], false)
        });
        check("mean axis 1 keepdim", std::slice::from_ref(&x), |g, v| {
            g.mean_axes(v[0], &[1], true)
        });
        check("mean axes 0,2", &[x], |g, v| {
            g.mean_axes(v[0], &[0, 2], false)
        });
    }
}
