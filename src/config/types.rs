//! Typed static configuration, in Traefik v3's tree and names.
//!
//! Every struct here decodes from a [`crate::value::node::Node`] tree with case-insensitive keys; unknown keys are
//! errors. Sections that later features own (ACME, metrics, access log, API, Docker/Swarm providers) are fully
//! typed now so that a Traefik file or `command:` list is validated at start-up, even where a feature reads only
//! part of it. Defaults follow Traefik except where noted (and documented in `docs/differences.md`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// Go durations moved to [`crate::value::duration`], shared with the dynamic configuration; re-exported
/// here so static-configuration readers keep one import path.
pub use crate::value::duration::{parse_go_duration, GoDuration};

/// The whole static configuration (Traefik's `traefik.yml`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StaticConfig {
    /// Traefik's `global` section: accepted, nothing to do (no telemetry here).
    pub global: Option<serde_json::Value>,
    /// Default transport to HTTP backends.
    pub servers_transport: ServersTransport,
    /// Default transport to TCP backends (`docs/tcp.md`).
    pub tcp_servers_transport: Option<serde_json::Value>,
    /// Named listening addresses.
    pub entry_points: BTreeMap<String, EntryPoint>,
    /// Configuration sources.
    pub providers: Providers,
    /// `--api`: the read-only API and dashboard.
    pub api: Option<Api>,
    /// `--metrics.*`.
    pub metrics: Option<Metrics>,
    /// `--ping`.
    pub ping: Option<Ping>,
    /// `--log.*`: server log.
    pub log: Log,
    /// `--accessLog`.
    pub access_log: Option<AccessLog>,
    /// Tracing exporters: accepted for compatibility, not implemented (a warning says so).
    pub tracing: Option<serde_json::Value>,
    /// `hostResolver`: accepted for compatibility, unused.
    pub host_resolver: Option<serde_json::Value>,
    /// `certificatesResolvers.<name>.acme.*`.
    pub certificates_resolvers: BTreeMap<String, CertificateResolver>,
    /// `experimental.*`: plugins and other experiments; accepted, reported as unsupported.
    pub experimental: Option<serde_json::Value>,
    /// `core.defaultRuleSyntax`.
    pub core: Core,
    /// `spiffe`: accepted, unused.
    pub spiffe: Option<serde_json::Value>,
}

/// `core` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Core {
    /// `v2` or `v3` (default v3): the grammar of rules that do not set `ruleSyntax`.
    pub default_rule_syntax: Option<String>,
}

/// `entryPoints.<name>`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EntryPoint {
    /// `[host]:port[/tcp|/udp]`.
    pub address: String,
    /// Routers without `entryPoints` attach to the entrypoints marked `asDefault` (all, if none is).
    pub as_default: bool,
    /// Timeouts and shutdown behaviour.
    pub transport: EntryPointTransport,
    /// PROXY protocol from trusted peers (`docs/tcp.md`).
    pub proxy_protocol: Option<TrustSettings>,
    /// Which peers may set `X-Forwarded-*`.
    pub forwarded_headers: TrustSettings,
    /// HTTP settings of this entrypoint.
    pub http: EntryPointHttp,
    /// HTTP/2 settings.
    pub http2: Option<Http2>,
    /// HTTP/3: parsed, not served.
    pub http3: Option<serde_json::Value>,
    /// UDP settings (`timeout`; swarmgate's `maxSessions`), read by the UDP entrypoint setup.
    pub udp: Option<serde_json::Value>,
    /// Let ACME HTTP-01 challenges through before the entrypoint's redirections.
    #[serde(rename = "allowACMEByPass")]
    pub allow_acme_by_pass: bool,
    /// `SO_REUSEPORT` on the listener.
    pub reuse_port: bool,
}

/// `entryPoints.<name>.transport`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EntryPointTransport {
    /// Shutdown phases.
    pub life_cycle: LifeCycle,
    /// Timeouts for client connections.
    pub responding_timeouts: RespondingTimeouts,
    /// Close a keep-alive connection after this many requests (0 = unlimited).
    pub keep_alive_max_requests: u64,
    /// Close a keep-alive connection after this time (0 = unlimited).
    pub keep_alive_max_time: GoDuration,
}

/// `transport.lifeCycle`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LifeCycle {
    /// Keep accepting this long after SIGTERM (so an external balancer can notice the failing ping).
    pub request_accept_grace_timeout: GoDuration,
    /// How long in-flight requests may run after accepting stopped (default 10 s).
    #[serde(rename = "graceTimeOut")]
    pub grace_time_out: GoDuration,
}

