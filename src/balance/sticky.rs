//! Sticky-session cookies, byte-compatible with Traefik.
//!
//! Owns the cookie codec: the cookie *name* Traefik derives for a service, the
//! cookie *value* it writes for a server, the legacy values older Traefik
//! versions wrote (so clients stay stuck across an upgrade to swarmgate), the
//! `Set-Cookie` serialization of Go's `net/http`, and `Cookie` header parsing.
//! Everything here is pure; the value → server map is built at table-compile
//! time so that the request path only does a hash-map lookup.
//!
//! What Traefik writes and accepts (v3.4+, `pkg/server/service/loadbalancer/sticky.go`):
//!
//! | format | produced by | example for `http://10.0.1.5:80` |
//! | --- | --- | --- |
//! | SHA-256 hex, first 16 chars | Traefik ≥ 3.3.4 (current) | `b4e215ace41bed91` |
//! | raw server URL / child name | Traefik 2.0–2.4 (oxy `RawValue`) | `http://10.0.1.5:80` |
//! | FNV-1 64, `%x` | Traefik 2.x/3.0–3.3.3 weighted services (child name) | `2ef3ad0b350e1800` |
//! | FNV-1 of FNV-1 | what Traefik's compatibility map assumes v3.0–3.3.3 wrote | `3e77b2f70335bb48` |
//! | FNV-1a 64, `%x` | Traefik 2.5–2.11 servers (oxy `HashValue`) | `63661225b6141ab2` |
//! | FNV-1 of 16-hex FNV-1a | Traefik 3.0–3.3.3 servers (what they really wrote) | `be10bad327f55687` |
//!
//! Traefik itself accepts only the first four. The last two are what those
//! versions actually put in browsers (see [`StickyTable`]), so we accept them too.
//! "FNV-1 64, `%x`" is Go's `strconv.FormatUint(fnv.New64().Sum64(), 16)`:
//! lowercase hex *without* leading zeros.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The sticky cookie value Traefik (≥ 3.3.4) writes for a handler name: the
/// first 16 lowercase hex characters of SHA-256 of `name`.
///
/// For a load-balancer service, `name` is the server URL exactly as configured
/// (`http://10.0.1.5:80` → `b4e215ace41bed91`). For a weighted service of
/// services, `name` is the child service name exactly as written in the
/// weighted service's `services[].name` (Traefik passes that string,
/// unqualified if it was written unqualified). Called at table-build time; the
/// request path reads the precomputed value from [`StickyTable::value`].
#[must_use]
pub fn cookie_value(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let mut hex = hex::encode(digest);
    hex.truncate(16);
    hex
}

/// The cookie name Traefik generates when `sticky.cookie.name` is not set:
/// `_` followed by the first 5 hex characters of SHA-1 of
/// `_TRAEFIK_BACKEND_<qualified_service>`.
///
/// `qualified_service` is the provider-qualified service name, e.g.
/// `whoami@docker` → `_633ff`, `app@file` → `_fb0b0` (Traefik's
/// `pkg/server/cookie/cookie.go`, `GenerateName`; the service manager passes
/// the qualified name).
#[must_use]
pub fn default_cookie_name(qualified_service: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(b"_TRAEFIK_BACKEND_");
    hasher.update(qualified_service.as_bytes());
    let mut name = String::with_capacity(6);
    name.push('_');
    name.push_str(&hex::encode(hasher.finalize())[..5]);
    name
}

