//! Labels → dynamic configuration: the pure heart of the Docker and Swarm providers.
//!
//! Input: one [`Workload`] (a container, or a Swarm service with its running tasks' addresses) and the
//! provider's [`Settings`]. Output: a [`Built`] with that workload's [`Configuration`] and a list of
//! [`LabelError`]s, each naming the container or service, the label and the reason. [`merge`] then combines
//! workloads the way Traefik does (identical definitions merged, servers unioned; conflicting ones dropped).
//!
//! The derivation follows Traefik v2/v3 (`pkg/provider/docker/config.go`, `pkg/provider/configuration.go`):
//! labels under `traefik.http.`, `traefik.tcp.`, `traefik.udp.` and `traefik.tls.stores.default.` are read
//! into the same configuration tree the file provider uses (case-insensitive keys, comma lists, `true` for a
//! section with defaults, `name[0]` list indexes); `loadbalancer.server.{port,scheme}` name the port and scheme
//! of the servers; a workload without a service gets one named after it (normalized), a workload without a
//! router gets one with `defaultRule`, a router without `service` is bound to the only service.
//!
//! Traefik v1 labels (`traefik.port`, `traefik.frontend.rule`, `traefik.backend.*`, …) are translated into
//! that model first; each translation is reported as a [`Built::notes`] line giving the modern spelling.
//!
//! **Deliberate difference**: Traefik drops a whole container when one of its labels is bad; here only the
//! router, service or middleware the label belongs to is dropped, and its neighbours keep serving.
//!
//! No I/O, no clock, no randomness: the provider and `swarmgate check` call the same functions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use sha1::{Digest, Sha1};

use super::constraints::Constraint;
use super::template::{normalize, Model, Template};
use crate::dynamic::{
    decode_configuration, Configuration, DroppedItem, ItemError, ItemKind, LoadBalancer, Server,
    Service, TcpLoadBalancer, TcpServer, TcpService,
};
use crate::rule::Syntax;
use crate::value::node::{Node, NodeKind, Source};

/// Traefik's default `defaultRule`.
pub const DEFAULT_RULE: &str = "Host(`{{ normalize .Name }}`)";

/// Which kind of Docker object the provider reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain containers (compose or `docker run`).
    Containers,
    /// Swarm services and their tasks.
    Swarm,
}

/// The provider-wide settings the label function needs; built once from the static configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Containers or Swarm services.
    pub mode: Mode,
    /// The provider's own label namespace: `docker` (v2 `providers.docker`, also in swarm mode) or `swarm`
    /// (v3 `providers.swarm`). The swarm provider also reads `traefik.docker.*` for v1/v2 stacks.
    pub namespace: &'static str,
    /// Expose workloads without `traefik.enable=true`.
    pub exposed_by_default: bool,
    /// `defaultRule`, parsed.
    pub default_rule: Template,
    /// Traefik v1 `docker.domain`: when set and `defaultRule` is not, the default rule is v1's
    /// `Host:<name with _ and / as ->.<domain>`.
    pub v1_domain: Option<String>,
    /// `constraints`, parsed.
    pub constraints: Option<Constraint>,
    /// Keep services with no server (503 instead of 404).
    pub allow_empty_services: bool,
    /// `core.defaultRuleSyntax`: how rules without `ruleSyntax` are checked.
    pub default_syntax: Syntax,
}

impl Settings {
    /// Settings with Traefik's defaults for `mode` (namespace `docker` for containers, `swarm` for Swarm).
    pub fn new(mode: Mode) -> Settings {
        Settings {
            mode,
            namespace: match mode {
                Mode::Containers => "docker",
                Mode::Swarm => "swarm",
            },
            exposed_by_default: true,
            default_rule: Template::traefik_default(),
            v1_domain: None,
            constraints: None,
            allow_empty_services: false,
            default_syntax: Syntax::V3,
        }
    }
}

/// One container or Swarm service as the label function sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workload {
    /// Traefik's `.Name`: compose `service_project`, the Swarm service name or the container name (not
    /// normalized yet).
    pub name: String,
    /// The container name without `/` (for Swarm: the service name). Used in messages and templates.
    pub container_name: String,
    /// All labels (container labels, or the service's `deploy.labels`).
    pub labels: BTreeMap<String, String>,
    /// Exposed ports of a container, for the "lowest exposed port" rule; empty for Swarm services.
    pub exposed_ports: Vec<u16>,
    /// Addresses of the servers (task or container IPs on the chosen network, the VIP with `lbswarm`, or a
    /// host name offline); one server per address.
    pub addresses: Vec<String>,
}

impl Workload {
    fn owner(&self) -> &str {
        if self.container_name.is_empty() {
            &self.name
        } else {
            &self.container_name
        }
    }
}

/// A problem with a label: the item it belongs to is dropped (or the workload, for workload-wide labels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelError {
    /// The container or service (several, comma-separated, for conflicts).
    pub owner: String,
    /// Kind of the dropped item (`configuration` when the whole workload is skipped).
    pub kind: ItemKind,
    /// Name of the dropped item.
    pub item: String,
    /// The offending label key (empty when no single label is at fault).
    pub label: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} `{}` dropped", self.owner, self.kind, self.item)?;
        if !self.label.is_empty() {
            write!(f, ": label `{}`", self.label)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for LabelError {}

/// Workload-wide settings read from `traefik.enable` and the provider's own namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadOptions {
    /// Whether the provider should consider the workload at all.
    pub enable: bool,
    /// `traefik.<namespace>.network`: the network to reach it on.
    pub network: Option<String>,
    /// `traefik.<namespace>.lbswarm` (or v1 `traefik.backend.loadbalancer.swarm`): use the service VIP.
    pub lbswarm: bool,
    /// Why the workload is skipped, when `enable` is false.
    pub skipped: Option<String>,
}

fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") || s == "1" || s.eq_ignore_ascii_case("t") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") || s == "0" || s.eq_ignore_ascii_case("f") {
        Some(false)
    } else {
        None
    }
}

fn get_ci<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> Option<(&'a String, &'a String)> {
    labels.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))
}

/// Reads the workload-wide options (enable, network, lbswarm) and applies `exposedByDefault` and the
/// constraints. An unreadable `traefik.enable`, or `traefik.docker.*` and `traefik.swarm.*` on the same
/// Swarm service, is an error that skips the workload (as Traefik does).
pub fn options(w: &Workload, s: &Settings) -> Result<WorkloadOptions, LabelError> {
    let owner = w.owner();
    let werr = |label: &str, reason: String| LabelError {
        owner: owner.to_string(),
        kind: ItemKind::Configuration,
        item: owner.to_string(),
        label: label.to_string(),
        reason,
    };
    let mut o = WorkloadOptions {
        enable: s.exposed_by_default,
        ..Default::default()
    };
    if let Some((k, v)) = get_ci(&w.labels, "traefik.enable") {
        o.enable = parse_bool(v).ok_or_else(|| werr(k, format!("`{v}` is not true or false")))?;
    }
    let has = |ns: &str| {
        let p = format!("traefik.{ns}.");
        w.labels.keys().any(|k| {
            k.len() > p.len() && k.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
        })
    };
    let mut namespaces = vec![s.namespace];
    if s.mode == Mode::Swarm && s.namespace == "swarm" {
        if has("docker") && has("swarm") {
            return Err(werr("traefik.swarm.*", "both `traefik.docker.*` and `traefik.swarm.*` labels are set; use `traefik.swarm.*`".into()));
        }
        namespaces.push("docker");
    }
    for ns in namespaces {
        if let Some((_, v)) = get_ci(&w.labels, &format!("traefik.{ns}.network")) {
            o.network = Some(v.trim().to_string()).filter(|n| !n.is_empty());
        }
        if let Some((k, v)) = get_ci(&w.labels, &format!("traefik.{ns}.lbswarm")) {
            o.lbswarm =
                parse_bool(v).ok_or_else(|| werr(k, format!("`{v}` is not true or false")))?;
        }
    }
    if let Some((k, v)) = get_ci(&w.labels, "traefik.backend.loadbalancer.swarm") {
        o.lbswarm = parse_bool(v).ok_or_else(|| werr(k, format!("`{v}` is not true or false")))?;
    }
    if !o.enable {
        o.skipped = Some(if get_ci(&w.labels, "traefik.enable").is_some() {
            "`traefik.enable=false`".into()
        } else {
            "not exposed by default and no `traefik.enable=true`".into()
        });
    } else if let Some(c) = &s.constraints {
        if !c.matches(&w.labels) {
            o.enable = false;
            o.skipped = Some("does not match the provider's constraints".into());
        }
    }
    Ok(o)
}

/// One workload's contribution.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Built {
    /// Routers, services and middlewares of this workload.
    pub config: Configuration,
    /// Items dropped, one per bad label.
    pub errors: Vec<LabelError>,
    /// Deprecation notes for translated v1 labels and other non-fatal remarks.
    pub notes: Vec<String>,
}

/// A label after v1 translation: key to decode, value, and the key the user actually wrote.
struct Entry {
    key: String,
    value: String,
    written: String,
}

const V1_PREFIXES: &[&str] = &[
    "traefik.port",
    "traefik.protocol",
    "traefik.weight",
    "traefik.backend",
    "traefik.frontend.",
];

fn is_v1(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    V1_PREFIXES.iter().any(|p| {
        k == *p || (k.starts_with(p) && (p.ends_with('.') || k[p.len()..].starts_with('.')))
    })
}

