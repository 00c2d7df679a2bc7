//! Shape ops: `reshape`, `flatten`, `transpose`, `permute`, `narrow`, `split`,
//! `concat`, `stack`, `index_select`, `gather`, `masked_fill`.
//!
//! Tensors own contiguous row-major data, so a reshape copies the values
//! under a new shape (its backward reshapes the gradient back), and a
//! transpose moves the values (its backward transposes the gradient back).

use crate::autograd::{Backward, Op};
use crate::cpu::par;
use crate::{Graph, Tensor, Var};

/// A sample's shape as messages show it, with the batch axis in front:
/// `[N, 1, 28, 28]`.
pub fn fmt(s: &[usize]) -> String {
    let inner: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[N, {}]", inner.join(", "))
}

/// The number of values of shape `s`, if it fits in a `usize`.
pub fn numel(s: &[usize]) -> Option<usize> {
    s.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// The shape of one sample of a batch shaped `s` (`s` without its first
/// axis; a 1-d `s` is taken as one sample).
pub fn sample(s: &[usize]) -> &[usize] {
    if s.len() > 1 {
        &s[1..]
    } else {
        s
    }
}

/// The shape of a sample reshaped from `s` to `to`, or what is wrong.
pub fn reshape_shape(s: &[usize], to: &[usize]) -> Result<Vec<usize>, String> {
    if numel(s) != numel(to) {
        return Err(format!(
            "cannot reshape input {} ({} values per sample) to {} ({} values)",
            fmt(s),
            numel(s).map_or("too many to count".into(), |n| n.to_string()),
            fmt(to),
            numel(to).map_or("too many to count".into(), |n| n.to_string()),
        ));
    }
    Ok(to.to_vec())
}

struct ReshapeBack;

impl Backward for ReshapeBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        vec![Some(g.clone().reshape(inp[0].shape()))]
    }
}

/// Swap axes `d0` and `d1` of `x`, moving the data.
///
/// Seen as `[A, n₀, B, n₁, C]` (the axes before, between and after the two),
/// the output is `[A, n₁, B, n₀, C]`: runs of C contiguous values are
/// copied whole (a head split `[N, T, H, d] → [N, H, T, d]` copies rows of d).
pub fn transpose_tensor(x: &Tensor, d0: usize, d1: usize) -> Tensor {
    let shape = x.shape();
    assert!(
        d0 < shape.len() && d1 < shape.len(),
        "transpose({d0}, {d1}) of shape {shape:?}"
    );
    let mut out_shape = shape.to_vec();
    out_shape.swap(d0, d1);
    if d0 == d1 {
        return x.clone();
    }
    let (d0, d1) = (d0.min(d1), d0.max(d1));
    let prod = |r: std::ops::Range<usize>| shape[r].iter().product::<usize>();
    let (a, n0, b, n1, c) = (
        prod(0..d0),
        shape[d0],
        prod(d0 + 1..d1),
        shape[d1],
        prod(d1 + 1..shape.len()),
    );
    let xd = x.data();
    let mut data = Vec::with_capacity(x.numel());
    for ai in 0..a {
        for j in 0..n1 {
            for bi in 0..b {
                for i in 0..n0 {
                    let off = (((ai * n0 + i) * b + bi) * n1 + j) * c;
                    data.extend_from_slice(&xd[off..off + c]);
                }
            }
        }
    }
    Tensor::from_vec(out_shape, data)
}

struct TransposeBack(usize, usize);

impl Backward for TransposeBack {
    fn backward(
        &self,
        g: &Tensor,
        _inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        vec![Some(transpose_tensor(g, self.0, self.1))]
    }
}

/// `x` seen as `[outer, len, inner]` around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Which entries of `shape` keep their value: those where `mask` (broadcast)
/// is 0.
fn expand_mask(mask: &Tensor, shape: &[usize]) -> Vec<bool> {
    let mut keep = vec![true; shape.iter().product()];
    let m = mask.data();
    crate::ops::broadcast::for_each(shape, shape, mask.shape(), |o, _, j| keep[o] = m[j] == 0.0);
    keep
}

struct MaskedFillBack {
    keep: Vec<bool>,
}

impl Backward for MaskedFillBack {
    fn backward(
        &self,
        g: &Tensor,
        _inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let v = g
            .data()
            .iter()
            .zip(&self.keep)
            .map(|(&g, &k)| if k { g } else { 0.0 })
            .collect();
        vec![Some(Tensor::from_vec(g.shape().to_vec(), v))]
    }
}

