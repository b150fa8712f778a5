//! Host names: normalizing what the client sent, and Traefik's `*.` wildcard comparison.

use std::borrow::Cow;

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
