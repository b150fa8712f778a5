//! TCP rules: `HostSNI`, `HostSNIRegexp`, `ClientIP`, `ALPN` (traefik
//! `pkg/muxer/tcp/matcher.go` and `matcher_v2.go`), evaluated once per accepted connection
//! after the TLS ClientHello has been peeked.

use super::host::wildcard_matches;
use super::logic::{self, error, or_of, Logic, Shape};
use super::parser::{Arg, Call, Expr};
use super::template::{self, Kind, Template};
use super::{goregex, ip, RuleError, Syntax};
use ipnet::IpNet;
use regex::bytes::Regex;
use std::fmt;
use std::net::IpAddr;

/// The ALPN protocol of ACME TLS-ALPN-01 challenges; Traefik refuses it in `ALPN` so that no
/// router can capture challenge connections.
const ACME_TLS_ALPN: &str = "acme-tls/1";

#[derive(Clone, Debug)]
enum TcpMatcher {
    Always,
    Never,
    And(Box<[TcpMatcher]>),
    Or(Box<[TcpMatcher]>),
    Not(Box<TcpMatcher>),
    /// Exact server name, lower-case, no trailing dot.
    Sni(Box<str>),
    /// v3 `HostSNI(`*.example.com`)`: the part after `*`.
    SniWildcard(Box<str>),
    /// v2 `HostSNI(`a`, `*`)`: a `*` after the first value matches any non-empty name.
    SniPresent,
    SniRegexp(Regex),
    ClientIp(Box<[IpNet]>),
    Alpn(Box<[Box<str>]>),
}

impl TcpMatcher {
    fn matches(&self, sni: &str, client_ip: IpAddr, alpn: &[&str]) -> bool {
        match self {
            TcpMatcher::Always => true,
            TcpMatcher::Never => false,
            TcpMatcher::And(ms) => ms.iter().all(|m| m.matches(sni, client_ip, alpn)),
            TcpMatcher::Or(ms) => ms.iter().any(|m| m.matches(sni, client_ip, alpn)),
            TcpMatcher::Not(m) => !m.matches(sni, client_ip, alpn),
            TcpMatcher::Sni(h) => sni.eq_ignore_ascii_case(h),
            TcpMatcher::SniWildcard(suffix) => !sni.is_empty() && wildcard_matches(sni, suffix),
            TcpMatcher::SniPresent => !sni.is_empty(),
            TcpMatcher::SniRegexp(re) => re.is_match(sni.as_bytes()),
            TcpMatcher::ClientIp(nets) => ip::contains(nets, client_ip),
            TcpMatcher::Alpn(protos) => alpn.iter().any(|p| protos.iter().any(|q| **q == **p)),
        }
    }

    fn sni_constraint(&self) -> Option<Vec<&str>> {
        match self {
            TcpMatcher::Sni(h) => Some(vec![&**h]),
            TcpMatcher::Never => Some(Vec::new()),
            TcpMatcher::And(ms) => super::and_constraint(ms.iter().map(TcpMatcher::sni_constraint)),
            TcpMatcher::Or(ms) => super::or_constraint(ms.iter().map(TcpMatcher::sni_constraint)),
            _ => None,
        }
    }
}

/// A compiled TCP router rule.
///
/// Built by the table builder with [`super::parse_tcp`]; evaluated per connection with
/// [`TcpRule::matches`]. Immutable, `Send + Sync`, cheap to clone.
#[derive(Clone, Debug)]
pub struct TcpRule {
    matcher: TcpMatcher,
    syntax: Syntax,
    source: Box<str>,
    sni_names: Box<[Box<str>]>,
}

