//! What each fuzz target does with one input, shared by the fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, nightly, cargo-fuzz) and by the replay test
//! `tests/fuzz_corpus.rs` (stable, `cargo test`), which runs every committed
//! seed and every past crash input through the same code.
//!
//! Each function panics on a bug (a panic in the parser or a broken
//! invariant of what it returned) and returns whether the input was
//! accepted. Every target but `model_line` reads a flags byte first; see each.
#![allow(dead_code)]

use backprop::data::text::{CharText, Split};
use backprop::data::{decode_image, parse_csv, parse_idx, parse_idx_pair};
use backprop::io::{model_from_weights, parse, MODEL_KEY};
use backprop::nn::{spec, Init, Module, ModuleExt, Sequential};
use rand::SeedableRng;
use std::io::Write;
use std::path::Path;

/// Models with more values than this are checked but not built.
pub const BUILD_LIMIT: usize = 1 << 20;

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// IDX files (MNIST), raw and gzip-compressed: `parse_idx` and
/// `parse_idx_pair`, the parsers `read_idx` and `load_idx_pair` run.
///
/// Input: one flags byte, then the file. Flags bit 0: gzip the file first
/// (so valid gzip streams of fuzzed IDX data are reached, not only raw bytes
/// that start with the gzip magic); bit 1: read an images + labels pair, the
/// file split in two at the offset given by the next two bytes (LE).
pub fn idx(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let prep = |b: &[u8]| if flags & 1 != 0 { gzip(b) } else { b.to_vec() };
    if flags & 2 == 0 {
        let Ok(idx) = parse_idx(&prep(rest), Path::new("fuzz-idx")) else {
            return false;
        };
        assert_eq!(idx.data.len(), idx.dims.iter().product::<usize>());
        return true;
    }
    if rest.len() < 2 {
        return false;
    }
    let (at, body) = rest.split_at(2);
    let at = u16::from_le_bytes([at[0], at[1]]) as usize % (body.len() + 1);
    let (img, lab) = body.split_at(at);
    let (img, lab) = (prep(img), prep(lab));
    let Ok(d) = parse_idx_pair(
        &img,
        Path::new("fuzz-images"),
        &lab,
        Path::new("fuzz-labels"),
    ) else {
        return false;
    };
    assert_eq!(d.x.shape()[0], d.y.len());
    assert!(!d.is_empty());
    true
}

/// CSV data sets: `parse_csv`, the parser `load_csv` runs.
///
/// Input: one flags byte, then the file. Flags bit 0: gzip the file first;
/// bit 1: scale the features by 1/255 (`--csv-scale`).
pub fn csv(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let file = if flags & 1 != 0 {
        gzip(rest)
    } else {
        rest.to_vec()
    };
    let scale = (flags & 2 != 0).then_some(1.0 / 255.0);
    let Ok(d) = parse_csv(&file, Path::new("fuzz.csv"), scale) else {
        return false;
    };
    assert_eq!(d.x.shape()[0], d.y.len());
    assert!(!d.is_empty() && d.x.shape()[1] > 0);
    assert!(d.x.data().iter().all(|v| v.is_finite()));
    true
}

/// Weights files: `io::parse`, the parser `io::load` runs for our files and
/// PyTorch's, then, when the file carries a model line small enough to build
/// here, `io::model_from_weights` (what `eval` and `predict` do). The input
/// is the file.
pub fn safetensors(data: &[u8]) -> bool {
    let origin = Path::new("fuzz.safetensors");
    let Ok(w) = parse(data, origin) else {
        return false;
    };
    for (_, t) in &w.tensors {
        assert_eq!(t.data().len(), t.shape().iter().product::<usize>());
    }
    if let Some(line) = w.metadata.get(MODEL_KEY) {
        if Sequential::check_line(line).is_ok_and(|n| n <= BUILD_LIMIT) {
            if let Ok(m) = model_from_weights(&w, origin, None) {
                assert_eq!(m.state_dict().len(), w.tensors.len());
            }
        }
    }
    true
}