/// Translates v1 labels into v2/v3 ones; returns the entries and deprecation notes.
fn translate_v1(
    w: &Workload,
    s: &Settings,
    notes: &mut Vec<String>,
    errors: &mut Vec<LabelError>,
) -> Vec<Entry> {
    let owner = w.owner();
    let mut out: Vec<Entry> = Vec::new();
    let v1: BTreeMap<String, (String, String)> = w
        .labels
        .iter()
        .filter(|(k, _)| is_v1(k))
        .map(|(k, v)| (k.to_ascii_lowercase(), (k.clone(), v.clone())))
        .collect();
    for (k, v) in &w.labels {
        if !is_v1(k) {
            out.push(Entry {
                key: k.clone(),
                value: v.clone(),
                written: k.clone(),
            });
        }
    }
    let has_v1_rule = v1.contains_key("traefik.frontend.rule");
    let v1_default = s.v1_domain.is_some()
        && !w
            .labels
            .keys()
            .any(|k| k.to_ascii_lowercase().starts_with("traefik.http.routers."));
    if v1.is_empty() && !v1_default {
        return out;
    }
    let backend = match v1.get("traefik.backend") {
        Some((_, b)) if !b.trim().is_empty() => normalize(b),
        _ => normalize(&w.name),
    };
    let svc = format!("traefik.http.services.{backend}.loadbalancer");
    let rtr = format!("traefik.http.routers.{backend}");
    let mut push = |key: String, value: String, written: &str, notes: &mut Vec<String>| {
        notes.push(format!(
            "{owner}: label `{written}` is Traefik v1; read as `{key}={value}`"
        ));
        out.push(Entry {
            key,
            value,
            written: written.to_string(),
        });
    };
    let mut middlewares: Vec<String> = Vec::new();
    let mut rule_failed = false;
    for (lk, (written, value)) in &v1 {
        let value = value.clone();
        match lk.as_str() {
            "traefik.port" => push(format!("{svc}.server.port"), value, written, notes),
            "traefik.protocol" => push(format!("{svc}.server.scheme"), value, written, notes),
            "traefik.weight" => push(format!("{svc}.server.weight"), value, written, notes),
            "traefik.backend" => notes.push(format!("{owner}: label `{written}` is Traefik v1; the service is named `{backend}`")),
            "traefik.backend.loadbalancer.swarm" => notes.push(format!("{owner}: label `{written}` is Traefik v1; read as `traefik.{}.lbswarm={value}`", s.namespace)),
            "traefik.backend.loadbalancer.sticky" => {
                if parse_bool(&value) == Some(true) {
                    push(format!("{svc}.sticky.cookie.name"), "_TRAEFIK_BACKEND".into(), written, notes);
                }
            }
            "traefik.backend.loadbalancer.stickiness" => {
                if parse_bool(&value) == Some(true) {
                    let name = match v1.get("traefik.backend.loadbalancer.stickiness.cookiename") {
                        Some((_, n)) if !n.is_empty() => n.clone(),
                        _ => v1_cookie_name(&backend),
                    };
                    push(format!("{svc}.sticky.cookie.name"), name, written, notes);
                }
            }
            "traefik.backend.loadbalancer.stickiness.cookiename" => {}
            "traefik.backend.loadbalancer.method" => notes.push(format!("{owner}: label `{written}` is Traefik v1 and has no v2 equivalent (weighted round robin is used)")),
            "traefik.backend.healthcheck.path" => push(format!("{svc}.healthcheck.path"), value, written, notes),
            "traefik.backend.healthcheck.interval" => push(format!("{svc}.healthcheck.interval"), value, written, notes),
            "traefik.backend.healthcheck.timeout" => push(format!("{svc}.healthcheck.timeout"), value, written, notes),
            "traefik.backend.healthcheck.port" => push(format!("{svc}.healthcheck.port"), value, written, notes),
            "traefik.backend.healthcheck.scheme" => push(format!("{svc}.healthcheck.scheme"), value, written, notes),
            "traefik.backend.healthcheck.hostname" => push(format!("{svc}.healthcheck.hostname"), value, written, notes),
            "traefik.frontend.rule" => match translate_v1_rule(&value) {
                Ok(t) => {
                    if !t.rule.is_empty() {
                        push(format!("{rtr}.rule"), t.rule, written, notes);
                        push(format!("{rtr}.ruleSyntax"), "v2".into(), written, notes);
                    }
                    for (i, p) in t.strip_prefixes.iter().enumerate() {
                        push(format!("traefik.http.middlewares.{backend}-stripprefix.stripPrefix.prefixes[{i}]"), p.clone(), written, notes);
                    }
                    if !t.strip_prefixes.is_empty() {
                        middlewares.push(format!("{backend}-stripprefix"));
                    }
                    if let Some(re) = t.strip_regex {
                        push(format!("traefik.http.middlewares.{backend}-stripprefixregex.stripPrefixRegex.regex[0]"), re, written, notes);
                        middlewares.push(format!("{backend}-stripprefixregex"));
                    }
                    if let Some(p) = t.add_prefix {
                        push(format!("traefik.http.middlewares.{backend}-addprefix.addPrefix.prefix"), p, written, notes);
                        middlewares.push(format!("{backend}-addprefix"));
                    }
                }
                Err(reason) => {
                    rule_failed = true;
                    errors.push(LabelError {
                        owner: owner.to_string(),
                        kind: ItemKind::Router,
                        item: backend.clone(),
                        label: written.clone(),
                        reason,
                    })
                }
            },
            "traefik.frontend.entrypoints" => push(format!("{rtr}.entryPoints"), value, written, notes),
            "traefik.frontend.priority" => push(format!("{rtr}.priority"), value, written, notes),
            "traefik.frontend.passhostheader" => push(format!("{svc}.passHostHeader"), value, written, notes),
            "traefik.frontend.redirect.entrypoint" => {
                let scheme = if value.to_ascii_lowercase().contains("http") && !value.eq_ignore_ascii_case("https") { "http" } else { "https" };
                push(format!("traefik.http.middlewares.{backend}-redirect.redirectScheme.scheme"), scheme.into(), written, notes);
                middlewares.insert(0, format!("{backend}-redirect"));
            }
            "traefik.frontend.redirect.permanent" => push(format!("traefik.http.middlewares.{backend}-redirect.redirectScheme.permanent"), value, written, notes),
            "traefik.frontend.auth.basic.users" | "traefik.frontend.auth.basic" => {
                for (i, u) in value.split(',').map(str::trim).filter(|u| !u.is_empty()).enumerate() {
                    push(format!("traefik.http.middlewares.{backend}-auth.basicAuth.users[{i}]"), u.to_string(), written, notes);
                }
                let at = usize::from(middlewares.first().is_some_and(|m| m.ends_with("-redirect")));
                middlewares.insert(at, format!("{backend}-auth"));
            }
            _ => notes.push(format!("{owner}: label `{written}` is Traefik v1 and is not translated; it has no effect")),
        }
    }
    if !has_v1_rule {
        if let Some(domain) = &s.v1_domain {
            let sub = w.name.trim_start_matches('/').replace(['_', '/'], "-");
            let rule = format!("Host(`{sub}.{domain}`)");
            out.push(Entry {
                key: format!("{rtr}.rule"),
                value: rule,
                written: "traefik.frontend.rule".into(),
            });
        }
    }
    if rule_failed {
        // The frontend the user wrote is invalid: it is dropped (reported above), and neither its middlewares
        // nor an implicit router take its place.
        middlewares.clear();
    }
    if !middlewares.is_empty() {
        out.push(Entry {
            key: format!("{rtr}.middlewares"),
            value: middlewares.join(","),
            written: "traefik.frontend.rule".into(),
        });
    }
    if !out.iter().any(|e| {
        e.key.to_ascii_lowercase().starts_with(&format!(
            "traefik.http.routers.{}.",
            backend.to_ascii_lowercase()
        ))
    }) && !v1.is_empty()
        && !rule_failed
    {
        // A v1 workload always had a frontend; make the implicit router explicit so that it is named after
        // the backend, as v1 named frontends after backends.
        out.push(Entry {
            key: format!("{rtr}.service"),
            value: backend.clone(),
            written: "traefik.backend".into(),
        });
    }
    // v2/v3 labels win over translations of the same key.
    let mut seen = BTreeSet::new();
    out.retain(|e| seen.insert(e.key.to_ascii_lowercase()));
    out
}

