//! The processes of a run: one, or several started by an MPI launcher
//! (feature `mpi`).

use anyhow::bail;

/// The processes of a data-parallel run (`mpirun -np N`, feature `mpi`):
/// none when started alone, which behaves exactly as without MPI.
pub struct Procs {
    #[cfg(feature = "mpi")]
    mpi: Option<(
        mpi::environment::Universe,
        std::rc::Rc<backprop::dist::mpi::Mpi>,
    )>,
}

impl Procs {
    /// Start MPI if an MPI launcher started this process with more than one rank.
    pub fn start() -> Procs {
        #[cfg(feature = "mpi")]
        return Procs {
            mpi: backprop::dist::mpi::start().map(|(u, m)| (u, std::rc::Rc::new(m))),
        };
        #[cfg(not(feature = "mpi"))]
        Procs {}
    }

    /// Wait at most `secs` for the other processes in one exchange.
    pub fn set_timeout(&self, secs: f64) -> anyhow::Result<()> {
        if !(secs > 0.0 && secs.is_finite()) {
            bail!("--collective-timeout {secs}: must be a number of seconds > 0");
        }
        #[cfg(feature = "mpi")]
        if let Some((_, m)) = &self.mpi {
            m.set_timeout(std::time::Duration::from_secs_f64(secs.min(1e9)));
        }
        Ok(())
    }

    /// The run's processes, if there are several.
    pub fn collective(&self) -> Option<std::rc::Rc<dyn backprop::dist::Collective>> {
        #[cfg(feature = "mpi")]
        if let Some((_, m)) = &self.mpi {
            return Some(m.clone());
        }
        None
    }

    /// Report an error on one line; with several processes, end all of them
    /// (no rank may wait forever for this one).
    pub fn fail(&self, msg: &str) {
        #[cfg(feature = "mpi")]
        if let Some((_, m)) = &self.mpi {
            use backprop::dist::Collective;
            use std::io::Write;
            // One write, so that the ranks' lines do not interleave.
            let line = format!("error: rank {} of {}: {msg}\n", m.rank(), m.size());
            let _ = std::io::stderr().write_all(line.as_bytes());
            m.abort(1);
        }
        eprintln!("error: {msg}");
    }
}