impl TcpRule {
    /// True when the connection satisfies the rule.
    ///
    /// `sni` is the TLS server name (lower-case, as [`super::normalize_host`] leaves it), `None`
    /// for plain TCP or a ClientHello without SNI; `client_ip` is the peer address; `alpn`
    /// lists the protocols the client offered. `HostSNI(`*`)` matches every connection, with or
    /// without SNI; every other `HostSNI` needs a server name. No allocation.
    pub fn matches(&self, sni: Option<&str>, client_ip: IpAddr, alpn: &[&str]) -> bool {
        self.matcher.matches(sni.unwrap_or(""), client_ip, alpn)
    }

    /// Every value of every `HostSNI(...)` in the rule, lower-cased, trailing dot removed,
    /// duplicates removed, in rule order — `*` and `*.example.com` included, as Traefik's
    /// `ParseHostSNI` returns them (a `*` marks a catch-all router).
    pub fn sni_names(&self) -> Vec<String> {
        self.sni_names.iter().map(|s| s.to_string()).collect()
    }

    /// The exact server names this rule can only match, or `None` when another (or no)
    /// server name could match; conservative in the same way as
    /// [`super::Rule::exact_hosts`], for indexing TCP routers by SNI.
    pub fn exact_snis(&self) -> Option<Vec<String>> {
        self.matcher
            .sni_constraint()
            .map(|hs| hs.into_iter().map(str::to_owned).collect())
    }

    /// The grammar the rule was parsed with.
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// The rule text as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for TcpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Logic for TcpMatcher {
    fn into_shape(self) -> Shape<Self> {
        match self {
            TcpMatcher::Always => Shape::Always,
            TcpMatcher::Never => Shape::Never,
            TcpMatcher::And(ms) => Shape::And(ms),
            TcpMatcher::Or(ms) => Shape::Or(ms),
            TcpMatcher::Not(m) => Shape::Not(m),
            leaf => Shape::Leaf(leaf),
        }
    }

    fn from_shape(shape: Shape<Self>) -> Self {
        match shape {
            Shape::Always => TcpMatcher::Always,
            Shape::Never => TcpMatcher::Never,
            Shape::And(ms) => TcpMatcher::And(ms),
            Shape::Or(ms) => TcpMatcher::Or(ms),
            Shape::Not(m) => TcpMatcher::Not(m),
            Shape::Leaf(leaf) => leaf,
        }
    }
}

/// Lowers a parsed TCP rule into a [`TcpRule`].
pub(crate) fn build(expr: &Expr, syntax: Syntax, source: &str) -> Result<TcpRule, RuleError> {
    let mut names: Vec<String> = Vec::new();
    let matcher = lower(expr, syntax, &mut names)?;
    let mut unique: Vec<Box<str>> = Vec::with_capacity(names.len());
    for n in names {
        if !unique.iter().any(|u| **u == *n) {
            unique.push(n.into_boxed_str());
        }
    }
    Ok(TcpRule {
        matcher,
        syntax,
        source: source.into(),
        sni_names: unique.into_boxed_slice(),
    })
}

fn lower(expr: &Expr, syntax: Syntax, names: &mut Vec<String>) -> Result<TcpMatcher, RuleError> {
    logic::lower(expr, &mut |call| lower_call(call, syntax, names))
}

/// Traefik's host-or-IP check for `HostSNI`: `[[:word:].-:]+`, optionally after `*.` in v3.
fn valid_sni(value: &str, allow_wildcard: bool) -> bool {
    let body = if allow_wildcard {
        value.strip_prefix("*.").unwrap_or(value)
    } else {
        value
    };
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'))
}

fn sni_error(name: &str, a: &Arg) -> RuleError {
    error(
        a.col,
        format!(
            "invalid value `{}` for {name}: not a valid host name or IP address (letters, digits, `_`, `.`, `-`, `:`; `*` alone or a leading `*.`)",
            a.value
        ),
    )
}

fn alpn_check(name: &str, a: &Arg) -> Result<(), RuleError> {
    if a.value == ACME_TLS_ALPN {
        Err(error(
            a.col,
            format!("{name} cannot match `{ACME_TLS_ALPN}`: that protocol is reserved for ACME TLS challenges"),
        ))
    } else {
        Ok(())
    }
}

