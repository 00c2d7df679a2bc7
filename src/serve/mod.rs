//! `backprop serve` and `backprop train --serve`: a local web page that
//! shows runs (feature `serve`).
//!
//! The page (`page/`, embedded in the binary: no CDN, works offline)
//! draws a run's `metrics.csv`: loss and accuracy, train and test, the
//! learning rate, and per layer the gradient norm, the δ norm, the
//! update/weight ratio and the dead or saturated units, with the run's
//! warnings. A finished run is read from its folder; the run in progress
//! (`train --serve`) is pushed to the page as server-sent events, at most two
//! a second, each carrying the new rows since the last.
//!
//! Safe to leave running: it binds to 127.0.0.1 unless told otherwise; it
//! reads only `NAME.metrics.csv` files of the folder it was given, with
//! `NAME` made of letters, digits, `-`, `_` and `.` (no path, no `..`); any
//! other request gets a 4xx.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /` | the page |
//! | `GET /page/NAME` | its scripts, styles and vendored libraries |
//! | `GET /api/runs` | `{"live": bool, "runs": [NAME, …]}` |
//! | `GET /api/runs/NAME/metrics.csv` | that run's metrics |
//! | `GET /api/live/metrics.csv` | the live run's metrics so far |
//! | `GET /api/runs/NAME/info` | what the page shows beside a run's curves: `{"model", "settings", "config", "layers": {LAYER: NAME}, "records": [epoch, …], "warnings", "steps", "finished"}`, read from the headers of `NAME.safetensors` and `NAME.state.safetensors` (null or empty where missing) |
//! | `GET /api/live/info` | the same for the live run, with `"clock": {"step", "steps", "samples_per_second", "elapsed"}` |
//! | `GET /api/live/events` | server-sent events `{"lines": [...], "warnings": [...], "done": bool, "clock": {…}}`, and `"data"` (as `/api/live/data`) and `"info"` (as `/api/live/info`) when they changed |
//! | `GET /api/live/data` | `{"classes": [NAME, …], "confusion": [[count, …], …] or null, "augmented": null or {"shape": [C, H, W], "rows": [[image, …], …]}}`: the last evaluation's confusion matrix and a grid of augmented training images (a row per sample: the image, then its augmentations in later epochs) |
//! | `GET /api/models` | `{"live": bool, "models": [NAME, …]}`: the folder's `NAME.safetensors` models |
//! | `POST /api/trace` | one drawn digit through a model and back (below) |
//! | `POST /api/trace_text` | a line of text through a language model and back (below) |
//! | `POST /api/playground` | steps of a small network on a 1986 problem or the two spirals (below) |
//!
//! `POST /api/trace` takes `{"model": NAME or "(live)", "width": W,
//! "height": H, "pixels": [W·H values in 0..1, row by row], "label": null
//! or a class}`. The drawing is made MNIST-like ([`mnist_like`]: as
//! `backprop predict` does with an image), run through the model in
//! evaluation mode and back from the cross-entropy loss against `label`
//! (or the model's own guess), and the answer is the whole
//! [`crate::inspect::tape::Trace`]: the class probabilities, the
//! image the model saw, and every node of the tape with its op, shape,
//! parents, layer, value and gradient (`{"shape", "norm", "min", "max",
//! "data"}`; `data` left out of large tensors). `(live)` is the run in
//! progress, as a copy taken at most once a second.
//!
//! `POST /api/trace_text` takes `{"model": NAME or "(live)", "text": TEXT}`
//! (at most [`MAX_TEXT`] characters, each in the model's vocabulary): the
//! text's last `context + 1` characters, each predicting the next, through
//! a language model and back from the mean cross-entropy
//! ([`crate::inspect::sequence`]). The answer is the trace as above (its
//! `probabilities` and `label` the last position's) with `text` and
//! `targets` (the characters read and predicted), `next` (the five likeliest
//! next characters at every position, `[[char, p], …]`) and `attention`
//! (per attention node: `{"node", "block", "heads", "t", "weights"}`, the
//! weights `[heads, t, t]` row by row).

//! `POST /api/playground` takes `{"problem": "xor" | "symmetry" | "encoder"
//! | "spirals", "hidden": [units, …], "activation": "sigmoid" | "tanh" |
//! "relu", "init": a weight-init name, "lr", "momentum", "seed", "steps",
//! "state": null or the `state` of an earlier answer}` and trains the
//! network `steps` steps from that state ([`crate::train::playground`]).
//! The answer: `state` (`{"step", "params": {NAME: [values]}, "velocity":
//! {NAME: [values]}}`, to send back), `shapes`, `losses` (E before each
//! step), `loss`, `grads` (∂E/∂w by parameter), `inputs`, `targets`,
//! `outputs` (row by row), `units` (every layer's units per case, the
//! inputs first), `right` (cases answered within 0.5), and for the
//! spirals `grid` (the output over the plane). Sizes are capped (steps,
//! layers, units); anything malformed or of the wrong size gets a 4xx.

