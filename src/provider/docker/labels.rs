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
    decode_configuration, Configuration, DroppedItem, HttpConfiguration, ItemError, ItemKind,
    LoadBalancer, Proto, Section, Server, Service, TcpConfiguration, TcpLoadBalancer, TcpServer,
    TcpService, UdpConfiguration, UdpLoadBalancer, UdpServer, UdpService, HTTP, TCP, UDP,
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
    /// `defaultRule` was configured empty: a router without a rule is not created, as in Traefik.
    pub default_rule_off: bool,
    /// `defaultRule` did not parse: each router that needs it is dropped with this error; routers with
    /// their own rule are served.
    pub default_rule_error: Option<String>,
    /// Traefik v1 `docker.domain`: when set and `defaultRule` is not, the default rule is v1's
    /// `Host:<name with _ and / as ->.<domain>`.
    pub v1_domain: Option<String>,
    /// `constraints`, parsed.
    pub constraints: Option<Constraint>,
    /// Keep services with no server (503 instead of 404).
    pub allow_empty_services: bool,
    /// `core.defaultRuleSyntax`: how rules without `ruleSyntax` are checked.
    pub default_syntax: Syntax,
    /// `useBindPortIP`: a container's servers are the host binding of the chosen port, when it has one on a
    /// specific address (as Traefik; else the container's address).
    pub use_bind_port_ip: bool,
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
            default_rule_off: false,
            default_rule_error: None,
            v1_domain: None,
            constraints: None,
            allow_empty_services: false,
            default_syntax: Syntax::V3,
            use_bind_port_ip: false,
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
    /// Host bindings of a container's ports (`-p 192.168.0.1:8080:80`), for `useBindPortIP`; empty for
    /// Swarm services and offline.
    pub bindings: Vec<PortBinding>,
}

/// One published port of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortBinding {
    /// The container's port.
    pub private_port: u16,
    /// The host address it is published on (`0.0.0.0`, `::` or empty: every address).
    pub host_ip: String,
    /// The host port.
    pub host_port: u16,
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
    /// `traefik.docker.allownonrunning` (Traefik v3.6, containers only): a container that is not running
    /// keeps its routers and services, without servers (503 instead of 404).
    pub allow_non_running: bool,
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

