//! The CIFAR-10 and CIFAR-100 binary formats (the "binary version" at
//! cs.toronto.edu/~kriz/cifar.html): records of a label byte (CIFAR-100: a
//! coarse and a fine label byte) and 3 072 pixel bytes, the red, green and
//! blue 32×32 planes in turn, row by row.
//!
//! A CIFAR-10 folder holds `data_batch_1.bin` … `data_batch_5.bin` and
//! `test_batch.bin` (and `batches.meta.txt`, the class names); a CIFAR-100
//! folder `train.bin` and `test.bin` (and `fine_label_names.txt`). Samples
//! are `[3, 32, 32]` in `[0, 1]` (pixel / 255), as torchvision's `CIFAR10`
//! with `ToTensor()`; CIFAR-100's targets are the fine labels.

use super::{maybe_gunzip, TensorDataset};
use crate::error::{Error, Result};
use crate::Tensor;
use std::path::{Path, PathBuf};

/// Pixel bytes of one image.
const PIXELS: usize = 3 * 32 * 32;

/// Which of the two formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar {
    /// 10 classes, one label byte per record.
    Ten,
    /// 100 fine classes, a coarse and a fine label byte per record.
    Hundred,
}

impl Cifar {
    /// Bytes of one record.
    pub fn record(self) -> usize {
        match self {
            Cifar::Ten => 1 + PIXELS,
            Cifar::Hundred => 2 + PIXELS,
        }
    }

    fn classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cifar::Ten => "CIFAR-10",
            Cifar::Hundred => "CIFAR-100",
        }
    }
}

/// The CIFAR files of `dir`, if it is a CIFAR folder: the format, the
/// training files and the test file (if present).
pub(crate) fn find(dir: &Path) -> Option<(Cifar, Vec<PathBuf>, Option<PathBuf>)> {
    let file = |n: &str| Some(dir.join(n)).filter(|p| p.is_file());
    let ten: Vec<PathBuf> = (1..=5)
        .filter_map(|i| file(&format!("data_batch_{i}.bin")))
        .collect();
    if !ten.is_empty() {
        return Some((Cifar::Ten, ten, file("test_batch.bin")));
    }
    let train = file("train.bin")?;
    Some((Cifar::Hundred, vec![train], file("test.bin")))
}

/// Parse the records of one file (`bytes`, maybe gzip-compressed) into
/// pixels and labels, appended to `x` and `y`; `path` names it in errors.
pub fn parse_cifar(
    bytes: &[u8],
    path: &Path,
    kind: Cifar,
    x: &mut Vec<f32>,
    y: &mut Vec<usize>,
) -> Result<()> {
    let bytes = maybe_gunzip(bytes, path)?;
    let rec = kind.record();
    if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
        return Err(Error::data(
            path,
            format!(
                "is {} bytes, not a whole number of {} records ({rec} bytes each); the file is truncated or not {}: download it again",
                bytes.len(),
                kind.name(),
                kind.name()
            ),
        ));
    }
    x.reserve(bytes.len() / rec * PIXELS);
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = r[rec - PIXELS - 1] as usize; // CIFAR-100: the fine label
        if label >= kind.classes() {
            return Err(Error::data(
                path,
                format!(
                    "record {i} has label {label}, but {} has {} classes; is this a {} file?",
                    kind.name(),
                    kind.classes(),
                    match kind {
                        Cifar::Ten => "CIFAR-100",
                        Cifar::Hundred => "CIFAR-10",
                    }
                ),
            ));
        }
        y.push(label);
        x.extend(r[rec - PIXELS..].iter().map(|&b| b as f32 / 255.0));
    }
    Ok(())
}

/// Read CIFAR `files` (of format `kind`) as one data set; the class names
/// from the folder's names file when it is there.
pub fn load_cifar(kind: Cifar, files: &[PathBuf]) -> Result<TensorDataset> {
    // Sized once from the files' lengths (raw files: exact), so the pixels
    // are never copied to a larger buffer as the files are read.
    let records: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()) / kind.record() as u64)
        .sum();
    crate::mem::reserve(
        (records as usize).saturating_mul(PIXELS * 4),
        &format!("the {records} {} images (float32)", kind.name()),
        "use a smaller data set, or free memory",
    )?;
    let (mut x, mut y) = (Vec::with_capacity(records as usize * PIXELS), Vec::new());
    for f in files {
        let bytes = crate::io::read_regular(f)?;
        parse_cifar(&bytes, f, kind, &mut x, &mut y)?;
    }
    let n = y.len();
    let mut d = TensorDataset::new(Tensor::from_vec(vec![n, 3, 32, 32], x), y, &files[0]);
    let names = match kind {
        Cifar::Ten => "batches.meta.txt",
        Cifar::Hundred => "fine_label_names.txt",
    };
    if let Some(dir) = files[0].parent() {
        if let Ok(text) = std::fs::read_to_string(dir.join(names)) {
            let v: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if v.len() == kind.classes() {
                d.info.classes = v;
            }
        }
    }
    d.info.image = Some([3, 32, 32]);
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, v: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(v, PIXELS));
        r
    }

    #[test]
    fn a_cifar10_folder_reads_labels_planes_and_names() {
        let d = tempfile::tempdir().unwrap();
        let mut a = record(3, 255);
        a[1 + 1024] = 0; // green plane's first pixel
        a.extend(record(9, 51));
        std::fs::write(d.path().join("data_batch_1.bin"), &a).unwrap();
        std::fs::write(d.path().join("test_batch.bin"), record(0, 0)).unwrap();
        let names: String = (0..10).map(|i| format!("class{i}\n")).collect();
        std::fs::write(d.path().join("batches.meta.txt"), names).unwrap();
        let (kind, train, test) = find(d.path()).unwrap();
        assert_eq!((kind, train.len(), test.is_some()), (Cifar::Ten, 1, true));
        let ds = load_cifar(kind, &train).unwrap();
        assert_eq!(ds.x.shape(), &[2, 3, 32, 32]);
        assert_eq!(ds.y, vec![3, 9]);
        assert_eq!(
            (ds.x.data()[0], ds.x.data()[1024], ds.x.data()[PIXELS]),
            (1.0, 0.0, 0.2)
        );
        assert_eq!(ds.info.class_name(9), "class9");
    }

    #[test]
    fn bad_files_name_the_file_and_the_fix() {
        let p = Path::new("data_batch_1.bin");
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut short = record(1, 0);
        short.pop();
        let e = parse_cifar(&short, p, Cifar::Ten, &mut x, &mut y)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data_batch_1.bin") && e.contains("3073 bytes each"),
            "{e}"
        );
        let e = parse_cifar(&record(42, 0), p, Cifar::Ten, &mut x, &mut y)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 42") && e.contains("CIFAR-100"), "{e}");
        let mut hundred = vec![7u8];
        hundred.extend(record(77, 0));
        parse_cifar(&hundred, p, Cifar::Hundred, &mut x, &mut y).unwrap();
        assert_eq!(y, vec![77]);
        assert!(parse_cifar(&[], p, Cifar::Ten, &mut x, &mut y).is_err());
    }
}
