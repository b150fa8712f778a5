//! A bounded load generator for the task-churn and keep-alive tests: `concurrency` workers send GET or POST
//! requests through swarmgate until a request count or a deadline is reached (or [`Load::stop`]), and every
//! outcome is counted by kind — ok, connect, reset, 502, 503, 504, other status, timeout, other error — so a
//! closing note can quote them. Optionally keeps a timeline of which backend (`Hostname:`) answered when,
//! for the de-routing measurements.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

/// What load to send.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// swarmgate's address.
    pub addr: SocketAddr,
    /// `Host` header.
    pub host: String,
    /// Path (and query).
    pub path: String,
    /// GET or POST (any method).
    pub method: Method,
    /// Request body (empty for GET).
    pub body: Bytes,
    /// Parallel workers (each with its own keep-alive connection pool).
    pub concurrency: usize,
    /// Stop after this many requests in total (None: only the deadline or `stop`).
    pub max_requests: Option<u64>,
    /// Hard bound on the run.
    pub max_duration: Duration,
    /// Keep (time since start, hostname) of every answer.
    pub timeline: bool,
}

impl LoadSpec {
    /// GETs of `/` with `Host: host`, 8 workers, at most `max_duration`.
    pub fn get(addr: SocketAddr, host: &str, max_duration: Duration) -> LoadSpec {
        LoadSpec {
            addr,
            host: host.to_string(),
            path: "/".into(),
            method: Method::GET,
            body: Bytes::new(),
            concurrency: 8,
            max_requests: None,
            max_duration,
            timeline: false,
        }
    }

    /// The same as POSTs with a small body.
    pub fn post(addr: SocketAddr, host: &str, max_duration: Duration) -> LoadSpec {
        LoadSpec {
            method: Method::POST,
            body: Bytes::from_static(b"{\"order\":42,\"items\":[1,2,3]}"),
            ..LoadSpec::get(addr, host, max_duration)
        }
    }
}

/// Outcomes by kind.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Requests sent.
    pub total: u64,
    /// 2xx answers read to the end.
    pub ok: u64,
    /// The connection to swarmgate could not be made.
    pub connect: u64,
    /// The connection to swarmgate was reset or closed before the answer ended.
    pub reset: u64,
    /// 502 Bad Gateway.
    pub s502: u64,
    /// 503 Service Unavailable.
    pub s503: u64,
    /// 504 Gateway Timeout.
    pub s504: u64,
    /// Any other non-2xx status.
    pub other_status: u64,
    /// No answer within 60 s.
    pub timeout: u64,
    /// Any other client error.
    pub other_error: u64,
    /// Answers per backend hostname.
    pub hosts: BTreeMap<String, u64>,
    /// (time since start, hostname) per answer, when asked for.
    pub timeline: Vec<(Duration, String)>,
    /// How long the run lasted.
    pub elapsed: Duration,
    /// Wall-clock start, in nanoseconds since the Unix epoch (to line the timeline up with Docker events).
    pub started_unix_ns: i128,
}

impl LoadReport {
    /// Every request that did not get a 2xx answer.
    pub fn failed(&self) -> u64 {
        self.total - self.ok
    }

    /// One line for logs and closing notes.
    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.1?}: {} ok, {} failed (connect {}, reset {}, 502 {}, 503 {}, 504 {}, other status {}, timeout {}, other {})",
            self.total, self.elapsed, self.ok, self.failed(), self.connect, self.reset, self.s502,
            self.s503, self.s504, self.other_status, self.timeout, self.other_error
        )
    }

    fn merge(&mut self, o: LoadReport) {
        self.total += o.total;
        self.ok += o.ok;
        self.connect += o.connect;
        self.reset += o.reset;
        self.s502 += o.s502;
        self.s503 += o.s503;
        self.s504 += o.s504;
        self.other_status += o.other_status;
        self.timeout += o.timeout;
        self.other_error += o.other_error;
        for (h, n) in o.hosts {
            *self.hosts.entry(h).or_default() += n;
        }
        self.timeline.extend(o.timeline);
    }
}

