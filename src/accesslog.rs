//! Access log (`--accesslog`): Traefik's common format (CLF with extras) and JSON field names, written off the
//! request path.
//!
//! The request path builds a [`Record`] only when access logging is on, applies the filters there (so
//! filtered requests cost nothing more), and hands the record to a bounded channel with `try_send`: when the
//! writer falls behind, records are dropped and counted ([`AccessLogger::dropped`], logged at shutdown),
//! never waited for. One writer on its own OS thread (file writes block; they must not stall a runtime
//! worker) formats and writes; it flushes when the channel is empty, and reopens the log file on SIGUSR1
//! (logrotate's `postrotate kill -USR1`). The app supervises the thread through [`Writer`] and closes it
//! after the last request has drained ([`AccessLogger::close`]).
//!
//! Formats, as Traefik writes them (`pkg/middlewares/accesslog`):
//! - `common`: `<ClientHost> - <ClientUsername> [<StartUTC>] "<RequestMethod> <RequestPath> <RequestProtocol>"
//!   <DownstreamStatus> <DownstreamContentSize> "<request_Referer>" "<request_User-Agent>" <RequestCount>
//!   "<RouterName>" "<ServiceURL>" <Duration>ms`;
//! - `genericCLF`: the same up to the user agent;
//! - `json`: one object per line with Traefik's field names (`ClientHost`, `RequestMethod`, `RequestPath`,
//!   `DownstreamStatus`, `RouterName`, `ServiceName`, `ServiceURL`, `Duration` in nanoseconds, …), plus
//!   `level`, `msg` and `time` as logrus writes them.
//!
//! `fields.defaultMode`/`fields.names` keep or drop fields; request headers are logged as `request_<Header>`
//! per `fields.headers` (default: dropped), with `redact` writing `REDACTED`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, Version};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::types::AccessLog as AccessLogConfig;

/// Why the access log could not start. Names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// `accessLog.format` is not `common`, `genericCLF` or `json`.
    #[error("accessLog.format: `{0}` is not common, genericCLF or json")]
    Format(String),
    /// `accessLog.filters.statusCodes` holds something that is not `NNN` or `NNN-NNN`.
    #[error("accessLog.filters.statusCodes: `{0}` is not a status code or a range like 200-299")]
    StatusRange(String),
    /// A field mode is not keep, drop or redact.
    #[error("accessLog.fields.{key}: `{value}` is not keep, drop or redact")]
    Mode {
        /// The key (`defaultMode`, `names.ClientHost`, `headers.names.Authorization`, …).
        key: String,
        /// The value given.
        value: String,
    },
    /// The writer thread could not be started.
    #[error("accessLog: cannot start the writer thread: {source}")]
    Thread {
        /// The OS error.
        source: std::io::Error,
    },
    /// `accessLog.filePath` cannot be opened for appending.
    #[error("accessLog.filePath {path}: {source}")]
    Open {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Traefik's common format (CLF plus request count, router, server URL and duration).
    Common,
    /// Plain CLF (`genericCLF`).
    GenericClf,
    /// One JSON object per line.
    Json,
}

/// keep / drop / redact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Keep,
    Drop,
    Redact,
}

fn mode(key: &str, v: &str) -> Result<Mode, AccessLogError> {
    match v.to_ascii_lowercase().as_str() {
        "keep" => Ok(Mode::Keep),
        "drop" => Ok(Mode::Drop),
        "redact" => Ok(Mode::Redact),
        _ => Err(AccessLogError::Mode {
            key: key.to_string(),
            value: v.to_string(),
        }),
    }
}

/// Validated settings: which requests and which fields are logged.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Output file; `None` = stdout.
    pub file_path: Option<String>,
    /// Line format.
    pub format: Format,
    /// Channel capacity (`bufferingSize`, at least 1; default 1024).
    pub capacity: usize,
    status_ranges: Vec<(u16, u16)>,
    retry_attempts: bool,
    min_duration: Duration,
    /// Fields dropped (lowercased names).
    dropped_fields: Vec<String>,
    header_default: Mode,
    header_names: BTreeMap<String, Mode>,
    /// `addInternals`: also log requests to internal services.
    pub add_internals: bool,
}

