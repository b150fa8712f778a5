//! `swarmgate check <compose-or-stack.yml> [flags]`: lint a stack before deploying it.
//!
//! Reads the file's services (Compose spec), interpolates `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?msg}`/`${VAR?msg}`, `$VAR` and `$$` from the given environment, takes the provider flags given on
//! the command line or, failing that, the `command:` of the file's own Traefik/swarmgate service, and runs the
//! very label function the Docker provider runs ([`crate::provider::docker::assemble`]). Swarm mode reads
//! `deploy.labels`; container mode reads `labels`. Task addresses are unknown offline, so each service's
//! servers are listed by its name and port (`http://web:80`). A container without `ports`/`expose` gets
//! the ports its image `EXPOSE`s, read from the Docker engine when one is reachable ([`images`]); when none
//! is, one line says so.
//!
//! Output ([`run`]): the dynamic configuration as JSON in the shape of Traefik's `/api/rawdata` (names
//! qualified `@docker` / `@swarm`, routers with resolved entrypoints and a status; items dropped for an
//! invalid label listed `disabled` with their error), and one line per error or warning. The exit code is
//! 0 when every router builds and 1 otherwise. Pure apart from reading the file (bounded in size, depth and
//! alias expansion by [`crate::config::sources`]) and asking the given [`ImageSource`].

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

mod images;

pub use images::{Engine, ImageError, ImageSource, NoEngine};

use crate::config::StaticConfig;
use crate::dynamic::traefik_json;
use crate::provider::docker::labels::{self, Mode, Workload};
use crate::provider::docker::{assemble, settings};
use crate::value::node::{Node, NodeKind};

