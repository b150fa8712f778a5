//! Provider-neutral dynamic configuration in Traefik v3's shape: routers, services, middlewares, TLS.
//!
//! Providers (file, Docker, Swarm) each produce one whole [`Configuration`] snapshot; the table builder merges
//! them, qualifying names with `@provider`. This module owns the types and the per-item decoder
//! ([`decode_configuration`]) that turns a configuration tree into a `Configuration` while isolating errors:
//! a bad router, service or middleware is dropped and reported, and its neighbours are kept.
//!
//! It does no I/O and knows nothing of requests.

pub mod snapshot;
pub mod traefik_json;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::value::node::{decode, DecodeError, Node, NodeKind, Source};
use crate::value::GoDuration;

pub use snapshot::{ProviderFeed, Snapshot};

/// One provider's whole dynamic configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Configuration {
    /// HTTP routers, services, middlewares and transports.
    pub http: HttpConfiguration,
    /// TCP routers, services, middlewares and transports.
    pub tcp: TcpConfiguration,
    /// UDP routers and services.
    pub udp: UdpConfiguration,
    /// Certificates, TLS options and stores.
    pub tls: TlsConfiguration,
    /// Items the provider left out because their explicit configuration is invalid. They are never served
    /// (and never replaced by a default item); the table lists them as `disabled` with their error so the API
    /// shows them and counts them, as Traefik does for every item it cannot build. Not part of the
    /// configuration's serialized form.
    #[serde(skip)]
    pub dropped: Vec<DroppedItem>,
}

/// An item a provider could not build from its configuration, and why (one line, naming the source).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedItem {
    /// What kind of item.
    pub kind: ItemKind,
    /// Its name, unqualified (as the provider's other items).
    pub name: String,
    /// Why it was dropped: the key or label, where it came from, and the reason.
    pub error: String,
}

impl From<&ItemError> for DroppedItem {
    fn from(e: &ItemError) -> DroppedItem {
        DroppedItem {
            kind: e.kind,
            name: e.name.clone(),
            error: e.error.to_string(),
        }
    }
}

/// One protocol's section (`http`, `tcp`): routers, services, middlewares and transports by name.
///
/// HTTP and TCP share this shape and differ only in their item types, so decoding, merging and listing are
/// written once over it; a further protocol (UDP) is one more set of type parameters and one [`Proto`],
/// not another copy of the section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Section<R, S, T> {
    /// Routers by name.
    pub routers: BTreeMap<String, R>,
    /// Services by name.
    pub services: BTreeMap<String, S>,
    /// Middlewares by name (raw: the middleware module validates them).
    pub middlewares: BTreeMap<String, Middleware>,
    /// Named transports to backends.
    pub servers_transports: BTreeMap<String, T>,
}

/// `http` section.
pub type HttpConfiguration = Section<Router, Service, ServersTransport>;

/// `tcp` section: routers, services, middlewares (`ipAllowList`, `inFlightConn`) and transports.
pub type TcpConfiguration = Section<TcpRouter, TcpService, TcpServersTransport>;

/// `udp` section: routers and services only (UDP has no middlewares or transports; the decoder reports
/// them as unknown keys, so these two maps of the shared shape stay empty).
pub type UdpConfiguration = Section<UdpRouter, UdpService, serde_json::Value>;

/// What tells one protocol section from another: its key in the tree and the kinds its items are reported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proto {
    /// Section key (`http`, `tcp`).
    pub key: &'static str,
    /// Kind of its routers.
    pub router: ItemKind,
    /// Kind of its services.
    pub service: ItemKind,
}

/// The `http` section.
pub const HTTP: Proto = Proto {
    key: "http",
    router: ItemKind::Router,
    service: ItemKind::Service,
};

/// The `tcp` section.
pub const TCP: Proto = Proto {
    key: "tcp",
    router: ItemKind::TcpRouter,
    service: ItemKind::TcpService,
};

/// The `udp` section.
pub const UDP: Proto = Proto {
    key: "udp",
    router: ItemKind::UdpRouter,
    service: ItemKind::UdpService,
};

/// An HTTP router: which requests (rule, entrypoints) go through which middlewares to which service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Router {
    /// Entrypoints this router listens on; empty means the default entrypoints.
    pub entry_points: Vec<String>,
    /// Middleware names, applied in order.
    pub middlewares: Vec<String>,
    /// Target service name.
    pub service: String,
    /// Matching rule.
    pub rule: String,
    /// `v2` or `v3`; empty means `core.defaultRuleSyntax`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_syntax: Option<String>,
    /// Explicit priority; 0 or absent means the rule's length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// TLS settings; present means the router only matches TLS requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<RouterTls>,
    /// Per-router observability switches (parsed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observability: Option<serde_json::Value>,
}

