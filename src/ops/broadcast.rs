//! NumPy/PyTorch broadcasting: shapes are aligned at the right, and a size-1
//! (or missing) axis repeats along the other operand's axis.

/// The broadcast shape of `a` and `b`, or `None` if they are incompatible.
///
/// ```
/// use backprop::ops::broadcast::broadcast_shape;
/// assert_eq!(broadcast_shape(&[2, 3, 4], &[3, 1]), Some(vec![2, 3, 4]));
/// assert_eq!(broadcast_shape(&[3], &[4]), None);
/// ```
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Strides of `shape` seen from an output of rank `rank`: 0 on broadcast axes.
fn bcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let r = out.len();
    let mut strides = vec![0; r];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let oi = i + r - shape.len();
        strides[oi] = if shape[i] == 1 && out[oi] != 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

/// Call `f(out_index, a_index, b_index)` for every element of the broadcast
/// output `out`, where `a` and `b` broadcast to `out`.
pub fn for_each(out: &[usize], a: &[usize], b: &[usize], mut f: impl FnMut(usize, usize, usize)) {
    let n: usize = out.iter().product();
    if n == 0 {
        return;
    }
    if out.is_empty() {
        f(0, 0, 0);
        return;
    }
    let sa = bcast_strides(a, out);
    let sb = bcast_strides(b, out);
    let r = out.len();
    let inner = out[r - 1];
    let (ia, ib) = (sa[r - 1], sb[r - 1]);
    let mut idx = vec![0usize; r];
    let (mut oa, mut ob) = (0usize, 0usize);
    let mut o = 0;
    while o < n {
        for j in 0..inner {
            f(o + j, oa + j * ia, ob + j * ib);
        }
        o += inner;
        // Advance the multi-index over the outer axes.
        let mut d = r - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < out[d] {
                break;
            }
            oa -= sa[d] * idx[d];
            ob -= sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}

/// Sum `g` (shaped `out`) down to `shape`, which broadcasts to `out`: the
/// backward of broadcasting.
pub fn reduce_to(g: &crate::Tensor, shape: &[usize]) -> crate::Tensor {
    if g.shape() == shape {
        return g.clone();
    }
    let mut r = crate::Tensor::zeros(shape);
    let (gd, rd) = (g.data(), r.data_mut());
    if g.shape().ends_with(shape) && !rd.is_empty() {
        // summed over leading axes only: whole rows, in the same order
        for row in gd.chunks_exact(rd.len()) {
            for (t, &v) in rd.iter_mut().zip(row) {
                *t += v;
            }
        }
        return r;
    }
    for_each(g.shape(), shape, shape, |o, t, _| rd[t] += gd[o]);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn for_each_maps_broadcast_indices() {
        let mut seen = vec![];
        for_each(&[2, 3], &[2, 1], &[3], |o, a, b| seen.push((o, a, b)));
        assert_eq!(
            seen,
            vec![
                (0, 0, 0),
                (1, 0, 1),
                (2, 0, 2),
                (3, 1, 0),
                (4, 1, 1),
                (5, 1, 2)
            ]
        );
    }

    #[test]
    fn reduce_to_sums_broadcast_axes() {
        let g = Tensor::from_vec(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]);
        assert_eq!(reduce_to(&g, &[3]).data(), &[5., 7., 9.]);
        assert_eq!(reduce_to(&g, &[2, 1]).data(), &[6., 15.]);
        assert_eq!(reduce_to(&g, &[]).data(), &[21.]);
    }
}
