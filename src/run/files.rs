//! A training run's state on disk: the model file and its companion,
//! written as one.
//!
//! `runs/x.safetensors` stays exactly the model's `state_dict` (PyTorch
//! loads it as before); everything else a run needs to continue exactly
//! (the optimizer's state, the position in the epoch, the generators, the
//! settings, the metrics so far) goes into `runs/x.state.safetensors`:
//! tensors for the optimizer state, JSON in the metadata for the rest. Both
//! carry the optimizer step they were saved at (`backprop.step`).
//!
//! A save is a two-step commit, so that a kill at any instant leaves the
//! previous complete pair or the new one, never a mixture:
//!
//! 1. the new model file is written in full and flushed under a name that
//!    carries its step (`.x.safetensors.step120.pending`);
//! 2. the state file is written to a temporary name, flushed, and renamed
//!    over the old one (the commit), and the folder is flushed;
//! 3. the pending model file is renamed over the old one.
//!
//! A kill before step 2 leaves the old pair (the pending file is ignored and
//! later removed); after it, the new state and either the new model file or
//! the pending one with the state's step, which [`load_run`] moves into
//! place. A save that fails (a full disk, a read-only folder, a folder that
//! vanished) returns the error and leaves the old pair as it was.

use crate::io::{
    encode, load, parse_metadata_step, sync_dir, write_atomic, write_synced, Weights, DIGEST_KEY,
};
use crate::train::Resume;
use crate::{Error, Result, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use crate::io::STEP_KEY;
/// The state file's metadata key of the run's position ([`crate::train::RunState`], JSON).
pub const RUN_KEY: &str = "backprop.run";

/// `runs/x.safetensors` → `runs/x.state.safetensors`.
pub fn state_path(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    model.with_file_name(format!("{stem}.state.safetensors"))
}

fn pending_prefix(model: &Path) -> String {
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.step")
}

/// Where the model file of step `step` waits for its commit.
fn pending_path(model: &Path, step: u64) -> PathBuf {
    model.with_file_name(format!("{}{step}.pending", pending_prefix(model)))
}

/// What one save holds: the model's tensors and the state's, each with its
/// metadata, and the step both were saved at.
pub struct SavedRun {
    /// The model file's tensors (the `state_dict`) and metadata.
    pub model: Weights,
    /// The state file's tensors (the optimizer state) and metadata.
    pub state: Weights,
    /// The optimizer step both files were saved at (`backprop.step`).
    pub step: u64,
}

/// Save a run's model file and state file as one (see the [module docs](self)).
pub fn save_run(
    model_path: &Path,
    model: &[(String, Tensor)],
    mut model_meta: HashMap<String, String>,
    state: &[(String, Tensor)],
    mut state_meta: HashMap<String, String>,
    step: u64,
) -> Result<()> {
    model_meta.insert(STEP_KEY.into(), step.to_string());
    state_meta.insert(STEP_KEY.into(), step.to_string());
    let state_file = state_path(model_path);
    let model_bytes = encode(model_path, model, model_meta)?;
    let state_bytes = encode(&state_file, state, state_meta)?;
    let pending = pending_path(model_path, step);
    write_synced(&pending, &model_bytes).map_err(|e| Error::io(model_path, e))?;
    if let Err(e) = write_atomic(&state_file, &state_bytes) {
        let _ = std::fs::remove_file(&pending);
        return Err(e);
    }
    std::fs::rename(&pending, model_path)
        .and_then(|()| sync_dir(model_path))
        .map_err(|e| Error::io(model_path, e))?;
    remove_stale_pending(model_path, None);
    Ok(())
}

/// Whether two paths name the same file (or would, once created): equal
/// as absolute paths with links resolved where they exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let full = |p: &Path| {
        std::path::absolute(p)
            .ok()
            .map(|p| p.canonicalize().unwrap_or(p))
    };
    a == b || full(a) == full(b)
}

