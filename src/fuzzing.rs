//! Check functions for coverage-guided fuzzing of everything clients, Docker labels and configuration files
//! control: rules, labels, dynamic YAML/TOML, hosts, paths, forwarded headers, sticky cookies and the
//! `defaultRule` template.
//!
//! Public so that the cargo-fuzz targets in `fuzz/` (one-line wrappers, run on nightly) and the corpus replay
//! test `tests/fuzz_corpus.rs` (run on stable by the default test suite) execute the same code. Each function
//! takes the raw fuzzer input, never fails on any input, and panics only when an invariant of the code under
//! test is broken — a panic here is a finding. Not used by the proxy itself.
//!
//! Input formats are plain text so that seeds stay readable: invalid UTF-8 is ignored by the text targets, and
//! where a target needs several values they are separated by newlines or a NUL byte, as each function says.

// These are assertions, not request handling: an `expect` or an index that fails is an invariant broken, the
// panic the fuzzer reports as a finding (the expectations name the invariant). Never called by the proxy.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;

use crate::balance::sticky::{cookie_name, cookie_value, find_cookie, CookieSpec, StickyTable};
use crate::config::sources::from_file_text;
use crate::dynamic::decode_configuration;
use crate::provider::docker::labels::{self, Mode, Settings, Workload};
use crate::provider::docker::template::{normalize, Model, Template};
use crate::proxy::forward::{
    is_forwarded_header, sanitize_at_entry, set_forwarded, strip_hop_by_hop, ForwardInfo,
};
use crate::rule::{
    self, normalize_host, normalize_path, parse_host, sanitize_path as sanitize, RequestView,
    Syntax,
};

/// A check function: takes the raw fuzzer input, panics only when an invariant is broken.
pub type Check = fn(&[u8]);

/// Every fuzz target by name with its check function, for the corpus replay test.
pub const TARGETS: &[(&str, Check)] = &[
    ("rule", rule),
    ("labels", docker_labels),
    ("dynamic_yaml", dynamic_yaml),
    ("dynamic_toml", dynamic_toml),
    ("host", host),
    ("routing_path", routing_path),
    ("sanitize_path", sanitize_path),
    ("forwarded", forwarded),
    ("sticky", sticky),
    ("default_rule", default_rule),
    ("proxy_protocol", proxy_protocol),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A request as the rule target describes it after the NUL: `host\npath[?query]\nmethod\nname: value...`.
struct FuzzRequest {
    host: String,
    path: String,
    query: Option<String>,
    method: Method,
    headers: HeaderMap,
    client_ip: IpAddr,
}

impl FuzzRequest {
    fn parse(s: &str) -> FuzzRequest {
        let mut lines = s.split('\n');
        let raw_host = lines.next().unwrap_or("");
        let target = lines.next().unwrap_or("/");
        let method = lines
            .next()
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .unwrap_or(Method::GET);
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.to_owned(), None),
        };
        let headers = header_map(lines);
        let client_ip = if raw_host.len() % 2 == 0 {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        };
        FuzzRequest {
            host: normalize_host(raw_host).into_owned(),
            path,
            query,
            method,
            headers,
            client_ip,
        }
    }

    fn view(&self) -> RequestView<'_> {
        RequestView {
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            method: &self.method,
            headers: &self.headers,
            client_ip: self.client_ip,
        }
    }
}

/// `name: value` lines (or `name:value`) into a header map; lines that are not a valid header are skipped.
fn header_map<'a>(lines: impl Iterator<Item = &'a str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.strip_prefix(' ').unwrap_or(value);
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    headers
}

