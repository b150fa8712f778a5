//! HTTP rules: lowering the parsed expression to a flat matcher tree, and evaluating it.
//!
//! Lowering does every check and every compilation (host lower-casing, regex compilation,
//! template expansion, header-name parsing); evaluation only compares, so
//! [`Rule::matches`] never allocates except in three rare cases noted on [`Rule::matches`].

use super::encoding::{
    path_eq, path_has_prefix, query_decode, query_eq, query_pairs, query_valid, routing_path,
};
use super::host::wildcard_matches;
use super::logic::{self, and_of, error, or_of, Logic, Shape};
use super::parser::{Arg, Call, Expr};
use super::template::{self, Kind, Template};
use super::{goregex, ip, RuleError, Syntax};
use http::header::{HeaderName, HOST};
use http::{HeaderMap, Method};
use ipnet::IpNet;
use regex::bytes::Regex;
use std::fmt;
use std::net::IpAddr;

/// What a request offers to matching.
///
/// Built once per request by the proxy's hot path from the parsed request; every field is
/// borrowed, so building it allocates nothing. The same view is then evaluated against many
/// rules.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// The request host, already normalized with [`super::normalize_host`]: lower-case, no
    /// port, no trailing dot. Empty when the request carried no host (HTTP/1.0); `Host`
    /// matchers never match an empty host, as in Traefik.
    pub host: &'a str,
    /// The raw (still percent-encoded) path of the request URI, without the query.
    /// Path matchers decode it the way Traefik builds its routing path.
    pub path: &'a str,
    /// The raw query string, without the `?`; `None` when the URI has no query.
    pub query: Option<&'a str>,
    /// The request method, compared case-sensitively with the rule's upper-cased method.
    pub method: &'a Method,
    /// The request headers as received.
    pub headers: &'a HeaderMap,
    /// The address of the TCP peer (Traefik's `ClientIP` uses the remote address, never
    /// `X-Forwarded-For`).
    pub client_ip: IpAddr,
}

/// A header name and the value it must have.
#[derive(Clone, Debug)]
pub(crate) struct HeaderValueMatch {
    name: HeaderName,
    value: Box<[u8]>,
}

/// A header name and the regex one of its values must match.
#[derive(Clone, Debug)]
pub(crate) struct HeaderRegexMatch {
    name: HeaderName,
    re: Regex,
}

/// A (decoded) query key and the (decoded) value one of its values must equal.
#[derive(Clone, Debug)]
pub(crate) struct QueryValueMatch {
    key: Box<str>,
    value: Box<str>,
}

/// A (decoded) query key and the regex one of its values must match.
#[derive(Clone, Debug)]
pub(crate) struct QueryRegexMatch {
    key: Box<str>,
    re: Regex,
}

/// What the first value of a query key must be (v2 `Query`).
#[derive(Clone, Debug)]
pub(crate) enum FirstValue {
    /// `Query(`key=`)`: the key must be present.
    Any,
    /// `Query(`key=value`)`.
    Exact(Box<str>),
    /// `Query(`key={v:re}`)`: the regex is matched against `key=value`, as mux does.
    Template(Regex),
}

/// v2 `Query` pair: gorilla/mux only looks at the *first* value of the key.
#[derive(Clone, Debug)]
pub(crate) struct QueryFirstMatch {
    key: Box<str>,
    value: FirstValue,
}

/// A compiled matcher tree. `And`/`Or` are n-ary and flat; `Always`/`Never` are folded away
/// except at the root.
#[derive(Clone, Debug)]
pub(crate) enum Matcher {
    Always,
    Never,
    And(Box<[Matcher]>),
    Or(Box<[Matcher]>),
    Not(Box<Matcher>),
    /// Exact host, lower-case, no trailing dot, never empty.
    Host(Box<str>),
    /// v3 `Host(`*.example.com`)`: the part after the `*`, e.g. `.example.com`.
    HostWildcard(Box<str>),
    HostRegexp(Regex),
    Path(Box<str>),
    PathPrefix(Box<str>),
    PathRegexp(Regex),
    /// Upper-case method.
    Method(Box<str>),
    Header(Box<HeaderValueMatch>),
    HeaderRegexp(Box<HeaderRegexMatch>),
    Query(Box<QueryValueMatch>),
    QueryRegexp(Box<QueryRegexMatch>),
    QueryFirst(Box<QueryFirstMatch>),
    ClientIp(Box<[IpNet]>),
}