impl Default for LifeCycle {
    fn default() -> Self {
        LifeCycle {
            request_accept_grace_timeout: GoDuration::default(),
            grace_time_out: GoDuration::secs(10),
        }
    }
}

/// `transport.respondingTimeouts`: the bounds on every state of a client connection.
///
/// Traefik's three (Go `http.Server` semantics, Traefik v3 defaults) plus two of swarmgate's own, so that a
/// client can hold no state without a bound even when `readTimeout` is switched off. The defaults are
/// tabled beside Traefik's and nginx's in `docs/differences.md` ("Timeouts").
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RespondingTimeouts {
    /// Time to read a whole request, headers and body, from its first byte (default 60 s, 0 = none).
    pub read_timeout: GoDuration,
    /// Time from the end of the request headers to the end of the response (default 0 = none).
    pub write_timeout: GoDuration,
    /// Time a connection may stay open with no request in progress, HTTP/1 keep-alive and HTTP/2 alike
    /// (default 180 s; 0 = `readTimeout`, as Go does).
    pub idle_timeout: GoDuration,
    /// swarmgate: time to receive the TLS handshake, the first bytes and the request headers (default 60 s,
    /// nginx's `client_header_timeout`; 0 = none).
    pub read_header_timeout: GoDuration,
    /// swarmgate: longest silence between two reads of a request body (default 60 s, nginx's
    /// `client_body_timeout`; a slow upload that makes progress is not cut; 0 = none).
    pub body_idle_timeout: GoDuration,
    /// swarmgate: longest wait for the client to take response bytes while a write to it is pending
    /// (default 60 s, nginx's `send_timeout`: a client that stops reading is closed even with
    /// `writeTimeout` 0; a slow download that makes progress is not cut; 0 = none).
    pub send_timeout: GoDuration,
}

impl Default for RespondingTimeouts {
    fn default() -> Self {
        RespondingTimeouts {
            read_timeout: GoDuration::secs(60),
            write_timeout: GoDuration::default(),
            idle_timeout: GoDuration::secs(180),
            read_header_timeout: GoDuration::secs(60),
            body_idle_timeout: GoDuration::secs(60),
            send_timeout: GoDuration::secs(60),
        }
    }
}

/// `forwardedHeaders` / `proxyProtocol`: which peers are trusted.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrustSettings {
    /// Trust every peer.
    pub insecure: bool,
    /// Trusted peers, IPs or CIDRs.
    #[serde(rename = "trustedIPs")]
    pub trusted_ips: Vec<String>,
    /// Extra headers to treat as hop-by-hop (Traefik v3.3 `forwardedHeaders.connection`).
    pub connection: Vec<String>,
}

/// `entryPoints.<name>.http`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EntryPointHttp {
    /// Redirect every request to another entrypoint.
    pub redirections: Option<Redirections>,
    /// Middlewares prepended to every router of this entrypoint.
    pub middlewares: Vec<String>,
    /// TLS defaults for routers on this entrypoint.
    pub tls: Option<EntryPointTls>,
    /// Keep `;` in queries (parsed).
    pub encode_query_semicolons: bool,
    /// Resolve `.`/`..` segments and duplicate slashes before routing and forward the result
    /// (default true, as Traefik; `false` keeps them).
    pub sanitize_path: Option<bool>,
    /// Largest request header block, bytes (default 1 MiB as Go's http.Server).
    pub max_header_bytes: Option<usize>,
    /// Request headers whose name contains `_`: `keep` (default), `delete` or `reject` (Traefik v3.6).
    pub underscore_headers_strategy: Option<String>,
}

/// `http.redirections`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Redirections {
    /// The one redirection Traefik has: to another entrypoint.
    pub entry_point: Option<EntryPointRedirect>,
}

/// `http.redirections.entryPoint`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EntryPointRedirect {
    /// Target entrypoint name (or `:port`).
    pub to: String,
    /// Target scheme (default https).
    pub scheme: String,
    /// 301/308 instead of 302/307 (default true).
    pub permanent: bool,
    /// Priority of the generated redirect router (default: lowest but one).
    pub priority: Option<i64>,
}

impl Default for EntryPointRedirect {
    fn default() -> Self {
        EntryPointRedirect {
            to: String::new(),
            scheme: "https".into(),
            permanent: true,
            priority: None,
        }
    }
}