/// A run's state file (`runs/x.state.safetensors`): the safetensors parser,
/// then `train::Resume::from_state` (the run's position, JSON in the
/// metadata), the metrics recorder's JSON, and the optimizer state loaded
/// for a small model, which checks every tensor's size against its
/// parameter's. The input is the file.
pub fn run_state(data: &[u8]) -> bool {
    let origin = Path::new("fuzz.state.safetensors");
    let Ok(w) = parse(data, origin) else {
        return false;
    };
    if let Some(m) = w.metadata.get("backprop.metrics") {
        let _ = serde_json::from_str::<backprop::train::metrics::Recorder>(m);
    }
    let Ok(r) = backprop::run::read_state(&w, origin) else {
        return false;
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let model = Sequential::parse("linear(4,3),relu,linear(3,2)", Init::Default, &mut rng).unwrap();
    for kind in [
        backprop::optim::OptimizerKind::Sgd,
        backprop::optim::OptimizerKind::Adam,
        backprop::optim::OptimizerKind::RmsProp,
    ] {
        let mut opt = backprop::optim::Optimizer::new(backprop::optim::OptimizerConfig::new(kind));
        let _ = opt.load_state_dict(&r.optimizer, &model, origin);
    }
    true
}

/// The one-line model spec: `Sequential::check_line` (sizes checked, nothing
/// allocated), then `Sequential::parse` when the model is small enough to
/// build here, and the shape checks `train` runs on MNIST-shaped samples.
/// The input is the line (invalid UTF-8 replaced).
pub fn model_line(data: &[u8]) -> bool {
    let line = String::from_utf8_lossy(data);
    let _ = spec::parse(&line);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    match Sequential::check_line(&line) {
        Err(e) => {
            // parse refuses it too, with the same message, before allocating
            let e2 = Sequential::parse(&line, Init::Default, &mut rng).unwrap_err();
            assert_eq!(e.to_string(), e2.to_string());
            false
        }
        Ok(n) if n <= BUILD_LIMIT => {
            let m =
                Sequential::parse(&line, Init::Default, &mut rng).expect("check_line accepted it");
            let held: usize = m.state_dict().iter().map(|(_, t)| t.data().len()).sum();
            assert_eq!(held, n);
            for sample in [&[1, 28, 28][..], &[784], &[28, 28], &[3, 32, 32]] {
                if m.output_shape(sample).is_ok() {
                    let _ = m.check_batch(sample, 1);
                    let _ = m.check_batch(sample, 64);
                }
            }
            let _ = m.input_shape_hint();
            true
        }
        Ok(_) => true,
    }
}

/// The CRC-32 of PNG chunks (zlib's, as flate2 computes it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(bytes);
    c.sum()
}