/// Reads the workload-wide options (enable, network, lbswarm, allowNonRunning) and applies `exposedByDefault` and the
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
            k.len() > p.len()
                && k.as_bytes()
                    .get(..p.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes()))
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
    if s.mode == Mode::Containers {
        if let Some((k, v)) = get_ci(&w.labels, "traefik.docker.allownonrunning") {
            o.allow_non_running =
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
///
/// v2/v3 labels are kept as written; each v1 label becomes the modern labels it meant (reported as a note),
/// and a v2/v3 label wins over a translation of the same key.
fn translate_v1(
    w: &Workload,
    s: &Settings,
    notes: &mut Vec<String>,
    errors: &mut Vec<LabelError>,
) -> Vec<Entry> {
    let v1: BTreeMap<String, (String, String)> = w
        .labels
        .iter()
        .filter(|(k, _)| is_v1(k))
        .map(|(k, v)| (k.to_ascii_lowercase(), (k.clone(), v.clone())))
        .collect();
    let mut out: Vec<Entry> = w
        .labels
        .iter()
        .filter(|(k, _)| !is_v1(k))
        .map(|(k, v)| Entry {
            key: k.clone(),
            value: v.clone(),
            written: k.clone(),
        })
        .collect();
    let v1_default = s.v1_domain.is_some()
        && !w
            .labels
            .keys()
            .any(|k| k.to_ascii_lowercase().starts_with("traefik.http.routers."));
    if v1.is_empty() && !v1_default {
        return out;
    }
    let mut t = V1Translation::new(w, &v1, notes);
    for (lk, (written, value)) in &v1 {
        t.label(lk, written, value, s, errors);
    }
    t.finish(&mut out, s);
    // v2/v3 labels win over translations of the same key.
    let mut seen = BTreeSet::new();
    out.retain(|e| seen.insert(e.key.to_ascii_lowercase()));
    out
}

/// v1 labels that are one modern label under another name: (v1 key, on the router rather than the service's
/// `loadbalancer`, modern field).
const V1_RENAMES: &[(&str, bool, &str)] = &[
    ("traefik.port", false, "server.port"),
    ("traefik.protocol", false, "server.scheme"),
    ("traefik.weight", false, "server.weight"),
    (
        "traefik.backend.healthcheck.path",
        false,
        "healthcheck.path",
    ),
    (
        "traefik.backend.healthcheck.interval",
        false,
        "healthcheck.interval",
    ),
    (
        "traefik.backend.healthcheck.timeout",
        false,
        "healthcheck.timeout",
    ),
    (
        "traefik.backend.healthcheck.port",
        false,
        "healthcheck.port",
    ),
    (
        "traefik.backend.healthcheck.scheme",
        false,
        "healthcheck.scheme",
    ),
    (
        "traefik.backend.healthcheck.hostname",
        false,
        "healthcheck.hostname",
    ),
    ("traefik.frontend.entrypoints", true, "entryPoints"),
    ("traefik.frontend.priority", true, "priority"),
    ("traefik.frontend.passhostheader", false, "passHostHeader"),
];

/// The state of one workload's v1 translation: the names v1 derived from the backend, the entries and
/// middlewares produced so far.
struct V1Translation<'a> {
    owner: &'a str,
    name: &'a str,
    v1: &'a BTreeMap<String, (String, String)>,
    notes: &'a mut Vec<String>,
    backend: String,
    /// `traefik.http.services.<backend>.loadbalancer`
    svc: String,
    /// `traefik.http.routers.<backend>`
    rtr: String,
    out: Vec<Entry>,
    middlewares: Vec<String>,
    rule_failed: bool,
}

impl<'a> V1Translation<'a> {
    fn new(
        w: &'a Workload,
        v1: &'a BTreeMap<String, (String, String)>,
        notes: &'a mut Vec<String>,
    ) -> Self {
        let backend = match v1.get("traefik.backend") {
            Some((_, b)) if !b.trim().is_empty() => normalize(b),
            _ => normalize(&w.name),
        };
        V1Translation {
            owner: w.owner(),
            name: &w.name,
            v1,
            notes,
            svc: format!("traefik.http.services.{backend}.loadbalancer"),
            rtr: format!("traefik.http.routers.{backend}"),
            backend,
            out: Vec::new(),
            middlewares: Vec::new(),
            rule_failed: false,
        }
    }

    /// Records a translated label and the note that tells the user its modern spelling.
    fn push(&mut self, key: String, value: String, written: &str) {
        let owner = self.owner;
        self.notes.push(format!(
            "{owner}: label `{written}` is Traefik v1; read as `{key}={value}`"
        ));
        self.out.push(Entry {
            key,
            value,
            written: written.to_string(),
        });
    }

    fn note(&mut self, written: &str, what: &str) {
        let owner = self.owner;
        self.notes
            .push(format!("{owner}: label `{written}` is Traefik v1{what}"));
    }

    /// One v1 label (lower-cased key `lk`): a one-to-one rename ([`V1_RENAMES`]), or one of the labels that
    /// build middlewares, stickiness or notes.
    fn label(
        &mut self,
        lk: &str,
        written: &str,
        value: &str,
        s: &Settings,
        errors: &mut Vec<LabelError>,
    ) {
        if let Some((_, on_router, field)) = V1_RENAMES.iter().find(|(k, _, _)| *k == lk) {
            let base = if *on_router { &self.rtr } else { &self.svc };
            self.push(format!("{base}.{field}"), value.to_string(), written);
            return;
        }
        let backend = self.backend.clone();
        match lk {
            "traefik.backend" => self.note(written, &format!("; the service is named `{backend}`")),
            "traefik.backend.loadbalancer.swarm" => self.note(
                written,
                &format!("; read as `traefik.{}.lbswarm={value}`", s.namespace),
            ),
            "traefik.backend.loadbalancer.sticky" | "traefik.backend.loadbalancer.stickiness" => {
                self.sticky(lk, value, written)
            }
            "traefik.backend.loadbalancer.stickiness.cookiename" => {}
            "traefik.backend.loadbalancer.method" => self.note(
                written,
                " and has no v2 equivalent (weighted round robin is used)",
            ),
            "traefik.frontend.rule" => self.frontend_rule(value, written, errors),
            "traefik.frontend.redirect.entrypoint" => {
                let scheme = if value.to_ascii_lowercase().contains("http")
                    && !value.eq_ignore_ascii_case("https")
                {
                    "http"
                } else {
                    "https"
                };
                self.push(
                    format!("traefik.http.middlewares.{backend}-redirect.redirectScheme.scheme"),
                    scheme.into(),
                    written,
                );
                self.middlewares.insert(0, format!("{backend}-redirect"));
            }
            "traefik.frontend.redirect.permanent" => self.push(
                format!("traefik.http.middlewares.{backend}-redirect.redirectScheme.permanent"),
                value.to_string(),
                written,
            ),
            "traefik.frontend.auth.basic.users" | "traefik.frontend.auth.basic" => {
                self.basic_auth(value, written)
            }
            _ => self.note(written, " and is not translated; it has no effect"),
        }
    }

    /// v1 stickiness: `sticky` used the fixed cookie `_TRAEFIK_BACKEND`, `stickiness` a named or generated one.
    fn sticky(&mut self, lk: &str, value: &str, written: &str) {
        if parse_bool(value) != Some(true) {
            return;
        }
        let name = if lk == "traefik.backend.loadbalancer.sticky" {
            "_TRAEFIK_BACKEND".to_string()
        } else {
            match self
                .v1
                .get("traefik.backend.loadbalancer.stickiness.cookiename")
            {
                Some((_, n)) if !n.is_empty() => n.clone(),
                _ => v1_cookie_name(&self.backend),
            }
        };
        self.push(format!("{}.sticky.cookie.name", self.svc), name, written);
    }

    /// v1 basic auth: a `basicAuth` middleware, placed after the redirect (if any) and before the others.
    fn basic_auth(&mut self, value: &str, written: &str) {
        let backend = self.backend.clone();
        for (i, u) in value
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .enumerate()
        {
            self.push(
                format!("traefik.http.middlewares.{backend}-auth.basicAuth.users[{i}]"),
                u.to_string(),
                written,
            );
        }
        let at = usize::from(
            self.middlewares
                .first()
                .is_some_and(|m| m.ends_with("-redirect")),
        );
        self.middlewares.insert(at, format!("{backend}-auth"));
    }

    /// `traefik.frontend.rule`: the router's rule, and the middlewares v1 folded into its modifiers. A rule that
    /// does not translate drops the router (reported in `errors`).
    fn frontend_rule(&mut self, value: &str, written: &str, errors: &mut Vec<LabelError>) {
        let (rtr, backend) = (self.rtr.clone(), self.backend.clone());
        let t = match translate_v1_rule(value) {
            Ok(t) => t,
            Err(reason) => {
                self.rule_failed = true;
                errors.push(LabelError {
                    owner: self.owner.to_string(),
                    kind: ItemKind::Router,
                    item: backend,
                    label: written.to_string(),
                    reason,
                });
                return;
            }
        };
        if !t.rule.is_empty() {
            self.push(format!("{rtr}.rule"), t.rule, written);
            self.push(format!("{rtr}.ruleSyntax"), "v2".into(), written);
        }
        for (i, p) in t.strip_prefixes.iter().enumerate() {
            self.push(
                format!("traefik.http.middlewares.{backend}-stripprefix.stripPrefix.prefixes[{i}]"),
                p.clone(),
                written,
            );
        }
        if !t.strip_prefixes.is_empty() {
            self.middlewares.push(format!("{backend}-stripprefix"));
        }
        if let Some(re) = t.strip_regex {
            self.push(
                format!(
                    "traefik.http.middlewares.{backend}-stripprefixregex.stripPrefixRegex.regex[0]"
                ),
                re,
                written,
            );
            self.middlewares.push(format!("{backend}-stripprefixregex"));
        }
        if let Some(p) = t.add_prefix {
            self.push(
                format!("traefik.http.middlewares.{backend}-addprefix.addPrefix.prefix"),
                p,
                written,
            );
            self.middlewares.push(format!("{backend}-addprefix"));
        }
    }

    /// What v1 implied without a label: the `docker.domain` default rule, the router's middleware list, and
    /// the router itself (a v1 workload always had a frontend). Appends the translation to `out`.
    fn finish(mut self, out: &mut Vec<Entry>, s: &Settings) {
        let rtr = self.rtr.clone();
        if !self.v1.contains_key("traefik.frontend.rule") {
            if let Some(domain) = &s.v1_domain {
                let sub = self.name.trim_start_matches('/').replace(['_', '/'], "-");
                self.out.push(Entry {
                    key: format!("{rtr}.rule"),
                    value: format!("Host(`{sub}.{domain}`)"),
                    written: "traefik.frontend.rule".into(),
                });
            }
        }
        if self.rule_failed {
            // The frontend the user wrote is invalid: it is dropped (reported already), and neither its
            // middlewares nor an implicit router take its place.
            self.middlewares.clear();
        }
        if !self.middlewares.is_empty() {
            self.out.push(Entry {
                key: format!("{rtr}.middlewares"),
                value: self.middlewares.join(","),
                written: "traefik.frontend.rule".into(),
            });
        }
        out.append(&mut self.out);
        let router_prefix = format!(
            "traefik.http.routers.{}.",
            self.backend.to_ascii_lowercase()
        );
        let has_router = out
            .iter()
            .any(|e| e.key.to_ascii_lowercase().starts_with(&router_prefix));
        if !has_router && !self.v1.is_empty() && !self.rule_failed {
            // Make the implicit router explicit so that it is named after the backend, as v1 named frontends
            // after backends.
            out.push(Entry {
                key: format!("{rtr}.service"),
                value: self.backend.clone(),
                written: "traefik.backend".into(),
            });
        }
    }
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
        ("tcp", "routers") => ItemKind::TcpRouter,
        ("tcp", "services") => ItemKind::TcpService,
        ("udp", "routers") => ItemKind::UdpRouter,
        ("udp", "services") => ItemKind::UdpService,
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
///
/// The steps: translate v1 labels, place every label in a configuration tree, decode the tree item by item,
/// then complete each protocol section (implicit service, servers, implicit router, bindings and checks).
pub fn build(w: &Workload, s: &Settings) -> Built {
    let owner: Arc<str> = Arc::from(w.owner());
    let mut b = Built::default();
    let (mut placed, mut cfg) = place_and_decode(w, s, &owner, &mut b);
    let cx = Cx {
        w,
        s,
        owner: &owner,
    };
    let declared = |proto: &str, section: &str| placed.declared(proto, section);
    let http_declared = !declared("http", "routers").is_empty()
        || !declared("http", "services").is_empty()
        || !declared("http", "middlewares").is_empty();
    let tcp_declared =
        !declared("tcp", "routers").is_empty() || !declared("tcp", "services").is_empty();
    let udp_declared =
        !declared("udp", "routers").is_empty() || !declared("udp", "services").is_empty();
    if tcp_declared {
        let services =
            complete_services(&mut cfg.tcp.services, TCP, &mut placed, &cx, &mut b.errors);
        complete_tcp_routers(&mut cfg.tcp, &services, &cx, &mut b.errors);
    }
    if udp_declared {
        let services =
            complete_services(&mut cfg.udp.services, UDP, &mut placed, &cx, &mut b.errors);
        complete_udp_routers(&mut cfg.udp, &services, &cx, &mut b.errors);
    }
    // A workload that only declares TCP or UDP items gets no implicit HTTP service or router.
    if !((tcp_declared || udp_declared) && !http_declared) {
        let services = complete_services(
            &mut cfg.http.services,
            HTTP,
            &mut placed,
            &cx,
            &mut b.errors,
        );
        // A workload whose explicit router configuration is invalid (a v1 frontend rule that does not
        // translate, a router label that cannot be read) gets no implicit router: a default `Host(...)` rule
        // must never serve what the user meant to restrict.
        let explicit_router_failed =
            placed.malformed_router || b.errors.iter().any(|e| e.kind == ItemKind::Router);
        if placed.declared("http", "routers").is_empty() && !explicit_router_failed {
            add_implicit_router(&mut cfg.http, &services, &cx, &mut b.notes);
        }
        let middlewares = placed.declared("http", "middlewares");
        complete_http_routers(&mut cfg.http, &services, &middlewares, &cx, &mut b.errors);
    }
    let folded = one_line_per_mistake(w, &mut b.errors);
    quiet_unlabelled(w, &owner, &mut b.errors);
    b.config = cfg;
    // What is dropped is unchanged by how it is reported: folded routers stay listed while their
    // service's line is.
    b.config.dropped = b
        .errors
        .iter()
        .chain(
            folded
                .iter()
                .filter(|(svc, _)| b.errors.iter().any(|e| e.item == *svc))
                .map(|(_, e)| e),
        )
        .map(dropped_item)
        .collect();
    b
}

/// The first steps of [`build`] and [`decode`]: v1 labels translated, every label placed in a tree, the
/// tree decoded item by item (dropped items reported in `b`).
fn place_and_decode(
    w: &Workload,
    s: &Settings,
    owner: &Arc<str>,
    b: &mut Built,
) -> (Placed, Configuration) {
    let entries = translate_v1(w, s, &mut b.notes, &mut b.errors);
    let placed = Placed::new(&entries, owner, &mut b.errors);
    let (cfg, item_errors) = decode_configuration(&placed.root);
    b.errors
        .extend(item_errors.into_iter().map(|e| from_item_error(owner, e)));
    (placed, cfg)
}

/// The labels alone, as Traefik's label decoder reads them (`label.DecodeConfiguration`): the same first
/// steps as [`build`], without what the provider adds (no implicit service or router, no servers from the
/// workload's addresses). A `loadbalancer.server.port`/`.scheme` label is kept on a server as written.
///
/// Compared with Traefik's own decoder by `tests/traefik_tables.rs`; the provider and `check` call
/// [`build`], which runs the same steps first. Pure.
pub fn decode(w: &Workload, s: &Settings) -> Built {
    let owner: Arc<str> = Arc::from(w.owner());
    let mut b = Built::default();
    let (placed, mut cfg) = place_and_decode(w, s, &owner, &mut b);
    for ((proto, name), sh) in placed.shorthand {
        let port = sh.port.map(|(v, _)| v);
        let scheme = sh.scheme.map(|(v, _)| v);
        match proto.as_str() {
            "http" => {
                if let Some(lb) = cfg
                    .http
                    .services
                    .get_mut(&name)
                    .and_then(|x| x.load_balancer.as_mut())
                    .filter(|lb| lb.servers.is_empty())
                {
                    lb.servers.push(Server {
                        port,
                        scheme,
                        ..Default::default()
                    });
                }
            }
            "tcp" => {
                if let Some(lb) = cfg
                    .tcp
                    .services
                    .get_mut(&name)
                    .and_then(|x| x.load_balancer.as_mut())
                    .filter(|lb| lb.servers.is_empty())
                {
                    lb.servers.push(TcpServer {
                        port,
                        ..Default::default()
                    });
                }
            }
            _ => {
                if let Some(lb) = cfg
                    .udp
                    .services
                    .get_mut(&name)
                    .and_then(|x| x.load_balancer.as_mut())
                    .filter(|lb| lb.servers.is_empty())
                {
                    lb.servers.push(UdpServer {
                        port,
                        ..Default::default()
                    });
                }
            }
        }
    }
    b.config = cfg;
    b.config.dropped = b.errors.iter().map(dropped_item).collect();
    b
}

/// One ERROR line per mistake, naming what the user wrote: a router dropped only because its service was
/// dropped is folded into the service's line (`…; router `web` is dropped with it`), and a label the
/// workload does not carry (a derived or implicit setting, e.g. the missing port label) is not presented as
/// the offending label — the reason says what to set.
/// Returns the folded router errors with their service's name.
fn one_line_per_mistake(w: &Workload, errors: &mut Vec<LabelError>) -> Vec<(String, LabelError)> {
    let dropped_services: Vec<String> = errors
        .iter()
        .filter(|e| matches!(e.kind, ItemKind::Service | ItemKind::TcpService))
        .map(|e| e.item.clone())
        .collect();
    let mut cascaded: Vec<(String, LabelError)> = Vec::new();
    errors.retain(|e| {
        let service = e.reason.strip_suffix("` was dropped").and_then(|r| {
            r.strip_prefix("its service `")
                .or_else(|| r.strip_prefix("its TCP service `"))
        });
        match service {
            Some(svc) if dropped_services.iter().any(|d| d == svc) => {
                cascaded.push((svc.to_string(), e.clone()));
                false
            }
            _ => true,
        }
    });
    for e in errors.iter_mut() {
        let routers: Vec<&str> = cascaded
            .iter()
            .filter(|(svc, _)| {
                *svc == e.item && matches!(e.kind, ItemKind::Service | ItemKind::TcpService)
            })
            .map(|(_, r)| r.item.as_str())
            .collect();
        if !routers.is_empty() {
            e.reason = format!(
                "{}; router `{}` is dropped with it",
                e.reason,
                routers.join("`, `")
            );
        }
        let written =
            e.label.is_empty() || w.labels.keys().any(|k| k.eq_ignore_ascii_case(&e.label));
        if !written {
            if !e.reason.contains(&e.label) {
                e.reason = format!("{} (setting `{}`)", e.reason, e.label);
            }
            e.label.clear();
        }
    }
    cascaded
}

/// A workload with no `traefik.*` label at all (the proxy's own service, a database, a worker) whose
/// implicit service has no port is not a mistake to report: it was never meant to be routed. Its
/// "port is missing" error becomes one DEBUG line; any other error stays.
fn quiet_unlabelled(w: &Workload, owner: &str, errors: &mut Vec<LabelError>) {
    let labelled = w.labels.keys().any(|k| {
        k.get(..8)
            .is_some_and(|head| head.eq_ignore_ascii_case("traefik."))
    });
    if labelled {
        return;
    }
    let before = errors.len();
    errors.retain(|e| !(e.kind == ItemKind::Service && is_missing_port(&e.reason)));
    if errors.len() != before {
        tracing::debug!(
            workload = owner,
            "no Traefik labels and no port: not routed (add traefik.enable=false to say so)"
        );
    }
}

/// The reasons [`server_port`] gives when no port is known.
fn is_missing_port(reason: &str) -> bool {
    reason.starts_with("the port is missing") || reason.starts_with("the container exposes no port")
}

/// What every completion step needs to know about the workload.
struct Cx<'a> {
    w: &'a Workload,
    s: &'a Settings,
    owner: &'a str,
}

impl Cx<'_> {
    fn error(&self, kind: ItemKind, item: String, (label, reason): (String, String)) -> LabelError {
        LabelError {
            owner: self.owner.to_string(),
            kind,
            item,
            label,
            reason,
        }
    }
}

