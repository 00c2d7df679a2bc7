//! Direct convolution kernels for stride 1 on x86-64 with AVX2 and FMA (and
//! AVX-512 where the CPU has it): the forward pass and both gradients,
//! without im2col.
//!
//! Why hand-written: with im2col a LeNet step spent more time copying
//! (im2col, then transposing the columns again to pack them for `∂W`, then
//! col2im's short overlapping scatter-adds) than multiplying: its first layer
//! ran at about 17 GFLOP/s. Here the passes read the input image in place.
//!
//! # The trick: flat output positions over the padded width
//! The input is zero-padded once per sample into `xpad: [C, Hp, Wp]`. For an
//! output position `(oy, ox)` let `q = oy·Wp + ox` (positions are counted
//! over the padded width, so `ox` runs past `Wo`: those columns are junk and
//! are dropped). Tap `t = (c, i, j)` of the kernel then reads
//! `xpad[off(t) + q]` with `off(t) = c·Hp·Wp + i·Wp + j`: for a fixed tap,
//! consecutive `q` read consecutive memory. The convolution is the matrix
//! product `Y[O, Q] = W[O, T] · X[T, Q]` with `X[t, q] = xpad[off(t) + q]`,
//! whose rows are contiguous runs of `xpad` at irregular starts:
//!
//! - forward: a 6×16 micro-kernel (6 output channels, 16 positions) keeps
//!   its tile in 12 registers and walks the taps, loading 16 values at
//!   `xpad + off(t) + q0` and broadcasting 6 weights per tap;
//! - `∂W[o, t] = Σ_q δ[o, q] · xpad[off(t) + q]` (with `δ` laid out on the
//!   same padded positions, zero in the junk columns): 6 channels × 2 taps
//!   per pass, 8 positions per vector, each sum reduced across its vector at
//!   the end;
//! - `∂x`: `cols = Wᵀ · δ` by our matrix product on the padded positions,
//!   then each input channel is the sum over its taps of `cols[t]` shifted
//!   by `off(t)`: one contiguous run per tap.
//!
//! On a CPU with AVX-512 the forward tile is 6×32 (two 16-wide registers a
//! row, the last tile of a sample 6×16) and `∂W` takes 16 positions per
//! vector.
//!
//! The junk columns cost `Wp/Wo − 1` more work (14 % for LeNet's first
//! layer, 40 % for its second), which measured far cheaper than im2col
//! (`cargo bench --bench kernels -- conv` times both).
//!
//! # Order of sums
//! Forward: each output is `bias + Σ_t w·x` over the taps in `(c, i, j)`
//! order, as im2col + our matrix product computes it for up to 256 taps.
//! `∂W` and `∂x`: fixed orders that depend on the shapes and the vector
//! width only (not the same as im2col's; equal to float rounding).

mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::cpu::isa::Simd;
use std::mem::MaybeUninit;

/// Output channels per tile (a panel of the packed weights and of `δ`).
const MR: usize = 6;
/// Output channels per tile of the AVX-512 kernels where that pads fewer
/// channels than [`MR`] (16 channels are two panels of 8, not three of 6
/// with two rows of zeros): 16 accumulators of the 32 registers.
const WIDE_MR: usize = 8;
/// Output positions per forward tile.
const NR: usize = 16;

/// The taps a forward tile walks, in order: `runs` runs of `len` taps, the
/// first from tap `start`, each run `stride` taps after the one before.
/// All taps are one run; a tile whose kernel rows read only the zero border
/// for some `i` skips those rows in every channel (see
/// [`DirectConv::tile_taps`]).
#[derive(Clone, Copy, Debug, PartialEq)]
struct TapRuns {
    start: usize,
    len: usize,
    stride: usize,
    runs: usize,
}

impl TapRuns {
    /// Every tap `t` of the runs, in order (for the portable kernel).
    fn taps(self) -> impl Iterator<Item = usize> {
        (0..self.runs).flat_map(move |r| {
            let t0 = self.start + r * self.stride;
            t0..t0 + self.len
        })
    }
}

/// Whether this process runs these kernels: AVX2 and FMA (an
/// [`Avx2`](crate::cpu::isa::Avx2) token). Elsewhere the convolution uses
/// im2col and the `gemm` crate; the portable kernels (`portable.rs`) serve
/// this module's tests there, and check the vector kernels everywhere.
pub(crate) fn available() -> bool {
    crate::cpu::isa::avx2().is_some()
}

