//! Fixed-concurrency load with a deadline: `concurrency` clients, each on its own keep-alive
//! connection, send one request after another until the time is up. Closed-loop on purpose:
//! the figure is what the server sustains, and the client can never pile up more requests
//! than it has clients.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use serde::Serialize;

use crate::http::{self, Connection, Server};

/// Latencies in microseconds with fixed memory whatever the run's length: exact below
/// 1,024 µs, then 512 buckets per power of two (under 0.2 % error).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const EXACT_BELOW: u64 = 1024;
const SUB_BITS: u32 = 9;

fn bucket_of(micros: u64) -> usize {
    let bits = 64 - micros.leading_zeros();
    let shift = bits.saturating_sub(SUB_BITS + 1);
    // For values of 1,024 µs and more, `micros >> shift` lies in 512..1024: the bucket's place
    // within its power of two; `shift` says which power.
    (shift as usize) * (1 << SUB_BITS) + (micros >> shift) as usize
}

/// The smallest latency that falls into `bucket`.
fn lowest_in(bucket: usize) -> u64 {
    if (bucket as u64) < EXACT_BELOW {
        return bucket as u64;
    }
    let shift = bucket / (1 << SUB_BITS) - 1;
    let mantissa = bucket - shift * (1 << SUB_BITS);
    (mantissa as u64) << shift
}

impl Histogram {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = bucket_of(micros);
        if bucket >= self.counts.len() {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency that `q` (0..=1) of the recorded ones do not exceed, in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return to_ms(lowest_in(bucket).min(self.max));
            }
        }
        to_ms(self.max)
    }

    pub fn max_ms(&self) -> f64 {
        to_ms(self.max)
    }
}

/// Milliseconds with microsecond precision: enough for the figures and short in the JSON.
fn to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Rounds a figure for the JSON report.
pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Counts of the ways a request can go wrong, by kind (`"500"`, `"409 conflict"`,
/// `"transport"` …): the first thing to look at when `errors` is not 0.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct ErrorKinds(BTreeMap<String, u64>);

impl ErrorKinds {
    pub fn add(&mut self, kind: impl Into<String>) {
        *self.0.entry(kind.into()).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn merge(&mut self, other: &ErrorKinds) {
        for (kind, n) in &other.0 {
            *self.0.entry(kind.clone()).or_default() += n;
        }
    }
}

/// A GET that a load run repeats.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: &'static str,
    pub path: Uri,
}

/// How hard and how long to load.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub concurrency: usize,
    pub duration: Duration,
    /// A request not answered in this time counts as an error, and its connection is replaced.
    pub request_timeout: Duration,
}

/// What one run measured. Latencies are of successful (2xx) requests only: a fast error must
/// not make the server look quick.
#[derive(Debug, Default)]
pub struct Outcome {
    pub elapsed: Duration,
    pub latency: Histogram,
    pub per_target: Vec<Histogram>,
    pub errors: ErrorKinds,
}

impl Outcome {
    fn merge(&mut self, other: &Outcome) {
        self.latency.merge(&other.latency);
        for (mine, theirs) in self.per_target.iter_mut().zip(&other.per_target) {
            mine.merge(theirs);
        }
        self.errors.merge(&other.errors);
    }

    pub fn requests(&self) -> u64 {
        self.latency.count() + self.errors.total()
    }

    pub fn figures(&self) -> Figures {
        let requests = self.requests();
        Figures {
            requests,
            rps: round(requests as f64 / self.elapsed.as_secs_f64().max(1e-9), 0),
            p50_ms: round(self.latency.percentile_ms(0.50), 3),
            p99_ms: round(self.latency.percentile_ms(0.99), 3),
            max_ms: round(self.latency.max_ms(), 3),
            errors: self.errors.total(),
            error_kinds: self.errors.clone(),
        }
    }

    /// p50 and p99 of each target on its own, to see which one is slow.
    pub fn per_target_figures(&self, targets: &[Target]) -> BTreeMap<&'static str, Latencies> {
        targets
            .iter()
            .zip(&self.per_target)
            .map(|(target, h)| {
                let figures = Latencies {
                    ok: h.count(),
                    p50_ms: round(h.percentile_ms(0.50), 3),
                    p99_ms: round(h.percentile_ms(0.99), 3),
                };
                (target.name, figures)
            })
            .collect()
    }
}