/// `http.tls` on an entrypoint.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EntryPointTls {
    /// TLS options name.
    pub options: Option<String>,
    /// Resolver for routers on this entrypoint.
    pub cert_resolver: Option<String>,
    /// Explicit certificate domains.
    pub domains: Vec<crate::dynamic::Domain>,
}

/// `http2`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Http2 {
    /// Max concurrent streams per connection (default 250).
    pub max_concurrent_streams: Option<u32>,
}

/// `serversTransport`: defaults for connections to backends.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServersTransport {
    /// Skip backend certificate verification.
    pub insecure_skip_verify: bool,
    /// Extra CAs for backends.
    #[serde(rename = "rootCAs")]
    pub root_cas: Vec<String>,
    /// Idle pooled connections kept per backend (default 200).
    pub max_idle_conns_per_host: usize,
    /// Dial, response-header and idle timeouts.
    pub forwarding_timeouts: ForwardingTimeouts,
    /// SPIFFE: parsed, unused.
    pub spiffe: Option<serde_json::Value>,
}

impl Default for ServersTransport {
    fn default() -> Self {
        ServersTransport {
            insecure_skip_verify: false,
            root_cas: Vec::new(),
            max_idle_conns_per_host: 200,
            forwarding_timeouts: ForwardingTimeouts::default(),
            spiffe: None,
        }
    }
}

/// `forwardingTimeouts`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ForwardingTimeouts {
    /// Time to establish a backend connection (default 30 s) → 504 on expiry.
    pub dial_timeout: GoDuration,
    /// Time to wait for the backend's response headers (0 = none) → 504 on expiry.
    pub response_header_timeout: GoDuration,
    /// How long an idle pooled connection is kept (default 90 s).
    pub idle_conn_timeout: GoDuration,
    /// HTTP/2 ping timeouts: parsed.
    pub read_idle_timeout: GoDuration,
    /// HTTP/2 ping timeouts: parsed.
    pub ping_timeout: GoDuration,
}

impl Default for ForwardingTimeouts {
    fn default() -> Self {
        ForwardingTimeouts {
            dial_timeout: GoDuration::secs(30),
            response_header_timeout: GoDuration::default(),
            idle_conn_timeout: GoDuration::secs(90),
            read_idle_timeout: GoDuration::default(),
            ping_timeout: GoDuration::secs(15),
        }
    }
}

/// `providers`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Providers {
    /// Minimum time between two table builds caused by provider updates.
    ///
    /// Deliberate difference: defaults to 200 ms instead of Traefik's 2 s, for sub-second convergence.
    pub providers_throttle_duration: GoDuration,
    /// File provider.
    pub file: Option<FileProvider>,
    /// Docker provider (v2 `--providers.docker`, `swarmMode` included).
    pub docker: Option<DockerProvider>,
    /// Swarm provider (v3 `--providers.swarm`).
    pub swarm: Option<DockerProvider>,
    /// REST provider: parsed, not implemented.
    pub rest: Option<serde_json::Value>,
    /// HTTP provider: parsed, not implemented.
    pub http: Option<serde_json::Value>,
    /// Plugin providers: parsed, not implemented.
    pub plugin: Option<serde_json::Value>,
}

impl Default for Providers {
    fn default() -> Self {
        Providers {
            providers_throttle_duration: GoDuration(Duration::from_millis(200)),
            file: None,
            docker: None,
            swarm: None,
            rest: None,
            http: None,
            plugin: None,
        }
    }
}

/// `providers.file`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FileProvider {
    /// One dynamic configuration file.
    pub filename: Option<String>,
    /// A directory of dynamic configuration files (`.yml`, `.yaml`, `.toml`).
    pub directory: Option<String>,
    /// Reload on change.
    pub watch: bool,
    /// Go-template debugging: accepted.
    pub debug_log_generated_template: bool,
}