/// Rule parser, HTTP and TCP, v2 and v3. Input: `rule text` or `rule text\0request` (see `FuzzRequest`).
///
/// Invariants: errors point inside the rule (1 ≤ column ≤ chars + 1); a parsed rule prints as written and
/// reparses to the same facts; hosts and domains are in the normalized form requests are compared in; and
/// the routing index is sound: a request that a rule matches has a host among the rule's `exact_hosts`
/// (resp. an SNI among `exact_snis`), else the table would never try that router for it.
pub fn rule(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let (src, req) = match s.split_once('\0') {
        Some((r, q)) => (r, Some(FuzzRequest::parse(q))),
        None => (s, None),
    };
    let chars = src.chars().count();
    let check_err = |e: &rule::RuleError| {
        assert!(
            (1..=chars + 1).contains(&e.column),
            "column {} outside 1..={} for {src:?}: {e}",
            e.column,
            chars + 1
        );
    };
    for syntax in [Syntax::V3, Syntax::V2] {
        match rule::parse(src, syntax) {
            Err(e) => check_err(&e),
            Ok(r) => {
                assert_eq!(r.as_str(), src);
                assert_eq!(r.to_string(), src);
                assert_eq!(r.syntax(), syntax);
                let again = rule::parse(&r.to_string(), syntax).expect("a parsed rule reparses");
                let hosts = r.exact_hosts();
                assert_eq!(again.exact_hosts(), hosts);
                assert_eq!(again.domains(), r.domains());
                for h in hosts.iter().flatten() {
                    assert!(!h.is_empty(), "empty exact host in {src:?}");
                    assert!(!h.bytes().any(|b| b.is_ascii_uppercase()), "{h:?}");
                    if plain_host(h) && !h.ends_with('.') {
                        assert_eq!(
                            normalize_host(h),
                            h.as_str(),
                            "exact host {h:?} not normalized"
                        );
                    }
                }
                let domains = r.domains();
                let unique: BTreeSet<&String> = domains.iter().collect();
                assert_eq!(unique.len(), domains.len(), "duplicate domains in {src:?}");
                // Lower-cased with one trailing dot removed (`Host(`a..`)` names `a.`, as in Traefik).
                for d in &domains {
                    assert!(!d.bytes().any(|b| b.is_ascii_uppercase()), "{d:?}");
                }
                if let Some(req) = &req {
                    let view = req.view();
                    if r.matches(&view) {
                        if let Some(hs) = &hosts {
                            assert!(
                                hs.contains(&req.host),
                                "{src:?} matches host {:?} outside its exact hosts {hs:?}",
                                req.host
                            );
                        }
                    }
                }
            }
        }
        match rule::parse_tcp(src, syntax) {
            Err(e) => check_err(&e),
            Ok(r) => {
                assert_eq!(r.as_str(), src);
                let snis = r.exact_snis();
                let again = rule::parse_tcp(src, syntax).expect("a parsed TCP rule reparses");
                assert_eq!(again.exact_snis(), snis);
                assert_eq!(again.sni_names(), r.sni_names());
                for n in r.sni_names() {
                    assert!(!n.bytes().any(|b| b.is_ascii_uppercase()), "{n:?}");
                }
                if let Some(req) = &req {
                    let sni = (!req.host.is_empty()).then_some(req.host.as_str());
                    let alpn: Vec<&str> = req.path.split(',').collect();
                    if r.matches(sni, req.client_ip, &alpn) {
                        if let Some(ns) = &snis {
                            let sni = sni.unwrap_or("");
                            assert!(
                                ns.iter().any(|n| n.eq_ignore_ascii_case(sni)),
                                "{src:?} matches SNI {sni:?} outside its exact SNIs {ns:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Docker label decoding. Input: the workload name on the first line, then one `key=value` label per line.
/// Run for plain containers and for Swarm services.
///
/// Invariants: decoding is deterministic; every router it keeps has a rule that parses (a bad rule drops
/// the router with an error, it never reaches the table); every error names an owner; a workload merged
/// with an identical copy of itself yields the same routers and no conflict.
pub fn docker_labels(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let mut lines = s.lines();
    let name = lines.next().unwrap_or("").to_owned();
    let labels: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for mode in [Mode::Containers, Mode::Swarm] {
        let settings = Settings::new(mode);
        let w = Workload {
            name: name.clone(),
            container_name: name.clone(),
            labels: labels.clone(),
            exposed_ports: if mode == Mode::Containers {
                vec![80, 8080]
            } else {
                Vec::new()
            },
            addresses: vec!["10.0.0.2".to_owned()],
            bindings: Vec::new(),
        };
        let Ok(opts) = labels::options(&w, &settings) else {
            continue;
        };
        if !opts.enable {
            continue;
        }
        let built = labels::build(&w, &settings);
        assert_eq!(
            built,
            labels::build(&w, &settings),
            "label decoding is not deterministic"
        );
        for (n, r) in &built.config.http.routers {
            let syntax = match r.rule_syntax.as_deref() {
                None | Some("") => settings.default_syntax,
                Some(x) => x.parse().expect("a kept router has a valid ruleSyntax"),
            };
            if let Err(e) = rule::parse(&r.rule, syntax) {
                panic!("router {n} kept with a bad rule {:?}: {e}", r.rule);
            }
        }
        for (n, r) in &built.config.tcp.routers {
            let syntax = r
                .rule_syntax
                .as_deref()
                .and_then(|x| x.parse().ok())
                .unwrap_or(settings.default_syntax);
            if let Err(e) = rule::parse_tcp(&r.rule, syntax) {
                panic!("TCP router {n} kept with a bad rule {:?}: {e}", r.rule);
            }
        }
        for e in &built.errors {
            assert!(
                !e.owner.is_empty() || name.is_empty(),
                "error without owner: {e}"
            );
        }
        let parts = [
            ("a".to_owned(), built.config.clone()),
            ("b".to_owned(), built.config.clone()),
        ];
        let (merged, conflicts) = labels::merge(&parts);
        assert!(
            conflicts.is_empty(),
            "identical workloads conflict: {conflicts:?}"
        );
        assert_eq!(
            merged.http.routers.keys().collect::<Vec<_>>(),
            built.config.http.routers.keys().collect::<Vec<_>>()
        );
    }
}

fn dynamic(data: &[u8], path: &str) {
    let Some(s) = text(data) else { return };
    let Ok(node) = from_file_text(s, path) else {
        return;
    };
    let (cfg, errors) = decode_configuration(&node);
    let (cfg2, errors2) = decode_configuration(&node);
    assert_eq!(cfg, cfg2, "decoding is not deterministic");
    assert_eq!(errors.len(), errors2.len());
    // What was kept reads back the same: the decoded configuration written as JSON (which YAML reads)
    // decodes to itself without errors.
    let Ok(mut value) = serde_json::to_value(&cfg) else {
        panic!("a decoded configuration does not serialize");
    };
    // `udp: null` would read back as an empty `udp` section; an absent one is what the file said.
    if let Some(top) = value.as_object_mut() {
        top.retain(|_, v| !v.is_null());
    }
    let json = value.to_string();
    let node = match from_file_text(&json, "roundtrip.yml") {
        Ok(n) => n,
        Err(e) => panic!("decoded configuration does not reread: {e}\n{json}"),
    };
    let (back, errs) = decode_configuration(&node);
    assert!(errs.is_empty(), "reread with errors {errs:?}\n{json}");
    assert_eq!(
        back, cfg,
        "decoded configuration rereads differently\n{json}"
    );
}

/// The file provider's decoder on a YAML file. Input: the file text.
///
/// Invariants: decoding is deterministic, and the items kept, written back out, read back unchanged.
pub fn dynamic_yaml(data: &[u8]) {
    dynamic(data, "fuzz.yml");
}

/// The file provider's decoder on a TOML file. Input: the file text. Same invariants as [`dynamic_yaml`].
pub fn dynamic_toml(data: &[u8]) {
    dynamic(data, "fuzz.toml");
}

/// A host a request could name: ASCII letters, digits, `-`, `.`, `_`, not empty.
fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Host normalisation of `Host` headers and authorities. Input: the raw host.
///
/// Invariants: the result has no ASCII upper case; it is a fixed point when it is a plain host name (one
/// trailing dot is removed per call, as Traefik does); a plain name with or without a port, in any case,
/// normalizes to what a `Host` rule for that name compares against (`exact_hosts`).
pub fn host(data: &[u8]) {
    let Some(raw) = text(data) else { return };
    let n = normalize_host(raw);
    assert!(
        !n.bytes().any(|b| b.is_ascii_uppercase()),
        "{raw:?} → {n:?}"
    );
    if plain_host(&n) && !n.ends_with('.') {
        assert_eq!(normalize_host(&n), n, "not idempotent on {raw:?}");
    }
    // What the proxy accepts (everything else is answered 400) normalizes as `normalize_host` does, and
    // carries nothing a backend could read as another host.
    if let Ok(h) = parse_host(raw) {
        assert_eq!(h, n, "parse_host and normalize_host differ on {raw:?}");
        assert!(
            !h.bytes().any(|b| b.is_ascii_uppercase()
                || b <= b' '
                || b >= 0x7f
                || b"@%/\\?#,;".contains(&b)),
            "{raw:?} accepted as {h:?}"
        );
        if !h.contains(':') && !h.ends_with('.') {
            assert_eq!(
                parse_host(&h).ok(),
                Some(h.clone()),
                "parse_host not idempotent on {raw:?}"
            );
        }
    }
    if plain_host(raw) {
        if let Ok(r) = rule::parse(&format!("Host(`{raw}`)"), Syntax::V3) {
            let want = r.exact_hosts().expect("Host(...) constrains the host");
            let want = want.first().map_or("", String::as_str);
            if !want.is_empty() {
                assert_eq!(n, want, "request host and rule host differ for {raw:?}");
                let with_port = format!("{}:8443", raw.to_ascii_uppercase());
                assert_eq!(normalize_host(&with_port), want, "{with_port:?}");
            }
        }
    }
}

/// Routing-path validation (Traefik's 400 on a path it cannot decode). Input: the raw request path.
///
/// Invariant: valid exactly when every `%` starts a `%XX` escape; a valid path is matched by
/// `PathPrefix(`/`)` exactly when it starts with `/`, and every path matcher accepts it without panicking.
pub fn routing_path(data: &[u8]) {
    let Some(path) = text(data) else { return };
    let b = path.as_bytes();
    let mut want = true;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
                i += 3;
                continue;
            }
            want = false;
            break;
        }
        i += 1;
    }
    assert_eq!(rule::is_valid_routing_path(path), want, "{path:?}");
    if !want {
        return;
    }
    let headers = HeaderMap::new();
    let view = RequestView {
        host: "h",
        path,
        query: None,
        method: &Method::GET,
        headers: &headers,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let root = rule::parse("PathPrefix(`/`)", Syntax::V3).expect("static rule");
    // Matchers see the routing path, where Traefik keeps reserved escapes encoded but only in their
    // upper-case spelling: a leading `%2f` decodes to the root, `%2F` does not (the handler upper-cases
    // every escape before routing, so only the first form is unreachable through the proxy).
    let rooted = path.starts_with('/') || path.starts_with("%2f");
    assert_eq!(root.matches(&view), rooted, "{path:?}");
    for r in ["PathRegexp(`^/a`)", "Path(`/a/b`)", "PathPrefix(`/a b`)"] {
        let _ = rule::parse(r, Syntax::V3)
            .expect("static rule")
            .matches(&view);
    }
    for r in ["Path(`/{x:[a-z]+}`)", "PathPrefix(`/{x}`)"] {
        let _ = rule::parse(r, Syntax::V2)
            .expect("static rule")
            .matches(&view);
    }
}

/// The request path as routing and the backend see it: escapes normalized, then sanitized
/// (`http.sanitizePath`, default on). Input: the raw path.
///
/// Invariants: refused exactly when the routing-path check refuses it; the result has no `.` or `..`
/// segment and no `//`, also not after decoding (no escaped unreserved character is left); a rooted path
/// stays rooted; normalizing again changes nothing; `sanitize_path` alone is idempotent.
pub fn sanitize_path(data: &[u8]) {
    let Some(raw) = text(data) else { return };
    let once = sanitize(raw);
    assert_eq!(
        sanitize(&once),
        once,
        "sanitize_path not idempotent on {raw:?}"
    );
    let out = match normalize_path(raw, true) {
        Err(_) => {
            assert!(
                !rule::is_valid_routing_path(raw),
                "{raw:?} refused but routable"
            );
            return;
        }
        Ok(out) => out,
    };
    assert!(
        rule::is_valid_routing_path(raw),
        "{raw:?} accepted but not routable"
    );
    assert_eq!(
        normalize_path(&out, true).ok().as_deref(),
        Some(&*out),
        "not idempotent on {raw:?}"
    );
    if raw.starts_with('/') {
        assert!(out.starts_with('/'), "{raw:?} → {out:?} lost its root");
    }
    assert!(!out.contains("//"), "{raw:?} → {out:?}");
    let body = out.strip_prefix('/').unwrap_or(&out);
    for seg in body.split('/') {
        assert!(
            seg != "." && seg != "..",
            "{raw:?} → {out:?} keeps a dot segment"
        );
    }
    let b = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let v = std::str::from_utf8(&b[i + 1..i + 3])
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .expect("a valid escape");
        assert!(
            !(v.is_ascii_alphanumeric() || b"-._~".contains(&v)),
            "{raw:?} → {out:?} keeps an escaped unreserved character"
        );
    }
    let unsanitized = normalize_path(raw, false).expect("valid");
    assert_eq!(sanitize(&unsanitized), out, "{raw:?}");
}

/// The forwarded headers [`set_forwarded`] writes; every other one of Traefik's forwarded set must be
/// absent after an untrusted peer's request went through the entrypoint.
const SET_BY_PROXY: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-real-ip",
];

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The lower-case names listed by every `Connection` header of `h` that a token may remove (never a
/// forwarded header nor `Host`).
fn connection_named(h: &HeaderMap) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for v in h.get_all(header::CONNECTION) {
        for t in v.as_bytes().split(|&b| b == b',') {
            let t = String::from_utf8_lossy(t).trim().to_ascii_lowercase();
            let keyword = t.is_empty() || t == "close" || t == "upgrade" || t == "keep-alive";
            if !keyword && !is_forwarded_header(&t) && t != "host" {
                named.insert(t);
            }
        }
    }
    named
}

/// Hop-by-hop removal, the entrypoint's cleaning and `X-Forwarded-*` rewriting over an arbitrary header
/// map. Input: a first line of flags (`t` trusted peer, `u` keep an upgrade, `h` the request has a Host),
/// then `name: value` lines.
///
/// Invariants: no hop-by-hop header and no header named by any `Connection` header survives (except the
/// `TE: trailers` and `Connection: Upgrade` the proxy writes itself, and forwarded headers and `Host`,
/// which a token never removes); every other header is kept as it was; after the entrypoint, an untrusted
/// peer's request holds no forwarded header at all, and after [`set_forwarded`] every forwarded header
/// holds the proxy's value; for a trusted peer `X-Forwarded-For` gets the client IP appended to the
/// client's values.
pub fn forwarded(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let mut lines = s.split('\n');
    let flags = lines.next().unwrap_or("");
    let trusted = flags.contains('t');
    let keep_upgrade = flags.contains('u');
    let original = header_map(lines);
    let mut headers = original.clone();
    strip_hop_by_hop(&mut headers, keep_upgrade);

    let named = connection_named(&original);
    for (name, value) in &headers {
        let n = name.as_str();
        match n {
            "te" => assert_eq!(value, "trailers"),
            "connection" => {
                assert!(keep_upgrade, "Connection kept");
                assert_eq!(value, "Upgrade");
            }
            "upgrade" => assert!(keep_upgrade, "Upgrade kept without an upgrade"),
            _ => {
                assert!(!HOP_BY_HOP.contains(&n), "hop-by-hop {n} kept");
                assert!(!named.contains(n), "{n} named by Connection kept");
            }
        }
    }
    for name in original.keys() {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || named.contains(n) {
            continue;
        }
        let before: Vec<&HeaderValue> = original.get_all(name).iter().collect();
        let after: Vec<&HeaderValue> = headers.get_all(name).iter().collect();
        assert_eq!(before, after, "{n} changed by hop-by-hop removal");
    }

    // The entrypoint, then the forwarded headers as `forward` sets them.
    let mut headers = original.clone();
    sanitize_at_entry(&mut headers, trusted);
    if !trusted {
        for name in headers.keys() {
            assert!(
                !is_forwarded_header(name.as_str()),
                "client's {name} passed the entrypoint"
            );
        }
    }
    let client_ip = HeaderValue::from_static("192.0.2.7");
    let port = HeaderValue::from_static("443");
    let server = HeaderValue::from_static("gate-1");
    let host_value = HeaderValue::from_static("admin.test");
    let info = ForwardInfo {
        client_ip: &client_ip,
        proto: "https",
        port: &port,
        server: &server,
        host: flags.contains('h').then_some(&host_value),
    };
    let before = headers.clone();
    set_forwarded(&mut headers, &info);
    let one = |n: &str| -> Vec<&HeaderValue> { headers.get_all(n).iter().collect() };
    assert_eq!(one("x-forwarded-server"), [&server]);
    let prior: Vec<&[u8]> = before
        .get_all("x-forwarded-for")
        .iter()
        .map(HeaderValue::as_bytes)
        .filter(|v| !v.is_empty())
        .collect();
    if trusted && !prior.is_empty() {
        let mut want = prior.join(&b", "[..]);
        want.extend_from_slice(b", 192.0.2.7");
        assert_eq!(one("x-forwarded-for"), [&want[..]]);
    } else {
        assert_eq!(one("x-forwarded-for"), [&client_ip]);
    }
    if !trusted {
        assert_eq!(one("x-real-ip"), [&client_ip]);
        assert_eq!(one("x-forwarded-proto"), ["https"]);
        assert_eq!(one("x-forwarded-port"), [&port]);
        match info.host {
            Some(h) => assert_eq!(one("x-forwarded-host"), [h]),
            None => assert!(one("x-forwarded-host").is_empty()),
        }
        for name in headers.keys() {
            let n = name.as_str();
            assert!(
                !is_forwarded_header(n) || SET_BY_PROXY.contains(&n),
                "client's {n} forwarded"
            );
        }
    }
    for (name, _) in &before {
        if !SET_BY_PROXY.contains(&name.as_str()) {
            let b: Vec<&HeaderValue> = before.get_all(name).iter().collect();
            assert_eq!(b, one(name.as_str()), "{name} changed by set_forwarded");
        }
    }
}

/// Sticky cookies: name sanitising, the value → server table, `Cookie` parsing and `Set-Cookie` writing.
/// Input: the configured cookie name on the first line, then `cookie: ...` lines (Cookie headers) and
/// other lines (server URLs).
///
/// Invariants: the cookie name is a token, one character per configured character; every server's value
/// looks itself up; a found cookie value is well-formed; and a `Set-Cookie` we write, sent back as a
/// `Cookie`, yields the value we wrote and leads back to the same server.
pub fn sticky(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let mut lines = s.split('\n');
    let configured = lines.next().unwrap_or("");
    let mut servers = Vec::new();
    let mut cookies = HeaderMap::new();
    for l in lines {
        match l.strip_prefix("cookie:") {
            Some(v) => {
                if let Ok(v) = HeaderValue::from_str(v) {
                    cookies.append(header::COOKIE, v);
                }
            }
            None => servers.push(l),
        }
    }
    let name = cookie_name(configured, "svc@docker");
    assert!(!name.is_empty());
    assert!(name.is_ascii());
    if !configured.is_empty() {
        assert_eq!(name.chars().count(), configured.chars().count());
    }
    let table = StickyTable::new(&servers);
    assert_eq!(table.len(), servers.len());
    for (i, server) in servers.iter().enumerate() {
        let v = table.value(i).expect("in range");
        assert_eq!(v, cookie_value(server));
        assert!(v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        let (j, rewrite) = table.lookup(v).expect("own value");
        assert!(!rewrite);
        assert_eq!(table.value(j), Some(v));
    }
    if let Some(v) = find_cookie(&cookies, &name) {
        assert!(v
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !b"\";\\".contains(&b)));
        if let Some((i, _)) = table.lookup(v) {
            assert!(i < servers.len());
        }
    }
    let spec = CookieSpec::new(name.clone());
    let values = servers
        .iter()
        .enumerate()
        .map(|(i, _)| table.value(i).unwrap_or("").to_owned())
        .chain(std::iter::once(configured.to_owned()));
    for value in values {
        let Some(set) = spec.set_cookie_header(&value) else {
            panic!("no Set-Cookie for token name {name:?}");
        };
        let set = set.to_str().expect("Set-Cookie is ASCII");
        let pair = set.split("; ").next().unwrap_or("");
        let mut back = HeaderMap::new();
        back.insert(header::COOKIE, HeaderValue::from_str(pair).expect("valid"));
        let kept: String = value
            .chars()
            .filter(|&c| c.is_ascii() && (0x20..0x7f).contains(&(c as u8)) && !"\";\\".contains(c))
            .collect();
        assert_eq!(find_cookie(&back, &name), Some(kept.as_str()), "{set:?}");
        if let Some((i, false)) = table.lookup(&kept) {
            assert_eq!(table.value(i), Some(kept.as_str()));
        }
    }
}

/// The `defaultRule` template rendered with label-controlled values. Input: the template on the first
/// line, the name on the second, then `key=value` labels.
///
/// Invariants: parse and render never panic; `normalize` yields only letters, digits and single inner
/// `-`, and is idempotent; Traefik's default template renders `Host(`<normalized name>`)`.
pub fn default_rule(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let mut lines = s.split('\n');
    let tpl = lines.next().unwrap_or("");
    let name = lines.next().unwrap_or("");
    let labels: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let model = Model {
        name,
        container_name: name,
        labels: &labels,
    };
    if let Ok(t) = Template::parse(tpl) {
        let _ = t.render(&model);
    }
    let n = normalize(name);
    assert!(
        !n.starts_with('-') && !n.ends_with('-') && !n.contains("--"),
        "{n:?}"
    );
    assert!(n.chars().all(|c| c.is_alphanumeric() || c == '-'), "{n:?}");
    assert_eq!(normalize(&n), n, "normalize is not idempotent on {name:?}");
    let rendered = Template::traefik_default()
        .render(&model)
        .expect("default template renders");
    assert_eq!(rendered, format!("Host(`{n}`)"));
}

/// PROXY protocol headers (v1 text, v2 binary) as a trusted balancer or a hostile client sends them: decoding
/// never reads past the input nor claims more bytes than it has; every proper prefix of a header is
/// `Incomplete`; a decoded address re-encodes, in the same version, to a header that decodes to it again.
pub fn proxy_protocol(data: &[u8]) {
    use crate::proxy_protocol::{decode, encode, Decoded};
    let Ok(Decoded::Header { header, len }) = decode(data) else {
        return;
    };
    assert!(len <= data.len(), "header longer than the input");
    for n in 1..len {
        assert_eq!(
            decode(&data[..n]).ok(),
            Some(Decoded::Incomplete),
            "a prefix of a header is incomplete"
        );
    }
    if let Some((src, dst)) = header.addresses {
        let again = encode(header.version, src, dst);
        match decode(&again) {
            Ok(Decoded::Header {
                header: h2,
                len: l2,
            }) => {
                assert_eq!(l2, again.len());
                let (s2, d2) = h2.addresses.expect("re-encoded addresses");
                assert_eq!((s2.port(), d2.port()), (src.port(), dst.port()));
                assert_eq!(s2.ip().to_canonical(), src.ip().to_canonical());
            }
            other => panic!("re-encoded header does not decode: {other:?}"),
        }
    }
}