/// `tls` on a router.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RouterTls {
    /// TLS options name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// ACME resolver name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_resolver: Option<String>,
    /// Explicit certificate domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<Domain>,
    /// TCP only: pass TLS through to the backend.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub passthrough: bool,
}

/// A certificate's main name and alternative names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Domain {
    /// Main name.
    pub main: String,
    /// Subject alternative names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
}

/// An HTTP service: exactly one of its kinds is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    /// A pool of servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Weighted round robin over other services (canaries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weighted: Option<Weighted>,
    /// Mirroring: modelled, not served yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirroring: Option<serde_json::Value>,
    /// Failover: modelled, not served yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<serde_json::Value>,
}

/// `loadBalancer`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadBalancer {
    /// Session affinity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Backend servers.
    pub servers: Vec<Server>,
    /// `wrr` (default) or `p2c` (v3.4; served as wrr with a warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Active health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Forward the client's Host header (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_host_header: Option<bool>,
    /// Response flushing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_forwarding: Option<ResponseForwarding>,
    /// Named transport.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers_transport: Option<String>,
}

/// One backend server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Server {
    /// `http://ip:port`, `https://…` or `h2c://…`.
    pub url: String,
    /// Relative weight (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Keep the URL's path as a prefix (v3.2).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preserve_path: bool,
    /// Label-only shorthand: port of the container (resolved by the Docker provider).
    #[serde(skip)]
    pub port: Option<String>,
    /// Label-only shorthand: scheme (resolved by the Docker provider).
    #[serde(skip)]
    pub scheme: Option<String>,
}

/// `sticky`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sticky {
    /// Cookie-based affinity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<StickyCookie>,
}

/// `sticky.cookie`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StickyCookie {
    /// Cookie name (default derived from the service name, as Traefik).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Secure` attribute.
    pub secure: bool,
    /// `HttpOnly` attribute.
    pub http_only: bool,
    /// `none`, `lax` or `strict`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    /// `Max-Age` in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// `Path` (default `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `Domain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// `healthCheck` on a load balancer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthCheck {
    /// Override scheme.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// `http` (default) or `grpc` (not supported yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Probe path.
    pub path: String,
    /// Probe method (default GET).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Expected status (default: 2xx/3xx).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Override port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Interval (default 30 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Interval while unhealthy (default: interval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_interval: Option<GoDuration>,
    /// Probe timeout (default 5 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Host header of the probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Follow redirects (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    /// Extra probe headers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// `responseForwarding`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResponseForwarding {
    /// Flush interval (bodies are streamed frame by frame anyway; accepted for compatibility).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_interval: Option<GoDuration>,
}

/// `weighted`: a service of services.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Weighted {
    /// Child services with weights.
    pub services: Vec<WeightedService>,
    /// Affinity to a child service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Propagate health from children (accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<serde_json::Value>,
}

/// A child of a weighted service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WeightedService {
    /// Child service name.
    pub name: String,
    /// Weight (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A middleware: one type key (`stripPrefix`, `headers`, …) and its options, kept as a raw value here; the
/// middleware module validates and builds it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Middleware(pub BTreeMap<String, serde_json::Value>);

/// A named transport to backends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServersTransport {
    /// SNI for HTTPS backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Skip backend certificate checks.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
    /// Extra CAs.
    #[serde(rename = "rootCAs", skip_serializing_if = "Vec::is_empty")]
    pub root_cas: Vec<String>,
    /// Client certificates (parsed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<serde_json::Value>,
    /// Idle pool size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_idle_conns_per_host: Option<usize>,
    /// Timeouts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarding_timeouts: Option<serde_json::Value>,
    /// Use HTTP/1.1 only to HTTPS backends.
    #[serde(rename = "disableHTTP2", skip_serializing_if = "std::ops::Not::not")]
    pub disable_http2: bool,
    /// Expected peer URI (parsed).
    #[serde(rename = "peerCertURI", skip_serializing_if = "Option::is_none")]
    pub peer_cert_uri: Option<String>,
    /// SPIFFE (parsed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spiffe: Option<serde_json::Value>,
}

