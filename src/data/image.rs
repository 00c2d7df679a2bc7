//! Single images for `backprop predict`: PNG (gray, gray+alpha, RGB, RGBA,
//! palette; 8 or 16 bit) and PGM (P2 ascii, P5 binary), detected by content.
//! Colour is converted to gray with the ITU-R 601 luma weights; values are
//! scaled to `[0, 1]`.

use super::DEFLATE_MAX_RATIO;
use crate::error::{Error, Result};
use crate::Tensor;
use std::path::Path;

/// The 8-byte PNG signature.
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
/// Files larger than this are not images we are meant to classify.
const MAX_FILE_BYTES: u64 = 512 << 20;
/// Decoded images larger than this many pixels are refused.
const MAX_PIXELS: usize = 1 << 26;

/// ITU-R 601 luma.
fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Load one image for `backprop predict`: PNG (8-bit or 16-bit gray,
/// gray+alpha, RGB, RGBA, palette; colour converted to gray with the ITU-R 601
/// luma weights 0.299/0.587/0.114, alpha ignored) or PGM (P2 ascii and P5
/// binary, maxval up to 65535, `#` comments). The format is detected by
/// content (PNG signature / `P2` / `P5`), not by extension.
///
/// Returns a tensor of shape `[1, 1, H, W]` with values in `[0, 1]`
/// (value / maxval). Errors name the file and what is wrong.
pub fn load_image(path: &Path) -> Result<Tensor> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::data(
            path,
            "is a folder; pass a PNG or PGM image file",
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::data(
            path,
            format!(
                "is {} bytes, too large for an image to classify; pass a small PNG or PGM image",
                meta.len()
            ),
        ));
    }
    let bytes = crate::io::read_regular(path)?;
    decode_image(&bytes, path)
}

/// [`load_image`] on a file already in memory: `bytes` is the whole file,
/// `origin` names it in error messages. This is the same decoder
/// `load_image` runs. Sizes a header declares are checked against
/// `bytes.len()` before the pixels are allocated.
///
/// ```
/// use backprop::data::decode_image;
/// use std::path::Path;
/// let t = decode_image(b"P2\n2 1\n4\n0 4\n", Path::new("a.pgm")).unwrap();
/// assert_eq!((t.shape(), t.data()), (&[1, 1, 1, 2][..], &[0.0, 1.0][..]));
/// let e = decode_image(b"P5\n4000 4000\n255\n", Path::new("b.pgm")).unwrap_err();
/// assert!(e.to_string().contains("truncated"));
/// ```
pub fn decode_image(bytes: &[u8], origin: &Path) -> Result<Tensor> {
    let path = origin;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::data(
            path,
            format!(
                "is {} bytes, too large for an image to classify; pass a small PNG or PGM image",
                bytes.len()
            ),
        ));
    }
    if bytes.starts_with(&PNG_SIGNATURE) {
        load_png(path, bytes)
    } else if bytes.starts_with(b"P2") || bytes.starts_with(b"P5") {
        load_pgm(path, bytes)
    } else {
        Err(unrecognised(path, bytes))
    }
}

/// The error for a file that is neither PNG nor PGM, naming what it seems to be.
fn unrecognised(path: &Path, bytes: &[u8]) -> Error {
    let what = if bytes.is_empty() {
        "the file is empty".to_string()
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "this is a JPEG image, which is not supported".into()
    } else if bytes.starts_with(b"GIF8") {
        "this is a GIF image, which is not supported".into()
    } else if bytes.starts_with(b"BM") {
        "this looks like a BMP image, which is not supported".into()
    } else if bytes.len() >= 2 && bytes[0] == b'P' && matches!(bytes[1], b'1' | b'3' | b'4' | b'6')
    {
        format!(
            "this is a P{} Netpbm image (PBM/PPM), only P2 and P5 (PGM) are supported",
            bytes[1] as char
        )
    } else {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!(
            "not a PNG or PGM image (it starts with bytes {})",
            head.join(" ")
        )
    };
    Error::data(path, format!("{what}; convert it to a PNG or PGM image"))
}

