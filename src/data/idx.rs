//! IDX files, the format MNIST ships in: a 4-byte magic number
//! `00 00 <type> <ndims>`, `ndims` big-endian `u32` dimensions, then the
//! payload. Files may be gzip-compressed (detected by the gzip magic bytes,
//! not the file name). Only the unsigned-byte type (0x08) is read.
//!
//! Declared sizes are checked against the file before anything is allocated,
//! so a corrupt header cannot make us reserve absurd amounts of memory.

use super::{gzip_error, TensorDataset, GZIP_MAGIC};
use crate::error::{Error, Result};
use crate::Tensor;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Raw IDX array: dims and the raw `u8` payload (row-major).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The declared dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The payload, `dims.iter().product()` bytes.
    pub data: Vec<u8>,
}

/// The IDX element type code for unsigned bytes.
const TYPE_U8: u8 = 0x08;
/// Magic number of an MNIST images file (u8, 3 dims).
const MAGIC_IMAGES: u32 = 0x0000_0803;
/// Magic number of an MNIST labels file (u8, 1 dim).
const MAGIC_LABELS: u32 = 0x0000_0801;

/// The name of an IDX element type code, `None` for unknown codes.
fn type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "16-bit integer",
        0x0C => "32-bit integer",
        0x0D => "32-bit float",
        0x0E => "64-bit float",
        _ => return None,
    })
}

/// An IDX file opened for reading, its header already parsed.
struct Opened<'a> {
    reader: Box<dyn Read + 'a>,
    file_len: u64,
    gz: bool,
    magic: u32,
    ty: u8,
    dims: Vec<usize>,
}

/// Read until `buf` is full or the stream ends; the number of bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Open `path`, detect gzip, and parse the IDX header; the payload is then
/// streamed from the file.
fn open(path: &Path) -> Result<Opened<'static>> {
    let file = crate::io::open_regular(path)?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    open_reader(path, BufReader::with_capacity(1 << 16, file), file_len)
}

/// Detect gzip and parse the IDX header of `br`, which holds `file_len`
/// bytes in all; `path` names the input in errors.
fn open_reader<'a>(path: &Path, mut br: impl BufRead + 'a, file_len: u64) -> Result<Opened<'a>> {
    let head = br.fill_buf().map_err(|e| Error::io(path, e))?;
    let gz = head.starts_with(&GZIP_MAGIC);
    let mut reader: Box<dyn Read + 'a> = if gz {
        Box::new(flate2::bufread::MultiGzDecoder::new(br))
    } else {
        Box::new(br)
    };
    let read_err = |e: std::io::Error| {
        if gz {
            gzip_error(path, &e)
        } else {
            Error::io(path, e)
        }
    };
    let after_gz = if gz { " after gzip decompression" } else { "" };

    let mut m = [0u8; 4];
    let got = read_full(&mut reader, &mut m).map_err(read_err)?;
    if got == 0 {
        return Err(Error::data(
            path,
            format!("the file is empty{after_gz}; expected an IDX file (download it again)"),
        ));
    }
    if got < 4 {
        return Err(Error::data(
            path,
            format!(
                "the file is only {got} bytes long{after_gz}; an IDX file starts with a 4-byte magic number (download it again)"
            ),
        ));
    }
    if m[0] != 0 || m[1] != 0 {
        return Err(Error::data(
            path,
            format!(
                "not an IDX file: it starts with bytes {}{after_gz}, but an IDX file starts with 00 00 <type> <ndims> \
                 (00 00 08 03 for MNIST images, 00 00 08 01 for labels)",
                hex(&m)
            ),
        ));
    }
    let magic = u32::from_be_bytes(m);
    let (ty, nd) = (m[2], m[3] as usize);
    if type_name(ty).is_none() {
        return Err(Error::data(
            path,
            format!(
                "magic number 0x{magic:08x} names unknown IDX element type 0x{ty:02x}; \
                 IDX types are 0x08 (unsigned byte), 0x09, 0x0b, 0x0c, 0x0d, 0x0e: is this file corrupt?"
            ),
        ));
    }
    let mut raw_dims = vec![0u8; 4 * nd];
    let got = read_full(&mut reader, &mut raw_dims).map_err(read_err)?;
    if got < raw_dims.len() {
        return Err(Error::data(
            path,
            format!(
                "the file ends inside the header: magic 0x{magic:08x} declares {nd} dimensions ({} header bytes) \
                 but the file holds only {} bytes{after_gz}; the file is truncated, download it again",
                4 + 4 * nd,
                4 + got
            ),
        ));
    }
    let dims = raw_dims
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    Ok(Opened {
        reader,
        file_len,
        gz,
        magic,
        ty,
        dims,
    })
}