/// The sizes of one stride-1 convolution, with its tap offsets. The
/// forward pass also takes the weights packed by
/// [`pack_weights`](Self::pack_weights); the gradients read them as given.
pub(crate) struct DirectConv {
    kh: usize,
    kw: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    ph: usize,
    pw: usize,
    ho: usize,
    wo: usize,
    hp: usize,
    wp: usize,
    /// `off(t)` for every tap `t = (c, i, j)`, in that order.
    offs: Vec<usize>,
    /// The kernels that run: the AVX-512 ones, the AVX2 ones or the
    /// portable ones, with the token of their CPU features (the tests run
    /// each choice this process has).
    simd: Simd,
    /// Whether forward tiles skip the kernel rows that read only the zero
    /// border (always, but for the test that checks it keeps the bits).
    skip_border: bool,
}

/// Output channels per panel: [`WIDE_MR`] with the AVX-512 kernels where it
/// pads no more channels than [`MR`], else [`MR`].
fn panel_rows(o: usize, wide: bool) -> usize {
    if wide && o.next_multiple_of(WIDE_MR) <= o.next_multiple_of(MR) {
        WIDE_MR
    } else {
        MR
    }
}

impl DirectConv {
    /// `O` kernels of `[C, kh, kw]` over an input `[C, H, W]` with zero
    /// padding `(ph, pw)`, stride 1, run by the kernels of `simd`.
    pub(crate) fn new(
        (c, h, w): (usize, usize, usize),
        (o, kh, kw): (usize, usize, usize),
        (ph, pw): (usize, usize),
        simd: Simd,
    ) -> DirectConv {
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        assert!(
            hp >= kh && wp >= kw && kh > 0 && kw > 0,
            "direct conv: kernel larger than input"
        );
        let mut offs = Vec::with_capacity(c * kh * kw);
        for ci in 0..c {
            for i in 0..kh {
                for j in 0..kw {
                    offs.push(ci * hp * wp + i * wp + j);
                }
            }
        }
        DirectConv {
            kh,
            kw,
            c,
            h,
            w,
            o,
            ph,
            pw,
            ho: hp - kh + 1,
            wo: wp - kw + 1,
            hp,
            wp,
            offs,
            simd,
            skip_border: true,
        }
    }

    /// The taps a forward tile of positions `q0..q1` needs. An output row
    /// `oy` reads the padded rows `oy + i`; where all of a tile's rows (its
    /// real ones: the last tile runs past `Ho·Wp`) read zero padding for a
    /// kernel row `i`, that row's taps add `w·0` to every sum, and are
    /// skipped in every channel. The sums keep their bits: each starts at
    /// `+0`, which adding `±0` leaves `+0`, and adding `±0` to a non-zero
    /// value changes nothing. The transposed convolution of `∂x`, whose
    /// input is `δ` with a border of `kh − 1 − ph` rows, skips a fifth of
    /// its taps for LeNet's second layer.
    fn tile_taps(&self, q0: usize, q1: usize) -> TapRuns {
        let (kh, kw, taps) = (self.kh, self.kw, self.offs.len());
        let all = TapRuns {
            start: 0,
            len: taps,
            stride: 0,
            runs: 1,
        };
        if !self.skip_border {
            return all;
        }
        // The real output rows of the tile: `a..=b`.
        let a = q0 / self.wp;
        let b = ((q1 - 1) / self.wp).min(self.ho - 1);
        // Row `i` reads some of the image iff `ph ≤ oy + i < ph + h` for
        // some `oy` in `a..=b`.
        let lo = self.ph.saturating_sub(b).min(kh);
        let hi = (self.ph + self.h).saturating_sub(a).clamp(lo, kh);
        if (lo, hi) == (0, kh) {
            return all;
        }
        TapRuns {
            start: lo * kw,
            len: (hi - lo) * kw,
            stride: kh * kw,
            runs: self.c,
        }
    }

    /// Whether the AVX-512 kernels run.
    fn wide(&self) -> bool {
        self.simd.avx512().is_some()
    }

    /// Output channels per panel (see [`panel_rows`]).
    fn mr(&self) -> usize {
        panel_rows(self.o, self.wide())
    }

    /// `w: [O, C, kh, kw]` (PyTorch's layout, flat) as the forward kernel
    /// reads it: panels of `mr` output channels (6 or 8, the last
    /// zero-padded), each stored tap-major, `[panel][t][mr]`. Once per
    /// forward pass.
    pub(crate) fn pack_weights(&self, w: &[f32]) -> Vec<f32> {
        let (taps, mr) = (self.offs.len(), self.mr());
        assert_eq!(w.len(), self.o * taps, "direct conv: weight size");
        let mut wpack = vec![0.0; self.o.div_ceil(mr) * taps * mr];
        for (oc, row) in w.chunks_exact(taps).enumerate() {
            let panel = &mut wpack[oc / mr * taps * mr..];
            for (t, &v) in row.iter().enumerate() {
                panel[t * mr + oc % mr] = v;
            }
        }
        wpack
    }