/// Decode a PNG held in memory.
/// Refuse a PNG whose palette (`PLTE` chunk) is not whole RGB entries
/// (1 to 256 of 3 bytes): the `png` crate (0.18.1) panics expanding such a
/// palette, so it is checked before the file reaches it (found by fuzzing
/// the image-folder decoder).
pub(crate) fn check_png_palette(bytes: &[u8], path: &Path) -> Result<()> {
    let mut at = PNG_SIGNATURE.len();
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if &head[4..8] == b"PLTE" && (len == 0 || !len.is_multiple_of(3) || len > 768) {
            return Err(Error::data(
                path,
                format!(
                    "has a palette of {len} bytes, not 1 to 256 colours of 3 bytes; the PNG is corrupt, save it again"
                ),
            ));
        }
        if &head[4..8] == b"IEND" {
            break;
        }
        at = at.saturating_add(12).saturating_add(len);
    }
    Ok(())
}

fn load_png(path: &Path, bytes: &[u8]) -> Result<Tensor> {
    check_png_palette(bytes, path)?;
    let bad = |e: png::DecodingError| {
        Error::data(
            path,
            format!("the PNG could not be decoded ({e}); the file is corrupt or truncated, save it again"),
        )
    };
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().map_err(bad)?;
    let (w, h) = reader.info().size();
    let (w, h) = (w as usize, h as usize);
    if w.saturating_mul(h) > MAX_PIXELS {
        return Err(Error::data(
            path,
            format!(
                "the image is {w}x{h} pixels, too large; resize it to the size the model expects"
            ),
        ));
    }
    // The pixel data is deflate-compressed inside the file: a header that
    // declares more of it than the file could hold is refused before the
    // image is allocated.
    let packed = (w as u64 * reader.info().bits_per_pixel() as u64).div_ceil(8) * h as u64;
    let most = bytes.len() as u64 * DEFLATE_MAX_RATIO;
    if packed > most {
        return Err(Error::data(
            path,
            format!(
                "the PNG header declares a {w}x{h} image ({packed} bytes of pixel data) but a {}-byte file \
                 holds at most {most} bytes of compressed pixel data; the file is truncated or corrupt, save it again",
                bytes.len()
            ),
        ));
    }
    let size = reader.output_buffer_size().ok_or_else(|| {
        Error::data(
            path,
            format!("the image is {w}x{h} pixels, too large to decode"),
        )
    })?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(bad)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(Error::data(
                path,
                "the palette PNG could not be expanded; save it as gray or RGB",
            ))
        }
    };
    let (bps, maxval) = match info.bit_depth {
        png::BitDepth::Eight => (1, 255.0f32),
        png::BitDepth::Sixteen => (2, 65535.0f32),
        d => {
            return Err(Error::data(
                path,
                format!(
                    "unexpected PNG bit depth {d:?} after expansion; save it as an 8-bit image"
                ),
            ))
        }
    };
    let sample = |row: &[u8], i: usize| -> f32 {
        if bps == 1 {
            row[i] as f32
        } else {
            u16::from_be_bytes([row[2 * i], row[2 * i + 1]]) as f32
        }
    };
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = &buf[y * info.line_size..];
        for x in 0..w {
            let p = x * channels;
            let v = if channels >= 3 {
                luma(sample(row, p), sample(row, p + 1), sample(row, p + 2))
            } else {
                sample(row, p)
            };
            out.push((v / maxval).clamp(0.0, 1.0));
        }
    }
    Ok(Tensor::from_vec(vec![1, 1, h, w], out))
}

/// A cursor over a PGM file's bytes.
struct Pgm<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl Pgm<'_> {
    /// Skip whitespace and `#` comments (to end of line).
    fn skip_space(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if b == b'#' {
                while self.pos < self.bytes.len() && !matches!(self.bytes[self.pos], b'\n' | b'\r')
                {
                    self.pos += 1;
                }
            } else if b.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The next whitespace-separated token, `None` at the end of the file.
    fn token(&mut self) -> Option<&[u8]> {
        self.skip_space();
        let start = self.pos;
        while self.pos < self.bytes.len()
            && !self.bytes[self.pos].is_ascii_whitespace()
            && self.bytes[self.pos] != b'#'
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.bytes[start..self.pos])
    }

    /// True when only whitespace and comments remain.
    fn at_end(&mut self) -> bool {
        self.skip_space();
        self.pos >= self.bytes.len()
    }

    /// The next token as a number; `what` names it in errors.
    fn number(&mut self, what: impl Fn() -> String) -> Result<u32> {
        let path = self.path;
        let Some(tok) = self.token() else {
            return Err(Error::data(
                path,
                format!(
                    "the PGM file ends before its {}; the file is truncated",
                    what()
                ),
            ));
        };
        let s = String::from_utf8_lossy(tok);
        let shown: String = s.chars().take(20).collect();
        if !tok.iter().all(u8::is_ascii_digit) {
            return Err(Error::data(
                path,
                format!("the PGM {} {shown:?} is not a whole number", what()),
            ));
        }
        s.parse()
            .map_err(|_| Error::data(path, format!("the PGM {} {shown:?} is too large", what())))
    }
}

