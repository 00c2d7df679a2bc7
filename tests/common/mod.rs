//! Shared by the command-line test files: run the `backprop` binary and
//! capture what it printed, failing the test on any panic.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one run of `backprop` printed and how it ended.
#[allow(dead_code)] // not every test file runs the binary
pub struct Out {
    pub success: bool,
    #[allow(dead_code)] // not every test file reads the exit code
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `backprop args…` (at most 120 s) and assert it did not panic.
#[allow(dead_code)] // not every test file runs the binary
pub fn run(args: &[&str]) -> Out {
    let out = Command::cargo_bin("backprop")
        .unwrap()
        .args(args)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run backprop");
    let o = Out {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !o.stderr.contains("panicked") && !o.stdout.contains("panicked"),
        "backprop {args:?} panicked:\n{}",
        o.stderr
    );
    o
}

/// A small MNIST folder in `dir`: the first `n_train` training and `n_test`
/// test images of the shipped copy, as raw IDX files.
#[allow(dead_code)] // not every test file uses it
pub fn small_mnist(dir: &Path, n_train: usize, n_test: usize) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let (train, test) = backprop::data::load_data(&src, None, None).unwrap();
    let test = test.unwrap();
    let out = dir.join("mnist");
    std::fs::create_dir_all(&out).unwrap();
    for (set, n, prefix) in [(&train, n_train, "train"), (&test, n_test, "t10k")] {
        let idx: Vec<usize> = (0..n).collect();
        let (x, y) = set.batch(&idx);
        let mut img = vec![0, 0, 8, 3];
        for d in [n as u32, 28, 28] {
            img.extend_from_slice(&d.to_be_bytes());
        }
        img.extend(x.data().iter().map(|&v| (v * 255.0).round() as u8));
        std::fs::write(out.join(format!("{prefix}-images-idx3-ubyte")), img).unwrap();
        let mut lab = vec![0, 0, 8, 1];
        lab.extend_from_slice(&(n as u32).to_be_bytes());
        lab.extend(y.classes().unwrap().iter().map(|&v| v as u8));
        std::fs::write(out.join(format!("{prefix}-labels-idx1-ubyte")), lab).unwrap();
    }
    out
}

/// Every tensor of a safetensors file as raw bytes, sorted by name (to
/// compare two files bit for bit).
#[allow(dead_code)] // not every test file uses it
pub fn tensor_bytes(p: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    v.sort();
    v
}

/// max |a − b| / max |b|: the error of `a` relative to the scale of `b`
/// (elementwise relative error means nothing for weights near zero).
#[allow(dead_code)] // not every test file uses it
pub fn scaled_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let diff = a
        .iter()
        .zip(b)
        .fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()));
    diff / scale.max(1e-30)
}

/// The largest [`scaled_error`] over two state dicts with the same names.
#[allow(dead_code)] // not every test file uses it
pub fn state_error(a: &[(String, backprop::Tensor)], b: &[(String, backprop::Tensor)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, x), (nb, y))| {
            assert_eq!(na, nb);
            scaled_error(x.data(), y.data())
        })
        .fold(0.0, f64::max)
}

/// Start `backprop args…` and read the page's address from its stderr.
// The caller waits for the child it gets; a test that fails before ends the process anyway.
#[allow(clippy::zombie_processes, dead_code)]
pub fn start(args: &[&str]) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("backprop"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::{BufRead, Read};
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no address printed");
        if let Some(rest) = line.split("http://").nth(1) {
            let addr = rest.split('/').next().unwrap().to_string();
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                let _ = err.read_to_string(&mut sink);
            });
            return (child, addr);
        }
    }
}
