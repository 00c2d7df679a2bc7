//! A folder of images, one subfolder per class (`root/cat/*.png`,
//! `root/dog/*.jpg`), as torchvision's `ImageFolder` reads it: classes in
//! the sorted order of their folders' names, files sorted by name, PNG and
//! JPEG decoded by the `image` crate, values in `[0, 1]` (torchvision's
//! `ToTensor`), laid out `[C, H, W]`.
//!
//! Opening a folder reads every file's header only (its size and colour
//! type); the pixels are decoded when a batch asks for them, so a folder
//! larger than memory trains (the [`Loader`](super::Loader) decodes the
//! next batches on a background thread). [`ImageFolder::load`] decodes
//! everything once instead, for folders that fit.

use super::{ChannelNorm, DataInfo, Dataset, Fnv, Targets, TensorDataset};
use crate::error::{Error, Result};
use crate::Tensor;
use image::imageops::FilterType;
use image::{ColorType, DynamicImage, ImageDecoder, ImageReader};
use std::path::{Path, PathBuf};

/// The extensions read as images (any case).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The most images [`ImageFolder::fit_normalization`] decodes.
pub const FIT_IMAGES: usize = 10_000;

/// Images larger than this many pixels are refused (a decompression bomb).
const MAX_PIXELS: u64 = 1 << 26;

/// A folder of images, one subfolder per class.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    root: PathBuf,
    files: Vec<PathBuf>,
    targets: Targets,
    classes: Vec<String>,
    /// `[channels, height, width]` of every sample.
    shape: [usize; 3],
    /// Resize every image to `shape`'s height and width (else they all
    /// have that size already).
    resize: bool,
    /// Each channel's normalization, applied after decoding.
    norm: Option<ChannelNorm>,
}

/// Whether `p` is named like an image we read.
fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The entries of `dir`, sorted by name, hidden ones (`.DS_Store`) left out.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Whether `dir` looks like an image folder: a subfolder holding an image.
pub(crate) fn looks_like_image_folder(dir: &Path) -> bool {
    sorted_entries(dir).is_ok_and(|v| {
        v.iter().filter(|p| p.is_dir()).any(|sub| {
            sorted_entries(sub).is_ok_and(|f| f.iter().any(|p| p.is_file() && is_image(p)))
        })
    })
}

/// The size and colour type an image file's header declares.
fn header(path: &Path) -> Result<(u32, u32, ColorType)> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::data(
            path,
            format!("is not a readable PNG or JPEG image ({e}); replace or remove the file"),
        )
    };
    let r = ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let d = r.into_decoder().map_err(|e| bad(&e))?;
    let (w, h) = d.dimensions();
    if w == 0 || h == 0 || w as u64 * h as u64 > MAX_PIXELS {
        return Err(Error::data(
            path,
            format!("declares an image of {w}×{h} pixels; replace or remove the file"),
        ));
    }
    Ok((w, h, d.color_type()))
}

/// The image at `path`, decoded.
fn decode(path: &Path) -> Result<DynamicImage> {
    decode_bytes(&crate::io::read_regular(path)?, path)
}

/// A PNG or JPEG file's bytes decoded, allocating no more than the file
/// could hold at deflate's largest ratio (a tiny file that declares a huge
/// image is refused before its frame is allocated).
fn decode_bytes(bytes: &[u8], origin: &Path) -> Result<DynamicImage> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::data(
            origin,
            format!("is not a readable PNG or JPEG image ({e}); replace or remove the file"),
        )
    };
    if bytes.starts_with(b"\x89PNG") {
        super::image::check_png_palette(bytes, origin)?;
    }
    let mut r = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(
        (bytes.len() as u64)
            .saturating_mul(super::DEFLATE_MAX_RATIO)
            .min(MAX_PIXELS * 4),
    );
    r.limits(limits);
    r.decode().map_err(|e| bad(&e))
}

