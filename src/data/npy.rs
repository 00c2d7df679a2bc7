//! NumPy arrays: `.npy` files (format versions 1–3) and `.npz` archives
//! of them (read with the `zip` crate).
//!
//! A data set is a pair of arrays, the features `x` (`[N, …]`) and the
//! targets `y` (`[N]` or `[N, K]`), as Keras' `mnist.npz` holds them:
//!
//! - an `.npz` file with `x_train`, `y_train` (and `x_test`, `y_test`) or
//!   with `x`, `y`;
//! - a folder with `x_train.npy`, `y_train.npy` (and `x_test.npy`,
//!   `y_test.npy`) or `x.npy`, `y.npy`.
//!
//! The dtypes read are `bool`, the integers of 1 to 8 bytes and
//! `float32`/`float64`, in either byte order; C order only. Integer targets are class
//! labels and float targets values, unless told otherwise. `uint8`
//! features are scaled by 1/255 (torchvision's `ToTensor`), and `[N, H, W]`
//! features become grey images `[N, 1, H, W]`.

use super::{Targets, TensorDataset};
use crate::error::{Error, Result};
use crate::Tensor;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The magic bytes of a `.npy` file.
const MAGIC: &[u8] = b"\x93NUMPY";
/// The most elements an array may declare (2³²; a guard against a header
/// that would allocate without bound).
const MAX_ELEMENTS: usize = 1 << 32;

/// An array read from a `.npy`: its shape, its values as f64, and whether
/// its dtype was an integer (or bool) one and `uint8`.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// The values in C order.
    pub values: Vec<f64>,
    /// The dtype, as the header spells it (`<f4`, `|u1`).
    pub dtype: String,
}

impl Array {
    fn integral(&self) -> bool {
        !self.dtype.ends_with("f4") && !self.dtype.ends_with("f8")
    }
}

/// The value of `key` in the header dictionary, e.g. `'descr': '<f4'`.
fn header_value<'a>(h: &'a str, key: &str) -> Option<&'a str> {
    let at = h.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = h[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

/// Parse one `.npy` file's bytes; `path` names it in errors.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<Array> {
    let bad = |what: String| Error::data(path, what);
    if !bytes.starts_with(MAGIC) || bytes.len() < 10 {
        return Err(bad(
            "is not a NumPy .npy file (no \\x93NUMPY magic); save it with numpy.save".into(),
        ));
    }
    let major = bytes[6];
    let (len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => {
            return Err(bad(format!(
                "has .npy format version {major}, which is not 1, 2 or 3"
            )))
        }
    };
    let header = bytes
        .get(start..start.saturating_add(len))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| {
            bad("has a truncated or unreadable header; save it again with numpy.save".into())
        })?;
    let descr = header_value(header, "descr")
        .map(|d| d.trim_matches(['\'', '"']).to_string())
        .ok_or_else(|| bad(format!("has no dtype ('descr') in its header {header:?}")))?;
    if header_value(header, "fortran_order") == Some("True") {
        return Err(bad(
            "holds a Fortran-order array; save a C-order copy (numpy.ascontiguousarray) instead"
                .into(),
        ));
    }
    let shape_text = header_value(header, "shape")
        .ok_or_else(|| bad(format!("has no shape in its header {header:?}")))?;
    let shape = shape_text
        .trim_matches(['(', ')'])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| {
            bad(format!(
                "has the shape {shape_text}, which is not a tuple of sizes"
            ))
        })?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            bad(format!(
                "declares the shape {shape_text}, too many elements"
            ))
        })?;
    // The byte order, then the kind and size (`<f4`); any text the header holds.
    let (order, kind) = match descr.char_indices().nth(1) {
        Some((i, _)) => descr.split_at(i),
        None => (descr.as_str(), ""),
    };
    let size: usize = kind.get(1..).and_then(|s| s.parse().ok()).unwrap_or(0);
    let supported = matches!(
        (kind.chars().next(), size),
        (Some('f'), 4 | 8) | (Some('i' | 'u'), 1 | 2 | 4 | 8) | (Some('b'), 1)
    );
    if !supported || !matches!(order, "<" | ">" | "|" | "=") {
        return Err(bad(format!(
            "has the dtype {descr:?}, which is not read (bool, integers and float32/float64 are); convert it with .astype('float32')"
        )));
    }
    let data = &bytes[start + len..];
    if data.len() < n * size {
        return Err(bad(format!(
            "is truncated: its shape {shape_text} of {descr} needs {} bytes of data, the file has {}",
            n * size,
            data.len()
        )));
    }
    let big = order == ">";
    let values = data[..n * size]
        .chunks_exact(size)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            if big {
                b[..size].reverse();
            }
            match (kind.as_bytes()[0], size) {
                (b'f', 4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                (b'f', _) => f64::from_le_bytes(b),
                (b'u', _) | (b'b', _) => u64::from_le_bytes(b) as f64,
                _ => {
                    // sign-extend the `size` bytes
                    let shift = 64 - 8 * size as u32;
                    ((u64::from_le_bytes(b) << shift) as i64 >> shift) as f64
                }
            }
        })
        .collect();
    Ok(Array {
        shape,
        values,
        dtype: descr,
    })
}