/// Bytes handed to a payload's sink at a time.
const CHUNK: usize = 1 << 20;

/// Read the payload of an opened IDX file, checking its length against the
/// header (before allocating, for raw files).
fn read_payload(path: &Path, f: Opened<'_>) -> Result<Idx> {
    let mut data = Vec::new();
    let dims = stream_payload(path, f, &mut |part| match part {
        Part::Expect(cap) => data.reserve_exact(cap),
        Part::Bytes(chunk) => data.extend_from_slice(chunk),
    })?;
    Ok(Idx { dims, data })
}

/// What [`stream_payload`] hands its sink: first how many bytes to expect,
/// then the bytes (`B`: borrowed, or owned to cross to another thread).
enum Part<B> {
    Expect(usize),
    Bytes(B),
}

/// The payload of an opened IDX file into `sink`: first how many bytes to
/// expect (the declared size, or for a gzip file at most 8 times the file's
/// length: a garbage header must not make us reserve gigabytes), then the
/// bytes, [`CHUNK`] at a time, in order. The length is checked against the
/// header as it comes; returns the dimensions.
fn stream_payload(
    path: &Path,
    mut f: Opened<'_>,
    sink: &mut dyn FnMut(Part<&[u8]>),
) -> Result<Vec<usize>> {
    let dims = std::mem::take(&mut f.dims);
    let declared = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| {
            Error::data(
                path,
                format!("the header declares dimensions {dims:?}, too large to be real: the file is corrupt"),
            )
        })?;
    let header_len = 4 + 4 * dims.len() as u64;
    let truncated = |actual: u64| {
        Error::data(
            path,
            format!(
                "the file is truncated: the header declares dimensions {dims:?} = {declared} payload bytes but only \
                 {actual} bytes follow the header{}; download the file again",
                if f.gz { " after gzip decompression" } else { "" }
            ),
        )
    };
    let too_long = |actual: String| {
        Error::data(
            path,
            format!(
                "the file holds {actual} payload bytes but the header declares dimensions {dims:?} = {declared}; \
                 the header does not match the data, download the file again"
            ),
        )
    };
    if !f.gz {
        let actual = f.file_len.saturating_sub(header_len);
        if actual < declared as u64 {
            return Err(truncated(actual));
        }
        if actual > declared as u64 {
            return Err(too_long(actual.to_string()));
        }
    }
    // A gzip file can expand a lot, but a garbage header must not make us
    // reserve gigabytes: pre-size from the file length, let real data grow it.
    let cap = if f.gz {
        let guess = usize::try_from(f.file_len.saturating_mul(8)).unwrap_or(usize::MAX);
        declared.min(guess)
    } else {
        declared
    };
    sink(Part::Expect(cap));
    let read_err = |e: std::io::Error| {
        if f.gz {
            gzip_error(path, &e)
        } else {
            Error::io(path, e)
        }
    };
    let mut buf = vec![0u8; CHUNK.min(declared)];
    let mut got = 0;
    while got < declared {
        let want = CHUNK.min(declared - got);
        let n = read_full(&mut f.reader, &mut buf[..want]).map_err(read_err)?;
        sink(Part::Bytes(&buf[..n]));
        got += n;
        if n < want {
            return Err(truncated(got as u64));
        }
    }
    let mut one = [0u8; 1];
    if read_full(&mut f.reader, &mut one).map_err(read_err)? > 0 {
        return Err(too_long("more".into()));
    }
    Ok(dims)
}

