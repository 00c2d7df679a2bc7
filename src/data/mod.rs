//! Data sets: IDX (MNIST) and CSV files loaded into memory, the `--data` /
//! `--test-data` folder-or-file logic, mini-batch order for an epoch, and
//! single images (PNG / PGM) for `backprop predict`; character-level text
//! for language models ([`text`]).
//!
//! Everything a user can get wrong (a missing file, a truncated download,
//! swapped images/labels paths, a bad CSV line) comes back as an [`Error`]
//! whose message names the file, says what is wrong, and what to do.

mod augment;
mod batch;
mod cifar;
mod csv;
mod dataset;
mod folder;
mod idx;
mod image;
mod info;
mod loader;
mod npy;
mod split;
mod targets;
pub mod text;

pub use augment::{augment_batch, parse_augments, preview, sample_rng, Augment};
pub use batch::epoch_batches;
pub use cifar::{load_cifar, parse_cifar, Cifar};
pub use csv::{load_csv, load_csv_columns, parse_csv, parse_csv_columns, CsvColumns};
pub use dataset::Dataset;
pub use folder::{decode_sample, load_sample, ImageFolder};
pub use idx::{load_idx_pair, parse_idx, parse_idx_pair, read_idx, Idx};
pub use image::{decode_image, load_image, mnist_like, MNIST_SIDE};
pub use info::{ChannelNorm, DataInfo, Normalize, Standardize, DATA_KEY};
pub use loader::{Batches, Loader};
pub use npy::{dataset as npy_dataset, load_npy, parse_npy, parse_npz, Array};
pub use split::random_split;
pub use targets::{Targets, Task};

use crate::error::{Error, Result};
use crate::Tensor;
use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A data set held in memory: features, targets, where they came from and
/// what a saved model must know to read such data again.
#[derive(Clone, Debug)]
pub struct TensorDataset {
    /// Features: `[N, 1, H, W]` for IDX images (pixel / 255), `[N, C, H, W]`
    /// for an image folder or CIFAR, `[N, F]` for CSV.
    pub x: Tensor,
    /// One target per sample: a class, or a row of values.
    pub y: Targets,
    /// Where it came from (for error messages), e.g. the images file path or the CSV path.
    pub source: PathBuf,
    /// Class names, column names, the features' standardization.
    pub info: DataInfo,
}

