//! Continue, in Rust, a run that `backprop train --save` started: the
//! library owns the saved run (its settings, its state, the resume check),
//! so a program needs no more than the file.
//!
//! ```sh
//! backprop train --model mlp --epochs 1 --save runs/x.safetensors
//! cargo run --release --example resume_run -- runs/x.safetensors 2
//! ```
//! trains the run to 2 epochs, saving where it was resumed from, exactly as
//! `backprop train --resume runs/x.safetensors --epochs 2` would (bit for
//! bit: `tests/resume.rs` checks it).
use backprop::run::Run;
use backprop::train::Printer;
use std::path::Path;

fn main() -> backprop::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(epochs)) = (args.next(), args.next().and_then(|e| e.parse().ok())) else {
        eprintln!("usage: resume_run RUN.safetensors EPOCHS");
        std::process::exit(2);
    };
    let mut run = Run::resume(Path::new(&path), None)?;
    run.settings.train.epochs = epochs;
    let (train, test) = run.settings.load_data(Path::new("data/mnist"))?;
    let summary = run.train(&train, test.as_ref(), &mut Printer::new())?;
    println!(
        "{} steps; test accuracy {:?}",
        summary.steps, summary.test_accuracy
    );
    Ok(())
}