/// Read an IDX file, gzip-compressed or raw, detected by the gzip magic bytes
/// `1f 8b` (not by the file name). Only the unsigned-byte element type (0x08)
/// is supported; other types are rejected with an error naming the type.
pub fn read_idx(path: &Path) -> Result<Idx> {
    read_u8(path, open(path)?)
}

/// [`read_idx`] on a file already in memory: `bytes` is the whole file
/// (gzip-compressed or raw), `origin` names it in error messages. This is the
/// same parser `read_idx` runs; declared sizes are checked against
/// `bytes.len()` before anything is allocated.
///
/// ```
/// use backprop::data::parse_idx;
/// use std::path::Path;
/// let idx = parse_idx(&[0, 0, 8, 1, 0, 0, 0, 2, 7, 9], Path::new("labels")).unwrap();
/// assert_eq!((idx.dims, idx.data), (vec![2], vec![7, 9]));
/// // a header claiming 2^32 - 1 labels in a 9-byte file is refused up front
/// let e = parse_idx(&[0, 0, 8, 1, 255, 255, 255, 255, 7], Path::new("l")).unwrap_err();
/// assert!(e.to_string().contains("truncated"));
/// ```
pub fn parse_idx(bytes: &[u8], origin: &Path) -> Result<Idx> {
    read_u8(origin, open_reader(origin, bytes, bytes.len() as u64)?)
}

/// The payload of an opened IDX file of unsigned bytes; other types are refused.
fn read_u8(path: &Path, f: Opened<'_>) -> Result<Idx> {
    if f.ty != TYPE_U8 {
        return Err(Error::data(
            path,
            format!(
                "IDX element type 0x{:02x} ({}) is not supported; only unsigned-byte IDX files (type 0x08, as MNIST uses) can be read",
                f.ty,
                type_name(f.ty).unwrap_or("unknown")
            ),
        ));
    }
    read_payload(path, f)
}

/// What a magic number looks like, for error messages.
fn describe_magic(magic: u32, ty: u8, nd: usize) -> String {
    match magic {
        MAGIC_IMAGES => "this looks like an images file".into(),
        MAGIC_LABELS => "this looks like a labels file".into(),
        _ => format!(
            "an IDX file of {} elements with {nd} dimensions",
            type_name(ty).unwrap_or("unknown")
        ),
    }
}

