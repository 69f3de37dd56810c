//! `omnihub-bench`: drives a running Omnihub server over HTTP with many concurrent clients,
//! bounded in number and in time, and prints the figures as one JSON object on stdout.
//!
//! Exit status: 0 when every request went as it should, 2 when the figures were measured but
//! a promise broke (errors, overselling, a unit left unsold while a buyer was refused), 1 when
//! the run could not be made at all.

mod api;
mod availability;
mod baseline;
mod checkout;
mod contention;
mod crash;
mod http;
mod load;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::api::{Api, Error, Result};
use crate::http::Server;
use crate::load::Plan;

#[derive(Debug, Parser)]
#[command(
    name = "omnihub-bench",
    version,
    about = "Load a running Omnihub server and print JSON figures."
)]
struct Cli {
    /// The running server (this machine only).
    #[arg(long, env = "OMNIHUB_BENCH_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A secret key with catalog:write and inventory:write (the owner key will do).
    #[arg(long, env = "OMNIHUB_BENCH_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Give up on a single request after this many seconds (it counts as an error).
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// The stampede: buyers released at once want one unit each of 100 units over three
    /// locations, from five channels.
    Contention {
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=20_000))]
        buyers: u64,
        /// Do not open the buyers' connections before the start: measure the handshakes too.
        #[arg(long)]
        cold: bool,
    },
    /// Buyers each run cart → line → fulfilment → checkout again and again for a while.
    Checkout {
        /// Concurrent buyers, each with one keep-alive connection.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        buyers: u64,
        /// How long to measure.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        seconds: u64,
        /// SKUs the buyers spread over; with 1, every checkout takes the same stock level.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
        skus: u64,
    },
    /// Durability: checkout load against a server of its own, `kill -9` in the middle, restart
    /// on the same database, then every acknowledged order must be there and the ledger add up.
    /// (--url is not used: the scenario starts its server on a free port.)
    Crash {
        /// The `omnihub` binary [default: the one beside omnihub-bench].
        #[arg(long)]
        server: Option<PathBuf>,
        /// Run the server on this PostgreSQL database instead of SQLite.
        #[arg(long)]
        database_url: Option<String>,
        /// SQLite's folder [default: a fresh temporary one, removed afterwards].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        buyers: u64,
        /// Seconds of load before the kill.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        kill_after: u64,
    },
    /// Storefront reads: `GET /availability` and `GET /products/{id}?channel_id=`, alternately.
    AvailabilityRead {
        #[command(flatten)]
        load: LoadArgs,
        /// Measure the trivial-handler ceiling in the same run and report the ratio.
        #[arg(long)]
        with_baseline: bool,
        /// Read this channel instead of setting one up (with --product-id and --skus).
        #[arg(long, requires_all = ["product_id", "skus"])]
        channel_id: Option<String>,
        /// A product published in --channel-id.
        #[arg(long, requires = "channel_id")]
        product_id: Option<String>,
        /// SKUs to ask availability for, comma-separated.
        #[arg(long, requires = "channel_id", value_delimiter = ',')]
        skus: Vec<String>,
    },
    /// The machine's ceiling: a trivial in-process axum handler, loaded like availability-read.
    Baseline {
        #[command(flatten)]
        load: LoadArgs,
    },
}

#[derive(Debug, Clone, Copy, Args)]
struct LoadArgs {
    /// How long to measure.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Clients, each with one keep-alive connection and one request at a time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
    /// Unmeasured load first, to open connections and fill the server's caches and pools.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup_seconds: u64,
}

impl LoadArgs {
    /// The unmeasured warm-up and the measured run.
    fn plans(self, request_timeout: Duration) -> (Plan, Plan) {
        let plan = |seconds| Plan {
            concurrency: self.concurrency as usize,
            duration: Duration::from_secs(seconds),
            request_timeout,
        };
        (plan(self.warmup_seconds), plan(self.seconds))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("omnihub-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenario and prints its report; answers whether every promise held.
async fn run(cli: Cli) -> Result<bool> {
    let timeout = Duration::from_secs(cli.request_timeout);
    let server = Server::local(&cli.url)?;
    let api = || {
        let key = cli
            .key
            .as_deref()
            .ok_or_else(|| Error("this scenario needs --key (or OMNIHUB_BENCH_KEY)".into()))?;
        Api::new(server.clone(), key, timeout)
    };
    match cli.scenario {
        Scenario::Contention { buyers, cold } => {
            let options = contention::Options {
                buyers: buyers as usize,
                connect_first: !cold,
            };
            let report = contention::run(&api()?, options).await?;
            print(&report)?;
            Ok(report.ok())
        }
        Scenario::AvailabilityRead {
            load,
            with_baseline,
            channel_id,
            product_id,
            skus,
        } => {
            let api = api()?;
            let fixture = match (channel_id, product_id) {
                (Some(channel_id), Some(product_id)) => availability::Fixture {
                    channel_id,
                    product_id,
                    skus,
                },
                _ => availability::set_up(&api).await?,
            };
            availability_read(&api, &fixture, load.plans(timeout), with_baseline).await
        }
        Scenario::Checkout { buyers, seconds, skus } => {
            let options = checkout::Options {
                buyers: buyers as usize,
                seconds,
                skus: skus as usize,
            };
            let report = checkout::run(&api()?, options).await?;
            print(&report)?;
            Ok(report.ok())
        }
        Scenario::Crash {
            server,
            database_url,
            data_dir,
            buyers,
            kill_after,
        } => {
            let fresh = data_dir.is_none();
            let options = crash::Options {
                server: server.unwrap_or_else(crash::server_beside_bench),
                database_url,
                data_dir: data_dir.unwrap_or_else(crash::fresh_data_dir),
                buyers: buyers as usize,
                kill_after: Duration::from_secs(kill_after),
            };
            let report = crash::run(options.clone(), timeout).await;
            if fresh {
                let _ = std::fs::remove_dir_all(&options.data_dir);
            }
            let report = report?;
            print(&report)?;
            Ok(report.ok())
        }
        Scenario::Baseline { load } => {
            let (warm_up, plan) = load.plans(timeout);
            let report = baseline::run(warm_up, plan).await?;
            print(&report)?;
            Ok(report.figures.errors == 0)
        }
    }
}

/// Both figures of one run and how far apart they are.
#[derive(Serialize)]
struct WithBaseline {
    #[serde(flatten)]
    omnihub: availability::Report,
    baseline: baseline::Report,
    /// Baseline requests per second over Omnihub's: 1 would be the ceiling itself.
    ratio: f64,
}

async fn availability_read(
    api: &Api,
    fixture: &availability::Fixture,
    (warm_up, plan): (Plan, Plan),
    with_baseline: bool,
) -> Result<bool> {
    let targets = availability::targets(api, fixture).await?;
    let report = availability::run(api, &targets, warm_up, plan).await;
    let ok = report.figures.errors == 0;
    if !with_baseline {
        print(&report)?;
        return Ok(ok);
    }
    let baseline = baseline::run(warm_up, plan).await?;
    let ratio = load::round(baseline.figures.rps / report.figures.rps.max(1.0), 2);
    let ok = ok && baseline.figures.errors == 0;
    print(&WithBaseline {
        omnihub: report,
        baseline,
        ratio,
    })?;
    Ok(ok)
}

fn print(report: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string(report).map_err(|e| Error(format!("report: {e}")))?;
    println!("{text}");
    Ok(())
}