/// The cookie name Traefik uses for a service: the configured name with every
/// character outside RFC 2616 token characters replaced by `_`, or
/// [`default_cookie_name`] when `configured` is empty (Traefik's
/// `cookie.GetName`).
///
/// Each non-token *character* (not byte) becomes one `_`, as Go's
/// `strings.Map` does: `/my/BACKEND-v1.0~rc1` → `_my_BACKEND-v1.0~rc1`.
#[must_use]
pub fn cookie_name(configured: &str, qualified_service: &str) -> String {
    if configured.is_empty() {
        return default_cookie_name(qualified_service);
    }
    configured
        .chars()
        .map(|c| {
            if c.is_ascii() && is_token_byte(c as u8) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Cookie value → server index, built once per balancer at table-compile time.
///
/// Holds, for every server (or child service) name, the current SHA-256 value
/// and the legacy values listed in the module docs. [`lookup`](Self::lookup)
/// is one hash-map probe with a borrowed `&str`: no allocation, no hashing of
/// anything but the cookie value. The map uses std's randomly keyed hasher, so
/// crafted cookie values cannot aim at collisions.
///
/// If two servers share a name (duplicate URLs), the first index wins. A
/// current-format value always wins over a legacy value that happens to be
/// equal.
#[derive(Debug, Clone)]
pub struct StickyTable {
    values: Box<[Box<str>]>,
    map: HashMap<Box<str>, (usize, bool)>,
}

impl StickyTable {
    /// Builds the table for `names`, where `names[i]` is server `i`'s URL (or,
    /// for a weighted service, child service `i`'s name).
    ///
    /// Legacy formats accepted besides the current one (each returns
    /// `needs_rewrite = true`):
    /// - the raw name (Traefik 2.0–2.4; also in Traefik's compatibility map),
    /// - FNV-1 64 of the name (Traefik 2.x/3.0–3.3.3 weighted services; in
    ///   Traefik's map),
    /// - FNV-1 of FNV-1 (in Traefik's map: `sticky.go`, `AddHandler`, on the
    ///   belief that 3.0–3.3.3 hashed server URLs with FNV-1 first),
    /// - FNV-1a 64 of the name (Traefik 2.5–2.11 servers, oxy's `HashValue`;
    ///   **not** in Traefik's map),
    /// - FNV-1 of the zero-padded hex FNV-1a of the name (what Traefik
    ///   3.0–3.3.3 servers really wrote: `service.go` named each server
    ///   `hex(fnv64a(url))` and `wrr.go` wrote `fnv64(name)`; **not** in
    ///   Traefik's map, so Traefik silently re-balances those clients).
    #[must_use]
    pub fn new<S: AsRef<str>>(names: &[S]) -> Self {
        let values: Box<[Box<str>]> = names
            .iter()
            .map(|n| cookie_value(n.as_ref()).into_boxed_str())
            .collect();
        let mut map: HashMap<Box<str>, (usize, bool)> = HashMap::with_capacity(names.len() * 6);
        for (index, value) in values.iter().enumerate() {
            map.entry(value.clone()).or_insert((index, false));
        }
        for (index, name) in names.iter().enumerate() {
            let name = name.as_ref();
            let fnv1a_hex16 = format!("{:016x}", fnv1a_64(name.as_bytes()));
            let fnv1_hex = go_hex(fnv1_64(name.as_bytes()));
            let legacy = [
                name.to_owned(),
                go_hex(fnv1_64(fnv1_hex.as_bytes())),
                fnv1_hex,
                go_hex(fnv1a_64(name.as_bytes())),
                go_hex(fnv1_64(fnv1a_hex16.as_bytes())),
            ];
            for value in legacy {
                map.entry(value.into_boxed_str()).or_insert((index, true));
            }
        }
        Self { values, map }
    }

    /// Resolves a cookie value to `(server index, needs_rewrite)`.
    ///
    /// Hot path; no allocation. `needs_rewrite` is true for legacy formats: the
    /// caller, having checked the server is up, routes to it *and* sends a
    /// fresh `Set-Cookie` with [`value`](Self::value), as Traefik does. `None`
    /// for unknown values; then, and also when the server found is down, the
    /// caller picks with the balancer and writes the new server's cookie
    /// (Traefik ignores a sticky cookie that points at a down server, but not
    /// at a fenced — terminating — one).
    #[must_use]
    pub fn lookup(&self, cookie_value: &str) -> Option<(usize, bool)> {
        self.map.get(cookie_value).copied()
    }

    /// The current-format cookie value for server `index`, precomputed; `None`
    /// if out of range.
    #[must_use]
    pub fn value(&self, index: usize) -> Option<&str> {
        self.values.get(index).map(|v| &**v)
    }

    /// Number of servers in the table.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the table was built for no server.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The `SameSite` attribute of the sticky cookie.
///
/// "Not set" is `Option::None` on [`CookieSpec::same_site`]: Go then omits the
/// attribute (`http.SameSiteDefaultMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// `SameSite=None`. Go writes it even without `Secure` (browsers then
    /// reject the cookie); we do the same rather than second-guess the config.
    None,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=Strict`.
    Strict,
}

impl SameSite {
    /// Parses Traefik's `sticky.cookie.sameSite` option: `none`, `lax` or
    /// `strict`, ASCII case-insensitive (Traefik ≥ 3.6.14; earlier versions
    /// matched lowercase only). Any other value, including the empty string,
    /// yields `None`, meaning "default mode": no attribute is written. Traefik
    /// does not reject unknown values either.
    #[must_use]
    pub fn from_traefik(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("none") {
            Some(Self::None)
        } else if value.eq_ignore_ascii_case("lax") {
            Some(Self::Lax)
        } else if value.eq_ignore_ascii_case("strict") {
            Some(Self::Strict)
        } else {
            None
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Self::None => "; SameSite=None",
            Self::Lax => "; SameSite=Lax",
            Self::Strict => "; SameSite=Strict",
        }
    }
}

/// How the sticky cookie is written; built from Traefik's `sticky.cookie`
/// options at table-build time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSpec {
    /// Cookie name, normally from [`cookie_name`]. Must be an RFC 2616 token;
    /// otherwise no cookie is written (as Go's `http.SetCookie` drops it).
    pub name: String,
    /// Adds `; Secure`.
    pub secure: bool,
    /// Adds `; HttpOnly`.
    pub http_only: bool,
    /// `SameSite` attribute; `None` omits it.
    pub same_site: Option<SameSite>,
    /// Go's `MaxAge` semantics: `Some(n)` with `n > 0` writes `Max-Age=n`;
    /// `n < 0` writes `Max-Age=0` (delete now); `Some(0)` and `None` write
    /// nothing (a session cookie), because Go cannot tell 0 from unset.
    pub max_age: Option<i64>,
    /// `Path` attribute. Traefik's default is `/`; an empty string (the user
    /// set `path: ""`) omits the attribute, as Go does.
    pub path: String,
    /// `Domain` attribute. Written without a leading dot; dropped entirely if
    /// it is not a valid domain name or IPv4 address (Go logs and drops it).
    pub domain: Option<String>,
    /// Absolute `Expires` time. Traefik (≥ 3.7, `sticky.cookie.expires` in
    /// seconds) computes `now + expires` **once, when the configuration is
    /// built**, not per response (`sticky.go`, `NewSticky`); the table builder
    /// reproduces that by filling this field at compile time. Times before the
    /// year 1601 are not written (Go's rule).
    pub expires: Option<SystemTime>,
}

impl CookieSpec {
    /// A spec with Traefik's defaults: path `/`, nothing else set.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            secure: false,
            http_only: false,
            same_site: None,
            max_age: None,
            path: "/".to_owned(),
            domain: None,
            expires: None,
        }
    }

    /// The `Set-Cookie` header value Go's `http.Cookie.String()` produces for
    /// this spec and `value`, attribute for attribute:
    /// `name=value; Path=…; Domain=…; Expires=…; Max-Age=…; HttpOnly; Secure; SameSite=…`.
    ///
    /// Like Go: bytes not allowed in a cookie value (`"`, `;`, `\`, controls,
    /// non-ASCII) are dropped, a value containing a space or comma is quoted,
    /// bytes not allowed in a path (`;`, controls, non-ASCII) are dropped.
    /// Returns `None` only when `name` is empty or not a token, where Go's
    /// `http.SetCookie` writes no header at all. Pure and cheap enough for the
    /// request path, but since nothing in it changes per request the table
    /// builder can precompute one header per server.
    #[must_use]
    pub fn set_cookie_header(&self, value: &str) -> Option<HeaderValue> {
        if self.name.is_empty() || !self.name.bytes().all(is_token_byte) {
            return None;
        }
        let mut out = String::with_capacity(self.name.len() + value.len() + self.path.len() + 110);
        out.push_str(&self.name);
        out.push('=');
        let quote = value.bytes().any(|b| b == b' ' || b == b',');
        if quote {
            out.push('"');
        }
        out.extend(
            value
                .chars()
                .filter(|&c| c.is_ascii() && is_cookie_value_byte(c as u8)),
        );
        if quote {
            out.push('"');
        }
        if !self.path.is_empty() {
            out.push_str("; Path=");
            out.extend(
                self.path
                    .chars()
                    .filter(|&c| c.is_ascii() && is_cookie_path_byte(c as u8)),
            );
        }
        if let Some(domain) = self.domain.as_deref() {
            if is_valid_cookie_domain(domain) {
                out.push_str("; Domain=");
                out.push_str(domain.strip_prefix('.').unwrap_or(domain));
            }
        }
        if let Some(expires) = self.expires {
            let secs = unix_seconds(expires);
            if secs >= SECONDS_1601_TO_1970_NEG {
                out.push_str("; Expires=");
                push_http_date(&mut out, secs);
            }
        }
        match self.max_age {
            Some(n) if n > 0 => {
                let _ = write!(out, "; Max-Age={n}");
            }
            Some(n) if n < 0 => out.push_str("; Max-Age=0"),
            _ => {}
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if self.secure {
            out.push_str("; Secure");
        }
        if let Some(same_site) = self.same_site {
            out.push_str(same_site.attribute());
        }
        // Every byte pushed is 0x20..=0x7e, which HeaderValue accepts.
        HeaderValue::try_from(out).ok()
    }
}

/// Finds the value of the first well-formed cookie called `name` in the
/// request's `Cookie` headers, as Go's `Request.Cookie` does.
///
/// Hot path; borrows from `headers`, no allocation. Walks every `Cookie`
/// header in order and splits each on `;`. Each pair is trimmed of spaces and
/// tabs, split at the first `=` (no `=` means an empty value), and its name
/// trimmed again; the value is not (Go's behaviour: `a = b` has value ` b`).
/// One pair of surrounding double quotes is stripped. A value with a byte Go
/// rejects (controls, `"`, `;`, `\`, non-ASCII) disqualifies that pair only,
/// so a later well-formed duplicate still counts. Returns `None` when `name`
/// is not a token, since Go would never match it.
#[must_use]
pub fn find_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return None;
    }
    let wanted = name.as_bytes();
    for line in headers.get_all(http::header::COOKIE) {
        for part in trim_ascii_ws(line.as_bytes()).split(|&b| b == b';') {
            let part = trim_ascii_ws(part);
            if part.is_empty() {
                continue;
            }
            let mut pair = part.splitn(2, |&b| b == b'=');
            let pair_name = pair.next().unwrap_or_default();
            let raw_value = pair.next().unwrap_or_default();
            if trim_ascii_ws(pair_name) != wanted {
                continue;
            }
            let unquoted = match raw_value {
                [b'"', inner @ .., b'"'] => inner,
                other => other,
            };
            if unquoted.iter().all(|&b| is_cookie_value_byte(b)) {
                // All bytes are ASCII, so this cannot fail.
                if let Ok(value) = std::str::from_utf8(unquoted) {
                    return Some(value);
                }
            }
        }
    }
    None
}

/// Go's `textproto.TrimString`: trims ASCII space, tab, CR and LF.
fn trim_ascii_ws(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

/// RFC 7230 `tchar` (Go's `httpguts.IsTokenRune` for ASCII).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Go's `validCookieValueByte`.
fn is_cookie_value_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b';' && b != b'\\'
}

/// Go's `validCookiePathByte`.
fn is_cookie_path_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b';'
}

/// Go's `validCookieDomain`: a domain name (optionally with a leading dot,
/// at least one letter, labels of 1–63 chars, no `_`) or an IPv4 address.
fn is_valid_cookie_domain(v: &str) -> bool {
    is_cookie_domain_name(v) || (!v.contains(':') && v.parse::<std::net::Ipv4Addr>().is_ok())
}

fn is_cookie_domain_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let s = s.strip_prefix('.').unwrap_or(s).as_bytes();
    let mut last = b'.';
    let mut has_letter = false;
    let mut part_len = 0usize;
    for &c in s {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {
                has_letter = true;
                part_len += 1;
            }
            b'0'..=b'9' => part_len += 1,
            b'-' => {
                if last == b'.' {
                    return false;
                }
                part_len += 1;
            }
            b'.' => {
                if last == b'.' || last == b'-' || part_len > 63 || part_len == 0 {
                    return false;
                }
                part_len = 0;
            }
            _ => return false,
        }
        last = c;
    }
    last != b'-' && part_len <= 63 && has_letter
}