/// One workload's labels placed in a configuration tree, and what placing them found.
struct Placed {
    /// The tree the item decoder reads (`http.routers.r.rule`, …).
    root: Node,
    /// Items whose labels could not be placed in the tree: the first offending label and why.
    bad: BTreeMap<ItemKey, (String, String)>,
    /// `loadbalancer.server.{port,scheme}` per (protocol, service): kept out of the tree, they name the
    /// servers the workload's addresses become.
    shorthand: BTreeMap<(String, String), Shorthand>,
    /// Every item a label names, placed or not (to tell "not declared" from "declared and dropped").
    present: BTreeSet<ItemKey>,
    /// A `traefik.<proto>.routers` label too short to name a router.
    malformed_router: bool,
}

impl Placed {
    /// Places every entry, gives shorthand-only services their node, and removes the items that could not be
    /// placed (each reported once in `errors`).
    fn new(entries: &[Entry], owner: &Arc<str>, errors: &mut Vec<LabelError>) -> Placed {
        let mut p = Placed {
            root: Node::map(Source::Internal),
            bad: BTreeMap::new(),
            shorthand: BTreeMap::new(),
            present: BTreeSet::new(),
            malformed_router: false,
        };
        for e in entries {
            p.place(e, owner, errors);
        }
        p.add_shorthand_services(owner);
        for ((proto, section, name), (label, reason)) in std::mem::take(&mut p.bad) {
            remove_item(&mut p.root, &proto, &section, &name);
            errors.push(LabelError {
                owner: owner.to_string(),
                kind: item_kind(&proto, &section),
                item: name,
                label,
                reason,
            });
        }
        p
    }