impl Settings {
    /// Validates Traefik's `accessLog` section.
    pub fn from_config(c: &AccessLogConfig) -> Result<Settings, AccessLogError> {
        let format = match c.format.as_deref().unwrap_or("common") {
            "" | "common" => Format::Common,
            "genericCLF" => Format::GenericClf,
            "json" => Format::Json,
            other => return Err(AccessLogError::Format(other.to_string())),
        };
        let mut status_ranges = Vec::new();
        let mut retry_attempts = false;
        let mut min_duration = Duration::ZERO;
        if let Some(f) = &c.filters {
            for s in &f.status_codes {
                for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let bad = || AccessLogError::StatusRange(part.to_string());
                    let (a, b) = match part.split_once('-') {
                        Some((a, b)) => (a.trim(), b.trim()),
                        None => (part, part),
                    };
                    let a: u16 = a.parse().map_err(|_| bad())?;
                    let b: u16 = b.parse().map_err(|_| bad())?;
                    if a > b {
                        return Err(bad());
                    }
                    status_ranges.push((a, b));
                }
            }
            retry_attempts = f.retry_attempts;
            min_duration = f.min_duration.0;
        }
        let mut default_keep = true;
        let mut dropped_fields = Vec::new();
        let mut header_default = Mode::Drop;
        let mut header_names = BTreeMap::new();
        if let Some(f) = &c.fields {
            if let Some(d) = &f.default_mode {
                default_keep = mode("defaultMode", d)? != Mode::Drop;
            }
            for field in FIELDS {
                let kept = match f.names.iter().find(|(k, _)| k.eq_ignore_ascii_case(field)) {
                    Some((k, v)) => mode(&format!("names.{k}"), v)? != Mode::Drop,
                    None => default_keep,
                };
                if !kept {
                    dropped_fields.push(field.to_ascii_lowercase());
                }
            }
            if let Some(h) = &f.headers {
                if let Some(d) = &h.default_mode {
                    header_default = mode("headers.defaultMode", d)?;
                }
                for (k, v) in &h.names {
                    header_names.insert(
                        k.to_ascii_lowercase(),
                        mode(&format!("headers.names.{k}"), v)?,
                    );
                }
            }
        }
        Ok(Settings {
            file_path: c.file_path.clone().filter(|p| !p.is_empty()),
            format,
            capacity: match c.buffering_size {
                Some(n) if n > 0 => usize::try_from(n.min(1 << 20)).unwrap_or(1 << 20),
                _ => 1024,
            },
            status_ranges,
            retry_attempts,
            min_duration,
            dropped_fields,
            header_default,
            header_names,
            add_internals: c.add_internals,
        })
    }

    /// Traefik's filters: with none set every request is kept; otherwise a request is kept when its status is
    /// in a range, or it was retried (with `retryAttempts`), or it took longer than `minDuration`.
    pub fn keep(&self, status: u16, retries: u32, elapsed: Duration) -> bool {
        if self.status_ranges.is_empty() && !self.retry_attempts && self.min_duration.is_zero() {
            return true;
        }
        self.status_ranges
            .iter()
            .any(|&(a, b)| (a..=b).contains(&status))
            || (self.retry_attempts && retries > 0)
            || (!self.min_duration.is_zero() && elapsed > self.min_duration)
    }

    fn keeps(&self, field: &str) -> bool {
        !self
            .dropped_fields
            .iter()
            .any(|f| f.eq_ignore_ascii_case(field))
    }

    fn header_mode(&self, name: &str) -> Mode {
        self.header_names
            .get(&name.to_ascii_lowercase())
            .copied()
            .unwrap_or(self.header_default)
    }

    /// Whether any request header can appear in a line (so the request path copies headers only then).
    pub fn wants_headers(&self) -> bool {
        self.header_default != Mode::Drop || self.header_names.values().any(|m| *m != Mode::Drop)
    }
}

/// Every core field name Traefik's access log knows (that swarmgate fills).
const FIELDS: [&str; 27] = [
    "StartUTC",
    "StartLocal",
    "Duration",
    "RouterName",
    "ServiceName",
    "ServiceURL",
    "ServiceAddr",
    "ClientAddr",
    "ClientHost",
    "ClientPort",
    "ClientUsername",
    "RequestAddr",
    "RequestHost",
    "RequestPort",
    "RequestMethod",
    "RequestPath",
    "RequestProtocol",
    "RequestScheme",
    "RequestContentSize",
    "OriginDuration",
    "OriginContentSize",
    "OriginStatus",
    "DownstreamStatus",
    "DownstreamContentSize",
    "RequestCount",
    "Overhead",
    "RetryAttempts",
];

