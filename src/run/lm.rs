//! A language-model run saved so that it can be resumed exactly: the model
//! file (the model line, its vocabulary and window, as `backprop eval` and
//! `sample` read it) and its state file (the optimizer's moments, where the
//! run stands, its settings, the text it reads, its metrics so far),
//! written as one commit like a classifier's run ([`super::files`]).

use super::files::{load_run, save_run, state_path};
use crate::data::text::CharText;
use crate::nn::{Module, ModuleExt, Sequential};
use crate::optim::Optimizer;
use crate::train::lm::metrics::LmRecorder;
use crate::train::lm::{lm_metadata, LmRunState, LmSettings};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// The state file's metadata key of a language-model run (JSON).
pub const LM_RUN_KEY: &str = "backprop.lm_run";

/// What the state file says of the run, beside the optimizer's tensors.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    settings: LmSettings,
    /// The text file, as given.
    data: PathBuf,
    /// [`CharText::fingerprint`], in hex.
    text: String,
    state: LmRunState,
    metrics: Option<LmRecorder>,
}

/// A language-model run's files, to save it at a step.
pub struct LmRunFiles<'a> {
    /// The model file (the state file goes beside it).
    path: &'a Path,
    settings: &'a LmSettings,
    /// The text file, as given.
    data: &'a Path,
    /// Its characters (the model file's vocabulary).
    vocab: &'a [char],
    /// [`CharText::fingerprint`], taken once (the text does not change).
    fingerprint: u64,
}

impl<'a> LmRunFiles<'a> {
    /// Saves of the run `settings` on `text` (read from `data`) to `path`.
    pub fn new(
        path: &'a Path,
        settings: &'a LmSettings,
        data: &'a Path,
        text: &'a CharText,
    ) -> LmRunFiles<'a> {
        LmRunFiles {
            path,
            settings,
            data,
            vocab: &text.vocab,
            fingerprint: text.fingerprint(),
        }
    }

    /// Save the run as it stands after `state.steps` steps (see the
    /// [module docs](self)).
    pub fn save(
        &self,
        model: &dyn Module,
        opt: &Optimizer,
        state: &LmRunState,
        metrics: Option<&LmRecorder>,
    ) -> Result<()> {
        let line = model.spec().ok_or_else(|| {
            Error::Config(
                "a language model saved to be resumed needs a model line (it is rebuilt from it)"
                    .into(),
            )
        })?;
        let mut model_meta = lm_metadata(self.vocab, self.settings.lm.block_size);
        model_meta.insert("format".into(), "pt".into());
        model_meta.insert(crate::io::MODEL_KEY.into(), line);
        let saved = Saved {
            settings: self.settings.clone(),
            data: self.data.to_path_buf(),
            text: format!("{:016x}", self.fingerprint),
            state: state.clone(),
            metrics: metrics.cloned(),
        };
        let state_meta = std::collections::HashMap::from([(
            LM_RUN_KEY.to_string(),
            serde_json::to_string(&saved).expect("serializable"),
        )]);
        save_run(
            self.path,
            &model.state_dict(),
            model_meta,
            &opt.state_dict(),
            state_meta,
            state.steps as u64,
        )
    }
}

/// A saved language-model run, ready to go on.
pub struct LmResume {
    /// Its settings.
    pub settings: LmSettings,
    /// The text file it reads.
    pub data: PathBuf,
    /// The model, as saved.
    pub model: Sequential,
    /// The optimizer, its state as saved.
    pub opt: Optimizer,
    /// Where the run stands.
    pub state: LmRunState,
    /// Its metrics so far.
    pub metrics: Option<LmRecorder>,
    fingerprint: String,
}

impl LmResume {
    /// Check that `text` is the text the run was saved with.
    pub fn check_text(&self, text: &CharText) -> Result<()> {
        if format!("{:016x}", text.fingerprint()) != self.fingerprint {
            return Err(Error::Config(format!(
                "{} is not the text this run was trained on (its characters, or their order, \
                 changed since it was saved); resume it with the same text",
                self.data.display()
            )));
        }
        Ok(())
    }
}

/// Whether `path`'s state file holds a language-model run.
pub fn is_lm_run(path: &Path) -> bool {
    crate::io::load(&state_path(path)).is_ok_and(|w| w.metadata.contains_key(LM_RUN_KEY))
}