/// The figures of a load run, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    #[serde(skip_serializing_if = "ErrorKinds::is_empty")]
    pub error_kinds: ErrorKinds,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    pub ok: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `plan` against `targets`: every client walks through the targets in turn, starting at
/// a different one so that all of them are under load at every moment.
pub async fn run(server: &Server, auth: &HeaderValue, targets: &[Target], plan: Plan) -> Outcome {
    let started = Instant::now();
    let deadline = started + plan.duration;
    let shared = Arc::new(Shared {
        server: server.clone(),
        auth: auth.clone(),
        targets: targets.to_vec(),
        deadline,
        timeout: plan.request_timeout,
    });
    let clients: Vec<_> = (0..plan.concurrency)
        .map(|n| {
            let shared = shared.clone();
            tokio::spawn(async move { one_client(&shared, n).await })
        })
        .collect();
    let mut total = Outcome {
        per_target: vec![Histogram::default(); targets.len()],
        ..Outcome::default()
    };
    for handle in clients {
        match handle.await {
            Ok(outcome) => total.merge(&outcome),
            Err(_) => total.errors.add("client task panicked"),
        }
    }
    // Requests still in flight at the deadline are waited for and counted: the elapsed time
    // runs until the last answer.
    total.elapsed = started.elapsed();
    total
}

/// What every client of a run reads.
struct Shared {
    server: Server,
    auth: HeaderValue,
    targets: Vec<Target>,
    deadline: Instant,
    timeout: Duration,
}

async fn one_client(shared: &Shared, first: usize) -> Outcome {
    let targets = &shared.targets;
    let mut outcome = Outcome {
        per_target: vec![Histogram::default(); targets.len()],
        ..Outcome::default()
    };
    let mut connection: Option<Connection> = None;
    let mut next = first % targets.len().max(1);
    while Instant::now() < shared.deadline && !targets.is_empty() {
        let started = Instant::now();
        match get(shared, &mut connection, &targets[next].path).await {
            Ok(()) => {
                let latency = started.elapsed();
                outcome.latency.record(latency);
                outcome.per_target[next].record(latency);
            }
            Err(kind) => outcome.errors.add(kind),
        }
        next = (next + 1) % targets.len();
    }
    outcome
}

/// One GET on the client's connection, opened first if it has none (or lost it).
async fn get(shared: &Shared, connection: &mut Option<Connection>, path: &Uri) -> Result<(), String> {
    let request = shared
        .server
        .request(Method::GET, path, &shared.auth, None)
        .map_err(|e| e.0)?;
    let open = match connection {
        Some(open) => open,
        None => match http::connect(&shared.server).await {
            Ok(fresh) => connection.insert(fresh),
            Err(failure) => {
                // A refused connection fails at once: pause, or the loop would spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                return Err(failure.kind().into());
            }
        },
    };
    match open.send(request, shared.timeout).await {
        Ok(answer) if (200..300).contains(&answer.status) => Ok(()),
        Ok(answer) => Err(answer.status.to_string()),
        Err(failure) => {
            *connection = None;
            Err(failure.kind().into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut last = 0;
        for micros in 0..100_000u64 {
            let bucket = bucket_of(micros);
            assert!(bucket == last || bucket == last + 1, "{micros}");
            assert!(
                lowest_in(bucket) <= micros && micros - lowest_in(bucket) <= micros / 512,
                "{micros}"
            );
            last = bucket;
        }
        assert!(lowest_in(bucket_of(u64::MAX)) > u64::MAX / 2);
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        assert!((h.percentile_ms(0.50) - 50.0).abs() < 0.2, "{}", h.percentile_ms(0.5));
        assert!((h.percentile_ms(0.99) - 99.0).abs() < 0.2, "{}", h.percentile_ms(0.99));
        assert_eq!(h.max_ms(), 100.0);
        let mut other = Histogram::default();
        other.record(Duration::from_secs(2));
        h.merge(&other);
        assert_eq!((h.count(), h.max_ms()), (101, 2000.0));
        assert_eq!(Histogram::default().percentile_ms(0.99), 0.0);
    }
}
