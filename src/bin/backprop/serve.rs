//! `backprop serve` and the page of `train --serve`.

use crate::args::{ServeArgs, ServeAt};
use anyhow::{anyhow, bail};
use std::path::PathBuf;

/// Start the page at `at`, saying where, and that it is local unless bound wider.
pub fn start_page(
    at: ServeAt,
    runs: Option<PathBuf>,
    live: Option<backprop::serve::Live>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let addr = std::net::SocketAddr::new(at.bind, at.port);
    let (bound, handle) = backprop::serve::start(addr, runs, live).map_err(|e| {
        anyhow!(
            "--port {} --bind {}: cannot listen there ({e})",
            at.port,
            at.bind
        )
    })?;
    let reach = if at.bind.is_loopback() {
        "this machine only; --bind 0.0.0.0 opens it to the network"
    } else {
        "open to the network"
    };
    eprintln!("serving the page at http://{bound}/ ({reach})");
    Ok(handle)
}

/// After a `train --serve` run: keep the page up (it shows the finished
/// run, and drawing still works) until the process is stopped, unless
/// `exit` (`--serve-exit`).
pub fn after_run(page: Option<std::thread::JoinHandle<()>>, exit: bool) {
    if let (Some(page), false) = (page, exit) {
        eprintln!("the run finished; the page stays up until Ctrl-C (--serve-exit leaves at once)");
        let _ = page.join();
    }
}

pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    if !a.dir.is_dir() {
        bail!(
            "{}: is not a folder; give the folder of your runs (train --save runs/x.safetensors leaves runs/x.metrics.csv)",
            a.dir.display()
        );
    }
    let handle = start_page(a.at, Some(a.dir), None)?;
    let _ = handle.join();
    Ok(())
}