/// `providers.docker` / `providers.swarm` (one shape; `swarmMode*` only meaningful for docker in v2).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DockerProvider {
    /// Docker API endpoint (`unix:///var/run/docker.sock`, `tcp://host:2375`).
    pub endpoint: Option<String>,
    /// Rule for containers without one (Go template).
    pub default_rule: Option<String>,
    /// Expose containers without `traefik.enable=true` (default true).
    pub exposed_by_default: bool,
    /// Default network to reach containers on.
    pub network: Option<String>,
    /// Use the host port binding instead of the container IP.
    #[serde(rename = "useBindPortIP")]
    pub use_bind_port_ip: bool,
    /// Watch events (default true).
    pub watch: bool,
    /// Constraint expression on labels.
    pub constraints: Option<String>,
    /// TLS client settings for a TCP endpoint.
    pub tls: Option<ClientTls>,
    /// Timeout of API calls other than the event stream.
    pub http_client_timeout: GoDuration,
    /// Keep services that have no healthy server (answer 503 rather than 404).
    pub allow_empty_services: bool,
    /// v2: read Swarm services instead of containers.
    pub swarm_mode: bool,
    /// v2: resync period in swarm mode (default 15 s).
    pub swarm_mode_refresh_seconds: GoDuration,
    /// v3 swarm provider: resync period (default 15 s).
    pub refresh_seconds: GoDuration,
    /// Traefik v1 `docker.domain`: the default rule becomes `Host:<name>.<domain>` (v1 flags only).
    pub domain: Option<String>,
    /// Basic auth for a proxied endpoint.
    pub username: Option<String>,
    /// Basic auth for a proxied endpoint.
    pub password: Option<String>,
}

impl Default for DockerProvider {
    fn default() -> Self {
        DockerProvider {
            endpoint: None,
            default_rule: None,
            exposed_by_default: true,
            network: None,
            use_bind_port_ip: false,
            watch: true,
            constraints: None,
            tls: None,
            http_client_timeout: GoDuration::default(),
            allow_empty_services: false,
            swarm_mode: false,
            swarm_mode_refresh_seconds: GoDuration::secs(15),
            refresh_seconds: GoDuration::secs(15),
            domain: None,
            username: None,
            password: None,
        }
    }
}

/// TLS client settings (`providers.docker.tls`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientTls {
    /// CA bundle path.
    pub ca: Option<String>,
    /// Client certificate path.
    pub cert: Option<String>,
    /// Client key path.
    pub key: Option<String>,
    /// Skip server verification.
    pub insecure_skip_verify: bool,
}

/// `api`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Api {
    /// Serve the API on entrypoint `traefik` (:8080) without a router.
    pub insecure: bool,
    /// Serve the dashboard (default true when the API is on).
    pub dashboard: Option<bool>,
    /// Debug endpoints.
    pub debug: bool,
    /// Path prefix of API and dashboard.
    pub base_path: Option<String>,
    /// Hide the dashboard ad (accepted).
    pub disable_dashboard_ad: bool,
}

/// `metrics`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Metrics {
    /// Prometheus exporter.
    pub prometheus: Option<Prometheus>,
    /// Other exporters: parsed, not implemented.
    pub datadog: Option<serde_json::Value>,
    /// Other exporters: parsed, not implemented.
    pub statsd: Option<serde_json::Value>,
    /// Other exporters: parsed, not implemented.
    pub influx_db2: Option<serde_json::Value>,
    /// Other exporters: parsed, not implemented.
    pub otlp: Option<serde_json::Value>,
    /// v3.3 option: parsed.
    pub add_internals: bool,
}

/// `metrics.prometheus`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Prometheus {
    /// Histogram buckets in seconds.
    pub buckets: Vec<f64>,
    /// Label by entrypoint (default true).
    pub add_entry_points_labels: Option<bool>,
    /// Label by router (default false).
    pub add_routers_labels: bool,
    /// Label by service (default true).
    pub add_services_labels: Option<bool>,
    /// Entrypoint serving `/metrics` (default `traefik`).
    pub entry_point: Option<String>,
    /// Only serve through a user router to `prometheus@internal`.
    pub manual_routing: bool,
    /// Extra labels from headers.
    pub header_labels: BTreeMap<String, String>,
}

/// `ping`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Ping {
    /// Entrypoint serving `/ping` (default `traefik`).
    pub entry_point: Option<String>,
    /// Only serve through a user router to `ping@internal`.
    pub manual_routing: bool,
    /// Status during shutdown (default 503).
    pub terminating_status_code: Option<u16>,
}

/// `log`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Log {
    /// TRACE, DEBUG, INFO, WARN, ERROR, FATAL, PANIC (default ERROR in Traefik; we default to INFO
    /// so that start-up and configuration changes are visible).
    pub level: Option<String>,
    /// Log file (default stdout).
    pub file_path: Option<String>,
    /// `common` or `json`.
    pub format: Option<String>,
    /// Disable colours.
    pub no_color: bool,
    /// Rotation settings: parsed.
    pub max_size: Option<u64>,
    /// Rotation settings: parsed.
    pub max_age: Option<u64>,
    /// Rotation settings: parsed.
    pub max_backups: Option<u64>,
    /// Rotation settings: parsed.
    pub compress: bool,
}

