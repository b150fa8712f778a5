//! Request paths as a Traefik v3 entrypoint hands them to routing: `%`-escapes normalized, then, with
//! `http.sanitizePath` (the default), dot segments and duplicate slashes resolved. The result is what
//! routers match and what is forwarded, so a router and the backend behind it see the same path.
//!
//! Reference: Traefik `pkg/server/server_entrypoint_tcp.go` — `normalizePath` (always on) decodes the
//! `%`-escapes of RFC 3986 unreserved characters and upper-cases the hex digits of every other escape
//! (RFC 3986 §6.2.2.1–2); `sanitizePath` then cleans the escaped path with Go's `url.URL.JoinPath`
//! (`path.Clean` on the escaped path, keeping one trailing slash). Because the escaped path is cleaned,
//! `%2F` stays one segment's byte and never a separator, while `%2e` — decoded by the first step — is a
//! dot like any other. Encoded `/`, `\`, NUL, `;`, `%`, `?` and `#` are let through, as Traefik does by
//! default since v3.6.7 (its `http.encodedCharacters` options, all `true` by default). An escape that
//! is not `%` and two hex digits is refused (Go's request parser answers 400).
//!
//! Pure, no I/O; on the hot path a path that is already clean is returned borrowed, without allocating.

use std::borrow::Cow;

/// Why a request path was refused; the request is answered 400 before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPath {
    /// A `%` not followed by two hex digits.
    #[error("invalid path encoding")]
    BadEscape,
}

impl InvalidPath {
    /// A fixed description for the 400 answer and logs.
    pub fn reason(self) -> &'static str {
        match self {
            InvalidPath::BadEscape => "invalid path encoding",
        }
    }
}

/// The path a request is routed by and forwarded with: [`normalize_escapes`]d, then, when `sanitize`
/// (the entrypoint's `http.sanitizePath`, default true), [`sanitize_path`]ed.
///
/// Borrowed when nothing changes (no allocation); an invalid `%`-escape is an error.
/// Called once per request by the proxy handler, before any middleware.
pub fn normalize_path(raw: &str, sanitize: bool) -> Result<Cow<'_, str>, InvalidPath> {
    let escaped = normalize_escapes(raw)?;
    if !sanitize {
        return Ok(escaped);
    }
    Ok(match escaped {
        Cow::Borrowed(p) => sanitize_path(p),
        Cow::Owned(p) => match sanitize_path(&p) {
            Cow::Owned(clean) => Cow::Owned(clean),
            Cow::Borrowed(_) => Cow::Owned(p),
        },
    })
}

/// Traefik's `normalizePath`: every `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded,
/// every other escape keeps its encoding with upper-case hex digits (`%2f` → `%2F`). Both forms name
/// the same resource (RFC 3986 §6.2.2), so one spelling reaches routing and the backend.
///
/// Borrowed when there is nothing to change; [`InvalidPath::BadEscape`] when a `%` is not followed by two
/// hex digits.
pub fn normalize_escapes(raw: &str) -> Result<Cow<'_, str>, InvalidPath> {
    let b = raw.as_bytes();
    let Some(first) = b.iter().position(|&c| c == b'%') else {
        return Ok(Cow::Borrowed(raw));
    };
    // First pass: validate, and learn whether anything changes.
    let mut changes = false;
    let mut i = first;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let (v, lower) = escape_at(b, i)?;
            changes |= lower || is_unreserved(v);
            i += 3;
        } else {
            i += 1;
        }
    }
    if !changes {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..first]);
    let mut i = first;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let (v, _) = escape_at(b, i)?;
            if is_unreserved(v) {
                out.push(char::from(v));
            } else {
                out.push('%');
                out.push(hex_digit(v >> 4));
                out.push(hex_digit(v & 0xf));
            }
            i += 3;
        } else {
            // Copy the run up to the next escape in one piece (it is valid UTF-8: `%` is ASCII).
            let end = b
                .iter()
                .skip(i)
                .position(|&c| c == b'%')
                .map_or(b.len(), |n| i + n);
            out.push_str(&raw[i..end]);
            i = end;
        }
    }
    Ok(Cow::Owned(out))
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The upper-case hex digit of the low four bits of `n`.
fn hex_digit(n: u8) -> char {
    char::from(HEX.get(usize::from(n & 0xf)).copied().unwrap_or(b'0'))
}

