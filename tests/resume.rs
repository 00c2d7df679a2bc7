//! Training that survives a crash: a run killed with SIGKILL at random
//! moments (logged) and resumed each time ends with the same weights, bit
//! for bit, and the same metrics.csv as the run never stopped; flags that
//! would change a resumed run are refused; a save that fails stops the run
//! and leaves the previous state intact; `--save` makes its folder and does
//! not overwrite a file that is not a model.

mod common;

use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MODEL: &str = "flatten,linear(784,48),batchnorm1d(48),relu,dropout(0.2),linear(48,10)";

fn bin() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("backprop"))
}

/// The flags of the run under test: shuffling, dropout, batch norm, Adam, a cosine schedule.
fn run_args(data: &Path, save: &Path) -> Vec<String> {
    [
        "train",
        "--model",
        MODEL,
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "8",
        "--batch-size",
        "32",
        "--optimizer",
        "adam",
        "--lr-schedule",
        "cosine",
        "--seed",
        "7",
        "--threads",
        "2",
        "--diagnostics-every",
        "20",
        "--save-every",
        "5",
        "--quiet",
        "--no-plots",
        "--save",
        save.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn killed_at_random_moments_and_resumed_ends_bit_identical() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 3000, 500);
    let whole = d.path().join("whole/x.safetensors");
    let t0 = Instant::now();
    let o = bin().args(run_args(&data, &whole)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Kill times are drawn within the length of a whole run.
    let whole_ms = (t0.elapsed().as_millis() as u64).max(100);

    let killed = d.path().join("killed/x.safetensors");
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut log = Vec::new();
    let (mut kills, mut resumes) = (0, 0);
    let t_all = Instant::now();
    loop {
        assert!(
            t_all.elapsed() < Duration::from_secs(300),
            "no end in sight: {log:?}"
        );
        // Resume if a state was saved, else start over.
        let resume = backprop::run::state_path(&killed).exists();
        let mut cmd = bin();
        if resume {
            cmd.args([
                "train",
                "--resume",
                killed.to_str().unwrap(),
                "--quiet",
                "--no-plots",
            ]);
            resumes += 1;
        } else {
            cmd.args(run_args(&data, &killed));
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Five kills at random moments, then let it finish.
        if kills < 5 {
            let ms = rng.random_range(whole_ms / 20..whole_ms / 2);
            std::thread::sleep(Duration::from_millis(ms));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                log.push(format!("killed after {ms} ms (resumed: {resume})"));
                continue;
            }
            log.push(format!("finished before {ms} ms (resumed: {resume})"));
            if kills < 3 {
                // Fewer than three kills in this chain: start over.
                std::fs::remove_dir_all(killed.parent().unwrap()).unwrap();
                kills = 0;
                log.clear();
                continue;
            }
        }
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        // A kill can land after the run saved its last state but before the
        // process ended: the run is complete, and resuming it is refused
        // (it asks for more epochs). That counts as finished.
        let done_before = resume && !o.status.success() && err.contains("the run finished after");
        if done_before {
            log.push("the last kill came after the run had finished".into());
        }
        assert!(o.status.success() || done_before, "{log:?}: {err}");
        break;
    }
    eprintln!("kill times (seed {seed}): {}", log.join("; "));
    assert!(kills >= 3 && resumes >= 3, "{log:?}");
    let (a, b) = (common::tensor_bytes(&whole), common::tensor_bytes(&killed));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta == tb, "`{na}` differs after {log:?}");
    }
    let metrics = |p: &Path| std::fs::read_to_string(p.with_file_name("x.metrics.csv")).unwrap();
    assert_eq!(
        metrics(&whole),
        metrics(&killed),
        "metrics.csv: rows duplicated or missing after {log:?}"
    );
    // No pending or temporary file is left.
    let left: Vec<String> = std::fs::read_dir(killed.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_resumed_run_refuses_other_settings_and_may_be_extended() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 3000, 500);
    let x = d.path().join("runs/x.safetensors");
    let mut a = run_args(&data, &x);
    a[6] = "1".into(); // one epoch
    let o = bin().args(&a).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = |extra: &[&str]| {
        let mut args = vec!["train", "--resume", x.to_str().unwrap(), "--quiet"];
        args.extend_from_slice(extra);
        common::run(&args)
    };
    let o = r(&["--lr", "0.5"]);
    assert!(!o.success);
    assert!(
        o.stderr.contains("--lr 0.5") && o.stderr.contains("--lr 0.001"),
        "{}",
        o.stderr
    );
    let o = r(&["--optimizer", "sgd"]);
    assert!(
        !o.success && o.stderr.contains("--optimizer sgd") && o.stderr.contains("--optimizer adam"),
        "{}",
        o.stderr
    );
    // The same value again is fine; a finished run needs more epochs.
    let o = r(&["--seed", "7"]);
    assert!(!o.success && o.stderr.contains("--epochs"), "{}", o.stderr);
    let o = r(&["--epochs", "2", "--json"]);
    assert!(o.success, "{}", o.stderr);
    let j: serde_json::Value = serde_json::from_str(o.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(j["epochs"].as_array().unwrap().len(), 2, "{j}");
}

#[test]
fn save_makes_its_folder_and_keeps_foreign_files() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 3000, 500);
    let deep = d.path().join("new/deeper/x.safetensors");
    let mut a = run_args(&data, &deep);
    a[6] = "1".into();
    let o = bin().args(&a).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(deep.is_file() && backprop::run::state_path(&deep).is_file());
    // A file that is not a model is not overwritten without --force.
    let foreign = d.path().join("notes.safetensors");
    std::fs::write(&foreign, "my notes").unwrap();
    let mut a = run_args(&data, &foreign);
    a[6] = "1".into();
    let o = common::run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.success && o.stderr.contains("--force"), "{}", o.stderr);
    assert_eq!(std::fs::read(&foreign).unwrap(), b"my notes");
    a.push("--force".into());
    let o = common::run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.success, "{}", o.stderr);
}