    /// The convolution whose forward pass is this one's `∂x`, when the
    /// padding is below the kernel size (else `None`): `∂x = δ ∗ W'`, the
    /// full correlation of `δ: [O, Ho, Wo]` (zero-padded by `kh − 1 − ph`,
    /// `kw − 1 − pw`) with `W'[c, o, i, j] = W[o, c, kh−1−i, kw−1−j]` (see
    /// [`flip_weights`](Self::flip_weights)). Its output is `[C, H, W]`.
    ///
    /// Why: the `Wᵀ·δ` product of [`grad_input`](Self::grad_input) has a
    /// depth of only `O` (16 for LeNet's second layer), so the product's
    /// kernel spends most of its time loading and storing its tile, and the
    /// shifted sums after it are one more pass over `taps × positions`
    /// values. The forward tile keeps its sums in registers over all
    /// `O·kh·kw` taps and writes each value once.
    pub(crate) fn transposed(&self) -> Option<DirectConv> {
        (self.ph < self.kh && self.pw < self.kw).then(|| {
            let mut t = DirectConv::new(
                (self.o, self.ho, self.wo),
                (self.c, self.kh, self.kw),
                (self.kh - 1 - self.ph, self.kw - 1 - self.pw),
                self.simd,
            );
            t.skip_border = self.skip_border;
            t
        })
    }