impl TensorDataset {
    /// A data set of `x` (`[N, …]`) and its targets (class indices or
    /// `[N, K]` values), with no names.
    ///
    /// ```
    /// use backprop::{data::TensorDataset, Tensor};
    /// let d = TensorDataset::new(Tensor::zeros(&[3, 2]), vec![0, 1, 0], "mem");
    /// assert_eq!((d.len(), d.sample_shape()), (3, &[2][..]));
    /// ```
    pub fn new(x: Tensor, y: impl Into<Targets>, source: impl Into<PathBuf>) -> TensorDataset {
        let y = y.into();
        assert_eq!(
            x.shape()[0],
            y.len(),
            "TensorDataset::new: samples vs targets"
        );
        TensorDataset {
            x,
            y,
            source: source.into(),
            info: DataInfo::default(),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when the data set holds no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Shape of one sample, e.g. `[1, 28, 28]` or `[F]`.
    pub fn sample_shape(&self) -> &[usize] {
        &self.x.shape()[1..]
    }

    /// A 64-bit digest of the data (its shape, every label, and every
    /// feature's bits), to tell whether a resumed run sees the data it was
    /// saved with. FNV-1a over the values: about 0.1 s for MNIST's 47 M
    /// features, once per run.
    pub fn fingerprint(&self) -> u64 {
        let mut f = Fnv::new();
        let mut mix = |v: u64| f.word(v);
        for &d in self.x.shape() {
            mix(d as u64);
        }
        self.y.digest(&mut mix);
        // Two features per round: the digest is of the values, not of a sample.
        for pair in self.x.data().chunks(2) {
            let lo = pair[0].to_bits() as u64;
            let hi = pair.get(1).map_or(0, |v| v.to_bits() as u64);
            mix(lo | hi << 32);
        }
        f.finish()
    }

    /// Rows picked by index: `(x batch, targets)`. Panics if an index is out of range.
    pub fn batch(&self, idx: &[usize]) -> (Tensor, Targets) {
        (self.x.gather_rows(idx), self.y.gather(idx))
    }

    /// The samples at `idx`, in that order, as a data set of their own
    /// (the same source and names).
    pub fn subset(&self, idx: &[usize]) -> TensorDataset {
        let (x, y) = self.batch(idx);
        TensorDataset {
            x,
            y,
            source: self.source.clone(),
            info: self.info.clone(),
        }
    }

    /// The class labels; an error naming the data when the targets are values.
    pub fn labels(&self) -> Result<&[usize]> {
        self.y.classes().ok_or_else(|| {
            Error::data(
                &self.source,
                "holds value targets, not class labels; train it as a regression or multi-label task",
            )
        })
    }
}

/// FNV-1a, 64 bits: a cheap digest to compare data or settings between
/// runs and processes (not a defence against crafted collisions).
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Fnv {
    const PRIME: u64 = 0x0000_0100_0000_01B3;

    /// The empty digest.
    pub fn new() -> Fnv {
        Fnv(0xCBF2_9CE4_8422_2325)
    }

    /// Mix in one 64-bit word.
    pub fn word(&mut self, v: u64) {
        self.0 ^= v;
        self.0 = self.0.wrapping_mul(Self::PRIME);
    }

    /// Mix in bytes, one at a time.
    pub fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.word(x as u64);
        }
    }

    /// The digest.
    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

/// The most a deflate stream (gzip, zlib, PNG pixel data) can expand: 1032
/// output bytes per input byte. A header that declares more decoded data than
/// its compressed input could hold at this ratio is refused before anything
/// is allocated for it.
pub(crate) const DEFLATE_MAX_RATIO: u64 = 1032;

/// The gzip magic bytes.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// `raw` itself, or its decompressed contents when it starts with the gzip
/// magic bytes; `path` names it in errors. The output grows with the data
/// actually decoded (pre-sized from the input length only).
pub(crate) fn maybe_gunzip<'a>(raw: &'a [u8], path: &Path) -> Result<Cow<'a, [u8]>> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4));
    flate2::read::MultiGzDecoder::new(raw)
        .read_to_end(&mut out)
        .map_err(|e| gzip_error(path, &e))?;
    Ok(Cow::Owned(out))
}

/// The error for a gzip stream that could not be decoded.
pub(crate) fn gzip_error(path: &Path, e: &std::io::Error) -> Error {
    Error::data(
        path,
        format!("the gzip data is corrupt or truncated ({e}); download or compress the file again"),
    )
}

/// The file names tried for one IDX member of an MNIST-style folder, e.g.
/// `("train", "images", 3)` -> `train-images-idx3-ubyte`, `...gz`, and the
/// `train-images.idx3-ubyte` spelling some mirrors use.
fn idx_names(prefix: &str, kind: &str, ndims: u8) -> [String; 4] {
    [
        format!("{prefix}-{kind}-idx{ndims}-ubyte"),
        format!("{prefix}-{kind}-idx{ndims}-ubyte.gz"),
        format!("{prefix}-{kind}.idx{ndims}-ubyte"),
        format!("{prefix}-{kind}.idx{ndims}-ubyte.gz"),
    ]
}