/// One request, as the writer formats it. Built on the request path only when access logging is on.
#[derive(Debug, Clone)]
pub struct Record {
    /// When the request arrived.
    pub start: SystemTime,
    /// Until the response head was ready.
    pub duration: Duration,
    /// Client address.
    pub client_ip: IpAddr,
    /// Client port (not known to the request path yet: `None` leaves `ClientPort` out).
    pub client_port: Option<u16>,
    /// `X-Forwarded-For` as received (Traefik logs it as `ClientHost` when present).
    pub forwarded_for: Option<String>,
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// HTTP version.
    pub version: Version,
    /// `Host` (or the URI authority).
    pub host: String,
    /// Whether the connection was TLS.
    pub tls: bool,
    /// Request body size from `Content-Length` (0 when streamed without one).
    pub request_size: u64,
    /// Final status.
    pub status: u16,
    /// Response body size from `Content-Length` (0 when streamed without one).
    pub response_size: u64,
    /// Qualified router name.
    pub router: Option<Arc<str>>,
    /// Qualified service name.
    pub service: Option<Arc<str>>,
    /// URL of the server that answered.
    pub server_url: Option<Arc<str>>,
    /// Status the server answered (absent when swarmgate answered itself).
    pub origin_status: Option<u16>,
    /// Retries made.
    pub retries: u32,
    /// Process-wide request counter (Traefik's `RequestCount`).
    pub count: u64,
    /// Request headers kept or redacted by the settings (canonical name, value).
    pub headers: Vec<(String, String)>,
}

/// Go's canonical header key form (`user-agent` → `User-Agent`), which Traefik's field names use.
pub fn canonical_header(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        upper = c == '-';
    }
    out
}

impl Record {
    /// Copies the request headers the settings keep (redacted ones as `REDACTED`).
    pub fn headers_from(settings: &Settings, headers: &HeaderMap) -> Vec<(String, String)> {
        if !settings.wants_headers() {
            return Vec::new();
        }
        let mut out: Vec<(String, String)> = Vec::new();
        for name in headers.keys() {
            let value = match settings.header_mode(name.as_str()) {
                Mode::Drop => continue,
                Mode::Redact => "REDACTED".to_string(),
                Mode::Keep => headers
                    .get_all(name)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            out.push((canonical_header(name.as_str()), value));
        }
        out
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn split_time(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (y, mo, day) = civil((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (
        y,
        mo,
        day,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_nanos(),
    )
}

/// `02/Jan/2006:15:04:05 +0000` (UTC).
pub fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, _) = split_time(t);
    let month = MONTHS
        .get(mo.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!("{d:02}/{month}/{y}:{h:02}:{mi:02}:{s:02} +0000")
}

/// RFC 3339 with nanoseconds, as Go marshals a UTC `time.Time` (trailing zeros trimmed).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ns) = split_time(t);
    let frac = if ns == 0 {
        String::new()
    } else {
        let f = format!(".{ns:09}");
        f.trim_end_matches('0').to_string()
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z")
}

fn quoted(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => format!("\"{}\"", s.replace('"', "\\\"")),
        _ => "\"-\"".to_string(),
    }
}

fn authority_port(host: &str) -> (&str, &str) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']') {
            return (h, p.strip_prefix(':').unwrap_or("-"));
        }
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p),
        _ => (host, "-"),
    }
}

/// Formats one line (with its newline). Pure: the writer thread and the tests call it.
pub fn format_line(s: &Settings, r: &Record) -> String {
    let client_host = r
        .forwarded_for
        .clone()
        .unwrap_or_else(|| r.client_ip.to_string());
    match s.format {
        Format::Common | Format::GenericClf => clf_line(s, r, client_host),
        Format::Json => json_line(s, r, client_host),
    }
}

