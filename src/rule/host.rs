//! Host names: validating and normalizing what the client sent, and Traefik's `*.` wildcard comparison.
//!
//! [`parse_host`] is the hot path's one reading of a `Host` value (or a request target's authority): it
//! refuses what is not `host [":" port]` and normalizes the rest for routing. [`normalize_host`] is the
//! lenient form for callers that must never fail (tests, benches).

use std::borrow::Cow;
use std::net::Ipv6Addr;

/// Why a `Host` value (or a request target's authority) was refused; the request is answered 400.
///
/// Carries no text of the value: the caller maps it to a fixed reason ([`InvalidHost::reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHost {
    /// A port without a host (`:80`), or a host that is only a dot.
    #[error("empty host")]
    EmptyHost,
    /// The port is not a decimal number from 0 to 65535 (`example.com:abc`, `:99999`).
    #[error("invalid port")]
    BadPort,
    /// A byte no host name holds: user info (`@`), percent-encoding, sub-delimiters, spaces, controls,
    /// non-ASCII, or a bare IPv6 address without brackets.
    #[error("invalid character in host")]
    BadChar,
    /// `[...]` that is not an IPv6 address (IPvFuture and zone identifiers included).
    #[error("invalid IP literal")]
    BadIpLiteral,
}

impl InvalidHost {
    /// A fixed description for the 400 answer and logs.
    pub fn reason(self) -> &'static str {
        match self {
            InvalidHost::EmptyHost => "invalid Host: empty host",
            InvalidHost::BadPort => "invalid Host: bad port",
            InvalidHost::BadChar => "invalid Host: bad character",
            InvalidHost::BadIpLiteral => "invalid Host: bad IP literal",
        }
    }
}

/// Validates a `Host` header value or a request target's authority and normalizes it for routing, as
/// [`normalize_host`] does (port removed, one trailing dot removed, lower-cased, brackets of an IPv6
/// literal removed). An empty value is valid and yields `""` (HTTP/1.0 without `Host`, or RFC 9110's
/// empty `Host`): it matches only routers without a `Host` rule.
///
/// Accepted: `reg-name [":" port]` where the name holds only ASCII letters, digits, `-`, `.`, `_` and
/// `~`; `"[" IPv6address "]" [":" port]`; the port empty or a decimal number up to 65535. Refused
/// (the caller answers 400): everything else, notably user info (`user@host`), `%`-escapes and
/// RFC 3986 sub-delimiters in the name — no DNS name holds them, and a backend that decoded `%61dmin`
/// would see another host than the one routed — a bare IPv6 address, and bytes outside visible ASCII.
/// This is stricter than Go's `httpguts.ValidHostHeader`, which only refuses bytes no host can hold;
/// Traefik then routes such a value as an unknown host.
///
/// Hot path: one pass over the bytes and no allocation for the lower-case values clients send;
/// upper case and IPv6 literals take a general path.
pub fn parse_host(raw: &str) -> Result<Cow<'_, str>, InvalidHost> {
    let b = raw.as_bytes();
    let mut colon = None;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {}
            b':' if colon.is_none() => colon = Some(i),
            _ => return parse_host_general(raw),
        }
    }
    let host = match colon {
        None => raw,
        Some(i) => {
            check_port(&raw[i + 1..])?;
            &raw[..i]
        }
    };
    finish_name(Cow::Borrowed(host), colon.is_some())
}

/// The general path of [`parse_host`]: upper case, IPv6 literals, and every refusal.
fn parse_host_general(raw: &str) -> Result<Cow<'_, str>, InvalidHost> {
    if let Some(rest) = raw.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or(InvalidHost::BadIpLiteral)?;
        if !after.is_empty() {
            check_port(after.strip_prefix(':').ok_or(InvalidHost::BadChar)?)?;
        }
        if literal.parse::<Ipv6Addr>().is_err() {
            return Err(InvalidHost::BadIpLiteral);
        }
        return Ok(lower(literal));
    }
    let (host, port) = match raw.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (raw, None),
    };
    if !host
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(InvalidHost::BadChar);
    }
    if let Some(p) = port {
        check_port(p)?;
    }
    finish_name(lower(host), port.is_some())
}