/// The arrays of an `.npz` archive, by name (without `.npy`).
pub fn parse_npz(bytes: &[u8], path: &Path) -> Result<Vec<(String, Array)>> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::data(
            path,
            format!("is not a readable .npz archive ({e}); save it with numpy.savez"),
        )
    };
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| bad(&e))?;
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).map_err(|e| bad(&e))?;
        let name = f
            .name()
            .map_err(|e| bad(&e))?
            .trim_end_matches(".npy")
            .to_string();
        if f.size() > bytes.len() as u64 * super::DEFLATE_MAX_RATIO {
            return Err(bad(&format!("member {name} declares {} bytes", f.size())));
        }
        let mut buf = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut buf).map_err(|e| bad(&e))?;
        let member = path.join(format!("{name}.npy"));
        out.push((name, parse_npy(&buf, &member)?));
    }
    Ok(out)
}

/// The features `x` and targets `y` as a data set (`classes`: read the
/// targets as class labels even when stored as floats; `Some(false)`: as
/// values even when integers; `None`: by their dtype).
pub fn dataset(x: Array, y: Array, source: &Path, classes: Option<bool>) -> Result<TensorDataset> {
    let n = x.shape.first().copied().unwrap_or(0);
    if y.shape.first() != Some(&n) || n == 0 {
        return Err(Error::data(
            source,
            format!(
                "has {n} feature rows (shape {:?}) but {} targets (shape {:?}); give arrays of the same length",
                x.shape,
                y.shape.first().copied().unwrap_or(0),
                y.shape
            ),
        ));
    }
    let scale = if x.dtype.ends_with("u1") {
        1.0 / 255.0
    } else {
        1.0
    };
    let mut shape = x.shape.clone();
    if shape.len() == 3 {
        shape.insert(1, 1); // [N, H, W] → grey images [N, 1, H, W]
    }
    if shape.len() == 1 {
        shape.push(1);
    }
    let xv: Vec<f32> = x.values.iter().map(|&v| (v * scale) as f32).collect();
    let as_classes = classes.unwrap_or(y.integral()) && y.shape.len() == 1;
    let targets = if as_classes {
        let mut labels = Vec::with_capacity(n);
        for (i, &v) in y.values.iter().enumerate() {
            if !(v >= 0.0 && v.fract() == 0.0 && v < 1e6) {
                return Err(Error::data(
                    source,
                    format!("target {i} is {v}, not a class number 0, 1, 2, …; train a regression instead"),
                ));
            }
            labels.push(v as usize);
        }
        Targets::Classes(labels)
    } else {
        let k = y.values.len() / n;
        Targets::Values(Tensor::from_vec(
            vec![n, k],
            y.values.iter().map(|&v| v as f32).collect(),
        ))
    };
    Ok(TensorDataset::new(
        Tensor::from_vec(shape, xv),
        targets,
        source,
    ))
}

/// The arrays of an `.npz` file or a folder of `.npy` files, by name.
fn arrays_of(path: &Path) -> Result<Vec<(String, Array)>> {
    if path.is_dir() {
        let mut out = Vec::new();
        for name in ["x_train", "y_train", "x_test", "y_test", "x", "y"] {
            let p = path.join(format!("{name}.npy"));
            if p.is_file() {
                out.push((
                    name.to_string(),
                    parse_npy(&crate::io::read_regular(&p)?, &p)?,
                ));
            }
        }
        return Ok(out);
    }
    parse_npz(&crate::io::read_regular(path)?, path)
}

/// Whether `dir` holds NumPy arrays of a data set.
pub(crate) fn is_npy_folder(dir: &Path) -> bool {
    ["x_train.npy", "x.npy"]
        .iter()
        .any(|n| dir.join(n).is_file())
}