/// `common` and `genericCLF` lines; dropped fields are written as `-`.
fn clf_line(s: &Settings, r: &Record, client_host: String) -> String {
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let keep = |f: &str| s.keeps(f);
    let dash = |f: &str, v: String| if keep(f) { v } else { "-".to_string() };
    let mut line = format!(
        "{} - {} [{}] \"{} {} {}\" {} {} {} {}",
        dash("ClientHost", client_host),
        "-",
        if keep("StartUTC") {
            clf_time(r.start)
        } else {
            "-".into()
        },
        dash("RequestMethod", r.method.to_string()),
        dash("RequestPath", r.path.clone()),
        dash("RequestProtocol", version_str(r.version).to_string()),
        dash("DownstreamStatus", r.status.to_string()),
        dash("DownstreamContentSize", r.response_size.to_string()),
        quoted(header("Referer")),
        quoted(header("User-Agent")),
    );
    if s.format == Format::Common {
        line.push_str(&format!(
            " {} {} {} {}ms",
            dash("RequestCount", r.count.to_string()),
            if keep("RouterName") {
                quoted(r.router.as_deref())
            } else {
                "\"-\"".into()
            },
            if keep("ServiceURL") {
                quoted(r.server_url.as_deref())
            } else {
                "\"-\"".into()
            },
            if keep("Duration") {
                r.duration.as_millis()
            } else {
                0
            }
        ));
    }
    line.push('\n');
    line
}

/// One JSON object with Traefik's field names; dropped fields are left out.
fn json_line(s: &Settings, r: &Record, client_host: String) -> String {
    let keep = |f: &str| s.keeps(f);
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        if keep(k) {
            m.insert(k.to_string(), v);
        }
    };
    let nanos = |d: Duration| json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let (req_host, req_port) = authority_port(&r.host);
    put("StartUTC", json!(rfc3339_nano(r.start)));
    put("StartLocal", json!(rfc3339_nano(r.start)));
    put("Duration", nanos(r.duration));
    put("Overhead", nanos(r.duration));
    match r.client_port {
        Some(port) => {
            put(
                "ClientAddr",
                json!(std::net::SocketAddr::new(r.client_ip, port).to_string()),
            );
            put("ClientPort", json!(port.to_string()));
        }
        None => put("ClientAddr", json!(r.client_ip.to_string())),
    }
    put("ClientHost", json!(client_host));
    put("ClientUsername", json!("-"));
    if !r.host.is_empty() {
        put("RequestAddr", json!(r.host));
        put("RequestHost", json!(req_host));
        put("RequestPort", json!(req_port));
    }
    put("RequestMethod", json!(r.method.as_str()));
    put("RequestPath", json!(r.path));
    put("RequestProtocol", json!(version_str(r.version)));
    put("RequestScheme", json!(if r.tls { "https" } else { "http" }));
    put("RequestContentSize", json!(r.request_size));
    put("DownstreamStatus", json!(r.status));
    put("DownstreamContentSize", json!(r.response_size));
    put("RequestCount", json!(r.count));
    put("RetryAttempts", json!(r.retries));
    if let Some(v) = &r.router {
        put("RouterName", json!(&**v));
    }
    if let Some(v) = &r.service {
        put("ServiceName", json!(&**v));
    }
    if let Some(v) = &r.server_url {
        put("ServiceURL", json!(&**v));
        if let Ok(u) = v.parse::<http::Uri>() {
            if let Some(a) = u.authority() {
                put("ServiceAddr", json!(a.as_str()));
            }
        }
        put("OriginDuration", nanos(r.duration));
        put("OriginContentSize", json!(r.response_size));
    }
    if let Some(st) = r.origin_status {
        put("OriginStatus", json!(st));
    }
    for (k, v) in &r.headers {
        m.insert(format!("request_{k}"), json!(v));
    }
    m.insert("level".into(), json!("info"));
    m.insert("msg".into(), json!(""));
    m.insert("time".into(), json!(rfc3339_nano(SystemTime::now())));
    let mut line = serde_json::to_string(&Value::Object(m)).unwrap_or_default();
    line.push('\n');
    line
}

/// The running access log: the request path's handle to the writer thread.
#[derive(Debug)]
pub struct AccessLogger {
    /// Validated settings (filters are applied on the request path).
    pub settings: Settings,
    tx: SyncSender<Message>,
    dropped: AtomicU64,
    count: AtomicU64,
    signals: Arc<Signals>,
}