/// A TCP router (`HostSNI` rules).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpRouter {
    /// Entrypoints.
    pub entry_points: Vec<String>,
    /// Middlewares.
    pub middlewares: Vec<String>,
    /// Target service.
    pub service: String,
    /// `HostSNI(...)` rule.
    pub rule: String,
    /// Rule grammar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_syntax: Option<String>,
    /// Priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// TLS settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<RouterTls>,
}

/// A TCP service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpService {
    /// Servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<TcpLoadBalancer>,
    /// Weighted children.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weighted: Option<Weighted>,
}

/// TCP `loadBalancer`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpLoadBalancer {
    /// Servers by address.
    pub servers: Vec<TcpServer>,
    /// PROXY protocol to backends (deprecated in Traefik v3.5 for the transport's, still honoured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<TcpProxyProtocol>,
    /// Named transport.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers_transport: Option<String>,
    /// Close delay in milliseconds once one side has closed (deprecated for the transport's; negative: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_delay: Option<i64>,
}

/// `proxyProtocol` towards TCP backends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpProxyProtocol {
    /// `1` or `2` (Traefik's default when the section is present: 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// A named TCP transport (`tcp.serversTransports.<name>`, and the static `tcpServersTransport`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpServersTransport {
    /// TCP keep-alive period on backend connections (default 15 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dial_keep_alive: Option<GoDuration>,
    /// Connect timeout (default 30 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dial_timeout: Option<GoDuration>,
    /// Delay before closing once one side closed (default 100 ms; a negative value: no bound). Kept raw:
    /// Traefik accepts a Go duration or a number of seconds, negative included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_delay: Option<serde_json::Value>,
    /// TLS to the backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TcpTransportTls>,
    /// PROXY protocol towards the backend (Traefik v3.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<TcpProxyProtocol>,
}

/// `tls` of a TCP transport.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpTransportTls {
    /// SNI and name checked in the backend's certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Skip backend certificate checks.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
    /// Extra CAs.
    #[serde(rename = "rootCAs", skip_serializing_if = "Vec::is_empty")]
    pub root_cas: Vec<String>,
    /// Client certificates (parsed, not sent yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<serde_json::Value>,
    /// Expected peer URI (parsed).
    #[serde(rename = "peerCertURI", skip_serializing_if = "Option::is_none")]
    pub peer_cert_uri: Option<String>,
    /// SPIFFE (parsed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spiffe: Option<serde_json::Value>,
}

/// A TCP backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpServer {
    /// `ip:port`.
    pub address: String,
    /// Label shorthand: port.
    #[serde(skip)]
    pub port: Option<String>,
    /// TLS to the backend.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    /// Relative weight (default 1; Traefik v3.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A UDP router: UDP has no rules, so a router only binds entrypoints to a service (Traefik's `UDPRouter`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UdpRouter {
    /// UDP entrypoints; empty means every UDP entrypoint (as Traefik).
    pub entry_points: Vec<String>,
    /// Target UDP service.
    pub service: String,
}

/// A UDP service: exactly one of its kinds is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UdpService {
    /// Servers, one picked per session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<UdpLoadBalancer>,
    /// Weighted round robin over other UDP services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weighted: Option<UdpWeighted>,
}

/// UDP `loadBalancer`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UdpLoadBalancer {
    /// Servers by address.
    pub servers: Vec<UdpServer>,
}

/// A UDP backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UdpServer {
    /// `host:port`.
    pub address: String,
    /// Label shorthand: port (resolved by the Docker provider).
    #[serde(skip)]
    pub port: Option<String>,
}

/// UDP `weighted`: children with weights (no stickiness: a session already sticks).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UdpWeighted {
    /// Child UDP services with weights.
    pub services: Vec<WeightedService>,
}

/// `tls` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsConfiguration {
    /// Certificates from files.
    pub certificates: Vec<CertificateFile>,
    /// Named TLS options.
    pub options: BTreeMap<String, TlsOptions>,
    /// Named stores (`default`).
    pub stores: BTreeMap<String, TlsStore>,
}

/// A certificate given as files (or inline PEM, as Traefik accepts).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CertificateFile {
    /// PEM file path or inline PEM.
    pub cert_file: String,
    /// PEM file path or inline PEM.
    pub key_file: String,
    /// Stores this certificate goes to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<String>,
}

/// Named TLS options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsOptions {
    /// `VersionTLS12`, `VersionTLS13`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    /// Highest version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
    /// Go cipher suite names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// Curve names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub curve_preferences: Vec<String>,
    /// mTLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
    /// Refuse handshakes without a matching certificate.
    #[serde(rename = "sniStrict", skip_serializing_if = "std::ops::Not::not")]
    pub sni_strict: bool,
    /// ALPN protocols offered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alpn_protocols: Vec<String>,
    /// Accepted, no effect with rustls.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub prefer_server_cipher_suites: bool,
    /// Disable session tickets.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable_session_tickets: bool,
}

