//! Weights files: safetensors with PyTorch's `nn.Sequential` names.
//!
//! A model saved here holds exactly what PyTorch's `state_dict()` holds for
//! the equivalent `nn.Sequential` (`1.weight`, `1.bias`, …), so
//! `model.load_state_dict(safetensors.torch.load_file(path))` works, plus the
//! model line in the file's metadata (`backprop.model`) so that `eval` and
//! `predict` need only the file. Files written by PyTorch
//! (`safetensors.torch.save_file(model.state_dict(), path)`) load too: they
//! carry no model line, and may store integer buffers such as
//! `num_batches_tracked` as int64 and parameters as f16/bf16/f64; all are
//! read as f32. Buffers named `*.num_batches_tracked` are written as int64.
//!
//! Every write is atomic: the bytes go to a temporary file in the same
//! folder, are flushed to disk, and the file is renamed over the target, so a
//! crash never leaves a half-written file where a good one was.
//!
//! Every file written here carries a SHA-256 digest of each tensor (its
//! dtype, shape and bytes) and of the rest of its metadata, under
//! [`DIGEST_KEY`]; [`parse`] (and so every load) checks them and names the
//! tensor that does not match, so a flipped bit is an error, not a silently
//! worse model. Files without digests (PyTorch's) are read unchecked.
//! The bytes of a file depend only on its tensors and metadata (the header's
//! keys are sorted), so the same run saved twice gives the same file.

use crate::nn::{Init, Module, ModuleExt, Sequential};
use crate::{Error, Result, Tensor};
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The metadata key that holds the model line.
pub const MODEL_KEY: &str = "backprop.model";

/// The metadata key of a language model's vocabulary: its characters in id
/// order, as one JSON string.
pub const VOCAB_KEY: &str = "backprop.vocab";

/// The metadata key of the optimizer step a file was saved at (a run's
/// model file and its state file both hold it).
pub const STEP_KEY: &str = "backprop.step";

/// The metadata key that holds the file's digests: a JSON object with the
/// SHA-256 (hex) of every tensor by name (over its dtype name, a NUL, its
/// shape as comma-separated numbers, a NUL, then its bytes as stored) and,
/// under `__metadata__`, of every other metadata entry (key, NUL, value,
/// NUL, in key order). `tools/verify_digests.py` checks a file the same way.
pub const DIGEST_KEY: &str = "backprop.sha256";

/// The digest of one tensor as stored: dtype name, shape, bytes.
fn tensor_digest(dtype: Dtype, shape: &[usize], data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(dtype_name(dtype).as_bytes());
    h.update([0]);
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    h.update(dims.join(",").as_bytes());
    h.update([0]);
    h.update(data);
    hex(&h.finalize())
}

/// The digest of a file's metadata, all but [`DIGEST_KEY`], in key order.
fn metadata_digest<'a>(entries: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let sorted: BTreeMap<&String, &String> = entries.filter(|(k, _)| *k != DIGEST_KEY).collect();
    let mut h = Sha256::new();
    for (k, v) in sorted {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// Strings, maps of strings and lists of numbers as JSON (these cannot fail).
fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("strings and numbers serialize")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The dtype's name in a safetensors header (`F32`, `I64`, …).
fn dtype_name(d: Dtype) -> String {
    format!("{d:?}")
}

/// Check the digests a file carries (see [`DIGEST_KEY`]) against its
/// tensors and metadata; a file without them passes.
fn verify_digests(st: &SafeTensors, metadata: &HashMap<String, String>, path: &Path) -> Result<()> {
    let Some(json) = metadata.get(DIGEST_KEY) else {
        return Ok(());
    };
    let damaged = |what: String| {
        Error::weights(
            path,
            format!(
                "{what}: the file is damaged (a flipped bit, a bad disk or an incomplete copy); \
                 restore it from a copy, or start the run again"
            ),
        )
    };
    let saved: BTreeMap<String, String> = serde_json::from_str(json)
        .map_err(|_| damaged(format!("its digests (`{DIGEST_KEY}`) cannot be read")))?;
    if saved.get("__metadata__") != Some(&metadata_digest(metadata.iter())) {
        return Err(damaged(
            "its metadata (model line, settings, step) does not match the digest saved with it"
                .into(),
        ));
    }
    let mut names = st.names();
    names.sort();
    for name in &names {
        let view = st
            .tensor(name)
            .map_err(|e| Error::weights(path, format!("not a valid safetensors file ({e})")))?;
        match saved.get(*name) {
            Some(d) if *d == tensor_digest(view.dtype(), view.shape(), view.data()) => {}
            Some(_) => {
                return Err(damaged(format!(
                    "tensor `{name}` does not match the digest saved with it"
                )))
            }
            None => {
                return Err(damaged(format!(
                    "tensor `{name}` has no digest, so it was not saved with this file"
                )))
            }
        }
    }
    if let Some(missing) = saved
        .keys()
        .find(|k| *k != "__metadata__" && !names.iter().any(|n| n == k))
    {
        return Err(damaged(format!("tensor `{missing}` is missing")));
    }
    Ok(())
}

/// Named tensors and the file's metadata.
pub struct Weights {
    /// `(name, tensor)` pairs, e.g. `("0.weight", …)`.
    pub tensors: Vec<(String, Tensor)>,
    /// The file's `__metadata__` strings (the model line under [`MODEL_KEY`]).
    pub metadata: HashMap<String, String>,
}

/// Refuse what is not a regular file (a named pipe, a socket, a device):
/// reading one could wait forever or never end. Links are followed.
pub fn check_regular(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        return Ok(());
    }
    let what = if meta.is_dir() {
        "a folder"
    } else {
        special_file_kind(&meta)
    };
    Err(Error::Config(format!(
        "{}: is {what}, not a regular file; give a file (reading this could wait forever)",
        path.display()
    )))
}