struct IndexSelectBack {
    axis: usize,
    ids: Vec<usize>,
}

impl Backward for IndexSelectBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let s = inp[0].shape();
        let (outer, full, inner) = around(s, self.axis);
        let mut gx = vec![0f32; inp[0].numel()];
        let gd = g.data();
        for o in 0..outer {
            for (k, &i) in self.ids.iter().enumerate() {
                let src = &gd[(o * self.ids.len() + k) * inner..][..inner];
                let dst = &mut gx[(o * full + i) * inner..][..inner];
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d += v;
                }
            }
        }
        vec![Some(Tensor::from_vec(s.to_vec(), gx))]
    }
}

/// Where in `x` (shape `s`, row-major) each entry of a gather reads.
fn gather_offsets(s: &[usize], axis: usize, index: &[usize], index_shape: &[usize]) -> Vec<usize> {
    let mut stride = vec![1usize; s.len()];
    for d in (0..s.len().saturating_sub(1)).rev() {
        stride[d] = stride[d + 1] * s[d + 1];
    }
    let mut at = vec![0usize; index_shape.len()];
    let mut out = Vec::with_capacity(index.len());
    for &i in index {
        let o: usize = (0..s.len())
            .map(|d| if d == axis { i } else { at[d] } * stride[d])
            .sum();
        out.push(o);
        // the next position of the index, last axis fastest
        for d in (0..at.len()).rev() {
            at[d] += 1;
            if at[d] < index_shape[d] {
                break;
            }
            at[d] = 0;
        }
    }
    out
}

struct GatherBack {
    /// The offset in `x` each output entry was read from.
    src: Vec<usize>,
}

impl Backward for GatherBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let mut gx = vec![0f32; inp[0].numel()];
        for (&o, &v) in self.src.iter().zip(g.data()) {
            gx[o] += v;
        }
        vec![Some(Tensor::from_vec(inp[0].shape().to_vec(), gx))]
    }
}

struct NarrowBack {
    axis: usize,
    start: usize,
}

impl Backward for NarrowBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let x = inp[0];
        let (outer, len, inner) = around(x.shape(), self.axis);
        let part = g.shape()[self.axis];
        let mut gx = x.zeros_like();
        for o in 0..outer {
            let src = &g.data()[o * part * inner..(o + 1) * part * inner];
            let at = (o * len + self.start) * inner;
            gx.data_mut()[at..at + part * inner].copy_from_slice(src);
        }
        vec![Some(gx)]
    }
}

struct ConcatBack {
    axis: usize,
}

impl Backward for ConcatBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (outer, total, inner) = around(g.shape(), self.axis);
        let mut start = 0;
        inp.iter()
            .zip(needs)
            .map(|(x, &need)| {
                let len = x.shape()[self.axis];
                let gx = need.then(|| {
                    let mut v = Vec::with_capacity(x.numel());
                    for o in 0..outer {
                        let at = (o * total + start) * inner;
                        v.extend_from_slice(&g.data()[at..at + len * inner]);
                    }
                    Tensor::from_vec(x.shape().to_vec(), v)
                });
                start += len;
                gx
            })
            .collect()
    }
}

impl Graph {
    /// `len` entries of `x` along `axis` from `start` (`x.narrow(axis,
    /// start, len)`; a copy). Splitting a tensor is several narrows.
    pub fn narrow(&mut self, x: Var, axis: usize, start: usize, len: usize) -> Var {
        let s = self.shape(x).to_vec();
        if axis >= s.len() || start + len > s[axis] {
            let msg = format!("narrow({axis}, {start}, {len}) of shape {s:?}: out of range");
            return self.bad_shapes(msg, &s);
        }
        let (outer, full, inner) = around(&s, axis);
        let xv = self.value(x).data();
        let mut v = Vec::with_capacity(outer * len * inner);
        for o in 0..outer {
            let at = (o * full + start) * inner;
            v.extend_from_slice(&xv[at..at + len * inner]);
        }
        let mut shape = s;
        shape[axis] = len;
        self.push(
            Op::Narrow,
            Tensor::from_vec(shape, v),
            &[x],
            NarrowBack { axis, start },
        )
    }