use crate::data::{mnist_like, MNIST_SIDE};
use crate::inspect::tape::{trace, NodeKind, Trace};
use crate::io::{self, Weights};
use crate::nn::{Module, ModuleExt};
use crate::Tensor;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The page: its markup, and the files it loads from `/page/NAME`, one per
/// view (the charts, the drawing pad, the tape, the text, the playground),
/// with the libraries it uses, vendored from npm with their licences (no
/// CDN: the page works offline).
const PAGE: &str = include_str!("page/index.html");
const ASSETS: &[(&str, &str, &str)] = &[
    ("style.css", CSS, include_str!("page/style.css")),
    ("util.js", JS, include_str!("page/util.js")),
    ("charts.js", JS, include_str!("page/charts.js")),
    ("training.js", JS, include_str!("page/training.js")),
    ("compare.js", JS, include_str!("page/compare.js")),
    ("pad.js", JS, include_str!("page/pad.js")),
    ("steps.js", JS, include_str!("page/steps.js")),
    ("text.js", JS, include_str!("page/text.js")),
    ("playground.js", JS, include_str!("page/playground.js")),
    ("main.js", JS, include_str!("page/main.js")),
    (
        "vendor/uPlot.iife.min.js",
        JS,
        include_str!("page/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        CSS,
        include_str!("page/vendor/uPlot.min.css"),
    ),
    (
        "vendor/uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("page/vendor/uPlot.LICENSE"),
    ),
];
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One of the page's files, by name (any other name: 404).
async fn asset(UrlPath(name): UrlPath<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => ([(header::CONTENT_TYPE, *kind)], *body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such file of the page").into_response(),
    }
}

/// The run in progress, as the page sees it: its metrics so far, its
/// warnings, and whether it ended. The training observer updates it; the
/// server reads it.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Mutex<LiveState>>,
    /// When the last copy of the model was taken (milliseconds after
    /// `born`, plus one; 0: never), read without the lock at every step.
    copied: Arc<AtomicU64>,
    /// The steps taken so far (stored at every step, read by the page's clock).
    steps: Arc<AtomicU64>,
    born: Instant,
}

impl Default for Live {
    fn default() -> Live {
        Live {
            inner: Arc::default(),
            copied: Arc::default(),
            steps: Arc::default(),
            born: Instant::now(),
        }
    }
}

#[derive(Default)]
struct LiveState {
    csv: String,
    warnings: Vec<String>,
    done: bool,
    /// A copy of the model (its tensors and line).
    model: Option<Arc<Weights>>,
    /// A copy of a model that has no line (a struct of modules written in
    /// Rust): the module itself, its parameters shared until training
    /// writes them.
    module: Option<Arc<dyn Module>>,
    /// What the copies carry beside the model line (a language model's
    /// vocabulary and window).
    metadata: std::collections::HashMap<String, String>,
    /// The class names, the last confusion matrix, the augmented samples.
    data: serde_json::Value,
    /// Bumped whenever `data` changes (the event stream sends it again).
    data_version: u64,
    /// The run's settings, layers and finished epochs (as `/api/runs/NAME/info`).
    info: serde_json::Value,
    /// Bumped whenever `info` changes.
    info_version: u64,
    /// When the epoch in progress started (for its samples a second).
    epoch_began: Option<Instant>,
    /// The layers' names have been given.
    layers_given: bool,
    /// The steps planned, samples a second, and the seconds since the
    /// start when the run ended (the steps taken: [`Live`]'s counter).
    clock: Clock,
}

#[derive(Default, Clone, Copy, serde::Serialize)]
struct Clock {
    steps: Option<usize>,
    samples_per_second: Option<f64>,
    #[serde(skip)]
    ended: Option<f64>,
}

impl Live {
    /// A live run with no rows yet.
    pub fn new() -> Live {
        Live::default()
    }

    /// The metrics so far, as `metrics.csv` text.
    pub fn set_metrics(&self, csv: String) {
        self.inner.lock().expect("not poisoned").csv = csv;
    }

    /// Append rows (`metrics.csv` lines, each ending in a newline) under
    /// `header`; if the header is not the one given so far, the text starts
    /// afresh with it. Training calls this as rows come, so the cost per
    /// row stays the row's, however long the run.
    pub fn append_metrics(&self, header: &str, rows: &str) {
        let mut s = self.inner.lock().expect("not poisoned");
        let same = s.csv.len() > header.len()
            && s.csv.starts_with(header)
            && s.csv.as_bytes()[header.len()] == b'\n';
        if !same {
            s.csv = format!("{header}\n");
        }
        s.csv.push_str(rows);
    }

    /// A warning the run gave.
    pub fn warn(&self, message: &str) {
        self.inner
            .lock()
            .expect("not poisoned")
            .warnings
            .push(message.to_string());
    }

    /// Metadata for every copy of the model offered from now on (a language
    /// model's vocabulary and window, which the page's text view needs).
    pub fn set_model_metadata(&self, metadata: std::collections::HashMap<String, String>) {
        self.inner.lock().expect("not poisoned").metadata = metadata;
    }

    /// Offer the model as it is now; a copy is taken if the last is older
    /// than a second (so a page can draw with the run's current weights
    /// without slowing it). A model with a [`spec`](Module::spec) is copied
    /// as its tensors and line (as it would be saved); one without (a
    /// struct of modules written in Rust) as a clone of the module, whose
    /// parameters share their values until the next step writes them.
    pub fn offer_model(&self, model: &dyn Module) {
        let now = self.born.elapsed().as_millis() as u64 + 1;
        let last = self.copied.load(Ordering::Relaxed);
        if last != 0 && now < last + 1000 {
            return;
        }
        self.copied.store(now, Ordering::Relaxed);
        let mut metadata = std::collections::HashMap::new();
        let Some(line) = model.spec() else {
            let copy: Arc<dyn Module> = Arc::from(model.clone_module());
            self.inner.lock().expect("not poisoned").module = Some(copy);
            return;
        };
        metadata.insert(io::MODEL_KEY.to_string(), line);
        let tensors = model.state_dict();
        let mut s = self.inner.lock().expect("not poisoned");
        metadata.extend(s.metadata.clone());
        s.model = Some(Arc::new(Weights { tensors, metadata }));
    }

