//! Data-parallel training under a real MPI (feature `mpi`; CI installs
//! Open MPI): `mpirun -np N backprop train ...` against one process, and
//! the ways a run must fail loudly instead of hanging.
//!
//! The equivalence bound (1e-4 relative to each tensor's scale, 1e-5 on
//! each step's loss) is justified in tests/data_parallel.rs: the only
//! difference from one process is the order of some additions. Every
//! multi-rank run also checks at its end that all ranks hold the same bits.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("backprop")
}

/// `mpirun -np n backprop args…` (root and more ranks than cores allowed).
fn mpirun(n: usize, args: &[&str]) -> Output {
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &n.to_string(),
    ])
    .arg(bin())
    .args(args);
    c.output().expect("mpirun (install openmpi-bin)")
}

fn tensors(p: &Path) -> Vec<(String, backprop::Tensor)> {
    backprop::io::load(p).unwrap().tensors
}

/// Step losses from metrics.csv (a step row per step with --diagnostics-every 1).
fn step_losses(model: &Path) -> Vec<f64> {
    let csv = std::fs::read_to_string(model.with_file_name("x.metrics.csv")).unwrap();
    csv.lines()
        .filter(|l| l.starts_with("step,"))
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect()
}

fn args<'a>(
    model: &'a str,
    data: &'a str,
    save: &'a str,
    steps: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--model",
        model,
        "--data",
        data,
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "2",
        "--max-steps",
        steps,
        "--batch-size",
        "10",
        "--seed",
        "3",
        "--threads",
        "1",
        "--diagnostics-every",
        "1",
        "--no-plots",
        "--quiet",
        "--save",
        save,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn one_two_and_three_ranks_train_alike() {
    let d = tempfile::tempdir().unwrap();
    // 95 samples in batches of 10: a last batch of 5, and 10 = 4 + 3 + 3 on 3 ranks.
    let data = common::small_mnist(d.path(), 95, 40);
    let data = data.to_str().unwrap();
    for (name, model) in [
        ("mlp", "flatten,linear(784,32),relu,dropout(0.3),linear(32,10)"),
        (
            "lenet-bn",
            "conv2d(1,4,5,padding=2,bias=0),batchnorm2d(4),relu,maxpool2d(4),flatten,linear(196,16),relu,linear(16,10)",
        ),
        ("rnn", "reshape(28,28),rnn(28,16),linear(16,10)"),
    ] {
        let one = d.path().join(format!("{name}1/x.safetensors"));
        let o = common::run(&args(model, data, one.to_str().unwrap(), "12", &[]));
        assert!(o.success, "{}", o.stderr);
        for n in [2, 3] {
            let many = d.path().join(format!("{name}{n}/x.safetensors"));
            let o = mpirun(n, &args(model, data, many.to_str().unwrap(), "12", &[]));
            assert!(
                o.status.success(),
                "{name} on {n} ranks: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let e = common::state_error(&tensors(&many), &tensors(&one));
            assert!(e < 1e-4, "{name} on {n} ranks: weights differ by {e:.1e}");
            let (a, b) = (step_losses(&many), step_losses(&one));
            assert_eq!(a.len(), 12);
            for (s, (x, y)) in a.iter().zip(&b).enumerate() {
                // metrics.csv keeps 6 significant digits.
                assert!((x - y).abs() <= 2e-5 * y.abs(), "{name} on {n} ranks, step {}: loss {x} vs {y}", s + 1);
            }
            eprintln!("{name:9} {n} ranks: weights within {e:.1e} of one process");
        }
    }
}

#[test]
fn different_flags_on_different_ranks_fail_fast_on_every_rank() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 60, 20);
    let data = data.to_str().unwrap();
    let m = "flatten,linear(784,10)";
    let t0 = Instant::now();
    let o = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "1"])
        .arg(bin())
        .args([
            "train", "--model", m, "--data", data, "--lr", "0.1", "--quiet",
        ])
        .arg(":")
        .args(["-np", "1"])
        .arg(bin())
        .args([
            "train", "--model", m, "--data", data, "--lr", "0.2", "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for (r, lr) in [(0, "0.1"), (1, "0.2")] {
        // Each rank names the setting and its own value of it.
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("error: rank {r} of 2:"))
                    && l.contains("other settings")
                    && l.contains("`optimizer.lr`")
                    && l.contains(&format!(": {lr}"))),
            "{err}"
        );
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    // Other data on one rank: the same files but one sample fewer.
    let other = common::small_mnist(&d.path().join("other"), 59, 20);
    let o = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "1"])
        .arg(bin())
        .args(["train", "--model", m, "--data", data, "--quiet"])
        .arg(":")
        .args(["-np", "1"])
        .arg(bin())
        .args([
            "train",
            "--model",
            m,
            "--data",
            other.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: rank 0 of 2:") && err.contains("other"),
        "{err}"
    );
}

