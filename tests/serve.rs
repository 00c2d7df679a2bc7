//! `backprop serve` and `train --serve` over real HTTP on localhost: the
//! page, the run list, a run's metrics, the live stream of a run in
//! progress, and requests that must not reach the file system or crash it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Start `backprop args…` and read the page's address from its stderr.
// The caller waits for the child it gets; a test that fails before ends the process anyway.
#[allow(clippy::zombie_processes)]
fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("backprop"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
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

/// One HTTP/1.1 request; the status code and the body.
fn request(addr: &str, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn serve_lists_runs_shows_one_and_refuses_paths() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 300, 50);
    let runs = d.path().join("runs");
    let o = common::run(&[
        "train",
        "--model",
        "flatten,linear(784,16),relu,linear(16,10)",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--diagnostics-every",
        "2",
        "--quiet",
        "--no-plots",
        "--save",
        runs.join("first.safetensors").to_str().unwrap(),
    ]);
    assert!(o.success, "{}", o.stderr);
    std::fs::write(d.path().join("secret.metrics.csv"), "not yours").unwrap();
    let (mut child, addr) = start(&["serve", runs.to_str().unwrap(), "--port", "0"]);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let (code, page) = get(&addr, "/");
    assert_eq!(code, 200);
    assert!(page.contains("<title>backprop</title>") && page.contains("EventSource"));
    let (code, list) = get(&addr, "/api/runs");
    assert_eq!(code, 200);
    assert!(
        list.contains("\"runs\":[\"first\"]") && list.contains("\"live\":false"),
        "{list}"
    );
    let (code, csv) = get(&addr, "/api/runs/first/metrics.csv");
    assert_eq!(code, 200);
    assert!(
        csv.starts_with("kind,step,epoch,loss") && csv.contains("L1.grad_norm"),
        "{csv}"
    );

    // Nothing outside the folder, nothing but NAME.metrics.csv.
    for path in [
        "/api/runs/..%2Fsecret/metrics.csv",
        "/api/runs/%2Fetc%2Fpasswd/metrics.csv",
        "/api/runs/.hidden/metrics.csv",
        "/api/runs/..../metrics.csv",
    ] {
        let (code, body) = get(&addr, path);
        assert!((400..500).contains(&code), "{path}: {code}");
        assert!(!body.contains("not yours"), "{path}");
    }
    let (code, _) = get(&addr, "/../../etc/passwd");
    assert!((400..500).contains(&code), "{code}");
    let (code, _) = get(&addr, "/api/runs/nothing/metrics.csv");
    assert_eq!(code, 404);
    let (code, _) = get(&addr, "/api/live/events");
    assert_eq!(code, 404, "no live run here");
    // Malformed requests get a 4xx (or a closed connection), and the server lives on.
    let (code, _) = request(&addr, "GARBAGE\r\n\r\n");
    assert!(code == 0 || (400..500).contains(&code), "{code}");
    let (code, _) = request(&addr, "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n");
    assert!(code == 0 || (400..500).contains(&code), "{code}");
    assert_eq!(get(&addr, "/api/runs").0, 200);
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn train_serve_streams_the_run_as_it_goes() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 3000, 200);
    let (mut child, addr) = start(&[
        "train",
        "--model",
        "flatten,linear(784,32),sigmoid,linear(32,10)",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "30",
        "--batch-size",
        "16",
        "--diagnostics-every",
        "10",
        "--threads",
        "1",
        "--serve",
        "--port",
        "0",
    ]);
    let (code, list) = get(&addr, "/api/runs");
    assert_eq!(code, 200);
    assert!(list.contains("\"live\":true"), "{list}");
    // The event stream: rows arrive while the run goes on, then `done`.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /api/live/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    let mut seen = String::new();
    let mut events = 0;
    let mut buf = [0u8; 65536];
    while !seen.contains("\"done\":true") {
        assert!(t0.elapsed() < Duration::from_secs(60), "no end: {seen}");
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let chunk = String::from_utf8_lossy(&buf[..n]);
        events += chunk.matches("data: ").count();
        seen.push_str(&chunk);
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("kind,step,epoch"), "the header row arrives");
    assert!(seen.contains("epoch,"), "epoch rows arrive");
    assert!(
        events >= 2,
        "{events} events: rows come as the run goes, not all at the end"
    );
    assert!(seen.contains("\"done\":true"));
    let _ = child.wait();
}