/// Why a check could not run at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A required variable is unset (`${VAR?message}`).
    #[error("{path}: variable `{var}` is not set: {message}")]
    Variable {
        /// The file.
        path: String,
        /// The variable.
        var: String,
        /// The file's message.
        message: String,
    },
    /// The file is not YAML.
    #[error("{0}")]
    Syntax(#[from] crate::config::sources::SourceError),
    /// The provider flags are wrong.
    #[error("flags: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// The provider settings are wrong (template, constraints).
    #[error("{0}")]
    Settings(#[from] crate::provider::docker::SpecError),
    /// Nothing to check.
    #[error("{0}")]
    Invalid(String),
}

/// What a check produced.
#[derive(Debug)]
pub struct Report {
    /// `/api/rawdata`-shaped JSON.
    pub rawdata: Value,
    /// One line per error (`error: …`) or warning (`warning: …`).
    pub lines: Vec<String>,
    /// Whether every router built.
    pub ok: bool,
}

/// Replaces Compose variables in `text`; `env` looks a variable up.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    path: &str,
) -> Result<String, CheckError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push('$');
                rest = after;
                continue;
            };
            let expr = &body[..end];
            rest = &body[end + 1..];
            let name_end = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_end);
            let value = env(name);
            let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
            let v = if let Some(d) = op.strip_prefix(":-") {
                if set_nonempty {
                    value.unwrap_or_default()
                } else {
                    d.to_string()
                }
            } else if let Some(d) = op.strip_prefix('-') {
                value.unwrap_or_else(|| d.to_string())
            } else if let Some(m) = op.strip_prefix(":?") {
                if !set_nonempty {
                    return Err(CheckError::Variable {
                        path: path.into(),
                        var: name.into(),
                        message: m.into(),
                    });
                }
                value.unwrap_or_default()
            } else if let Some(m) = op.strip_prefix('?') {
                value.ok_or_else(|| CheckError::Variable {
                    path: path.into(),
                    var: name.into(),
                    message: m.into(),
                })?
            } else if let Some(a) = op.strip_prefix(":+") {
                if set_nonempty {
                    a.to_string()
                } else {
                    String::new()
                }
            } else if let Some(a) = op.strip_prefix('+') {
                if value.is_some() {
                    a.to_string()
                } else {
                    String::new()
                }
            } else {
                value.unwrap_or_default()
            };
            out.push_str(&v);
        } else {
            let name_end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_end == 0 {
                out.push('$');
                rest = after;
                continue;
            }
            out.push_str(&env(&after[..name_end]).unwrap_or_default());
            rest = &after[name_end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn scalar_text(n: &Node) -> Option<String> {
    n.as_str().map(str::to_string)
}

/// Labels in map form (`k: v`) or list form (`- k=v`).
fn labels_of(n: Option<&Node>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match n.map(|n| &n.kind) {
        Some(NodeKind::Map(entries)) => {
            for (k, v) in entries {
                out.insert(k.clone(), scalar_text(v).unwrap_or_default());
            }
        }
        Some(NodeKind::List(items)) => {
            for it in items {
                if let Some(s) = it.as_str() {
                    let (k, v) = s.split_once('=').unwrap_or((s, ""));
                    out.insert(k.trim().to_string(), v.to_string());
                }
            }
        }
        _ => {}
    }
    out
}

/// `command:` as a list, or a string split like a shell would (quotes respected).
fn command_of(n: Option<&Node>) -> Vec<String> {
    match n.map(|n| &n.kind) {
        Some(NodeKind::List(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(NodeKind::Scalar(s)) => shell_words(s),
        _ => Vec::new(),
    }
}

fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Container ports from `expose` and `ports` (short and long syntax).
fn ports_of(svc: &Node) -> Vec<u16> {
    let mut out = Vec::new();
    for key in ["expose", "ports"] {
        let Some(NodeKind::List(items)) = svc.get(key).map(|n| &n.kind) else {
            continue;
        };
        for it in items {
            let text = match &it.kind {
                NodeKind::Scalar(s) => s.clone(),
                NodeKind::Map(_) => it.get("target").and_then(scalar_text).unwrap_or_default(),
                NodeKind::List(_) => continue,
            };
            let last = text
                .rsplit(':')
                .next()
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap_or("");
            let first = last.split('-').next().unwrap_or("");
            if let Ok(p) = first.trim().parse::<u16>() {
                out.push(p);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The port a container without `ports`/`expose` is checked with when its image's `EXPOSE` cannot be read
/// (no engine, image not pulled yet): at runtime the image decides (`check` says so, naming the services).
const PORT_WHEN_IMAGE_DECIDES: u16 = 80;

/// What reading the images of services without `ports`/`expose` found, for the report.
#[derive(Default)]
struct ImagePorts {
    /// (service, image, ports) read from the engine.
    read: Vec<(String, String, Vec<u16>)>,
    /// Why no engine answered, and the services that needed one.
    unreachable: Option<(String, Vec<String>)>,
    /// (service, why its image's ports are unknown).
    unknown: Vec<(String, String)>,
}

impl ImagePorts {
    /// The exposed ports of compose service `svc_name` (container mode, no `ports`/`expose`): its image's,
    /// from `images`; [`PORT_WHEN_IMAGE_DECIDES`] when they cannot be read. A service whose labels name
    /// the port needs none and is not looked up.
    fn of(
        &mut self,
        svc_name: &str,
        svc: &Node,
        labels: &BTreeMap<String, String>,
        images: &dyn ImageSource,
    ) -> Vec<u16> {
        let port_label = labels.keys().any(|k| {
            let k = k.to_ascii_lowercase();
            k.ends_with(".loadbalancer.server.port") || k == "traefik.port"
        });
        if port_label {
            return vec![PORT_WHEN_IMAGE_DECIDES];
        }
        let Some(image) = svc.get("image").and_then(scalar_text) else {
            self.unknown.push((
                svc_name.to_string(),
                "no `image` (it is built at deploy time)".into(),
            ));
            return vec![PORT_WHEN_IMAGE_DECIDES];
        };
        match images.exposed_ports(&image) {
            Ok(ports) => {
                self.read.push((svc_name.to_string(), image, ports.clone()));
                ports
            }
            Err(ImageError::Unreachable(why)) => {
                self.unreachable
                    .get_or_insert_with(|| (why, Vec::new()))
                    .1
                    .push(svc_name.to_string());
                vec![PORT_WHEN_IMAGE_DECIDES]
            }
            Err(e) => {
                self.unknown.push((svc_name.to_string(), e.to_string()));
                vec![PORT_WHEN_IMAGE_DECIDES]
            }
        }
    }

    /// One `info:` line per service read or unknown, and one for all the services no engine answered for.
    fn report(self, lines: &mut Vec<String>) {
        for (svc, image, ports) in self.read {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            lines.push(if ports.is_empty() {
                format!("info: service `{svc}`: image `{image}` exposes no TCP port")
            } else {
                format!(
                    "info: service `{svc}`: port {} from image `{image}` (EXPOSE)",
                    ports.join(", ")
                )
            });
        }
        for (svc, why) in self.unknown {
            lines.push(format!(
                "info: service `{svc}` declares no port (`ports`/`expose`) and its image's EXPOSE is unknown: {why}; checked with port {PORT_WHEN_IMAGE_DECIDES}"
            ));
        }
        if let Some((why, services)) = self.unreachable {
            lines.push(format!(
                "info: {}: services {} declare no port (`ports`/`expose`) and their images' EXPOSE is not read; checked with port {PORT_WHEN_IMAGE_DECIDES} (set DOCKER_HOST to read them)",
                ImageError::Unreachable(why),
                services.join(", ")
            ));
        }
    }
}

/// The services of a Compose file in format version 1 (no `services:`, each top-level key a service
/// with an `image` or a `build`), or `None` when the file is not one.
fn compose_v1_services(root: &Node) -> Option<&Vec<(String, Node)>> {
    let NodeKind::Map(top) = &root.kind else {
        return None;
    };
    let is_service = |n: &Node| {
        matches!(n.kind, NodeKind::Map(_)) && (n.get("image").is_some() || n.get("build").is_some())
    };
    (!top.is_empty() && top.iter().all(|(_, n)| is_service(n))).then_some(top)
}

fn is_proxy_image(image: &str) -> bool {
    let i = image.to_ascii_lowercase();
    let base = i.rsplit('/').next().unwrap_or(&i);
    base.starts_with("traefik") || base.starts_with("swarmgate")
}

/// Checks a compose text. `flags` are provider flags (empty: taken from the file's proxy service);
/// `name` is the stack/project name used for Traefik's service names (`<stack>_<service>`).
pub fn check_text(
    text: &str,
    path: &str,
    flags: &[String],
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    images: &dyn ImageSource,
) -> Result<Report, CheckError> {
    let text = interpolate(text, env, path)?;
    let root = crate::config::sources::from_yaml(&text, path)?;
    let mut lines = Vec::new();
    let services = match root.get("services").map(|n| &n.kind) {
        Some(NodeKind::Map(services)) => services,
        _ => match compose_v1_services(&root) {
            Some(services) => {
                lines.push(format!(
                    "info: {path}: Compose file format version 1 (services at the top level)"
                ));
                services
            }
            None => {
                return Err(CheckError::Invalid(format!(
                    "{path}: no `services:` section"
                )))
            }
        },
    };
    let flags = provider_flags(services, flags, &mut lines);
    let loaded = crate::config::load(&flags, &[])?;
    for w in &loaded.warnings {
        lines.push(format!("warning: {w}"));
    }
    let cfg: StaticConfig = loaded.config;
    let (provider, pcfg) = provider_of(&cfg, services, &mut lines);
    let (mode, settings) = settings(provider, &pcfg, &cfg)?;
    let mut image_ports = ImagePorts::default();
    let workloads: Vec<Workload> = services
        .iter()
        .filter_map(|(svc_name, svc)| {
            let cx = ServiceCx {
                stack: name,
                mode,
                settings: &settings,
                images,
            };
            workload_of(svc_name, svc, &cx, &mut image_ports, &mut lines)
        })
        .collect();
    image_ports.report(&mut lines);
    let assembled = assemble(&workloads, &settings);
    let mut ok = !lines.iter().any(|l| l.starts_with("error:"));
    for n in &assembled.notes {
        lines.push(format!("warning: deprecated: {n}"));
    }
    for e in &assembled.errors {
        ok = false;
        lines.push(format!("error: {e}"));
    }
    let (mut rawdata, more, all_ok) = rawdata(&assembled.config, provider, &cfg);
    ok &= all_ok;
    lines.extend(more);
    ok &= runtime_statuses(assembled.config, provider, &cfg, &mut rawdata, &mut lines)?;
    Ok(Report { rawdata, lines, ok })
}

/// Compiles the configuration exactly as the running proxy does ([`crate::table::compile`], with the
/// internal routers and the entrypoints of `cfg`), and writes each item's runtime status and errors into
/// `rawdata`: an item the runtime would disable is reported disabled here, with the runtime's reason.
/// Returns false when the runtime would disable any item of the stack.
fn runtime_statuses(
    config: crate::dynamic::Configuration,
    provider: &str,
    cfg: &StaticConfig,
    rawdata: &mut Value,
    lines: &mut Vec<String>,
) -> Result<bool, CheckError> {
    use std::sync::Arc;
    let ctx = crate::app::offline_compile_context(cfg)
        .map_err(|e| CheckError::Invalid(format!("static configuration: {e}")))?;
    let mut providers = BTreeMap::new();
    providers.insert(provider.to_string(), Arc::new(config));
    providers.insert(
        "internal".to_string(),
        Arc::new(crate::app::internal_config(cfg).0),
    );
    let input = crate::table::BuildInput { providers };
    let compiled = crate::table::compile(&input, &ctx, &Default::default(), 1);
    let status = &compiled.table.status;
    let mut ok = true;
    for (section, items) in [
        ("routers", &status.routers),
        ("services", &status.services),
        ("middlewares", &status.middlewares),
    ] {
        for (name, st) in items.iter().filter(|(_, st)| st.provider == provider) {
            let Some(Value::Object(item)) = rawdata.get_mut(section).and_then(|s| s.get_mut(name))
            else {
                continue;
            };
            let before = item
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_string);
            item.insert("status".into(), json!(st.status.as_str()));
            if !st.errors.is_empty() {
                item.insert("error".into(), json!(st.errors));
            }
            if st.status == crate::table::Status::Disabled {
                ok = false;
                if before.as_deref() != Some("disabled") {
                    for e in &st.errors {
                        lines.push(format!("error: {name}: {e}"));
                    }
                }
            }
        }
    }
    Ok(ok)
}

/// The static flags to check with: the given ones, else the `-` arguments of the stack's Traefik (or
/// swarmgate) service's `command`.
fn provider_flags(
    services: &[(String, Node)],
    flags: &[String],
    lines: &mut Vec<String>,
) -> Vec<String> {
    if !flags.is_empty() {
        return flags.to_vec();
    }
    let proxy = services.iter().find(|(_, s)| {
        s.get("image")
            .and_then(Node::as_str)
            .is_some_and(is_proxy_image)
    });
    match proxy {
        Some((n, s)) => {
            let cmd: Vec<String> = command_of(s.get("command"))
                .into_iter()
                .filter(|a| a.starts_with('-'))
                .collect();
            lines.push(format!(
                "info: provider flags taken from service `{n}`'s command"
            ));
            cmd
        }
        None => Vec::new(),
    }
}

/// The provider the flags configure; without one, `swarm` when the stack has `deploy.labels`, else
/// `docker`, with defaults (and a warning saying so).
fn provider_of(
    cfg: &StaticConfig,
    services: &[(String, Node)],
    lines: &mut Vec<String>,
) -> (&'static str, crate::config::types::DockerProvider) {
    match (&cfg.providers.swarm, &cfg.providers.docker) {
        (Some(s), _) => ("swarm", s.clone()),
        (None, Some(d)) => ("docker", d.clone()),
        (None, None) => {
            let swarmy = services
                .iter()
                .any(|(_, s)| s.get("deploy").and_then(|d| d.get("labels")).is_some());
            lines.push(format!("warning: no Docker provider in the flags; checking as `--providers.{}` with defaults", if swarmy { "swarm" } else { "docker" }));
            (if swarmy { "swarm" } else { "docker" }, Default::default())
        }
    }
}

/// One compose service as the provider would see it, named as the stack `name` deploys it; `None` when
/// the provider would skip it (said in `lines` when it has Traefik labels) or its options are invalid.
/// What [`workload_of`] needs of the stack: its name, the provider's mode and settings, and where image
/// ports are read.
struct ServiceCx<'a> {
    stack: &'a str,
    mode: Mode,
    settings: &'a labels::Settings,
    images: &'a dyn ImageSource,
}

fn workload_of(
    svc_name: &str,
    svc: &Node,
    cx: &ServiceCx<'_>,
    image_ports: &mut ImagePorts,
    lines: &mut Vec<String>,
) -> Option<Workload> {
    let (name, mode, settings) = (cx.stack, cx.mode, cx.settings);
    let lab = match mode {
        Mode::Swarm => labels_of(svc.get("deploy").and_then(|d| d.get("labels"))),
        Mode::Containers => labels_of(svc.get("labels")),
    };
    if mode == Mode::Swarm
        && !svc
            .get("labels")
            .map(|l| labels_of(Some(l)))
            .unwrap_or_default()
            .keys()
            .all(|k| !k.starts_with("traefik."))
    {
        lines.push(format!("warning: service `{svc_name}`: traefik labels under `labels:` are container labels and are ignored in Swarm mode; use `deploy.labels`"));
    }
    let full = match mode {
        Mode::Swarm => format!("{name}_{svc_name}"),
        Mode::Containers => format!("{svc_name}_{name}"),
    };
    let w = Workload {
        name: full.clone(),
        container_name: full,
        labels: lab,
        exposed_ports: Vec::new(),
        addresses: vec![svc_name.to_string()],
        bindings: Vec::new(),
    };
    match labels::options(&w, settings) {
        Ok(o) if o.enable => {
            let mut w = w;
            if mode == Mode::Containers {
                // No `ports`/`expose`: the image's EXPOSE decides at runtime; read from the engine.
                w.exposed_ports = match ports_of(svc) {
                    p if p.is_empty() => image_ports.of(svc_name, svc, &w.labels, cx.images),
                    p => p,
                };
            }
            Some(w)
        }
        Ok(o) => {
            if w.labels.keys().any(|k| k.starts_with("traefik.")) {
                lines.push(format!(
                    "info: service `{svc_name}` skipped: {}",
                    o.skipped.unwrap_or_default()
                ));
            }
            None
        }
        Err(e) => {
            lines.push(format!("error: {e}"));
            None
        }
    }
}

/// Reads and checks a file; `env` is the process environment in the binary.
pub fn check_file(
    path: &Path,
    flags: &[String],
    name: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    images: &dyn ImageSource,
) -> Result<Report, CheckError> {
    let text = crate::config::sources::read_text(path).map_err(|source| CheckError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let default_name = path
        .canonicalize()
        .ok()
        .and_then(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .map(|d| d.to_string_lossy().to_string())
        })
        .unwrap_or_else(|| "stack".into());
    check_text(
        &text,
        &path.display().to_string(),
        flags,
        name.unwrap_or(&default_name),
        env,
        images,
    )
}

/// Builds the rawdata JSON and validates references: services, middlewares and entrypoints of each router.
fn rawdata(
    c: &crate::dynamic::Configuration,
    provider: &str,
    stat: &StaticConfig,
) -> (Value, Vec<String>, bool) {
    let mut raw = Rawdata {
        c,
        provider,
        lines: Vec::new(),
        ok: true,
        used_by: BTreeMap::new(),
    };
    let mut routers = raw.http_routers(stat);
    let mut services = raw.listed(&c.http.services, traefik_json::SERVICE);
    let mut middlewares = raw.listed(&c.http.middlewares, traefik_json::MIDDLEWARE);
    raw.list_dropped(&mut routers, &mut services, &mut middlewares);
    let mut out = Map::new();
    out.insert("routers".into(), Value::Object(routers));
    out.insert("middlewares".into(), Value::Object(middlewares));
    out.insert("services".into(), Value::Object(services));
    if !c.tcp.routers.is_empty() || !c.tcp.services.is_empty() {
        out.insert("tcpRouters".into(), Value::Object(raw.tcp_routers()));
        out.insert(
            "tcpServices".into(),
            Value::Object(raw.listed(&c.tcp.services, traefik_json::TCP_SERVICE)),
        );
    }
    (Value::Object(out), raw.lines, raw.ok)
}

/// The state of one rawdata listing: what it lists from, and what it has found so far.
struct Rawdata<'a> {
    c: &'a crate::dynamic::Configuration,
    provider: &'a str,
    /// `error: …` lines for stderr.
    lines: Vec<String>,
    /// No error so far.
    ok: bool,
    /// Qualified service or middleware name → the routers that use it.
    used_by: BTreeMap<String, Vec<String>>,
}

impl Rawdata<'_> {
    fn q(&self, n: &str) -> String {
        crate::dynamic::qualify(n, self.provider)
    }

    /// HTTP routers with their references checked; a router with an error is listed `disabled`.
    fn http_routers(&mut self, stat: &StaticConfig) -> Map<String, Value> {
        let (eps, defaults) = entry_points(stat);
        let mut routers = Map::new();
        for (name, r) in &self.c.http.routers {
            let qn = self.q(name);
            let entry_points = if r.entry_points.is_empty() {
                defaults.clone()
            } else {
                r.entry_points.clone()
            };
            let errs = self.router_errors(r, &entry_points, &eps);
            let svc = self.q(&r.service);
            self.used_by
                .entry(svc.clone())
                .or_default()
                .push(qn.clone());
            for m in &r.middlewares {
                self.used_by.entry(self.q(m)).or_default().push(qn.clone());
            }
            let mut v = traefik_json::item(
                serde_json::to_value(r).unwrap_or(Value::Null),
                traefik_json::ROUTER,
            );
            if let Value::Object(o) = &mut v {
                o.insert("entryPoints".into(), json!(entry_points));
                o.insert("service".into(), json!(svc));
                o.insert(
                    "middlewares".into(),
                    json!(r.middlewares.iter().map(|m| self.q(m)).collect::<Vec<_>>()),
                );
                if r.middlewares.is_empty() {
                    o.remove("middlewares");
                }
                let status = if errs.is_empty() {
                    "enabled"
                } else {
                    "disabled"
                };
                o.insert("status".into(), json!(status));
                if !errs.is_empty() {
                    o.insert("error".into(), json!(errs));
                }
                o.insert("provider".into(), json!(self.provider));
            }
            for e in &errs {
                self.ok = false;
                self.lines.push(format!("error: router `{qn}`: {e}"));
            }
            routers.insert(qn, v);
        }
        routers
    }

    /// A router's references that this provider should define but does not, and unknown entrypoints.
    fn router_errors(
        &self,
        r: &crate::dynamic::Router,
        entry_points: &[String],
        eps: &[String],
    ) -> Vec<String> {
        let mut errs = Vec::new();
        let own = format!("@{}", self.provider);
        let svc = self.q(&r.service);
        if svc.ends_with(&own) && !self.c.http.services.contains_key(&r.service) {
            errs.push(format!("the service `{svc}` does not exist"));
        }
        for m in &r.middlewares {
            let qm = self.q(m);
            if qm.ends_with(&own) && !self.c.http.middlewares.contains_key(m) {
                errs.push(format!("the middleware `{qm}` does not exist"));
            }
        }
        if !eps.is_empty() {
            for ep in entry_points.iter().filter(|ep| !eps.contains(ep)) {
                errs.push(format!(
                    "entrypoint `{ep}` does not exist (static configuration has: {})",
                    eps.join(", ")
                ));
            }
        }
        errs
    }

    /// Services or middlewares (of any protocol), `enabled`, with the routers that use them.
    fn listed<T: serde::Serialize>(
        &self,
        items: &BTreeMap<String, T>,
        typ: &str,
    ) -> Map<String, Value> {
        items
            .iter()
            .map(|(n, item)| {
                let qn = self.q(n);
                let mut v =
                    traefik_json::item(serde_json::to_value(item).unwrap_or(Value::Null), typ);
                if let Value::Object(o) = &mut v {
                    o.insert("status".into(), json!("enabled"));
                    o.insert("provider".into(), json!(self.provider));
                    if let Some(u) = self.used_by.get(&qn) {
                        o.insert("usedBy".into(), json!(u));
                    }
                }
                (qn, v)
            })
            .collect()
    }

    /// Items the label function dropped: listed disabled with their error (as the API lists them), so
    /// that an invalid router is visible and never mistaken for one that serves.
    fn list_dropped(
        &mut self,
        routers: &mut Map<String, Value>,
        services: &mut Map<String, Value>,
        middlewares: &mut Map<String, Value>,
    ) {
        use crate::dynamic::ItemKind;
        let http = &self.c.http;
        for d in &self.c.dropped {
            let (map, present) = match d.kind {
                ItemKind::Router => (&mut *routers, http.routers.contains_key(&d.name)),
                ItemKind::Service => (&mut *services, http.services.contains_key(&d.name)),
                ItemKind::Middleware => (&mut *middlewares, http.middlewares.contains_key(&d.name)),
                _ => continue,
            };
            if present {
                continue;
            }
            self.ok = false;
            let entry = map.entry(self.q(&d.name)).or_insert_with(
                || json!({ "status": "disabled", "provider": self.provider, "error": [] }),
            );
            if let Some(Value::Array(errors)) = entry.get_mut("error") {
                if !errors.iter().any(|e| e.as_str() == Some(d.error.as_str())) {
                    errors.push(json!(d.error));
                }
            }
        }
    }

    /// TCP routers, `enabled` (their references are checked by the label function already).
    fn tcp_routers(&self) -> Map<String, Value> {
        self.c
            .tcp
            .routers
            .iter()
            .map(|(n, r)| {
                let mut v = traefik_json::item(
                    serde_json::to_value(r).unwrap_or(Value::Null),
                    traefik_json::TCP_ROUTER,
                );
                if let Value::Object(o) = &mut v {
                    o.insert("service".into(), json!(self.q(&r.service)));
                    o.insert("status".into(), json!("enabled"));
                    o.insert("provider".into(), json!(self.provider));
                }
                (self.q(n), v)
            })
            .collect()
    }
}

/// The static configuration's entrypoints, and those a router without `entryPoints` attaches to (the
/// `asDefault` ones, or all when none is).
fn entry_points(stat: &StaticConfig) -> (Vec<String>, Vec<String>) {
    let eps: Vec<String> = stat.entry_points.keys().cloned().collect();
    let d: Vec<String> = stat
        .entry_points
        .iter()
        .filter(|(_, e)| e.as_default)
        .map(|(n, _)| n.clone())
        .collect();
    let defaults = if d.is_empty() { eps.clone() } else { d };
    (eps, defaults)
}

/// Runs the subcommand: prints rawdata on stdout and the lines on stderr; returns the exit code.
pub fn run(path: &Path, flags: &[String], name: Option<&str>) -> i32 {
    let env = |k: &str| std::env::var(k).ok();
    let engine = Engine::new(std::env::var("DOCKER_HOST").ok().as_deref());
    match check_file(path, flags, name, &env, &engine) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report.rawdata).unwrap_or_default()
            );
            for l in &report.lines {
                eprintln!("{l}");
            }
            i32::from(!report.ok)
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation() {
        let env = |k: &str| match k {
            "A" => Some("a".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let rows = [
            ("x${A}y", "xay"),
            ("$A-$B.", "a-."),
            ("${B:-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${A:+alt}", "alt"),
            ("$$apr1$$x", "$apr1$x"),
            ("cost $", "cost $"),
            ("${A?required}", "a"),
        ];
        for (i, o) in rows {
            assert_eq!(interpolate(i, &env, "f").expect(i), o, "{i}");
        }
        let e = interpolate("${B?Variable not set}", &env, "f.yml").expect_err("unset");
        assert!(e.to_string().contains("`B`") && e.to_string().contains("Variable not set"));
    }

    #[test]
    fn alias_bomb_compose_file_is_refused() {
        let mut text = String::from("x-a0: &a0 [l,l,l,l,l,l,l,l,l]\n");
        for i in 1..=9 {
            let refs = vec![format!("*a{}", i - 1); 9].join(",");
            text.push_str(&format!("x-a{i}: &a{i} [{refs}]\n"));
        }
        text.push_str("services:\n  web:\n    image: nginx\n");
        let e =
            check_text(&text, "stack.yml", &[], "demo", &|_| None, &NoEngine).expect_err("refused");
        assert!(matches!(e, CheckError::Syntax(_)), "{e}");
        assert!(e.to_string().contains("stack.yml:"), "{e}");
        assert!(e.to_string().contains("excessive aliasing"), "{e}");
    }

    /// Images as a test engine knows them.
    struct Images;
    impl ImageSource for Images {
        fn exposed_ports(&self, image: &str) -> Result<Vec<u16>, ImageError> {
            match image {
                "api:1" => Ok(vec![8080, 9090]),
                "worker:1" => Ok(Vec::new()),
                other => Err(ImageError::NotFound(other.into())),
            }
        }
    }

    fn url_of(report: &Report, service: &str) -> String {
        report.rawdata["services"][service]["loadBalancer"]["servers"][0]["url"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn ports_of_services_without_ports_come_from_their_image() {
        let text = "services:
  api:
    image: api:1
    labels: {traefik.http.routers.api.rule: Host(`api.test`)}
  worker:
    image: worker:1
    labels: {traefik.http.routers.worker.rule: Host(`w.test`)}
  new:
    image: new:1
    labels: {traefik.http.routers.new.rule: Host(`n.test`)}
  labelled:
    image: other:1
    labels: {traefik.http.services.labelled.loadbalancer.server.port: '7000'}
";
        let flags = ["--providers.docker=true".to_string()];
        let r = check_text(text, "c.yml", &flags, "demo", &|_| None, &Images).expect("checked");
        // The lowest exposed port, as the provider picks it at runtime.
        assert_eq!(url_of(&r, "api-demo@docker"), "http://api:8080");
        assert_eq!(url_of(&r, "labelled@docker"), "http://labelled:7000");
        // An image exposing nothing: the service is dropped as at runtime.
        assert!(
            r.lines
                .iter()
                .any(|l| l.starts_with("error:") && l.contains("worker")),
            "{:?}",
            r.lines
        );
        // An image the engine does not have: checked with port 80, said once for that service.
        assert_eq!(url_of(&r, "new-demo@docker"), "http://new:80");
        let infos: Vec<&String> = r
            .lines
            .iter()
            .filter(|l| l.starts_with("info: service"))
            .collect();
        assert_eq!(infos.len(), 3, "{:?}", r.lines);
        assert!(
            infos
                .iter()
                .any(|l| l.contains("port 8080, 9090 from image `api:1`")),
            "{infos:?}"
        );
        assert!(
            infos
                .iter()
                .any(|l| l.contains("`new:1` is not on this Docker engine")),
            "{infos:?}"
        );

        // No engine: one line for every service that needed one.
        let r = check_text(text, "c.yml", &flags, "demo", &|_| None, &NoEngine).expect("checked");
        assert_eq!(url_of(&r, "api-demo@docker"), "http://api:80");
        let engine_lines: Vec<&String> = r
            .lines
            .iter()
            .filter(|l| l.contains("no Docker engine reachable"))
            .collect();
        assert_eq!(engine_lines.len(), 1, "{:?}", r.lines);
        assert!(
            engine_lines[0].contains("services api, worker, new"),
            "{engine_lines:?}"
        );
        assert!(
            !r.lines.iter().any(|l| l.contains("exposes no port")),
            "{:?}",
            r.lines
        );
    }

    #[test]
    fn commands_and_ports() {
        assert_eq!(
            shell_words("--a --entryPoints='Name:http Address::80' \"x y\""),
            ["--a", "--entryPoints=Name:http Address::80", "x y"]
        );
        let n = crate::config::sources::from_yaml(
            "ports: ['8080:80', '127.0.0.1:443:8443/tcp', {target: 9000}]\nexpose: ['3000']\n",
            "f",
        )
        .expect("yaml");
        assert_eq!(ports_of(&n), [80, 3000, 8443, 9000]);
    }
}