/// The training set (and the test set, if the arrays have one) of an
/// `.npz` file or a folder of `.npy` files: `x_train`, `y_train` (and
/// `x_test`, `y_test`) or `x`, `y`; integer targets are classes unless
/// `classes` is `Some(false)`, float targets values unless it is `Some(true)`.
pub fn load_npy(
    path: &Path,
    classes: Option<bool>,
) -> Result<(TensorDataset, Option<TensorDataset>)> {
    let mut arrays = arrays_of(path)?;
    let mut take = |name: &str| {
        arrays
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| arrays.swap_remove(i).1)
    };
    let named = |p: &Path, n: &str| -> PathBuf {
        if p.is_dir() {
            p.join(format!("{n}.npy"))
        } else {
            p.to_path_buf()
        }
    };
    let (x, y) = match (take("x_train"), take("y_train"), take("x"), take("y")) {
        (Some(x), Some(y), _, _) | (_, _, Some(x), Some(y)) => (x, y),
        _ => {
            return Err(Error::data(
                path,
                "holds no x_train and y_train (or x and y) arrays; save the features and targets under those names",
            ))
        }
    };
    let train = dataset(x, y, &named(path, "x_train"), classes)?;
    let test = match (take("x_test"), take("y_test")) {
        (Some(x), Some(y)) => Some(dataset(x, y, &named(path, "x_test"), classes)?),
        _ => None,
    };
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` of `descr`, `shape` and raw little-endian `data`.
    pub(crate) fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut v = MAGIC.to_vec();
        v.extend([1, 0]);
        v.extend((h.len() as u16).to_le_bytes());
        v.extend(h.as_bytes());
        v.extend(data);
        v
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn arrays_of_every_numeric_dtype_read_back() {
        let p = Path::new("a.npy");
        let a = parse_npy(&npy("<f4", "(2, 2)", &f32s(&[1., 2., 3., 4.5])), p).unwrap();
        assert_eq!((a.shape, a.values), (vec![2, 2], vec![1., 2., 3., 4.5]));
        let b = parse_npy(&npy("<i2", "(3,)", &[0xff, 0xff, 2, 0, 0, 0x80]), p).unwrap();
        assert_eq!(b.values, vec![-1., 2., -32768.]);
        let c = parse_npy(&npy(">u2", "(1,)", &[1, 2]), p).unwrap();
        assert_eq!(c.values, vec![258.]);
        let d = parse_npy(&npy("|b1", "(2,)", &[1, 0]), p).unwrap();
        assert_eq!(d.values, vec![1., 0.]);
        let e = parse_npy(&npy("<f8", "()", &2.5f64.to_le_bytes()), p).unwrap();
        assert_eq!((e.shape.len(), e.values), (0, vec![2.5]));
    }

    #[test]
    fn bad_arrays_say_what_is_wrong() {
        let p = Path::new("x.npy");
        let msg = |b: &[u8]| parse_npy(b, p).unwrap_err().to_string();
        assert!(msg(b"PK\x03\x04").contains("not a NumPy .npy file"));
        let e = msg(&npy("<c8", "(1,)", &[0; 8]));
        assert!(
            e.contains("x.npy") && e.contains("<c8") && e.contains("astype"),
            "{e}"
        );
        let e = msg(&npy("<f4", "(4,)", &[0; 8]));
        assert!(e.contains("truncated") && e.contains("16 bytes"), "{e}");
        let e = msg(&npy("<f4", "(99999999999, 99999999999)", &[]));
        assert!(e.contains("too many elements"), "{e}");
        let x = parse_npy(&npy("<f4", "(3, 1)", &f32s(&[0.; 3])), p).unwrap();
        let y = parse_npy(&npy("<i8", "(2,)", &[0; 16]), p).unwrap();
        let e = dataset(x, y, p, None).unwrap_err().to_string();
        assert!(
            e.contains("3 feature rows") && e.contains("2 targets"),
            "{e}"
        );
    }

    #[test]
    fn an_npz_archive_gives_train_and_test_sets() {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let o = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            for (name, bytes) in [
                (
                    "x_train.npy",
                    npy("|u1", "(2, 2, 2)", &[0, 255, 51, 0, 1, 2, 3, 4]),
                ),
                (
                    "y_train.npy",
                    npy(
                        "<i8",
                        "(2,)",
                        &[3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
                    ),
                ),
                ("x_test.npy", npy("<f4", "(1, 4)", &f32s(&[1., 2., 3., 4.]))),
                ("y_test.npy", npy("<f4", "(1,)", &f32s(&[0.5]))),
            ] {
                z.start_file(name, o).unwrap();
                z.write_all(&bytes).unwrap();
            }
            z.finish().unwrap();
        }
        let arrays = parse_npz(buf.get_ref(), Path::new("d.npz")).unwrap();
        assert_eq!(arrays.len(), 4);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.npz");
        std::fs::write(&p, buf.get_ref()).unwrap();
        let (train, test) = load_npy(&p, None).unwrap();
        assert_eq!(train.x.shape(), &[2, 1, 2, 2]); // grey images, /255
        assert_eq!((train.x.data()[1], train.x.data()[2]), (1.0, 0.2));
        assert_eq!(train.y, vec![3, 1]);
        let test = test.unwrap();
        assert_eq!(test.y.values().unwrap().data(), &[0.5]); // float targets: values
    }
}