/// The first of `names` that is a file in `dir`.
fn find_first(dir: &Path, names: &[String]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// A short listing of a folder's contents for error messages.
fn folder_listing(dir: &Path) -> String {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return String::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.is_empty() {
        return " (the folder is empty)".into();
    }
    let n = names.len();
    names.truncate(8);
    let more = if n > 8 {
        format!(", ... ({} more)", n - 8)
    } else {
        String::new()
    };
    format!(" (the folder holds: {}{more})", names.join(", "))
}

/// The images + labels pair with this prefix (`train` / `t10k`) in `dir`, if
/// the images file is there. One of the pair without the other is an error.
fn find_pair(dir: &Path, prefix: &str) -> Result<Option<(PathBuf, PathBuf)>> {
    let img_names = idx_names(prefix, "images", 3);
    let lab_names = idx_names(prefix, "labels", 1);
    match (find_first(dir, &img_names), find_first(dir, &lab_names)) {
        (Some(i), Some(l)) => Ok(Some((i, l))),
        (None, None) => Ok(None),
        (Some(i), None) => Err(Error::data(
            dir,
            format!(
                "found {} but no labels file to go with it (looked for {}); put the matching labels file in the folder",
                i.file_name().unwrap_or_default().to_string_lossy(),
                lab_names.join(", ")
            ),
        )),
        (None, Some(l)) => Err(Error::data(
            dir,
            format!(
                "found {} but no images file to go with it (looked for {}); put the matching images file in the folder",
                l.file_name().unwrap_or_default().to_string_lossy(),
                img_names.join(", ")
            ),
        )),
    }
}

/// Metadata of a data path; a missing path says so (`what`: "data", "test data").
fn stat(path: &Path, what: &str) -> Result<std::fs::Metadata> {
    std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::data(
                path,
                format!(
                    "does not exist; {what} is a folder holding the MNIST IDX files \
                     (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]), a folder of class subfolders \
                     of images, a CIFAR folder, a folder of .npy arrays, an .npz archive or a CSV file"
                ),
            )
        } else {
            Error::io(path, e)
        }
    })
}

/// The `--test-data` argument: a folder (its `t10k-*` files, or else its
/// `train-*` files) or a CSV file.
fn load_test(path: &Path, opts: &DataOptions) -> Result<TensorDataset> {
    let dir = stat(path, "test data")?.is_dir();
    if let Some((train, test)) = other_format(path, dir, opts)? {
        return Ok(test.unwrap_or(train));
    }
    if !dir {
        return load_table(path, opts);
    }
    if let Some((i, l)) = find_pair(path, "t10k")? {
        return load_idx_pair(&i, &l);
    }
    if let Some((i, l)) = find_pair(path, "train")? {
        return load_idx_pair(&i, &l);
    }
    Err(Error::data(
        path,
        format!(
            "holds no test images: looked for {} and {}{}; pass a folder with MNIST IDX files or a CSV file",
            idx_names("t10k", "images", 3).join(", "),
            idx_names("train", "images", 3).join(", "),
            folder_listing(path)
        ),
    ))
}

/// How to read a data path beyond its format, which is told by the path
/// itself (see [`load_data_with`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataOptions {
    /// A factor for CSV features (e.g. `1/255` for pixels).
    pub csv_scale: Option<f32>,
    /// A CSV file's target columns, by the header's names; empty: the
    /// label is the first column.
    pub target: Vec<String>,
    /// Read a named target column as class labels (else float values).
    pub classes: bool,
    /// Hold out this fraction of the training data as the test set
    /// ([`random_split`], seeded by `seed`) when there is no test set.
    pub test_split: Option<f64>,
    /// The seed of the held-out split.
    pub seed: u64,
    /// Resize every image of an image folder to this side (square).
    pub image_size: Option<usize>,
    /// Named-target CSVs: standardize the features with these figures (a
    /// saved model's) instead of fitting them on the training split.
    pub standardize: Option<Standardize>,
    /// Images: normalize each channel ([`ChannelNorm`]), with the training
    /// set's figures or given ones.
    pub normalize: Option<Normalize>,
}