/// Why a run may not save its model at `model_path`, if it may not: the
/// path is a run's state file, or the model's state file beside it belongs
/// to another run (any run but the one `resumed` from, whose state it is
/// the resumed run's to replace). `None` when saving there loses nothing
/// of another run.
pub fn not_ours_to_overwrite(model_path: &Path, resumed: Option<&Path>) -> Option<String> {
    let name = model_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_state = name.ends_with(".state.safetensors")
        || (model_path.is_file()
            && load(model_path).is_ok_and(|w| w.metadata.contains_key(RUN_KEY)));
    if is_state {
        let model = name.strip_suffix(".state.safetensors").map_or_else(
            || "the model file beside it".to_string(),
            |stem| format!("{stem}.safetensors"),
        );
        return Some(format!(
            "is a run's state file (the optimizer, position and settings that resume it), not a model \
             file; give the model file's name ({model}), or --force"
        ));
    }
    let state = state_path(model_path);
    if !state.exists() {
        return None;
    }
    if resumed.is_some_and(|r| same_file(&state_path(r), &state)) {
        return None;
    }
    let at = load(&state)
        .ok()
        .and_then(|w| parse_metadata_step(&w, &state).ok())
        .map_or(String::new(), |s| format!(" at step {s}"));
    Some(format!(
        "another run is saved there ({} holds its state{at}); continue it with --resume {}, save this \
         run elsewhere, or give --force to replace it",
        state.display(),
        model_path.display()
    ))
}

