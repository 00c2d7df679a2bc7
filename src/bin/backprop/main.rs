//! The `backprop` command line: train, evaluate and predict with models
//! written as one line of PyTorch layer names; look inside them with
//! `graph` (the tape of one step) and `gradcheck` (gradients against finite
//! differences). Flags in, library calls out: every command is a file here,
//! the work is done by the library.

mod args;
mod eval;
mod inspect;
mod lm;
mod predict;
mod procs;
mod progress;
mod serve;
mod train;

use anyhow::bail;
use args::{
    flag, EvalArgs, GradcheckArgs, GraphArgs, PredictArgs, SampleArgs, ServeArgs, TrainArgs,
};
use backprop::nn::spec;
use backprop::Error;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use procs::Procs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// The allocator for training: mimalloc, keeping freed memory (see
// `backprop::alloc`).
#[global_allocator]
static GLOBAL: backprop::alloc::MiMalloc = backprop::alloc::MiMalloc;

/// Train neural networks by backpropagation.
///
/// Models are written as one line of PyTorch layer names, e.g.
/// `flatten,linear(784,128),relu,linear(128,10)`, or a preset name (mlp).
#[derive(Parser)]
#[command(name = "backprop", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (default: the `mlp` preset on the MNIST copy in data/mnist).
    Train(Box<TrainArgs>),
    /// Evaluate a saved model: mean loss and accuracy on a data set.
    Eval(EvalArgs),
    /// Predict the class of one image (PNG or PGM) or of one sample of a data set.
    Predict(PredictArgs),
    /// Generate text with a language model saved by `train --data FILE.txt --save FILE`.
    Sample(SampleArgs),
    /// List the model presets and the model lines they stand for.
    Presets,
    /// Show the computational graph (the tape) of one training step as Graphviz DOT, with its memory.
    Graph(GraphArgs),
    /// Compare every parameter's gradient with central finite differences on a small random batch.
    Gradcheck(GradcheckArgs),
    /// Serve a local web page showing the runs saved in a folder (their metrics, per-layer gradient flow, warnings).
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    backprop::alloc::keep_freed_memory();
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_error(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return clap_error(e),
    };
    let procs = Procs::start();
    let res = match cli.command {
        Command::Train(a) => train::run(*a, &matches, &procs),
        Command::Eval(a) => eval::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Sample(a) => lm::sample(a),
        Command::Presets => {
            for (n, l) in spec::PRESETS {
                println!("{n:9} {l}");
            }
            Ok(())
        }
        Command::Graph(a) => inspect::graph(a),
        Command::Gradcheck(a) => inspect::gradcheck(a),
        Command::Serve(a) => serve::run(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            procs.fail(&one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Help and version as clap prints them; a usage error on one line
/// (`--loss hinge: not one of cross-entropy, mse, bce, bce-logits`).
pub fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = |k: ContextKind| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join(", ")),
        _ => None,
    };
    let msg = match (
        e.kind(),
        text(ContextKind::InvalidArg),
        text(ContextKind::InvalidValue),
    ) {
        (ErrorKind::InvalidValue, Some(arg), Some(val)) => {
            let arg = arg.split_whitespace().next().unwrap_or(&arg).to_string();
            match text(ContextKind::ValidValue) {
                Some(valid) => format!("{arg} {val}: not one of {valid}"),
                None => format!("{arg} {val}: not a valid value"),
            }
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            format!("{first} (see backprop --help)")
        }
    };
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

/// An error and its causes on one line; a setting the library names is
/// named by its flag.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = match c.downcast_ref::<Error>() {
            Some(Error::Invalid {
                setting,
                value,
                msg,
            }) => format!("{} {value}: {msg}", flag(*setting)),
            Some(Error::Changed {
                setting,
                saved,
                given,
            }) => {
                let f = flag(*setting);
                format!(
                    "{f} {given}: the run was saved with {f} {saved}; a resumed run keeps the settings that \
                     shape its result (drop {f}, or start a new run)"
                )
            }
            _ => c.to_string(),
        };
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

pub fn set_threads(n: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = n {
        if n == 0 || n > 1024 {
            bail!(Error::Config(format!(
                "--threads {n}: use between 1 and 1024 threads"
            )));
        }
        backprop::cpu::set_threads(n);
    }
    Ok(())
}

/// `--data` or the MNIST copy the repo ships.
pub fn data_path(p: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = p {
        return Ok(p);
    }
    let local = PathBuf::from("data/mnist");
    if local.is_dir() {
        return Ok(local);
    }
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    if shipped.is_dir() {
        return Ok(shipped);
    }
    bail!(Error::Config(
        "no --data given and no data/mnist folder here; pass --data PATH".into()
    ))
}