/// What a file that is neither a regular file nor a folder is.
#[cfg(unix)]
fn special_file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_: &std::fs::Metadata) -> &'static str {
    "a special file"
}

/// Open a regular file for reading ([`check_regular`] first).
pub fn open_regular(path: &Path) -> Result<std::fs::File> {
    check_regular(path)?;
    std::fs::File::open(path).map_err(|e| Error::io(path, e))
}

/// The whole of a regular file ([`check_regular`] first).
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    check_regular(path)?;
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// The metadata of a safetensors file (its `__metadata__` strings), read
/// from its header alone: the tensors are not read, nor their digests
/// checked (a page listing runs reads this, not the weights). A header
/// over 100 MB, or one that is not a JSON object, is refused.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let bad = |m: String| Error::weights(path, format!("not a valid safetensors file ({m})"));
    let mut f = open_regular(path)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 {
        return Err(bad(format!("a header of {n} bytes")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(e.to_string()))?;
    let meta = v
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(meta)
}

/// Read a safetensors file. Every dtype that holds numbers is converted to f32.
pub fn load(path: &Path) -> Result<Weights> {
    let bytes = read_regular(path)?;
    parse(&bytes, path)
}

/// [`load`] on a file already in memory: `bytes` is the whole safetensors
/// file, `origin` names it in error messages. This is the same parser `load`
/// runs; every tensor's offsets and shape are checked against `bytes.len()`
/// before its values are converted.
///
/// ```
/// use backprop::io::parse;
/// use std::path::Path;
/// let e = parse(b"\xff\xff\xff\xff\xff\xff\xff\xff{}", Path::new("m.safetensors")).err().unwrap();
/// assert!(e.to_string().starts_with("m.safetensors: not a valid safetensors file"));
/// ```
pub fn parse(bytes: &[u8], origin: &Path) -> Result<Weights> {
    let path = origin;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::weights(path, format!("not a valid safetensors file ({e})")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::weights(path, format!("not a valid safetensors file ({e})")))?;
    let metadata: HashMap<String, String> = meta
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    verify_digests(&st, &metadata, path)?;
    let mut tensors = Vec::new();
    let mut views = st.tensors();
    views.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in views {
        let d = view.data();
        let vals: Vec<f32> = match view.dtype() {
            Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            Dtype::F16 => d.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            Dtype::BF16 => d
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
            Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            Dtype::I32 => d.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            Dtype::U8 => d.iter().map(|&b| b as f32).collect(),
            other => {
                return Err(Error::weights(
                    path,
                    format!("tensor `{name}` has dtype {other:?}, which this tool cannot read; save it as float32"),
                ))
            }
        };
        tensors.push((name, Tensor::from_vec(view.shape().to_vec(), vals)));
    }
    Ok(Weights { tensors, metadata })
}

/// The step a file's metadata says it was saved at (`backprop.step`).
pub(crate) fn parse_metadata_step(w: &Weights, path: &Path) -> Result<u64> {
    let v = w.metadata.get(STEP_KEY).ok_or_else(|| {
        Error::weights(
            path,
            "the file holds no step: it was not saved during a run",
        )
    })?;
    v.parse()
        .map_err(|_| Error::weights(path, format!("its step `{v}` is not a whole number")))
}

/// f16 bits → f32.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if frac == 0 => sign,
        0 => {
            // Subnormal: value = frac · 2^-24.
            let v = frac as f32 * (1.0 / (1u32 << 24) as f32);
            return if sign != 0 { -v } else { v };
        }
        0x1f => sign | 0x7f80_0000 | (frac << 13),
        e => sign | ((e + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

/// Write named tensors (f32; `*.num_batches_tracked` as int64) with metadata, atomically.
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    write_atomic(path, &encode(path, tensors, metadata)?)
}

/// The bytes of a safetensors file of named tensors (f32;
/// `*.num_batches_tracked` as int64) with metadata and the digests of both
/// ([`DIGEST_KEY`]); `path` names it in errors.
///
/// The header is written here rather than by `safetensors::serialize`,
/// which writes the metadata in a hash map's order: the same tensors and
/// metadata must give the same bytes (so two runs with one seed can be
/// compared with `sha256sum`). The layout is the crate's: tensors by
/// descending dtype size, then by name, packed in that order; the header
/// padded with spaces to a multiple of 8 bytes.
pub fn encode(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut stored: Vec<(&str, Dtype, &[usize], Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            if n.ends_with("num_batches_tracked") {
                let b = t
                    .data()
                    .iter()
                    .flat_map(|&v| (v as i64).to_le_bytes())
                    .collect();
                (n.as_str(), Dtype::I64, t.shape(), b)
            } else {
                let b = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
                (n.as_str(), Dtype::F32, t.shape(), b)
            }
        })
        .collect();
    stored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if let Some(w) = stored.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::weights(
            path,
            format!("cannot encode tensors: the name `{}` is used twice", w[0].0),
        ));
    }
    let mut meta: BTreeMap<String, String> = metadata.into_iter().collect();
    let mut digests: BTreeMap<&str, String> = stored
        .iter()
        .map(|(n, dt, shape, b)| (*n, tensor_digest(*dt, shape, b)))
        .collect();
    digests.insert("__metadata__", metadata_digest(meta.iter()));
    meta.insert(DIGEST_KEY.into(), json(&digests));
    let mut header = format!("{{\"__metadata__\":{}", json(&meta));
    let mut offset = 0usize;
    for (n, dt, shape, b) in &stored {
        header.push_str(&format!(
            ",{}:{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{offset},{}]}}",
            json(n),
            dtype_name(*dt),
            json(shape),
            offset + b.len()
        ));
        offset += b.len();
    }
    header.push('}');
    let mut header = header.into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for (_, _, _, b) in &stored {
        out.extend_from_slice(b);
    }
    Ok(out)
}

