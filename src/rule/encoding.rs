//! Percent-decoding for matching, without allocating on the common path.
//!
//! * Paths: Traefik matches `Path`, `PathPrefix` and `PathRegexp` against the *routing path*
//!   (traefik `pkg/muxer/http/mux.go`, `withRoutingPath`): the escaped request path with every
//!   `%XX` decoded **except** the reserved characters of RFC 3986 §2.2 and `%25`, which stay
//!   encoded so decoding cannot change the meaning of the path. So `PathPrefix(`/foo bar`)`
//!   matches `/foo%20bar`, while `/a%2Fb` stays `/a%2Fb`. Traefik's reserved table is keyed by
//!   the upper-case spelling only (`%2F`), so a lower-case `%2f` *is* decoded to `/`; that quirk
//!   is reproduced. It is not reachable through the proxy: the handler first upper-cases every
//!   escape (`super::path::normalize_escapes`, Traefik's entrypoint `normalizePath`), as Traefik
//!   does before its muxer runs.
//! * Query strings: Go's `url.ParseQuery` (used by `req.URL.Query()`): pairs split on `&`,
//!   pairs containing `;` dropped, key and value split on the first `=`, `+` decoded as space,
//!   `%XX` decoded, and a pair with an invalid escape dropped.

use std::borrow::Cow;

/// Upper-case hex pairs that Traefik keeps encoded in the routing path (mux.go,
/// `reservedCharacters`): `: / ? # [ ] @ ! $ & ' ( ) * + , ; = %`.
fn is_reserved(h1: u8, h2: u8) -> bool {
    matches!(
        (h1, h2),
        (b'3', b'A')
            | (b'2', b'F')
            | (b'3', b'F')
            | (b'2', b'3')
            | (b'5', b'B')
            | (b'5', b'D')
            | (b'4', b'0')
            | (b'2', b'1')
            | (b'2', b'4')
            | (b'2', b'6')
            | (b'2', b'7')
            | (b'2', b'8')
            | (b'2', b'9')
            | (b'2', b'A')
            | (b'2', b'B')
            | (b'2', b'C')
            | (b'3', b'B')
            | (b'3', b'D')
            | (b'2', b'5')
    )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The routing path's bytes, decoded lazily from the raw path.
///
/// A `%` not followed by two hex digits is yielded as-is; Traefik answers such requests with
/// 400 before routing (see [`super::is_valid_routing_path`]).
struct RoutingBytes<'a> {
    raw: &'a [u8],
    i: usize,
}

impl Iterator for RoutingBytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.raw.get(self.i)?;
        self.i += 1;
        if b != b'%' {
            return Some(b);
        }
        let (Some(&h1), Some(&h2)) = (self.raw.get(self.i), self.raw.get(self.i + 1)) else {
            return Some(b'%');
        };
        if is_reserved(h1, h2) {
            return Some(b'%');
        }
        match (hex_val(h1), hex_val(h2)) {
            (Some(a), Some(c)) => {
                self.i += 2;
                Some(a << 4 | c)
            }
            _ => Some(b'%'),
        }
    }
}

/// The routing path of a raw request path; borrowed when it has no `%`.
pub(crate) fn routing_path(raw: &str) -> Cow<'_, [u8]> {
    if raw.as_bytes().contains(&b'%') {
        Cow::Owned(
            RoutingBytes {
                raw: raw.as_bytes(),
                i: 0,
            }
            .collect(),
        )
    } else {
        Cow::Borrowed(raw.as_bytes())
    }
}

/// `routing_path(raw) == expected`, without allocating.
pub(crate) fn path_eq(raw: &str, expected: &str) -> bool {
    if !raw.as_bytes().contains(&b'%') {
        return raw == expected;
    }
    RoutingBytes {
        raw: raw.as_bytes(),
        i: 0,
    }
    .eq(expected.bytes())
}

/// `routing_path(raw).starts_with(prefix)`, without allocating.
pub(crate) fn path_has_prefix(raw: &str, prefix: &str) -> bool {
    // Decoding never lengthens a path, so a shorter raw path cannot match. When the first
    // `prefix.len()` raw bytes hold no `%`, they are also the first decoded bytes.
    let Some(head) = raw.as_bytes().get(..prefix.len()) else {
        return false;
    };
    if !head.contains(&b'%') {
        return head == prefix.as_bytes();
    }
    let mut it = RoutingBytes {
        raw: raw.as_bytes(),
        i: 0,
    };
    prefix.bytes().all(|p| it.next() == Some(p))
}

/// The `(key, value)` pairs of a raw query string that Go's `url.ParseQuery` keeps (still
/// encoded). Pairs with an invalid escape are filtered later, by the decoders returning `None`.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty() && !p.contains(';'))
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Go `url.QueryUnescape` as a lazy byte stream: `Err(())` at an invalid escape.
struct QueryBytes<'a> {
    raw: &'a [u8],
    i: usize,
}

impl Iterator for QueryBytes<'_> {
    type Item = Result<u8, ()>;

    fn next(&mut self) -> Option<Result<u8, ()>> {
        let b = *self.raw.get(self.i)?;
        self.i += 1;
        Some(match b {
            b'+' => Ok(b' '),
            b'%' => {
                let h = (
                    self.raw.get(self.i).copied().and_then(hex_val),
                    self.raw.get(self.i + 1).copied().and_then(hex_val),
                );
                match h {
                    (Some(a), Some(c)) => {
                        self.i += 2;
                        Ok(a << 4 | c)
                    }
                    _ => Err(()),
                }
            }
            b => Ok(b),
        })
    }
}

/// True when `raw` decodes (Go `QueryUnescape`) without error.
pub(crate) fn query_valid(raw: &str) -> bool {
    QueryBytes {
        raw: raw.as_bytes(),
        i: 0,
    }
    .all(|r| r.is_ok())
}

/// `Some(decoded == expected)`, or `None` when `raw` has an invalid escape. Allocation-free.
pub(crate) fn query_eq(raw: &str, expected: &str) -> Option<bool> {
    let mut it = QueryBytes {
        raw: raw.as_bytes(),
        i: 0,
    };
    let mut exp = expected.bytes();
    let mut equal = true;
    for r in it.by_ref() {
        let b = r.ok()?;
        if equal && exp.next() != Some(b) {
            equal = false;
        }
    }
    Some(equal && exp.next().is_none())
}

/// The decoded component, borrowed when there is nothing to decode; `None` when invalid.
pub(crate) fn query_decode(raw: &str) -> Option<Cow<'_, [u8]>> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(raw.as_bytes()));
    }
    QueryBytes {
        raw: raw.as_bytes(),
        i: 0,
    }
    .collect::<Result<Vec<u8>, ()>>()
    .ok()
    .map(Cow::Owned)
}