/// The image at `path` as one sample `[1, C, H, W]` of `shape`: resized to
/// `shape`'s height and width when it has another size (the `image`
/// crate's triangle filter: bilinear), grey or RGB as `shape` says, values
/// in `[0, 1]`. What `backprop predict` feeds a model trained on an
/// [`ImageFolder`].
pub fn load_sample(path: &Path, shape: [usize; 3]) -> Result<Tensor> {
    decode_sample(&crate::io::read_regular(path)?, path, shape)
}

/// [`load_sample`] on a file already in memory (`origin` names it).
pub fn decode_sample(bytes: &[u8], origin: &Path, shape: [usize; 3]) -> Result<Tensor> {
    let img = decode_bytes(bytes, origin)?;
    if img.width() as u64 * img.height() as u64 > MAX_PIXELS {
        return Err(Error::data(
            origin,
            "is too large an image; replace or remove the file",
        ));
    }
    let mut out = vec![0f32; shape.iter().product()];
    fill(img, shape, &mut out);
    let [c, h, w] = shape;
    Ok(Tensor::from_vec(vec![1, c, h, w], out))
}

/// `img` resized and laid out as `[C, H, W]` in `[0, 1]`.
fn fill(img: DynamicImage, [c, h, w]: [usize; 3], out: &mut [f32]) {
    let img = if (img.width() as usize, img.height() as usize) != (w, h) {
        img.resize_exact(w as u32, h as u32, FilterType::Triangle)
    } else {
        img
    };
    if c == 1 {
        let g = img.into_luma8();
        for (o, &v) in out.iter_mut().zip(g.as_raw()) {
            *o = v as f32 / 255.0;
        }
        return;
    }
    let rgb = img.into_rgb8();
    let plane = h * w;
    for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            out[ch * plane + i] = v as f32 / 255.0;
        }
    }
}