#[test]
fn a_batch_smaller_than_the_ranks_fails_on_every_rank() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 61, 20);
    let o = mpirun(
        2,
        &[
            "train",
            "--model",
            "flatten,linear(784,10)",
            "--data",
            data.to_str().unwrap(),
            "--batch-size",
            "20",
            "--quiet",
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    // 61 = 3·20 + 1: a last batch of 1 for 2 ranks.
    assert!(
        err.contains("--batch-size 20") && err.contains("1 sample(s) cannot be shared by 2"),
        "{err}"
    );
}

/// The processes named `backprop` whose parent is `pid`.
fn ranks_of(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((head, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid: u32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if ppid == pid && head.ends_with("(backprop") {
            v.push(p);
        }
    }
    v
}

#[test]
fn a_rank_that_dies_ends_the_whole_run_within_seconds() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 3000, 100);
    let mut child = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .arg(bin())
        .args([
            "train",
            "--model",
            "flatten,linear(784,64),relu,linear(64,10)",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "1000",
            "--threads",
            "1",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for both ranks to be training, then kill one.
    let t0 = Instant::now();
    let ranks = loop {
        let r = ranks_of(child.id());
        if r.len() == 2 || t0.elapsed() > Duration::from_secs(20) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ranks.len(), 2, "mpirun did not start two ranks");
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Instant::now();
    Command::new("kill")
        .args(["-9", &ranks[1].to_string()])
        .status()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            break;
        }
        if killed.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the other rank still waits 30 s after rank 1 died");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("the run ended {:?} after a rank died", killed.elapsed());
    assert!(killed.elapsed() < Duration::from_secs(10));
    for p in ranks {
        assert!(
            !Path::new(&format!("/proc/{p}/stat")).exists()
                || std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .unwrap()
                    .contains(") Z"),
            "rank {p} still runs"
        );
    }
}

#[test]
fn a_stopped_rank_ends_the_run_on_every_rank_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 3000, 100);
    let mut child = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "3"])
        .arg(bin())
        .args([
            "train",
            "--model",
            "flatten,linear(784,64),relu,linear(64,10)",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "1000",
            "--threads",
            "1",
            "--quiet",
            "--collective-timeout",
            "5",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let ranks = loop {
        let r = ranks_of(child.id());
        if r.len() == 3 || t0.elapsed() > Duration::from_secs(20) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ranks.len(), 3, "mpirun did not start three ranks");
    std::thread::sleep(Duration::from_millis(1500));
    // Which process is rank 1: the launcher sets its rank in the environment.
    let rank_of = |p: u32| -> Option<usize> {
        let env = std::fs::read(format!("/proc/{p}/environ")).ok()?;
        env.split(|&b| b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix("OMPI_COMM_WORLD_RANK="))
            .and_then(|v| v.parse().ok())
    };
    let stopped = *ranks
        .iter()
        .find(|&&p| rank_of(p) == Some(1))
        .expect("a process with rank 1");
    let at = Instant::now();
    Command::new("kill")
        .args(["-STOP", &stopped.to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if at.elapsed() > Duration::from_secs(60) {
            let _ = Command::new("kill")
                .args(["-CONT", &stopped.to_string()])
                .status();
            let _ = child.kill();
            panic!("the other ranks still wait 60 s after rank 1 stopped");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new("kill")
        .args(["-CONT", &stopped.to_string()])
        .status();
    assert!(!status.success());
    eprintln!("the run ended {:?} after rank 1 stopped", at.elapsed());
    assert!(at.elapsed() < Duration::from_secs(30), "{:?}", at.elapsed());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    // A waiting rank names rank 1: the first to time out ends the run on
    // every rank, so the other may be ended before its own line. A line may
    // name the other waiting rank too: when rank 1 stopped after sending its
    // part of an exchange to one rank but not yet to the other, the first
    // goes on to the next exchange, where the second, still waiting in the
    // previous one, never answers it either. No line may leave rank 1 out.
    let lists: Vec<&str> = err
        .lines()
        .filter_map(|l| {
            let rest = l
                .strip_prefix("error: rank 0 of 3: rank ")
                .or_else(|| l.strip_prefix("error: rank 2 of 3: rank "))?;
            rest.split(" did not answer for 5 s").next()
        })
        .collect();
    assert!(
        !lists.is_empty(),
        "no waiting rank named the stopped one:\n{err}"
    );
    for list in lists {
        assert!(list.split(", ").any(|x| x == "1"), "{list}:\n{err}");
    }
}

#[test]
fn a_run_saved_on_two_ranks_resumes_on_three_and_on_one() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 95, 40);
    let data = data.to_str().unwrap();
    let model = "flatten,linear(784,32),relu,dropout(0.3),linear(32,10)";
    let whole = d.path().join("whole/x.safetensors");
    let o = common::run(&args(model, data, whole.to_str().unwrap(), "12", &[]));
    assert!(o.success, "{}", o.stderr);
    for later in [3usize, 1] {
        let part = d.path().join(format!("part{later}/x.safetensors"));
        let o = mpirun(
            2,
            &args(
                model,
                data,
                part.to_str().unwrap(),
                "5",
                &["--save-every", "5"],
            )[..],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let resume = [
            "train",
            "--resume",
            part.to_str().unwrap(),
            "--max-steps",
            "12",
            "--quiet",
        ];
        let ok = if later == 1 {
            common::run(&resume).success
        } else {
            mpirun(later, &resume).status.success()
        };
        assert!(ok, "resume on {later}");
        let e = common::state_error(&tensors(&part), &tensors(&whole));
        assert!(
            e < 1e-4,
            "saved on 2 ranks, resumed on {later}: weights differ by {e:.1e}"
        );
    }
}