/// v1's generated stickiness cookie name: `_` and the first 5 hex digits of SHA-1 of
/// `_TRAEFIK_BACKEND_backend-<name>`.
pub fn v1_cookie_name(backend: &str) -> String {
    let digest = Sha1::digest(format!("_TRAEFIK_BACKEND_backend-{backend}").as_bytes());
    let hex = hex::encode(digest);
    format!("_{}", &hex[..5])
}

/// A v1 frontend rule in v2 terms.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct V1Rule {
    /// v2-syntax rule (empty when the v1 rule only had modifiers).
    pub rule: String,
    /// `PathPrefixStrip` / `PathStrip` values.
    pub strip_prefixes: Vec<String>,
    /// `PathPrefixStripRegex` / `PathStripRegex`.
    pub strip_regex: Option<String>,
    /// `AddPrefix`.
    pub add_prefix: Option<String>,
}

/// Translates a v1 `traefik.frontend.rule` (`Host:a,b;PathPrefixStrip:/x`) into a v2-syntax rule plus
/// middlewares. Matchers are joined with `&&`; comma-separated values of one matcher are alternatives.
pub fn translate_v1_rule(rule: &str) -> Result<V1Rule, String> {
    let mut out = V1Rule::default();
    let mut parts = Vec::new();
    let quote = |vals: &[&str]| {
        vals.iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for m in rule.split(';').map(str::trim).filter(|m| !m.is_empty()) {
        let (name, value) = m
            .split_once(':')
            .ok_or_else(|| format!("`{m}`: expected `Matcher:value` (e.g. `Host:example.com`)"))?;
        let vals: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if vals.is_empty() {
            return Err(format!("`{m}`: no value"));
        }
        match name.trim().to_ascii_lowercase().as_str() {
            "host" => parts.push(format!("Host({})", quote(&vals))),
            "hostregexp" => parts.push(format!("HostRegexp({})", quote(&vals))),
            "path" => parts.push(format!("Path({})", quote(&vals))),
            "pathprefix" => parts.push(format!("PathPrefix({})", quote(&vals))),
            "pathstrip" => {
                parts.push(format!("Path({})", quote(&vals)));
                out.strip_prefixes.extend(vals.iter().map(|v| v.to_string()));
            }
            "pathprefixstrip" => {
                parts.push(format!("PathPrefix({})", quote(&vals)));
                out.strip_prefixes.extend(vals.iter().map(|v| v.to_string()));
            }
            "pathstripregex" | "pathprefixstripregex" => {
                let f = if name.trim().eq_ignore_ascii_case("pathstripregex") { "Path" } else { "PathPrefix" };
                parts.push(format!("{f}({})", quote(&vals)));
                out.strip_regex = Some(vals.iter().map(|v| v.replace('{', "(?:").replace('}', ")")).collect::<Vec<_>>().join("|"));
            }
            "addprefix" => out.add_prefix = Some(value.trim().to_string()),
            "method" => parts.push(format!("Method({})", quote(&vals))),
            "headers" | "headersregexp" => {
                let (k, v) = value.split_once(',').ok_or_else(|| format!("`{m}`: expected `{name}:Key,Value`"))?;
                let f = if name.trim().eq_ignore_ascii_case("headers") { "Headers" } else { "HeadersRegexp" };
                parts.push(format!("{f}(`{}`, `{}`)", k.trim(), v.trim()));
            }
            "query" => parts.push(format!("Query({})", quote(&vals))),
            other => return Err(format!("`{other}` is not a Traefik v1 matcher (Host, HostRegexp, Path, PathPrefix, PathStrip, PathPrefixStrip, AddPrefix, Method, Headers, HeadersRegexp, Query)")),
        }
    }
    out.rule = parts.join(" && ");
    Ok(out)
}

/// Item address inside the tree: protocol section, item section, name.
type ItemKey = (String, String, String);

fn item_kind(proto: &str, section: &str) -> ItemKind {
    match (proto, section) {
        ("http", "routers") => ItemKind::Router,
        ("http", "services") => ItemKind::Service,
        ("tcp", "routers") | ("udp", "routers") => ItemKind::TcpRouter,
        ("tcp", "services") | ("udp", "services") => ItemKind::TcpService,
        ("tls", _) => ItemKind::Tls,
        (_, "serverstransports") => ItemKind::ServersTransport,
        _ => ItemKind::Middleware,
    }
}

/// Shorthand `loadbalancer.server.{port,scheme}` values of one service, with the label that set them.
#[derive(Default)]
struct Shorthand {
    port: Option<(String, String)>,
    scheme: Option<(String, String)>,
}

/// Builds one workload's configuration. See the module docs for the derivation; the caller has already
/// checked [`options`] (enable, constraints) and chosen the addresses.
pub fn build(w: &Workload, s: &Settings) -> Built {
    let owner: Arc<str> = Arc::from(w.owner());
    let mut b = Built::default();
    let entries = translate_v1(w, s, &mut b.notes, &mut b.errors);
    let mut root = Node::map(Source::Internal);
    let mut bad: BTreeMap<ItemKey, (String, String)> = BTreeMap::new();
    let mut shorthand: BTreeMap<(String, String), Shorthand> = BTreeMap::new();
    let mut present: BTreeSet<ItemKey> = BTreeSet::new();
    let mut malformed_router = false;
    for e in &entries {
        let lower = e.key.to_ascii_lowercase();
        let Some(rest) = lower.strip_prefix("traefik.") else {
            continue;
        };
        let segs_orig: Vec<&str> = e.key["traefik.".len()..].split('.').collect();
        let proto = rest.split('.').next().unwrap_or("");
        let tls_store = rest.starts_with("tls.stores.default.") || rest == "tls.stores.default";
        if !matches!(proto, "http" | "tcp" | "udp") && !tls_store {
            continue;
        }
        let source = Source::Label {
            owner: owner.clone(),
            key: e.written.clone(),
        };
        if segs_orig.len() < 3 && !tls_store {
            if segs_orig
                .get(1)
                .is_some_and(|x| x.eq_ignore_ascii_case("routers"))
            {
                malformed_router = true;
            }
            b.errors.push(LabelError {
                owner: owner.to_string(),
                kind: ItemKind::Configuration,
                item: owner.to_string(),
                label: e.written.clone(),
                reason: "expected `traefik.<http|tcp|udp>.<routers|services|middlewares>.<name>.…`"
                    .into(),
            });
            continue;
        }
        let key: ItemKey = (
            proto.to_string(),
            segs_orig
                .get(1)
                .map(|x| x.to_ascii_lowercase())
                .unwrap_or_default(),
            segs_orig.get(2).map(|x| x.to_string()).unwrap_or_default(),
        );
        present.insert(key.clone());
        let mut segs: Vec<String> = segs_orig.iter().map(|x| x.to_string()).collect();
        // `loadbalancer.server.x` → servers[0].x, with port and scheme kept aside.
        if key.1 == "services"
            && segs.len() >= 6
            && segs[3].eq_ignore_ascii_case("loadbalancer")
            && segs[4].eq_ignore_ascii_case("server")
        {
            let field = segs[5].to_ascii_lowercase();
            if segs.len() == 6 && (field == "port" || (field == "scheme" && proto == "http")) {
                let sh = shorthand
                    .entry((proto.to_string(), key.2.clone()))
                    .or_default();
                let v = Some((e.value.clone(), e.written.clone()));
                if field == "port" {
                    sh.port = v;
                } else {
                    sh.scheme = v;
                }
                continue;
            }
            segs[4] = "servers[0]".into();
        }
        let refs: Vec<&str> = segs.iter().map(String::as_str).collect();
        if let Err(reason) = root.insert_path(&refs, Node::scalar(e.value.clone(), source)) {
            bad.entry(key).or_insert((e.written.clone(), reason));
        }
    }
    // Shorthand-only services still exist.
    for (proto, name) in shorthand.keys() {
        let in_tree = root
            .get(proto)
            .and_then(|n| n.get("services"))
            .and_then(|n| n.get(name))
            .is_some();
        if !in_tree {
            let _ = root.insert_path(
                &[proto.as_str(), "services", name.as_str(), "loadBalancer"],
                Node::scalar(
                    "true",
                    Source::Label {
                        owner: owner.clone(),
                        key: format!("traefik.{proto}.services.{name}.loadbalancer.server"),
                    },
                ),
            );
        }
    }
    // Drop items whose labels could not even be placed in the tree.
    for ((proto, section, name), (label, reason)) in &bad {
        remove_item(&mut root, proto, section, name);
        b.errors.push(LabelError {
            owner: owner.to_string(),
            kind: item_kind(proto, section),
            item: name.clone(),
            label: label.clone(),
            reason: reason.clone(),
        });
    }
    let (mut cfg, item_errors) = decode_configuration(&root);
    for e in item_errors {
        b.errors.push(from_item_error(&owner, e));
    }
    let names = |proto: &str, section: &str| -> Vec<String> {
        present
            .iter()
            .filter(|(p, s2, _)| p == proto && s2 == section)
            .map(|(_, _, n)| n.clone())
            .collect()
    };
    let http_routers = names("http", "routers");
    let mut http_services = names("http", "services");
    let http_middlewares = names("http", "middlewares");
    let tcp_routers = names("tcp", "routers");
    let mut tcp_services = names("tcp", "services");
    let udp_any = !names("udp", "routers").is_empty() || !names("udp", "services").is_empty();
    let default_name = normalize(&w.name);

    // TCP: implicit service, servers, router binding.
    if !tcp_routers.is_empty() || !tcp_services.is_empty() {
        if tcp_services.is_empty() {
            tcp_services.push(default_name.clone());
            cfg.tcp.services.insert(
                default_name.clone(),
                TcpService {
                    load_balancer: Some(TcpLoadBalancer::default()),
                    ..Default::default()
                },
            );
        }
        let svc_names: Vec<String> = cfg.tcp.services.keys().cloned().collect();
        for name in svc_names {
            let sh = shorthand
                .remove(&("tcp".to_string(), name.clone()))
                .unwrap_or_default();
            let Some(svc) = cfg.tcp.services.get_mut(&name) else {
                continue;
            };
            let Some(lb) = svc.load_balancer.as_mut() else {
                continue;
            };
            if let Err((label, reason)) = fill_tcp_servers(lb, w, s, &name, sh) {
                cfg.tcp.services.remove(&name);
                b.errors.push(LabelError {
                    owner: owner.to_string(),
                    kind: ItemKind::TcpService,
                    item: name,
                    label,
                    reason,
                });
            }
        }
        let routers: Vec<String> = cfg.tcp.routers.keys().cloned().collect();
        for name in routers {
            let label = format!("traefik.tcp.routers.{name}");
            let Some(r) = cfg.tcp.routers.get_mut(&name) else {
                continue;
            };
            let mut fail = None;
            if r.service.is_empty() {
                if tcp_services.len() == 1 {
                    r.service = tcp_services[0].clone();
                } else {
                    fail = Some((format!("{label}.service"), format!("cannot be linked automatically to one of several TCP services ({}); set `{label}.service`", tcp_services.join(", "))));
                }
            }
            if fail.is_none() {
                if r.rule.trim().is_empty() {
                    fail = Some((
                        format!("{label}.rule"),
                        "a TCP router needs a rule (e.g. ``HostSNI(`*`)``)".into(),
                    ));
                } else {
                    let syntax = r
                        .rule_syntax
                        .as_deref()
                        .and_then(|x| x.parse().ok())
                        .unwrap_or(s.default_syntax);
                    if let Err(e) = crate::rule::parse_tcp(&r.rule, syntax) {
                        fail = Some((format!("{label}.rule"), format!("rule `{}`: {e}", r.rule)));
                    }
                }
            }
            if fail.is_none()
                && !r.service.contains('@')
                && !cfg.tcp.services.contains_key(&r.service)
                && tcp_services.contains(&r.service)
            {
                fail = Some((
                    format!("{label}.service"),
                    format!("its TCP service `{}` was dropped", r.service),
                ));
            }
            if let Some((label, reason)) = fail {
                cfg.tcp.routers.remove(&name);
                b.errors.push(LabelError {
                    owner: owner.to_string(),
                    kind: ItemKind::TcpRouter,
                    item: name,
                    label,
                    reason,
                });
            }
        }
    }
    if udp_any {
        b.notes.push(format!(
            "{owner}: UDP routers and services are parsed but not served"
        ));
    }
    let tcp_or_udp = !tcp_routers.is_empty() || !tcp_services.is_empty() || udp_any;
    if tcp_or_udp
        && http_routers.is_empty()
        && http_services.is_empty()
        && http_middlewares.is_empty()
    {
        b.config = cfg;
        b.config.dropped = b.errors.iter().map(dropped_item).collect();
        return b;
    }

    // HTTP: implicit service, servers.
    if http_services.is_empty() {
        http_services.push(default_name.clone());
        cfg.http.services.insert(
            default_name.clone(),
            Service {
                load_balancer: Some(LoadBalancer::default()),
                ..Default::default()
            },
        );
    }
    let svc_names: Vec<String> = cfg.http.services.keys().cloned().collect();
    for name in svc_names {
        let sh = shorthand
            .remove(&("http".to_string(), name.clone()))
            .unwrap_or_default();
        let Some(svc) = cfg.http.services.get_mut(&name) else {
            continue;
        };
        let Some(lb) = svc.load_balancer.as_mut() else {
            continue;
        };
        if let Err((label, reason)) = fill_http_servers(lb, w, s, &name, sh) {
            cfg.http.services.remove(&name);
            b.errors.push(LabelError {
                owner: owner.to_string(),
                kind: ItemKind::Service,
                item: name,
                label,
                reason,
            });
        }
    }
    // HTTP routers: implicit router, default rule, binding, rule check. A workload whose explicit router
    // configuration is invalid (a v1 frontend rule that does not translate, a router label that cannot be read)
    // gets no implicit router: a default `Host(...)` rule must never serve what the user meant to restrict.
    let explicit_router_failed =
        malformed_router || b.errors.iter().any(|e| e.kind == ItemKind::Router);
    if http_routers.is_empty() && !explicit_router_failed {
        if http_services.len() > 1 {
            b.notes.push(format!(
                "{owner}: no router created: several services ({}) and no router labels",
                http_services.join(", ")
            ));
        } else {
            cfg.http
                .routers
                .insert(default_name.clone(), Default::default());
        }
    }
    let routers: Vec<String> = cfg.http.routers.keys().cloned().collect();
    for name in routers {
        let label = format!("traefik.http.routers.{name}");
        let Some(r) = cfg.http.routers.get_mut(&name) else {
            continue;
        };
        let mut fail: Option<(String, String)> = None;
        if r.rule.trim().is_empty() {
            let model = Model {
                name: &default_name_for_template(w),
                container_name: &w.container_name,
                labels: &w.labels,
            };
            match s.default_rule.render(&model) {
                Ok(rule) if !rule.trim().is_empty() => r.rule = rule,
                Ok(_) => {
                    fail = Some((
                        format!("{label}.rule"),
                        "no rule, and defaultRule renders to nothing".into(),
                    ))
                }
                Err(e) => fail = Some((format!("{label}.rule"), e.to_string())),
            }
        }
        if fail.is_none() && r.service.is_empty() {
            if http_services.len() == 1 {
                r.service = http_services[0].clone();
            } else {
                fail = Some((format!("{label}.service"), format!("cannot be linked automatically to one of several services ({}); set `{label}.service`", http_services.join(", "))));
            }
        }
        if fail.is_none() {
            let syntax = match r.rule_syntax.as_deref() {
                None | Some("") => Ok(s.default_syntax),
                Some(x) => x.parse::<Syntax>().map_err(|e| e.to_string()),
            };
            match syntax {
                Err(e) => fail = Some((format!("{label}.ruleSyntax"), e)),
                Ok(syntax) => {
                    if let Err(e) = crate::rule::parse(&r.rule, syntax) {
                        fail = Some((format!("{label}.rule"), format!("rule `{}`: {e}", r.rule)));
                    }
                }
            }
        }
        if fail.is_none()
            && !r.service.contains('@')
            && !cfg.http.services.contains_key(&r.service)
            && http_services.contains(&r.service)
        {
            fail = Some((
                format!("{label}.service"),
                format!("its service `{}` was dropped", r.service),
            ));
        }
        if fail.is_none() {
            for m in &r.middlewares {
                if !m.contains('@')
                    && !cfg.http.middlewares.contains_key(m)
                    && http_middlewares.iter().any(|x| x == m)
                {
                    fail = Some((
                        format!("{label}.middlewares"),
                        format!("its middleware `{m}` was dropped"),
                    ));
                    break;
                }
            }
        }
        if let Some((label, reason)) = fail {
            cfg.http.routers.remove(&name);
            b.errors.push(LabelError {
                owner: owner.to_string(),
                kind: ItemKind::Router,
                item: name,
                label,
                reason,
            });
        }
    }
    b.config = cfg;
    b.config.dropped = b.errors.iter().map(dropped_item).collect();
    b
}

/// A label error as the dropped item the API lists (`disabled`, with this error).
fn dropped_item(e: &LabelError) -> DroppedItem {
    let error = if e.label.is_empty() {
        format!("{}: {}", e.owner, e.reason)
    } else {
        format!("{}: label `{}`: {}", e.owner, e.label, e.reason)
    };
    DroppedItem {
        kind: e.kind,
        name: e.item.clone(),
        error,
    }
}

fn default_name_for_template(w: &Workload) -> String {
    normalize(&w.name)
}

fn from_item_error(owner: &str, e: ItemError) -> LabelError {
    let label = match &e.error.origin {
        Source::Label { key, .. } => key.clone(),
        _ => String::new(),
    };
    LabelError {
        owner: owner.to_string(),
        kind: e.kind,
        item: e.name,
        label,
        reason: format!("{}: {}", e.error.key, e.error.message),
    }
}

fn remove_item(root: &mut Node, proto: &str, section: &str, name: &str) {
    let NodeKind::Map(top) = &mut root.kind else {
        return;
    };
    for (k, n) in top.iter_mut() {
        if !k.eq_ignore_ascii_case(proto) {
            continue;
        }
        let NodeKind::Map(sections) = &mut n.kind else {
            return;
        };
        for (sk, sn) in sections.iter_mut() {
            if sk.eq_ignore_ascii_case(section) {
                let NodeKind::Map(items) = &mut sn.kind else {
                    return;
                };
                items.retain(|(n2, _)| n2 != name);
            }
        }
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The port of a workload's servers: the label, else (containers) the lowest exposed port.
fn server_port(
    w: &Workload,
    s: &Settings,
    service: &str,
    proto: &str,
    sh_port: Option<(String, String)>,
) -> Result<u16, (String, String)> {
    match sh_port {
        Some((v, label)) => match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err((label, format!("`{v}` is not a port number (1-65535)"))),
        },
        None => {
            let label = format!("traefik.{proto}.services.{service}.loadbalancer.server.port");
            if s.mode == Mode::Swarm {
                Err((label.clone(), format!("the port is missing: Swarm services need `{label}` (Traefik v1: `traefik.port`)")))
            } else {
                w.exposed_ports.iter().copied().min().ok_or_else(|| {
                    (
                        label.clone(),
                        format!("the container exposes no port; set `{label}`"),
                    )
                })
            }
        }
    }
}

fn fill_http_servers(
    lb: &mut LoadBalancer,
    w: &Workload,
    s: &Settings,
    service: &str,
    sh: Shorthand,
) -> Result<(), (String, String)> {
    if lb.servers.iter().skip(1).any(|x| x.url.is_empty()) || (lb.servers.len() > 1) {
        // Explicit server lists are not expanded (Traefik only reads `server`, i.e. servers[0]).
        if lb.servers.iter().all(|x| !x.url.is_empty()) {
            return Ok(());
        }
    }
    let template = lb.servers.first().cloned().unwrap_or_default();
    if !template.url.is_empty() {
        if sh.port.is_some() {
            return Err((
                sh.port.map(|p| p.1).unwrap_or_default(),
                "`server.url` and `server.port` are both set".into(),
            ));
        }
        lb.servers = vec![template];
        return Ok(());
    }
    let port = server_port(w, s, service, "http", sh.port)?;
    let scheme = match sh.scheme {
        Some((v, label)) => {
            let v = v.trim().to_ascii_lowercase();
            if !matches!(v.as_str(), "http" | "https" | "h2c") {
                return Err((label, format!("scheme `{v}` is not http, https or h2c")));
            }
            v
        }
        None => "http".into(),
    };
    lb.servers = w
        .addresses
        .iter()
        .map(|a| Server {
            url: format!("{scheme}://{}", host_port(a, port)),
            ..template.clone()
        })
        .collect();
    Ok(())
}

fn fill_tcp_servers(
    lb: &mut TcpLoadBalancer,
    w: &Workload,
    s: &Settings,
    service: &str,
    sh: Shorthand,
) -> Result<(), (String, String)> {
    let template: TcpServer = lb.servers.first().cloned().unwrap_or_default();
    if !template.address.is_empty() {
        lb.servers = vec![template];
        return Ok(());
    }
    let port = server_port(w, s, service, "tcp", sh.port)?;
    lb.servers = w
        .addresses
        .iter()
        .map(|a| TcpServer {
            address: host_port(a, port),
            ..template.clone()
        })
        .collect();
    Ok(())
}

/// Combines workloads into one configuration as Traefik does: items with the same name and the same
/// definition are kept once; load balancers that differ only in their servers are merged (servers unioned by
/// URL); any other difference drops the item and reports every workload that defined it.
///
/// `parts` are (owner, configuration) pairs in a stable order (the provider sorts by name).
pub fn merge(parts: &[(String, Configuration)]) -> (Configuration, Vec<LabelError>) {
    let mut out = Configuration::default();
    let mut owners: BTreeMap<(Rank, String), Vec<String>> = BTreeMap::new();
    let mut conflicts: BTreeSet<(Rank, String)> = BTreeSet::new();
    struct Seen<'a> {
        owners: &'a mut BTreeMap<(Rank, String), Vec<String>>,
        conflicts: &'a mut BTreeSet<(Rank, String)>,
    }
    fn add<T: PartialEq + Clone>(
        map: &mut BTreeMap<String, T>,
        (name, item): (&str, &T),
        kind: ItemKind,
        owner: &str,
        seen: &mut Seen<'_>,
        mergeable: &dyn Fn(&mut T, &T) -> bool,
    ) {
        let Seen { owners, conflicts } = seen;
        let key = (Rank(kind), name.to_string());
        let list = owners.entry(key.clone()).or_default();
        if !list.iter().any(|o| o == owner) {
            list.push(owner.to_string());
        }
        match map.get_mut(name) {
            None => {
                map.insert(name.to_string(), item.clone());
            }
            Some(existing) => {
                if existing != item && !mergeable(existing, item) {
                    conflicts.insert(key);
                }
            }
        }
    }
    let no_merge_mw = |_: &mut crate::dynamic::Middleware, _: &crate::dynamic::Middleware| false;
    let mut seen = Seen {
        owners: &mut owners,
        conflicts: &mut conflicts,
    };
    for (owner, cfg) in parts {
        out.dropped.extend(cfg.dropped.iter().cloned());
        for (n, r) in &cfg.http.routers {
            add(
                &mut out.http.routers,
                (n, r),
                ItemKind::Router,
                owner,
                &mut seen,
                &|_, _| false,
            );
        }
        for (n, sv) in &cfg.http.services {
            add(
                &mut out.http.services,
                (n, sv),
                ItemKind::Service,
                owner,
                &mut seen,
                &merge_http_service,
            );
        }
        for (n, m) in &cfg.http.middlewares {
            add(
                &mut out.http.middlewares,
                (n, m),
                ItemKind::Middleware,
                owner,
                &mut seen,
                &no_merge_mw,
            );
        }
        for (n, t) in &cfg.http.servers_transports {
            add(
                &mut out.http.servers_transports,
                (n, t),
                ItemKind::ServersTransport,
                owner,
                &mut seen,
                &|_, _| false,
            );
        }
        for (n, r) in &cfg.tcp.routers {
            add(
                &mut out.tcp.routers,
                (n, r),
                ItemKind::TcpRouter,
                owner,
                &mut seen,
                &|_, _| false,
            );
        }
        for (n, sv) in &cfg.tcp.services {
            add(
                &mut out.tcp.services,
                (n, sv),
                ItemKind::TcpService,
                owner,
                &mut seen,
                &merge_tcp_service,
            );
        }
        for (n, m) in &cfg.tcp.middlewares {
            add(
                &mut out.tcp.middlewares,
                (n, m),
                ItemKind::Middleware,
                owner,
                &mut seen,
                &no_merge_mw,
            );
        }
        for (n, st) in &cfg.tls.stores {
            add(
                &mut out.tls.stores,
                (n, st),
                ItemKind::Tls,
                owner,
                &mut seen,
                &|_, _| false,
            );
        }
    }
    let mut errors = Vec::new();
    for (Rank(kind), name) in conflicts {
        match kind {
            ItemKind::Router => out.http.routers.remove(&name).map(|_| ()),
            ItemKind::Service => out.http.services.remove(&name).map(|_| ()),
            ItemKind::Middleware => out
                .http
                .middlewares
                .remove(&name)
                .or_else(|| out.tcp.middlewares.remove(&name))
                .map(|_| ()),
            ItemKind::ServersTransport => out.http.servers_transports.remove(&name).map(|_| ()),
            ItemKind::TcpRouter => out.tcp.routers.remove(&name).map(|_| ()),
            ItemKind::TcpService => out.tcp.services.remove(&name).map(|_| ()),
            ItemKind::Tls => out.tls.stores.remove(&name).map(|_| ()),
            ItemKind::Configuration => None,
        };
        let who = owners
            .get(&(Rank(kind), name.clone()))
            .map(|o| o.join(", "))
            .unwrap_or_default();
        let e = LabelError {
            owner: who.clone(),
            kind,
            item: name,
            label: String::new(),
            reason: format!("defined with different configurations by {who}"),
        };
        out.dropped.push(dropped_item(&e));
        errors.push(e);
    }
    (out, errors)
}

/// `ItemKind` ordered for use as a map key (the model type itself is not `Ord`).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Rank(ItemKind);

impl Rank {
    fn index(self) -> u8 {
        match self.0 {
            ItemKind::Router => 0,
            ItemKind::Service => 1,
            ItemKind::Middleware => 2,
            ItemKind::TcpRouter => 3,
            ItemKind::TcpService => 4,
            ItemKind::ServersTransport => 5,
            ItemKind::Tls => 6,
            ItemKind::Configuration => 7,
        }
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.index().cmp(&other.index())
    }
}

fn merge_http_service(existing: &mut Service, new: &Service) -> bool {
    let (Some(a), Some(b)) = (existing.load_balancer.as_mut(), new.load_balancer.as_ref()) else {
        return false;
    };
    let same_except_servers = {
        let mut a2 = a.clone();
        a2.servers = b.servers.clone();
        &a2 == b
            && existing.weighted == new.weighted
            && existing.mirroring == new.mirroring
            && existing.failover == new.failover
    };
    if !same_except_servers {
        return false;
    }
    for s in &b.servers {
        if !a.servers.iter().any(|x| x.url == s.url) {
            a.servers.push(s.clone());
        }
    }
    true
}

fn merge_tcp_service(existing: &mut TcpService, new: &TcpService) -> bool {
    let (Some(a), Some(b)) = (existing.load_balancer.as_mut(), new.load_balancer.as_ref()) else {
        return false;
    };
    let mut a2 = a.clone();
    a2.servers = b.servers.clone();
    if &a2 != b || existing.weighted != new.weighted {
        return false;
    }
    for s in &b.servers {
        if !a.servers.iter().any(|x| x.address == s.address) {
            a.servers.push(s.clone());
        }
    }
    true
}

#[cfg(test)]
#[path = "labels_tests.rs"]
mod tests;