    /// The classes' names (the page labels the confusion matrix with them).
    pub fn set_classes(&self, names: Vec<String>) {
        let mut s = self.inner.lock().expect("not poisoned");
        s.data["classes"] = names.into();
        s.data_version += 1;
    }

    /// The last evaluation's confusion matrix, `[true][predicted]`.
    pub fn set_confusion(&self, m: &[Vec<usize>]) {
        let mut s = self.inner.lock().expect("not poisoned");
        s.data["confusion"] = serde_json::json!(m);
        s.data_version += 1;
    }

    /// A grid of training images as the augmentation makes them: one row
    /// per sample, `[C, H, W]` images with values in `[0, 1]` or
    /// normalized (the page scales each image to its own range).
    pub fn set_augmented(&self, shape: &[usize], rows: Vec<Vec<Vec<f32>>>) {
        let mut s = self.inner.lock().expect("not poisoned");
        s.data["augmented"] = serde_json::json!({"shape": shape, "rows": rows});
        s.data_version += 1;
    }

    /// The run ended.
    pub fn finish(&self) {
        let mut s = self.inner.lock().expect("not poisoned");
        s.done = true;
        s.clock.ended = Some(self.born.elapsed().as_secs_f64());
    }

    /// What the run is: its model line, its settings and training
    /// configuration (any JSON), and the optimizer steps it plans (for the
    /// page's time-to-go).
    pub fn set_run(
        &self,
        model: &str,
        settings: serde_json::Value,
        config: serde_json::Value,
        steps: Option<usize>,
    ) {
        let mut s = self.inner.lock().expect("not poisoned");
        s.info["model"] = model.into();
        s.info["settings"] = settings;
        s.info["config"] = config;
        s.clock.steps = steps;
        s.info_version += 1;
    }

    /// [`Live::set_run`] from a run about to train on `samples` samples
    /// an epoch (on one process).
    pub fn set_run_of(&self, run: &crate::run::Run, samples: usize) {
        let t = &run.settings.train;
        let b = t.batch_size.max(1);
        let per_epoch = if t.drop_last {
            samples / b
        } else {
            samples.div_ceil(b)
        };
        let planned = per_epoch * t.epochs;
        self.set_run(
            &run.settings.model,
            serde_json::to_value(&run.settings).unwrap_or_default(),
            serde_json::to_value(t).unwrap_or_default(),
            Some(t.max_steps.map_or(planned, |m| m.min(planned))),
        );
    }

    /// The layers the per-layer curves are about: `(layer, name)`, as the
    /// diagnostics name them (`("3", "linear(128,10)")`).
    pub fn set_layers(&self, layers: &[(String, String)]) {
        let mut s = self.inner.lock().expect("not poisoned");
        s.info["layers"] = layer_map(layers);
        s.info_version += 1;
    }

    /// A finished epoch's record (its time and throughput among them).
    pub fn add_epoch(&self, record: &crate::train::EpochRecord) {
        let mut s = self.inner.lock().expect("not poisoned");
        let r = serde_json::to_value(record).unwrap_or_default();
        match s.info["records"].as_array_mut() {
            Some(a) => a.push(r),
            None => s.info["records"] = serde_json::json!([r]),
        }
        s.info_version += 1;
    }

    /// The clock as the page reads it: steps, the plan, the throughput and
    /// the seconds since the run started (until it ended).
    fn clock_json(&self, s: &LiveState) -> serde_json::Value {
        let mut c = serde_json::to_value(s.clock).unwrap_or_default();
        c["step"] = self.steps.load(Ordering::Relaxed).into();
        c["elapsed"] = s
            .clock
            .ended
            .unwrap_or_else(|| self.born.elapsed().as_secs_f64())
            .into();
        c
    }
}

/// A run's page as an [`Observer`](crate::train::Observer): give it to
/// [`Trainer::run`](crate::train::Trainer) (or beside one's own observer)
/// and the page served with it ([`start`]) shows the run as it goes, the
/// model included, whether it has a model line or is a struct of modules
/// written in Rust.
impl crate::train::Observer for Live {
    fn epoch_start(&mut self, _epoch: usize, _batches: usize) {
        self.inner.lock().expect("not poisoned").epoch_began = Some(Instant::now());
    }

    fn step(&mut self, info: &crate::train::StepInfo) {
        if info.step.is_multiple_of(20) {
            let mut s = self.inner.lock().expect("not poisoned");
            let secs = s.epoch_began.map_or(0.0, |t| t.elapsed().as_secs_f64());
            s.clock.samples_per_second = Some(info.samples as f64 / secs.max(1e-9));
        }
    }

    fn epoch_end(&mut self, record: &crate::train::EpochRecord) {
        self.add_epoch(record);
    }

    fn diagnostics(&mut self, sample: &crate::inspect::diagnostics::Sample) {
        if self.inner.lock().expect("not poisoned").layers_given {
            return;
        }
        let names: Vec<_> = sample
            .layers
            .iter()
            .map(|l| (l.layer.clone(), l.name.clone()))
            .collect();
        self.set_layers(&names);
        self.inner.lock().expect("not poisoned").layers_given = true;
    }

    fn warning(&mut self, _kind: crate::inspect::diagnostics::WarningKind, message: &str) {
        self.warn(message);
    }

    fn confusion(&mut self, matrix: &[Vec<usize>]) {
        self.set_confusion(matrix);
    }

