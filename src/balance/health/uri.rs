//! Probe URLs as Go builds them: the health path resolved against the server URL (`url.Parse` and
//! `URL.ResolveReference`), percent-encoding, and the redirect helpers (`Location` resolution, Go's
//! `canonicalAddr`). Pure.

use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;

use super::state::{HealthCheckSettings, HealthError};

/// The URL to probe for `server_url`, as Traefik's `newRequest` builds it.
///
/// Resolves `s.path` against `server_url` (RFC 3986 reference resolution with
/// Go's dot-segment handling), then applies `s.scheme` and `s.port` (the port
/// replaces the server URL's, IPv6 brackets kept). Bytes that may not appear
/// in a URI (space, `"`, `{`, non-ASCII…) are percent-encoded, as Go does when
/// it serializes the URL; the fragment is dropped (never sent). Errors on a
/// path with a scheme or host ([`HealthError::AbsolutePath`], as Traefik), on
/// a path Go's `url.Parse` rejects ([`HealthError::InvalidPath`]) and on an
/// unusable scheme ([`HealthError::InvalidUri`]). Pure.
///
/// # Errors
///
/// [`HealthError::AbsolutePath`], [`HealthError::InvalidPath`] or
/// [`HealthError::InvalidUri`] as above; the checker counts each as a failed
/// probe (the server goes down), as Traefik does for a bad path.
pub fn probe_uri(server_url: &Uri, s: &HealthCheckSettings) -> Result<Uri, HealthError> {
    let reference = parse_reference(&s.path).map_err(|reason| HealthError::InvalidPath {
        path: s.path.clone(),
        reason,
    })?;
    if reference.scheme.is_some() || reference.authority.is_some() {
        return Err(HealthError::AbsolutePath {
            path: s.path.clone(),
        });
    }
    let resolved = resolve(server_url, &reference);
    let scheme = s.scheme.as_deref().unwrap_or(resolved.scheme);
    let authority = match s.port {
        Some(port) => with_port(resolved.authority, port),
        None => resolved.authority.to_owned(),
    };
    build_uri(scheme, &authority, &resolved.path, resolved.query).map_err(|source| {
        HealthError::InvalidUri {
            server_url: server_url.to_string(),
            source,
        }
    })
}

/// A parsed URI reference (Go's `url.Parse` result, the parts we use).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Reference<'a> {
    pub(super) scheme: Option<&'a str>,
    /// A scheme followed by something other than `/` (`mailto:x`, `http:`).
    pub(super) opaque: bool,
    pub(super) authority: Option<&'a str>,
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
}

/// Go's `url.Parse`, restricted to what a health path or a `Location` header
/// needs: fragment cut, scheme per `getScheme`, query cut at the first `?`,
/// authority after `//`, and Go's rejections (control bytes, `:` first,
/// colon in the first segment of a relative path, bad `%` escapes). Opaque
/// URLs (`mailto:x`) are flagged; callers reject them.
pub(super) fn parse_reference(s: &str) -> Result<Reference<'_>, &'static str> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("invalid control character in URL");
    }
    let s = s.split_once('#').map_or(s, |(before, _)| before);
    let mut scheme = None;
    let mut rest = s;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme"),
            b':' => {
                scheme = Some(&s[..i]);
                rest = &s[i + 1..];
                break;
            }
            _ => break,
        }
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let opaque = scheme.is_some() && !rest.starts_with('/');
    if !rest.starts_with('/') && scheme.is_none() {
        let first_segment = rest.split('/').next().unwrap_or("");
        if first_segment.contains(':') {
            return Err("first path segment in URL cannot contain colon");
        }
    }
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) if scheme.is_some() || !rest.starts_with("///") => match after.find('/') {
            Some(i) => (Some(&after[..i]), &after[i..]),
            None => (Some(after), ""),
        },
        _ => (None, rest),
    };
    if !valid_escapes(path) {
        return Err("invalid URL escape");
    }
    Ok(Reference {
        scheme,
        opaque,
        authority,
        path,
        query,
    })
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

pub(super) struct Resolved<'a> {
    pub(super) scheme: &'a str,
    pub(super) authority: &'a str,
    pub(super) path: String,
    pub(super) query: Option<&'a str>,
}