/// Rewrite the CRC of every whole chunk after the 8-byte PNG signature.
fn fix_crcs(png: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= png.len()) else {
            return;
        };
        let crc = crc32(&png[at + 4..end]);
        png[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

/// Images for `predict`: `decode_image` (PNG, PGM P2/P5), the decoder
/// `load_image` runs.
///
/// Input: one flags byte, then the file. Flags bit 0: when the file is a
/// PNG, set every chunk's CRC to the right value first. The decoder checks
/// CRCs, so without this almost every mutation of a PNG's header or pixel
/// data would stop at the first CRC check and the decoding behind it would
/// not be reached; with bit 0 clear, bad CRCs are fuzzed too.
pub fn image(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let mut file = rest.to_vec();
    if flags & 1 != 0 && file.starts_with(b"\x89PNG\r\n\x1a\n") {
        fix_crcs(&mut file);
    }
    let Ok(t) = decode_image(&file, Path::new("fuzz.png")) else {
        return false;
    };
    let s = t.shape();
    assert_eq!((s.len(), s[0], s[1]), (4, 1, 1));
    assert!(t.data().iter().all(|v| (0.0..=1.0).contains(v)));
    true
}

/// Text for a language model: `CharText::from_bytes` (the parser
/// `--data FILE.txt` runs), or with flags bit 0 `CharText::with_vocab` with
/// the printable ASCII characters and newline as the model's vocabulary (what `eval`
/// runs); then windows of `(flags >> 1) + 1` characters of both splits.
///
/// Input: one flags byte, then the file. Accepted: the text is read and
/// both splits hold a window.
pub fn text(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let path = Path::new("fuzz.txt");
    let vocab: Vec<char> = std::iter::once('\n').chain(' '..='~').collect();
    let read = if flags & 1 != 0 {
        CharText::with_vocab(rest, &vocab, path)
    } else {
        CharText::from_bytes(rest, path)
    };
    let Ok(t) = read else {
        return false;
    };
    let s = std::str::from_utf8(rest).expect("accepted text is UTF-8");
    assert!(t.vocab.windows(2).all(|w| w[0] < w[1]), "vocabulary sorted");
    assert_eq!(t.train.len() + t.val.len(), s.chars().count());
    let all: Vec<usize> = t.train.iter().chain(&t.val).map(|&i| i as usize).collect();
    assert!(all.iter().all(|&i| i < t.vocab.len()));
    assert_eq!(t.decode(&all), s, "ids decode to the text");
    let block = (flags >> 1) as usize + 1;
    if t.check_block(block).is_err() {
        return false;
    }
    let mut rng = backprop::rand::seeded(flags as u64);
    for split in [Split::Train, Split::Val] {
        let offsets = t.eval_offsets(split, block);
        assert!(!offsets.is_empty());
        let w = t.windows(split, &offsets, block);
        assert_eq!(w.x.shape(), &[offsets.len(), block]);
        assert_eq!(w.y.len(), offsets.len() * block);
        let b = t.batch(split, 3, block, &mut rng);
        assert!(b.y.iter().all(|&y| y < t.vocab.len()));
    }
    true
}

/// NumPy arrays: `parse_npy` (flags bit 0 clear) or `parse_npz` (set), the
/// parsers `load_npy` runs, then the data set of the first two arrays
/// (as class labels when bit 1 is set).
///
/// Input: one flags byte, then the file.
pub fn npy(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let p = Path::new("fuzz.npy");
    let arrays = if flags & 1 == 0 {
        match backprop::data::parse_npy(rest, p) {
            Ok(a) => vec![a.clone(), a],
            Err(_) => return false,
        }
    } else {
        match backprop::data::parse_npz(rest, p) {
            Ok(v) => v.into_iter().map(|(_, a)| a).collect(),
            Err(_) => return false,
        }
    };
    for a in &arrays {
        assert_eq!(a.values.len(), a.shape.iter().product::<usize>());
    }
    let mut it = arrays.into_iter();
    let (Some(x), Some(y)) = (it.next(), it.next()) else {
        return true;
    };
    if let Ok(d) = backprop::data::npy_dataset(x, y, p, (flags & 2 != 0).then_some(true)) {
        assert_eq!(d.x.shape()[0], d.len());
    }
    true
}

/// CIFAR binary files: `parse_cifar`, the parser `load_cifar` runs.
///
/// Input: one flags byte (bit 0: CIFAR-100), then the file.
pub fn cifar(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let kind = if flags & 1 == 0 {
        backprop::data::Cifar::Ten
    } else {
        backprop::data::Cifar::Hundred
    };
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let ok = backprop::data::parse_cifar(rest, Path::new("fuzz.bin"), kind, &mut x, &mut y).is_ok();
    if ok {
        assert_eq!(x.len(), y.len() * 3072);
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    ok
}

/// CSV files with a header and named targets: `parse_csv_columns`.
///
/// Input: one flags byte (bit 0: the target as class labels; bit 1: gzip
/// the file), a line naming the target columns (comma-separated), then
/// the file.
pub fn csv_columns(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let names = String::from_utf8_lossy(&rest[..nl]);
    let cols = backprop::data::CsvColumns {
        target: names.split(',').map(String::from).collect(),
        classes: flags & 1 != 0,
    };
    let body = &rest[nl + 1..];
    let file = if flags & 2 != 0 {
        gzip(body)
    } else {
        body.to_vec()
    };
    let Ok(d) = backprop::data::parse_csv_columns(&file, Path::new("fuzz.csv"), None, &cols) else {
        return false;
    };
    assert_eq!(d.x.shape()[0], d.len());
    assert_eq!(d.info.targets.len(), cols.target.len());
    assert_eq!(d.info.features.len(), d.x.shape()[1]);
    true
}

/// One image of an image folder: `decode_sample` (the `image` crate's PNG
/// and JPEG decoders, then the resize and layout), as `load_sample` and
/// the folder's batches run it.
///
/// Input: one flags byte (bit 0: RGB, else grey; bits 1–3: the side − 1),
/// then the file.
pub fn image_sample(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let c = if flags & 1 != 0 { 3 } else { 1 };
    let side = 1 + ((flags >> 1) & 7) as usize;
    let Ok(t) = backprop::data::decode_sample(rest, Path::new("fuzz.png"), [c, side, side]) else {
        return false;
    };
    assert_eq!(t.shape(), &[1, c, side, side]);
    assert!(t.data().iter().all(|v| (0.0..=1.0).contains(v)));
    true
}