    fn model(&mut self, model: &dyn Module, steps: usize) {
        self.steps.store(steps as u64, Ordering::Relaxed);
        self.offer_model(model);
    }

    fn metrics(&mut self, header: &str, rows: &str) {
        self.append_metrics(header, rows);
    }
}

#[derive(Clone)]
struct App {
    runs: Option<PathBuf>,
    live: Option<Live>,
    builder: Option<Builder>,
}

/// A model written in Rust, made afresh (its weights are then loaded from
/// the file the page asks for): how the page reads a saved model that has no
/// model line. Give one to [`start_with`].
pub type Builder = Arc<dyn Fn() -> Box<dyn Module> + Send + Sync>;

/// Serve the page on `addr` in a background thread: finished runs from the
/// folder `runs`, the run in progress from `live`. Returns the address
/// bound (port 0 picks a free one).
pub fn start(
    addr: SocketAddr,
    runs: Option<PathBuf>,
    live: Option<Live>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    start_with(addr, runs, live, None)
}

/// [`start`], with a [`Builder`] for the models of `runs` saved without a
/// model line (a struct of modules written in Rust): the page builds one,
/// loads the file's weights into it, and draws with it as with any other.
pub fn start_with(
    addr: SocketAddr,
    runs: Option<PathBuf>,
    live: Option<Live>,
    builder: Option<Builder>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let app = App {
        runs,
        live,
        builder,
    };
    let handle = std::thread::Builder::new()
        .name("backprop-serve".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                serve_connections(listener, router(app)).await;
            });
        })?;
    Ok((bound, handle))
}

/// How long a client may take to send a request's headers before its
/// connection is dropped (a client that trickles them in would otherwise
/// hold a connection open forever).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept connections and serve each on its own task, over HTTP/1.1 with
/// [`HEADER_TIMEOUT`].
async fn serve_connections(listener: tokio::net::TcpListener, app: Router) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, or the like: wait, then go on.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/page/{*name}", get(asset))
        .route("/api/runs", get(runs))
        .route("/api/runs/{name}/metrics.csv", get(run_metrics))
        .route("/api/live/metrics.csv", get(live_metrics))
        .route("/api/live/events", get(live_events))
        .route("/api/live/data", get(live_data))
        .route("/api/live/info", get(live_info))
        .route("/api/runs/{name}/info", get(run_info))
        .route("/api/models", get(models))
        .route("/api/trace", post(trace_drawing))
        .route("/api/trace_text", post(trace_text))
        .route("/api/playground", post(playground))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// A run's name as the page may ask for it: letters, digits, `-`, `_`, `.`,
/// not starting with a dot (so no `..`, no path, no hidden file).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The file `NAME{suffix}` of the served folder `dir`, if `name` is a
/// plain name ([`valid_name`]) and the file is a regular file that
/// resolves inside the folder: a link to a file elsewhere (`runs/x.metrics.csv
/// → ../secret`) is not served, nor a named pipe that would block a reader.
fn file_inside(dir: &std::path::Path, name: &str, suffix: &str) -> Option<PathBuf> {
    if !valid_name(name) {
        return None;
    }
    let root = dir.canonicalize().ok()?;
    let file = dir.join(format!("{name}{suffix}")).canonicalize().ok()?;
    (file.starts_with(&root) && file.is_file()).then_some(file)
}

/// The names `NAME` of the files `NAME{suffix}` in the served folder, sorted,
/// that it serves ([`file_inside`]) and that pass `keep`.
fn names_in(app: &App, suffix: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names = Vec::new();
    let Some(dir) = &app.runs else {
        return names;
    };
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = n.strip_suffix(suffix) {
                if keep(stem) && file_inside(dir, stem, suffix).is_some() {
                    names.push(stem.to_string());
                }
            }
        }
    }
    names.sort();
    names
}

async fn runs(State(app): State<App>) -> Json<serde_json::Value> {
    let names = names_in(&app, ".metrics.csv", |_| true);
    Json(serde_json::json!({"live": app.live.is_some(), "runs": names}))
}

fn csv(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
}

async fn run_metrics(State(app): State<App>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(dir) = &app.runs else {
        return (StatusCode::NOT_FOUND, "no runs folder is served").into_response();
    };
    if !valid_name(&name) {
        return (
            StatusCode::BAD_REQUEST,
            "a run name is letters, digits, - _ and .",
        )
            .into_response();
    }
    match file_inside(dir, &name, ".metrics.csv").map(std::fs::read_to_string) {
        Some(Ok(text)) => csv(text),
        _ => (StatusCode::NOT_FOUND, "no such run").into_response(),
    }
}

async fn live_metrics(State(app): State<App>) -> Response {
    match &app.live {
        Some(l) => csv(l.inner.lock().expect("not poisoned").csv.clone()),
        None => (StatusCode::NOT_FOUND, "no run in progress is served").into_response(),
    }
}

async fn live_data(State(app): State<App>) -> Response {
    let Some(live) = app.live.clone() else {
        return (StatusCode::NOT_FOUND, "no run in progress is served").into_response();
    };
    let v = live_data_json(&live.inner.lock().expect("not poisoned"));
    Json(v).into_response()
}

/// The live data with every key present (null when not set).
fn live_data_json(s: &LiveState) -> serde_json::Value {
    let mut v = s.data.clone();
    for key in ["classes", "confusion", "augmented"] {
        if v.get(key).is_none() {
            v[key] = serde_json::Value::Null;
        }
    }
    v
}

