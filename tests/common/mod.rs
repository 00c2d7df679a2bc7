//! Shared by the command-line test files: run the `backprop` binary and
//! capture what it printed, failing the test on any panic.

use assert_cmd::Command;
use std::time::Duration;

/// What one run of `backprop` printed and how it ended.
pub struct Out {
    pub success: bool,
    #[allow(dead_code)] // not every test file reads the exit code
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `backprop args…` (at most 120 s) and assert it did not panic.
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