/// The byte escaped at `b[i..i + 3]` (`b[i]` is `%`) and whether its hex digits use lower case.
fn escape_at(b: &[u8], i: usize) -> Result<(u8, bool), InvalidPath> {
    let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2)) else {
        return Err(InvalidPath::BadEscape);
    };
    let (Some(hv), Some(lv)) = (hex_val(h), hex_val(l)) else {
        return Err(InvalidPath::BadEscape);
    };
    Ok((
        hv << 4 | lv,
        h.is_ascii_lowercase() || l.is_ascii_lowercase(),
    ))
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3 unreserved characters.
fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// Traefik's `sanitizePath` (Go `url.URL.JoinPath()` on the escaped path): `.` segments removed, each `..`
/// removes itself and the segment before it (never climbing above the root: `/../a` → `/a`), runs of
/// `/` collapse to one, and a trailing `/` is kept (`/a/b//` → `/a/b/`, but `/a/.` → `/a`). A path that
/// does not start with `/` (`*` of `OPTIONS *`) is cleaned as if it did and returned without it.
///
/// Works on the escaped path: `%2F` is not a separator and `%2E` not a dot (run [`normalize_escapes`]
/// first, as [`normalize_path`] does, so that `%2e` is one). Borrowed when already clean.
pub fn sanitize_path(path: &str) -> Cow<'_, str> {
    if is_clean(path) {
        return Cow::Borrowed(path);
    }
    let rooted = path.starts_with('/');
    // Built as "/seg/seg…"; `..` cuts back to the previous `/`.
    let mut out = String::with_capacity(path.len() + 1);
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                let cut = out.rfind('/').unwrap_or(0);
                out.truncate(cut);
            }
            s => {
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if out.is_empty() || (path.ends_with('/') && !out.ends_with('/')) {
        out.push('/');
    }
    if !rooted {
        out.remove(0);
    }
    Cow::Owned(out)
}