/// Write `data` to `path` through a temporary file in the same folder,
/// flushed to disk, renamed over `path`, and the folder flushed: a crash
/// at any instant leaves the old file or the new one, never a mixture.
/// On an error (a full disk, a read-only folder) the old file is untouched
/// and the temporary file removed.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    write_synced(&tmp, data).map_err(|e| Error::io(path, e))?;
    std::fs::rename(&tmp, path)
        .and_then(|()| sync_dir(path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
}

/// Write `data` to a new file `path` and flush it to disk; on an error the
/// partial file is removed.
pub(crate) fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let res = (|| {
        let mut f = std::fs::File::create(path)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(path);
    }
    res
}

/// Flush the folder holding `path` (its renames) to disk.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Check, before a long run, that `path` can be written: not a folder, its
/// folder exists, and a file can be created there.
pub fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::Config(format!(
            "{}: is a folder; give a file name such as {}/model.safetensors",
            path.display(),
            path.display()
        )));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(Error::Config(format!(
            "{}: the folder {} does not exist; create it first",
            path.display(),
            parent.display()
        )));
    }
    let probe = temp_path(path);
    std::fs::File::create(&probe).map_err(|e| {
        Error::Config(format!(
            "{}: cannot write in {} ({e})",
            path.display(),
            parent.display()
        ))
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Save a module's state (exactly its `state_dict()`), with its model line
/// ([`Module::spec`]) in the metadata when it has one (`eval` and `predict`
/// then need only the file).
pub fn save_module(model: &dyn Module, path: &Path) -> Result<()> {
    save_module_with(model, path, HashMap::new())
}

/// [`save_module`] with more metadata (a language model's vocabulary
/// under [`VOCAB_KEY`]).
pub fn save_module_with(
    model: &dyn Module,
    path: &Path,
    mut meta: HashMap<String, String>,
) -> Result<()> {
    let tensors = model.state_dict();
    meta.insert("format".to_string(), "pt".to_string());
    if let Some(l) = model.spec() {
        meta.insert(MODEL_KEY.to_string(), l);
    }
    save(path, &tensors, meta)
}

/// The vocabulary a language model was saved with ([`VOCAB_KEY`]), if any.
pub fn vocab_of(w: &Weights, path: &Path) -> Result<Option<Vec<char>>> {
    let Some(v) = w.metadata.get(VOCAB_KEY) else {
        return Ok(None);
    };
    let s: String = serde_json::from_str(v).map_err(|e| {
        Error::weights(
            path,
            format!("its vocabulary ({VOCAB_KEY}) is not a JSON string: {e}"),
        )
    })?;
    let chars: Vec<char> = s.chars().collect();
    if chars.windows(2).any(|p| p[0] >= p[1]) {
        return Err(Error::weights(
            path,
            "its vocabulary is not sorted distinct characters",
        ));
    }
    Ok(Some(chars))
}

/// Load the parameters and buffers of `model` from a file (ours or
/// PyTorch's `state_dict`), strictly: every tensor present, with its shape,
/// and nothing else.
pub fn load_into(model: &mut dyn Module, path: &Path) -> Result<()> {
    let w = load(path)?;
    model.load_state_dict(&w.tensors, path)
}

/// Load a model from a file saved with its model line, or from a PyTorch
/// file when `spec` gives the model line (it overrides the file's own line).
pub fn load_model(path: &Path, spec: Option<&str>) -> Result<Sequential> {
    model_from_weights(&load(path)?, path, spec)
}

/// The model of [`load_model`] from weights already read (by [`load`] or
/// [`parse`] from `path`): the model line (`spec`, else the file's own)
/// built and the tensors loaded into it, strictly.
pub fn model_from_weights(w: &Weights, path: &Path, spec: Option<&str>) -> Result<Sequential> {
    let line = match (spec, w.metadata.get(MODEL_KEY)) {
        (Some(s), _) => s.to_string(),
        (None, Some(s)) => s.clone(),
        (None, None) => return Err(Error::weights(
            path,
            "the file holds no model line (it was not written by backprop from a model line); give the model line",
        )),
    };
    let mut rng = rand::SeedableRng::seed_from_u64(0);
    let mut model = Sequential::parse(&line, Init::Default, &mut rng)?;
    model.load_state_dict(&w.tensors, path)?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_names_values_and_model_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let mut rng = rand::SeedableRng::seed_from_u64(3);
        let m = Sequential::parse(
            "flatten,linear(4,3),prelu,linear(3,2)",
            Init::Default,
            &mut rng,
        )
        .unwrap();
        save_module(&m, &p).unwrap();
        let back = load_model(&p, None).unwrap();
        assert_eq!(back.line(), m.line());
        assert_eq!(back.state_dict(), m.state_dict());
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn parse_matches_load_and_names_the_origin() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let mut rng = rand::SeedableRng::seed_from_u64(3);
        let m = Sequential::parse("linear(2,2)", Init::Default, &mut rng).unwrap();
        save_module(&m, &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let (a, b) = (load(&p).unwrap(), parse(&bytes, &p).unwrap());
        assert_eq!((a.tensors, a.metadata), (b.tensors, b.metadata));
        let w = parse(&bytes, &p).unwrap();
        assert_eq!(
            model_from_weights(&w, &p, None).unwrap().state_dict(),
            m.state_dict()
        );
        for cut in [0, 7, 8, 20, bytes.len() - 1] {
            let e = parse(&bytes[..cut], Path::new("cut.safetensors"))
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.starts_with("cut.safetensors: not a valid safetensors file"),
                "{e}"
            );
        }
    }

    #[test]
    fn f16_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn unwritable_save_paths_are_caught_early() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_writable(dir.path())
            .unwrap_err()
            .to_string()
            .contains("is a folder"));
        let missing = dir.path().join("nope/m.safetensors");
        assert!(check_writable(&missing)
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        assert!(check_writable(&dir.path().join("m.safetensors")).is_ok());
    }
}