/// Remove pending model files of saves that never committed (all but `keep`'s step).
fn remove_stale_pending(model_path: &Path, keep: Option<u64>) {
    let dir = match model_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let prefix = pending_prefix(model_path);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(step) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".pending"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if Some(step) != keep {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Remove what killed writes of this run's files left behind: temporary
/// files (`.x.safetensors.tmp123`, `.x.metrics.csv.tmp123`, …, named after
/// the `x.` files beside `model_path`) and pending model files that never
/// committed. Call it before a run writes there; a run writing the same
/// files at the same time would lose its temporary files.
pub fn remove_leftovers(model_path: &Path) {
    let dir = match model_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let stem = model_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{stem}.");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let temp = name
                .rsplit_once(".tmp")
                .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
            if name.starts_with(&prefix) && temp {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if state_path(model_path).exists() {
        // Keep a pending file the state commits to; load_run moves it in place.
        if let Ok(r) = load(&state_path(model_path)) {
            if let Ok(step) = parse_metadata_step(&r, model_path) {
                remove_stale_pending(model_path, Some(step));
                return;
            }
        }
    }
    remove_stale_pending(model_path, None);
}

/// Read a run saved by [`save_run`]: the state file decides the step; the
/// model file must hold the same step, or a pending model file of that step
/// must exist (a save killed after its commit), which is then moved into place.
pub fn load_run(model_path: &Path) -> Result<SavedRun> {
    let state_file = state_path(model_path);
    if !state_file.exists() {
        return Err(Error::Config(format!(
            "{}: no saved run state beside the model ({} does not exist); it is written when a run saves its state",
            model_path.display(),
            state_file.display()
        )));
    }
    let state = load(&state_file)?;
    let step = parse_metadata_step(&state, &state_file)?;
    let model = match load(model_path) {
        Ok(m) if parse_metadata_step(&m, model_path).ok() == Some(step) => m,
        other => {
            let pending = pending_path(model_path, step);
            if pending.exists() {
                let m = load(&pending)?;
                if parse_metadata_step(&m, &pending)? != step {
                    return Err(Error::weights(
                        &pending,
                        "holds another step than its name says",
                    ));
                }
                std::fs::rename(&pending, model_path)
                    .and_then(|()| sync_dir(model_path))
                    .map_err(|e| Error::io(model_path, e))?;
                m
            } else {
                let found = match other {
                    Ok(m) => parse_metadata_step(&m, model_path)
                        .map_or("no step".to_string(), |s| format!("step {s}")),
                    Err(e) => return Err(e),
                };
                return Err(Error::weights(
                    model_path,
                    format!(
                        "holds {found}, but its state file {} holds step {step}: the two files are from \
                         different runs or saves; restore the pair that was saved together",
                        state_file.display()
                    ),
                ));
            }
        }
    };
    remove_stale_pending(model_path, None);
    // Both files of a save carry digests, or (saved by an older backprop)
    // neither: one without them lost its digest key to damage.
    let digested = |w: &Weights| w.metadata.contains_key(DIGEST_KEY);
    if digested(&model) != digested(&state) {
        let (without, other) = if digested(&model) {
            (state_file.as_path(), model_path)
        } else {
            (model_path, state_file.as_path())
        };
        return Err(Error::weights(
            without,
            format!(
                "holds no digests, but {} does: the files were not saved together, or this one's \
                 metadata is damaged; restore the pair that was saved together",
                other.display()
            ),
        ));
    }
    Ok(SavedRun { model, state, step })
}

/// The run a state file holds (the `state` of [`load_run`]): its position from
/// the metadata, the optimizer's state from the tensors. `origin` names
/// the file in errors.
pub fn read_state(state: &Weights, origin: &Path) -> Result<Resume> {
    let json = state.metadata.get(RUN_KEY).ok_or_else(|| {
        Error::weights(
            origin,
            "the state file holds no run (it was not saved during training)",
        )
    })?;
    let run: crate::train::RunState = serde_json::from_str(json)
        .map_err(|e| Error::weights(origin, format!("the saved run cannot be read ({e})")))?;
    if run.order_position.parse::<u128>().is_err() {
        return Err(Error::weights(
            origin,
            "the saved generator position is not a number",
        ));
    }
    if run.seen < run.batch || run.config.batch_size == 0 {
        return Err(Error::weights(
            origin,
            "the saved position inside the epoch is inconsistent",
        ));
    }
    Ok(Resume {
        state: run,
        optimizer: state.tensors.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: f32) -> Vec<(String, Tensor)> {
        vec![("w".to_string(), Tensor::from_vec(vec![2], vec![v, -v]))]
    }

    #[test]
    fn a_pair_round_trips_and_a_killed_commit_is_finished_on_load() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("x.safetensors");
        save_run(&m, &t(1.0), HashMap::new(), &t(10.0), HashMap::new(), 5).unwrap();
        let r = load_run(&m).unwrap();
        assert_eq!(r.step, 5);
        assert_eq!(r.model.tensors, t(1.0));
        assert_eq!(r.state.tensors, t(10.0));
        // A save killed after its commit: the state is at step 9, the model
        // file still at 5, the pending file of step 9 complete.
        let pending = pending_path(&m, 9);
        std::fs::write(
            &pending,
            encode(
                &m,
                &t(2.0),
                [(STEP_KEY.to_string(), "9".to_string())].into(),
            )
            .unwrap(),
        )
        .unwrap();
        write_atomic(
            &state_path(&m),
            &encode(
                &m,
                &t(20.0),
                [(STEP_KEY.to_string(), "9".to_string())].into(),
            )
            .unwrap(),
        )
        .unwrap();
        let r = load_run(&m).unwrap();
        assert_eq!((r.step, r.model.tensors.clone()), (9, t(2.0)));
        assert!(!pending.exists(), "moved into place");
        // A save killed before its commit: a pending file of step 12 and the old pair.
        std::fs::write(pending_path(&m, 12), b"half a file").unwrap();
        let r = load_run(&m).unwrap();
        assert_eq!(r.step, 9);
        assert!(
            !pending_path(&m, 12).exists(),
            "stale pending files are removed"
        );
        // Files from different saves and no pending file: an error naming both.
        save_run(&m, &t(3.0), HashMap::new(), &t(30.0), HashMap::new(), 14).unwrap();
        write_atomic(
            &state_path(&m),
            &encode(
                &m,
                &t(40.0),
                [(STEP_KEY.to_string(), "20".to_string())].into(),
            )
            .unwrap(),
        )
        .unwrap();
        let e = load_run(&m).err().unwrap().to_string();
        assert!(e.contains("step 14") && e.contains("step 20"), "{e}");
    }
}