/// Scratch space for v2 query templates: `key=value` is assembled here instead of on the heap
/// when it fits.
const QUERY_BUF: usize = 256;

impl Matcher {
    fn matches(&self, req: &RequestView<'_>) -> bool {
        match self {
            Matcher::Always => true,
            Matcher::Never => false,
            Matcher::And(ms) => ms.iter().all(|m| m.matches(req)),
            Matcher::Or(ms) => ms.iter().any(|m| m.matches(req)),
            Matcher::Not(m) => !m.matches(req),
            Matcher::Host(h) => req.host == &**h,
            Matcher::HostWildcard(suffix) => {
                !req.host.is_empty() && wildcard_matches(req.host, suffix)
            }
            Matcher::HostRegexp(re) => re.is_match(req.host.as_bytes()),
            Matcher::Path(p) => path_eq(req.path, p),
            Matcher::PathPrefix(p) => path_has_prefix(req.path, p),
            Matcher::PathRegexp(re) => re.is_match(&routing_path(req.path)),
            Matcher::Method(m) => req.method.as_str() == &**m,
            Matcher::Header(h) => req
                .headers
                .get_all(&h.name)
                .iter()
                .any(|v| v.as_bytes() == &*h.value),
            Matcher::HeaderRegexp(h) => req
                .headers
                .get_all(&h.name)
                .iter()
                .any(|v| h.re.is_match(v.as_bytes())),
            Matcher::Query(q) => req.query.is_some_and(|qs| {
                query_pairs(qs).any(|(k, v)| {
                    query_eq(k, &q.key) == Some(true) && query_eq(v, &q.value) == Some(true)
                })
            }),
            Matcher::QueryRegexp(q) => req.query.is_some_and(|qs| {
                query_pairs(qs).any(|(k, v)| {
                    query_eq(k, &q.key) == Some(true)
                        && query_decode(v).is_some_and(|d| q.re.is_match(&d))
                })
            }),
            Matcher::QueryFirst(q) => query_first_matches(q, req.query),
            Matcher::ClientIp(nets) => ip::contains(nets, req.client_ip),
        }
    }

    /// Hosts this matcher can only match, or `None` when it does not constrain the host.
    /// `Some(empty)` means it can never match.
    fn host_constraint(&self) -> Option<Vec<&str>> {
        match self {
            Matcher::Host(h) => Some(vec![&**h]),
            Matcher::Never => Some(Vec::new()),
            Matcher::And(ms) => super::and_constraint(ms.iter().map(Matcher::host_constraint)),
            Matcher::Or(ms) => super::or_constraint(ms.iter().map(Matcher::host_constraint)),
            _ => None,
        }
    }
}

fn query_first_matches(q: &QueryFirstMatch, query: Option<&str>) -> bool {
    let Some(qs) = query else {
        return false;
    };
    // mux reads `req.URL.Query()[key][0]`: the first pair that Go's parser keeps.
    let first = query_pairs(qs).find(|&(k, v)| query_eq(k, &q.key) == Some(true) && query_valid(v));
    let Some((_, raw_value)) = first else {
        return false;
    };
    match &q.value {
        FirstValue::Any => true,
        FirstValue::Exact(expected) => query_eq(raw_value, expected) == Some(true),
        FirstValue::Template(re) => {
            let Some(value) = query_decode(raw_value) else {
                return false;
            };
            let key = q.key.as_bytes();
            let mut scratch = [0u8; QUERY_BUF];
            match join_query(&mut scratch, key, &value) {
                Some(joined) => re.is_match(joined),
                None => {
                    let mut buf = Vec::with_capacity(key.len() + 1 + value.len());
                    buf.extend_from_slice(key);
                    buf.push(b'=');
                    buf.extend_from_slice(&value);
                    re.is_match(&buf)
                }
            }
        }
    }
}