    /// `xs` joined along `axis` (`torch.cat(xs, axis)`): the other axes
    /// must agree.
    pub fn concat(&mut self, xs: &[Var], axis: usize) -> Var {
        let first = self.shape(xs[0]).to_vec();
        let fits = |s: &[usize]| {
            s.len() == first.len()
                && axis < s.len()
                && s.iter()
                    .zip(&first)
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b)
        };
        if let Some(bad) = xs
            .iter()
            .map(|&x| self.shape(x).to_vec())
            .find(|s| !fits(s))
        {
            let msg = format!("concat along {axis}: shapes {first:?} and {bad:?} do not fit");
            return self.bad_shapes(msg, &first);
        }
        let total: usize = xs.iter().map(|&x| self.shape(x)[axis]).sum();
        let (outer, _, inner) = around(&first, axis);
        let mut v = Vec::with_capacity(outer * total * inner);
        for o in 0..outer {
            for &x in xs {
                let len = self.shape(x)[axis];
                v.extend_from_slice(&self.value(x).data()[o * len * inner..(o + 1) * len * inner]);
            }
        }
        let mut shape = first;
        shape[axis] = total;
        self.push(
            Op::Concat,
            Tensor::from_vec(shape, v),
            xs,
            ConcatBack { axis },
        )
    }

    /// The same values under `shape` (same number of elements).
    pub fn reshape(&mut self, x: Var, shape: &[usize]) -> Var {
        if numel(self.shape(x)) != numel(shape) {
            let msg = format!(
                "reshape: {:?} to {shape:?}: the numbers of values differ",
                self.shape(x)
            );
            return self.bad_shapes(msg, shape);
        }
        let v = self.value(x);
        let v = Tensor::from_vec(v.shape().to_vec(), par::copied(v.data())).reshape(shape);
        self.push(Op::Reshape, v, &[x], ReshapeBack)
    }

    /// `[N, ...] → [N, product of the rest]`, as `nn.Flatten()`.
    pub fn flatten(&mut self, x: Var) -> Var {
        let s = self.shape(x);
        let n = s.first().copied().unwrap_or(1);
        let rest = s.iter().skip(1).product();
        self.reshape(x, &[n, rest])
    }

    /// The axes of `x` in the order `dims` (`x.permute(*dims)`), as a
    /// sequence of transposes.
    pub fn permute(&mut self, x: Var, dims: &[usize]) -> Var {
        let s = self.shape(x).to_vec();
        let mut sorted = dims.to_vec();
        sorted.sort_unstable();
        if sorted != (0..s.len()).collect::<Vec<_>>() {
            let msg = format!("permute({dims:?}) of shape {s:?}: not an order of its axes");
            return self.bad_shapes(msg, &s);
        }
        let (mut order, mut y): (Vec<usize>, Var) = ((0..s.len()).collect(), x);
        for (i, &want) in dims.iter().enumerate() {
            let j = order
                .iter()
                .position(|&a| a == want)
                .expect("a permutation");
            if j != i {
                y = self.transpose(y, i, j);
                order.swap(i, j);
            }
        }
        y
    }

    /// `xs` (one shape) stacked along a new axis `axis` (`torch.stack`).
    pub fn stack(&mut self, xs: &[Var], axis: usize) -> Var {
        let parts: Vec<Var> = xs
            .iter()
            .map(|&x| {
                let mut s = self.shape(x).to_vec();
                s.insert(axis.min(s.len()), 1);
                self.reshape(x, &s)
            })
            .collect();
        self.concat(&parts, axis)
    }

    /// `x` cut along `axis` into pieces of `sizes` (`torch.split`).
    pub fn split(&mut self, x: Var, axis: usize, sizes: &[usize]) -> Vec<Var> {
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let y = self.narrow(x, axis, start, len);
                start += len;
                y
            })
            .collect()
    }

    /// The entries `ids` of `x` along `axis`, in that order, repeats allowed
    /// (`torch.index_select`); the backward adds each gradient back where
    /// it came from.
    pub fn index_select(&mut self, x: Var, axis: usize, ids: &[usize]) -> Var {
        let s = self.shape(x).to_vec();
        if axis >= s.len() || ids.iter().any(|&i| i >= s[axis]) {
            let msg = format!("index_select along {axis} of shape {s:?}: ids {ids:?} out of range");
            return self.bad_shapes(msg, &s);
        }
        let (outer, full, inner) = around(&s, axis);
        let xv = self.value(x).data();
        let mut v = Vec::with_capacity(outer * ids.len() * inner);
        for o in 0..outer {
            for &i in ids {
                let at = (o * full + i) * inner;
                v.extend_from_slice(&xv[at..at + inner]);
            }
        }
        let mut shape = s;
        shape[axis] = ids.len();
        let back = IndexSelectBack {
            axis,
            ids: ids.to_vec(),
        };
        self.push(Op::IndexSelect, Tensor::from_vec(shape, v), &[x], back)
    }

    /// `torch.gather(x, axis, index)`: an output shaped like the index
    /// (`index_shape`, row-major `index`), each entry read from `x` at its
    /// own position with the coordinate along `axis` replaced by its index:
    /// for a 3-D `x` and axis 1, `out[i][j][k] = x[i][index[i][j][k]][k]`.
    /// As in PyTorch, the index has `x`'s rank and is no larger than `x`
    /// along the other axes. The backward adds each gradient back where its
    /// entry was read (repeats add up): picking each row's label
    /// probability, the top-k's values, a pointer network's choices.
    pub fn gather(&mut self, x: Var, axis: usize, index: &[usize], index_shape: &[usize]) -> Var {
        let s = self.shape(x).to_vec();
        let fits = axis < s.len()
            && index_shape.len() == s.len()
            && index.len() == index_shape.iter().product::<usize>()
            && (0..s.len()).all(|d| d == axis || index_shape[d] <= s[d]);
        if !fits || index.iter().any(|&i| i >= s[axis]) {
            let msg = format!(
                "gather along {axis} of shape {s:?}: an index of shape {index_shape:?} \
                 (the same rank, no larger on the other axes, values below {})",
                s.get(axis).copied().unwrap_or(0)
            );
            return self.bad_shapes(msg, index_shape);
        }
        let src = gather_offsets(&s, axis, index, index_shape);
        let xv = self.value(x).data();
        let v = src.iter().map(|&o| xv[o]).collect();
        let out = Tensor::from_vec(index_shape.to_vec(), v);
        self.push(Op::Gather, out, &[x], GatherBack { src })
    }

    /// `x` with `value` where `mask` (0 or 1, broadcast to `x`'s shape) is
    /// 1 (`x.masked_fill(mask, value)`: a causal mask's −∞); no gradient
    /// flows to the filled entries.
    pub fn masked_fill(&mut self, x: Var, mask: &Tensor, value: f32) -> Var {
        let s = self.shape(x).to_vec();
        if crate::ops::broadcast::broadcast_shape(&s, mask.shape()).as_deref() != Some(&s[..]) {
            let msg = format!(
                "masked_fill: mask {:?} does not broadcast to {s:?}",
                mask.shape()
            );
            return self.bad_shapes(msg, &s);
        }
        let keep = expand_mask(mask, &s);
        let xv = self.value(x).data();
        let v = xv
            .iter()
            .zip(&keep)
            .map(|(&x, &k)| if k { x } else { value })
            .collect();
        self.push(
            Op::MaskedFill,
            Tensor::from_vec(s, v),
            &[x],
            MaskedFillBack { keep },
        )
    }

    /// Swap axes `d0` and `d1`.
    pub fn transpose(&mut self, x: Var, d0: usize, d1: usize) -> Var {
        let s = self.shape(x);
        if d0 >= s.len() || d1 >= s.len() {
            let (msg, instead) = (format!("transpose({d0}, {d1}) of shape {s:?}"), s.to_vec());
            return self.bad_shapes(msg, &instead);
        }
        let v = transpose_tensor(self.value(x), d0, d1);
        self.push(Op::Transpose, v, &[x], TransposeBack(d0, d1))
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::Tensor;

    #[test]
    fn permute_stack_split_index_select_masked_fill() {
        let x = pseudo_random(&[2, 3, 4], 5);
        check("permute", std::slice::from_ref(&x), |g, v| {
            g.permute(v[0], &[2, 0, 1])
        });
        check(
            "stack",
            &[x.clone(), pseudo_random(&[2, 3, 4], 6)],
            |g, v| g.stack(&[v[0], v[1]], 1),
        );
        check("index_select", std::slice::from_ref(&x), |g, v| {
            g.index_select(v[0], 2, &[3, 0, 3, 1])
        });
        // along the middle axis, repeats included, smaller on the first axis
        let idx = [2, 0, 2, 2, 1, 0, 1, 2, 0, 0, 1, 2, 2, 1, 0, 0];
        check("gather", std::slice::from_ref(&x), |g, v| {
            g.gather(v[0], 1, &idx, &[1, 4, 4])
        });
        check("gather_last", std::slice::from_ref(&x), |g, v| {
            g.gather(v[0], 2, &[3, 3, 0, 1, 2, 2], &[2, 3, 1])
        });
        let mask = Tensor::from_vec(vec![3, 1], vec![0.0, 1.0, 0.0]);
        check("masked_fill", std::slice::from_ref(&x), |g, v| {
            g.masked_fill(v[0], &mask, -1e9)
        });
        let mut g = crate::Graph::new();
        let xv = g.input(x.clone());
        let p = g.permute(xv, &[2, 0, 1]);
        assert_eq!(g.shape(p), &[4, 2, 3]);
        // p[k, i, j] = x[i, j, k]
        assert_eq!(
            g.value(p).data()[(3 * 2 + 1) * 3 + 2],
            x.data()[(3 + 2) * 4 + 3]
        );
        let parts = g.split(xv, 1, &[1, 2]);
        assert_eq!(
            (g.shape(parts[0]), g.shape(parts[1])),
            (&[2, 1, 4][..], &[2, 2, 4][..])
        );
        let st = g.stack(&[xv, xv], 0);
        assert_eq!(g.shape(st), &[2, 2, 3, 4]);
        // out[i][j][k] = x[i][index[i][j][k]][k]
        let gv = g.gather(xv, 1, &idx, &[1, 4, 4]);
        assert_eq!(g.shape(gv), &[1, 4, 4]);
        for (p, &i) in idx.iter().enumerate() {
            let (j, k) = (p / 4, p % 4);
            assert_eq!(g.value(gv).data()[p], x.data()[i * 4 + k], "({j}, {k})");
        }
        let m = g.masked_fill(xv, &mask, 7.0);
        assert_eq!(g.value(m).data()[4..8], [7.0; 4]);
        assert_eq!(g.value(m).data()[..4], x.data()[..4]);
    }

    #[test]
    fn narrow_and_concat_gradients_and_values() {
        check("narrow", &[pseudo_random(&[3, 5, 2], 1)], |g, v| {
            g.narrow(v[0], 1, 1, 3)
        });
        check(
            "concat",
            &[
                pseudo_random(&[2, 3], 2),
                pseudo_random(&[2, 1], 3),
                pseudo_random(&[2, 2], 4),
            ],
            |g, v| g.concat(&[v[0], v[1], v[2]], 1),
        );
        let mut g = crate::Graph::new();
        let x = g.input(Tensor::from_vec(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]));
        let parts: Vec<_> = (0..3).map(|i| g.narrow(x, 1, i, 1)).collect();
        let back = g.concat(&parts, 1);
        assert_eq!(g.value(back), g.value(x));
    }

    #[test]
    fn transpose_values() {
        let x = Tensor::from_vec(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]);
        let t = super::transpose_tensor(&x, 0, 1);
        assert_eq!(t.shape(), &[3, 2]);
        assert_eq!(t.data(), &[1., 4., 2., 5., 3., 6.]);
        // every pair of axes of a 4-d tensor, against indexing by hand
        let shape = [2, 3, 4, 5];
        let x = pseudo_random(&shape, 7);
        let at = |i: [usize; 4]| x.data()[((i[0] * 3 + i[1]) * 4 + i[2]) * 5 + i[3]];
        for d0 in 0..4 {
            for d1 in 0..4 {
                let t = super::transpose_tensor(&x, d0, d1);
                let mut os = shape;
                os.swap(d0, d1);
                assert_eq!(t.shape(), &os);
                for (k, &v) in t.data().iter().enumerate() {
                    let mut o = [0; 4];
                    // the output's index, in its own shape
                    let mut r = k;
                    for a in (0..4).rev() {
                        o[a] = r % os[a];
                        r /= os[a];
                    }
                    o.swap(d0, d1);
                    assert_eq!(v, at(o), "transpose({d0}, {d1}) at {k}");
                }
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check("reshape", &[pseudo_random(&[3, 4], 1)], |g, v| {
            let r = g.reshape(v[0], &[2, 6]);
            g.exp(r)
        });
        check("transpose", &[pseudo_random(&[3, 4, 5], 2)], |g, v| {
            let t = g.transpose(v[0], 1, 2);
            g.exp(t)
        });
        check("flatten", &[pseudo_random(&[2, 1, 3, 3], 3)], |g, v| {
            g.flatten(v[0])
        });
    }
}