/// A running load; [`Load::stop`] ends it and returns the report.
pub struct Load {
    stop: CancellationToken,
    workers: Vec<tokio::task::JoinHandle<LoadReport>>,
    started: Instant,
    started_unix_ns: i128,
}

impl Load {
    /// Starts the workers.
    pub fn start(spec: LoadSpec) -> Load {
        let stop = CancellationToken::new();
        let started_unix_ns = unix_ns();
        let started = Instant::now();
        let budget = Arc::new(Mutex::new(spec.max_requests));
        let spec = Arc::new(spec);
        let workers = (0..spec.concurrency.max(1))
            .map(|_| {
                let (spec, stop, budget) = (spec.clone(), stop.clone(), budget.clone());
                tokio::spawn(worker(spec, stop, budget, started))
            })
            .collect();
        Load {
            stop,
            workers,
            started,
            started_unix_ns,
        }
    }

    /// Stops the workers (requests in flight finish) and merges their counts.
    pub async fn stop(self) -> LoadReport {
        self.stop.cancel();
        self.join().await
    }

    /// Waits until the workers end by themselves (request count or deadline).
    pub async fn join(self) -> LoadReport {
        let mut r = LoadReport::default();
        for w in self.workers {
            if let Ok(part) = w.await {
                r.merge(part);
            }
        }
        r.timeline.sort();
        r.elapsed = self.started.elapsed();
        r.started_unix_ns = self.started_unix_ns;
        r
    }

    /// Runs `spec` to its end and returns the report.
    pub async fn run(spec: LoadSpec) -> LoadReport {
        Load::start(spec).join().await
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub fn unix_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn take_one(budget: &Mutex<Option<u64>>) -> bool {
    let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
    match b.as_mut() {
        None => true,
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
    }
}

async fn worker(
    spec: Arc<LoadSpec>,
    stop: CancellationToken,
    budget: Arc<Mutex<Option<u64>>>,
    started: Instant,
) -> LoadReport {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{}{}", spec.addr, spec.path);
    let mut r = LoadReport::default();
    while !stop.is_cancelled() && started.elapsed() < spec.max_duration && take_one(&budget) {
        let req = Request::builder()
            .method(spec.method.clone())
            .uri(&url)
            .header("host", &spec.host)
            .body(Full::new(spec.body.clone()))
            .expect("request");
        let at = started.elapsed();
        r.total += 1;
        match tokio::time::timeout(Duration::from_secs(60), exchange(&client, req)).await {
            Err(_) => r.timeout += 1,
            Ok(Outcome::Answer(status, host)) => {
                match status {
                    200..=299 => r.ok += 1,
                    502 => r.s502 += 1,
                    503 => r.s503 += 1,
                    504 => r.s504 += 1,
                    _ => r.other_status += 1,
                }
                if let (200..=299, Some(h)) = (status, host) {
                    *r.hosts.entry(h.clone()).or_default() += 1;
                    if spec.timeline {
                        r.timeline.push((at, h));
                    }
                }
            }
            Ok(Outcome::Connect) => r.connect += 1,
            Ok(Outcome::Reset) => r.reset += 1,
            Ok(Outcome::Other) => r.other_error += 1,
        }
    }
    r
}

enum Outcome {
    Answer(u16, Option<String>),
    Connect,
    Reset,
    Other,
}

async fn exchange(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Outcome {
    let resp = match client.request(req).await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Outcome::Connect,
        Err(e) => {
            let text = format!("{e:?}");
            return if text.contains("Reset")
                || text.contains("Incomplete")
                || text.contains("Closed")
            {
                Outcome::Reset
            } else {
                Outcome::Other
            };
        }
    };
    let status = resp.status().as_u16();
    match resp.into_body().collect().await {
        Ok(b) => {
            let body = b.to_bytes();
            let text = String::from_utf8_lossy(&body);
            let host = text
                .lines()
                .find_map(|l| l.strip_prefix("Hostname: "))
                .map(str::to_string);
            Outcome::Answer(status, host)
        }
        Err(_) => Outcome::Reset,
    }
}
