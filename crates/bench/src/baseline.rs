//! `baseline`: the ceiling of this machine. A trivial axum server answering a tiny JSON is
//! loaded exactly like `availability-read`; what Omnihub serves is judged against it.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::Json;
use axum::Router;
use hyper::header::HeaderValue;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::api::{Error, Result};
use crate::http::{self, Server};
use crate::load::{self, Figures, Plan, Target};

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub concurrency: usize,
    pub seconds: f64,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The trivial server, running until dropped.
struct TrivialServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for TrivialServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Serialize)]
struct Tiny {
    ok: bool,
}

async fn answer() -> Json<Tiny> {
    Json(Tiny { ok: true })
}

/// Starts the server on `127.0.0.1:0` in its own thread with its own multi-threaded runtime, so
/// that it runs beside the load clients as a separate server process would, not on their
/// worker threads.
fn start() -> Result<TrivialServer> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("baseline-server".into())
        .spawn(move || serve(ready_tx, stopped))
        .map_err(|e| Error(format!("cannot start the baseline server: {e}")))?;
    let addr = ready_rx
        .recv()
        .map_err(|_| Error("the baseline server stopped before it listened".into()))??;
    Ok(TrivialServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn serve(ready: std::sync::mpsc::Sender<Result<SocketAddr>>, stopped: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(Error(format!("baseline runtime: {e}"))));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => {
                let _ = ready.send(Err(Error(format!("baseline bind: {e}"))));
                return;
            }
        };
        let _ = ready.send(listener.local_addr().map_err(|e| Error(e.to_string())));
        // Every path gets the same tiny answer, so the clients can ask the same paths as
        // they ask Omnihub.
        let app = Router::new().fallback(answer);
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
}

/// The same two request shapes as `availability-read`, against the trivial server.
pub fn targets() -> Result<Vec<Target>> {
    Ok(vec![
        Target {
            name: "availability",
            path: http::path("/api/v1/availability?channel_id=chn_bench&skus=BENCH-A,BENCH-B")?,
        },
        Target {
            name: "product",
            path: http::path("/api/v1/products/prd_bench?channel_id=chn_bench")?,
        },
    ])
}

/// Starts the trivial server, loads it like `availability-read` and stops it.
pub async fn run(warm_up: Plan, plan: Plan) -> Result<Report> {
    let server = start()?;
    let endpoint = Server::new(server.addr)?;
    let targets = targets()?;
    // The same header as the real requests, so that both carry the same bytes.
    let auth = HeaderValue::from_static("Bearer sk_baseline_not_checked_0001");
    load::run(&endpoint, &auth, &targets, warm_up).await;
    let outcome = load::run(&endpoint, &auth, &targets, plan).await;
    drop(server);
    Ok(Report {
        scenario: "baseline",
        concurrency: plan.concurrency,
        seconds: load::round(outcome.elapsed.as_secs_f64(), 2),
        figures: outcome.figures(),
    })
}