/// Decode a P2 or P5 PGM held in memory.
fn load_pgm(path: &Path, bytes: &[u8]) -> Result<Tensor> {
    let binary = bytes[1] == b'5';
    let mut p = Pgm {
        path,
        bytes,
        pos: 2,
    };
    if !p
        .bytes
        .get(2)
        .is_some_and(|b| b.is_ascii_whitespace() || *b == b'#')
    {
        return Err(Error::data(
            path,
            "not a PGM image: the magic P2/P5 must be followed by whitespace; convert it to PNG or PGM",
        ));
    }
    let w = p.number(|| "width".into())? as usize;
    let h = p.number(|| "height".into())? as usize;
    let maxval = p.number(|| "maxval".into())?;
    if w == 0 || h == 0 {
        return Err(Error::data(
            path,
            format!("the PGM header declares a {w}x{h} image; it must be at least 1x1"),
        ));
    }
    if maxval == 0 || maxval > 65535 {
        return Err(Error::data(
            path,
            format!("the PGM maxval is {maxval}; it must be between 1 and 65535"),
        ));
    }
    let n = w
        .checked_mul(h)
        .filter(|&n| n <= MAX_PIXELS)
        .ok_or_else(|| {
            Error::data(
                path,
                format!("the PGM header declares a {w}x{h} image, too large"),
            )
        })?;
    let scale = 1.0 / maxval as f32;
    let too_big = |v: u32, k: usize| {
        Error::data(
            path,
            format!(
                "pixel {} (row {}, column {}) has value {v}, above the maxval {maxval} in the header",
                k + 1,
                k / w + 1,
                k % w + 1
            ),
        )
    };
    let mut out = Vec::new();
    if binary {
        // exactly one whitespace byte separates maxval from the raster
        let start = p.pos + 1;
        let bps = if maxval < 256 { 1 } else { 2 };
        let need = n * bps;
        let have = bytes.len().saturating_sub(start);
        if have < need {
            return Err(Error::data(
                path,
                format!(
                    "the P5 raster is truncated: a {w}x{h} image with maxval {maxval} needs {need} bytes but only {have} follow the header"
                ),
            ));
        }
        out.reserve(n);
        let raster = &bytes[start..start + need];
        for k in 0..n {
            let v = if bps == 1 {
                raster[k] as u32
            } else {
                u16::from_be_bytes([raster[2 * k], raster[2 * k + 1]]) as u32
            };
            if v > maxval {
                return Err(too_big(v, k));
            }
            out.push(v as f32 * scale);
        }
    } else {
        // every value needs at least one byte: check before reserving
        if n > bytes.len() {
            return Err(Error::data(
                path,
                format!(
                    "the P2 header declares {w}x{h} = {n} pixels but the file is only {} bytes; the file is truncated",
                    bytes.len()
                ),
            ));
        }
        out.reserve(n);
        for k in 0..n {
            if p.at_end() {
                return Err(Error::data(
                    path,
                    format!(
                        "the P2 file holds only {k} pixel values but its header declares {w}x{h} = {n}; the file is truncated"
                    ),
                ));
            }
            let v =
                p.number(|| format!("pixel {} (row {}, column {})", k + 1, k / w + 1, k % w + 1))?;
            if v > maxval {
                return Err(too_big(v, k));
            }
            out.push(v as f32 * scale);
        }
        if p.token().is_some() {
            return Err(Error::data(
                path,
                format!("the P2 file holds more than the {w}x{h} = {n} pixel values its header declares; fix the width and height"),
            ));
        }
    }
    Ok(Tensor::from_vec(vec![1, 1, h, w], out))
}