/// The port of an authority: empty (RFC 3986 allows `host:`) or decimal digits worth at most 65535
/// (leading zeros allowed, as `*DIGIT` is).
fn check_port(port: &str) -> Result<(), InvalidHost> {
    let mut value: u32 = 0;
    for c in port.bytes() {
        if !c.is_ascii_digit() {
            return Err(InvalidHost::BadPort);
        }
        // Saturates just above the bound, so any number of digits is read without overflow.
        value = (value * 10 + u32::from(c - b'0')).min(65_536);
    }
    if value > 65_535 {
        return Err(InvalidHost::BadPort);
    }
    Ok(())
}

/// Removes one trailing dot; a name that was only a dot, or empty before a port, is refused.
fn finish_name(host: Cow<'_, str>, had_port: bool) -> Result<Cow<'_, str>, InvalidHost> {
    if host.is_empty() {
        return if had_port {
            Err(InvalidHost::EmptyHost)
        } else {
            Ok(host)
        };
    }
    let out = match host {
        Cow::Borrowed(h) => Cow::Borrowed(h.strip_suffix('.').unwrap_or(h)),
        Cow::Owned(mut h) => {
            if h.ends_with('.') {
                h.pop();
            }
            Cow::Owned(h)
        }
    };
    if out.is_empty() {
        return Err(InvalidHost::EmptyHost);
    }
    Ok(out)
}

/// ASCII lower case, borrowed when already lower case.
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Normalizes a `Host` header or URI authority to the form [`super::RequestView::host`]
/// expects: port removed (`example.com:8080` → `example.com`, `[::1]:80` → `::1`, `[::1]` →
/// `::1`), surrounding whitespace trimmed, one trailing dot removed (`example.com.` →
/// `example.com`), lower-cased; user info of an authority (`user@host`) is dropped.
///
/// Mirrors Traefik's request decorator (`parseHost` + `types.CanonicalDomain`), plus the
/// trailing-dot removal that Traefik's `Host` matcher does at match time — done here once so
/// the routing table can look hosts up by plain equality. A bare IPv6 address without
/// brackets (`::1`) has more than one colon and is kept whole, as Go's `net.SplitHostPort`
/// refuses it. Never fails: odd input comes back trimmed and lower-cased, and simply matches
/// no `Host` rule.
///
/// Returns a borrow of `raw` when nothing needs to change (the common case: no allocation).
/// Called once per request on the hot path.
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    // Fast path, one pass: lowercase ASCII letters, digits, `-`, `.`, `_` and at most one `:` (the port)
    // — what nearly every client sends — needs only the port and one trailing dot cut off. Anything else
    // (upper case, user info, brackets, spaces, non-ASCII) takes the general path below.
    let mut colon = None;
    let mut plain = true;
    for (i, b) in raw.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {}
            b':' if colon.is_none() => colon = Some(i),
            _ => {
                plain = false;
                break;
            }
        }
    }
    if plain {
        let host = &raw[..colon.unwrap_or(raw.len())];
        return Cow::Borrowed(host.strip_suffix('.').unwrap_or(host));
    }
    normalize_host_general(raw)
}

fn normalize_host_general(raw: &str) -> Cow<'_, str> {
    // An absolute-form request target's authority may carry `user:password@`.
    let addr = raw.rsplit_once('@').map_or(raw, |(_, host)| host);
    let host = strip_port(addr).trim();
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_ascii() {
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        }
    } else if host.chars().any(char::is_uppercase) {
        Cow::Owned(host.to_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn strip_port(addr: &str) -> &str {
    let Some(colon) = addr.find(':') else {
        return addr;
    };
    if let Some(rest) = addr.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let after = &rest[end + 1..];
            if after.is_empty() || after.starts_with(':') {
                return &rest[..end];
            }
        }
        return addr;
    }
    if addr[colon + 1..].contains(':') {
        addr
    } else {
        &addr[..colon]
    }
}

