//! Prometheus metrics with Traefik's names and labels, so existing Grafana dashboards keep working.
//!
//! Two kinds of state:
//! - control-plane metrics (configuration reloads, server health, open connections, certificate expiry) in
//!   a `prometheus::Registry`, updated off the request path;
//! - per-request counters and histograms in [`RequestStats`]: plain atomics, resolved once per table build
//!   and held by the routing table, so a request pays a few relaxed atomic additions — no lock, no label
//!   lookup, no allocation. They are rendered in the text exposition format at scrape time.
//!
//! Label values never contain unbounded input: methods outside the standard set are counted as `OTHER`,
//! and only configured entrypoint, router and service names appear.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{Encoder, Gauge, GaugeVec, IntCounter, IntGaugeVec, Opts, Registry, TextEncoder};

/// Default histogram buckets (seconds), Traefik's.
pub const DEFAULT_BUCKETS: [f64; 4] = [0.1, 0.3, 1.2, 5.0];

const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "OTHER",
];

/// Status codes with their own counter slot; any other code is counted in its class slot (`1xx`…`5xx`).
const CODES: [u16; 30] = [
    100, 101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408,
    409, 413, 429, 431, 499, 500, 501, 502, 503, 504, 505,
];
const SLOTS: usize = CODES.len() + 5;

fn method_index(m: &http::Method) -> usize {
    METHODS
        .iter()
        .position(|x| *x == m.as_str())
        .unwrap_or(METHODS.len() - 1)
}

fn code_index(code: u16) -> usize {
    match CODES.binary_search(&code) {
        Ok(i) => i,
        Err(_) => CODES.len() + usize::from((code / 100).clamp(1, 5) - 1),
    }
}

fn code_label(slot: usize) -> String {
    match CODES.get(slot) {
        Some(c) => c.to_string(),
        None => format!("{}xx", slot - CODES.len() + 1),
    }
}

/// Request counters and a latency histogram for one entrypoint, router or service. Hot path: atomics only.
#[derive(Debug)]
pub struct RequestStats {
    counts: Box<[AtomicU64]>,
    buckets: Box<[AtomicU64]>,
    bounds: Arc<[f64]>,
    sum_micros: AtomicU64,
    /// Retries made for this service.
    pub retries: AtomicU64,
    /// Request body bytes received.
    pub bytes_in: AtomicU64,
    /// Response body bytes sent.
    pub bytes_out: AtomicU64,
}