fn regex_error(name: &str, a: &Arg, reason: &str) -> RuleError {
    error(
        a.col,
        format!(
            "invalid regular expression `{}` for {name}: {reason}",
            a.value
        ),
    )
}

fn client_ips(name: &str, args: &[Arg]) -> Result<TcpMatcher, RuleError> {
    let nets = logic::client_ip_nets(name, args, "expected an IP address or a CIDR range")?;
    Ok(TcpMatcher::ClientIp(nets))
}

fn lower_call(
    call: &Call,
    syntax: Syntax,
    names: &mut Vec<String>,
) -> Result<TcpMatcher, RuleError> {
    let name = call.spec.name;
    let args = &call.args;
    let Some(a0) = args.first() else {
        return Err(error(call.col, format!("{name} needs an argument")));
    };
    Ok(match (name, syntax) {
        ("HostSNI", Syntax::V3) => {
            if a0.value == "*" {
                names.push("*".to_owned());
                return Ok(TcpMatcher::Always);
            }
            if !valid_sni(&a0.value, true) {
                return Err(sni_error(name, a0));
            }
            let h = a0
                .value
                .strip_suffix('.')
                .unwrap_or(&a0.value)
                .to_ascii_lowercase();
            names.push(h.clone());
            match h.strip_prefix('*') {
                Some(suffix) => TcpMatcher::SniWildcard(suffix.into()),
                // `HostSNI(`.`)`: Traefik never matches an empty server name.
                None if h.is_empty() => TcpMatcher::Never,
                None => TcpMatcher::Sni(h.into()),
            }
        }
        ("HostSNI", Syntax::V2) => {
            let mut alts = Vec::with_capacity(args.len());
            for (i, a) in args.iter().enumerate() {
                if a.value == "*" {
                    names.push("*".to_owned());
                    // matcher_v2.go: a leading `*` matches even without SNI; a later one
                    // only once a server name is known.
                    alts.push(if i == 0 {
                        TcpMatcher::Always
                    } else {
                        TcpMatcher::SniPresent
                    });
                    continue;
                }
                if !valid_sni(&a.value, false) {
                    return Err(sni_error(name, a));
                }
                let h = a.value.to_ascii_lowercase();
                let h = h.strip_suffix('.').unwrap_or(&h).to_owned();
                names.push(h.clone());
                alts.push(if h.is_empty() {
                    TcpMatcher::Never
                } else {
                    TcpMatcher::Sni(h.into())
                });
            }
            or_of(alts)
        }
        ("HostSNIRegexp", Syntax::V3) => {
            if !a0.value.is_ascii() {
                return Err(error(
                    a0.col,
                    format!(
                        "invalid value `{}` for {name}: non-ASCII characters are not allowed",
                        a0.value
                    ),
                ));
            }
            TcpMatcher::SniRegexp(
                goregex::compile(&a0.value).map_err(|r| regex_error(name, a0, &r))?,
            )
        }
        ("HostSNIRegexp", Syntax::V2) => {
            let mut alts = Vec::with_capacity(args.len());
            for a in args {
                alts.push(
                    match template::compile(&a.value, Kind::Host).map_err(|r| {
                        error(
                            a.col,
                            format!("invalid template `{}` for {name}: {r}", a.value),
                        )
                    })? {
                        Template::Literal(l) => TcpMatcher::Sni(l.to_ascii_lowercase().into()),
                        Template::Regex(re) => TcpMatcher::SniRegexp(re),
                    },
                );
            }
            or_of(alts)
        }
        ("ClientIP", _) => client_ips(name, args)?,
        ("ALPN", _) => {
            for a in args {
                alpn_check(name, a)?;
            }
            TcpMatcher::Alpn(args.iter().map(|a| a.value.as_str().into()).collect())
        }
        (other, _) => return Err(error(call.col, format!("unsupported matcher `{other}`"))),
    })
}
