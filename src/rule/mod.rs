//! Rule language: Traefik router rules (`Host(`example.com`) && PathPrefix(`/api`)`) parsed
//! into immutable matcher trees and evaluated against requests and connections.
//!
//! Owns: the grammar (v2 and v3 `ruleSyntax`, HTTP and TCP matchers), Traefik's matching
//! semantics for each matcher, host validation and normalization for the hot path, request-path
//! normalization as a Traefik entrypoint does it (`sanitizePath`), and the facts about a rule
//! that other modules index by ([`Rule::exact_hosts`], [`Rule::domains`],
//! [`TcpRule::sni_names`], [`default_priority`]).
//!
//! Must not: do I/O, log, keep global state, or panic on any input — rules come from users'
//! labels and files, so every problem is a [`RuleError`] with a column.
//!
//! Reference: Traefik v3 `pkg/rules/parser.go` (grammar, via `vulcand/predicate` and Go's
//! expression parser), `pkg/muxer/http/matcher.go` (v3), `matcher_v2.go` (v2, on
//! gorilla/mux), `mux.go` (routing path, priority) and `pkg/muxer/tcp/`.
//!
//! Layout: `parser` turns text into an expression tree and checks names and argument counts;
//! `http` and `tcp` lower it into flat matcher enums (regexes compiled once, hosts lower-cased)
//! and evaluate them; `goregex` rewrites Go regex syntax for the `regex` crate; `template`
//! compiles v2 `{name:regexp}` templates; `encoding` decodes paths and queries lazily; `host`
//! validates and normalizes `Host` values; `path` normalizes escapes and resolves dot segments.
#![forbid(unsafe_code)]

mod encoding;
mod goregex;
mod host;
mod http;
mod ip;
mod logic;
mod names;
mod parser;
mod path;
mod tcp;
mod template;

#[cfg(test)]
mod tests;

pub use self::host::{normalize_host, parse_host, InvalidHost};
pub use self::http::{RequestView, Rule};
pub use self::path::{normalize_path, sanitize_path, InvalidPath};
pub use self::tcp::TcpRule;

use std::fmt;
use std::str::FromStr;

/// Which grammar a rule is written in (Traefik `ruleSyntax` on a router, defaulting to the
/// static `core.defaultRuleSyntax`, itself defaulting to v3).
///
/// The two differ in matcher names and arity, not in operators: v2 matchers take several
/// values (`Host(`a`, `b`)`) and v2 path/host/query values are gorilla/mux templates
/// (`{id:[0-9]+}`), while v3 matchers take exactly one value and the `*Regexp` matchers take
/// plain regular expressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Syntax {
    /// Traefik v2 rules.
    V2,
    /// Traefik v3 rules (the default).
    #[default]
    V3,
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Syntax::V2 => "v2",
            Syntax::V3 => "v3",
        })
    }
}

/// A `ruleSyntax` value other than `v2` or `v3`.
///
/// Traefik itself silently falls back to v3 for unknown values
/// (`pkg/muxer/http/parser.go`, `SyntaxParser.parse`); we refuse them so a typo is reported
/// instead of changing how a rule is read. An empty value is for the caller to treat as
/// "not set".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule syntax `{0}`: expected `v2` or `v3`")]
pub struct UnknownSyntax(pub String);

impl FromStr for Syntax {
    type Err = UnknownSyntax;

    /// Accepts `v2` and `v3` in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("v2") {
            Ok(Syntax::V2)
        } else if s.eq_ignore_ascii_case("v3") {
            Ok(Syntax::V3)
        } else {
            Err(UnknownSyntax(s.to_owned()))
        }
    }
}

/// A rule that failed to parse or compile: where (1-based column, counted in chars) and what
/// was expected, e.g. `column 12: expected `)` after the argument of PathPrefix` or
/// `column 1: unknown matcher `Hots` (did you mean `Host`?)`.
///
/// The router with this rule is dropped and reported; its neighbours are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct RuleError {
    /// 1-based column of the offending token or argument, in chars (not bytes).
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Parses and compiles an HTTP router rule.
///
/// Called by the table builder (control plane), once per router and configuration change.
/// Regexes are compiled and hosts lower-cased here, so that [`Rule::matches`] only compares.
/// Every malformed input yields a [`RuleError`]; nothing panics.
pub fn parse(rule: &str, syntax: Syntax) -> Result<Rule, RuleError> {
    let expr = parser::parse(rule, names::http(syntax))?;
    http::build(&expr, syntax, rule)
}

/// Parses and compiles a TCP router rule (`HostSNI`, `HostSNIRegexp`, `ClientIP`, `ALPN`, with
/// the same operators as HTTP rules). Same contract as [`parse`].
pub fn parse_tcp(rule: &str, syntax: Syntax) -> Result<TcpRule, RuleError> {
    let expr = parser::parse(rule, names::tcp(syntax))?;
    tcp::build(&expr, syntax, rule)
}

/// Traefik's default router priority: the length of the rule in bytes (traefik
/// `pkg/muxer/http/mux.go`, `GetRulePriority`), used when a router sets no `priority`. Longer
/// rules are assumed more specific and are tried first.
pub fn default_priority(rule: &str) -> usize {
    rule.len()
}

/// True when every `%` in a raw request path starts a valid `%XX` escape.
///
/// Traefik answers 400 Bad Request before routing when the path cannot be turned into its
/// routing path (`pkg/muxer/http/mux.go`, `withRoutingPath`; Go's request parser refuses it even
/// earlier). The proxy handler gets this answer from [`normalize_path`], which it runs on every
/// request; this is the same check for callers that only need the verdict. Matchers given such a
/// path treat the stray `%` as a literal character.
pub fn is_valid_routing_path(raw_path: &str) -> bool {
    path::normalize_escapes(raw_path).is_ok()
}

/// Host (or SNI) sets a conjunction can only match: the intersection of its constrained operands
/// (`None` when no operand constrains). Shared by HTTP `Host` and TCP `HostSNI` indexing.
fn and_constraint<'a>(sets: impl Iterator<Item = Option<Vec<&'a str>>>) -> Option<Vec<&'a str>> {
    let mut acc: Option<Vec<&str>> = None;
    for set in sets.flatten() {
        acc = Some(match acc {
            None => set,
            Some(prev) => prev.into_iter().filter(|h| set.contains(h)).collect(),
        });
    }
    acc
}

/// Host (or SNI) sets a disjunction can only match: the union, or `None` when any operand is unconstrained.
fn or_constraint<'a>(sets: impl Iterator<Item = Option<Vec<&'a str>>>) -> Option<Vec<&'a str>> {
    let mut all: Vec<&str> = Vec::new();
    for set in sets {
        for h in set? {
            if !all.contains(&h) {
                all.push(h);
            }
        }
    }
    Some(all)
}
