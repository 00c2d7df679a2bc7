//! Integrity at the edges of a run: a copied run resumes into the copy, a
//! damaged file is refused naming the tensor, a model or batch too large
//! for memory is an error (not an abort), special files are refused, a
//! `--save` never overwrites another run's state, a CSV byte-order mark is
//! not a header, the same run saved twice gives the same bytes, and a
//! resumed run compares settings by what they mean.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MODEL: &str = "flatten,linear(784,16),relu,linear(16,10)";

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("backprop")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `backprop train` of MODEL on `data`, saving at `save`, with `extra` flags.
fn train(data: &Path, save: &Path, extra: &[&str]) -> common::Out {
    let mut args = vec![
        "train",
        "--model",
        MODEL,
        "--data",
        s(data),
        "--epochs",
        "2",
        "--batch-size",
        "50",
        "--seed",
        "5",
        "--threads",
        "1",
        "--no-plots",
        "--quiet",
        "--save",
        s(save),
    ];
    args.extend_from_slice(extra);
    common::run(&args)
}

/// The step a saved file says it holds.
fn step_of(p: &Path) -> String {
    backprop::io::load(p).unwrap().metadata["backprop.step"].clone()
}

/// Every file of a folder and its bytes, sorted by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for (name, bytes) in files(from) {
        std::fs::write(to.join(name), bytes).unwrap();
    }
}

#[test]
fn a_copied_run_resumes_into_the_copy_and_save_moves_it() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 500, 100);
    let a = d.path().join("A");
    assert!(train(&data, &a.join("x.safetensors"), &["--max-steps", "4"]).success);
    let b = d.path().join("B");
    copy_dir(&a, &b);
    let before = files(&a);
    // Resumed from another working folder, by a relative path.
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let o = Command::new(bin())
        .current_dir(&elsewhere)
        .args([
            "train",
            "--resume",
            "../B/x.safetensors",
            "--max-steps",
            "9",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(files(&a), before, "the original run was written to");
    assert_eq!(step_of(&b.join("x.safetensors")), "9");
    assert_eq!(step_of(&b.join("x.state.safetensors")), "9");
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "files were made in the working folder"
    );
    // --save given again moves the resumed run, and says so.
    let c = d.path().join("C/y.safetensors");
    let o = common::run(&[
        "train",
        "--resume",
        s(&b.join("x.safetensors")),
        "--max-steps",
        "12",
        "--save",
        s(&c),
    ]);
    assert!(o.success, "{}", o.stderr);
    assert!(o.stderr.contains("saving to"), "{}", o.stderr);
    assert_eq!(step_of(&c), "12");
    assert_eq!(step_of(&b.join("x.safetensors")), "9");
}

/// Flip one bit of tensor `name`'s data in the safetensors file `p`.
fn flip_bit(p: &Path, name: &str) {
    let mut b = std::fs::read(p).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    b[8 + n + start + 1] ^= 0x10;
    std::fs::write(p, b).unwrap();
}

#[test]
fn a_flipped_bit_is_refused_naming_the_tensor() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 500, 100);
    let x = d.path().join("x.safetensors");
    assert!(train(&data, &x, &["--max-steps", "4"]).success);
    let state = backprop::run::state_path(&x);
    let good = (std::fs::read(&x).unwrap(), std::fs::read(&state).unwrap());
    flip_bit(&state, "1.bias.exp_avg");
    let o = common::run(&["train", "--resume", s(&x), "--max-steps", "8", "--quiet"]);
    assert!(!o.success);
    assert!(
        o.stderr.contains("x.state.safetensors")
            && o.stderr.contains("`1.bias.exp_avg`")
            && o.stderr.contains("damaged"),
        "{}",
        o.stderr
    );
    assert_eq!(std::fs::read(&x).unwrap(), good.0, "nothing was saved");
    // The model file: eval, predict and --init refuse it too.
    std::fs::write(&state, &good.1).unwrap();
    flip_bit(&x, "3.weight");
    for args in [
        vec!["eval", s(&x), "--data", s(&data)],
        vec!["predict", s(&x), "--data", s(&data), "--index", "0"],
        vec![
            "train",
            "--model",
            MODEL,
            "--data",
            s(&data),
            "--init",
            s(&x),
            "--max-steps",
            "1",
        ],
    ] {
        let o = common::run(&args);
        assert!(
            !o.success && o.stderr.contains("`3.weight`") && o.stderr.contains("damaged"),
            "{args:?}: {}",
            o.stderr
        );
    }
    // The metadata (here the model line) is covered as well.
    std::fs::write(&x, &good.0).unwrap();
    let mut b = std::fs::read(&x).unwrap();
    let at = b
        .windows(10)
        .position(|w| w == b"linear(16,")
        .expect("the model line");
    b[at + 7] = b'7'; // linear(16,…) → linear(76,…)
    std::fs::write(&x, b).unwrap();
    let o = common::run(&["eval", s(&x), "--data", s(&data)]);
    assert!(
        !o.success && o.stderr.contains("metadata") && o.stderr.contains("damaged"),
        "{}",
        o.stderr
    );
    // A second implementation of the digests (Python's hashlib) agrees,
    // on a model with an int64 buffer (batch norm's step count) too.
    let bn = d.path().join("bn.safetensors");
    let o = common::run(&[
        "train",
        "--model",
        "flatten,linear(784,8),batchnorm1d(8),relu,linear(8,10)",
        "--data",
        s(&data),
        "--max-steps",
        "2",
        "--quiet",
        "--no-plots",
        "--save",
        s(&bn),
    ]);
    assert!(o.success, "{}", o.stderr);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/verify_digests.py");
    let o = Command::new("python3")
        .arg(&script)
        .arg(&bn)
        .arg(backprop::run::state_path(&bn))
        .arg(&x)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(out.matches("match").count(), 2, "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("metadata"));
    // Files without digests (written by PyTorch) still load.
    let torch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_mlp.safetensors");
    let w = backprop::io::load(&torch).unwrap();
    assert!(!w.metadata.contains_key(backprop::io::DIGEST_KEY));
}