impl ImageFolder {
    /// Open `root`: one subfolder per class, PNG and JPEG files in each
    /// (other files are skipped). `size`: resize every image to
    /// `size`×`size`; without it every image must have the same size.
    /// Images are grey (1 channel) when every file is grey, else RGB.
    ///
    /// Errors name the file or folder: no class folders, an empty class
    /// folder, a file that is not an image its name says, images of mixed
    /// sizes without `size`.
    pub fn open(root: &Path, size: Option<usize>) -> Result<ImageFolder> {
        if size == Some(0) {
            return Err(Error::invalid(
                crate::Setting::ImageSize,
                0,
                "images must be at least 1 pixel wide",
            ));
        }
        let subs: Vec<PathBuf> = sorted_entries(root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if subs.is_empty() {
            return Err(Error::data(
                root,
                "holds no class folders; an image folder holds one subfolder per class (root/cat/*.png, root/dog/*.jpg)",
            ));
        }
        let (mut files, mut labels, mut classes) = (Vec::new(), Vec::new(), Vec::new());
        for (c, sub) in subs.iter().enumerate() {
            let imgs: Vec<PathBuf> = sorted_entries(sub)?
                .into_iter()
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if imgs.is_empty() {
                return Err(Error::data(
                    sub,
                    "is an empty class folder (no .png, .jpg or .jpeg files); add its images or remove the folder",
                ));
            }
            labels.extend(std::iter::repeat_n(c, imgs.len()));
            files.extend(imgs);
            classes.push(
                sub.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        let mut grey = true;
        let mut first: Option<(u32, u32, &Path)> = None;
        for f in &files {
            let (w, h, ct) = header(f)?;
            grey &= !ct.has_color();
            match first {
                None => first = Some((w, h, f)),
                Some((w0, h0, f0)) if size.is_none() && (w, h) != (w0, h0) => {
                    return Err(Error::data(
                        f,
                        format!(
                            "is {w}×{h} pixels but {} is {w0}×{h0}; give an image size to resize every image to",
                            f0.display()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        let (w, h, _) = first.expect("a class folder holds an image");
        let (h, w) = size.map_or((h as usize, w as usize), |s| (s, s));
        Ok(ImageFolder {
            root: root.to_path_buf(),
            files,
            targets: Targets::Classes(labels),
            classes,
            shape: [if grey { 1 } else { 3 }, h, w],
            resize: size.is_some(),
            norm: None,
        })
    }

    /// The class names, in index order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The image files, in sample order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The samples at `idx` as a folder of their own (the same classes).
    pub fn subset(&self, idx: &[usize]) -> ImageFolder {
        ImageFolder {
            files: idx.iter().map(|&i| self.files[i].clone()).collect(),
            targets: self.targets.gather(idx),
            ..self.clone()
        }
    }

    /// Split at random into `(rest, held out)`, `fraction` held out, the
    /// permutation drawn from `seed` (as [`random_split`](super::random_split)).
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(ImageFolder, ImageFolder)> {
        let (train, test) =
            super::split::split_indices(self.files.len(), fraction, seed, &self.root)?;
        Ok((self.subset(&train), self.subset(&test)))
    }

    /// A test folder must have the training folder's classes and sample shape.
    pub fn match_classes(self, train: &ImageFolder) -> Result<ImageFolder> {
        if self.classes != train.classes {
            return Err(Error::data(
                &self.root,
                format!(
                    "has the classes {:?}, but the training folder {} has {:?}; use folders with the same class subfolders",
                    self.classes,
                    train.root.display(),
                    train.classes
                ),
            ));
        }
        Ok(ImageFolder {
            shape: train.shape,
            resize: true,
            ..self
        })
    }

    /// The folder with its images normalized channel by channel.
    pub fn normalized(self, norm: Option<ChannelNorm>) -> ImageFolder {
        ImageFolder { norm, ..self }
    }

    /// Each channel's mean and deviation over up to `FIT_IMAGES` (10 000) of the
    /// folder's images, evenly spaced (decoded once, not kept).
    pub fn fit_normalization(&self) -> Result<ChannelNorm> {
        let n = self.files.len();
        let step = n.div_ceil(FIT_IMAGES).max(1);
        let idx: Vec<usize> = (0..n).step_by(step).collect();
        let plain = ImageFolder {
            norm: None,
            ..self.clone()
        };
        Ok(ChannelNorm::fit(&plain.features(&idx)?))
    }

    /// Decode every image into memory at once.
    pub fn load(&self) -> Result<TensorDataset> {
        let x = self.features(&(0..self.files.len()).collect::<Vec<_>>())?;
        let mut d = TensorDataset::new(x, self.targets.clone(), &self.root);
        d.info = self.info();
        Ok(d)
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn sample_shape(&self) -> &[usize] {
        &self.shape
    }

    fn targets(&self) -> &Targets {
        &self.targets
    }

    fn features(&self, idx: &[usize]) -> Result<Tensor> {
        let per: usize = self.shape.iter().product();
        let mut x = vec![0f32; idx.len() * per];
        for (&i, out) in idx.iter().zip(x.chunks_mut(per)) {
            let f = &self.files[i];
            let img = decode(f)?;
            if !self.resize
                && (img.width() as usize, img.height() as usize) != (self.shape[2], self.shape[1])
            {
                return Err(Error::data(
                    f,
                    format!(
                        "is {}×{} pixels, not {}×{} as when the folder was opened; it changed: open the folder again",
                        img.width(),
                        img.height(),
                        self.shape[2],
                        self.shape[1]
                    ),
                ));
            }
            fill(img, self.shape, out);
        }
        let mut shape = vec![idx.len()];
        shape.extend_from_slice(&self.shape);
        let mut x = Tensor::from_vec(shape, x);
        if let Some(n) = &self.norm {
            n.apply(&mut x, &self.root)?;
        }
        Ok(x)
    }

    fn source(&self) -> &Path {
        &self.root
    }

    fn info(&self) -> DataInfo {
        DataInfo {
            classes: self.classes.clone(),
            image: Some(self.shape),
            normalize: self.norm.clone(),
            ..Default::default()
        }
    }

    /// The files' names (relative to the root), sizes and classes.
    fn fingerprint(&self) -> u64 {
        let mut f = Fnv::new();
        self.shape.iter().for_each(|&d| f.word(d as u64));
        for p in &self.files {
            f.bytes(
                p.strip_prefix(&self.root)
                    .unwrap_or(p)
                    .as_os_str()
                    .as_encoded_bytes(),
            );
            f.word(std::fs::metadata(p).map_or(0, |m| m.len()));
        }
        self.targets.digest(|v| f.word(v));
        f.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w`×`h` RGB (or grey) PNG whose pixels are `v`.
    fn png(path: &Path, w: u32, h: u32, v: [u8; 3], grey: bool) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        if grey {
            image::GrayImage::from_pixel(w, h, image::Luma([v[0]]))
                .save(path)
                .unwrap();
        } else {
            image::RgbImage::from_pixel(w, h, image::Rgb(v))
                .save(path)
                .unwrap();
        }
    }

    #[test]
    fn classes_files_and_pixels_in_order() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        png(&r.join("dog/b.png"), 4, 3, [255, 0, 51], false);
        png(&r.join("cat/z.png"), 4, 3, [0, 255, 0], false);
        png(&r.join("cat/a.png"), 4, 3, [0, 0, 255], false);
        std::fs::write(r.join("cat/notes.txt"), "x").unwrap();
        std::fs::write(r.join(".DS_Store"), "x").unwrap();
        assert!(looks_like_image_folder(r));
        let f = ImageFolder::open(r, None).unwrap();
        assert_eq!(f.classes(), &["cat", "dog"]);
        assert_eq!(f.targets(), &Targets::Classes(vec![0, 0, 1]));
        assert_eq!(f.sample_shape(), &[3, 3, 4]);
        assert!(f.files()[0].ends_with("cat/a.png"));
        let x = f.features(&[2]).unwrap();
        assert_eq!(x.shape(), &[1, 3, 3, 4]);
        assert_eq!((x.data()[0], x.data()[12], x.data()[24]), (1.0, 0.0, 0.2));
        let info = f.info();
        assert_eq!(
            (info.class_name(1), info.image),
            ("dog".into(), Some([3, 3, 4]))
        );
        let m = f.load().unwrap();
        assert_eq!(m.x.data(), f.features(&[0, 1, 2]).unwrap().data());
        let (a, b) = f.split(1.0 / 3.0, 0).unwrap();
        assert_eq!((a.len(), b.len()), (2, 1));
    }

    #[test]
    fn grey_resize_and_the_errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        png(&r.join("a/1.png"), 8, 8, [255, 0, 0], true);
        png(&r.join("b/2.png"), 4, 6, [0, 0, 0], true);
        let e = ImageFolder::open(r, None).unwrap_err().to_string();
        assert!(
            e.contains("2.png") && e.contains("4×6") && e.contains("8×8"),
            "{e}"
        );
        let f = ImageFolder::open(r, Some(5)).unwrap();
        assert_eq!(f.sample_shape(), &[1, 5, 5]);
        let x = f.features(&[0, 1]).unwrap();
        assert!(x.data()[..25].iter().all(|&v| v == 1.0));
        // a corrupt file, a truncated one, an empty class folder, no classes
        std::fs::write(r.join("b/3.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let e = ImageFolder::open(r, Some(5)).unwrap_err().to_string();
        assert!(e.contains("3.png") && e.contains("not a readable"), "{e}");
        let full = std::fs::read(r.join("a/1.png")).unwrap();
        std::fs::write(r.join("b/3.png"), &full[..full.len() / 2]).unwrap();
        let f = ImageFolder::open(r, Some(5));
        let e = match f {
            Err(e) => e.to_string(),
            Ok(f) => f.features(&[2]).unwrap_err().to_string(),
        };
        assert!(e.contains("3.png"), "{e}");
        std::fs::remove_file(r.join("b/3.png")).unwrap();
        std::fs::create_dir(r.join("c")).unwrap();
        let e = ImageFolder::open(r, Some(5)).unwrap_err().to_string();
        assert!(
            e.contains("empty class folder") && e.ends_with("remove the folder"),
            "{e}"
        );
        let empty = tempfile::tempdir().unwrap();
        let e = ImageFolder::open(empty.path(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no class folders"), "{e}");
    }
}