/// `clientAuth`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientAuth {
    /// CA files for client certificates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ca_files: Vec<String>,
    /// `NoClientCert`, `RequestClientCert`, `RequireAnyClientCert`, `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_auth_type: Option<String>,
}

/// A TLS store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsStore {
    /// Served when no certificate matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_certificate: Option<CertificateFile>,
    /// Default certificate from a resolver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_generated_cert: Option<serde_json::Value>,
}

/// What kind of item a configuration problem belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ItemKind {
    /// An HTTP router.
    Router,
    /// An HTTP service.
    Service,
    /// An HTTP middleware.
    Middleware,
    /// A TCP router.
    TcpRouter,
    /// A TCP service.
    TcpService,
    /// A UDP router.
    UdpRouter,
    /// A UDP service.
    UdpService,
    /// A servers transport.
    ServersTransport,
    /// TLS certificates, options or stores.
    Tls,
    /// The whole configuration.
    Configuration,
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ItemKind::Router => "router",
            ItemKind::Service => "service",
            ItemKind::Middleware => "middleware",
            ItemKind::TcpRouter => "TCP router",
            ItemKind::TcpService => "TCP service",
            ItemKind::UdpRouter => "UDP router",
            ItemKind::UdpService => "UDP service",
            ItemKind::ServersTransport => "servers transport",
            ItemKind::Tls => "TLS configuration",
            ItemKind::Configuration => "configuration",
        })
    }
}

/// One item dropped from a configuration, and why. Neighbours of the item are unaffected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{kind} `{name}` dropped: {error}")]
pub struct ItemError {
    /// What kind of item.
    pub kind: ItemKind,
    /// Its name (unqualified).
    pub name: String,
    /// The decoding error (key, source, reason).
    pub error: DecodeError,
}

const TOP_KEYS: &[&str] = &["http", "tcp", "udp", "tls"];

/// Sections (Go pointers to structs in Traefik's model) that mean "absent" when written `false`.
const FALSE_SECTIONS: &[&str] = &[
    "sticky",
    "cookie",
    "tls",
    "healthCheck",
    "responseForwarding",
    "proxyProtocol",
];
const SECTION_KEYS: &[&str] = &["routers", "services", "middlewares", "serversTransports"];
const TLS_KEYS: &[&str] = &["certificates", "options", "stores"];

/// Decodes a dynamic configuration tree item by item.
///
/// Each router, service, middleware and transport is decoded on its own: one that fails is left out and
/// reported in the returned list, its neighbours are kept. Unknown top-level sections are reported too (and
/// ignored). Called by the file provider and the Docker label parser; pure.
pub fn decode_configuration(root: &Node) -> (Configuration, Vec<ItemError>) {
    // `sticky=false`, a router's `tls=false`, …: no such section, as Traefik reads them.
    let mut pruned = root.clone();
    crate::value::node::drop_false_sections(&mut pruned, FALSE_SECTIONS);
    let root = &pruned;
    let mut cfg = Configuration::default();
    let mut errors = Vec::new();
    let NodeKind::Map(top) = &root.kind else {
        if !matches!(&root.kind, NodeKind::Scalar(s) if s.is_empty()) {
            errors.push(whole(
                root,
                "",
                "expected a mapping with `http`, `tcp` or `tls`",
            ));
        }
        return (cfg, errors);
    };
    for (key, node) in top {
        match canonical(key, TOP_KEYS) {
            Some("http") => decode_section(node, HTTP, &mut cfg.http, &mut errors),
            Some("tcp") => decode_section(node, TCP, &mut cfg.tcp, &mut errors),
            Some("udp") => decode_udp(node, &mut cfg.udp, &mut errors),
            Some(_) => decode_tls(node, &mut cfg.tls, &mut errors),
            None => errors.push(unknown(node, key, TOP_KEYS, "")),
        }
    }
    (cfg, errors)
}