impl RequestStats {
    fn new(bounds: Arc<[f64]>) -> RequestStats {
        RequestStats {
            counts: (0..METHODS.len() * SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds,
            sum_micros: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    /// Records one request: its method, final status and duration.
    #[inline]
    pub fn record(&self, method: &http::Method, status: u16, elapsed: std::time::Duration) {
        let i = method_index(method) * SLOTS + code_index(status);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        let b = self
            .bounds
            .iter()
            .position(|&u| secs <= u)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.buckets.get(b) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, prefix: &str, label: &str, value: &str) {
        let value = escape(value);
        for (counts, method) in self.counts.chunks(SLOTS).zip(METHODS.iter()) {
            for (c, count) in counts.iter().enumerate() {
                let n = count.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "{prefix}_requests_total{{code=\"{}\",method=\"{}\",protocol=\"http\",{label}=\"{value}\"}} {n}",
                        code_label(c),
                        method
                    );
                }
            }
        }
        let mut cumulative = 0u64;
        // `buckets` has one slot per bound plus the last, `+Inf` one.
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{prefix}_request_duration_seconds_bucket{{protocol=\"http\",{label}=\"{value}\",le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self
            .buckets
            .get(self.bounds.len())
            .map_or(0, |b| b.load(Ordering::Relaxed));
        let _ = writeln!(out, "{prefix}_request_duration_seconds_bucket{{protocol=\"http\",{label}=\"{value}\",le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{prefix}_request_duration_seconds_sum{{protocol=\"http\",{label}=\"{value}\"}} {sum}"
        );
        let _ = writeln!(out, "{prefix}_request_duration_seconds_count{{protocol=\"http\",{label}=\"{value}\"}} {cumulative}");
    }
}

/// A label value escaped for the text exposition format (backslash, quote, newline).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Which label families are on (`addEntryPointsLabels`, `addRoutersLabels`, `addServicesLabels`).
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    /// Per-entrypoint series (default on).
    pub entry_points: bool,
    /// Per-router series (default off, as Traefik).
    pub routers: bool,
    /// Per-service series (default on).
    pub services: bool,
}

/// The metrics of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `traefik_config_reloads_total`.
    pub config_reloads: IntCounter,
    /// `traefik_config_last_reload_success` (Unix seconds).
    pub config_last_reload_success: Gauge,
    /// `traefik_open_connections{entrypoint,protocol}`.
    pub open_connections: IntGaugeVec,
    /// `traefik_tls_certs_not_after{cn,serial,sans}`.
    pub tls_certs_not_after: GaugeVec,
    /// Which label families are exported.
    pub labels: Labels,
    bounds: Arc<[f64]>,
    /// Current stats by family and name; replaced at each table build (removed names disappear).
    current: Mutex<Current>,
}

#[derive(Debug, Default)]
struct Current {
    entry_points: HashMap<String, Arc<RequestStats>>,
    routers: HashMap<String, Arc<RequestStats>>,
    services: HashMap<String, Arc<RequestStats>>,
}

/// Errors registering metrics (only on programming mistakes such as duplicate names).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Creates the registry; `buckets` empty means Traefik's defaults.
    pub fn new(buckets: &[f64], labels: Labels) -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let config_reloads = IntCounter::new("traefik_config_reloads_total", "Config reloads")?;
        let config_last_reload_success = Gauge::new(
            "traefik_config_last_reload_success",
            "Last config reload success",
        )?;
        let open_connections = IntGaugeVec::new(
            Opts::new(
                "traefik_open_connections",
                "How many open connections exist, by entryPoint and protocol",
            ),
            &["entrypoint", "protocol"],
        )?;
        let tls_certs_not_after = GaugeVec::new(
            Opts::new(
                "traefik_tls_certs_not_after",
                "Certificate expiration timestamp",
            ),
            &["cn", "serial", "sans"],
        )?;
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(config_last_reload_success.clone()))?;
        registry.register(Box::new(open_connections.clone()))?;
        registry.register(Box::new(tls_certs_not_after.clone()))?;
        let server_up = GaugeVec::new(
            Opts::new(
                "traefik_service_server_up",
                "service server is up, described by gauge value of 0 or 1.",
            ),
            &["service", "url"],
        )?;
        registry.register(Box::new(server_up.clone()))?;
        let mut b: Vec<f64> = if buckets.is_empty() {
            DEFAULT_BUCKETS.to_vec()
        } else {
            buckets.to_vec()
        };
        b.retain(|x| x.is_finite());
        b.sort_by(|x, y| x.total_cmp(y));
        b.dedup();
        Ok(Metrics {
            registry,
            config_reloads,
            config_last_reload_success,
            open_connections,
            tls_certs_not_after,
            labels,
            bounds: b.into(),
            current: Mutex::new(Current::default()),
        })
    }

    /// Stats handles for a new table: existing ones are kept by name (counters continue), names no longer
    /// present are dropped from the exposition. Control plane only.
    pub fn resolve(
        &self,
        entry_points: &[String],
        routers: &[String],
        services: &[String],
    ) -> Resolved {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let bounds = &self.bounds;
        let take = |map: &mut HashMap<String, Arc<RequestStats>>,
                    names: &[String],
                    on: bool|
         -> HashMap<String, Arc<RequestStats>> {
            if !on {
                map.clear();
                return HashMap::new();
            }
            let next: HashMap<String, Arc<RequestStats>> = names
                .iter()
                .map(|n| {
                    (
                        n.clone(),
                        map.get(n)
                            .cloned()
                            .unwrap_or_else(|| Arc::new(RequestStats::new(bounds.clone()))),
                    )
                })
                .collect();
            *map = next.clone();
            next
        };
        Resolved {
            entry_points: take(
                &mut cur.entry_points,
                entry_points,
                self.labels.entry_points,
            ),
            routers: take(&mut cur.routers, routers, self.labels.routers),
            services: take(&mut cur.services, services, self.labels.services),
        }
    }

    /// The text exposition (`/metrics`): the registry, then what `servers` writes (the admin module writes
    /// `traefik_service_server_up` from the current table there, so this module never reads the table),
    /// then the per-request families. Scrape time only.
    pub fn render(&self, servers: impl FnOnce(&mut String)) -> String {
        let mut out = String::with_capacity(4096);
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_ok()
        {
            out.push_str(&String::from_utf8_lossy(&buf));
        }
        servers(&mut out);
        let cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        for (family, label, map) in [
            ("traefik_entrypoint", "entrypoint", &cur.entry_points),
            ("traefik_router", "router", &cur.routers),
            ("traefik_service", "service", &cur.services),
        ] {
            if map.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {family}_requests_total How many HTTP requests processed, partitioned by status code, protocol, and method.");
            let _ = writeln!(out, "# TYPE {family}_requests_total counter");
            let mut names: Vec<&String> = map.keys().collect();
            names.sort();
            let mut hist = String::new();
            for n in &names {
                let mut s = String::new();
                map[*n].render(&mut s, family, label, n);
                for line in s.lines() {
                    if line.contains("_requests_total") {
                        out.push_str(line);
                        out.push('\n');
                    } else {
                        hist.push_str(line);
                        hist.push('\n');
                    }
                }
            }
            let _ = writeln!(out, "# HELP {family}_request_duration_seconds How long it took to process the request, partitioned by status code, protocol, and method.");
            let _ = writeln!(out, "# TYPE {family}_request_duration_seconds histogram");
            out.push_str(&hist);
            if family == "traefik_service" {
                let _ = writeln!(
                    out,
                    "# HELP traefik_service_retries_total How many request retries happened."
                );
                let _ = writeln!(out, "# TYPE traefik_service_retries_total counter");
                for n in &names {
                    let _ = writeln!(
                        out,
                        "traefik_service_retries_total{{service=\"{}\"}} {}",
                        escape(n),
                        map[*n].retries.load(Ordering::Relaxed)
                    );
                }
            }
            for (dir, field) in [("requests", 0), ("responses", 1)] {
                let _ = writeln!(out, "# TYPE {family}_{dir}_bytes_total counter");
                for n in &names {
                    let v = if field == 0 {
                        &map[*n].bytes_in
                    } else {
                        &map[*n].bytes_out
                    };
                    let _ = writeln!(
                        out,
                        "{family}_{dir}_bytes_total{{protocol=\"http\",{label}=\"{}\"}} {}",
                        escape(n),
                        v.load(Ordering::Relaxed)
                    );
                }
            }
        }
        out
    }
}

