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
    assert!(page.contains("<title>backprop</title>") && page.contains("page/training.js"));
    let (_, script) = get(&addr, "/page/training.js");
    assert!(script.contains("EventSource"), "the live stream's reader");
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
    // The run's settings, layers and epochs, from its files' headers.
    let (code, info) = get(&addr, "/api/runs/first/info");
    assert_eq!(code, 200, "{info}");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["model"], "flatten,linear(784,16),relu,linear(16,10)");
    assert_eq!(info["layers"]["1"], "linear(784,16)");
    assert_eq!(info["config"]["epochs"], 1);
    assert_eq!(info["records"].as_array().unwrap().len(), 1);
    for name in ["evil", "pipe", "..%2Fsecret", "nothing"] {
        let (code, _) = get(&addr, &format!("/api/runs/{name}/info"));
        assert!((400..500).contains(&code), "{name}: {code}");
    }
    // The page's own files, and nothing else under /page/.
    for (file, kind) in [
        ("charts.js", "javascript"),
        ("style.css", "css"),
        ("vendor/uPlot.iife.min.js", "javascript"),
        ("vendor/uPlot.LICENSE", "text/plain"),
    ] {
        let (code, body) = request(
            &addr,
            &format!("GET /page/{file} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(code, 200, "{file}");
        assert!(!body.is_empty(), "{file}");
        let _ = kind;
    }
    for path in [
        "/page/../mod.rs",
        "/page/nothing.js",
        "/page/%2e%2e/Cargo.toml",
    ] {
        let (code, _) = get(&addr, path);
        assert!((400..500).contains(&code), "{path}: {code}");
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

/// A model written in Rust (a struct of modules, no model line) on the
/// live page: the library's `Live` is the run's observer, and the page
/// draws with the run's own weights, as it does with a model line.
#[test]
fn a_model_written_in_rust_is_read_live() {
    use backprop::data::load_data;
    use backprop::prelude::*;
    use backprop::train::{TrainConfig, Trainer};
    use rand::SeedableRng;

    #[derive(Clone)]
    struct Net {
        hidden: Linear,
        out: Linear,
    }
    impl Module for Net {
        fn forward(&self, p: &mut Pass, x: Var) -> Var {
            let h = p.flatten(x);
            let h = self.hidden.forward(p, h);
            let h = p.relu(h);
            self.out.forward(p, h)
        }
        fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
            v.module("hidden", &self.hidden);
            v.module("out", &self.out);
        }
        fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
            v.module("hidden", &mut self.hidden);
            v.module("out", &mut self.out);
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut net = Net {
        hidden: Linear::new(784, 32).init(&mut rng),
        out: Linear::new(32, 10).init(&mut rng),
    };
    assert!(net.spec().is_none(), "no model line to rebuild it from");
    let bias = |n: &Net| {
        let sd = n.state_dict();
        sd.iter()
            .find(|(k, _)| k == "out.bias")
            .unwrap()
            .1
            .data()
            .to_vec()
    };
    let first_bias = bias(&net);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let (train, _) = load_data(&dir, None, None).unwrap();
    let live = backprop::serve::Live::new();
    let (addr, _server) =
        backprop::serve::start("127.0.0.1:0".parse().unwrap(), None, Some(live.clone())).unwrap();
    let addr = addr.to_string();
    let mut cfg = TrainConfig::new(backprop::optim::OptimizerConfig::adam(1e-3));
    cfg.max_steps = Some(60);
    cfg.diagnostics_every = 0;
    let mut observer = live.clone();
    Trainer::new(&cfg)
        .run(&mut net, &train, None, &mut observer)
        .unwrap();
    let (code, models) = get(&addr, "/api/models");
    assert_eq!(code, 200);
    assert!(models.contains("\"live\":true"), "{models}");
    // A vertical stroke through the middle of a 28×28 drawing.
    let pixels: Vec<String> = (0..784)
        .map(|i| {
            if (i % 28 == 14) && (4..24).contains(&(i / 28)) {
                "1"
            } else {
                "0"
            }
            .into()
        })
        .collect();
    let body = format!(
        r#"{{"model":"(live)","width":28,"height":28,"pixels":[{}],"label":1}}"#,
        pixels.join(",")
    );
    let (code, trace) = post(&addr, "/api/trace", &body);
    assert_eq!(code, 200, "{trace}");
    let t: serde_json::Value = serde_json::from_str(&trace).unwrap();
    assert_eq!(t["probabilities"].as_array().unwrap().len(), 10);
    let params: Vec<&str> = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["param"].as_str())
        .collect();
    assert!(params.contains(&"hidden.weight"), "{params:?}");
    // The copy is of the run's weights (taken as it trained), not the first draw.
    let w = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["param"] == "out.bias")
        .unwrap()["value"]["data"]
        .clone();
    let theirs: Vec<f32> = serde_json::from_value(w).unwrap();
    assert_eq!(theirs.len(), 10);
    assert_ne!(theirs, first_bias, "trained, not the weights first drawn");

    // Saved, it has no model line: a page reads it with a builder of the struct.
    let runs = tempfile::tempdir().unwrap();
    backprop::io::save_module(&net, &runs.path().join("net.safetensors")).unwrap();
    let fresh = net.clone();
    let builder: backprop::serve::Builder = std::sync::Arc::new(move || Box::new(fresh.clone()));
    for (with, want) in [(None, 422), (Some(builder), 200)] {
        let (addr, _server) = backprop::serve::start_with(
            "127.0.0.1:0".parse().unwrap(),
            Some(runs.path().to_path_buf()),
            None,
            with,
        )
        .unwrap();
        let addr = addr.to_string();
        let (code, answer) = post(&addr, "/api/trace", &body.replace("(live)", "net"));
        assert_eq!(code, want, "{answer}");
    }
}

/// The playground trains what it is sent within its limits, and refuses
/// the rest with a 4xx: unknown problems, oversized networks, rates that
/// are not numbers, states of the wrong size or with non-finite values.
#[test]
fn the_playground_trains_within_limits() {
    let d = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(&["serve", d.path().to_str().unwrap(), "--port", "0"]);
    let ok = r#"{"problem":"encoder","activation":"sigmoid","init":"uniform(0.3)","lr":0.1,"momentum":0.9,"seed":3,"steps":20,"state":null}"#;
    let (code, body) = post(&addr, "/api/playground", ok);
    assert_eq!(code, 200, "{body}");
    let a: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(a["state"]["step"], 20);
    assert_eq!(a["losses"].as_array().unwrap().len(), 20);
    assert_eq!(
        a["units"].as_array().unwrap().len(),
        3,
        "inputs, hidden, outputs"
    );
    assert_eq!(a["shapes"]["0.weight"], serde_json::json!([3, 8]));
    // The state sent back goes on where it stopped.
    let again = format!(
        r#"{{"problem":"encoder","activation":"sigmoid","init":"uniform(0.3)","lr":0.1,"momentum":0.9,"seed":3,"steps":5,"state":{}}}"#,
        a["state"]
    );
    let (code, body) = post(&addr, "/api/playground", &again);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"step\":25"), "{body}");
    let mut bad_state = a["state"].clone();
    bad_state["params"]["0.weight"][0] = serde_json::json!(1e39);
    for body in [
        "not json".to_string(),
        r#"{"problem":"xor"}"#.to_string(),
        ok.replace("encoder", "mnist"),
        ok.replace(r#""steps":20"#, r#""steps":5001"#),
        ok.replace(
            r#""activation":"sigmoid""#,
            r#""activation":"sigmoid","hidden":[64]"#,
        ),
        ok.replace(
            r#""activation":"sigmoid""#,
            r#""activation":"sigmoid","hidden":[2,2,2,2]"#,
        ),
        ok.replace(r#""lr":0.1"#, r#""lr":-1"#),
        ok.replace(r#""momentum":0.9"#, r#""momentum":1.5"#),
        ok.replace(r#""activation":"sigmoid""#, r#""activation":"softmax""#),
        ok.replace(r#""init":"uniform(0.3)""#, r#""init":"../etc""#),
        ok.replace(
            r#""state":null"#,
            r#""state":{"step":1,"params":{},"velocity":{}}"#,
        ),
        ok.replace(r#""state":null"#, &format!(r#""state":{}"#, bad_state)),
        ok.replace(r#""seed":3"#, r#""seed":3,"extra":1"#),
    ] {
        let (code, reply) = post(&addr, "/api/playground", &body);
        assert!((400..500).contains(&code), "{body}: {code} {reply}");
    }
    let (code, _) = post(&addr, "/api/playground", ok);
    assert_eq!(code, 200, "still serving");
    server.kill().unwrap();
}