/// Check an opened IDX file's magic number is `expected`; `role` is e.g.
/// "an images" for the message.
fn expect_magic<'a>(path: &Path, f: Opened<'a>, expected: u32, role: &str) -> Result<Opened<'a>> {
    if f.magic != expected {
        let swapped = matches!(
            (expected, f.magic),
            (MAGIC_IMAGES, MAGIC_LABELS) | (MAGIC_LABELS, MAGIC_IMAGES)
        );
        return Err(Error::data(
            path,
            format!(
                "wrong IDX magic number: found 0x{:08x} ({}), expected 0x{expected:08x} for {role} file{}",
                f.magic,
                describe_magic(f.magic, f.ty, f.dims.len()),
                if swapped {
                    "; are the images and labels files swapped?"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(f)
}

/// Images file (3-d IDX, magic `0x00000803`) + labels file (1-d IDX, magic
/// `0x00000801`) -> [`TensorDataset`] with `x` of shape `[N, 1, H, W]` scaled by 1/255.
///
/// Errors: a wrong magic number (naming the one found and the one expected),
/// a truncated payload (declared vs actual byte count), an image count that
/// differs from the label count (naming both), an empty set.
pub fn load_idx_pair(images: &Path, labels: &Path) -> Result<TensorDataset> {
    pair(images, || open(images), labels, || open(labels))
}

/// [`load_idx_pair`] on files already in memory (each gzip-compressed or
/// raw); `images_origin` and `labels_origin` name them in error messages.
/// The same parser `load_idx_pair` runs.
pub fn parse_idx_pair(
    images: &[u8],
    images_origin: &Path,
    labels: &[u8],
    labels_origin: &Path,
) -> Result<TensorDataset> {
    pair(
        images_origin,
        || open_reader(images_origin, images, images.len() as u64),
        labels_origin,
        || open_reader(labels_origin, labels, labels.len() as u64),
    )
}

/// The images + labels pair, each opened (header parsed) when its turn comes.
fn pair<'a, 'b>(
    images: &Path,
    open_images: impl FnOnce() -> Result<Opened<'a>>,
    labels: &Path,
    open_labels: impl FnOnce() -> Result<Opened<'b>>,
) -> Result<TensorDataset> {
    let img = expect_magic(images, open_images()?, MAGIC_IMAGES, "an images")?;
    let lab = expect_magic(labels, open_labels()?, MAGIC_LABELS, "a labels")?;
    let (n, h, w) = (img.dims[0], img.dims[1], img.dims[2]);
    let m = lab.dims[0];
    if n != m {
        return Err(Error::data(
            images,
            format!(
                "holds {n} images but the labels file {} holds {m} labels; pass the labels file that belongs to these images",
                labels.display()
            ),
        ));
    }
    if n == 0 {
        return Err(Error::data(
            images,
            "holds no images (its header says 0); pass a non-empty data set",
        ));
    }
    if h == 0 || w == 0 {
        return Err(Error::data(
            images,
            format!("declares images of {h}x{w} pixels; the file is corrupt, download it again"),
        ));
    }
    crate::mem::reserve(
        n.saturating_mul(h).saturating_mul(w).saturating_mul(4),
        &format!(
            "the {n} images of {h}×{w} pixels (float32) in {}",
            images.display()
        ),
        "use a smaller data set, or free memory",
    )?;
    let x = read_pixels(images, img)?;
    let lab = read_payload(labels, lab)?;
    let y: Vec<usize> = lab.data.iter().map(|&b| b as usize).collect();
    Ok(TensorDataset::new(
        Tensor::from_vec(vec![n, 1, h, w], x),
        y,
        images,
    ))
}

/// The pixels of an opened images file, scaled by 1/255. With more than one
/// kernel thread, a second thread scales (and takes the page faults of the
/// growing `f32` buffer) while this one inflates the next chunk: the two
/// halves of loading MNIST's 47 MB of pixels then overlap. Never more than
/// a few chunks of bytes are held at once.
fn read_pixels(path: &Path, f: Opened<'_>) -> Result<Vec<f32>> {
    let lut: [f32; 256] = std::array::from_fn(|i| i as f32 / 255.0);
    let scale = |x: &mut Vec<f32>, part: Part<&[u8]>| match part {
        Part::Expect(cap) => x.reserve_exact(cap),
        Part::Bytes(chunk) => x.extend(chunk.iter().map(|&b| lut[b as usize])),
    };
    if crate::cpu::threads() <= 1 {
        let mut x = Vec::new();
        stream_payload(path, f, &mut |part| scale(&mut x, part))?;
        return Ok(x);
    }
    std::thread::scope(|s| {
        let (to_scaler, parts) = std::sync::mpsc::sync_channel::<Part<Vec<u8>>>(2);
        let scaler = s.spawn(move || {
            let mut x = Vec::new();
            for part in parts {
                match part {
                    Part::Expect(cap) => scale(&mut x, Part::Expect(cap)),
                    Part::Bytes(b) => scale(&mut x, Part::Bytes(&b)),
                }
            }
            x
        });
        // A send fails only if the scaler is gone (it panicked): its join
        // below reports that.
        let read = stream_payload(path, f, &mut |part| {
            let owned = match part {
                Part::Expect(cap) => Part::Expect(cap),
                Part::Bytes(b) => Part::Bytes(b.to_vec()),
            };
            drop(to_scaler.send(owned))
        });
        drop(to_scaler);
        let x = scaler
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        read.map(|_| x)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn msg(e: Error) -> String {
        let s = e.to_string();
        assert!(!s.contains('\n'), "multi-line message: {s}");
        s
    }

    fn images(n: u32) -> (Vec<u8>, Vec<u8>) {
        let px: Vec<u8> = (0..n * 6).map(|i| (i * 37 % 256) as u8).collect();
        (idx_bytes(0x803, &[n, 2, 3], &px), px)
    }

    #[test]
    fn raw_and_gz_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, px) = images(4);
        for (name, b) in [("raw", bytes.clone()), ("anyname", gz(&bytes))] {
            let p = write(dir.path(), name, &b);
            let idx = read_idx(&p).unwrap();
            assert_eq!(idx.dims, vec![4, 2, 3]);
            assert_eq!(idx.data, px);
        }
        // concatenated gzip members decode as one stream
        let mut two = gz(&bytes[..10]);
        two.extend(gz(&bytes[10..]));
        let p = write(dir.path(), "multi.gz", &two);
        assert_eq!(read_idx(&p).unwrap().data, px);
    }

    #[test]
    fn pair_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (img, px) = images(3);
        let i = write(dir.path(), "i.gz", &gz(&img));
        let l = write(dir.path(), "l", &idx_bytes(0x801, &[3], &[5, 0, 255]));
        let d = load_idx_pair(&i, &l).unwrap();
        assert_eq!(d.x.shape(), &[3, 1, 2, 3]);
        assert_eq!(d.y, vec![5, 0, 255]);
        assert_eq!(d.source, i);
        for (a, &b) in d.x.data().iter().zip(&px) {
            assert_eq!(*a, b as f32 / 255.0);
        }
        assert_eq!(d.sample_shape(), &[1, 2, 3]);
    }

    #[test]
    fn pixels_are_the_same_on_one_thread_or_two() {
        use crate::cpu::with_threads;
        let dir = tempfile::tempdir().unwrap();
        // More than two chunks of pixels, so the second thread scales some
        // while the first inflates more.
        let n = (2 * CHUNK + 1000) / 6;
        let px: Vec<u8> = (0..n * 6).map(|i| (i * 31 % 256) as u8).collect();
        let img = idx_bytes(0x803, &[n as u32, 2, 3], &px);
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let l = write(dir.path(), "l", &idx_bytes(0x801, &[n as u32], &labels));
        let cut = &img[..img.len() - 7];
        for (name, bytes, cut) in [
            ("i", img.clone(), cut.to_vec()),
            ("i.gz", gz(&img), gz(cut)),
        ] {
            let i = write(dir.path(), name, &bytes);
            let one = with_threads(1, || load_idx_pair(&i, &l).unwrap());
            let two = with_threads(2, || load_idx_pair(&i, &l).unwrap());
            assert_eq!(one.x.data(), two.x.data());
            assert_eq!(one.y, two.y);
            assert!(one
                .x
                .data()
                .iter()
                .zip(&px)
                .all(|(&a, &b)| a == b as f32 / 255.0));
            // A truncated images file: the same error either way.
            let cut = write(dir.path(), &format!("cut-{name}"), &cut);
            let e1 = with_threads(1, || msg(load_idx_pair(&cut, &l).unwrap_err()));
            let e2 = with_threads(2, || msg(load_idx_pair(&cut, &l).unwrap_err()));
            assert_eq!(e1, e2);
            assert!(e1.contains("truncated"), "{e1}");
        }
    }

    #[test]
    fn truncated_payload_raw_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        let (img, _) = images(4); // 24 payload bytes
        let cut = &img[..img.len() - 5];
        for (name, b) in [("t", cut.to_vec()), ("t.gz", gz(cut))] {
            let p = write(dir.path(), name, &b);
            let e = msg(read_idx(&p).unwrap_err());
            assert!(e.contains(name) && e.contains("truncated"), "{e}");
            assert!(
                e.contains("24 payload bytes") && e.contains("only 19 bytes"),
                "{e}"
            );
        }
        // the file ends inside the header
        let p = write(dir.path(), "h", &img[..9]);
        let e = msg(read_idx(&p).unwrap_err());
        assert!(e.contains("inside the header"), "{e}");
        // a truncated gzip stream
        let g = gz(&img);
        let p = write(dir.path(), "g.gz", &g[..g.len() / 2]);
        let e = msg(read_idx(&p).unwrap_err());
        assert!(e.contains("g.gz"), "{e}");
    }

    #[test]
    fn extra_bytes_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (mut img, _) = images(2);
        img.push(0);
        for (name, b) in [("x", img.clone()), ("x.gz", gz(&img))] {
            let p = write(dir.path(), name, &b);
            let e = msg(read_idx(&p).unwrap_err());
            assert!(e.contains("does not match"), "{e}");
        }
    }

    #[test]
    fn huge_declared_dims_do_not_allocate() {
        let dir = tempfile::tempdir().unwrap();
        let b = idx_bytes(0x803, &[u32::MAX, u32::MAX, 1000], &[1, 2, 3]);
        for (name, b) in [("big", b.clone()), ("big.gz", gz(&b))] {
            let p = write(dir.path(), name, &b);
            let e = msg(read_idx(&p).unwrap_err());
            assert!(e.contains("big"), "{e}");
        }
        let b = idx_bytes(0x803, &[60000, 28, 28], &[1, 2, 3]);
        for (name, b) in [("big2", b.clone()), ("big2.gz", gz(&b))] {
            let p = write(dir.path(), name, &b);
            let e = msg(read_idx(&p).unwrap_err());
            assert!(
                e.contains("47040000 payload bytes") && e.contains("only 3 bytes"),
                "{e}"
            );
        }
    }

    #[test]
    fn garbage_empty_and_other_types() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "empty", b"");
        assert!(msg(read_idx(&p).unwrap_err()).contains("empty"));
        let p = write(dir.path(), "empty.gz", &gz(b""));
        assert!(msg(read_idx(&p).unwrap_err()).contains("empty"));
        let p = write(dir.path(), "short", &[0, 0]);
        assert!(msg(read_idx(&p).unwrap_err()).contains("only 2 bytes"));
        let p = write(dir.path(), "text", b"hello,world\n1,2,3\n");
        let e = msg(read_idx(&p).unwrap_err());
        assert!(
            e.contains("not an IDX file") && e.contains("68 65 6c 6c"),
            "{e}"
        );
        let p = write(
            dir.path(),
            "badgz",
            &[0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        );
        let e = msg(read_idx(&p).unwrap_err());
        assert!(e.contains("gzip"), "{e}");
        let p = write(dir.path(), "float", &idx_bytes(0x0d01, &[1], &[0, 0, 0, 0]));
        let e = msg(read_idx(&p).unwrap_err());
        assert!(
            e.contains("0x0d") && e.contains("32-bit float") && e.contains("not supported"),
            "{e}"
        );
        let p = write(dir.path(), "unk", &idx_bytes(0x0701, &[1], &[0]));
        let e = msg(read_idx(&p).unwrap_err());
        assert!(e.contains("unknown IDX element type 0x07"), "{e}");
        // a 0-d array is one byte
        let p = write(dir.path(), "scalar", &idx_bytes(0x0800, &[], &[42]));
        assert_eq!(
            read_idx(&p).unwrap(),
            Idx {
                dims: vec![],
                data: vec![42]
            }
        );
    }

    #[test]
    fn wrong_magic_and_swapped_files() {
        let dir = tempfile::tempdir().unwrap();
        let (img, _) = images(2);
        let i = write(dir.path(), "img", &img);
        let l = write(dir.path(), "lab", &idx_bytes(0x801, &[2], &[1, 2]));
        let e = msg(load_idx_pair(&l, &i).unwrap_err());
        assert!(
            e.starts_with(&l.display().to_string())
                && e.contains("found 0x00000801")
                && e.contains("looks like a labels file")
                && e.contains("expected 0x00000803")
                && e.contains("swapped"),
            "{e}"
        );
        let e = msg(load_idx_pair(&i, &i).unwrap_err());
        assert!(
            e.contains("looks like an images file") && e.contains("expected 0x00000801"),
            "{e}"
        );
        let other = write(dir.path(), "other", &idx_bytes(0x802, &[1, 1], &[1]));
        let e = msg(load_idx_pair(&other, &l).unwrap_err());
        assert!(
            e.contains("found 0x00000802") && e.contains("2 dimensions"),
            "{e}"
        );
    }

    #[test]
    fn count_mismatch_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (img, _) = images(3);
        let i = write(dir.path(), "img", &img);
        let l = write(dir.path(), "lab", &idx_bytes(0x801, &[2], &[1, 2]));
        let e = msg(load_idx_pair(&i, &l).unwrap_err());
        assert!(
            e.contains("3 images") && e.contains("2 labels") && e.contains("lab"),
            "{e}"
        );
        let i = write(dir.path(), "img0", &idx_bytes(0x803, &[0, 28, 28], &[]));
        let l = write(dir.path(), "lab0", &idx_bytes(0x801, &[0], &[]));
        let e = msg(load_idx_pair(&i, &l).unwrap_err());
        assert!(e.contains("no images"), "{e}");
        let i = write(dir.path(), "img00", &idx_bytes(0x803, &[1, 0, 28], &[]));
        let l = write(dir.path(), "lab1", &idx_bytes(0x801, &[1], &[1]));
        let e = msg(load_idx_pair(&i, &l).unwrap_err());
        assert!(e.contains("0x28"), "{e}");
    }

    #[test]
    fn bytes_and_path_give_the_same_result_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (img, _) = images(3);
        let lab = idx_bytes(0x801, &[3], &[1, 2, 3]);
        let mut cases = vec![img.clone(), gz(&img), lab.clone(), gz(&lab)];
        cases.push(img[..img.len() - 1].to_vec());
        cases.push(gz(&idx_bytes(0x803, &[60000, 28, 28], &[1])));
        cases.push(idx_bytes(0x803, &[u32::MAX, u32::MAX, 2], &[]));
        cases.push(vec![0x1f, 0x8b, 8]);
        for (i, b) in cases.iter().enumerate() {
            let p = write(dir.path(), &format!("c{i}"), b);
            let from_path = read_idx(&p).map_err(|e| e.to_string());
            let from_bytes = parse_idx(b, &p).map_err(|e| e.to_string());
            assert_eq!(from_path, from_bytes, "case {i}");
        }
        let i = write(dir.path(), "i", &img);
        let l = write(dir.path(), "l", &gz(&lab));
        let d = parse_idx_pair(&img, &i, &gz(&lab), &l).unwrap();
        let e = load_idx_pair(&i, &l).unwrap();
        assert_eq!((d.x, d.y, d.source), (e.x, e.y, e.source));
        let e1 = parse_idx_pair(&lab, &l, &img, &i).unwrap_err().to_string();
        let e2 = load_idx_pair(&write(dir.path(), "l2", &lab), &i)
            .unwrap_err()
            .to_string();
        assert_eq!(e1.replace("l:", "l2:"), e2);
    }

    #[test]
    fn missing_file_names_path() {
        let e = msg(read_idx(Path::new("/nonexistent/x-idx3-ubyte")).unwrap_err());
        assert!(e.contains("/nonexistent/x-idx3-ubyte"), "{e}");
    }
}