/// The `--data` argument: a folder holding MNIST-named IDX files
/// (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, and when
/// present `t10k-images-idx3-ubyte[.gz]` + `t10k-labels-idx1-ubyte[.gz]` as the
/// test set) or a CSV file. `test` is the optional `--test-data` (a folder whose
/// `t10k-*` (or else `train-*`) files are used, or a CSV file) which overrides
/// the folder's t10k set. `csv_scale` multiplies CSV features (see [`load_csv`]).
/// Returns `(train, test)`. [`load_data_with`] reads the other formats.
///
/// A test set whose samples have the same number of values as the training
/// samples but a different shape (a CSV test set for IDX training images) is
/// reshaped to the training sample shape; a different number of values is an
/// error.
pub fn load_data(
    data: &Path,
    test: Option<&Path>,
    csv_scale: Option<f32>,
) -> Result<(TensorDataset, Option<TensorDataset>)> {
    let opts = DataOptions {
        csv_scale,
        ..Default::default()
    };
    load_data_with(data, test, &opts)
}

/// The training and test data at `data` (and `test`), in the format the
/// path shows:
///
/// - a folder of MNIST-named IDX files (its `t10k-*` files are the test set);
/// - a CSV file: the label in the first column, or with
///   [`DataOptions::target`] a header whose named columns are the targets,
///   the other columns' features then standardized with the training
///   split's means and deviations ([`Standardize`]; kept in the data's
///   [`DataInfo`] to be saved with the model).
///
/// Without a test set, [`DataOptions::test_split`] holds one out.
pub fn load_data_with(
    data: &Path,
    test: Option<&Path>,
    opts: &DataOptions,
) -> Result<(TensorDataset, Option<TensorDataset>)> {
    let meta = stat(data, "data")?;
    let (train, folder_test) = if let Some(sets) = other_format(data, meta.is_dir(), opts)? {
        sets
    } else if meta.is_dir() {
        let Some((i, l)) = find_pair(data, "train")? else {
            return Err(Error::data(
                data,
                format!(
                    "holds no training images: looked for {}{}; pass a folder with the MNIST IDX files, a folder of class \
                     subfolders of images, a CIFAR folder (data_batch_1.bin, …), a folder of x.npy and y.npy, or a CSV file",
                    idx_names("train", "images", 3).join(", "),
                    folder_listing(data)
                ),
            ));
        };
        let train = load_idx_pair(&i, &l)?;
        let test = match (test, find_pair(data, "t10k")?) {
            (None, Some((i, l))) => Some(load_idx_pair(&i, &l)?),
            _ => None,
        };
        (train, test)
    } else {
        (load_table(data, opts)?, None)
    };
    let test = match test {
        Some(t) => Some(load_test(t, opts)?),
        None => folder_test,
    };
    let test = match test {
        Some(t) => Some(match_shape(&train, t)?),
        None => None,
    };
    let (train, test) = match (test, opts.test_split) {
        (None, Some(f)) => {
            let (a, b) = random_split(&train, f, opts.seed)?;
            (a, Some(b))
        }
        (test, _) => (train, test),
    };
    standardize(train, test, opts)
}

/// A training set and maybe a test set, each of any [`Dataset`] type.
pub type Opened = (Box<dyn Dataset>, Option<Box<dyn Dataset>>);