/// One protocol section, item by item; the same for every protocol but for its item types and kinds.
fn decode_section<R, S, T>(
    node: &Node,
    proto: Proto,
    out: &mut Section<R, S, T>,
    errors: &mut Vec<ItemError>,
) where
    R: serde::de::DeserializeOwned,
    S: serde::de::DeserializeOwned,
    T: serde::de::DeserializeOwned,
{
    let p = proto.key;
    for (k, n) in entries(node, p, errors) {
        match canonical(k, SECTION_KEYS) {
            Some("routers") => decode_items(
                n,
                &format!("{p}.routers"),
                proto.router,
                &mut out.routers,
                errors,
            ),
            Some("services") => decode_items(
                n,
                &format!("{p}.services"),
                proto.service,
                &mut out.services,
                errors,
            ),
            Some("middlewares") => decode_items(
                n,
                &format!("{p}.middlewares"),
                ItemKind::Middleware,
                &mut out.middlewares,
                errors,
            ),
            Some(_) => decode_items(
                n,
                &format!("{p}.serversTransports"),
                ItemKind::ServersTransport,
                &mut out.servers_transports,
                errors,
            ),
            None => errors.push(unknown(n, &format!("{p}.{k}"), SECTION_KEYS, p)),
        }
    }
}

/// The `udp` section: routers and services item by item, as the other protocols; `middlewares` and
/// `serversTransports` do not exist for UDP and are reported as unknown keys unless empty (the shared
/// section shape writes them empty, and what swarmgate writes must read back).
fn decode_udp(node: &Node, out: &mut UdpConfiguration, errors: &mut Vec<ItemError>) {
    const UDP_KEYS: &[&str] = &["routers", "services"];
    let empty = |n: &Node| match &n.kind {
        NodeKind::Map(m) => m.is_empty(),
        NodeKind::Scalar(s) => s.is_empty(),
        _ => false,
    };
    if let NodeKind::Map(items) = &node.kind {
        for (k, n) in items {
            let shared = canonical(k, SECTION_KEYS).is_some();
            if canonical(k, UDP_KEYS).is_none() && !(shared && empty(n)) {
                errors.push(unknown(n, &format!("udp.{k}"), UDP_KEYS, "udp"));
            }
        }
        let mut kept = node.clone();
        if let NodeKind::Map(items) = &mut kept.kind {
            items.retain(|(k, _)| canonical(k, UDP_KEYS).is_some());
        }
        decode_section(&kept, UDP, out, errors);
    } else {
        decode_section(node, UDP, out, errors);
    }
}

/// The `tls` section: certificates as one list, options and stores item by item.
fn decode_tls(node: &Node, tls: &mut TlsConfiguration, errors: &mut Vec<ItemError>) {
    for (k, n) in entries(node, "tls", errors) {
        let path = format!("tls.{}", canonical(k, TLS_KEYS).unwrap_or(k));
        match canonical(k, TLS_KEYS) {
            Some("certificates") => match decode(n, &path) {
                Ok(v) => tls.certificates = v,
                Err(error) => errors.push(ItemError {
                    kind: ItemKind::Tls,
                    name: path,
                    error,
                }),
            },
            Some("options") => decode_items(n, &path, ItemKind::Tls, &mut tls.options, errors),
            Some(_) => decode_items(n, &path, ItemKind::Tls, &mut tls.stores, errors),
            None => errors.push(unknown(n, &path, TLS_KEYS, "tls")),
        }
    }
}

fn canonical<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known.iter().find(|k| k.eq_ignore_ascii_case(key)).copied()
}

fn whole(node: &Node, key: &str, message: &str) -> ItemError {
    ItemError {
        kind: ItemKind::Configuration,
        name: key.to_string(),
        error: DecodeError {
            key: key.to_string(),
            origin: node.source.clone(),
            message: message.to_string(),
        },
    }
}

fn unknown(node: &Node, path: &str, known: &[&str], parent: &str) -> ItemError {
    let last = path.rsplit('.').next().unwrap_or(path);
    let mut message = "unknown key".to_string();
    if let Some(near) = crate::value::node::nearest(last, known) {
        let full = if parent.is_empty() {
            near.to_string()
        } else {
            format!("{parent}.{near}")
        };
        message.push_str(&format!("; did you mean `{full}`?"));
    }
    whole(node, path, &message)
}

fn entries<'n>(node: &'n Node, path: &str, errors: &mut Vec<ItemError>) -> &'n [(String, Node)] {
    match &node.kind {
        NodeKind::Map(e) => e,
        NodeKind::Scalar(s) if s.is_empty() => &[],
        _ => {
            errors.push(whole(node, path, "expected a section"));
            &[]
        }
    }
}