    /// `w: [O, C, kh, kw]` as the [`transposed`](Self::transposed)
    /// convolution's weights `[C, O, kh, kw]`, each kernel turned by 180°.
    pub(crate) fn flip_weights(&self, w: &[f32]) -> Vec<f32> {
        let (o, c, kk) = (self.o, self.c, self.kh * self.kw);
        assert_eq!(w.len(), o * c * kk, "direct conv: weight size");
        let mut f = vec![0.0; w.len()];
        for oc in 0..o {
            for ci in 0..c {
                let src = &w[(oc * c + ci) * kk..][..kk];
                let dst = &mut f[(ci * o + oc) * kk..][..kk];
                for (d, &v) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = v;
                }
            }
        }
        f
    }

    /// Positions computed per sample: `Ho` rows of the padded width.
    fn q(&self) -> usize {
        self.ho * self.wp
    }

    /// Length of a padded input: the image, then slack for the vectors that
    /// run past the last position (`off(t) + q` stays below
    /// `C·Hp·Wp + kw + 16` for every `q` a kernel reads).
    fn xpad_len(&self) -> usize {
        self.c * self.hp * self.wp + self.wp + NR
    }

    /// Copies one sample `x: [C, H, W]` into `xpad` with its zero border.
    /// `xpad` is reused from sample to sample: it is zeroed only when it is
    /// (re)allocated, since the border and slack are never written.
    pub(crate) fn pad_input(&self, x: &[f32], xpad: &mut Vec<f32>) {
        let len = self.xpad_len();
        if xpad.len() != len {
            *xpad = vec![0.0; len];
        }
        for (plane, dst) in x
            .chunks_exact(self.h * self.w)
            .zip(xpad.chunks_exact_mut(self.hp * self.wp))
        {
            for (row, d) in plane
                .chunks_exact(self.w)
                .zip(dst[self.ph * self.wp..].chunks_exact_mut(self.wp))
            {
                crate::cpu::copy_short(&mut d[self.pw..self.pw + self.w], row);
            }
        }
    }

    /// `y: [O, Ho, Wo] = bias + W ∗ x` for one sample, from the packed
    /// weights (see [`pack_weights`](Self::pack_weights)) and its padded
    /// input (see [`pad_input`](Self::pad_input)); every value of `y` is
    /// written, so it may start uninitialized. `scratch` holds the
    /// tiles on the padded positions before the junk columns are dropped.
    pub(crate) fn forward(
        &self,
        wpack: &[f32],
        xpad: &[f32],
        bias: Option<&[f32]>,
        y: &mut [MaybeUninit<f32>],
        scratch: &mut Vec<f32>,
    ) {
        assert_eq!(xpad.len(), self.xpad_len(), "direct conv: padded input");
        assert_eq!(y.len(), self.o * self.ho * self.wo, "direct conv: output");
        let (taps, mr) = (self.offs.len(), self.mr());
        let qn = self.q().next_multiple_of(NR);
        let panels = self.o.div_ceil(mr);
        assert_eq!(
            wpack.len(),
            panels * taps * mr,
            "direct conv: packed weights"
        );
        scratch.resize(panels * mr * qn, 0.0);
        for p in 0..panels {
            let a = &wpack[p * taps * mr..(p + 1) * taps * mr];
            let mut q0 = 0;
            while q0 < qn {
                let (x, c) = (xpad.as_ptr(), scratch.as_mut_ptr());
                // SAFETY: the kernels of `self.simd` run, with their token
                // (AVX-512 is the only case where `mr` is 8). `a` holds
                // taps×mr values and
                // `tile_taps` names taps below `taps` (runs of `len ≤ kw·kh`
                // from `start + r·kh·kw`, `start + len ≤ kh·kw`, `r < C`);
                // every read of `xpad` is at `off(t) + q` with `q < qn ≤
                // Ho·Wp + 15`, below its length (see `xpad_len`); the `mr`
                // rows of 16 (or 32, when `q0 + 32 ≤ qn`) written start at
                // `(mr·p + r)·qn + q0` and end within `scratch`.
                unsafe {
                    let (x, c) = (x.add(q0), c.add(p * mr * qn + q0));
                    let wide = self.wide() && q0 + 2 * NR <= qn;
                    let width = if wide { 2 * NR } else { NR };
                    let runs = self.tile_taps(q0, q0 + width);
                    let (a, offs) = (a.as_ptr(), &self.offs[..]);
                    match (self.simd, mr, wide) {
                        #[cfg(target_arch = "x86_64")]
                        (Simd::Avx512(t), WIDE_MR, true) => {
                            x86::tile_wide::<WIDE_MR, 2>(t, runs, a, x, offs, c, qn)
                        }
                        #[cfg(target_arch = "x86_64")]
                        (Simd::Avx512(t), WIDE_MR, false) => {
                            x86::tile_wide::<WIDE_MR, 1>(t, runs, a, x, offs, c, qn)
                        }
                        #[cfg(target_arch = "x86_64")]
                        (Simd::Avx512(t), _, true) => {
                            x86::tile_wide::<MR, 2>(t, runs, a, x, offs, c, qn)
                        }
                        #[cfg(target_arch = "x86_64")]
                        (Simd::Avx512(t), _, false) => x86::tile(t.avx2(), runs, a, x, offs, c, qn),
                        #[cfg(target_arch = "x86_64")]
                        (Simd::Avx2(t), _, _) => x86::tile(t, runs, a, x, offs, c, qn),
                        _ => portable::tile(runs, a, x, offs, c, qn),
                    }
                    q0 += width;
                }
            }
        }
        let (ho, wo, wp) = (self.ho, self.wo, self.wp);
        for (oc, plane) in y.chunks_exact_mut(ho * wo).enumerate() {
            let src = &scratch[oc * qn..oc * qn + ho * wp];
            match bias {
                Some(b) => drop_junk(plane, src, wo, wp, b[oc]),
                None => drop_junk_copy(plane, src, wo, wp),
            }
        }
    }

    /// Row stride of [`pad_grad`](Self::pad_grad)'s layout: a whole number
    /// of the `∂W` kernel's vectors.
    fn dpad_ld(&self) -> usize {
        self.q().next_multiple_of(self.lanes())
    }

    /// Positions per vector of the `∂W` kernel.
    fn lanes(&self) -> usize {
        if self.wide() {
            16
        } else {
            8
        }
    }

    /// Lays one sample's `dy: [O, Ho, Wo]` out on the padded positions, as
    /// `[mr·⌈O/mr⌉, ld]` rows, zero in the junk columns and the padding rows:
    /// the `δ` that [`grad_weight`](Self::grad_weight) and
    /// [`grad_input`](Self::grad_input) read. `dpad` is reused from sample to
    /// sample (zeroed only when allocated: the zeros are never written).
    pub(crate) fn pad_grad(&self, dy: &[f32], dpad: &mut Vec<f32>) {
        assert_eq!(dy.len(), self.o * self.ho * self.wo, "direct conv: ∂y");
        let (ho, wo, wp, ld) = (self.ho, self.wo, self.wp, self.dpad_ld());
        let len = self.o.div_ceil(self.mr()) * self.mr() * ld;
        if dpad.len() != len {
            *dpad = vec![0.0; len];
        }
        for (plane, dst) in dy.chunks_exact(ho * wo).zip(dpad.chunks_exact_mut(ld)) {
            for (row, d) in plane.chunks_exact(wo).zip(dst.chunks_exact_mut(wp)) {
                crate::cpu::copy_short(&mut d[..wo], row);
            }
        }
    }

    /// `dw: [O, C·kh·kw] += δ ⋆ x` for one sample: `xpad` its padded input,
    /// `dpad` its `δ` from [`pad_grad`](Self::pad_grad).
    pub(crate) fn grad_weight(&self, xpad: &[f32], dpad: &[f32], dw: &mut [f32]) {
        assert_eq!(xpad.len(), self.xpad_len(), "direct conv: padded input");
        let taps = self.offs.len();
        assert_eq!(dw.len(), self.o * taps, "direct conv: ∂W");
        let (ld, mr) = (self.dpad_ld(), self.mr());
        let panels = self.o.div_ceil(mr);
        assert_eq!(dpad.len(), panels * mr * ld, "direct conv: padded ∂y");
        for p in 0..panels {
            let rows = mr.min(self.o - p * mr);
            let d = dpad[p * mr * ld..(p + 1) * mr * ld].as_ptr();
            for t0 in (0..taps).step_by(2) {
                // An odd last tap is paired with itself (its twin is dropped).
                let t1 = (t0 + 1).min(taps - 1);
                let x = [t0, t1].map(|t| xpad[self.offs[t]..].as_ptr());
                let mut sums = [[0f32; 2]; WIDE_MR];
                // SAFETY: the kernels of `self.simd` run, with their token
                // (AVX-512 is the only case where `mr` is 8). The `mr` rows of `ld` values from
                // `p·mr·ld` lie in `dpad`; `xpad` is read at `off(t) + q`
                // for `q < ld ≤ Ho·Wp + 15`, below its length (see
                // `xpad_len`).
                unsafe {
                    match (self.simd, mr) {
                        #[cfg(target_arch = "x86_64")]
                        (Simd::Avx512(t), WIDE_MR) => {
                            x86::weight_pair_wide::<WIDE_MR>(t, ld / 16, d, ld, x, &mut sums)
                        }
                        #[cfg(target_arch = "x86_64")]
                        (Simd::Avx512(t), _) => {
                            x86::weight_pair_wide::<MR>(t, ld / 16, d, ld, x, &mut sums)
                        }
                        #[cfg(target_arch = "x86_64")]
                        (Simd::Avx2(t), _) => x86::weight_pair(t, ld / 8, d, ld, x, &mut sums),
                        _ => portable::weight_pair(ld / 8, d, ld, x, &mut sums),
                    }
                };
                for (r, s) in sums.iter().enumerate().take(rows) {
                    let row = &mut dw[(p * mr + r) * taps..];
                    row[t0] += s[0];
                    if t1 != t0 {
                        row[t1] += s[1];
                    }
                }
            }
        }
    }

    /// `dx: [C, H, W] = col2im(Wᵀ · δ)` for one sample, with `w` the weights
    /// `[O, C·kh·kw]` and `dpad` its `δ` from [`pad_grad`](Self::pad_grad).
    ///
    /// The product `cols[t, q] = Σ_o W[o, t]·δ[o, q]` runs over the padded
    /// positions, so the input pixel at flat padded index `r` of channel `c`
    /// is `Σ_t cols[t, r − off_c(t)]` over that channel's taps
    /// (`off_c(t) = i·Wp + j`): every tap adds one shifted run of `cols`.
    /// A channel is the sum of one long contiguous run of `cols` per tap,
    /// added in `(i, j)` order; the scatter-add of im2col's adjoint (short
    /// runs that overlap from one tap to the next) stalled on store
    /// forwarding. `cols` is scratch, reused from sample to sample.
    pub(crate) fn grad_input(&self, w: &[f32], dpad: &[f32], dx: &mut [f32], cols: &mut Vec<f32>) {
        let taps = self.offs.len();
        let (wp, ld) = (self.wp, self.dpad_ld());
        assert_eq!(w.len(), self.o * taps, "direct conv: weight size");
        assert_eq!(dx.len(), self.c * self.h * self.w, "direct conv: ∂x");
        assert_eq!(
            dpad.len(),
            self.o.div_ceil(self.mr()) * self.mr() * ld,
            "direct conv: padded ∂y"
        );
        let qn = self.q();
        // The interior rows of one padded channel (see `shifted_sums`).
        let len = self.h * wp;
        // `cols` (taps × qn, every value written by the product) then the
        // channel accumulator (zeroed per channel): nothing to zero here.
        let need = taps * qn + len;
        cols.clear();
        cols.reserve(need);
        // SAFETY: the capacity holds `need` values; the product writes all
        // `taps·qn` of the first part (asserted sizes inside; `o ≥ 1`, as
        // conv2d rejects empty axes), the rest is zeroed, so all `need`
        // values are initialized before `set_len`. `cols` is its own buffer
        // (not `w` or `dpad`).
        unsafe {
            cols_product(self.simd, taps, qn, self.o, w, dpad, ld, cols.as_mut_ptr());
            std::ptr::write_bytes(cols.as_mut_ptr().add(taps * qn), 0, len);
            cols.set_len(need);
        }
        let (cols, acc) = cols.split_at_mut(taps * qn);
        #[cfg(target_arch = "x86_64")]
        if self.simd.avx2().is_some() {
            /// [`DirectConv::shifted_sums`] compiled for AVX2: the same loops
            /// (so the same bits), 8 values per instruction instead of the
            /// default build's 4.
            #[target_feature(enable = "avx2,fma")]
            fn wide(d: &DirectConv, cols: &[f32], acc: &mut [f32], dx: &mut [f32]) {
                d.shifted_sums(cols, acc, dx)
            }
            // SAFETY: `self.simd` holds an `Avx2` token (checked just
            // above): the CPU has AVX2 and FMA, `wide`'s only requirement.
            return unsafe { wide(self, cols, acc, dx) };
        }
        self.shifted_sums(cols, acc, dx);
    }

    /// The second half of [`Self::grad_input`]: each input channel of `dx`
    /// is the sum over its taps of the rows of `cols` (`Wᵀ·δ`, `q_n` per tap)
    /// shifted by their offsets, accumulated on the padded width in `acc`.
    #[inline(always)]
    fn shifted_sums(&self, cols: &[f32], acc: &mut [f32], dx: &mut [f32]) {
        let (kh, kw, wp, qn) = (self.kh, self.kw, self.wp, self.q());
        // The interior rows of one padded channel, flat: `ph·Wp ..
        // (ph + H)·Wp` (their pad columns are computed and dropped).
        let (r0, len) = (self.ph * wp, self.h * wp);
        for (ci, dxc) in dx.chunks_exact_mut(self.h * self.w).enumerate() {
            acc.fill(0.0);
            for i in 0..kh {
                for j in 0..kw {
                    let t = (ci * kh + i) * kw + j;
                    // Index `r` of the channel reads `q = r − off_c(t)`,
                    // which exists for `r` in `off_c .. off_c + qn`.
                    let off = i * wp + j;
                    let lo = r0.max(off);
                    let hi = (r0 + len).min(off + qn);
                    if lo >= hi {
                        continue;
                    }
                    let src = &cols[t * qn + lo - off..t * qn + hi - off];
                    for (a, v) in acc[lo - r0..hi - r0].iter_mut().zip(src) {
                        *a += v;
                    }
                }
            }
            for (row, src) in dxc.chunks_exact_mut(self.w).zip(acc.chunks_exact(wp)) {
                row.copy_from_slice(&src[self.pw..self.pw + self.w]);
            }
        }
    }
}