/// The side of an MNIST image.
pub const MNIST_SIDE: usize = 28;
/// The side of the box an MNIST digit is scaled into (its longer side).
const MNIST_BOX: usize = 20;

/// Make a drawn or photographed digit look like an MNIST sample, as MNIST
/// itself was made: the ink's bounding box scaled (aspect kept, averaged
/// over the covered pixels, so edges turn gray) until its longer side is
/// 20 pixels, then placed in a 28×28 image so that its centre of mass is
/// at the centre. `gray` is `w × h` values in `[0, 1]`, row by row; dark
/// ink on a light background (the mean of the border above 0.5) is
/// inverted first, since MNIST digits are white on black.
///
/// Returns the 784 values, or `None` when there is no ink (every pixel
/// under a tenth of the brightest).
///
/// ```
/// use backprop::data::mnist_like;
/// // A 4×8 bar in the corner of a 40×40 image moves to the centre and
/// // grows to 20 pixels high.
/// let mut img = vec![0.0; 40 * 40];
/// for y in 0..8 { for x in 0..4 { img[y * 40 + x] = 1.0; } }
/// let out = mnist_like(&img, 40, 40).unwrap();
/// let rows: Vec<usize> = (0..28).filter(|r| out[r * 28..(r + 1) * 28].iter().any(|&v| v > 0.5)).collect();
/// assert_eq!((rows[0], rows.len()), (5, 20));
/// assert!(out[14 * 28 + 14] > 0.9 && out[0] == 0.0);
/// ```
pub fn mnist_like(gray: &[f32], w: usize, h: usize) -> Option<Vec<f32>> {
    assert_eq!(
        gray.len(),
        w * h,
        "mnist_like: {w}×{h} needs {} values",
        w * h
    );
    if w == 0 || h == 0 {
        return None;
    }
    let border: Vec<f32> = (0..w)
        .flat_map(|x| [gray[x], gray[(h - 1) * w + x]])
        .chain((0..h).flat_map(|y| [gray[y * w], gray[y * w + w - 1]]))
        .collect();
    let light = border.iter().sum::<f32>() / border.len() as f32 > 0.5;
    let ink: Vec<f32> = gray
        .iter()
        .map(|&v| {
            let v = if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            };
            if light {
                1.0 - v
            } else {
                v
            }
        })
        .collect();
    let max = ink.iter().cloned().fold(0.0f32, f32::max);
    if max <= 0.0 {
        return None;
    }
    let on = |x: usize, y: usize| ink[y * w + x] >= 0.1 * max;
    let (mut x0, mut x1, mut y0, mut y1) = (w, 0, h, 0);
    for y in 0..h {
        for x in 0..w {
            if on(x, y) {
                (x0, x1, y0, y1) = (x0.min(x), x1.max(x + 1), y0.min(y), y1.max(y + 1));
            }
        }
    }
    let (bw, bh) = (x1 - x0, y1 - y0);
    let scale = MNIST_BOX as f64 / bw.max(bh) as f64;
    let nw = ((bw as f64 * scale).round() as usize).clamp(1, MNIST_BOX);
    let nh = ((bh as f64 * scale).round() as usize).clamp(1, MNIST_BOX);
    let small = box_resample(&ink, w, (x0, y0, bw, bh), nw, nh);
    // Centre of mass of the scaled digit (in pixel indices), moved to
    // pixel (14, 14), where MNIST puts it.
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for y in 0..nh {
        for x in 0..nw {
            let v = small[y * nw + x] as f64;
            mass += v;
            mx += v * x as f64;
            my += v * y as f64;
        }
    }
    let half = MNIST_SIDE as f64 / 2.0;
    let place =
        |c: f64, n: usize| -> usize { ((half - c).round().max(0.0) as usize).min(MNIST_SIDE - n) };
    let (ox, oy) = (place(mx / mass, nw), place(my / mass, nh));
    let mut out = vec![0.0f32; MNIST_SIDE * MNIST_SIDE];
    for y in 0..nh {
        let row = (oy + y) * MNIST_SIDE + ox;
        out[row..row + nw].copy_from_slice(&small[y * nw..(y + 1) * nw]);
    }
    // Stretch to the full range, as MNIST's gray levels use it.
    let top = out.iter().cloned().fold(0.0f32, f32::max);
    if top > 0.0 {
        out.iter_mut().for_each(|v| *v /= top);
    }
    Some(out)
}