/// True when [`sanitize_path`] would return `path` unchanged: no empty, `.` or `..` segment, except the
/// empty ones the root and one trailing slash make.
fn is_clean(path: &str) -> bool {
    let rooted = path.starts_with('/');
    let body = if rooted { &path[1..] } else { path };
    if body.is_empty() {
        // "/" is clean; "" is made "/"… and then loses it again when not rooted: unchanged either way.
        return true;
    }
    let body = body.strip_suffix('/').unwrap_or(body);
    !body
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sanitize_rows() {
        let rows: &[(&str, &str)] = &[
            // Traefik's documentation table (entrypoints.md, sanitizePath).
            ("/./foo/bar", "/foo/bar"),
            ("/foo/../bar", "/bar"),
            ("/foo/bar//", "/foo/bar/"),
            ("/./foo/../bar//", "/bar/"),
            // The bypasses of a `PathPrefix(`/admin`)` router.
            ("//admin", "/admin"),
            ("/./admin", "/admin"),
            ("/x/../admin", "/admin"),
            ("///admin//x", "/admin/x"),
            ("/admin/./x/", "/admin/x/"),
            // Never above the root.
            ("/..", "/"),
            ("/../", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/b/../../../..//c/", "/c/"),
            ("/a/..", "/"),
            ("/a/../", "/"),
            ("//", "/"),
            ("/.", "/"),
            ("/./", "/"),
            // Trailing slash: kept when the path ends with one, not created by a final dot segment.
            ("/a/.", "/a"),
            ("/a/./", "/a/"),
            ("/a/b/..", "/a"),
            ("/a/b/../", "/a/"),
            // Not a dot segment: kept as is.
            ("/a/.../b", "/a/.../b"),
            ("/a/.b/..c/", "/a/.b/..c/"),
            ("/a/..%2F..%2Fb", "/a/..%2F..%2Fb"),
            ("/a/%2E%2E/b", "/a/%2E%2E/b"),
            ("/a;x/../b", "/b"),
            ("/a\\../b", "/a\\../b"),
            // Already clean.
            ("/", "/"),
            ("/admin", "/admin"),
            ("/admin/", "/admin/"),
            ("*", "*"),
            ("", ""),
            // Not rooted (only `*` reaches us; Go cleans the others as if rooted, then drops the `/`).
            ("a/../b", "b"),
            ("a//b/", "a/b/"),
            ("..", ""),
        ];
        for (raw, want) in rows {
            assert_eq!(sanitize_path(raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn escape_rows() {
        let rows: &[(&str, &str)] = &[
            ("/%2e/admin", "/./admin"),
            ("/%2E%2e/admin", "/../admin"),
            ("/%61dmin", "/admin"),
            ("/%7e%7E%2d%5F", "/~~-_"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%5cb", "/a%5Cb"),
            ("/a%00b", "/a%00b"),
            ("/a%3bb", "/a%3Bb"),
            ("/a;b", "/a;b"),
            ("/a%25b", "/a%25b"),
            ("/a%252e", "/a%252e"),
            ("/a%3f%23", "/a%3F%23"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/%e2%82%ac/%41", "/%E2%82%AC/A"),
        ];
        for (raw, want) in rows {
            assert_eq!(normalize_escapes(raw), Ok(Cow::Borrowed(*want)), "{raw:?}");
        }
        for raw in ["/%", "/%4", "/a%zz", "/%g0", "/a%2", "/%%41", "/%\u{e9}"] {
            assert_eq!(
                normalize_escapes(raw),
                Err(InvalidPath::BadEscape),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn normalize_path_rows() {
        let rows: &[(&str, bool, &str)] = &[
            ("/%2e/admin", true, "/admin"),
            ("/.%2e/admin", true, "/admin"),
            ("/x/%2E%2E/admin", true, "/admin"),
            ("/%2e%2e/%2e%2e/admin/", true, "/admin/"),
            ("/admin%2f..%2f", true, "/admin%2F..%2F"),
            ("/x/..%2fadmin", true, "/x/..%2Fadmin"),
            ("/%61dmin/./x", true, "/admin/x"),
            // sanitizePath=false: escapes are still normalized (Traefik always runs normalizePath),
            // dot segments and slashes are left alone.
            ("/./admin", false, "/./admin"),
            ("//admin", false, "//admin"),
            ("/%2e/admin", false, "/./admin"),
            ("/a%2fb", false, "/a%2Fb"),
        ];
        for (raw, sanitize, want) in rows {
            assert_eq!(
                normalize_path(raw, *sanitize).as_deref(),
                Ok(*want),
                "{raw:?} {sanitize}"
            );
        }
        assert_eq!(normalize_path("/%zz/..", true), Err(InvalidPath::BadEscape));
    }

    #[test]
    fn clean_paths_are_borrowed() {
        for raw in [
            "/",
            "/admin",
            "/admin/",
            "/a/b.c/d_e~f-g",
            "/a%2Fb",
            "/a%00",
            "*",
            "/a;b?",
        ] {
            for sanitize in [true, false] {
                assert!(
                    matches!(normalize_path(raw, sanitize), Ok(Cow::Borrowed(_))),
                    "{raw:?}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// Cleaning is idempotent, keeps the path rooted, and leaves no dot segment or `//` behind.
        #[test]
        fn sanitize_is_idempotent_and_leaves_no_dot_segment(
            segs in proptest::collection::vec(
                proptest::sample::select(vec!["", ".", "..", "a", "b.", ".c", "...", "%2E", "%2e", "x%2Fy"]),
                0..8,
            ),
            trailing in any::<bool>(),
        ) {
            let mut raw = String::new();
            for s in &segs {
                raw.push('/');
                raw.push_str(s);
            }
            if trailing || raw.is_empty() {
                raw.push('/');
            }
            let once = normalize_path(&raw, true).expect("valid").into_owned();
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.contains("//"), "{}", once);
            prop_assert!(once.split('/').all(|s| s != "." && s != ".."), "{}", once);
            prop_assert_eq!(normalize_path(&once, true).expect("valid"), Cow::Borrowed(once.as_str()));
        }
    }
}
