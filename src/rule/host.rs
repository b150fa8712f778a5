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