    /// Places one label; labels outside `traefik.<http|tcp|udp>.` and the default TLS store are ignored.
    fn place(&mut self, e: &Entry, owner: &Arc<str>, errors: &mut Vec<LabelError>) {
        let lower = e.key.to_ascii_lowercase();
        let Some(rest) = lower.strip_prefix("traefik.") else {
            return;
        };
        let segs_orig: Vec<&str> = e.key["traefik.".len()..].split('.').collect();
        let proto = rest.split('.').next().unwrap_or("");
        let tls_store = rest.starts_with("tls.stores.default.") || rest == "tls.stores.default";
        if !matches!(proto, "http" | "tcp" | "udp") && !tls_store {
            return;
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
                self.malformed_router = true;
            }
            errors.push(LabelError {
                owner: owner.to_string(),
                kind: ItemKind::Configuration,
                item: owner.to_string(),
                label: e.written.clone(),
                reason: "expected `traefik.<http|tcp|udp>.<routers|services|middlewares>.<name>.…`"
                    .into(),
            });
            return;
        }
        let key: ItemKey = (
            proto.to_string(),
            segs_orig
                .get(1)
                .map(|x| x.to_ascii_lowercase())
                .unwrap_or_default(),
            segs_orig.get(2).map(|x| x.to_string()).unwrap_or_default(),
        );
        self.present.insert(key.clone());
        let mut segs: Vec<String> = segs_orig.iter().map(|x| x.to_string()).collect();
        if self.server_shorthand(&key, &mut segs, e) {
            return;
        }
        let refs: Vec<&str> = segs.iter().map(String::as_str).collect();
        if let Err(reason) = self
            .root
            .insert_path(&refs, Node::scalar(e.value.clone(), source))
        {
            self.bad.entry(key).or_insert((e.written.clone(), reason));
        }
    }

    /// `loadbalancer.server.x` → `servers[0].x`; `port` (and `scheme` for HTTP) are kept aside instead, and
    /// `true` is returned for them.
    fn server_shorthand(&mut self, key: &ItemKey, segs: &mut [String], e: &Entry) -> bool {
        let (proto, section, name) = key;
        let is_server = section == "services"
            && segs.len() >= 6
            && segs
                .get(3)
                .is_some_and(|x| x.eq_ignore_ascii_case("loadbalancer"))
            && segs
                .get(4)
                .is_some_and(|x| x.eq_ignore_ascii_case("server"));
        if !is_server {
            return false;
        }
        let field = segs
            .get(5)
            .map(|f| f.to_ascii_lowercase())
            .unwrap_or_default();
        if segs.len() == 6 && (field == "port" || (field == "scheme" && proto == "http")) {
            let sh = self
                .shorthand
                .entry((proto.clone(), name.clone()))
                .or_default();
            let v = Some((e.value.clone(), e.written.clone()));
            if field == "port" {
                sh.port = v;
            } else {
                sh.scheme = v;
            }
            return true;
        }
        if let Some(s) = segs.get_mut(4) {
            *s = "servers[0]".into();
        }
        false
    }

    /// Shorthand-only services still exist: give them an empty load balancer in the tree.
    fn add_shorthand_services(&mut self, owner: &Arc<str>) {
        for (proto, name) in self.shorthand.keys() {
            let in_tree = self
                .root
                .get(proto)
                .and_then(|n| n.get("services"))
                .and_then(|n| n.get(name))
                .is_some();
            if !in_tree {
                let _ = self.root.insert_path(
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
    }

    /// Names of the items some label declares in `proto.section`, whether or not they survived.
    fn declared(&self, proto: &str, section: &str) -> Vec<String> {
        self.present
            .iter()
            .filter(|(p, s2, _)| p == proto && s2 == section)
            .map(|(_, _, n)| n.clone())
            .collect()
    }
}

/// Fills a load balancer's servers from the workload's addresses (see [`fill_http_servers`]).
type FillServers<L> =
    fn(&mut L, &Workload, &Settings, &str, Shorthand) -> Result<(), (String, String)>;

/// What the label function needs of a protocol's service type: its load balancer and that balancer's
/// servers. HTTP and TCP differ only in the types and in how servers are derived; completing services and
/// merging workloads are written once over this trait, so a further protocol is one more `impl`.
trait LabelService: Default + Clone + PartialEq {
    /// The protocol's `loadBalancer`.
    type Lb: Default + Clone + PartialEq;
    /// One of its servers.
    type Server: Clone;
    /// Derives the servers; the error names the label at fault and why.
    const FILL: FillServers<Self::Lb>;
    /// The service's load balancer, if it is one.
    fn lb(&mut self) -> &mut Option<Self::Lb>;
    /// The balancer's servers.
    fn servers(lb: &mut Self::Lb) -> &mut Vec<Self::Server>;
    /// What identifies a server when merging workloads (URL or address).
    fn server_key(s: &Self::Server) -> &str;
    /// Whether one of the service's kinds (load balancer, weighted, …) is set: an empty service label
    /// (`traefik.http.services.x=`) sets none.
    fn has_kind(&self) -> bool;

    /// The service a workload gets when its labels declare none: one empty load balancer.
    fn implicit() -> Self {
        let mut s = Self::default();
        *s.lb() = Some(Self::Lb::default());
        s
    }

    /// Turns the workload's addresses into this service's servers (a no-op when it is not a load balancer).
    fn fill_servers(
        &mut self,
        cx: &Cx<'_>,
        name: &str,
        sh: Shorthand,
    ) -> Result<(), (String, String)> {
        match self.lb().as_mut() {
            Some(lb) => Self::FILL(lb, cx.w, cx.s, name, sh),
            None => Ok(()),
        }
    }
}

impl LabelService for Service {
    type Lb = LoadBalancer;
    type Server = Server;
    const FILL: FillServers<LoadBalancer> = fill_http_servers;
    fn lb(&mut self) -> &mut Option<LoadBalancer> {
        &mut self.load_balancer
    }
    fn servers(lb: &mut LoadBalancer) -> &mut Vec<Server> {
        &mut lb.servers
    }
    fn server_key(s: &Server) -> &str {
        &s.url
    }
    fn has_kind(&self) -> bool {
        self.load_balancer.is_some()
            || self.weighted.is_some()
            || self.mirroring.is_some()
            || self.failover.is_some()
    }
}

impl LabelService for TcpService {
    type Lb = TcpLoadBalancer;
    type Server = TcpServer;
    const FILL: FillServers<TcpLoadBalancer> = fill_tcp_servers;
    fn lb(&mut self) -> &mut Option<TcpLoadBalancer> {
        &mut self.load_balancer
    }
    fn servers(lb: &mut TcpLoadBalancer) -> &mut Vec<TcpServer> {
        &mut lb.servers
    }
    fn server_key(s: &TcpServer) -> &str {
        &s.address
    }
    fn has_kind(&self) -> bool {
        self.load_balancer.is_some() || self.weighted.is_some()
    }
}

impl LabelService for UdpService {
    type Lb = UdpLoadBalancer;
    type Server = UdpServer;
    const FILL: FillServers<UdpLoadBalancer> = fill_udp_servers;
    fn lb(&mut self) -> &mut Option<UdpLoadBalancer> {
        &mut self.load_balancer
    }
    fn servers(lb: &mut UdpLoadBalancer) -> &mut Vec<UdpServer> {
        &mut lb.servers
    }
    fn server_key(s: &UdpServer) -> &str {
        &s.address
    }
    fn has_kind(&self) -> bool {
        self.load_balancer.is_some() || self.weighted.is_some()
    }
}

/// A protocol's services: the implicit one (named after the workload) when labels declare none, then the
/// servers of each; a service whose servers cannot be derived is dropped. Returns the declared names (with
/// the implicit one), which routers without `service` are bound against.
fn complete_services<S: LabelService>(
    services: &mut BTreeMap<String, S>,
    proto: Proto,
    placed: &mut Placed,
    cx: &Cx<'_>,
    errors: &mut Vec<LabelError>,
) -> Vec<String> {
    let mut declared = placed.declared(proto.key, "services");
    if declared.is_empty() {
        let name = normalize(&cx.w.name);
        declared.push(name.clone());
        services.insert(name, S::implicit());
    }
    let names: Vec<String> = services.keys().cloned().collect();
    for name in names {
        let sh = placed
            .shorthand
            .remove(&(proto.key.to_string(), name.clone()))
            .unwrap_or_default();
        let Some(svc) = services.get_mut(&name) else {
            continue;
        };
        if !svc.has_kind() {
            // Traefik drops the container ("load-balancer is not defined"); here only the service (and
            // the routers bound to it).
            services.remove(&name);
            errors.push(cx.error(
                proto.service,
                name.clone(),
                (
                    format!("traefik.{}.services.{name}", proto.key),
                    "the service is empty: set its `loadbalancer.server.port` (or another option) instead of an empty label".into(),
                ),
            ));
            continue;
        }
        if let Err(e) = svc.fill_servers(cx, &name, sh) {
            services.remove(&name);
            errors.push(cx.error(proto.service, name, e));
        }
    }
    declared
}

/// Checks every router of a section with `check`, dropping (and reporting) the ones it refuses.
fn retain_routers<R>(
    routers: &mut BTreeMap<String, R>,
    proto: Proto,
    cx: &Cx<'_>,
    errors: &mut Vec<LabelError>,
    mut check: impl FnMut(&str, &mut R) -> Result<(), (String, String)>,
) {
    let names: Vec<String> = routers.keys().cloned().collect();
    for name in names {
        let label = format!("traefik.{}.routers.{name}", proto.key);
        let Some(r) = routers.get_mut(&name) else {
            continue;
        };
        if let Err(e) = check(&label, r) {
            routers.remove(&name);
            errors.push(cx.error(proto.router, name, e));
        }
    }
}

/// A router without `service` is bound to the workload's only service (`what` is `""` or `"TCP "`).
fn bind_service(
    service: &mut String,
    declared: &[String],
    label: &str,
    what: &str,
) -> Result<(), (String, String)> {
    if !service.is_empty() {
        return Ok(());
    }
    match declared {
        [only] => {
            *service = only.clone();
            Ok(())
        }
        _ => Err((format!("{label}.service"), format!("cannot be linked automatically to one of several {what}services ({}); set `{label}.service`", declared.join(", ")))),
    }
}

/// A router whose service this workload declared but dropped goes too (it would only answer 503/404).
fn service_kept(
    service: &str,
    kept: bool,
    declared: &[String],
    label: &str,
    what: &str,
) -> Result<(), (String, String)> {
    if !service.contains('@') && !kept && declared.iter().any(|d| d == service) {
        return Err((
            format!("{label}.service"),
            format!("its {what}service `{service}` was dropped"),
        ));
    }
    Ok(())
}

/// TCP routers: bound to the only service, a rule that parses (TCP routers have no default rule), and a
/// service that was kept.
fn complete_tcp_routers(
    tcp: &mut TcpConfiguration,
    services: &[String],
    cx: &Cx<'_>,
    errors: &mut Vec<LabelError>,
) {
    let kept = &tcp.services;
    retain_routers(&mut tcp.routers, TCP, cx, errors, |label, r| {
        bind_service(&mut r.service, services, label, "TCP ")?;
        if r.rule.trim().is_empty() {
            return Err((
                format!("{label}.rule"),
                "a TCP router needs a rule (e.g. ``HostSNI(`*`)``)".into(),
            ));
        }
        let syntax = r
            .rule_syntax
            .as_deref()
            .and_then(|x| x.parse().ok())
            .unwrap_or(cx.s.default_syntax);
        if let Err(e) = crate::rule::parse_tcp(&r.rule, syntax) {
            return Err((format!("{label}.rule"), format!("rule `{}`: {e}", r.rule)));
        }
        service_kept(
            &r.service,
            kept.contains_key(&r.service),
            services,
            label,
            "TCP ",
        )
    });
}

/// UDP routers: bound to the only UDP service, and to a service that was kept. UDP routers have no rule
/// and the workload gets no implicit one (as Traefik: a UDP router exists only when a label names it).
fn complete_udp_routers(
    udp: &mut UdpConfiguration,
    services: &[String],
    cx: &Cx<'_>,
    errors: &mut Vec<LabelError>,
) {
    let kept = &udp.services;
    retain_routers(&mut udp.routers, UDP, cx, errors, |label, r| {
        bind_service(&mut r.service, services, label, "UDP ")?;
        service_kept(
            &r.service,
            kept.contains_key(&r.service),
            services,
            label,
            "UDP ",
        )
    });
}

/// A workload without router labels gets one router named after it, unless it has several services (which
/// one would it serve?).
fn add_implicit_router(
    http: &mut HttpConfiguration,
    services: &[String],
    cx: &Cx<'_>,
    notes: &mut Vec<String>,
) {
    if services.len() > 1 {
        notes.push(format!(
            "{}: no router created: several services ({}) and no router labels",
            cx.owner,
            services.join(", ")
        ));
    } else {
        http.routers
            .insert(normalize(&cx.w.name), Default::default());
    }
}

/// HTTP routers: the default rule when none is set, bound to the only service, a rule that parses in its
/// syntax, and a service and middlewares that were kept.
fn complete_http_routers(
    http: &mut HttpConfiguration,
    services: &[String],
    middlewares: &[String],
    cx: &Cx<'_>,
    errors: &mut Vec<LabelError>,
) {
    if cx.s.default_rule_off {
        // Traefik removes a router whose rule renders empty, without an error.
        http.routers.retain(|_, r| !r.rule.trim().is_empty());
    }
    let (kept_services, kept_middlewares) = (&http.services, &http.middlewares);
    retain_routers(&mut http.routers, HTTP, cx, errors, |label, r| {
        if r.rule.trim().is_empty() {
            r.rule = default_rule(cx, label)?;
        }
        bind_service(&mut r.service, services, label, "")?;
        let syntax = match r.rule_syntax.as_deref() {
            None | Some("") => cx.s.default_syntax,
            Some(x) => x
                .parse::<Syntax>()
                .map_err(|e| (format!("{label}.ruleSyntax"), e.to_string()))?,
        };
        if let Err(e) = crate::rule::parse(&r.rule, syntax) {
            return Err((format!("{label}.rule"), format!("rule `{}`: {e}", r.rule)));
        }
        service_kept(
            &r.service,
            kept_services.contains_key(&r.service),
            services,
            label,
            "",
        )?;
        for m in &r.middlewares {
            if !m.contains('@') && !kept_middlewares.contains_key(m) && middlewares.contains(m) {
                return Err((
                    format!("{label}.middlewares"),
                    format!("its middleware `{m}` was dropped"),
                ));
            }
        }
        Ok(())
    });
}

/// `defaultRule` rendered for this workload; an empty rendering is an error (it would match nothing).
fn default_rule(cx: &Cx<'_>, label: &str) -> Result<String, (String, String)> {
    if let Some(e) = &cx.s.default_rule_error {
        return Err((format!("{label}.rule"), e.clone()));
    }
    let model = Model {
        name: &default_name_for_template(cx.w),
        container_name: &cx.w.container_name,
        labels: &cx.w.labels,
    };
    match cx.s.default_rule.render(&model) {
        Ok(rule) if !rule.trim().is_empty() => Ok(rule),
        Ok(_) => Err((
            format!("{label}.rule"),
            "no rule, and defaultRule renders to nothing".into(),
        )),
        Err(e) => Err((format!("{label}.rule"), e.to_string())),
    }
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

/// The server addresses (`host:port`) of a workload whose servers use `port`: with `useBindPortIP`, the
/// host binding of that port when it is on a specific address (Traefik's `getPortBinding`: the first
/// binding of the port; one on every address falls back); else each address with the port.
fn server_addresses(w: &Workload, s: &Settings, port: u16) -> Vec<String> {
    if s.use_bind_port_ip {
        let bound = w
            .bindings
            .iter()
            .find(|b| b.private_port == port)
            .filter(|b| {
                let ip = b.host_ip.trim_matches(['[', ']']);
                !ip.is_empty()
                    && ip
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|a| !a.is_unspecified())
            });
        if let Some(b) = bound {
            return vec![host_port(b.host_ip.trim_matches(['[', ']']), b.host_port)];
        }
    }
    w.addresses.iter().map(|a| host_port(a, port)).collect()
}

/// The port of a workload's servers: the label, else (containers) the lowest exposed port. An empty
/// `server.port` label is no label (Traefik's tables: the exposed port).
fn server_port(
    w: &Workload,
    s: &Settings,
    service: &str,
    proto: &str,
    sh_port: Option<(String, String)>,
) -> Result<u16, (String, String)> {
    match sh_port.filter(|(v, _)| !v.trim().is_empty()) {
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
        // Traefik refuses a server with both a URL and a port or scheme (its tables drop the container's
        // configuration); swarmgate drops this service only.
        for (option, given) in [("port", sh.port), ("scheme", sh.scheme)] {
            if let Some((_, label)) = given {
                return Err((
                    label,
                    format!("`server.url` and `server.{option}` are both set"),
                ));
            }
        }
        lb.servers = vec![template];
        return Ok(());
    }
    if w.addresses.is_empty() {
        // No server to give a port to: an unhealthy container or a service without tasks, kept with
        // `allowEmptyServices` (Traefik keeps it too, without servers, whatever its port).
        lb.servers.clear();
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
    lb.servers = server_addresses(w, s, port)
        .into_iter()
        .map(|a| Server {
            url: format!("{scheme}://{a}"),
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
    if w.addresses.is_empty() {
        // No server to give a port to: an unhealthy container or a service without tasks, kept with
        // `allowEmptyServices` (Traefik keeps it too, without servers, whatever its port).
        lb.servers.clear();
        return Ok(());
    }
    let port = server_port(w, s, service, "tcp", sh.port)?;
    lb.servers = server_addresses(w, s, port)
        .into_iter()
        .map(|address| TcpServer {
            address,
            ..template.clone()
        })
        .collect();
    Ok(())
}

/// UDP servers as Traefik's Docker provider derives them: the workload's addresses (task or container IPs)
/// with `server.port` (else, for containers, the lowest exposed port); an explicit `server.address` is kept.
fn fill_udp_servers(
    lb: &mut UdpLoadBalancer,
    w: &Workload,
    s: &Settings,
    service: &str,
    sh: Shorthand,
) -> Result<(), (String, String)> {
    let template: UdpServer = lb.servers.first().cloned().unwrap_or_default();
    if !template.address.is_empty() {
        lb.servers = vec![template];
        return Ok(());
    }
    if w.addresses.is_empty() {
        // No server to give a port to: an unhealthy container or a service without tasks, kept with
        // `allowEmptyServices` (Traefik keeps it too, without servers, whatever its port).
        lb.servers.clear();
        return Ok(());
    }
    let port = server_port(w, s, service, "udp", sh.port)?;
    lb.servers = server_addresses(w, s, port)
        .into_iter()
        .map(|address| UdpServer {
            address,
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
    let mut seen = Seen::default();
    for (owner, cfg) in parts {
        out.dropped.extend(cfg.dropped.iter().cloned());
        seen.section(&mut out.http, &cfg.http, HTTP, owner, merge_service);
        seen.add_all(
            &mut out.http.servers_transports,
            &cfg.http.servers_transports,
            ItemKind::ServersTransport,
            owner,
            no_merge,
        );
        seen.section(&mut out.tcp, &cfg.tcp, TCP, owner, merge_service);
        seen.section(&mut out.udp, &cfg.udp, UDP, owner, merge_service);
        seen.add_all(
            &mut out.tls.stores,
            &cfg.tls.stores,
            ItemKind::Tls,
            owner,
            no_merge,
        );
    }
    let mut errors = Vec::new();
    for (Rank(kind), name) in std::mem::take(&mut seen.conflicts) {
        remove_conflicting(&mut out, kind, &name);
        let who = seen
            .owners
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

/// Who defined each item so far, and which items were defined differently.
#[derive(Default)]
struct Seen {
    owners: BTreeMap<(Rank, String), Vec<String>>,
    conflicts: BTreeSet<(Rank, String)>,
}

impl Seen {
    /// Routers, services and middlewares of one protocol section (transports are merged by the caller: only
    /// HTTP's are).
    fn section<R: PartialEq + Clone, S: PartialEq + Clone, T>(
        &mut self,
        out: &mut Section<R, S, T>,
        part: &Section<R, S, T>,
        proto: Proto,
        owner: &str,
        merge_service: fn(&mut S, &S) -> bool,
    ) {
        self.add_all(
            &mut out.routers,
            &part.routers,
            proto.router,
            owner,
            no_merge,
        );
        self.add_all(
            &mut out.services,
            &part.services,
            proto.service,
            owner,
            merge_service,
        );
        self.add_all(
            &mut out.middlewares,
            &part.middlewares,
            ItemKind::Middleware,
            owner,
            no_merge,
        );
    }

    /// Adds `items` to `map`; an item already there must be equal or `mergeable` into it, or it conflicts.
    fn add_all<T: PartialEq + Clone>(
        &mut self,
        map: &mut BTreeMap<String, T>,
        items: &BTreeMap<String, T>,
        kind: ItemKind,
        owner: &str,
        mergeable: fn(&mut T, &T) -> bool,
    ) {
        for (name, item) in items {
            let key = (Rank(kind), name.to_string());
            let list = self.owners.entry(key.clone()).or_default();
            if !list.iter().any(|o| o == owner) {
                list.push(owner.to_string());
            }
            match map.get_mut(name) {
                None => {
                    map.insert(name.to_string(), item.clone());
                }
                Some(existing) => {
                    if existing != item && !mergeable(existing, item) {
                        self.conflicts.insert(key);
                    }
                }
            }
        }
    }
}

/// Items of this kind are never merged: any difference is a conflict.
fn no_merge<T>(_: &mut T, _: &T) -> bool {
    false
}

/// Drops an item defined differently by several workloads.
fn remove_conflicting(out: &mut Configuration, kind: ItemKind, name: &str) {
    match kind {
        ItemKind::Router => out.http.routers.remove(name).map(|_| ()),
        ItemKind::Service => out.http.services.remove(name).map(|_| ()),
        ItemKind::Middleware => out
            .http
            .middlewares
            .remove(name)
            .or_else(|| out.tcp.middlewares.remove(name))
            .map(|_| ()),
        ItemKind::ServersTransport => out.http.servers_transports.remove(name).map(|_| ()),
        ItemKind::TcpRouter => out.tcp.routers.remove(name).map(|_| ()),
        ItemKind::TcpService => out.tcp.services.remove(name).map(|_| ()),
        ItemKind::UdpRouter => out.udp.routers.remove(name).map(|_| ()),
        ItemKind::UdpService => out.udp.services.remove(name).map(|_| ()),
        ItemKind::Tls => out.tls.stores.remove(name).map(|_| ()),
        ItemKind::Configuration => None,
    };
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
            ItemKind::UdpRouter => 8,
            ItemKind::UdpService => 9,
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

/// Two definitions of one service merge when they differ only in their load balancer's servers: the
/// servers are unioned (by URL or address) into `existing`.
fn merge_service<S: LabelService>(existing: &mut S, new: &S) -> bool {
    let (mut rest_a, mut rest_b) = (existing.clone(), new.clone());
    let (Some(mut a), Some(mut b)) = (rest_a.lb().take(), rest_b.lb().take()) else {
        return false;
    };
    let new_servers = std::mem::take(S::servers(&mut b));
    S::servers(&mut a).clear();
    if rest_a != rest_b || a != b {
        return false;
    }
    if let Some(lb) = existing.lb().as_mut() {
        let servers = S::servers(lb);
        for s in new_servers {
            if !servers
                .iter()
                .any(|x| S::server_key(x) == S::server_key(&s))
            {
                servers.push(s);
            }
        }
    }
    true
}

#[cfg(test)]
#[path = "labels_tests.rs"]
mod tests;