/// Runs `f` with a small tmpfs mounted at a fresh folder (root only).
fn with_tmpfs(size: &str, f: impl FnOnce(&Path)) {
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("fs");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "cannot mount a tmpfs (the test needs root, as CI has): a full disk cannot be simulated"
    );
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mnt)));
    let _ = Command::new("umount").arg(&mnt).status();
    if let Err(e) = res {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn a_full_disk_or_a_read_only_folder_stops_the_run_and_keeps_the_last_state() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 3000, 500);
    // One save of this model is 153 KB of weights and 306 KB of Adam's
    // state; a save writes the new pair beside the old one, so 700 KB hold
    // the first save and not the second.
    with_tmpfs("700k", |fs| {
        let x = fs.join("x.safetensors");
        let o = bin().args(run_args(&data, &x)).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "the run went on without a checkpoint");
        let last = err.trim_end().lines().last().unwrap_or("");
        assert!(
            last.starts_with("error: ") && last.contains("No space left"),
            "{err}"
        );
        // The previous state is whole and resumable.
        let saved = backprop::run::load_run(&x).unwrap();
        assert!(saved.step > 0);
    });
    with_tmpfs("1m", |fs| {
        let x = fs.join("x.safetensors");
        let mut a = run_args(&data, &x);
        a[6] = "1".into();
        let o = bin().args(&a).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let before = std::fs::read(&x).unwrap();
        let remount = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(fs)
            .status()
            .unwrap();
        assert!(remount.success());
        let o = common::run(&[
            "train",
            "--resume",
            x.to_str().unwrap(),
            "--epochs",
            "2",
            "--quiet",
        ]);
        assert!(!o.success, "{}", o.stdout);
        assert!(o.stderr.contains("Read-only"), "{}", o.stderr);
        assert_eq!(std::fs::read(&x).unwrap(), before);
    });
}

/// A run the command line saved, continued by a Rust program through the
/// library (`run::Run::resume`, as `examples/resume_run.rs` does), ends
/// with the weights of `backprop train --resume`, bit for bit.
#[test]
fn a_rust_program_resumes_a_run_the_command_line_saved() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 600, 100);
    let (a, b) = (
        d.path().join("a/x.safetensors"),
        d.path().join("b/x.safetensors"),
    );
    for p in [&a, &b] {
        let mut args = run_args(&data, p);
        args[6] = "1".into(); // one epoch
        let o = bin().args(&args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = common::run(&[
        "train",
        "--resume",
        a.to_str().unwrap(),
        "--epochs",
        "2",
        "--quiet",
    ]);
    assert!(o.success, "{}", o.stderr);
    let mut run = backprop::run::Run::resume(&b, None).unwrap();
    run.settings.train.epochs = 2;
    let (train, test) = run.settings.load_data(Path::new("data/mnist")).unwrap();
    let summary = run
        .train(&train, test.as_ref(), &mut backprop::train::Silent)
        .unwrap();
    assert_eq!(summary.epochs.len(), 2);
    assert_eq!(common::tensor_bytes(&a), common::tensor_bytes(&b));
}

/// A language model killed after a save and resumed with `--resume` ends
/// with the weights and metrics of the run that was not stopped; a resumed
/// run keeps its settings and its text.
#[test]
fn a_language_model_killed_and_resumed_ends_bit_identical() {
    let d = tempfile::tempdir().unwrap();
    let text = d.path().join("t.txt");
    let body = "Now is the winter of our discontent\nMade glorious summer by this sun of York;\n";
    std::fs::write(&text, body.repeat(80)).unwrap();
    let args = |save: &Path| -> Vec<String> {
        [
            "train",
            "--data",
            text.to_str().unwrap(),
            "--model",
            "gpt(layers=2,heads=2,embd=32,dropout=0.1)",
            "--block-size",
            "32",
            "--batch-size",
            "8",
            "--max-steps",
            "1000",
            "--eval-every",
            "250",
            "--eval-iters",
            "2",
            "--save-every",
            "10",
            "--quiet",
            "--no-plots",
            "--save",
            save.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let whole = d.path().join("whole/x.safetensors");
    let o = bin().args(args(&whole)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let killed = d.path().join("killed/x.safetensors");
    let mut child = bin()
        .args(args(&killed))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !backprop::run::state_path(&killed).exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no save");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the kill"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let resumed = bin()
        .args([
            "train",
            "--resume",
            killed.to_str().unwrap(),
            "--quiet",
            "--no-plots",
        ])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(common::tensor_bytes(&whole), common::tensor_bytes(&killed));
    let metrics = |p: &Path| std::fs::read_to_string(p.with_file_name("x.metrics.csv")).unwrap();
    assert_eq!(metrics(&whole), metrics(&killed), "metrics.csv");
    let last = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .split(" (")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(last(&o), last(&resumed), "the validation loss");

    // the settings and the text stay as they were saved
    let refused = bin()
        .args(["train", "--resume", whole.to_str().unwrap(), "--lr", "0.1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("--lr: a resumed language-model run keeps"),
        "{err}"
    );
    let other = d.path().join("u.txt");
    std::fs::write(&other, body.replace('w', "W").repeat(80)).unwrap();
    let moved = bin()
        .args([
            "train",
            "--resume",
            whole.to_str().unwrap(),
            "--data",
            other.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&moved.stderr);
    assert!(
        !moved.status.success() && err.contains("is not the text this run was trained on"),
        "{err}"
    );
}