async fn live_info(State(app): State<App>) -> Response {
    let Some(live) = app.live.clone() else {
        return (StatusCode::NOT_FOUND, "no run in progress is served").into_response();
    };
    let s = live.inner.lock().expect("not poisoned");
    let mut v = live_info_json(&s);
    v["clock"] = live.clock_json(&s);
    Json(v).into_response()
}

/// The live run's info with every key present.
fn live_info_json(s: &LiveState) -> serde_json::Value {
    let mut v = empty_info();
    if let Some(o) = s.info.as_object() {
        for (k, x) in o {
            v[k] = x.clone();
        }
    }
    v["warnings"] = serde_json::json!(s.warnings);
    v["finished"] = s.done.into();
    v
}

/// What the page knows of a run besides its curves, every key present.
fn empty_info() -> serde_json::Value {
    serde_json::json!({
        "model": null, "settings": null, "config": null, "layers": {},
        "records": [], "warnings": [], "steps": null, "finished": null,
    })
}

/// `{layer: name}` for the page's legends.
fn layer_map(layers: &[(String, String)]) -> serde_json::Value {
    layers
        .iter()
        .map(|(l, n)| (l.clone(), serde_json::Value::from(n.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A saved run's info, from the headers of `NAME.safetensors` (its model
/// line) and `NAME.state.safetensors` (its settings, training
/// configuration, epochs, warnings and layers); what cannot be read stays
/// null or empty.
fn saved_info(dir: &std::path::Path, name: &str) -> serde_json::Value {
    use crate::run::{files::RUN_KEY, METRICS_KEY, SETTINGS_KEY};
    let mut v = empty_info();
    let meta = |suffix| file_inside(dir, name, suffix).and_then(|p| io::read_metadata(&p).ok());
    if let Some(m) = meta(".safetensors") {
        v["model"] = m.get(io::MODEL_KEY).cloned().into();
    }
    let Some(m) = meta(".state.safetensors") else {
        return v;
    };
    if let Some(st) = m
        .get(RUN_KEY)
        .and_then(|s| serde_json::from_str::<crate::train::RunState>(s).ok())
    {
        v["config"] = serde_json::to_value(&st.config).unwrap_or_default();
        v["records"] = serde_json::to_value(&st.records).unwrap_or_default();
        v["warnings"] = serde_json::json!(st.warnings);
        v["steps"] = st.steps.into();
        v["finished"] = st.finished.into();
    }
    if let Some(rec) = m
        .get(METRICS_KEY)
        .and_then(|s| serde_json::from_str::<crate::train::metrics::Recorder>(s).ok())
    {
        v["layers"] = layer_map(&rec.layer_names);
    }
    if let Some(s) = m.get(SETTINGS_KEY) {
        v["settings"] = serde_json::from_str(s).unwrap_or_default();
    }
    v
}

async fn run_info(State(app): State<App>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(dir) = app.runs.clone() else {
        return (StatusCode::NOT_FOUND, "no runs folder is served").into_response();
    };
    if !valid_name(&name) {
        return bad("a run name is letters, digits, - _ and .");
    }
    if file_inside(&dir, &name, ".metrics.csv").is_none() {
        return (StatusCode::NOT_FOUND, "no such run").into_response();
    }
    match tokio::task::spawn_blocking(move || saved_info(&dir, &name)).await {
        Ok(v) => Json(v).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "reading the run failed").into_response(),
    }
}

async fn live_events(State(app): State<App>) -> Response {
    let Some(live) = app.live.clone() else {
        return (StatusCode::NOT_FOUND, "no run in progress is served").into_response();
    };
    // (lines sent, warnings sent, data and info versions sent, finished)
    let stream = futures_util::stream::unfold(
        (live, 0usize, 0usize, (0u64, 0u64), false),
        |(live, n, w, (v, iv), ended)| async move {
            if ended {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (lines, warnings, data, info, clock, versions, done) = {
                let s = live.inner.lock().expect("not poisoned");
                let lines: Vec<String> = s.csv.lines().skip(n).map(str::to_string).collect();
                let data = (s.data_version != v).then(|| live_data_json(&s));
                let info = (s.info_version != iv).then(|| live_info_json(&s));
                (
                    lines,
                    s.warnings[w.min(s.warnings.len())..].to_vec(),
                    data,
                    info,
                    live.clock_json(&s),
                    (s.data_version, s.info_version),
                    s.done,
                )
            };
            let (n2, w2) = (n + lines.len(), w + warnings.len());
            let mut msg = serde_json::json!({"lines": lines, "warnings": warnings, "done": done, "clock": clock});
            if let Some(d) = data {
                msg["data"] = d;
            }
            if let Some(i) = info {
                msg["info"] = i;
            }
            let ev = Event::default().data(msg.to_string());
            Some((
                Ok::<_, std::convert::Infallible>(ev),
                (live, n2, w2, versions, done),
            ))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The largest request body (a drawing of up to [`MAX_SIDE`]² values as JSON).
const MAX_BODY: usize = 8 << 20;
/// The largest side of a drawing.
const MAX_SIDE: usize = 1024;
/// Tensors of more values than this are sent as figures only (no `data`).
const MAX_SENT: usize = 16384;
/// The name of the run in progress's model.
const LIVE: &str = "(live)";

async fn models(State(app): State<App>) -> Json<serde_json::Value> {
    let names = names_in(&app, ".safetensors", |stem| !stem.ends_with(".state"));
    let live = app.live.as_ref().is_some_and(|l| {
        let s = l.inner.lock().expect("not poisoned");
        s.model.is_some() || s.module.is_some()
    });
    Json(serde_json::json!({"live": live, "models": names}))
}

/// What the page sends to `/api/trace`.
#[derive(serde::Deserialize)]
struct Drawing {
    model: String,
    width: usize,
    height: usize,
    pixels: Vec<f32>,
    label: Option<usize>,
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, msg.into()).into_response()
}

async fn trace_drawing(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let d: Drawing = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            return bad(format!(
                "expected {{model, width, height, pixels, label}}: {e}"
            ))
        }
    };
    if d.width == 0 || d.height == 0 || d.width > MAX_SIDE || d.height > MAX_SIDE {
        return bad(format!("width and height are 1 to {MAX_SIDE}"));
    }
    if d.pixels.len() != d.width * d.height {
        return bad(format!(
            "{}×{} needs {} pixels, got {}",
            d.width,
            d.height,
            d.width * d.height,
            d.pixels.len()
        ));
    }
    // A live model written in Rust is traced as it is (no line to build it from).
    let module = match (&app.live, d.model == LIVE) {
        (Some(l), true) => {
            let s = l.inner.lock().expect("not poisoned");
            s.module.clone().map(|m| (m, s.metadata.clone()))
        }
        _ => None,
    };
    let answer = match module {
        Some((m, metadata)) => {
            tokio::task::spawn_blocking(move || {
                let w = Weights {
                    tensors: Vec::new(),
                    metadata,
                };
                let info = crate::data::DataInfo::of_model(&w, std::path::Path::new(LIVE))
                    .map_err(|e| e.to_string())?;
                trace_model(LIVE, m.as_ref(), &info, &d)
            })
            .await
        }
        None => {
            let weights = match weights_of(&app, &d.model).await {
                Ok(w) => w,
                Err(r) => return r,
            };
            let (name, builder) = (d.model.clone(), app.builder.clone());
            tokio::task::spawn_blocking(move || run_trace(&name, &weights, &d, builder)).await
        }
    };
    match answer {
        Ok(Ok(json)) => Json(json).into_response(),
        Ok(Err(msg)) => (StatusCode::UNPROCESSABLE_ENTITY, msg).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the trace failed").into_response(),
    }
}

/// The weights of the model the page names: `(live)` (the run's latest
/// copy) or `NAME.safetensors` of the served folder; else the answer to
/// send.
async fn weights_of(app: &App, name: &str) -> Result<Arc<Weights>, Response> {
    let missing = |msg: &str| (StatusCode::NOT_FOUND, msg.to_string()).into_response();
    if name == LIVE {
        let Some(live) = &app.live else {
            return Err(missing("no run in progress is served"));
        };
        let copy = live.inner.lock().expect("not poisoned").model.clone();
        return copy.ok_or_else(|| missing("the run has no model to show yet"));
    }
    let Some(dir) = &app.runs else {
        return Err(missing("no runs folder is served"));
    };
    if !valid_name(name) {
        return Err(bad("a model name is letters, digits, - _ and ."));
    }
    let Some(path) = file_inside(dir, name, ".safetensors") else {
        return Err(missing("no such model"));
    };
    match tokio::task::spawn_blocking(move || io::load(&path)).await {
        Ok(Ok(w)) => Ok(Arc::new(w)),
        _ => Err(missing("no such model")),
    }
}

/// What the page sends to `/api/playground`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayQuery {
    problem: String,
    hidden: Option<Vec<usize>>,
    activation: String,
    init: String,
    lr: f32,
    momentum: f32,
    seed: u64,
    steps: usize,
    state: Option<PlayState>,
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct PlayState {
    step: usize,
    params: std::collections::BTreeMap<String, Vec<f32>>,
    velocity: std::collections::BTreeMap<String, Vec<f32>>,
}

async fn playground(body: axum::body::Bytes) -> Response {
    let q: PlayQuery = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(e) => {
            return bad(format!(
            "expected {{problem, hidden, activation, init, lr, momentum, seed, steps, state}}: {e}"
        ))
        }
    };
    match tokio::task::spawn_blocking(move || play(q)).await {
        Ok(Ok(json)) => Json(json).into_response(),
        Ok(Err(msg)) => (StatusCode::UNPROCESSABLE_ENTITY, msg).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "training failed").into_response(),
    }
}

/// The playground's steps, as JSON; the state sent back is taken in the
/// network's own shapes, and refused unless every tensor is there, of the
/// right size and finite.
fn play(q: PlayQuery) -> Result<serde_json::Value, String> {
    use crate::train::playground::{self as pg, Problem, Setup, State};
    let problem: Problem = q.problem.parse().map_err(|e: crate::Error| e.to_string())?;
    let setup = Setup {
        problem,
        hidden: q.hidden.unwrap_or_else(|| problem.default_hidden()),
        activation: q.activation,
        init: q.init.parse().map_err(|e: crate::Error| e.to_string())?,
        lr: q.lr,
        momentum: q.momentum,
        seed: q.seed,
    };
    setup.check().map_err(|e| e.to_string())?;
    let shapes: Vec<(String, Vec<usize>)> = setup
        .network()
        .state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect();
    let state = match q.state {
        None => None,
        Some(s) => {
            let take = |from: &std::collections::BTreeMap<String, Vec<f32>>,
                        name: &str,
                        shape: &[usize]|
             -> Result<Tensor, String> {
                let v = from
                    .get(name)
                    .ok_or_else(|| format!("the state has no `{name}`"))?;
                let n: usize = shape.iter().product();
                if v.len() != n || v.iter().any(|x| !x.is_finite()) {
                    return Err(format!("`{name}` must be {n} finite numbers"));
                }
                Ok(Tensor::from_vec(shape.to_vec(), v.clone()))
            };
            let mut st = State {
                step: s.step,
                ..Default::default()
            };
            for (name, shape) in &shapes {
                st.params
                    .push((name.clone(), take(&s.params, name, shape)?));
                if !s.velocity.is_empty() {
                    let m = format!("{name}.momentum_buffer");
                    st.velocity.push((m.clone(), take(&s.velocity, &m, shape)?));
                    let k = format!("{name}.step");
                    st.velocity.push((k.clone(), take(&s.velocity, &k, &[])?));
                }
            }
            Some(st)
        }
    };
    let r = pg::train(&setup, state.as_ref(), q.steps).map_err(|e| e.to_string())?;
    let flat = |ts: &[(String, Tensor)]| -> std::collections::BTreeMap<String, Vec<f32>> {
        ts.iter()
            .map(|(n, t)| (n.clone(), t.data().to_vec()))
            .collect()
    };
    let (x, y) = problem.cases();
    Ok(serde_json::json!({
        "state": PlayState {
            step: r.state.step,
            params: flat(&r.state.params),
            velocity: flat(&r.state.velocity),
        },
        "shapes": shapes.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "losses": r.losses,
        "loss": r.loss,
        "grads": flat(&r.grads),
        "inputs": x.data().chunks(x.shape()[1]).collect::<Vec<_>>(),
        "targets": y.data().chunks(y.shape()[1]).collect::<Vec<_>>(),
        "outputs": r.outputs.data().chunks(y.shape()[1]).collect::<Vec<_>>(),
        "right": r.right,
        "units": r.units.iter().map(|u| u.data().chunks(u.shape()[1]).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "grid": r.grid,
        "grid_side": pg::GRID,
        "extent": pg::EXTENT,
    }))
}

/// The longest text `/api/trace_text` takes, in characters.
pub const MAX_TEXT: usize = 256;

#[derive(serde::Deserialize)]
struct TextQuery {
    model: String,
    text: String,
}

async fn trace_text(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let q: TextQuery = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(e) => return bad(format!("expected {{model, text}}: {e}")),
    };
    let n = q.text.chars().count();
    if !(2..=MAX_TEXT).contains(&n) {
        return bad(format!(
            "the text has {n} characters: give 2 to {MAX_TEXT} (each predicts the next)"
        ));
    }
    let weights = match weights_of(&app, &q.model).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let answer = tokio::task::spawn_blocking(move || run_text_trace(&q, &weights)).await;
    match answer {
        Ok(Ok(json)) => Json(json).into_response(),
        Ok(Err(msg)) => (StatusCode::UNPROCESSABLE_ENTITY, msg).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the trace failed").into_response(),
    }
}

/// Build the language model, encode the text, trace it, as JSON.
fn run_text_trace(q: &TextQuery, w: &Weights) -> Result<serde_json::Value, String> {
    use crate::train::lm::SavedLm;
    let origin = std::path::Path::new(&q.model);
    let lm = SavedLm::from_weights(w, origin).map_err(|e| e.to_string())?;
    let ids = crate::data::text::encode(&lm.vocab, &q.text).map_err(|e| e.to_string())?;
    let ids = &ids[ids.len().saturating_sub(lm.context + 1)..];
    let (x, y) = (&ids[..ids.len() - 1], &ids[1..]);
    let st =
        crate::inspect::sequence::trace_sequence(&lm.model, x, y).map_err(|e| e.to_string())?;
    let mut json = trace_json(&q.model, &lm.model.describe(), &[], &st.trace);
    let ch = |i: usize| lm.vocab.get(i).map(|c| c.to_string()).unwrap_or_default();
    let v = st.probabilities.shape()[1];
    let next: Vec<Vec<(String, f32)>> = st
        .probabilities
        .data()
        .chunks(v)
        .map(|row| {
            let mut order: Vec<usize> = (0..v).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            order.iter().take(5).map(|&i| (ch(i), row[i])).collect()
        })
        .collect();
    let layers = &st.trace.tape.layers;
    let attention: Vec<serde_json::Value> = st
        .attention
        .iter()
        .map(|a| {
            let s = a.weights.shape();
            // 4 decimals: the heat map needs no more, and the answer stays small
            let weights: Vec<f64> = a
                .weights
                .data()
                .iter()
                .map(|&p| (p as f64 * 1e4).round() / 1e4)
                .collect();
            serde_json::json!({
                "node": a.node,
                "block": a
                    .layer
                    .and_then(|l| layers.get(l))
                    .map(|(n, _)| crate::inspect::blocks::block_of_module(n).to_string()),
                "heads": s[0],
                "t": s[1],
                "weights": weights,
            })
        })
        .collect();
    let o = json.as_object_mut().expect("an object");
    o.insert(
        "text".into(),
        serde_json::json!(x.iter().map(|&i| ch(i)).collect::<Vec<_>>()),
    );
    o.insert(
        "targets".into(),
        serde_json::json!(y.iter().map(|&i| ch(i)).collect::<Vec<_>>()),
    );
    o.insert("next".into(), serde_json::json!(next));
    o.insert("attention".into(), serde_json::json!(attention));
    Ok(json)
}

/// Build the model (from its line, or else by the server's [`Builder`]),
/// make the drawing MNIST-like, trace it, as JSON.
fn run_trace(
    name: &str,
    w: &Weights,
    d: &Drawing,
    builder: Option<Builder>,
) -> Result<serde_json::Value, String> {
    let origin = std::path::Path::new(name);
    let info = crate::data::DataInfo::of_model(w, origin).map_err(|e| e.to_string())?;
    if let (false, Some(build)) = (w.metadata.contains_key(io::MODEL_KEY), builder) {
        let mut model = build();
        model
            .load_state_dict(&w.tensors, origin)
            .map_err(|e| e.to_string())?;
        return trace_model(name, model.as_ref(), &info, d);
    }
    let model = io::model_from_weights(w, origin, None).map_err(|e| e.to_string())?;
    trace_model(name, &model, &info, d)
}

/// Make the drawing MNIST-like (normalized as the model's images were),
/// run it through `model` and back, as JSON.
fn trace_model(
    name: &str,
    model: &dyn Module,
    info: &crate::data::DataInfo,
    d: &Drawing,
) -> Result<serde_json::Value, String> {
    let origin = std::path::Path::new(name);
    let shape = [
        vec![1, MNIST_SIDE, MNIST_SIDE],
        vec![MNIST_SIDE, MNIST_SIDE],
        vec![MNIST_SIDE * MNIST_SIDE],
    ]
    .into_iter()
    .find(|s| model.output_shape(s).is_ok())
    .ok_or_else(|| {
        format!(
            "{name} ({}) does not take 28×28 images, so it cannot read a drawing",
            model.describe()
        )
    })?;
    let Some(image) = mnist_like(&d.pixels, d.width, d.height) else {
        return Err("the drawing is empty".into());
    };
    let mut full = vec![1];
    full.extend_from_slice(&shape);
    let mut x = Tensor::from_vec(full, image.clone());
    // A model trained on normalized images reads the drawing normalized too.
    if let (Some(n), 4) = (&info.normalize, x.shape().len()) {
        n.apply(&mut x, origin).map_err(|e| e.to_string())?;
    }
    let t = trace(model, &x, d.label).map_err(|e| e.to_string())?;
    Ok(trace_json(name, &model.describe(), &image, &t))
}

/// A tensor for the page: its figures, and its values unless large.
fn tensor_json(t: &Tensor, limit: usize) -> serde_json::Value {
    let v = t.data();
    let norm = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let (lo, hi) = v
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let mut o = serde_json::json!({"shape": t.shape(), "norm": norm, "min": lo, "max": hi});
    if v.len() <= limit {
        o["data"] = serde_json::json!(v);
    }
    o
}

/// The rows of a weight gradient `[units, side²]` (a first layer reading
/// images of `side`² pixels, `side` ≥ 8) with the largest norms, at most 16:
/// `{"index": [unit, …], "data": [[value, …], …]}`, for the page to draw as
/// images.
fn image_rows(g: &Tensor) -> Option<serde_json::Value> {
    let [units, m] = g.shape() else {
        return None;
    };
    let side = (*m as f64).sqrt().round() as usize;
    if side < 8 || side * side != *m {
        return None;
    }
    let rows: Vec<&[f32]> = g.data().chunks(*m).collect();
    let norm = |r: &[f32]| r.iter().map(|x| x * x).sum::<f32>();
    let mut order: Vec<usize> = (0..*units).collect();
    order.sort_by(|&a, &b| norm(rows[b]).total_cmp(&norm(rows[a])));
    order.truncate(16);
    let data: Vec<&[f32]> = order.iter().map(|&i| rows[i]).collect();
    Some(serde_json::json!({"index": order, "data": data}))
}

fn trace_json(name: &str, spec: &str, image: &[f32], t: &Trace) -> serde_json::Value {
    let class = (0..t.probabilities.len())
        .max_by(|&a, &b| t.probabilities[a].total_cmp(&t.probabilities[b]))
        .unwrap_or(0);
    let nodes: Vec<serde_json::Value> = t
        .tape
        .nodes
        .iter()
        .map(|n| {
            let (kind, param) = match &n.kind {
                NodeKind::Input => ("input", None),
                NodeKind::Target => ("target", None),
                NodeKind::Param(p) => ("param", Some(p.clone())),
                NodeKind::Op => ("op", None),
            };
            // Weights are sent only when small (a toy MLP, per unit).
            let limit = if param.is_some() { 1024 } else { MAX_SENT };
            let rows = param
                .as_ref()
                .and(t.grads[n.id].as_ref())
                .and_then(image_rows);
            serde_json::json!({
                "rows": rows,
                "id": n.id,
                "op": n.op,
                "kind": kind,
                "param": param,
                "shape": n.shape,
                "parents": n.parents,
                "layer": n.layer,
                "value": tensor_json(&t.values[n.id], limit),
                "grad": t.grads[n.id].as_ref().map(|g| tensor_json(g, limit)),
            })
        })
        .collect();
    let layers: Vec<serde_json::Value> = t
        .tape
        .layers
        .iter()
        .zip(&t.tape.layer_outputs)
        .map(|((n, d), o)| serde_json::json!({"name": n, "describe": d, "node": o}))
        .collect();
    serde_json::json!({
        "model": name,
        "spec": spec,
        "image": image,
        "probabilities": t.probabilities,
        "class": class,
        "label": t.label,
        "loss": t.loss,
        "layers": layers,
        "nodes": nodes,
        "loss_node": t.tape.loss_node,
    })
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn only_plain_names_reach_the_file_system() {
        for ok in ["x", "lenet-1", "run_2.b"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "/etc/passwd",
            "a/b",
            ".hidden",
            "a..b",
            "x%2F",
            "a\\b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
