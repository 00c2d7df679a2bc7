//! The page in a real browser: headless Chromium (Debian's `chromium`),
//! driven over WebDriver by `chromedriver` (package `chromium-driver`)
//! through fantoccini. One test draws digits on the pad with pointer
//! events and reads the guesses back, steps through backprop and looks at
//! the phone layout; the other watches a `train --serve` run's charts fill
//! in and draws with the run's live weights; a third reads a text through
//! a small GPT, with its validation loss charted and every head's
//! attention drawn. Screenshots are left in
//! `target/tmp/browser/` for a person to look at.
//!
//! Without chromedriver the tests say so and pass, unless
//! `BACKPROP_REQUIRE_BROWSER` is set (CI sets it, having installed both).

mod common;

use common::start;
use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver and chromium on this machine, or `None` (the test skips).
fn browser() -> Option<(PathBuf, Option<PathBuf>)> {
    let find = |name: &str| {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/bin")])
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    match find("chromedriver") {
        Some(d) => Some((d, find("chromium"))),
        None if std::env::var_os("BACKPROP_REQUIRE_BROWSER").is_some() => {
            panic!("chromedriver not found: install Debian's chromium and chromium-driver")
        }
        None => {
            eprintln!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
            None
        }
    }
}

/// A child process (the server, a run) killed when the test ends, even by a panic.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running chromedriver, stopped on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver(exe: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(exe)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, port }
}

/// `backprop serve DIR` and a browser on its page: the server (killed when
/// dropped), the driver, the session and the page's address.
async fn serve_page(
    dir: &Path,
    exe: &Path,
    chromium: &Option<PathBuf>,
) -> (Killed, Driver, Client, String) {
    let (server, addr) = start(&["serve", dir.to_str().unwrap(), "--port", "0"]);
    let server = Killed(server);
    let d = driver(exe);
    let c = session(&d, chromium).await;
    c.goto(&format!("http://{addr}/")).await.unwrap();
    (server, d, c, addr)
}

async fn session(d: &Driver, chromium: &Option<PathBuf>) -> Client {
    let mut opts = serde_json::json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1000", "--no-first-run", "--disable-background-networking"]
    });
    if let Some(c) = chromium {
        opts["binary"] = serde_json::json!(c);
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), opts);
    let http = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(http)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a WebDriver session")
}

/// Where the screenshots go.
fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let p = shots().join(format!("{name}.png"));
    std::fs::write(&p, png).unwrap();
    eprintln!("screenshot {}", p.display());
}

/// Evaluate `js` (a function body that returns a value) in the page.
async fn eval(c: &Client, js: &str) -> serde_json::Value {
    c.execute(js, vec![]).await.unwrap()
}

/// Poll `js` until it returns something other than null/false/"".
async fn wait_for(c: &Client, js: &str, what: &str, secs: u64) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let v = eval(c, js).await;
        let empty = v.is_null() || v == serde_json::json!(false) || v == serde_json::json!("");
        if !empty {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "waited {secs} s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Draw a stroke through `points` (pixels from the pad's centre) with the
/// mouse: pointer down, moves, up.
async fn stroke(c: &Client, points: &[(i64, i64)]) {
    let pad = c.find(Locator::Css("#pad")).await.unwrap();
    let mut m = MouseActions::new("mouse".into());
    for (i, &(x, y)) in points.iter().enumerate() {
        m = m.then(PointerAction::MoveToElement {
            element: pad.clone(),
            duration: Some(Duration::from_millis(20)),
            x: x as _,
            y: y as _,
        });
        if i == 0 {
            m = m.then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            });
        }
    }
    m = m.then(PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    });
    c.perform_actions(m).await.unwrap();
}