/// What the writer thread receives. Records are boxed so the bounded channel's slots stay small even
/// with a large `bufferingSize`.
enum Message {
    Record(Box<Record>),
    /// Look at [`Signals`] now (reopen or close requested while the writer may be waiting).
    Wake,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Record(_) => "Record",
            Message::Wake => "Wake",
        })
    }
}

/// Requests to the writer thread, checked after every batch it writes (a [`Message::Wake`] makes sure
/// an idle writer sees them; a busy one sees them after its current batch).
#[derive(Debug, Default)]
struct Signals {
    reopen: AtomicBool,
    close: AtomicBool,
}

/// The writer thread, as the application supervises it.
#[derive(Debug)]
pub struct Writer {
    done: tokio::sync::oneshot::Receiver<Result<(), String>>,
}

impl Writer {
    /// Completes when the writer thread has ended: after [`AccessLogger::close`], once everything queued
    /// is written and flushed. If the thread panicked, so does this future (with the thread's message),
    /// so that a supervisor reports it.
    pub async fn finished(self) {
        match self.done.await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => std::panic::resume_unwind(Box::new(message)),
            Err(_) => std::panic::resume_unwind(Box::new("access log writer thread vanished")),
        }
    }
}

impl AccessLogger {
    /// Validates the settings, opens the file and starts the writer on its own OS thread, so that
    /// blocking file writes never stall a runtime worker. The writer runs until [`AccessLogger::close`];
    /// the returned [`Writer`] completes when it has ended. SIGUSR1 (logrotate's
    /// `postrotate kill -USR1`) reopens the file, until `cancel`. Must be called inside a Tokio runtime.
    pub fn start(
        cfg: &AccessLogConfig,
        cancel: CancellationToken,
    ) -> Result<(Arc<AccessLogger>, Writer), AccessLogError> {
        let settings = Settings::from_config(cfg)?;
        let out = open(settings.file_path.as_deref())?;
        let (tx, rx) = std::sync::mpsc::sync_channel(settings.capacity);
        let signals = Arc::new(Signals::default());
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let thread_settings = settings.clone();
        let thread_signals = signals.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    write_loop(&thread_settings, out, &rx, &thread_signals)
                }));
                let _ = done_tx.send(result.map_err(|p| crate::supervisor::panic_message(&*p)));
            })
            .map_err(|source| AccessLogError::Thread { source })?;
        let logger = Arc::new(AccessLogger {
            settings,
            tx,
            dropped: AtomicU64::new(0),
            count: AtomicU64::new(0),
            signals,
        });
        #[cfg(unix)]
        tokio::spawn(reopen_on_usr1(logger.clone(), cancel));
        #[cfg(not(unix))]
        drop(cancel);
        Ok((logger, Writer { done }))
    }

    /// The next value of Traefik's `RequestCount` (process-wide, starting at 1).
    #[inline]
    pub fn next_count(&self) -> u64 {
        self.count.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Queues a record; when the queue is full (or the writer has closed) the record is dropped and
    /// counted. Never blocks: hot path.
    pub fn log(&self, record: Record) {
        // After `close` the writer may have ended while its queue still has room: such a record would be
        // lost without being counted, so it is counted as dropped up front.
        if self.signals.close.load(Ordering::Relaxed)
            || self.tx.try_send(Message::Record(Box::new(record))).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Asks the writer to reopen the file (what SIGUSR1 does).
    pub fn reopen(&self) {
        self.signals.reopen.store(true, Ordering::Relaxed);
        let _ = self.tx.try_send(Message::Wake);
    }

    /// Asks the writer to write what is queued, flush and end (shutdown, after the last request); records
    /// logged afterwards are dropped and counted. Logs how many were dropped over the process's life.
    pub fn close(&self) {
        self.signals.close.store(true, Ordering::Relaxed);
        let _ = self.tx.try_send(Message::Wake);
        let dropped = self.dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "access log: records dropped because the writer fell behind"
            );
        } else {
            tracing::info!("access log closed; no record dropped");
        }
    }
}

/// Reopens the file on every SIGUSR1 until `cancel`.
#[cfg(unix)]
async fn reopen_on_usr1(logger: Arc<AccessLogger>, cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = usr1.recv() => match r {
                Some(()) => logger.reopen(),
                None => return,
            },
        }
    }
}