/// Writes `key=value` at the start of `buf` and returns it, or `None` when it does not fit.
fn join_query<'b>(buf: &'b mut [u8], key: &[u8], value: &[u8]) -> Option<&'b [u8]> {
    let joined = buf.get_mut(..key.len() + 1 + value.len())?;
    let (k, rest) = joined.split_at_mut_checked(key.len())?;
    let (eq, v) = rest.split_first_mut()?;
    // Both halves have exactly the lengths taken from `key` and `value` above.
    k.copy_from_slice(key);
    *eq = b'=';
    v.copy_from_slice(value);
    Some(joined)
}

/// A compiled HTTP router rule: an immutable matcher tree.
///
/// Built once per router by the table builder (control plane) with [`super::parse`]; evaluated
/// per request by the hot path with [`Rule::matches`]. `Send + Sync`, cheap to clone (regexes
/// are shared).
#[derive(Clone, Debug)]
pub struct Rule {
    matcher: Matcher,
    syntax: Syntax,
    source: Box<str>,
    domains: Box<[Box<str>]>,
}

impl Rule {
    /// True when the request satisfies the rule, with Traefik's semantics for every matcher.
    ///
    /// Hot path: no locks of its own and no allocation, except (1) `PathRegexp` / v2 path
    /// templates on a path containing `%` (the decoded routing path is built), (2) regex
    /// query matchers on a value containing `%` or `+`, and (3) a v2 query template whose
    /// `key=value` exceeds 256 bytes. Regex evaluation uses the `regex` crate's internal
    /// per-thread cache pool.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.matcher.matches(req)
    }

    /// The exact host names (lower-case, no trailing dot) that this rule can *only* match, or
    /// `None` when a request for some other host could match.
    ///
    /// The routing table indexes routers by these names in a hash map and keeps the `None`
    /// routers in a fallback list, so this is conservative: `Host(`a`) && PathPrefix(`/x`)` →
    /// `["a"]`; `Host(`a`) || Host(`b`)` → `["a", "b"]`; `Host(`a`) || Path(`/x`)`,
    /// `!Host(`a`)`, `HostRegexp(...)`, `Host(`*.a`)`, `PathPrefix(`/`)` → `None`.
    /// `Some(vec![])` means the rule can match no request at all (`Host(`a`) && Host(`b`)`).
    /// Matching requires the request host to be normalized with [`super::normalize_host`].
    pub fn exact_hosts(&self) -> Option<Vec<String>> {
        self.matcher
            .host_constraint()
            .map(|hs| hs.into_iter().map(str::to_owned).collect())
    }

    /// Every domain named by a `Host(...)` matcher anywhere in the rule — also under `!` and
    /// `||`, like Traefik's `ParseDomains` — for ACME certificate names.
    ///
    /// Lower-cased, trailing dot removed, duplicates removed, in rule order. Wildcards
    /// (`*.example.com`) are kept, the catch-all `*` is not (it names no domain). As in
    /// Traefik, `HostRegexp` and v2's `HostHeader` contribute nothing.
    pub fn domains(&self) -> Vec<String> {
        self.domains.iter().map(|d| d.to_string()).collect()
    }

    /// The grammar the rule was parsed with.
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// The rule text as written, for logs and the dashboard.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Logic for Matcher {
    fn into_shape(self) -> Shape<Self> {
        match self {
            Matcher::Always => Shape::Always,
            Matcher::Never => Shape::Never,
            Matcher::And(ms) => Shape::And(ms),
            Matcher::Or(ms) => Shape::Or(ms),
            Matcher::Not(m) => Shape::Not(m),
            leaf => Shape::Leaf(leaf),
        }
    }

    fn from_shape(shape: Shape<Self>) -> Self {
        match shape {
            Shape::Always => Matcher::Always,
            Shape::Never => Matcher::Never,
            Shape::And(ms) => Matcher::And(ms),
            Shape::Or(ms) => Matcher::Or(ms),
            Shape::Not(m) => Matcher::Not(m),
            Shape::Leaf(leaf) => leaf,
        }
    }
}