/// Go's `URL.ResolveReference` for a base with scheme and host.
pub(super) fn resolve<'a>(base: &'a Uri, r: &Reference<'a>) -> Resolved<'a> {
    let base_scheme = base.scheme_str().unwrap_or("http");
    let base_authority = base.authority().map_or("", Authority::as_str);
    if r.scheme.is_some() || r.authority.is_some() {
        return Resolved {
            scheme: r.scheme.unwrap_or(base_scheme),
            authority: r.authority.unwrap_or(""),
            path: resolve_path(r.path, ""),
            query: r.query,
        };
    }
    let query = if r.path.is_empty() && r.query.is_none() {
        base.query()
    } else {
        r.query
    };
    Resolved {
        scheme: base_scheme,
        authority: base_authority,
        path: resolve_path(base.path(), r.path),
        query,
    }
}

/// Go's `resolvePath`: merge `reference` into `base` and remove dot
/// segments, always yielding an absolute path (or "" when both are empty).
pub(super) fn resolve_path(base: &str, reference: &str) -> String {
    let full = if reference.is_empty() {
        base.to_owned()
    } else if !reference.starts_with('/') {
        let keep = base.rfind('/').map_or(0, |i| i + 1);
        format!("{}{}", &base[..keep], reference)
    } else {
        reference.to_owned()
    };
    if full.is_empty() {
        return full;
    }
    let mut dst = String::with_capacity(full.len() + 1);
    dst.push('/');
    let mut first = true;
    let mut elem = "";
    for segment in full.split('/') {
        elem = segment;
        match segment {
            "." => first = false,
            ".." => {
                if let Some(i) = dst[1..].rfind('/') {
                    dst.truncate(i + 1);
                } else {
                    dst.truncate(1);
                    first = true;
                }
            }
            _ => {
                if !first {
                    dst.push('/');
                }
                dst.push_str(segment);
                first = false;
            }
        }
    }
    if elem == "." || elem == ".." {
        dst.push('/');
    }
    if dst.as_bytes().get(1) == Some(&b'/') {
        dst.remove(0);
    }
    dst
}

/// Replaces the port in `authority` (keeping user info and IPv6 brackets).
fn with_port(authority: &str, port: u16) -> String {
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => authority.split_at(i + 1),
        None => ("", authority),
    };
    let host = if hostport.starts_with('[') {
        hostport.find(']').map_or(hostport, |i| &hostport[..=i])
    } else {
        hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)
    };
    format!("{userinfo}{host}:{port}")
}

/// Assembles an absolute URI, percent-encoding bytes a URI may not contain.
pub(super) fn build_uri(
    scheme: &str,
    authority: &str,
    path: &str,
    query: Option<&str>,
) -> Result<Uri, http::Error> {
    let mut pq = String::with_capacity(path.len() + query.map_or(0, str::len) + 2);
    if path.is_empty() {
        pq.push('/');
    } else {
        push_encoded(&mut pq, path, false);
    }
    if let Some(q) = query {
        pq.push('?');
        push_encoded(&mut pq, q, true);
    }
    let scheme = Scheme::try_from(scheme.to_ascii_lowercase().as_str())?;
    let authority = Authority::try_from(authority)?;
    let pq = PathAndQuery::try_from(pq)?;
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(pq)
        .build()
}

/// RFC 3986 `pchar` plus `/` (and `?` in a query), or an existing escape.
fn push_encoded(out: &mut String, s: &str, in_query: bool) {
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'%'
            )
            || (in_query && b == b'?');
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_upper(b >> 4));
            out.push(hex_upper(b & 0xf));
        }
    }
}

/// The upper-case hex digit of the low four bits of `n` (Go escapes with `0123456789ABCDEF`).
fn hex_upper(n: u8) -> char {
    let n = n & 0xf;
    char::from(if n < 10 { b'0' + n } else { b'A' + (n - 10) })
}

/// `host[:port]` of the URI's authority, without user info (Go's `URL.Host`).
pub(super) fn host_of(uri: &Uri) -> &str {
    let authority = uri.authority().map_or("", Authority::as_str);
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Go's `canonicalAddr`: lowercase host and explicit port.
pub(super) fn canonical_addr(uri: &Uri) -> (String, u16) {
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    (host, port)
}

/// The URL without user info, as Go sets `Referer`.
pub(super) fn strip_userinfo(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let pq = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    format!("{scheme}://{}{pq}", host_of(uri))
}