#[test]
fn the_same_run_saved_twice_gives_the_same_bytes() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 500, 100);
    let (a, b) = (
        d.path().join("a/x.safetensors"),
        d.path().join("b/x.safetensors"),
    );
    for p in [&a, &b] {
        assert!(train(&data, p, &["--max-steps", "6"]).success);
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // The state files differ only in the wall-clock seconds of the epochs
    // (training, waiting for data).
    let (sa, sb) = (
        backprop::io::load(&backprop::run::state_path(&a)).unwrap(),
        backprop::io::load(&backprop::run::state_path(&b)).unwrap(),
    );
    assert_eq!(sa.tensors, sb.tensors);
    for (k, v) in &sa.metadata {
        if k != "backprop.run" && k != backprop::io::DIGEST_KEY {
            assert_eq!(Some(v), sb.metadata.get(k), "{k}");
        }
    }
    let untimed = |w: &backprop::io::Weights| {
        let mut run: serde_json::Value = serde_json::from_str(&w.metadata["backprop.run"]).unwrap();
        for r in run["records"].as_array_mut().unwrap() {
            r["train_seconds"] = 0.into();
            r["samples_per_second"] = 0.into();
            r["data_wait_seconds"] = 0.into();
        }
        run
    };
    assert_eq!(untimed(&sa), untimed(&sb));
}

#[test]
fn save_never_overwrites_another_runs_state() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 500, 100);
    let x = d.path().join("x.safetensors");
    assert!(train(&data, &x, &["--max-steps", "3"]).success);
    let state = backprop::run::state_path(&x);
    let kept = (std::fs::read(&x).unwrap(), std::fs::read(&state).unwrap());
    // Onto the state file itself.
    let o = train(&data, &state, &["--max-steps", "2"]);
    assert!(
        !o.success && o.stderr.contains("state file") && o.stderr.contains("--force"),
        "{}",
        o.stderr
    );
    // A new run onto the model whose state belongs to the first run.
    let o = train(&data, &x, &["--max-steps", "2"]);
    assert!(
        !o.success && o.stderr.contains("--resume") && o.stderr.contains("--force"),
        "{}",
        o.stderr
    );
    assert_eq!(
        (std::fs::read(&x).unwrap(), std::fs::read(&state).unwrap()),
        kept
    );
    // A resumed run saves over its own state; --force replaces another run.
    let o = common::run(&["train", "--resume", s(&x), "--max-steps", "5", "--quiet"]);
    assert!(o.success, "{}", o.stderr);
    assert!(train(&data, &x, &["--max-steps", "2", "--force"]).success);
    assert_eq!(step_of(&x), "2");
}

#[test]
fn a_model_or_batch_too_large_for_memory_is_an_error_not_an_abort() {
    // 4 GB of address space: the first model's weights alone need 3.2 GB,
    // more than is left beside the program and its allocator's arena.
    let limited = |args: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v 4000000 && exec {} {args}", s(&bin())))
            .output()
            .unwrap()
    };
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 2500, 50);
    let o = limited(&format!(
        "train --data {} --model 'flatten,linear(784,1000000),relu,linear(1000000,10)'",
        s(&data)
    ));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not enough memory")
            && err.contains("3.18 GB")
            && err.contains("use smaller layers")
            && err.lines().count() == 1,
        "{err}"
    );
    // Weights that fit, a batch whose activations do not: the batch size that would.
    let o = limited(&format!(
        "train --data {} --model 'flatten,linear(784,100000),relu,linear(100000,10)' --batch-size 2000 --epochs 1",
        s(&data)
    ));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: --batch-size 2000: not enough memory")
            && last.contains("would fit"),
        "{err}"
    );
}