crate::cpu::simd::wide_fn! {
    /// `plane = bias + src` without the junk columns: row `oy` of `plane`
    /// (`wo` values) from `src[oy·wp ..]`. Every value of `plane` written.
    fn drop_junk(plane: &mut [MaybeUninit<f32>], src: &[f32], wo: usize, wp: usize, bias: f32) {
        for (row, s) in plane.chunks_exact_mut(wo).zip(src.chunks(wp)) {
            for (d, &v) in row.iter_mut().zip(&s[..wo]) {
                d.write(bias + v);
            }
        }
    }
}

/// [`drop_junk`] without a bias (`src` as it is, not `0 + src`: the sign
/// of a zero is kept): a copy of each row's first `wo` values.
fn drop_junk_copy(plane: &mut [MaybeUninit<f32>], src: &[f32], wo: usize, wp: usize) {
    for (row, s) in plane.chunks_exact_mut(wo).zip(src.chunks(wp)) {
        crate::cpu::copy_short(row, crate::cpu::as_uninit(&s[..wo]));
    }
}

/// `c[t·q_n + q] = Σ_o w[o·taps + t] · d[o·ld + q]` for `t < taps`,
/// `q < q_n` (`Wᵀ · δ`, every value written): the `gemm` crate with
/// AVX-512, our `sgemm` with AVX2, plain loops with the portable kernels.
///
/// # Safety
/// `c` must be valid for `taps·q_n` writes and not overlap `w` or `d`.
/// (The sizes of `w` and `d` are asserted. Every value is written only
/// when `o ≥ 1`: with `o = 0`, `sgemm` writes nothing.)
#[allow(clippy::too_many_arguments)]
unsafe fn cols_product(
    simd: Simd,
    taps: usize,
    q_n: usize,
    o: usize,
    w: &[f32],
    d: &[f32],
    ld: usize,
    c: *mut f32,
) {
    assert!(w.len() >= o * taps && d.len() >= (o - 1) * ld + q_n);
    // With AVX-512 the `gemm` crate's kernels are twice as wide as ours
    // (∂x of LeNet's second layer: 8 % of a BN-LeNet epoch in our AVX2
    // kernel).
    if simd.avx512().is_some() {
        gemm::gemm(
            taps,
            q_n,
            o,
            c,
            1,
            q_n as isize,
            false,
            w.as_ptr(),
            taps as isize,
            1,
            d.as_ptr(),
            1,
            ld as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = simd.avx2() {
        crate::cpu::sgemm::sgemm(
            t,
            taps,
            q_n,
            o,
            w.as_ptr(),
            1,
            taps as isize,
            d.as_ptr(),
            ld as isize,
            1,
            c,
            q_n,
            false,
            None,
        );
        return;
    }
    for t in 0..taps {
        for q in 0..q_n {
            *c.add(t * q_n + q) = (0..o).map(|oc| w[oc * taps + t] * d[oc * ld + q]).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, in f64: forward, `∂W` and `∂x` of one sample.
    #[allow(clippy::type_complexity)]
    fn reference(
        (c, h, w): (usize, usize, usize),
        (o, kh, kw): (usize, usize, usize),
        (ph, pw): (usize, usize),
        x: &[f32],
        wt: &[f32],
        dy: &[f32],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (ho, wo) = (h + 2 * ph - kh + 1, w + 2 * pw - kw + 1);
        let at = |ci: usize, iy: isize, ix: isize| -> f64 {
            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                0.0
            } else {
                x[(ci * h + iy as usize) * w + ix as usize] as f64
            }
        };
        let mut y = vec![0.0; o * ho * wo];
        let mut dw = vec![0.0; o * c * kh * kw];
        let mut dx = vec![0.0; c * h * w];
        for oc in 0..o {
            for oy in 0..ho {
                for ox in 0..wo {
                    let g = dy[(oc * ho + oy) * wo + ox] as f64;
                    for ci in 0..c {
                        for i in 0..kh {
                            for j in 0..kw {
                                let v = at(
                                    ci,
                                    (oy + i) as isize - ph as isize,
                                    (ox + j) as isize - pw as isize,
                                );
                                let t = (ci * kh + i) * kw + j;
                                let wv = wt[oc * c * kh * kw + t] as f64;
                                y[(oc * ho + oy) * wo + ox] += wv * v;
                                dw[oc * c * kh * kw + t] += g * v;
                                let (iy, ix) = (
                                    (oy + i) as isize - ph as isize,
                                    (ox + j) as isize - pw as isize,
                                );
                                if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                    dx[(ci * h + iy as usize) * w + ix as usize] += g * wv;
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dw, dx)
    }

    /// A sample `[C, H, W]` and weights `[O, C, kh, kw]` of small varied
    /// values, for the tests.
    fn sample_and_weights(
        (c, h, w): (usize, usize, usize),
        (o, kh, kw): (usize, usize, usize),
    ) -> (Vec<f32>, Vec<f32>) {
        let x = (0..c * h * w)
            .map(|i| ((i * 7 % 19) as f32 - 9.0) / 7.0)
            .collect();
        let wt = (0..o * c * kh * kw)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
            .collect();
        (x, wt)
    }

    /// Skipping the kernel rows that read only the zero border keeps every
    /// bit of the forward pass (and of `∂x` by the transposed geometry).
    #[test]
    fn skipping_border_rows_keeps_the_bits() {
        let simds = crate::cpu::isa::test_simds();
        for (cin, h, w, o, kh, kw, ph, pw) in [
            (1, 28, 28, 6, 5, 5, 2, 2),
            (16, 10, 10, 6, 5, 5, 4, 4),
            (3, 7, 9, 7, 3, 2, 1, 0),
            (2, 6, 19, 3, 3, 4, 2, 3),
            (2, 3, 40, 5, 5, 3, 4, 1),
        ] {
            let (x, wt) = sample_and_weights((cin, h, w), (o, kh, kw));
            for &simd in &simds {
                let run = |skip: bool| {
                    let mut d = DirectConv::new((cin, h, w), (o, kh, kw), (ph, pw), simd);
                    d.skip_border = skip;
                    let (mut xpad, mut scratch) = (Vec::new(), Vec::new());
                    d.pad_input(&x, &mut xpad);
                    let mut y = vec![MaybeUninit::new(f32::NAN); o * d.ho * d.wo];
                    d.forward(&d.pack_weights(&wt), &xpad, None, &mut y, &mut scratch);
                    // SAFETY: initialized (to NaN, then by `forward`).
                    y.iter()
                        .map(|v| unsafe { v.assume_init() }.to_bits())
                        .collect::<Vec<u32>>()
                };
                assert_eq!(run(true), run(false), "{cin}x{h}x{w}, {kh}x{kw}, pad {ph}");
            }
            let d = DirectConv::new((cin, h, w), (o, kh, kw), (ph, pw), Simd::Portable);
            let skipped = (0..d.q())
                .step_by(NR)
                .filter(|&q0| {
                    d.tile_taps(q0, q0 + NR).len * d.tile_taps(q0, q0 + NR).runs < d.offs.len()
                })
                .count();
            // (A border of one row is only skipped by tiles within one
            // output row.)
            assert!(ph < 2 || skipped > 0, "no tile skipped a row");
        }
    }

    #[test]
    fn forward_and_weight_gradient_match_the_definition() {
        let simds = crate::cpu::isa::test_simds();
        // LeNet's two layers, odd sizes, more than 6 channels, one tap,
        // padding as large as the kernel allows, widths past 8.
        for (cin, h, w, o, kh, kw, ph, pw) in [
            (2, 6, 19, 3, 3, 4, 2, 3),
            (5, 11, 10, 8, 2, 5, 0, 2),
            (1, 28, 28, 6, 5, 5, 2, 2),
            (6, 14, 14, 16, 5, 5, 0, 0),
            (3, 7, 9, 7, 3, 2, 1, 0),
            (2, 5, 4, 13, 1, 1, 0, 1),
            (1, 3, 3, 1, 3, 3, 1, 1),
            (1, 8, 7, 2, 3, 1, 1, 0),
        ] {
            let (x, wt) = sample_and_weights((cin, h, w), (o, kh, kw));
            for &simd in &simds {
                let d = DirectConv::new((cin, h, w), (o, kh, kw), (ph, pw), simd);
                let wpack = d.pack_weights(&wt);
                let (ho, wo) = (d.ho, d.wo);
                let dy: Vec<f32> = (0..o * ho * wo)
                    .map(|i| ((i * 3 % 13) as f32 - 6.0) / 5.0)
                    .collect();
                let (want_y, want_dw, want_dx) =
                    reference((cin, h, w), (o, kh, kw), (ph, pw), &x, &wt, &dy);
                let (mut xpad, mut scratch, mut dpad, mut cols) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                // Twice through the same buffers: reuse must not leak values.
                let bias: Vec<f32> = (0..o).map(|i| i as f32 * 0.5).collect();
                let mut dw = vec![0.0f32; o * cin * kh * kw];
                for round in 0..2 {
                    d.pad_input(&x, &mut xpad);
                    let mut y = vec![MaybeUninit::new(f32::NAN); o * ho * wo];
                    d.forward(&wpack, &xpad, Some(&bias), &mut y, &mut scratch);
                    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout; all were
                    // initialized (to NaN, then by `forward`).
                    let y: Vec<f32> = y.iter().map(|v| unsafe { v.assume_init() }).collect();
                    for (i, (&got, &want)) in y.iter().zip(&want_y).enumerate() {
                        let want = want + bias[i / (ho * wo)] as f64;
                        assert!(
                            (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "y[{i}]: {got} vs {want}"
                        );
                    }
                    d.pad_grad(&dy, &mut dpad);
                    d.grad_weight(&xpad, &dpad, &mut dw);
                    let mut dx = vec![f32::NAN; cin * h * w];
                    d.grad_input(&wt, &dpad, &mut dx, &mut cols);
                    for (i, (&got, &want)) in dx.iter().zip(&want_dx).enumerate() {
                        assert!(
                            (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "dx[{i}]: {got} vs {want}"
                        );
                    }
                    // ∂x again, as the forward pass of the transposed geometry.
                    if let Some(t) = d.transposed() {
                        let wtp = t.pack_weights(&d.flip_weights(&wt));
                        let (mut dypad, mut tiles) = (Vec::new(), Vec::new());
                        t.pad_input(&dy, &mut dypad);
                        let mut dx = vec![MaybeUninit::new(f32::NAN); cin * h * w];
                        t.forward(&wtp, &dypad, None, &mut dx, &mut tiles);
                        for (i, (got, &want)) in dx.iter().zip(&want_dx).enumerate() {
                            // SAFETY: initialized (to NaN, then by `forward`).
                            let got = unsafe { got.assume_init() };
                            assert!(
                                (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                                "transposed dx[{i}]: {got} vs {want}"
                            );
                        }
                    } else {
                        assert!(ph >= kh || pw >= kw);
                    }
                    let times = (round + 1) as f64;
                    for (i, (&got, &want)) in dw.iter().zip(&want_dw).enumerate() {
                        let want = want * times;
                        assert!(
                            (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "dw[{i}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