/// `accessLog`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessLog {
    /// Output file (default stdout).
    pub file_path: Option<String>,
    /// `common` or `json`.
    pub format: Option<String>,
    /// Lines buffered before writing.
    pub buffering_size: Option<u64>,
    /// Which requests are logged.
    pub filters: Option<AccessLogFilters>,
    /// Which fields are written.
    pub fields: Option<AccessLogFields>,
    /// v3.3: also log internal routers.
    pub add_internals: bool,
}

/// `accessLog.filters`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessLogFilters {
    /// Status ranges (`200-299`).
    pub status_codes: Vec<String>,
    /// Only retried requests.
    pub retry_attempts: bool,
    /// Only slower requests.
    pub min_duration: GoDuration,
}

/// `accessLog.fields`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessLogFields {
    /// keep, drop or redact.
    pub default_mode: Option<String>,
    /// Per-field modes.
    pub names: BTreeMap<String, String>,
    /// Header modes.
    pub headers: Option<AccessLogHeaders>,
}

/// `accessLog.fields.headers`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessLogHeaders {
    /// keep, drop or redact.
    pub default_mode: Option<String>,
    /// Per-header modes.
    pub names: BTreeMap<String, String>,
}

/// `certificatesResolvers.<name>`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CertificateResolver {
    /// ACME settings.
    pub acme: Option<Acme>,
    /// Tailscale: parsed, not implemented.
    pub tailscale: Option<serde_json::Value>,
}

/// `certificatesResolvers.<name>.acme`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Acme {
    /// Account contact.
    pub email: Option<String>,
    /// Directory URL (default Let's Encrypt production).
    pub ca_server: Option<String>,
    /// Certificate lifetime in hours the CA is asked for (default 2160).
    pub certificates_duration: Option<u64>,
    /// Preferred chain by issuer CN.
    pub preferred_chain: Option<String>,
    /// `acme.json` path, or `swarm://<prefix>` (state kept in Swarm configs).
    pub storage: Option<String>,
    /// swarmgate: key file sealing private keys in `swarm://` storage (default
    /// `/run/secrets/swarmgate-acme-key`).
    pub storage_key_file: Option<String>,
    /// EC256, EC384, RSA2048, RSA4096, RSA8192.
    pub key_type: Option<String>,
    /// External account binding.
    pub eab: Option<Eab>,
    /// Extra CA certificates to trust for the ACME server.
    pub ca_certificates: Vec<String>,
    /// Also trust the system pool.
    pub ca_system_cert_pool: bool,
    /// Server name for the ACME server's certificate.
    pub ca_server_name: Option<String>,
    /// Profile (v3.4).
    pub profile: Option<String>,
    /// Email addresses (v3.4).
    pub email_addresses: Vec<String>,
    /// Disable the common name (v3.4).
    #[serde(rename = "disableCommonName")]
    pub disable_common_name: bool,
    /// HTTP-01 challenge.
    pub http_challenge: Option<HttpChallenge>,
    /// TLS-ALPN-01 challenge.
    pub tls_challenge: Option<serde_json::Value>,
    /// DNS-01 challenge (`provider`, `resolvers`, `propagation.*`, v2 keys): read by `tls::acme::dns`.
    pub dns_challenge: Option<serde_json::Value>,
    /// Timeout of one HTTP exchange with the ACME server (Traefik default 2m; 0 = default).
    pub client_timeout: GoDuration,
    /// Timeout for the ACME server's response headers (Traefik default 30s; 0 = default).
    pub client_response_header_timeout: GoDuration,
    /// Timeout for validation and finalization of an order (Traefik default 30s; 0 = default).
    pub certificate_timeout: GoDuration,
}

/// `acme.eab`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Eab {
    /// Key identifier.
    pub kid: String,
    /// Base64url HMAC key.
    pub hmac_encoded: String,
}

/// `acme.httpChallenge`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpChallenge {
    /// Entrypoint answering `/.well-known/acme-challenge/`.
    pub entry_point: String,
    /// Delay before validation (v3.4).
    pub delay: GoDuration,
}