/// Traefik `muxer.DomainMatchHostExpression` for a wildcard `*<suffix>`: the request host with
/// its first label replaced by `*` must equal the expression. So `*.example.com` matches
/// `a.example.com` but neither `example.com` nor `a.b.example.com`.
pub(crate) fn wildcard_matches(host: &str, suffix: &str) -> bool {
    match host.find('.') {
        Some(i) => host[i..].eq_ignore_ascii_case(suffix),
        None => suffix.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// The one-pass fast path answers exactly as the general path for any input.
        #[test]
        fn fast_path_agrees_with_the_general_path(
            raw in proptest::collection::vec(
                proptest::sample::select(vec!['a', 'Z', 'q', '0', '9', '.', ':', '-', '_', '@', '[', ']', ' ', '\t', 'é', 'İ']),
                0..12,
            ).prop_map(|v| v.into_iter().collect::<String>())
        ) {
            prop_assert_eq!(normalize_host(&raw), normalize_host_general(&raw));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// `parse_host`'s one-pass fast path answers exactly as its general path, for any input.
        #[test]
        fn parse_host_fast_path_agrees_with_the_general_path(
            raw in proptest::collection::vec(
                proptest::sample::select(vec!['a', 'Z', 'q', '0', '9', '.', ':', '-', '_', '~', '@', '[', ']', ' ', '%', 'é']),
                0..12,
            ).prop_map(|v| v.into_iter().collect::<String>())
        ) {
            prop_assert_eq!(parse_host(&raw), parse_host_general(&raw));
        }

        /// Whatever is accepted normalizes as the lenient `normalize_host` does.
        #[test]
        fn parse_host_agrees_with_normalize_host_when_valid(raw in "[a-zA-Z0-9.:_~-]{0,12}") {
            if let Ok(h) = parse_host(&raw) {
                prop_assert_eq!(h, normalize_host(&raw));
            }
        }
    }

    #[test]
    fn parse_host_rows() {
        use InvalidHost::*;
        let ok: &[(&str, &str)] = &[
            ("example.com", "example.com"),
            ("example.com:8080", "example.com"),
            ("example.com:", "example.com"),
            ("example.com:0", "example.com"),
            ("example.com:65535", "example.com"),
            ("example.com:00080", "example.com"),
            ("example.com.", "example.com"),
            ("example.com.:443", "example.com"),
            ("EXAMPLE.Com:80", "example.com"),
            ("my_service", "my_service"),
            ("a~b", "a~b"),
            ("127.0.0.1:8091", "127.0.0.1"),
            ("[::1]", "::1"),
            ("[::1]:8080", "::1"),
            ("[::1]:", "::1"),
            ("[FE80::1]:443", "fe80::1"),
            ("[::ffff:10.0.0.1]", "::ffff:10.0.0.1"),
            ("", ""),
        ];
        for (raw, want) in ok {
            assert_eq!(parse_host(raw), Ok(Cow::Borrowed(*want)), "{raw:?}");
        }
        let bad: &[(&str, InvalidHost)] = &[
            ("user@example.com", BadChar),
            ("user:pw@example.com", BadPort),
            ("example.com:abc", BadPort),
            ("example.com:80a", BadPort),
            ("example.com:+80", BadPort),
            ("example.com:-1", BadPort),
            ("example.com:65536", BadPort),
            ("example.com:99999", BadPort),
            ("example.com:99999999999999999999", BadPort),
            ("example.com:80:80", BadPort),
            (":99999", BadPort),
            (":80", EmptyHost),
            (":", EmptyHost),
            (".", EmptyHost),
            (".:80", EmptyHost),
            ("exa mple.com", BadChar),
            (" example.com", BadChar),
            ("example.com\t", BadChar),
            ("example.com\u{0}", BadChar),
            ("example.com\r\nx: y", BadChar),
            ("\u{7f}", BadChar),
            ("%61dmin.test", BadChar),
            ("admin.test,public.test", BadChar),
            ("a;b", BadChar),
            ("a/b", BadChar),
            ("a\\b", BadChar),
            ("école.fr", BadChar),
            ("::1", BadPort),
            ("fe80::1", BadPort),
            ("[::1", BadIpLiteral),
            ("[::1]x", BadChar),
            ("[::1]:x", BadPort),
            ("[::1]:99999", BadPort),
            ("[example.com]", BadIpLiteral),
            ("[v1.x]", BadIpLiteral),
            ("[fe80::1%25eth0]", BadIpLiteral),
            ("[]", BadIpLiteral),
        ];
        for (raw, want) in bad {
            assert_eq!(parse_host(raw), Err(*want), "{raw:?}");
        }
        assert!(matches!(parse_host("Example.com"), Ok(Cow::Owned(_))));
    }

    #[test]
    fn common_hosts_are_borrowed_without_port_and_trailing_dot() {
        for (raw, want) in [
            ("example.com", "example.com"),
            ("example.com:8080", "example.com"),
            ("example.com.", "example.com"),
            ("example.com.:443", "example.com"),
            ("127.0.0.1:8091", "127.0.0.1"),
            ("", ""),
        ] {
            let got = normalize_host(raw);
            assert!(matches!(got, Cow::Borrowed(_)), "{raw}");
            assert_eq!(got, want, "{raw}");
        }
    }
}