/// Lowers a parsed HTTP rule into a [`Rule`].
pub(crate) fn build(expr: &Expr, syntax: Syntax, source: &str) -> Result<Rule, RuleError> {
    let mut domains: Vec<String> = Vec::new();
    let matcher = lower(expr, syntax, &mut domains)?;
    let mut unique: Vec<Box<str>> = Vec::with_capacity(domains.len());
    for d in domains {
        if !d.is_empty() && d != "*" && !unique.iter().any(|u| **u == *d) {
            unique.push(d.into_boxed_str());
        }
    }
    Ok(Rule {
        matcher,
        syntax,
        source: source.into(),
        domains: unique.into_boxed_slice(),
    })
}

fn lower(expr: &Expr, syntax: Syntax, domains: &mut Vec<String>) -> Result<Matcher, RuleError> {
    logic::lower(expr, &mut |call| match syntax {
        Syntax::V3 => lower_v3(call, domains),
        Syntax::V2 => lower_v2(call, domains),
    })
}

/// Host names must be ASCII (punycode), as Traefik checks (`muxer.IsASCII`).
fn ascii_host(name: &str, arg: &Arg) -> Result<(), RuleError> {
    if arg.value.is_ascii() {
        Ok(())
    } else {
        Err(error(
            arg.col,
            format!(
                "invalid value `{}` for {name}: non-ASCII characters are not allowed (write internationalized names in punycode, `xn--...`)",
                arg.value
            ),
        ))
    }
}

/// Lower-cased, one trailing dot removed: the form requests are normalized to.
fn canonical_host(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    match lower.strip_suffix('.') {
        Some(s) => s.to_owned(),
        None => lower,
    }
}

fn exact_host(h: String) -> Matcher {
    if h.is_empty() {
        // `Host(`.`)`: Traefik never matches an empty request host.
        Matcher::Never
    } else {
        Matcher::Host(h.into_boxed_str())
    }
}

fn go_regex(name: &str, arg: &Arg) -> Result<Regex, RuleError> {
    goregex::compile(&arg.value).map_err(|reason| {
        error(
            arg.col,
            format!(
                "invalid regular expression `{}` for {name}: {reason}",
                arg.value
            ),
        )
    })
}

fn absolute_path(name: &str, arg: &Arg) -> Result<(), RuleError> {
    if arg.value.starts_with('/') {
        Ok(())
    } else {
        Err(error(
            arg.col,
            format!("path `{}` for {name} must start with `/`", arg.value),
        ))
    }
}

fn client_ips(name: &str, args: &[Arg]) -> Result<Matcher, RuleError> {
    let nets = logic::client_ip_nets(
        name,
        args,
        "expected an IP address (`10.0.0.1`, `::1`) or a CIDR range (`10.0.0.0/8`, `fd00::/8`)",
    )?;
    Ok(Matcher::ClientIp(nets))
}

/// The header a `Header`-style matcher reads, or `None` when no request can carry it.
///
/// Go's HTTP server moves `Host` out of `req.Header` into `req.Host`, and a name that is not a
/// valid token never appears in a request, so in Traefik such matchers never match.
fn header_name(key: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(key.as_bytes())
        .ok()
        .filter(|n| *n != HOST)
}

fn header_value(key: &Arg, value: &Arg) -> Matcher {
    match header_name(&key.value) {
        Some(name) => Matcher::Header(Box::new(HeaderValueMatch {
            name,
            value: value.value.as_bytes().into(),
        })),
        None => Matcher::Never,
    }
}

fn header_regex(name: &str, key: &Arg, value: &Arg) -> Result<Matcher, RuleError> {
    let re = go_regex(name, value)?;
    Ok(match header_name(&key.value) {
        Some(name) => Matcher::HeaderRegexp(Box::new(HeaderRegexMatch { name, re })),
        None => Matcher::Never,
    })
}