fn decode_items<T: serde::de::DeserializeOwned>(
    node: &Node,
    path: &str,
    kind: ItemKind,
    out: &mut BTreeMap<String, T>,
    errors: &mut Vec<ItemError>,
) {
    for (name, item) in entries(node, path, errors) {
        match decode::<T>(item, &format!("{path}.{name}")) {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(error) => errors.push(ItemError {
                kind,
                name: name.clone(),
                error,
            }),
        }
    }
}

/// Splits `name@provider` into its parts; a name without `@` has no provider.
pub fn split_qualified(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once('@') {
        Some((n, p)) => (n, Some(p)),
        None => (name, None),
    }
}

/// Qualifies `name` with `provider` unless it already names one (`api@internal`).
///
/// Runs for every router, service and middleware of every table build, so it builds the string in one
/// allocation of the exact size rather than through `format!`.
pub fn qualify(name: &str, provider: &str) -> String {
    if name.contains('@') {
        name.to_string()
    } else {
        let mut q = String::with_capacity(name.len() + 1 + provider.len());
        q.push_str(name);
        q.push('@');
        q.push_str(provider);
        q
    }
}

/// Source used for values that a provider synthesizes.
pub fn internal_source() -> Source {
    Source::Internal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sources::from_yaml;

    #[test]
    fn a_bad_router_does_not_take_its_neighbours() {
        let text = r#"
http:
  routers:
    good:
      rule: "Host(`a`)"
      service: s
    bad:
      rule: "Host(`b`)"
      priority: high
      service: s
  services:
    s:
      loadBalancer:
        servers:
          - url: http://127.0.0.1:1
            weight: 2
        sticky:
          cookie: {}
"#;
        let node = from_yaml(text, "d.yml").expect("yaml");
        let (cfg, errors) = decode_configuration(&node);
        assert!(cfg.http.routers.contains_key("good"));
        assert!(!cfg.http.routers.contains_key("bad"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].name, "bad");
        assert_eq!(errors[0].error.key, "http.routers.bad.priority");
        assert!(
            matches!(errors[0].error.origin, Source::File { line: 9, .. }),
            "{:?}",
            errors[0].error.origin
        );
        let lb = cfg.http.services["s"].load_balancer.as_ref().expect("lb");
        assert_eq!(lb.servers[0].weight, Some(2));
        assert!(lb.sticky.as_ref().and_then(|s| s.cookie.as_ref()).is_some());
    }

    #[test]
    fn unknown_sections_are_reported_with_suggestion() {
        let node = from_yaml("htp:\n  routers: {}\nhttp:\n  router: {}\n", "d.yml").expect("yaml");
        let (_, errors) = decode_configuration(&node);
        assert_eq!(errors.len(), 2);
        assert!(errors[0].error.message.contains("`http`"));
        assert!(errors[1].error.message.contains("`http.routers`"));
    }

    #[test]
    fn udp_items_decode_one_by_one() {
        let text = r#"
udp:
  routers:
    dns:
      entryPoints: [dns]
      service: dns
    bad:
      service: [x]
  services:
    dns:
      loadBalancer:
        servers:
          - address: "10.0.0.1:53"
    w:
      weighted:
        services: [{name: dns, weight: 2}]
  middlewares:
    m: {x: 1}
  serversTransports: {}
"#;
        let node = from_yaml(text, "d.yml").expect("yaml");
        let (cfg, errors) = decode_configuration(&node);
        assert_eq!(cfg.udp.routers["dns"].entry_points, ["dns"]);
        assert_eq!(
            cfg.udp.services["dns"]
                .load_balancer
                .as_ref()
                .map(|lb| lb.servers[0].address.as_str()),
            Some("10.0.0.1:53")
        );
        assert_eq!(
            cfg.udp.services["w"]
                .weighted
                .as_ref()
                .map(|w| w.services[0].weight),
            Some(Some(2))
        );
        assert!(!cfg.udp.routers.contains_key("bad"));
        let what: Vec<(ItemKind, &str)> = errors
            .iter()
            .map(|e| (e.kind, e.error.key.as_str()))
            .collect();
        assert_eq!(
            what,
            [
                (ItemKind::Configuration, "udp.middlewares"),
                (ItemKind::UdpRouter, "udp.routers.bad.service")
            ]
        );
    }

    #[test]
    fn qualified_names() {
        assert_eq!(split_qualified("a@file"), ("a", Some("file")));
        assert_eq!(split_qualified("a"), ("a", None));
        assert_eq!(qualify("a", "docker"), "a@docker");
        assert_eq!(qualify("api@internal", "docker"), "api@internal");
    }
}