/// Unix time of 1601-01-01T00:00:00Z, the earliest `Expires` Go writes.
const SECONDS_1601_TO_1970_NEG: i64 = -11_644_473_600;

/// Whole seconds since the Unix epoch, floored (Go formats the floor).
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -(secs.saturating_add(i64::from(d.subsec_nanos() > 0)))
        }
    }
}

/// Appends `secs` as Go's `http.TimeFormat`: `Mon, 02 Jan 2006 15:04:05 GMT`.
fn push_http_date(out: &mut String, secs: i64) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = usize::try_from(days.rem_euclid(7))
        .ok()
        .and_then(|d| DAYS.get(d))
        .map_or("Thu", |d| *d);
    let month_name = usize::try_from(month - 1)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .map_or("Jan", |m| *m);
    let _ = write!(
        out,
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// Days since 1970-01-01 → proleptic Gregorian (year, month 1–12, day 1–31).
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1 64 (Go's `hash/fnv.New64`): multiply, then xor.
fn fnv1_64(data: &[u8]) -> u64 {
    data.iter()
        .fold(FNV_OFFSET, |h, &b| h.wrapping_mul(FNV_PRIME) ^ u64::from(b))
}

/// FNV-1a 64 (Go's `hash/fnv.New64a`, segmentio `fnv1a.HashString64`): xor,
/// then multiply.
fn fnv1a_64(data: &[u8]) -> u64 {
    data.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// Go's `strconv.FormatUint(v, 16)`: lowercase, no leading zeros.
fn go_hex(v: u64) -> String {
    format!("{v:x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn cookie_value_vector() {
        assert_eq!(cookie_value("http://10.0.1.5:80"), "b4e215ace41bed91");
        // Traefik's sticky_test.go uses sha256Hash("first").
        assert_eq!(cookie_value("first"), "a7937b64b8caa58f");
    }

    #[test]
    fn default_cookie_name_vectors() {
        assert_eq!(default_cookie_name("app@file"), "_fb0b0");
        assert_eq!(default_cookie_name("whoami@docker"), "_633ff");
        // Traefik's own cookie_test.go vectors.
        assert_eq!(default_cookie_name("backend"), "_76eb3");
        assert_eq!(default_cookie_name("/my/BACKEND-v1.0~rc1"), "_5f7bc");
    }

    #[test]
    fn cookie_name_sanitizes_or_generates() {
        // Traefik's cookie_test.go.
        assert_eq!(cookie_name("", "/my/BACKEND-v1.0~rc1"), "_5f7bc");
        assert_eq!(
            cookie_name("/my/BACKEND-v1.0~rc1", ""),
            "_my_BACKEND-v1.0~rc1"
        );
        assert_eq!(cookie_name("cookie", "backend"), "cookie");
        assert_eq!(
            cookie_name("!#$%&'()*+-./:<=>?@[]^_`{|}~", "x"),
            "!#$%&'__*+-._________^_`_|_~"
        );
        // One `_` per character, not per byte.
        assert_eq!(cookie_name("é", "x"), "_");
    }

    #[test]
    fn fnv_variants_match_go() {
        assert_eq!(go_hex(fnv1_64(b"http://10.0.1.5:80")), "2ef3ad0b350e1800");
        assert_eq!(go_hex(fnv1a_64(b"http://10.0.1.5:80")), "63661225b6141ab2");
        assert_eq!(go_hex(fnv1_64(b"first")), "c0de9a9b8ec0e479");
        // No zero padding in Go's FormatUint.
        assert_eq!(go_hex(fnv1_64(b"http://10.0.0.62:80")), "1429805a9ab934");
        assert_eq!(go_hex(fnv1a_64(b"http://10.0.0.9:80")), "de6ced35fd9a75f");
    }

    #[test]
    fn table_resolves_every_format() {
        let urls = [
            "http://10.0.1.5:80",
            "http://10.0.0.9:80",
            "http://10.0.0.16:80",
        ];
        let t = StickyTable::new(&urls);
        assert_eq!(t.len(), 3);
        assert_eq!(t.value(0), Some("b4e215ace41bed91"));
        assert_eq!(t.value(3), None);
        let cases = [
            ("b4e215ace41bed91", (0, false)),
            ("http://10.0.1.5:80", (0, true)),
            ("2ef3ad0b350e1800", (0, true)),
            ("3e77b2f70335bb48", (0, true)),
            ("63661225b6141ab2", (0, true)),
            ("be10bad327f55687", (0, true)),
            // Unpadded FNV-1a (2.x) and FNV-1 over the *padded* FNV-1a (3.0–3.3.3).
            ("de6ced35fd9a75f", (1, true)),
            ("e825394c35e00d7e", (1, true)),
            // FNV-1 of FNV-1, and unpadded FNV-1a.
            ("54f821779ce60577", (2, true)),
            ("6db5b82e30fd4b", (2, true)),
        ];
        for (value, want) in cases {
            assert_eq!(t.lookup(value), Some(want), "{value}");
        }
        assert_eq!(t.lookup(&cookie_value("foo")), None);
        assert_eq!(t.lookup(""), None);
    }

    #[test]
    fn table_matches_traefik_sticky_test() {
        let t = StickyTable::new(&["first", "second"]);
        assert_eq!(t.lookup(&cookie_value("first")), Some((0, false)));
        assert_eq!(t.lookup("first"), Some((0, true)));
        assert_eq!(t.lookup(&go_hex(fnv1_64(b"first"))), Some((0, true)));
        assert_eq!(t.lookup(&cookie_value("foo")), None);
    }

    #[test]
    fn table_first_duplicate_wins_and_current_beats_legacy() {
        let t = StickyTable::new(&["a", "a"]);
        assert_eq!(t.lookup(&cookie_value("a")), Some((0, false)));
        // Server 1's *name* equals server 0's current value.
        let v0 = cookie_value("x");
        let t = StickyTable::new(&["x".to_owned(), v0.clone()]);
        assert_eq!(t.lookup(&v0), Some((0, false)));
        assert!(StickyTable::new::<&str>(&[]).is_empty());
    }

    fn spec() -> CookieSpec {
        CookieSpec::new("test")
    }

    fn header(spec: &CookieSpec, value: &str) -> String {
        spec.set_cookie_header(value)
            .map(|h| h.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn set_cookie_minimal() {
        assert_eq!(header(&spec(), "abc"), "test=abc; Path=/");
        let mut s = spec();
        s.path.clear();
        assert_eq!(header(&s, "abc"), "test=abc");
    }

    #[test]
    fn set_cookie_all_attributes_in_go_order() {
        // Traefik's TestSticky_WriteStickyCookie config, with a fixed Expires.
        let s = CookieSpec {
            name: "test".into(),
            secure: true,
            http_only: true,
            same_site: SameSite::from_traefik("none"),
            max_age: Some(42),
            path: "/foo".into(),
            domain: Some("foo.com".into()),
            expires: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        };
        assert_eq!(
            header(&s, "a7937b64b8caa58f"),
            "test=a7937b64b8caa58f; Path=/foo; Domain=foo.com; \
             Expires=Tue, 14 Nov 2023 22:13:20 GMT; Max-Age=42; HttpOnly; Secure; SameSite=None"
        );
    }

    #[test]
    fn set_cookie_max_age_semantics() {
        let mut s = spec();
        s.max_age = Some(0);
        assert_eq!(header(&s, "v"), "test=v; Path=/");
        s.max_age = Some(-1);
        assert_eq!(header(&s, "v"), "test=v; Path=/; Max-Age=0");
        s.max_age = Some(3600);
        assert_eq!(header(&s, "v"), "test=v; Path=/; Max-Age=3600");
    }

    #[test]
    fn set_cookie_same_site_spelling() {
        for (input, attr) in [
            ("lax", "; SameSite=Lax"),
            ("LAX", "; SameSite=Lax"),
            ("Strict", "; SameSite=Strict"),
            ("NONE", "; SameSite=None"),
            ("", ""),
            ("invalid", ""),
        ] {
            let mut s = spec();
            s.same_site = SameSite::from_traefik(input);
            assert_eq!(header(&s, "v"), format!("test=v; Path=/{attr}"), "{input}");
        }
    }

    #[test]
    fn set_cookie_domain_rules() {
        let mut s = spec();
        for (domain, want) in [
            (".example.com", "; Domain=example.com"),
            ("10.0.0.1", "; Domain=10.0.0.1"),
            ("bad_domain.com", ""),
            ("::1", ""),
            ("-x.com", ""),
            ("a..b", ""),
            ("", ""),
        ] {
            s.domain = Some(domain.into());
            assert_eq!(header(&s, "v"), format!("test=v; Path=/{want}"), "{domain}");
        }
    }

    #[test]
    fn set_cookie_sanitizes_like_go() {
        let mut s = spec();
        assert_eq!(header(&s, "a b"), "test=\"a b\"; Path=/");
        assert_eq!(header(&s, "a,b"), "test=\"a,b\"; Path=/");
        assert_eq!(header(&s, "a;\"\\é\u{7f}b"), "test=ab; Path=/");
        s.path = "/a;b\u{1}".into();
        assert_eq!(header(&s, "v"), "test=v; Path=/ab");
        s.name = "bad name".into();
        assert!(s.set_cookie_header("v").is_none());
        s.name.clear();
        assert!(s.set_cookie_header("v").is_none());
    }

    #[test]
    fn set_cookie_expires_limits() {
        let mut s = spec();
        s.expires = Some(UNIX_EPOCH);
        assert_eq!(
            header(&s, "v"),
            "test=v; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
        s.expires = Some(UNIX_EPOCH - Duration::from_millis(500));
        assert_eq!(
            header(&s, "v"),
            "test=v; Path=/; Expires=Wed, 31 Dec 1969 23:59:59 GMT"
        );
        // 1601-01-01 is written, one second earlier is not.
        s.expires = Some(UNIX_EPOCH - Duration::from_secs(11_644_473_600));
        assert_eq!(
            header(&s, "v"),
            "test=v; Path=/; Expires=Mon, 01 Jan 1601 00:00:00 GMT"
        );
        s.expires = Some(UNIX_EPOCH - Duration::from_secs(11_644_473_601));
        assert_eq!(header(&s, "v"), "test=v; Path=/");
        // Leap day.
        s.expires = Some(UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(
            header(&s, "v"),
            "test=v; Path=/; Expires=Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    fn cookies(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(
                http::header::COOKIE,
                HeaderValue::from_str(l).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn find_cookie_like_go() {
        let h = cookies(&["a=1; _fb0b0=b4e215ace41bed91; c=3"]);
        assert_eq!(find_cookie(&h, "_fb0b0"), Some("b4e215ace41bed91"));
        assert_eq!(find_cookie(&h, "missing"), None);
        // Several headers; quotes stripped; first well-formed match wins.
        let h = cookies(&["x=1", "  s=\"quoted\" ;s=second"]);
        assert_eq!(find_cookie(&h, "s"), Some("quoted"));
        // Go trims the name but not the value: ` "q"` keeps its quotes and is
        // rejected, so the later pair wins.
        let h = cookies(&["s = \"q\"; s=second"]);
        assert_eq!(find_cookie(&h, "s"), Some("second"));
        // Malformed value skipped, later duplicate used.
        let h = cookies(&["s=a\\b; s=good"]);
        assert_eq!(find_cookie(&h, "s"), Some("good"));
        // No '=' means empty value; empty parts are skipped.
        let h = cookies(&[";;s;"]);
        assert_eq!(find_cookie(&h, "s"), Some(""));
        // A lone quote is not stripped and is invalid.
        let h = cookies(&["s=\""]);
        assert_eq!(find_cookie(&h, "s"), None);
        // Invalid wanted name never matches.
        let h = cookies(&["a b=1"]);
        assert_eq!(find_cookie(&h, "a b"), None);
        // Non-ASCII in one pair does not hide others.
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            HeaderValue::from_bytes(b"z=\xff; s=ok").unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(find_cookie(&h, "s"), Some("ok"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn find_cookie_never_panics(line in "[ -~]{0,64}", name in "[a-z_]{1,4}") {
            if let Ok(v) = HeaderValue::from_str(&line) {
                let mut h = HeaderMap::new();
                h.insert(http::header::COOKIE, v);
                let _ = find_cookie(&h, &name);
            }
        }

        #[test]
        fn set_cookie_roundtrips_through_find_cookie(value in "[!#-+\\--:<-\\[\\]-~]{0,32}") {
            let s = spec();
            let set = s.set_cookie_header(&value);
            prop_assert!(set.is_some());
            let cookie_pair = format!("test={value}");
            let h = cookies(&[&cookie_pair]);
            prop_assert_eq!(find_cookie(&h, "test"), Some(value.as_str()));
        }

        #[test]
        fn http_date_matches_days_roundtrip(secs in -11_644_473_600i64..253_402_300_799i64) {
            let mut s = String::new();
            push_http_date(&mut s, secs);
            prop_assert_eq!(s.len(), 29);
            prop_assert!(s.ends_with(" GMT"));
        }
    }
}
