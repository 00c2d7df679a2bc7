//! `backprop serve` and `train --serve` over real HTTP on localhost: the
//! page, the run list, a run's metrics, the live stream of a run in
//! progress, and requests that must not reach the file system or crash it.

mod common;

use common::start;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One HTTP/1.1 request; the status code and the body.
fn request(addr: &str, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before a refused request is all
    // written (the 10 MB body below gets its 413 early): a broken pipe here
    // is an answer, and what came back is read below.
    let _ = s.write_all(raw.as_bytes());
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

fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
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
    // Links inside the folder to files outside it, and a named pipe.
    std::os::unix::fs::symlink("../secret.metrics.csv", runs.join("evil.metrics.csv")).unwrap();
    std::fs::copy(
        runs.join("first.safetensors"),
        d.path().join("far.safetensors"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../far.safetensors", runs.join("far.safetensors")).unwrap();
    let fifo = runs.join("pipe.metrics.csv");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
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
    for name in ["evil", "pipe"] {
        let (code, body) = get(&addr, &format!("/api/runs/{name}/metrics.csv"));
        assert_eq!(code, 404, "{name}");
        assert!(!body.contains("not yours"), "{name}");
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

    // The drawing pad's models and traces.
    std::fs::copy(
        runs.join("first.safetensors"),
        d.path().join("outside.safetensors"),
    )
    .unwrap();
    let (code, list) = get(&addr, "/api/models");
    assert_eq!(code, 200);
    assert!(list.contains("\"models\":[\"first\"]"), "{list}");
    // A vertical bar on 40×40: a trace of every node, the image MNIST-like.
    let mut px = vec!["0"; 1600];
    for y in 8..32 {
        px[y * 40 + 20] = "1";
    }
    let drawing = |model: &str, w: usize, h: usize, px: &[&str], label: &str| {
        format!(
            r#"{{"model":"{model}","width":{w},"height":{h},"pixels":[{}],"label":{label}}}"#,
            px.join(",")
        )
    };
    let (code, body) = post(&addr, "/api/trace", &drawing("first", 40, 40, &px, "3"));
    assert_eq!(code, 200, "{body}");
    let t: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["label"], 3);
    assert_eq!(t["image"].as_array().unwrap().len(), 784);
    let nodes = t["nodes"].as_array().unwrap();
    let loss = &nodes[t["loss_node"].as_u64().unwrap() as usize];
    assert_eq!(loss["grad"]["data"], serde_json::json!([1.0]));
    let layers = t["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "{layers:?}");
    let p: f64 = t["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((p - 1.0).abs() < 1e-4);
    // Refused: paths, sizes that do not match, junk, nothing drawn.
    for (body, want) in [
        (drawing("../outside", 40, 40, &px, "null"), 400),
        (drawing("/etc/passwd", 40, 40, &px, "null"), 400),
        (drawing("outside", 40, 40, &px, "null"), 404),
        (drawing("far", 40, 40, &px, "null"), 404),
        (drawing("first.state", 40, 40, &px, "null"), 422),
        (drawing("first", 41, 40, &px, "null"), 400),
        (drawing("first", 0, 0, &[], "null"), 400),
        (drawing("first", 40, 40, &px, "10"), 422),
        (drawing("first", 2, 1, &["0", "0"], "null"), 422),
        (drawing("(live)", 40, 40, &px, "null"), 404),
        ("{\"model\": 3}".to_string(), 400),
        ("not json".to_string(), 400),
    ] {
        let (code, msg) = post(&addr, "/api/trace", &body);
        assert_eq!(code, want, "{}: {msg}", &body[..body.len().min(60)]);
    }
    let huge = format!(
        r#"{{"model":"first","width":1,"height":1,"pixels":[{}]}}"#,
        "0,".repeat(5_000_000)
    );
    let (code, _) = post(&addr, "/api/trace", &huge);
    assert!(code == 0 || code == 413, "{code}");
    assert_eq!(get(&addr, "/api/models").0, 200);
    // A client that trickles its headers in (slowloris) is dropped.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let t0 = Instant::now();
    let dropped = loop {
        if t0.elapsed() > Duration::from_secs(30) {
            break false;
        }
        if slow.write_all(b"X").is_err() {
            break true; // closed
        }
        let mut b = [0u8; 64];
        match slow.read(&mut b) {
            Ok(_) => break true, // the close, or an answer before it
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break true, // reset
        }
    };
    assert!(dropped, "a trickling client was never dropped");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
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
        // Long enough (2–3 s) for several events at two a second.
        "flatten,linear(784,128),sigmoid,linear(128,10)",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "40",
        "--batch-size",
        "16",
        "--diagnostics-every",
        "10",
        "--threads",
        "1",
        "--serve",
        "--serve-exit",
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

/// `/api/trace_text`: a text through a saved language model and back, with
/// each block's attention; refused for a classifier, characters the model
/// never saw, too little or too much text, and paths.
#[test]
fn a_text_through_a_language_model_and_its_attention() {
    let d = tempfile::tempdir().unwrap();
    let text = d.path().join("t.txt");
    std::fs::write(
        &text,
        "the cat sat on the mat; the rat ate the hat.\n".repeat(30),
    )
    .unwrap();
    let data = common::small_mnist(d.path(), 300, 50);
    let runs = d.path().join("runs");
    for (name, args) in [
        (
            "lm",
            vec![
                "--data",
                text.to_str().unwrap(),
                "--model",
                "gpt(layers=2,heads=2,embd=16)",
                "--block-size",
                "16",
                "--max-steps",
                "5",
                "--eval-every",
                "0",
            ],
        ),
        (
            "mlp",
            vec![
                "--data",
                data.to_str().unwrap(),
                "--model",
                "flatten,linear(784,10)",
                "--epochs",
                "1",
            ],
        ),
    ] {
        let save = runs.join(format!("{name}.safetensors"));
        let mut a = vec![
            "train",
            "--quiet",
            "--no-plots",
            "--save",
            save.to_str().unwrap(),
        ];
        a.extend(args);
        let o = common::run(&a);
        assert!(o.success, "{}", o.stderr);
    }
    let (mut child, addr) = start(&["serve", runs.to_str().unwrap(), "--port", "0"]);
    let ask = |model: &str, text: &str| {
        let body = serde_json::json!({"model": model, "text": text}).to_string();
        post(&addr, "/api/trace_text", &body)
    };
    // a text longer than the context: its last 16 + 1 characters
    let (code, body) = ask("lm", "the cat sat on the mat; the rat");
    assert_eq!(code, 200, "{body}");
    let t: serde_json::Value = serde_json::from_str(&body).unwrap();
    let read: String = t["text"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let next: String = t["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        (read.as_str(), next.as_str()),
        (" the mat; the ra", "the mat; the rat")
    );
    let att = t["attention"].as_array().unwrap();
    assert_eq!(att.len(), 2);
    assert_eq!(att[1]["block"], "transformer.h.1");
    assert_eq!(att[0]["weights"].as_array().unwrap().len(), 2 * 16 * 16);
    assert_eq!(t["next"].as_array().unwrap().len(), 16);
    for (model, text, want) in [
        ("mlp", "the cat", 422),
        ("lm", "the dog", 422),
        ("lm", "t", 400),
        ("lm", &"t".repeat(300), 400),
        ("../lm", "the cat", 400),
        ("nope", "the cat", 404),
        ("(live)", "the cat", 404),
    ] {
        let (code, msg) = ask(model, text);
        assert_eq!(code, want, "{model} {text}: {msg}");
    }
    assert_eq!(post(&addr, "/api/trace_text", "{\"text\": 3}").0, 400);
    child.kill().unwrap();
    let _ = child.wait();
}

/// Without `--serve-exit` the page outlives the run: it says the run
/// finished, still answers (the metrics, a drawing with the run's last
/// weights), and the process waits to be stopped.
#[test]
fn the_page_stays_up_after_the_run() {
    let d = tempfile::tempdir().unwrap();
    let data = common::small_mnist(d.path(), 300, 50);
    let (mut child, addr) = start(&[
        "train",
        "--model",
        "flatten,linear(784,10)",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--augment",
        "crop:2,flip",
        "--quiet",
        "--serve",
        "--port",
        "0",
    ]);
    let t0 = Instant::now();
    loop {
        // the one epoch's row comes as the run ends
        let (code, csv) = get(&addr, "/api/live/metrics.csv");
        if code == 200 && csv.lines().any(|l| l.starts_with("epoch,")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the run never ended"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the process left with the page"
    );
    let (code, csv) = get(&addr, "/api/live/metrics.csv");
    assert_eq!(code, 200);
    assert!(csv.lines().any(|l| l.starts_with("epoch,")), "{csv}");
    let (code, models) = get(&addr, "/api/models");
    assert!(code == 200 && models.contains("\"live\":true"), "{models}");
    // the data the page draws: the classes, the last confusion matrix (50
    // test images) and the grid of augmented images (8 rows of 1 + 4)
    let (code, data) = get(&addr, "/api/live/data");
    assert_eq!(code, 200, "{data}");
    let v: serde_json::Value = serde_json::from_str(&data).unwrap();
    let m = v["confusion"].as_array().unwrap();
    let total: u64 = m
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!((m.len(), total), (10, 50));
    assert_eq!(v["classes"].as_array().unwrap().len(), 10);
    assert_eq!(v["augmented"]["shape"], serde_json::json!([1, 28, 28]));
    let rows = v["augmented"]["rows"].as_array().unwrap();
    assert_eq!((rows.len(), rows[0].as_array().unwrap().len()), (8, 5));
    // a drawing still reads with the run's last weights
    let px: Vec<&str> = (0..40 * 40)
        .map(|i| {
            if i % 40 == 20 && i / 40 > 5 && i / 40 < 35 {
                "1"
            } else {
                "0"
            }
        })
        .collect();
    let body = format!(
        r#"{{"model":"(live)","width":40,"height":40,"pixels":[{}],"label":null}}"#,
        px.join(",")
    );
    let (code, trace) = post(&addr, "/api/trace", &body);
    assert_eq!(code, 200, "{trace}");
    child.kill().unwrap();
    let _ = child.wait();
}