/// Clear the pad, draw, and wait for the guess of the last drawing.
async fn draw_and_guess(c: &Client, strokes: &[Vec<(i64, i64)>]) -> usize {
    click(c, Locator::Css("#clear")).await;
    for s in strokes {
        stroke(c, s).await;
    }
    // The page sends the latest drawing once the request in flight returns.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = wait_for(
        c,
        "return !inFlight && !again && document.getElementById('guess').dataset.class",
        "a guess",
        20,
    )
    .await;
    v.as_str().unwrap().parse().unwrap()
}

/// Click the element `at` finds.
async fn click(c: &Client, at: Locator<'_>) {
    c.find(at).await.unwrap().click().await.unwrap();
}

fn tab(name: &str) -> Locator<'static> {
    Locator::Css(match name {
        "draw" => "nav button[data-tab=draw]",
        "steps" => "nav button[data-tab=steps]",
        "text" => "nav button[data-tab=text]",
        "playground" => "nav button[data-tab=playground]",
        _ => "nav button[data-tab=training]",
    })
}

fn circle(r: f64, n: usize) -> Vec<(i64, i64)> {
    (0..=n)
        .map(|i| {
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            ((r * 0.75 * a.sin()) as i64, (-r * a.cos()) as i64)
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn draw_a_digit_and_step_through_backprop() {
    let Some((exe, chromium)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("mlp.safetensors");
    let out = common::run(&[
        "train",
        "--model",
        "flatten,linear(784,64),relu,linear(64,10)",
        "--epochs",
        "1",
        "--save",
        save.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.success, "{}", out.stderr);
    let (_server, _d, c, _) = serve_page(dir.path(), &exe, &chromium).await;
    wait_for(&c, "return curves('loss') > 0", "the loss chart", 10).await;
    screenshot(&c, "training-finished-run").await;

    click(&c, tab("draw")).await;
    wait_for(
        &c,
        "return document.getElementById('model').value",
        "the model list",
        10,
    )
    .await;
    // A vertical stroke is a 1; a ring is a 0.
    let one = draw_and_guess(&c, &[vec![(0, -100), (0, -30), (0, 30), (0, 100)]]).await;
    assert_eq!(one, 1, "a vertical stroke");
    let zero = draw_and_guess(&c, &[circle(95.0, 24)]).await;
    assert_eq!(zero, 0, "a ring");
    // The probabilities add up, the layers are drawn.
    let sum = eval(&c, "return trace.probabilities.reduce((a, b) => a + b, 0)").await;
    assert!((sum.as_f64().unwrap() - 1.0).abs() < 1e-4);
    let layers = eval(
        &c,
        "return document.querySelectorAll('#acts .layer').length",
    )
    .await;
    assert_eq!(
        layers,
        serde_json::json!(4),
        "flatten, linear, relu, linear"
    );
    screenshot(&c, "draw-a-zero").await;
    // An image file opened on the pad: a dark 1 on white, as a scan has it.
    let png = dir.path().join("one.png");
    let img = image::GrayImage::from_fn(60, 80, |x, y| {
        image::Luma([if (26..34).contains(&x) && (10..70).contains(&y) {
            20
        } else {
            235
        }])
    });
    img.save(&png).unwrap();
    let input = c.find(Locator::Css("#pad-file")).await.unwrap();
    input.send_keys(png.to_str().unwrap()).await.unwrap();
    let v = wait_for(
        &c,
        "return !inFlight && /one.png/.test(document.getElementById('trace-status').textContent) && trace && String(trace.class)",
        "the image's guess",
        20,
    )
    .await;
    let status = eval(
        &c,
        "return document.getElementById('trace-status').textContent",
    )
    .await;
    assert!(status.as_str().unwrap().contains("inverted"), "{status}");
    assert_eq!(v, serde_json::json!("1"), "a dark bar on white read as a 1");

    // Backprop, step by step: the loss first, then the table fills in.
    click(&c, tab("steps")).await;
    // The default teaches: the loss is against the drawing's true label,
    // not the model's guess, so it and the gradients are not zero.
    eval(
        &c,
        "document.getElementById('label').value = '0'; ask(); return 1",
    )
    .await;
    wait_for(
        &c,
        "return !inFlight && trace && trace.label === 0",
        "the trace against label 0",
        10,
    )
    .await;
    let loss = eval(&c, "return trace.loss").await.as_f64().unwrap();
    assert!(loss > 1e-4, "a loss against the true label: {loss}");
    // The tape drawn as a graph: a box per node.
    let boxes = eval(
        &c,
        "return document.querySelectorAll('#s-graph .gnode').length === trace.nodes.length",
    )
    .await;
    assert_eq!(boxes, serde_json::json!(true), "a box per node");
    let next = c.find(Locator::Css("#s-next")).await.unwrap();
    next.click().await.unwrap();
    let first = eval(
        &c,
        "return document.querySelector('#tape tr.now td').textContent",
    )
    .await;
    let loss = eval(&c, "return String(trace.loss_node)").await;
    assert_eq!(first, loss, "the backward pass starts at the loss");
    // the loss node's rule, with the real numbers: δ = p − y
    let rule = eval(
        &c,
        "const m = document.querySelector('#s-rule math'); return m ? m.textContent : ''",
    )
    .await;
    let rule = rule.as_str().unwrap_or("");
    assert!(rule.contains("p−y") || rule.contains("p − y"), "{rule}");
    // with the tape's own numbers: δ at the logit of largest |δ|
    let matches = eval(
        &c,
        "const z = trace.nodes[trace.nodes[trace.loss_node].parents[0]], k = biggest(z.grad.data); \
         return document.querySelector('#s-rule math').textContent.includes(String(fmt(z.grad.data[k])))",
    )
    .await;
    assert_eq!(
        matches,
        serde_json::json!(true),
        "δ = p − y with the tape's numbers"
    );
    for _ in 0..2 {
        next.click().await.unwrap();
    }
    // The third visit is the ReLU's output: its 64 units, a and δ each.
    let units = eval(
        &c,
        "return document.querySelectorAll('#s-units .unit').length",
    )
    .await;
    assert_eq!(units, serde_json::json!(64), "per unit: a and δ");
    let rule = eval(
        &c,
        "return document.querySelector('#s-rule math').textContent",
    )
    .await;
    assert!(rule.as_str().unwrap().contains("relu"), "{rule}");
    screenshot(&c, "steps-third-visit").await;
    click(&c, Locator::Css("#s-all")).await;
    let filled = eval(
        &c,
        "return document.querySelectorAll('#tape td.g.filled').length",
    )
    .await;
    let grads = eval(&c, "return trace.nodes.filter(n => n.grad).length").await;
    assert_eq!(filled, grads, "every gradient of the table shown");
    // The first layer's ∂C/∂W, row by row as 28×28 images (its node clicked in the graph).
    click(
        &c,
        Locator::Css("#s-graph .gnode[data-id='1'], #s-graph .gnode"),
    )
    .await;
    let rows = eval(
        &c,
        "picked = trace.nodes.find(n => n.rows).id; steps(); return document.querySelectorAll('#s-units figure.rowimg canvas').length",
    )
    .await;
    assert_eq!(rows, serde_json::json!(16), "16 rows of ∂C/∂W as images");
    screenshot(&c, "steps-all").await;

    // A phone: every view fits its width (no scrolling sideways).
    c.set_window_size(390, 844).await.unwrap();
    for view in ["draw", "steps", "text", "playground", "training"] {
        click(&c, tab(view)).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let w = eval(
            &c,
            "return [document.documentElement.scrollWidth, window.innerWidth]",
        )
        .await;
        assert!(w[0].as_u64() <= w[1].as_u64(), "{view} at 390 px: {w}");
        screenshot(&c, &format!("phone-{view}")).await;
    }
    c.close().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn watch_a_run_live() {
    let Some((exe, chromium)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = common::small_mnist(dir.path(), 20000, 1000);
    let save = dir.path().join("runs/live.safetensors");
    let (run, addr) = start(&[
        "train",
        "--model",
        "lenet",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "3",
        "--diagnostics-every",
        "10",
        "--augment",
        "crop:2,affine:10:0.05",
        "--save",
        save.to_str().unwrap(),
        "--serve",
        "--port",
        "0",
        "--quiet",
    ]);
    // The server stays up after the run (until killed, as Ctrl-C would).
    let _run = Killed(run);
    let d = driver(&exe);
    let c = session(&d, &chromium).await;
    c.goto(&format!("http://{addr}/")).await.unwrap();
    let rows = "data.rows.length";
    wait_for(
        &c,
        &format!("return {rows} > 0 && {rows}"),
        "the first rows",
        30,
    )
    .await;
    let first = eval(&c, &format!("return {rows}")).await.as_u64().unwrap();
    screenshot(&c, "live-early").await;
    // The run goes on, and the page hears of it without a reload.
    let more = format!("return {rows} > {first} && {rows}");
    wait_for(&c, &more, "more rows", 30).await;
    // (a live run's charts are redrawn every two seconds)
    wait_for(
        &c,
        "return curves('loss') + curves('grad') >= 2",
        "loss and gradient curves drawn",
        10,
    )
    .await;
    // The layers by name in the legends; the clock with the throughput.
    wait_for(
        &c,
        "return document.getElementById('grad-legend').textContent.includes('linear(400,120)')",
        "layer names in the legend",
        20,
    )
    .await;
    wait_for(
        &c,
        "return /samples\\/s/.test(document.getElementById('clock').textContent) && /elapsed/.test(document.getElementById('clock').textContent)",
        "elapsed time and throughput",
        20,
    )
    .await;
    // Each curve's latest value beside its name; the loss on a log scale at a click.
    let latest = eval(
        &c,
        "return document.querySelector('#loss-legend b').textContent",
    )
    .await;
    assert!(
        latest.as_str().unwrap().parse::<f64>().is_ok(),
        "latest loss {latest}"
    );
    // Each layer's weights and gradients over time (their quantiles as bands).
    wait_for(
        &c,
        "document.getElementById('hist-card').scrollIntoView(); return curves('hist-w') === 5 && curves('hist-g') === 5",
        "the distributions over time",
        20,
    )
    .await;
    let log = "document.getElementById('loss').scrollIntoView(); document.getElementById('loss-log').click(); return 1";
    eval(&c, log).await;
    wait_for(
        &c,
        "return charts.loss.u.scales.y.distr === 3",
        "a log scale",
        5,
    )
    .await;
    // The grid of augmented training images: 8 rows of an image and 4 epochs.
    wait_for(
        &c,
        "return document.querySelectorAll('#augmented .aug-row canvas').length === 40",
        "the augmented images",
        20,
    )
    .await;
    // After the first epoch, the test set's confusion matrix (10 × 10, and a share per row).
    wait_for(
        &c,
        "return document.querySelectorAll('#confusion td').length === 110",
        "the confusion matrix",
        90,
    )
    .await;
    screenshot(&c, "live-data").await;
    // Draw with the run's current weights.
    click(&c, tab("draw")).await;
    wait_for(
        &c,
        "return [...document.getElementById('model').options].some(o => o.value === '(live)')",
        "the live model",
        20,
    )
    .await;
    eval(
        &c,
        "document.getElementById('model').value = '(live)'; return 1",
    )
    .await;
    let guess = draw_and_guess(&c, &[vec![(0, -100), (0, 0), (0, 100)]]).await;
    assert!(guess < 10);
    screenshot(&c, "live-draw").await;
    click(&c, tab("training")).await;
    wait_for(
        &c,
        "return document.getElementById('status').textContent === 'finished'",
        "the end of the run",
        120,
    )
    .await;
    screenshot(&c, "live-finished").await;
    // After the run the page still answers: the run's last weights draw.
    click(&c, tab("draw")).await;
    let guess = draw_and_guess(&c, &[vec![(0, -100), (0, 0), (0, 100)]]).await;
    assert!(guess < 10);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn read_a_text_through_a_gpt_and_see_its_attention() {
    let Some((exe, chromium)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("gpt.safetensors");
    let out = common::run(&[
        "train",
        "--data",
        "data/shakespeare.txt",
        "--model",
        "gpt(layers=2,heads=2,embd=32)",
        "--block-size",
        "32",
        "--max-steps",
        "60",
        "--eval-every",
        "20",
        "--eval-iters",
        "2",
        "--save",
        save.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.success, "{}", out.stderr);
    let (_server, _d, c, _) = serve_page(dir.path(), &exe, &chromium).await;
    // the training view: steps, both estimates, a gradient norm per block
    wait_for(
        &c,
        "return curves('loss') === 3",
        "train, train estimate and validation curves",
        10,
    )
    .await;
    let blocks = eval(&c, "return curves('grad')").await;
    assert_eq!(blocks, serde_json::json!(5), "wte, wpe, h.0, h.1, ln_f");
    screenshot(&c, "gpt-training").await;

    click(&c, tab("text")).await;
    wait_for(
        &c,
        "return textTrace && textTrace.text.length",
        "the text's trace",
        20,
    )
    .await;
    let t = eval(&c, "return textTrace.text.length").await;
    assert_eq!(t, serde_json::json!(32), "the model's context");
    let maps = eval(
        &c,
        "return document.querySelectorAll('#t-attn .heads canvas').length",
    )
    .await;
    assert_eq!(maps, serde_json::json!(4), "2 blocks × 2 heads");
    // a character's predictions: five, adding up to at most 1
    click(&c, Locator::Css("#t-chars span[data-i='3']")).await;
    let bars = eval(
        &c,
        "return document.querySelectorAll('#t-next .bar').length",
    )
    .await;
    assert_eq!(bars, serde_json::json!(5));
    screenshot(&c, "gpt-text").await;

    // the same text's backward pass, step by step, to the last attention node
    click(&c, Locator::Css("#t-steps")).await;
    let visits = eval(
        &c,
        "const att = trace.attention[trace.attention.length - 1].node; return order().indexOf(att) + 1",
    )
    .await
    .as_u64()
    .unwrap();
    assert!(visits > 1);
    for _ in 0..visits {
        click(&c, Locator::Css("#s-next")).await;
    }
    let shown = eval(
        &c,
        "return document.querySelectorAll('#s-units .heads canvas').length",
    )
    .await;
    assert_eq!(shown, serde_json::json!(2), "the node's two heads");
    screenshot(&c, "gpt-steps-attention").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn compare_runs_and_train_in_the_playground() {
    let Some((exe, chromium)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, lr) in [("slow", "0.0001"), ("fast", "0.003")] {
        let save = dir.path().join(format!("{name}.safetensors"));
        let out = common::run(&[
            "train",
            "--model",
            "flatten,linear(784,32),relu,linear(32,10)",
            "--epochs",
            "2",
            "--lr",
            lr,
            "--save",
            save.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(out.success, "{}", out.stderr);
    }
    let (_server, _d, c, addr) = serve_page(dir.path(), &exe, &chromium).await;
    // Two runs on the same axes, with their settings.
    // The folder's runs start ticked; a click takes one off the charts.
    wait_for(
        &c,
        "document.getElementById('compare-card').scrollIntoView(); return curves('cmp-acc') === 2",
        "both runs on one chart",
        10,
    )
    .await;
    click(&c, Locator::Css("#compare-pick input[value='slow']")).await;
    wait_for(
        &c,
        "return curves('cmp-acc') === 1",
        "one run, unticked",
        10,
    )
    .await;
    click(&c, Locator::Css("#compare-pick input[value='slow']")).await;
    wait_for(&c, "return curves('cmp-acc') === 2", "both again", 10).await;
    let table = eval(
        &c,
        "return document.querySelectorAll('#cmp-table tr').length",
    )
    .await;
    assert_eq!(table, serde_json::json!(3), "a header and a row per run");
    let lr = eval(
        &c,
        "return document.getElementById('cmp-table').textContent",
    )
    .await;
    assert!(lr.as_str().unwrap().contains("0.003"), "{lr}");
    screenshot(&c, "compare-runs").await;

    // A run saved later appears in the list; its warnings are flags on the
    // chart they concern (a deep sigmoid net: vanishing gradients).
    let deep = format!(
        "flatten,linear(784,64),sigmoid,{}linear(64,10)",
        "linear(64,64),sigmoid,".repeat(9)
    );
    let out = common::run(&[
        "train",
        "--model",
        &deep,
        "--weight-init",
        "small-normal",
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
        "--max-steps",
        "20",
        "--diagnostics-every",
        "1",
        "--save",
        dir.path().join("deep.safetensors").to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.success, "{}", out.stderr);
    wait_for(
        &c,
        "return [...document.getElementById('run').options].some(o => o.value === 'deep')",
        "the new run in the list",
        15,
    )
    .await;
    eval(
        &c,
        "const s = document.getElementById('run'); s.value = 'deep'; s.onchange(); return 1",
    )
    .await;
    let flags = wait_for(
        &c,
        "document.getElementById('grad').scrollIntoView(); const m = document.querySelectorAll('#grad .marker'); return m.length > 0 && m[0].title",
        "a warning's flag on the gradient chart",
        10,
    )
    .await;
    assert!(
        flags.as_str().unwrap().contains("vanishing gradient"),
        "{flags}"
    );
    screenshot(&c, "warnings-as-flags").await;

    // The playground from a link: XOR at step 600, trained by the server.
    let link = "#playground?problem=xor&hidden=2&act=sigmoid&init=uniform(0.3)&lr=0.5&mom=0.9&seed=1&step=600";
    c.goto(&format!("http://{addr}/{link}")).await.unwrap();
    wait_for(
        &c,
        "return pg.answer && pg.answer.state.step === 600",
        "600 steps of XOR",
        20,
    )
    .await;
    let right = eval(&c, "return pg.answer.right").await;
    assert_eq!(
        right,
        serde_json::json!(4),
        "XOR learnt by step 600 (seed 1)"
    );
    let edges = eval(
        &c,
        "return document.querySelectorAll('#pg-net line.edge').length",
    )
    .await;
    assert_eq!(edges, serde_json::json!(6), "a line per weight of 2-2-1");
    let loss = eval(&c, "return pg.answer.loss").await;
    click(&c, Locator::Css("#pg-one")).await;
    wait_for(
        &c,
        "return pg.answer.state.step === 601 && !pg.busy",
        "one more step",
        10,
    )
    .await;
    let url = eval(&c, "return location.hash").await;
    assert!(url.as_str().unwrap().contains("step=601"), "{url}");
    screenshot(&c, "playground-xor").await;
    // The same link gives the same network.
    c.goto(&format!("http://{addr}/{link}")).await.unwrap();
    wait_for(
        &c,
        "return pg.answer && pg.answer.state.step === 600",
        "the link again",
        20,
    )
    .await;
    assert_eq!(eval(&c, "return pg.answer.loss").await, loss, "reproduced");
    // Run and pause.
    click(&c, Locator::Css("#pg-run")).await;
    wait_for(&c, "return pg.answer.state.step >= 700", "running", 20).await;
    click(&c, Locator::Css("#pg-run")).await;
    // The spirals: the plane drawn.
    eval(
        &c,
        "const s = document.getElementById('pg-problem'); s.value = 'spirals'; s.onchange(); return 1",
    )
    .await;
    wait_for(
        &c,
        "return pg.answer && pg.answer.grid && document.querySelector('#pg-cases canvas.plane')",
        "the spirals' plane",
        20,
    )
    .await;
    screenshot(&c, "playground-spirals").await;
    c.close().await.unwrap();
}