/// Arguments `i` of a call (checked present by arity before lowering).
fn arg(call: &Call, i: usize) -> Result<&Arg, RuleError> {
    call.args.get(i).ok_or_else(|| {
        error(
            call.col,
            format!("{} is missing argument {}", call.spec.name, i + 1),
        )
    })
}

fn lower_v3(call: &Call, domains: &mut Vec<String>) -> Result<Matcher, RuleError> {
    let name = call.spec.name;
    let a0 = arg(call, 0)?;
    Ok(match name {
        "Host" => {
            if a0.value == "*" {
                // traefik matcher.go `host`: `*` matches every request, even without a host.
                return Ok(Matcher::Always);
            }
            ascii_host(name, a0)?;
            let h = canonical_host(&a0.value);
            domains.push(h.clone());
            match h.strip_prefix('*') {
                Some(suffix) => Matcher::HostWildcard(suffix.into()),
                None => exact_host(h),
            }
        }
        "HostRegexp" => {
            ascii_host(name, a0)?;
            Matcher::HostRegexp(go_regex(name, a0)?)
        }
        "Path" => {
            absolute_path(name, a0)?;
            Matcher::Path(a0.value.as_str().into())
        }
        "PathPrefix" => {
            absolute_path(name, a0)?;
            Matcher::PathPrefix(a0.value.as_str().into())
        }
        "PathRegexp" => Matcher::PathRegexp(go_regex(name, a0)?),
        "Method" => Matcher::Method(a0.value.to_uppercase().into()),
        "Header" => header_value(a0, arg(call, 1)?),
        "HeaderRegexp" => header_regex(name, a0, arg(call, 1)?)?,
        "Query" | "QueryRegexp" => match call.args.get(1) {
            // One argument: the key must be present with an empty value (`?mobile`,
            // `?mobile=`), since Traefik compares against the empty string.
            None => Matcher::Query(Box::new(QueryValueMatch {
                key: a0.value.as_str().into(),
                value: "".into(),
            })),
            Some(v) if name == "Query" => Matcher::Query(Box::new(QueryValueMatch {
                key: a0.value.as_str().into(),
                value: v.value.as_str().into(),
            })),
            Some(v) => Matcher::QueryRegexp(Box::new(QueryRegexMatch {
                key: a0.value.as_str().into(),
                re: go_regex(name, v)?,
            })),
        },
        "ClientIP" => client_ips(name, &call.args)?,
        other => return Err(error(call.col, format!("unsupported matcher `{other}`"))),
    })
}

fn template_error(name: &str, a: &Arg, reason: &str) -> RuleError {
    error(
        a.col,
        format!("invalid template `{}` for {name}: {reason}", a.value),
    )
}

fn lower_v2(call: &Call, domains: &mut Vec<String>) -> Result<Matcher, RuleError> {
    let name = call.spec.name;
    let args = &call.args;
    Ok(match name {
        "Host" | "HostHeader" => {
            let mut alts = Vec::with_capacity(args.len());
            for a in args {
                ascii_host(name, a)?;
                let h = canonical_host(&a.value);
                if name == "Host" {
                    domains.push(h.clone());
                }
                alts.push(exact_host(h));
            }
            or_of(alts)
        }
        "HostRegexp" => v2_host_regexp(name, args)?,
        "ClientIP" => client_ips(name, args)?,
        "Path" | "PathPrefix" => v2_path(name, args)?,
        "Method" => or_of(
            args.iter()
                .map(|a| Matcher::Method(a.value.to_uppercase().into()))
                .collect(),
        ),
        "Headers" | "HeadersRegexp" => v2_headers(name, args)?,
        "Query" => v2_query(name, args)?,
        other => return Err(error(call.col, format!("unsupported matcher `{other}`"))),
    })
}

