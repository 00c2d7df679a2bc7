//! Window geometry shared by convolution and pooling.

/// The output positions `o` in `0..out` whose input coordinate
/// `o·stride + j − pad` lies in `0..len`: a range `lo..hi`.
pub(crate) fn valid(j: usize, pad: usize, stride: usize, len: usize, out: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(j).div_ceil(stride).min(out);
    let hi = (pad + len)
        .saturating_sub(j)
        .div_ceil(stride)
        .min(out)
        .max(lo);
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn valid_spans_skip_the_padding() {
        // 5 inputs, kernel offset j, padding 1, stride 1: outputs 0..5.
        assert_eq!(valid(0, 1, 1, 5, 5), (1, 5)); // o = 0 reads input −1
        assert_eq!(valid(1, 1, 1, 5, 5), (0, 5));
        assert_eq!(valid(2, 1, 1, 5, 5), (0, 4)); // o = 4 reads input 5
                                                  // Stride 2, no padding, 7 inputs, 3 outputs: every offset fits.
        assert_eq!(valid(2, 0, 2, 7, 3), (0, 3));
    }
}