/// The `(x0, y0, bw, bh)` window of a `w`-wide image, resampled to
/// `nw × nh` by area averaging: each output pixel is the mean of the input
/// it covers, partly covered pixels by their covered fraction. (Written
/// here rather than taken from an image crate: it is twenty lines, and the
/// one resampling we need.)
fn box_resample(
    src: &[f32],
    w: usize,
    (x0, y0, bw, bh): (usize, usize, usize, usize),
    nw: usize,
    nh: usize,
) -> Vec<f32> {
    // Input pixels [a, b) in source units covered by output pixel i, with weights.
    let spans = |n_in: usize, n_out: usize| -> Vec<Vec<(usize, f64)>> {
        let step = n_in as f64 / n_out as f64;
        (0..n_out)
            .map(|i| {
                let (a, b) = (i as f64 * step, (i + 1) as f64 * step);
                (a.floor() as usize..(b.ceil() as usize).min(n_in))
                    .map(|j| {
                        let cover = (b.min(j as f64 + 1.0) - a.max(j as f64)).max(0.0);
                        (j, cover / step)
                    })
                    .collect()
            })
            .collect()
    };
    let (xs, ys) = (spans(bw, nw), spans(bh, nh));
    let mut out = vec![0.0f32; nw * nh];
    for (oy, ry) in ys.iter().enumerate() {
        for (ox, rx) in xs.iter().enumerate() {
            let mut acc = 0.0f64;
            for &(y, wy) in ry {
                for &(x, wx) in rx {
                    acc += wy * wx * src[(y0 + y) * w + x0 + x] as f64;
                }
            }
            out[oy * nw + ox] = acc as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn mnist_samples_stay_mnist_like_and_ink_on_paper_is_inverted() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
        let set = crate::data::load_idx_pair(
            &dir.join("t10k-images-idx3-ubyte.gz"),
            &dir.join("t10k-labels-idx1-ubyte.gz"),
        )
        .unwrap();
        for i in 0..50 {
            let (x, _) = set.batch(&[i]);
            let img = x.data();
            let out = mnist_like(img, 28, 28).unwrap();
            // MNIST digits were made this way: doing it again moves little ink.
            let moved: f32 = out.iter().zip(img).map(|(a, b)| (a - b).abs()).sum();
            let ink: f32 = img.iter().sum();
            assert!(moved < 0.6 * ink, "sample {i}: {moved} of {ink}");
            // Dark ink on white paper gives the same image.
            let paper: Vec<f32> = img.iter().map(|v| 1.0 - v).collect();
            let inverted = mnist_like(&paper, 28, 28).unwrap();
            let gap = inverted
                .iter()
                .zip(&out)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(gap < 1e-5, "sample {i}: {gap}");
        }
        assert_eq!(mnist_like(&[0.0; 100], 10, 10), None);
    }

    #[test]
    fn a_thin_stroke_scales_by_its_longer_side() {
        // A vertical line 2 wide, 100 high, in a 200×200 image: 20 high in
        // the result, under 1 pixel wide plus gray edges, centred.
        let (w, h) = (200, 200);
        let mut img = vec![0.0; w * h];
        for y in 50..150 {
            img[y * w + 30] = 1.0;
            img[y * w + 31] = 1.0;
        }
        let out = mnist_like(&img, w, h).unwrap();
        let lit: Vec<(usize, usize)> = (0..784)
            .filter(|&i| out[i] > 0.0)
            .map(|i| (i % 28, i / 28))
            .collect();
        let rows: std::collections::BTreeSet<usize> = lit.iter().map(|p| p.1).collect();
        let cols: std::collections::BTreeSet<usize> = lit.iter().map(|p| p.0).collect();
        assert_eq!(rows.len(), 20);
        assert_eq!(cols.len(), 1);
        assert_eq!(*cols.iter().next().unwrap(), 14);
        assert_eq!((*rows.first().unwrap(), *rows.last().unwrap()), (5, 24));
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn png_bytes(
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
        palette: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut e = png::Encoder::new(&mut out, w, h);
            e.set_color(color);
            e.set_depth(depth);
            if let Some(p) = palette {
                e.set_palette(p.to_vec());
            }
            let mut wr = e.write_header().unwrap();
            wr.write_image_data(data).unwrap();
            wr.finish().unwrap();
        }
        out
    }

    fn msg(e: Error) -> String {
        let s = e.to_string();
        assert!(!s.contains('\n'), "multi-line message: {s}");
        s
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn gray_png() {
        let dir = tempfile::tempdir().unwrap();
        let b = png_bytes(
            3,
            2,
            png::ColorType::Grayscale,
            png::BitDepth::Eight,
            &[0, 51, 255, 102, 153, 204],
            None,
        );
        // the name says .pgm: detection is by content
        let p = write(dir.path(), "g.pgm", &b);
        let t = load_image(&p).unwrap();
        assert_eq!(t.shape(), &[1, 1, 2, 3]);
        close(t.data(), &[0.0, 0.2, 1.0, 0.4, 0.6, 0.8]);
    }

    #[test]
    fn gray16_and_gray_alpha_png() {
        let dir = tempfile::tempdir().unwrap();
        let b = png_bytes(
            2,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            &[0xff, 0xff, 0x80, 0x00],
            None,
        );
        let t = load_image(&write(dir.path(), "g16.png", &b)).unwrap();
        close(t.data(), &[1.0, 32768.0 / 65535.0]);
        let b = png_bytes(
            2,
            1,
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Eight,
            &[255, 0, 51, 255],
            None,
        );
        let t = load_image(&write(dir.path(), "ga.png", &b)).unwrap();
        close(t.data(), &[1.0, 0.2]);
    }

    #[test]
    fn rgb_rgba_and_palette_png() {
        let dir = tempfile::tempdir().unwrap();
        let px = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];
        let want = [0.299, 0.587, 0.114, 1.0];
        let b = png_bytes(2, 2, png::ColorType::Rgb, png::BitDepth::Eight, &px, None);
        let t = load_image(&write(dir.path(), "c.png", &b)).unwrap();
        assert_eq!(t.shape(), &[1, 1, 2, 2]);
        close(t.data(), &want);

        let rgba: Vec<u8> = px.chunks(3).flat_map(|c| [c[0], c[1], c[2], 7]).collect();
        let b = png_bytes(
            2,
            2,
            png::ColorType::Rgba,
            png::BitDepth::Eight,
            &rgba,
            None,
        );
        close(
            load_image(&write(dir.path(), "a.png", &b)).unwrap().data(),
            &want,
        );

        let b = png_bytes(
            4,
            1,
            png::ColorType::Indexed,
            png::BitDepth::Eight,
            &[0, 1, 2, 3],
            Some(&px),
        );
        close(
            load_image(&write(dir.path(), "p.png", &b)).unwrap().data(),
            &want,
        );
    }

    #[test]
    fn p2_pgm() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "a.png",
            b"P2\n# made by hand\n3 2 # w h\n10\n0 5 10\n# mid\n2 4\n6\n",
        );
        let t = load_image(&p).unwrap();
        assert_eq!(t.shape(), &[1, 1, 2, 3]);
        close(t.data(), &[0.0, 0.5, 1.0, 0.2, 0.4, 0.6]);
    }

    #[test]
    fn p5_pgm_8_and_16_bit() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = b"P5 # c\n2 2\n255\n".to_vec();
        b.extend([0, 255, 51, 102]);
        let t = load_image(&write(dir.path(), "b.pgm", &b)).unwrap();
        assert_eq!(t.shape(), &[1, 1, 2, 2]);
        close(t.data(), &[0.0, 1.0, 0.2, 0.4]);

        let mut b = b"P5\n2 1\n65535\n".to_vec();
        b.extend([0xff, 0xff, 0x00, 0x01]);
        let t = load_image(&write(dir.path(), "c.pgm", &b)).unwrap();
        close(t.data(), &[1.0, 1.0 / 65535.0]);
    }

    #[test]
    fn pgm_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&[u8], &str)] = &[
            (b"P5\n4 4\n255\n\x01\x02", "truncated"),
            (b"P2\n2 2\n255\n1 2 3", "only 3 pixel values"),
            (b"P2\n2 2\n255\n1 2 3 4 5", "more than"),
            (b"P2\n2 2\n9\n1 2 3 10", "above the maxval"),
            (b"P2\n2 x\n9\n", "height \"x\""),
            (b"P2\n2 2\n70000\n", "maxval is 70000"),
            (b"P2\n0 2\n255\n", "0x2"),
            (b"P2\n", "ends before its width"),
            (b"P5\n100000 100000\n255\n", "too large"),
            (b"P5\n60000 60000\n255\n", "too large"),
            (b"P5\n4000 4000\n255\n\x00", "needs 16000000 bytes"),
            (b"P2\n99999999999\n", "too large"),
            (b"P2\n3000 3000\n255\n", "truncated"),
            (b"P2x", "followed by whitespace"),
        ];
        for (i, (b, want)) in cases.iter().enumerate() {
            let p = write(dir.path(), &format!("e{i}.pgm"), b);
            let e = msg(load_image(&p).unwrap_err());
            assert!(
                e.contains(&format!("e{i}.pgm")) && e.contains(want),
                "case {i}: {e}"
            );
        }
    }

    #[test]
    fn png_header_larger_than_its_data_is_refused_before_allocating() {
        // Found by review for the fuzzing issue: a 1-bit 8000x8000 PNG (64M
        // pixels, under MAX_PIXELS) of 60-odd bytes made us allocate 64 MB
        // for the expanded frame before finding the data missing; 16-bit RGBA
        // made it 512 MB.
        let mut b = png_bytes(
            1,
            1,
            png::ColorType::Rgba,
            png::BitDepth::Sixteen,
            &[0; 8],
            None,
        );
        // patch the IHDR: width = height = 8000, and its CRC
        b[16..24].copy_from_slice(&[0, 0, 0x1f, 0x40, 0, 0, 0x1f, 0x40]);
        let crc = crc32(&b[12..29]);
        b[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = msg(decode_image(&b, Path::new("huge.png")).unwrap_err());
        assert!(
            e.starts_with("huge.png: the PNG header declares a 8000x8000 image (512000000 bytes")
                && e.contains("truncated or corrupt"),
            "{e}"
        );
    }

    /// The CRC-32 of PNG chunks (zlib's, as flate2 computes it).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = flate2::Crc::new();
        c.update(bytes);
        c.sum()
    }

    #[test]
    fn bytes_and_path_give_the_same_result_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let png = png_bytes(
            2,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::Eight,
            &[0, 255],
            None,
        );
        let cases: Vec<Vec<u8>> = vec![
            png.clone(),
            png[..png.len() - 3].to_vec(),
            b"P2\n1 1\n2\n1\n".to_vec(),
            b"P5\n9 9\n255\n".to_vec(),
            b"BM".to_vec(),
        ];
        for (i, b) in cases.iter().enumerate() {
            let p = write(dir.path(), &format!("c{i}"), b);
            let a = load_image(&p).map_err(|e| e.to_string());
            let b = decode_image(b, &p).map_err(|e| e.to_string());
            assert_eq!(a, b, "case {i}");
        }
    }

    #[test]
    fn other_formats_and_corrupt_png() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"\xff\xd8\xff\xe0", "JPEG"),
            (b"P6\n1 1\n255\n\0\0\0", "P6"),
            (b"hello", "68 65 6c 6c 6f"),
        ];
        for (i, (b, want)) in cases.iter().enumerate() {
            let p = write(dir.path(), &format!("o{i}.png"), b);
            let e = msg(load_image(&p).unwrap_err());
            assert!(
                e.contains(want) && e.contains("PNG or PGM"),
                "case {i}: {e}"
            );
        }
        let b = png_bytes(
            8,
            8,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &[9; 192],
            None,
        );
        let p = write(dir.path(), "cut.png", &b[..b.len() - 20]);
        let e = msg(load_image(&p).unwrap_err());
        assert!(
            e.contains("cut.png") && e.contains("PNG could not be decoded"),
            "{e}"
        );
        let p = write(dir.path(), "sig.png", &b[..8]);
        assert!(msg(load_image(&p).unwrap_err()).contains("sig.png"));
        let e = msg(load_image(dir.path()).unwrap_err());
        assert!(e.contains("folder"), "{e}");
        let e = msg(load_image(&dir.path().join("missing.png")).unwrap_err());
        assert!(e.contains("missing.png"), "{e}");
    }
}