/// v2 `HostRegexp`: mux host templates (`{sub:[a-z]+}.example.com`), any of the arguments.
fn v2_host_regexp(name: &str, args: &[Arg]) -> Result<Matcher, RuleError> {
    let mut alts = Vec::with_capacity(args.len());
    for a in args {
        ascii_host(name, a)?;
        // Requests are normalized without a trailing dot; drop it from the
        // template's literal tail so `example.com.` still matches.
        let tpl = a.value.strip_suffix('.').unwrap_or(&a.value);
        alts.push(
            match template::compile(tpl, Kind::Host).map_err(|r| template_error(name, a, &r))? {
                Template::Literal(l) => exact_host(l.to_ascii_lowercase()),
                Template::Regex(re) => Matcher::HostRegexp(re),
            },
        );
    }
    Ok(or_of(alts))
}

/// v2 `Path` / `PathPrefix`: mux path templates, any of the arguments.
fn v2_path(name: &str, args: &[Arg]) -> Result<Matcher, RuleError> {
    let prefix = name == "PathPrefix";
    let kind = if prefix { Kind::PathPrefix } else { Kind::Path };
    let mut alts = Vec::with_capacity(args.len());
    for a in args {
        absolute_path(name, a)?;
        alts.push(
            match template::compile(&a.value, kind).map_err(|r| template_error(name, a, &r))? {
                Template::Literal(l) if prefix => Matcher::PathPrefix(l.into()),
                Template::Literal(l) => Matcher::Path(l.into()),
                Template::Regex(re) => Matcher::PathRegexp(re),
            },
        );
    }
    Ok(or_of(alts))
}

/// v2 `Headers` / `HeadersRegexp`: name and value pairs, all of which must match.
fn v2_headers(name: &str, args: &[Arg]) -> Result<Matcher, RuleError> {
    if let (1, Some(last)) = (args.len() % 2, args.last()) {
        return Err(error(
            last.col,
            format!(
                "{name} takes header name and value pairs, got {} arguments",
                args.len()
            ),
        ));
    }
    // mux stores the pairs in a map: a repeated name keeps its last value.
    let mut pairs: Vec<(&Arg, &Arg)> = Vec::with_capacity(args.len() / 2);
    for pair in args.chunks(2) {
        if let [k, v] = pair {
            pairs.retain(|(pk, _)| pk.value != k.value);
            pairs.push((k, v));
        }
    }
    let mut all = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        all.push(if name == "Headers" {
            header_value(k, v)
        } else {
            header_regex(name, k, v)?
        });
    }
    Ok(and_of(all))
}

/// v2 `Query`: `key=value` templates, all of which must match the key's first value.
fn v2_query(name: &str, args: &[Arg]) -> Result<Matcher, RuleError> {
    // traefik matcher_v2.go `queryV2`: split every argument on its first `=`, then
    // pair the pieces up in order.
    let mut pieces: Vec<(&str, &Arg)> = Vec::with_capacity(args.len() * 2);
    for a in args {
        match a.value.split_once('=') {
            Some((k, v)) => {
                pieces.push((k, a));
                pieces.push((v, a));
            }
            None => pieces.push((&a.value, a)),
        }
    }
    if let (1, Some(&(_, a))) = (pieces.len() % 2, pieces.last()) {
        return Err(error(
            a.col,
            format!(
                "Query arguments must be `key=value` pairs, `{}` has no `=`",
                a.value
            ),
        ));
    }
    let mut all = Vec::with_capacity(pieces.len() / 2);
    for pair in pieces.chunks(2) {
        if let [(k, a), (v, _)] = pair {
            let tpl = format!("{k}={v}");
            let key = tpl.split_once('=').map_or("", |(k, _)| k);
            let value = match template::compile(&tpl, Kind::Query)
                .map_err(|r| template_error(name, a, &r))?
            {
                Template::Literal(_) => {
                    let v = &tpl[key.len() + 1..];
                    if v.is_empty() {
                        FirstValue::Any
                    } else {
                        FirstValue::Exact(v.into())
                    }
                }
                Template::Regex(re) => FirstValue::Template(re),
            };
            all.push(Matcher::QueryFirst(Box::new(QueryFirstMatch {
                key: key.into(),
                value,
            })));
        }
    }
    Ok(and_of(all))
}