/// Read a language-model run saved by [`LmRunFiles::save`].
pub fn load_lm_run(path: &Path) -> Result<LmResume> {
    let run = load_run(path)?;
    let state_file = state_path(path);
    let json = run
        .state
        .metadata
        .get(LM_RUN_KEY)
        .ok_or_else(|| Error::weights(&state_file, "holds no language-model run"))?;
    let saved: Saved = serde_json::from_str(json)
        .map_err(|e| Error::weights(&state_file, format!("the saved run cannot be read ({e})")))?;
    let mut model = crate::io::model_from_weights(&run.model, path, None)?;
    if let Some(c) = &saved.settings.checkpoint {
        crate::nn::checkpoint::apply(&mut model, c)?;
    }
    let mut opt =
        Optimizer::new(saved.settings.optimizer.clone()).with_schedule(saved.settings.schedule());
    opt.load_state_dict(&run.state.tensors, &model, &state_file)?;
    if saved.state.steps as u64 != run.step {
        return Err(Error::weights(
            &state_file,
            "the run's position disagrees with the step it was saved at",
        ));
    }
    Ok(LmResume {
        settings: saved.settings,
        data: saved.data,
        model,
        opt,
        state: saved.state,
        metrics: saved.metrics,
        fingerprint: saved.text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::lm::{train_lm_from, LmObserver};

    /// Saves at every save point; stops the run (an error) after `stop_at`.
    struct SaveAndStop<'a> {
        files: LmRunFiles<'a>,
        stop_at: usize,
    }

    impl LmObserver for SaveAndStop<'_> {
        fn save(&mut self, m: &dyn Module, opt: &Optimizer, st: &LmRunState) -> Result<()> {
            self.files.save(m, opt, st, None)?;
            if st.steps >= self.stop_at {
                return Err(Error::Config("stopped".into()));
            }
            Ok(())
        }
    }

    #[test]
    fn a_run_stopped_and_resumed_trains_the_same_weights_as_one_that_was_not() {
        let d = tempfile::tempdir().unwrap();
        let body = "Now is the winter of our discontent, made glorious summer.\n".repeat(30);
        let text = CharText::from_bytes(body.as_bytes(), Path::new("t.txt")).unwrap();
        let mut s = LmSettings::baby();
        s.model = "gpt(layers=2,heads=2,embd=16,dropout=0.1)".into();
        s.lm.steps = 12;
        s.lm.batch_size = 4;
        s.lm.block_size = 16;
        s.lm.eval_every = 4;
        s.lm.eval_iters = 2;
        s.lm.save_every = 5;
        s.warmup_steps = 3;
        // not stopped
        let (mut m, mut opt) = s.build(&text).unwrap();
        let whole = train_lm_from(&mut m, &text, &mut opt, &s.lm, &mut (), None).unwrap();
        // stopped after the save at step 5, then resumed from the files
        let path = d.path().join("g.safetensors");
        let files = || LmRunFiles::new(&path, &s, Path::new("t.txt"), &text);
        let (mut m2, mut opt2) = s.build(&text).unwrap();
        let mut stop = SaveAndStop {
            files: files(),
            stop_at: 5,
        };
        assert!(train_lm_from(&mut m2, &text, &mut opt2, &s.lm, &mut stop, None).is_err());
        let mut r = load_lm_run(&path).unwrap();
        assert_eq!(r.state.steps, 5);
        r.check_text(&text).unwrap();
        let rest = train_lm_from(
            &mut r.model,
            &text,
            &mut r.opt,
            &r.settings.lm,
            &mut (),
            Some(&r.state),
        )
        .unwrap();
        assert_eq!(rest.steps, 12);
        assert_eq!(rest.evals, whole.evals, "the same estimates");
        let bits = |m: &dyn Module| -> Vec<u32> {
            m.state_dict()
                .iter()
                .flat_map(|(_, t)| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                .collect()
        };
        assert_eq!(bits(&r.model), bits(&m), "the same weights");
        // another text is refused
        let other =
            CharText::from_bytes(body.replace('w', "W").as_bytes(), Path::new("u.txt")).unwrap();
        assert!(r.check_text(&other).is_err());
        assert!(is_lm_run(&path));
    }
}