/// Open the data at `data` (and `test`) in any format the library reads:
/// an image folder (one subfolder per class, see [`ImageFolder`]; decoded
/// into memory when it takes at most [`IN_MEMORY_BYTES`], else streamed
/// from the files batch by batch), or anything [`load_data_with`] reads.
/// [`DataOptions::test_split`] holds out a test set when there is none.
pub fn open(data: &Path, test: Option<&Path>, opts: &DataOptions) -> Result<Opened> {
    if !(stat(data, "data")?.is_dir() && folder::looks_like_image_folder(data)) {
        let (mut train, mut test) = load_data_with(data, test, opts)?;
        if let Some(how) = &opts.normalize {
            let n = match how {
                Normalize::Fit => ChannelNorm::fit(&train.x),
                Normalize::Given(n) => n.clone(),
            };
            for d in std::iter::once(&mut train).chain(test.as_mut()) {
                n.apply(&mut d.x, &d.source)?;
                d.info.normalize = Some(n.clone());
            }
        }
        return Ok((
            Box::new(train),
            test.map(|t| Box::new(t) as Box<dyn Dataset>),
        ));
    }
    let train = ImageFolder::open(data, opts.image_size)?;
    let (train, test) = match (test, opts.test_split) {
        (Some(t), _) => {
            let t = ImageFolder::open(t, opts.image_size.or(Some(train.sample_shape()[1])))?;
            (train.clone(), Some(t.match_classes(&train)?))
        }
        (None, Some(f)) => {
            let (a, b) = train.split(f, opts.seed)?;
            (a, Some(b))
        }
        (None, None) => (train, None),
    };
    let norm = match &opts.normalize {
        None => None,
        Some(Normalize::Given(n)) => Some(n.clone()),
        Some(Normalize::Fit) => Some(train.fit_normalization()?),
    };
    let train = train.normalized(norm.clone());
    let test = test.map(|t| t.normalized(norm));
    let bytes = |f: &ImageFolder| f.len() * f.sample_shape().iter().product::<usize>() * 4;
    let all = bytes(&train) + test.as_ref().map_or(0, bytes);
    if all > IN_MEMORY_BYTES {
        return Ok((
            Box::new(train),
            test.map(|t| Box::new(t) as Box<dyn Dataset>),
        ));
    }
    let test = match test {
        Some(t) => Some(Box::new(t.load()?) as Box<dyn Dataset>),
        None => None,
    };
    Ok((Box::new(train.load()?), test))
}

/// Image folders whose decoded pixels (float32) take at most this are
/// decoded once into memory; larger ones are streamed.
pub const IN_MEMORY_BYTES: usize = 1 << 30;

/// The sets of a CIFAR folder, a folder of `.npy` files or an `.npz`
/// file; `None` for the other formats.
fn other_format(
    data: &Path,
    dir: bool,
    opts: &DataOptions,
) -> Result<Option<(TensorDataset, Option<TensorDataset>)>> {
    let classes = opts.classes.then_some(true);
    if !dir {
        let ext = data.extension().and_then(|e| e.to_str()).unwrap_or("");
        return match ext {
            "npz" => Ok(Some(load_npy(data, classes)?)),
            "npy" => Err(Error::data(
                data,
                "is one array; pass the folder that holds x.npy and y.npy (or x_train.npy, y_train.npy, …), or an .npz archive",
            )),
            _ => Ok(None),
        };
    }
    if let Some((kind, train, test)) = cifar::find(data) {
        let test = test.map(|t| load_cifar(kind, &[t])).transpose()?;
        return Ok(Some((load_cifar(kind, &train)?, test)));
    }
    if npy::is_npy_folder(data) {
        return Ok(Some(load_npy(data, classes)?));
    }
    Ok(None)
}

/// A CSV file as `opts` says to read it.
fn load_table(path: &Path, opts: &DataOptions) -> Result<TensorDataset> {
    if opts.target.is_empty() {
        return load_csv(path, opts.csv_scale);
    }
    let cols = CsvColumns {
        target: opts.target.clone(),
        classes: opts.classes,
    };
    load_csv_columns(path, opts.csv_scale, &cols)
}

