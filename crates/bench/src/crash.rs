//! `crash`: durability under `kill -9`. Starts a server of its own, runs checkout load
//! against it, kills the process without warning in the middle, starts it again on the same
//! database and checks that every order the server acknowledged (answered 201) is there and
//! that the inventory still adds up: the SKU's reserved units equal the orders that exist,
//! and `omnihub check` finds every level equal to its ledger and reservations.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use serde::Serialize;

use crate::api::{self, Api, Error, LevelFigures, Result};
use crate::checkout::{self, Fixture};
use crate::http::{self, Server};
use crate::load::{ErrorKinds, round};

/// The owner key the bench's own server is started with.
const OWNER_KEY: &str = "sk_bench_crash_owner_0000000001";

#[derive(Debug, Clone)]
pub struct Options {
    /// The `omnihub` binary to start.
    pub server: PathBuf,
    /// `--database-url` for the server, or `None` for SQLite in `data_dir`.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub buyers: usize,
    /// How long the load runs before the kill.
    pub kill_after: Duration,
}

#[derive(Debug, Serialize)]
pub struct Report {
    scenario: &'static str,
    database: &'static str,
    buyers: usize,
    killed_after_s: f64,
    /// Orders answered with 201 before the kill.
    acknowledged: usize,
    /// Acknowledged orders not found after the restart: must be 0.
    lost: usize,
    /// Orders of the bench channel that exist after the restart (acknowledged or not: a
    /// checkout may commit just before the kill and never be answered).
    orders_after_restart: usize,
    /// The bench SKU's levels after the restart: reserved must equal the orders.
    levels: Vec<LevelFigures>,
    /// `omnihub check`: every level equals its ledger and its reservations.
    ledger_consistent: bool,
    restart_ms: f64,
    /// Requests cut off by the kill (expected: they were never acknowledged).
    #[serde(skip_serializing_if = "ErrorKinds::is_empty")]
    cut_off: ErrorKinds,
}

impl Report {
    pub fn ok(&self) -> bool {
        let reserved: i64 = self.levels.iter().map(|level| level.reserved).sum();
        self.acknowledged > 0
            && self.lost == 0
            && self.orders_after_restart >= self.acknowledged
            && reserved == self.orders_after_restart as i64
            && self.ledger_consistent
    }
}

/// A server process of the bench's own, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Options {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.server);
        command
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("OMNIHUB_LOG", "warn")
            // A throwaway server: a fixed sealing key keeps PostgreSQL from warning about none.
            .env("OMNIHUB_SECRET_KEY", "0".repeat(64))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        command
    }

    /// Starts the server and waits until it is ready.
    async fn start(&self, api: &Api) -> Result<Process> {
        let address = api.server.addr;
        let child = self
            .command(&["serve", "--listen", &address.to_string()])
            .env("OMNIHUB_BOOTSTRAP_KEY", OWNER_KEY)
            .spawn()
            .map_err(|e| Error(format!("starting {}: {e}", self.server.display())))?;
        let process = Process(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if ready(api).await {
                return Ok(process);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error(format!("the server at {address} did not become ready in 60 s")))
    }

    /// `omnihub check` on the same database.
    fn ledger_consistent(&self) -> Result<bool> {
        let status = self
            .command(&["check"])
            .status()
            .map_err(|e| Error(format!("omnihub check: {e}")))?;
        Ok(status.success())
    }
}

async fn ready(api: &Api) -> bool {
    let Ok(mut connection) = http::connect(&api.server).await else {
        return false;
    };
    let Ok(path) = http::path("/readyz") else {
        return false;
    };
    match api.server.request(Method::GET, &path, &api.auth, None) {
        Ok(request) => connection
            .send(request, Duration::from_secs(2))
            .await
            .is_ok_and(|answer| answer.status == 200),
        Err(_) => false,
    }
}

/// A port nobody listens on right now.
fn free_address() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Error(format!("no free port: {e}")))?;
    listener.local_addr().map_err(|e| Error(format!("no free port: {e}")))
}

pub async fn run(options: Options, timeout: Duration) -> Result<Report> {
    let address = free_address()?;
    let api = Api::new(Server::new(address)?, OWNER_KEY, timeout)?;
    let server = options.start(&api).await?;
    let fixture = Arc::new(checkout::set_up(&api, 1).await?);
    let running = Arc::new(AtomicBool::new(true));
    let load = {
        let (api, fixture, running) = (api.clone(), fixture.clone(), running.clone());
        tokio::spawn(async move { checkout::buyers(&api, &fixture, options.buyers, &running).await })
    };
    tokio::time::sleep(options.kill_after).await;
    drop(server); // SIGKILL, then reaped
    running.store(false, Ordering::Relaxed);
    let outcome = load.await.map_err(|_| Error("the buyers' task panicked".into()))?;

    let restarted = Instant::now();
    let _server = options.start(&api).await?;
    let restart_ms = restarted.elapsed().as_secs_f64() * 1000.0;
    Ok(Report {
        scenario: "crash",
        database: if options.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        buyers: options.buyers,
        killed_after_s: options.kill_after.as_secs_f64(),
        acknowledged: outcome.orders.len(),
        lost: lost(&api, &outcome.orders).await?,
        orders_after_restart: orders_of(&api, &fixture).await?,
        levels: api::levels(&api, &fixture.skus[0]).await?,
        ledger_consistent: options.ledger_consistent()?,
        restart_ms: round(restart_ms, 1),
        cut_off: outcome.errors,
    })
}

/// How many of `orders` the server no longer knows, asked on a few connections at once.
async fn lost(api: &Api, orders: &[String]) -> Result<usize> {
    let askers: Vec<_> = orders
        .chunks(orders.len().div_ceil(8).max(1))
        .map(|ids| {
            let (api, ids) = (api.clone(), ids.to_vec());
            tokio::spawn(async move {
                let mut lost = 0;
                for id in ids {
                    let (status, _) = api.send(Method::GET, &format!("/orders/{id}"), None).await?;
                    lost += usize::from(status != 200);
                }
                Ok::<_, Error>(lost)
            })
        })
        .collect();
    let mut lost = 0;
    for asker in askers {
        lost += asker.await.map_err(|_| Error("an order lookup panicked".into()))??;
    }
    Ok(lost)
}

/// How many orders the bench channel has, counted page by page.
async fn orders_of(api: &Api, fixture: &Fixture) -> Result<usize> {
    let (mut count, mut cursor) = (0, String::new());
    loop {
        let page = api
            .expect(
                Method::GET,
                &format!("/orders?channel_id={}&limit=500{cursor}", fixture.channel),
                None,
                200,
            )
            .await?;
        count += page["data"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return Ok(count),
        }
    }
}

/// A fresh folder for the embedded database, under the system's temporary folder.
pub fn fresh_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("omnihub-crash-{}", api::unique_suffix()))
}

/// The `omnihub` binary beside this one (both are built into the same target folder).
pub fn server_beside_bench() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("omnihub")))
        .unwrap_or_else(|| Path::new("omnihub").to_path_buf())
}