type Sink = Box<dyn std::io::Write + Send>;

fn open(path: Option<&str>) -> Result<Sink, AccessLogError> {
    match path {
        None => Ok(Box::new(std::io::stdout())),
        Some(p) => {
            if let Some(dir) = std::path::Path::new(p).parent() {
                if !dir.as_os_str().is_empty() {
                    let _ = std::fs::create_dir_all(dir);
                }
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|source| AccessLogError::Open {
                    path: p.to_string(),
                    source,
                })?;
            Ok(Box::new(f))
        }
    }
}

/// The writer thread: blocks for a message, writes it and everything else queued, flushes, then acts on
/// [`Signals`]. Ends when closed (after writing what is queued) or when every sender is gone.
fn write_loop(settings: &Settings, out: Sink, rx: &Receiver<Message>, signals: &Signals) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let write = |out: &mut std::io::BufWriter<Sink>, m: Message| {
        if let Message::Record(r) = m {
            let _ = out.write_all(format_line(settings, &r).as_bytes());
        }
    };
    while let Ok(first) = rx.recv() {
        write(&mut out, first);
        while let Ok(m) = rx.try_recv() {
            write(&mut out, m);
        }
        if let Err(e) = out.flush() {
            tracing::warn!("access log: {e}");
        }
        if signals.reopen.swap(false, Ordering::Relaxed) {
            match open(settings.file_path.as_deref()) {
                Ok(f) => {
                    out = std::io::BufWriter::with_capacity(64 * 1024, f);
                    tracing::info!("access log reopened");
                }
                Err(e) => tracing::error!("{e}; still writing to the old file"),
            }
        }
        if signals.close.load(Ordering::Relaxed) {
            while let Ok(m) = rx.try_recv() {
                write(&mut out, m);
            }
            break;
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::{AccessLogFields, AccessLogFilters, AccessLogHeaders};

    fn record() -> Record {
        Record {
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(12),
            client_ip: "10.0.0.7".parse().expect("ip"),
            client_port: Some(40000),
            forwarded_for: None,
            method: Method::GET,
            path: "/a?b=c".into(),
            version: Version::HTTP_11,
            host: "app.test:8000".into(),
            tls: false,
            request_size: 0,
            status: 200,
            response_size: 17,
            router: Some(Arc::from("app@file")),
            service: Some(Arc::from("app@file")),
            server_url: Some(Arc::from("http://10.0.1.2:80")),
            origin_status: Some(200),
            retries: 0,
            count: 3,
            headers: vec![("User-Agent".into(), "curl/8".into())],
        }
    }

    #[test]
    fn common_line_is_traefiks() {
        let s = Settings::from_config(&AccessLogConfig::default()).expect("settings");
        assert_eq!(
            format_line(&s, &record()),
            "10.0.0.7 - - [14/Nov/2023:22:13:20 +0000] \"GET /a?b=c HTTP/1.1\" 200 17 \"-\" \"curl/8\" 3 \"app@file\" \"http://10.0.1.2:80\" 12ms\n"
        );
    }

    #[test]
    fn json_has_traefik_field_names_and_respects_modes() {
        let mut names = BTreeMap::new();
        names.insert("ClientHost".to_string(), "drop".to_string());
        let cfg = AccessLogConfig {
            format: Some("json".into()),
            fields: Some(AccessLogFields {
                default_mode: Some("keep".into()),
                names,
                headers: Some(AccessLogHeaders {
                    default_mode: Some("drop".into()),
                    names: [("Authorization".to_string(), "redact".to_string())].into(),
                }),
            }),
            ..Default::default()
        };
        let s = Settings::from_config(&cfg).expect("settings");
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic x".parse().expect("v"));
        h.insert("user-agent", "curl".parse().expect("v"));
        let mut r = record();
        r.headers = Record::headers_from(&s, &h);
        let v: Value = serde_json::from_str(&format_line(&s, &r)).expect("json");
        assert_eq!(v["RequestMethod"], "GET");
        assert_eq!(v["RequestPath"], "/a?b=c");
        assert_eq!(v["DownstreamStatus"], 200);
        assert_eq!(v["RouterName"], "app@file");
        assert_eq!(v["ServiceName"], "app@file");
        assert_eq!(v["ServiceURL"], "http://10.0.1.2:80");
        assert_eq!(v["ServiceAddr"], "10.0.1.2:80");
        assert_eq!(v["Duration"], 12_000_000);
        assert_eq!(v["RequestHost"], "app.test");
        assert_eq!(v["RequestPort"], "8000");
        assert_eq!(v["StartUTC"], "2023-11-14T22:13:20Z");
        assert_eq!(v["request_Authorization"], "REDACTED");
        assert!(v.get("request_User-Agent").is_none());
        assert!(v.get("ClientHost").is_none(), "dropped by fields.names");
    }

    #[test]
    fn filters_follow_traefik() {
        let cfg = AccessLogConfig {
            filters: Some(AccessLogFilters {
                status_codes: vec!["400-499".into(), "502".into()],
                retry_attempts: true,
                min_duration: crate::config::types::GoDuration(Duration::from_millis(100)),
            }),
            ..Default::default()
        };
        let s = Settings::from_config(&cfg).expect("settings");
        assert!(s.keep(404, 0, Duration::ZERO));
        assert!(s.keep(502, 0, Duration::ZERO));
        assert!(!s.keep(200, 0, Duration::ZERO));
        assert!(s.keep(200, 1, Duration::ZERO));
        assert!(s.keep(200, 0, Duration::from_millis(101)));
        let none = Settings::from_config(&AccessLogConfig::default()).expect("settings");
        assert!(none.keep(200, 0, Duration::ZERO));
        let bad = AccessLogConfig {
            filters: Some(AccessLogFilters {
                status_codes: vec!["2xx".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            Settings::from_config(&bad),
            Err(AccessLogError::StatusRange(_))
        ));
    }

    #[test]
    fn times_and_headers() {
        assert_eq!(
            clf_time(SystemTime::UNIX_EPOCH),
            "01/Jan/1970:00:00:00 +0000"
        );
        assert_eq!(
            rfc3339_nano(SystemTime::UNIX_EPOCH + Duration::new(951_782_400, 500_000_000)),
            "2000-02-29T00:00:00.5Z"
        );
        assert_eq!(canonical_header("x-forwarded-for"), "X-Forwarded-For");
    }

    #[tokio::test]
    async fn full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a.log");
        let cfg = AccessLogConfig {
            file_path: Some(path.display().to_string()),
            buffering_size: Some(1),
            ..Default::default()
        };
        let cancel = CancellationToken::new();
        let (l, writer) = AccessLogger::start(&cfg, cancel.clone()).expect("start");
        for _ in 0..100 {
            l.log(record());
        }
        assert!(l.dropped() > 0);
        l.close();
        tokio::time::timeout(Duration::from_secs(5), writer.finished())
            .await
            .expect("writer ends after close");
        let written = std::fs::read_to_string(&path).expect("log");
        assert_eq!(
            written.lines().count() as u64 + l.dropped(),
            100,
            "every record is written or counted as dropped"
        );
        l.log(record());
        assert_eq!(written.lines().count() as u64 + l.dropped(), 101);
        cancel.cancel();
    }

    #[tokio::test]
    async fn reopen_follows_a_rotated_file_and_close_flushes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a.log");
        let cfg = AccessLogConfig {
            file_path: Some(path.display().to_string()),
            ..Default::default()
        };
        let cancel = CancellationToken::new();
        let (l, writer) = AccessLogger::start(&cfg, cancel.clone()).expect("start");
        l.log(record());
        let first = path.clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&first).map_or(0, |s| s.len()) == 0 {
            assert!(std::time::Instant::now() < deadline, "first line written");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let rotated = dir.path().join("a.log.1");
        std::fs::rename(&path, &rotated).expect("rotate");
        l.reopen();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !path.exists() {
            assert!(std::time::Instant::now() < deadline, "file reopened");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        l.log(record());
        l.close();
        tokio::time::timeout(Duration::from_secs(5), writer.finished())
            .await
            .expect("writer ends after close");
        assert_eq!(
            std::fs::read_to_string(&rotated)
                .expect("old")
                .lines()
                .count(),
            1
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("new").lines().count(),
            1
        );
        assert_eq!(l.dropped(), 0);
        cancel.cancel();
    }
}