/// Standardize the features of a CSV read with named targets, with the
/// training split's figures (the test set's columns must be the same).
fn standardize(
    mut train: TensorDataset,
    test: Option<TensorDataset>,
    opts: &DataOptions,
) -> Result<(TensorDataset, Option<TensorDataset>)> {
    if opts.target.is_empty() {
        return Ok((train, test));
    }
    let s = opts
        .standardize
        .clone()
        .unwrap_or_else(|| Standardize::fit(&train.x));
    s.apply(&mut train.x, &train.source)?;
    train.info.standardize = Some(s.clone());
    let test = match test {
        Some(mut t) => {
            if t.info.features != train.info.features {
                return Err(Error::data(
                    &t.source,
                    format!(
                        "has the feature columns {:?}, but the training data {} has {:?}; use files with the same columns",
                        t.info.features,
                        train.source.display(),
                        train.info.features
                    ),
                ));
            }
            s.apply(&mut t.x, &t.source)?;
            t.info.standardize = Some(s);
            Some(t)
        }
        None => None,
    };
    Ok((train, test))
}

/// Check that test samples have as many values as training samples, and give
/// them the training sample shape.
fn match_shape(train: &TensorDataset, test: TensorDataset) -> Result<TensorDataset> {
    if test.sample_shape() == train.sample_shape() {
        return Ok(test);
    }
    let per = |s: &[usize]| s.iter().product::<usize>();
    let (tr, te) = (train.sample_shape(), test.sample_shape());
    if per(tr) != per(te) {
        return Err(Error::data(
            &test.source,
            format!(
                "test samples have shape {te:?} ({} values) but the training samples from {} have shape {tr:?} ({} values); \
                 use test data with the same number of features",
                per(te),
                train.source.display(),
                per(tr)
            ),
        ));
    }
    let mut shape = vec![test.len()];
    shape.extend_from_slice(tr);
    let TensorDataset { x, y, source, info } = test;
    Ok(TensorDataset {
        x: x.reshape(&shape),
        y,
        source,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Writes an MNIST-style pair `{prefix}-images-idx3-ubyte[.gz]` with n 2x2 images.
    fn write_pair(dir: &Path, prefix: &str, n: u32, gzip: bool) {
        let px: Vec<u8> = (0..n * 4).map(|i| (i % 256) as u8).collect();
        let lab: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let mut img = idx_bytes(0x803, &[n, 2, 2], &px);
        let mut labb = idx_bytes(0x801, &[n], &lab);
        let ext = if gzip { ".gz" } else { "" };
        if gzip {
            img = gz(&img);
            labb = gz(&labb);
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte{ext}")), img).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")), labb).unwrap();
    }

    fn msg(e: Error) -> String {
        let s = e.to_string();
        assert!(!s.contains('\n'), "multi-line message: {s}");
        s
    }

    #[test]
    fn dataset_accessors_and_batch() {
        let d = TensorDataset::new(
            Tensor::from_vec(vec![3, 2], vec![0., 1., 2., 3., 4., 5.]),
            vec![7, 8, 9],
            "mem",
        );
        assert_eq!(d.len(), 3);
        assert!(!d.is_empty());
        assert_eq!(d.sample_shape(), &[2]);
        let (x, y) = d.batch(&[2, 0]);
        assert_eq!(x.shape(), &[2, 2]);
        assert_eq!(x.data(), &[4., 5., 0., 1.]);
        assert_eq!(y, vec![9, 7]);
    }

    #[test]
    fn folder_with_train_and_t10k() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "train", 5, true);
        write_pair(dir.path(), "t10k", 3, false);
        let (train, test) = load_data(dir.path(), None, None).unwrap();
        assert_eq!(train.len(), 5);
        assert_eq!(train.x.shape(), &[5, 1, 2, 2]);
        let test = test.unwrap();
        assert_eq!(test.len(), 3);
        assert!(test.source.ends_with("t10k-images-idx3-ubyte"));
    }

    #[test]
    fn folder_without_t10k_has_no_test_set() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "train", 4, false);
        let (train, test) = load_data(dir.path(), None, None).unwrap();
        assert_eq!(train.len(), 4);
        assert!(test.is_none());
    }

    #[test]
    fn test_data_overrides_folder_t10k() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "train", 5, false);
        write_pair(dir.path(), "t10k", 3, false);
        // a folder with only train-* files: those are the test set
        let other = tempfile::tempdir().unwrap();
        write_pair(other.path(), "train", 2, true);
        let (_, test) = load_data(dir.path(), Some(other.path()), None).unwrap();
        assert_eq!(test.unwrap().len(), 2);
        // a CSV test set with 4 features is reshaped to [1, 2, 2]
        let csv = other.path().join("t.csv");
        std::fs::write(&csv, "1,0,0.5,1,0\n2,1,1,1,1\n").unwrap();
        let (_, test) = load_data(dir.path(), Some(&csv), None).unwrap();
        let test = test.unwrap();
        assert_eq!(test.x.shape(), &[2, 1, 2, 2]);
        assert_eq!(test.y, vec![1, 2]);
        // a CSV test set with the wrong number of features is an error
        std::fs::write(&csv, "1,0,0.5,1\n").unwrap();
        let e = msg(load_data(dir.path(), Some(&csv), None).unwrap_err());
        assert!(
            e.contains("t.csv") && e.contains("3 values") && e.contains("4 values"),
            "{e}"
        );
    }

    #[test]
    fn csv_file_as_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train.csv");
        std::fs::write(&p, "label,a,b\n3,10,20\n1,30,40\n").unwrap();
        let (train, test) = load_data(&p, None, Some(0.1)).unwrap();
        assert!(test.is_none());
        assert_eq!(train.x.shape(), &[2, 2]);
        assert_eq!(train.y, vec![3, 1]);
        assert!((train.x.data()[3] - 4.0).abs() < 1e-6);
    }

    #[test]
    fn missing_paths_and_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = msg(load_data(&missing, None, None).unwrap_err());
        assert!(e.contains("nope") && e.contains("does not exist"), "{e}");

        std::fs::write(dir.path().join("readme.txt"), "hi").unwrap();
        let e = msg(load_data(dir.path(), None, None).unwrap_err());
        assert!(
            e.contains("train-images-idx3-ubyte")
                && e.contains("train-images-idx3-ubyte.gz")
                && e.contains("readme.txt"),
            "{e}"
        );

        write_pair(dir.path(), "train", 2, false);
        let e = msg(load_data(dir.path(), Some(&missing), None).unwrap_err());
        assert!(e.contains("nope") && e.contains("does not exist"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = msg(load_data(dir.path(), Some(empty.path()), None).unwrap_err());
        assert!(
            e.contains("t10k-images-idx3-ubyte") && e.contains("folder is empty"),
            "{e}"
        );
    }

    #[test]
    fn images_without_labels() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "train", 2, false);
        std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte")).unwrap();
        let e = msg(load_data(dir.path(), None, None).unwrap_err());
        assert!(
            e.contains("found train-images-idx3-ubyte") && e.contains("train-labels-idx1-ubyte.gz"),
            "{e}"
        );
    }

    #[test]
    fn idx_file_given_as_data() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "train", 2, true);
        let p = dir.path().join("train-images-idx3-ubyte.gz");
        let e = msg(load_data(&p, None, None).unwrap_err());
        assert!(e.contains("IDX file") && e.contains("folder"), "{e}");
    }

    #[test]
    fn real_mnist() {
        let dir = Path::new("/work/shared/data/mnist");
        if !dir.is_dir() {
            println!("skipping real_mnist: {} is absent", dir.display());
            return;
        }
        let (train, test) = load_data(dir, None, None).unwrap();
        let test = test.expect("t10k files present");
        assert_eq!(train.len(), 60000);
        assert_eq!(test.len(), 10000);
        let labels = train.labels().unwrap();
        assert_eq!(labels[0], 5);
        assert_eq!(train.x.shape(), &[60000, 1, 28, 28]);
        assert_eq!(test.x.shape(), &[10000, 1, 28, 28]);
        let max = train.x.data().iter().copied().fold(f32::MIN, f32::max);
        assert_eq!(max, 1.0);
        assert!(labels.iter().all(|&y| y < 10));
    }
}