#[test]
fn special_files_are_refused_not_waited_on() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 200, 50);
    let x = d.path().join("x.safetensors");
    assert!(train(&data, &x, &["--max-steps", "2"]).success);
    let fifo = d.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let f = s(&fifo);
    for args in [
        vec!["train", "--data", f],
        vec!["train", "--data", s(&data), "--test-data", f],
        vec!["train", "--data", s(&data), "--init", f, "--model", MODEL],
        vec!["eval", f],
        vec!["predict", s(&x), f],
    ] {
        let t0 = Instant::now();
        let o = common::run(&args);
        assert!(
            !o.success && o.stderr.contains("named pipe") && o.stderr.contains(f),
            "{args:?}: {}",
            o.stderr
        );
        assert!(t0.elapsed() < Duration::from_secs(30), "{args:?} waited");
    }
}

#[test]
fn a_csv_byte_order_mark_is_not_a_header() {
    let d = tempfile::tempdir().unwrap();
    let csv = d.path().join("bom.csv");
    let mut text = b"\xef\xbb\xbf".to_vec();
    for i in 0..10 {
        text.extend_from_slice(format!("{},{}.0,{}.5\n", i % 2, i, 10 - i).as_bytes());
    }
    std::fs::write(&csv, text).unwrap();
    let o = common::run(&[
        "train",
        "--model",
        "linear(2,2)",
        "--data",
        s(&csv),
        "--epochs",
        "1",
        "--json",
    ]);
    assert!(o.success, "{}", o.stderr);
    let j: serde_json::Value = serde_json::from_str(o.stdout.lines().last().unwrap()).unwrap();
    // 10 samples in batches of 64: one step over all ten rows.
    assert_eq!(j["steps"], 1);
    let o = common::run(&[
        "train",
        "--model",
        "linear(2,2)",
        "--data",
        s(&csv),
        "--epochs",
        "1",
    ]);
    assert!(o.stderr.contains("on 10 samples"), "{}", o.stderr);
}

#[test]
fn a_resumed_run_compares_settings_by_meaning() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 500, 100);
    let x = d.path().join("x.safetensors");
    assert!(train(&data, &x, &["--max-steps", "3", "--lr", "0.01"]).success);
    let resume = |extra: &[&str]| {
        let mut args = vec!["train", "--resume", s(&x), "--quiet", "--max-steps", "4"];
        args.extend_from_slice(extra);
        common::run(&args)
    };
    // Another rate is refused, both values as typed.
    let o = resume(&["--lr", "0.02"]);
    assert!(
        !o.success
            && o.stderr
                .contains("--lr 0.02: the run was saved with --lr 0.01;"),
        "{}",
        o.stderr
    );
    // The same data by another spelling of its path.
    let dir_slash = format!("{}/", s(&data));
    let o = resume(&["--data", &dir_slash, "--lr", "0.01"]);
    assert!(o.success, "{}", o.stderr);
    // --save-every is kept by a resumed run unless given again.
    let saved_every = |p: &Path| {
        let w = backprop::io::load(&backprop::run::state_path(p)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&w.metadata["backprop.settings"]).unwrap();
        v["save_every"].as_u64().unwrap()
    };
    let z = d.path().join("z.safetensors");
    assert!(train(&data, &z, &["--max-steps", "3", "--save-every", "2"]).success);
    assert_eq!(saved_every(&z), 2);
    let o = common::run(&["train", "--resume", s(&z), "--max-steps", "5", "--quiet"]);
    assert!(o.success, "{}", o.stderr);
    assert_eq!(saved_every(&z), 2, "a resumed run forgot --save-every");
    let o = common::run(&[
        "train",
        "--resume",
        s(&z),
        "--max-steps",
        "6",
        "--save-every",
        "4",
        "--quiet",
    ]);
    assert!(o.success, "{}", o.stderr);
    assert_eq!(saved_every(&z), 4);
    // A default given explicitly is the same setting.
    let y = d.path().join("y.safetensors");
    assert!(train(&data, &y, &["--max-steps", "3"]).success);
    let o = common::run(&[
        "train",
        "--resume",
        s(&y),
        "--lr",
        "0.001",
        "--max-steps",
        "4",
        "--quiet",
    ]);
    assert!(o.success, "{}", o.stderr);
    let o = common::run(&[
        "train",
        "--resume",
        s(&y),
        "--model",
        "flatten, linear(784,16), relu, linear(16,10)",
        "--max-steps",
        "5",
        "--quiet",
    ]);
    assert!(o.success, "{}", o.stderr);
}
