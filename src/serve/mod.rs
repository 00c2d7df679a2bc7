//! `backprop serve` and `backprop train --serve`: a local web page that
//! shows runs (feature `serve`).
//!
//! The page (`index.html`, embedded in the binary: no CDN, works offline)
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
//! | `GET /api/runs` | `{"live": bool, "runs": [NAME, …]}` |
//! | `GET /api/runs/NAME/metrics.csv` | that run's metrics |
//! | `GET /api/live/metrics.csv` | the live run's metrics so far |
//! | `GET /api/live/events` | server-sent events `{"lines": [...], "warnings": [...], "done": bool}` |

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PAGE: &str = include_str!("index.html");

/// The run in progress, as the page sees it: its metrics so far, its
/// warnings, and whether it ended. The training observer updates it; the
/// server reads it.
#[derive(Clone, Default)]
pub struct Live {
    inner: Arc<Mutex<LiveState>>,
}

#[derive(Default)]
struct LiveState {
    csv: String,
    warnings: Vec<String>,
    done: bool,
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

    /// A warning the run gave.
    pub fn warn(&self, message: &str) {
        self.inner
            .lock()
            .expect("not poisoned")
            .warnings
            .push(message.to_string());
    }

    /// The run ended.
    pub fn finish(&self) {
        self.inner.lock().expect("not poisoned").done = true;
    }
}

#[derive(Clone)]
struct App {
    runs: Option<PathBuf>,
    live: Option<Live>,
}

/// Serve the page on `addr` in a background thread: finished runs from the
/// folder `runs`, the run in progress from `live`. Returns the address
/// bound (port 0 picks a free one).
pub fn start(
    addr: SocketAddr,
    runs: Option<PathBuf>,
    live: Option<Live>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let app = App { runs, live };
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
                let _ = axum::serve(listener, router(app)).await;
            });
        })?;
    Ok((bound, handle))
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/runs", get(runs))
        .route("/api/runs/{name}/metrics.csv", get(run_metrics))
        .route("/api/live/metrics.csv", get(live_metrics))
        .route("/api/live/events", get(live_events))
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

async fn runs(State(app): State<App>) -> Json<serde_json::Value> {
    let mut names = Vec::new();
    if let Some(dir) = &app.runs {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(stem) = n.strip_suffix(".metrics.csv") {
                    if valid_name(stem) {
                        names.push(stem.to_string());
                    }
                }
            }
        }
    }
    names.sort();
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
    match std::fs::read_to_string(dir.join(format!("{name}.metrics.csv"))) {
        Ok(text) => csv(text),
        Err(_) => (StatusCode::NOT_FOUND, "no such run").into_response(),
    }
}

async fn live_metrics(State(app): State<App>) -> Response {
    match &app.live {
        Some(l) => csv(l.inner.lock().expect("not poisoned").csv.clone()),
        None => (StatusCode::NOT_FOUND, "no run in progress is served").into_response(),
    }
}

async fn live_events(State(app): State<App>) -> Response {
    let Some(live) = app.live.clone() else {
        return (StatusCode::NOT_FOUND, "no run in progress is served").into_response();
    };
    // (lines sent, warnings sent, finished)
    let stream = futures_util::stream::unfold(
        (live, 0usize, 0usize, false),
        |(live, n, w, ended)| async move {
            if ended {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (lines, warnings, done) = {
                let s = live.inner.lock().expect("not poisoned");
                let lines: Vec<String> = s.csv.lines().skip(n).map(str::to_string).collect();
                (
                    lines,
                    s.warnings[w.min(s.warnings.len())..].to_vec(),
                    s.done,
                )
            };
            let (n2, w2) = (n + lines.len(), w + warnings.len());
            let data = serde_json::json!({"lines": lines, "warnings": warnings, "done": done});
            let ev = Event::default().data(data.to_string());
            Some((Ok::<_, std::convert::Infallible>(ev), (live, n2, w2, done)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
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