/// Totals of one [`RequestStats`], for the dashboard's JSON (`/api/x/stats`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Totals {
    /// All requests.
    pub requests: u64,
    /// Requests by status class: `1xx` … `5xx`.
    pub classes: [u64; 5],
    /// Sum of durations, seconds.
    #[serde(rename = "durationSeconds")]
    pub duration_seconds: f64,
    /// Retries.
    pub retries: u64,
    /// Request bytes.
    #[serde(rename = "bytesIn")]
    pub bytes_in: u64,
    /// Response bytes.
    #[serde(rename = "bytesOut")]
    pub bytes_out: u64,
}

impl RequestStats {
    /// Sums the counters (control plane: reads every slot).
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            t.requests += n;
            let slot = i % SLOTS;
            let class = match CODES.get(slot) {
                Some(code) => usize::from(code / 100).saturating_sub(1),
                None => slot - CODES.len(),
            };
            if let Some(x) = t.classes.get_mut(class.min(4)) {
                *x += n;
            }
        }
        t.duration_seconds = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        t.retries = self.retries.load(Ordering::Relaxed);
        t.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        t.bytes_out = self.bytes_out.load(Ordering::Relaxed);
        t
    }
}

impl Metrics {
    /// Current totals by family (`entrypoint`, `router`, `service`) and name. Control plane only.
    pub fn totals(&self) -> Vec<(&'static str, String, Totals)> {
        let cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (family, map) in [
            ("entrypoint", &cur.entry_points),
            ("router", &cur.routers),
            ("service", &cur.services),
        ] {
            for (n, s) in map {
                out.push((family, n.clone(), s.totals()));
            }
        }
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        out
    }
}

/// Stats handles for one table.
#[derive(Debug, Default)]
pub struct Resolved {
    /// By entrypoint name.
    pub entry_points: HashMap<String, Arc<RequestStats>>,
    /// By qualified router name (only with `addRoutersLabels`).
    pub routers: HashMap<String, Arc<RequestStats>>,
    /// By qualified service name.
    pub services: HashMap<String, Arc<RequestStats>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels {
            entry_points: true,
            routers: false,
            services: true,
        }
    }

    #[test]
    fn requests_are_counted_and_rendered_with_traefik_names() {
        let m = Metrics::new(&[], labels()).expect("metrics");
        let r = m.resolve(&["web".into()], &["r@file".into()], &["s@file".into()]);
        assert!(r.routers.is_empty(), "routers only with addRoutersLabels");
        let s = &r.services["s@file"];
        s.record(
            &http::Method::GET,
            200,
            std::time::Duration::from_millis(50),
        );
        s.record(
            &http::Method::GET,
            200,
            std::time::Duration::from_millis(500),
        );
        s.record(
            &http::Method::from_bytes(b"BREW").expect("m"),
            418,
            std::time::Duration::from_secs(9),
        );
        let text = m.render(|_| {});
        assert!(text.contains("traefik_service_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",service=\"s@file\"} 2"), "{text}");
        assert!(text.contains("traefik_service_requests_total{code=\"4xx\",method=\"OTHER\",protocol=\"http\",service=\"s@file\"} 1"), "{text}");
        assert!(text.contains("traefik_service_request_duration_seconds_bucket{protocol=\"http\",service=\"s@file\",le=\"0.1\"} 1"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 3"), "{text}");
        assert!(text.contains("traefik_config_reloads_total 0"), "{text}");
        // traefik_service_server_up is read from the table at scrape time: see tests/observability.rs.
    }

    #[test]
    fn removed_names_disappear_and_kept_ones_continue() {
        let m = Metrics::new(&[], labels()).expect("metrics");
        let r = m.resolve(&[], &[], &["a@file".into(), "b@file".into()]);
        r.services["a@file"].record(&http::Method::GET, 200, std::time::Duration::ZERO);
        let r2 = m.resolve(&[], &[], &["a@file".into()]);
        assert!(Arc::ptr_eq(&r.services["a@file"], &r2.services["a@file"]));
        let text = m.render(|_| {});
        assert!(!text.contains("b@file"), "{text}");
    }

    #[test]
    fn code_slots() {
        assert_eq!(code_label(code_index(404)), "404");
        assert_eq!(code_label(code_index(418)), "4xx");
        assert_eq!(code_label(code_index(599)), "5xx");
        assert_eq!(code_label(code_index(0)), "1xx");
    }
}
