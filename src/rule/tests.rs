//! Table-driven tests for the rule language. Most rows restate cases from Traefik's own test
//! files (`pkg/muxer/http/matcher_test.go`, `matcher_v2_test.go`, `mux_test.go`,
//! `pkg/rules/parser_test.go`, `pkg/muxer/tcp/*_test.go`) as (rule, request, expected) rows;
//! the rest pin down the quirks documented in the module (routing-path decoding, Go regex
//! dialect, v2 first-query-value, `Header(`Host`, …)`).

use super::*;
use ::http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;
use std::borrow::Cow;
use std::net::IpAddr;

const V2: Syntax = Syntax::V2;
const V3: Syntax = Syntax::V3;

/// An owned request from which a [`RequestView`] is borrowed.
struct Req {
    host: String,
    path: String,
    query: Option<String>,
    method: Method,
    headers: HeaderMap,
    ip: IpAddr,
}

impl Req {
    /// From an absolute URL such as `https://Example.com:8080/a/b?q=1`.
    fn url(url: &str) -> Req {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .unwrap_or(url);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (target, None),
        };
        Req {
            host: normalize_host(authority).into_owned(),
            path: if path.is_empty() { "/" } else { path }.to_owned(),
            query,
            method: Method::GET,
            headers: HeaderMap::new(),
            ip: "127.0.0.1".parse().unwrap(),
        }
    }

    fn method(mut self, m: &str) -> Req {
        self.method = Method::from_bytes(m.as_bytes()).unwrap();
        self
    }

    fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        self
    }

    fn ip(mut self, ip: &str) -> Req {
        self.ip = ip.parse().unwrap();
        self
    }

    fn view(&self) -> RequestView<'_> {
        RequestView {
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            method: &self.method,
            headers: &self.headers,
            client_ip: self.ip,
        }
    }
}

/// Runs `(syntax, rule, request, expected)` rows and reports every failing row at once.
fn check_rows(rows: &[(Syntax, &str, Req, bool)]) {
    let mut failures = Vec::new();
    for (syntax, rule, req, want) in rows {
        match parse(rule, *syntax) {
            Ok(r) => {
                let got = r.matches(&req.view());
                if got != *want {
                    failures.push(format!(
                        "{syntax} {rule} on host={:?} path={:?} query={:?} method={} headers={:?} ip={}: got {got}, want {want}",
                        req.host, req.path, req.query, req.method, req.headers, req.ip
                    ));
                }
            }
            Err(e) => failures.push(format!("{syntax} {rule}: unexpected error {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing rows:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `(syntax, rule, [(url, expected)])`: one rule tried on several URLs.
type UrlGroup<'a> = (Syntax, &'a str, &'a [(&'a str, bool)]);

/// Expands [`UrlGroup`]s into rows and checks them.
fn check_urls(groups: &[UrlGroup<'_>]) {
    let rows: Vec<(Syntax, &str, Req, bool)> = groups
        .iter()
        .flat_map(|(s, rule, urls)| {
            urls.iter()
                .map(move |(u, want)| (*s, *rule, Req::url(u), *want))
        })
        .collect();
    check_rows(&rows);
}

#[test]
fn v3_host() {
    check_urls(&[
        (
            V3,
            "Host(`example.com`)",
            &[
                ("https://example.com", true),
                ("https://example.com:8080", true),
                ("https://example.com/path", true),
                ("https://EXAMPLE.COM/path", true),
                ("https://example.org", false),
                ("https://example.org/path", false),
                ("https://example.com.", true),
                ("https://example.com./path", true),
                ("https://example.org.", false),
                ("https://sub.example.com", false),
                ("http://", false),
            ],
        ),
        (
            V3,
            "Host(`example.com.`)",
            &[
                ("https://example.com", true),
                ("https://example.com.", true),
                ("https://example.org.", false),
            ],
        ),
        (
            V3,
            "Host(`EXAMPLE.COM`)",
            &[
                ("https://example.com", true),
                ("https://example.org", false),
            ],
        ),
        (
            V3,
            "Host(`xn--9t9h.com`)",
            &[
                ("https://xn--9t9h.com/path", true),
                ("https://example.com", false),
                ("https://🦭.com", false),
            ],
        ),
        (
            V3,
            "Host(`*.example.com`)",
            &[
                ("https://test.example.com", true),
                ("https://OTHER.example.com", true),
                ("https://example.com", false),
                ("https://test.otherexample.com", false),
                ("https://a.b.example.com", false),
            ],
        ),
        (
            V3,
            "Host(`*`)",
            &[
                ("https://test.example.com", true),
                ("https://localhost", true),
                ("http://", true),
            ],
        ),
        (
            V3,
            "Host(`localhost`)",
            &[
                ("http://localhost/foo", true),
                ("http://localhost./foo", true),
            ],
        ),
        (
            V3,
            "Host(`localhost.`)",
            &[
                ("http://localhost/foo", true),
                ("http://localhost./foo", true),
            ],
        ),
        (
            V3,
            "Host(`127.0.0.1`)",
            &[
                ("http://127.0.0.1/foo", true),
                ("http://127.0.0.1:8080/foo", true),
            ],
        ),
        (
            V3,
            "Host(`10::10`)",
            &[
                ("http://[10::10]/foo", true),
                ("http://[10::10]:80/foo", true),
            ],
        ),
        (V3, "Host(`.`)", &[("http://", false), ("http://a", false)]),
        (V3, "Host(`a`,)", &[("http://a", true)]),
        (V3, "Host(`a\r`)", &[("http://a", true)]),
        (
            V3,
            "Host(\"\\x61\") || Host(\"q\\\"\")",
            &[("http://a", true)],
        ),
    ]);
}

#[test]
fn v3_host_regexp() {
    check_urls(&[
        (
            V3,
            r"HostRegexp(`^[a-zA-Z-]+\.com$`)",
            &[
                ("https://example.com", true),
                ("https://example.com:8080", true),
                ("https://example.com/path", true),
                ("https://example.org", false),
            ],
        ),
        // The request host is lower-cased before matching, so upper-case classes never match.
        (
            V3,
            r"HostRegexp(`^[A-Z]+\.com$`)",
            &[
                ("https://EXAMPLE.com", false),
                ("https://example.com", false),
            ],
        ),
        // A v2 template in a v3 rule: braces are literal in Go regexps, so this never matches.
        (
            V3,
            r"HostRegexp(`{domain:[a-zA-Z-]+\.com}`)",
            &[("https://example.com", false)],
        ),
        // Unanchored, like Go's MatchString.
        (
            V3,
            r"HostRegexp(`example`)",
            &[
                ("https://www.example.org", true),
                ("https://exampl.com", false),
            ],
        ),
        (
            V3,
            r"HostRegexp(`^(?i)[A-Z]+\.com$`)",
            &[("https://EXAMPLE.com", true)],
        ),
        (
            V3,
            r"HostRegexp(`^(.+\.)?example\.com$`)",
            &[
                ("https://example.com", true),
                ("https://a.b.example.com", true),
                ("https://a.example.com.evil.net", false),
            ],
        ),
    ]);
}

#[test]
fn v3_path() {
    check_urls(&[
        (
            V3,
            "Path(`/css`)",
            &[
                ("https://example.com", false),
                ("https://example.com/html", false),
                ("https://example.org/css", true),
                ("https://example.com/css", true),
                ("https://example.com/css/", false),
                ("https://example.com/css/main.css", false),
                ("https://example.com/css?x=1", true),
            ],
        ),
        (
            V3,
            "PathRegexp(`^/(css|js)`)",
            &[
                ("https://example.com", false),
                ("https://example.com/html", false),
                ("https://example.org/css", true),
                ("https://example.com/CSS", false),
                ("https://example.com/css/", true),
                ("https://example.com/css/main.css", true),
                ("https://example.com/js", true),
                ("https://example.com/js/main.js", true),
            ],
        ),
        (
            V3,
            r#"PathRegexp("/{path:(css|js)}")"#,
            &[
                ("https://example.com", false),
                ("https://example.org/css", false),
                ("https://example.com/{path:css}", true),
                ("https://example.com/{path:css}/", true),
                ("https://example.com/%7Bpath:css%7D", true),
                ("https://example.com/%7Bpath:js%7D/", true),
            ],
        ),
        (
            V3,
            r#"PathPrefix("/css")"#,
            &[
                ("https://example.com", false),
                ("https://example.com/html", false),
                ("https://example.org/css", true),
                ("https://example.com/css/", true),
                ("https://example.com/css/main.css", true),
                ("https://example.com/cssfoo", true),
            ],
        ),
        (
            V3,
            "PathPrefix(`/`)",
            &[
                ("https://example.com", true),
                ("https://example.com/a", true),
            ],
        ),
        // Routing path: unreserved escapes are decoded before matching...
        (
            V3,
            "PathPrefix(`/foo bar`)",
            &[
                ("http://h/foo%20bar/x", true),
                ("http://h/foo%2520bar", false),
            ],
        ),
        (V3, "Path(`/foo bar`)", &[("http://h/foo%20bar", true)]),
        (V3, "Path(`/foo%20bar`)", &[("http://h/foo%20bar", false)]),
        (
            V3,
            "Path(`/abc`)",
            &[("http://h/%61bc", true), ("http://h/a%62c", true)],
        ),
        // ...reserved ones (upper-case spelling only) stay encoded.
        (
            V3,
            "Path(`/foo%2Fbar`)",
            &[("http://h/foo%2Fbar", true), ("http://h/foo/bar", false)],
        ),
        (
            V3,
            "Path(`/foo/bar`)",
            &[("http://h/foo%2Fbar", false), ("http://h/foo%2fbar", true)],
        ),
        (
            V3,
            "PathPrefix(`/a%3Fb`)",
            &[("http://h/a%3Fb/c", true), ("http://h/a?b", false)],
        ),
        (
            V3,
            "PathRegexp(`^/foo bar$`)",
            &[("http://h/foo%20bar", true), ("http://h/foo+bar", false)],
        ),
        (V3, "PathRegexp(`^/a%2Fb$`)", &[("http://h/a%2Fb", true)]),
        // A stray `%` is compared literally (the proxy answers 400 first, as Traefik does).
        (V3, "Path(`/a%zz`)", &[("http://h/a%zz", true)]),
        (
            V3,
            "PathPrefix(`/a%`)",
            &[("http://h/a%", true), ("http://h/a%4", true)],
        ),
    ]);
}

#[test]
fn v3_query() {
    check_urls(&[
        (
            V3,
            "Query(`q`, `traefik`)",
            &[
                ("https://example.com", false),
                ("https://example.com?q=traefik", true),
                ("https://example.com?rel=ddg&q=traefik", true),
                ("https://example.com?q=traefik&q=proxy", true),
                ("https://example.com?q=awesome&q=traefik", true),
                ("https://example.com?q=nginx", false),
                ("https://example.com?rel=ddg", false),
                ("https://example.com?q=TRAEFIK", false),
                ("https://example.com?Q=traefik", false),
                ("https://example.com?rel=traefik", false),
                ("https://example.com?%71=tra%65fik", true),
                ("https://example.com?q=traefik;x=1", false),
                ("https://example.com?q=%zz&q=traefik", true),
                ("https://example.com?q=traefik&", true),
                ("https://example.com?&&q=traefik", true),
            ],
        ),
        (
            V3,
            "Query(`mobile`)",
            &[
                ("https://example.com", false),
                ("https://example.com?mobile", true),
                ("https://example.com?mobile=", true),
                ("https://example.com?mobile=true", false),
                ("https://example.com?mobile=true&mobile", true),
            ],
        ),
        (
            V3,
            "Query(`q`, `a b`)",
            &[
                ("http://h?q=a+b", true),
                ("http://h?q=a%20b", true),
                ("http://h?q=a%2Bb", false),
            ],
        ),
        (V3, "Query(`a b`, `c`)", &[("http://h?a+b=c", true)]),
        (
            V3,
            "QueryRegexp(`q`, `^(traefik|nginx)$`)",
            &[
                ("https://example.com", false),
                ("https://example.com?q=traefik", true),
                ("https://example.com?rel=ddg&q=traefik", true),
                ("https://example.com?q=traefik&q=proxy", true),
                ("https://example.com?q=awesome&q=traefik", true),
                ("https://example.com?q=TRAEFIK", false),
                ("https://example.com?Q=traefik", false),
                ("https://example.com?rel=traefik", false),
                ("https://example.com?q=nginx", true),
                ("https://example.com?q=awesome&q=nginx", true),
                ("https://example.com?q=NGINX", false),
                ("https://example.com?q=haproxy", false),
                ("https://example.com?q=ngin%78", true),
                ("https://example.com?q=nginx%zz", false),
            ],
        ),
        (
            V3,
            "QueryRegexp(`q`, `^.*$`)",
            &[
                ("https://example.com", false),
                ("https://example.com?q=traefik", true),
                ("https://example.com?q=TRAEFIK", true),
                ("https://example.com?Q=nginx", false),
                ("https://example.com?rel=ddg", false),
                ("https://example.com?q", true),
            ],
        ),
        (
            V3,
            "QueryRegexp(`q`, `{value:(traefik|nginx)}`)",
            &[
                ("https://example.com?q=traefik", false),
                ("https://example.com?q={value:traefik}", true),
            ],
        ),
        (
            V3,
            "QueryRegexp(`mobile`)",
            &[("http://h?mobile", true), ("http://h?mobile=1", false)],
        ),
    ]);
}

#[test]
fn v3_method_header_client_ip() {
    check_rows(&[
        (V3, "Method(`GET`)", Req::url("https://example.com"), true),
        (
            V3,
            "Method(`GET`)",
            Req::url("https://example.com").method("POST"),
            false,
        ),
        (
            V3,
            "Method(`GET`)",
            Req::url("https://example.com").method("get"),
            false,
        ),
        (V3, "Method(`get`)", Req::url("https://example.com"), true),
        (
            V3,
            "Method(`get`)",
            Req::url("https://example.com").method("get"),
            false,
        ),
        (
            V3,
            "Method(`PURGE`)",
            Req::url("https://example.com").method("PURGE"),
            true,
        ),
        (
            V3,
            "Header(`X-Forwarded-Proto`, `https`)",
            Req::url("http://h").header("X-Forwarded-Proto", "https"),
            true,
        ),
        (
            V3,
            "Header(`x-forwarded-proto`, `https`)",
            Req::url("http://h").header("X-Forwarded-Proto", "https"),
            true,
        ),
        (
            V3,
            "Header(`X-Forwarded-Proto`, `https`)",
            Req::url("http://h")
                .header("X-Forwarded-Proto", "http")
                .header("X-Forwarded-Proto", "https"),
            true,
        ),
        (
            V3,
            "Header(`X-Forwarded-Proto`, `https`)",
            Req::url("http://h")
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-Proto", "http"),
            true,
        ),
        (
            V3,
            "Header(`X-Forwarded-Proto`, `https`)",
            Req::url("http://h").header("X-Forwarded-Host", "example.com"),
            false,
        ),
        (
            V3,
            "Header(`X-Forwarded-Proto`, `https`)",
            Req::url("http://h").header("X-Forwarded-Proto", "HTTPS"),
            false,
        ),
        // Values are compared whole: no splitting on commas.
        (
            V3,
            "Header(`Accept`, `a`)",
            Req::url("http://h").header("Accept", "a, b"),
            false,
        ),
        (
            V3,
            "Header(`Accept`, `a, b`)",
            Req::url("http://h").header("Accept", "a, b"),
            true,
        ),
        // Go moves `Host` out of the header map: Traefik never matches it with Header.
        (
            V3,
            "Header(`Host`, `example.com`)",
            Req::url("http://example.com").header("Host", "example.com"),
            false,
        ),
        (V3, "Header(`bad name`, `x`)", Req::url("http://h"), false),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `^https?$`)",
            Req::url("http://h").header("X-Forwarded-Proto", "http"),
            true,
        ),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `^https?$`)",
            Req::url("http://h").header("X-Forwarded-Proto", "https"),
            true,
        ),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `^https?$`)",
            Req::url("http://h").header("X-Forwarded-Proto", "HTTPS"),
            false,
        ),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `^https?$`)",
            Req::url("http://h")
                .header("X-Forwarded-Proto", "ws")
                .header("X-Forwarded-Proto", "https"),
            true,
        ),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `^https?$`)",
            Req::url("http://h").header("X-Forwarded-Host", "example.com"),
            false,
        ),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)",
            Req::url("http://h").header("X-Forwarded-Proto", "http"),
            false,
        ),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)",
            Req::url("http://h").header("X-Forwarded-Proto", "https"),
            false,
        ),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)",
            Req::url("http://h").header("X-Forwarded-Proto", "http{secure:}"),
            true,
        ),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)",
            Req::url("http://h").header("X-Forwarded-Proto", "http{secure:s}"),
            true,
        ),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)",
            Req::url("http://h").header("X-Forwarded-Proto", "http{secure:S}"),
            false,
        ),
        (
            V3,
            "HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)",
            Req::url("http://h").header("X-Forwarded-Proto", "HTTP{secure:}"),
            false,
        ),
        (
            V3,
            "HeaderRegexp(`User-Agent`, `Mobile`)",
            Req::url("http://h").header("User-Agent", "Foo Mobile/1"),
            true,
        ),
        (
            V3,
            "ClientIP(`127.0.0.1`)",
            Req::url("https://example.com").ip("127.0.0.1"),
            true,
        ),
        (
            V3,
            "ClientIP(`127.0.0.1`)",
            Req::url("https://example.com").ip("192.168.1.1"),
            false,
        ),
        (
            V3,
            "ClientIP(`192.168.1.0/24`)",
            Req::url("https://example.com").ip("192.168.1.1"),
            true,
        ),
        (
            V3,
            "ClientIP(`192.168.1.0/24`)",
            Req::url("https://example.com").ip("192.168.1.100"),
            true,
        ),
        (
            V3,
            "ClientIP(`192.168.1.0/24`)",
            Req::url("https://example.com").ip("192.168.2.1"),
            false,
        ),
        (
            V3,
            "ClientIP(`192.168.1.7/24`)",
            Req::url("https://example.com").ip("192.168.1.200"),
            true,
        ),
        (
            V3,
            "ClientIP(`10::10`)",
            Req::url("http://h").ip("10::10"),
            true,
        ),
        (
            V3,
            "ClientIP(`10::10`)",
            Req::url("http://h").ip("::1"),
            false,
        ),
        (
            V3,
            "ClientIP(`10::/16`)",
            Req::url("http://h").ip("10::10"),
            true,
        ),
        (
            V3,
            "ClientIP(`11::/16`)",
            Req::url("http://h").ip("10::"),
            false,
        ),
        // IPv4-mapped IPv6 and IPv4 are the same address, as in Go.
        (
            V3,
            "ClientIP(`10.0.0.0/8`)",
            Req::url("http://h").ip("::ffff:10.1.2.3"),
            true,
        ),
        (
            V3,
            "ClientIP(`::ffff:10.1.2.3`)",
            Req::url("http://h").ip("10.1.2.3"),
            true,
        ),
        (
            V3,
            "ClientIP(`::ffff:0:0/96`)",
            Req::url("http://h").ip("10.1.2.3"),
            true,
        ),
        (
            V3,
            "ClientIP(`10.0.0.0/8`)",
            Req::url("http://h").ip("::1"),
            false,
        ),
    ]);
}

#[test]
fn v3_operators() {
    check_urls(&[
        (
            V3,
            "Host(`localhost`) && PathPrefix(`/css`)",
            &[
                ("https://localhost/css", true),
                ("https://localhost/js", false),
                ("https://other/css", false),
            ],
        ),
        (
            V3,
            "Host(`example.com`) || Host(`example.org`)",
            &[
                ("https://example.com/css", true),
                ("https://example.org/js", true),
                ("https://example.eu/html", false),
            ],
        ),
        (
            V3,
            r#"Host("example.com") || (Host("example.org") && Path("/css"))"#,
            &[
                ("https://example.com/css", true),
                ("https://example.com/js", true),
                ("https://example.org/css", true),
                ("https://example.org/js", false),
                ("https://example.eu/css", false),
            ],
        ),
        // `&&` binds tighter than `||`.
        (
            V3,
            r#"Host("example.com") || Host("example.org") && Path("/css")"#,
            &[
                ("https://example.com/css", true),
                ("https://example.com/js", true),
                ("https://example.org/css", true),
                ("https://example.org/js", false),
                ("https://example.eu/css", false),
            ],
        ),
        (
            V3,
            r#"(Host("example.com") || Host("example.org")) && Path("/css")"#,
            &[
                ("https://example.com/css", true),
                ("https://example.com/js", false),
                ("https://example.org/css", true),
                ("https://example.org/js", false),
            ],
        ),
        (
            V3,
            r#"(Host("example.com") && Path("/js")) || ((Host("example.org")) && Path("/css"))"#,
            &[
                ("https://example.com/css", false),
                ("https://example.com/js", true),
                ("https://example.org/css", true),
                ("https://example.org/js", false),
            ],
        ),
        (
            V3,
            r#"PATHPREFIX("/css")"#,
            &[
                ("https://example.com/css", true),
                ("https://example.com/js", false),
            ],
        ),
        (
            V3,
            r#"pathprefix("/css")"#,
            &[
                ("https://example.com/css", true),
                ("https://example.com/js", false),
            ],
        ),
        (
            V3,
            r#"Pathprefix("/css")"#,
            &[
                ("https://example.com/css", true),
                ("https://example.com/js", false),
            ],
        ),
        (
            V3,
            r#"!Host("example.com")"#,
            &[
                ("https://example.org", true),
                ("https://example.com", false),
            ],
        ),
        (
            V3,
            r#"!(Host("example.com") || Host("example.org"))"#,
            &[
                ("https://example.eu/js", true),
                ("https://example.com/css", false),
                ("https://example.org/js", false),
            ],
        ),
        (
            V3,
            r#"!(Host("example.com") && Path("/css"))"#,
            &[
                ("https://example.com/js", true),
                ("https://example.eu/css", true),
                ("https://example.com/css", false),
            ],
        ),
        (
            V3,
            r#"!(Host("example.com") && !Path("/css"))"#,
            &[
                ("https://example.com/css", true),
                ("https://example.org/css", true),
                ("https://example.com/js", false),
            ],
        ),
        (
            V3,
            r#"!Host("example.com") || !Path("/css")"#,
            &[
                ("https://example.com/js", true),
                ("https://example.org/css", true),
                ("https://example.com/css", false),
            ],
        ),
        (
            V3,
            r#"!(!(Host("example.com") && Pathprefix("/css")))"#,
            &[
                ("https://example.com/css", true),
                ("https://example.com/js", false),
                ("https://example.org/css", false),
            ],
        ),
        // `!` binds tighter than `&&`.
        (
            V3,
            r#"!Host("example.com") && Pathprefix("/css")"#,
            &[
                ("https://example.org/css", true),
                ("https://example.org/js", false),
                ("https://example.com/css", false),
                ("https://example.com/js", false),
            ],
        ),
        (
            V3,
            "!!!Host(`a`)",
            &[("http://a", false), ("http://b", true)],
        ),
        (
            V3,
            "\n\tHost(`a`)\r\n&&\nPath(`/`)\n",
            &[("http://a/", true), ("http://a/x", false)],
        ),
        (
            V3,
            "Host(\"\\x61\") && Path(\"/\\u00e9\")",
            &[("http://a/%C3%A9", true)],
        ),
        (
            V3,
            "Host(`a`) && Host(`b`)",
            &[("http://a", false), ("http://b", false)],
        ),
    ]);
}

#[test]
fn v2_host_path_query() {
    check_urls(&[
        (
            V2,
            "Host(`example.com`, `example.org`)",
            &[
                ("https://example.com", true),
                ("https://example.com:8080", true),
                ("https://EXAMPLE.COM/path", true),
                ("https://example.org/path", true),
                ("https://example.net", false),
            ],
        ),
        (
            V2,
            "Host(`example.com.`)",
            &[
                ("https://example.com", true),
                ("https://example.com.", true),
                ("https://example.org.", false),
            ],
        ),
        (V2, "Host(`EXAMPLE.COM`)", &[("https://example.com", true)]),
        (
            V2,
            "Host(`xn--9t9h.com`)",
            &[("https://xn--9t9h.com", true), ("https://🦭.com", false)],
        ),
        // v2 Host has no wildcard: `*` is literal.
        (
            V2,
            "Host(`*.example.com`)",
            &[("https://a.example.com", false)],
        ),
        (
            V2,
            "HostHeader(`localhost`)",
            &[("http://localhost/foo", true), ("http://bar/foo", false)],
        ),
        (
            V2,
            "Host(`nope`,`localhost`) && PathPrefix(`/foo`)",
            &[
                ("http://localhost/foo", true),
                ("http://nope/foo", true),
                ("http://nope/bar", false),
            ],
        ),
        (
            V2,
            "Host(`nope,localhost`) && PathPrefix(`/bar`)",
            &[("http://localhost/foo", false)],
        ),
        (
            V2,
            r"HostRegexp(`{subdomain:(foo\.)?bar\.com}`)",
            &[
                ("http://foo.bar.com", true),
                ("http://bar.com", true),
                ("http://fooubar.com", false),
                ("http://barucom", false),
                ("http://barcom", false),
            ],
        ),
        (
            V2,
            r"HostRegexp(`{subdomain:(?:foo\.)?bar\.com}`)",
            &[
                ("http://foo.bar.com", true),
                ("http://bar.com", true),
                ("http://fooubar.com", false),
            ],
        ),
        (
            V2,
            r"HostRegexp(`{dummy:[A-Za-z-]+\.bar\.com}`)",
            &[
                ("http://FOO.bar.com", true),
                ("http://foo.bar.com", true),
                ("http://fooubar.com", false),
            ],
        ),
        (
            V2,
            r"HostRegexp(`{dummy:[a-z-]+\.bar\.com}`)",
            &[("http://FOO.bar.com", true), ("http://barcom", false)],
        ),
        (
            V2,
            "HostRegexp(`foo.bar.com`)",
            &[
                ("http://FOO.bar.com", true),
                ("http://foo.bar.com", true),
                ("http://fooubar.com", false),
            ],
        ),
        // Outside braces a template is literal, so a regex-looking value is valid and literal.
        (
            V2,
            "HostRegexp(`(example.com`)",
            &[
                ("https://example.com", false),
                ("https://example.org", false),
            ],
        ),
        (
            V2,
            r"HostRegexp(`^[A-Z]+\.com$`)",
            &[
                ("https://example.com", false),
                ("https://EXAMPLE.com", false),
            ],
        ),
        (
            V2,
            "HostRegexp(`example.com`, `example.org`)",
            &[
                ("https://example.com", true),
                ("https://example.com:8080", true),
                ("https://example.org/path", true),
                ("https://example.net", false),
            ],
        ),
        (
            V2,
            r"HostRegexp(`{domain:[a-zA-Z-]+\.com}`)",
            &[
                ("https://example.com", true),
                ("https://example.com/path", true),
                ("https://example.org", false),
            ],
        ),
        (
            V2,
            "HostRegexp(`{sub}.example.com`)",
            &[
                ("https://a.example.com", true),
                ("https://a.b.example.com", false),
                ("https://example.com", false),
            ],
        ),
        (
            V2,
            "Path(`/css`, `/js`)",
            &[
                ("https://example.com", false),
                ("https://example.com/html", false),
                ("https://example.org/css", true),
                ("https://example.com/css/", false),
                ("https://example.com/css/main.css", false),
                ("https://example.com/js", true),
                ("https://example.com/js/main.js", false),
            ],
        ),
        (
            V2,
            "Path(`/css{path:(/.*)?}`)",
            &[
                ("https://example.com", false),
                ("https://example.com/css/main.css", true),
                ("https://example.org/css/main.css", true),
                ("https://example.com/css/components/component.css", true),
                ("https://example.com/css.css", false),
                ("https://example.com/js/main.js", false),
            ],
        ),
        (
            V2,
            "Path(`/user/{id}`)",
            &[
                ("http://h/user/42", true),
                ("http://h/user/42/x", false),
                ("http://h/user/", false),
            ],
        ),
        (
            V2,
            "PathPrefix(`/css`, `/js`)",
            &[
                ("https://example.com", false),
                ("https://example.com/html", false),
                ("https://example.org/css", true),
                ("https://example.com/css/main.css", true),
                ("https://example.com/js/", true),
                ("https://example.com/js/main.js", true),
            ],
        ),
        (
            V2,
            "PathPrefix(`/css-{name:[0-9]?}`)",
            &[
                ("https://example.com", false),
                ("https://example.com/css-1/main.css", true),
                ("https://example.org/css-222/main.css", true),
                (
                    "https://example.com/css-333333/components/component.css",
                    true,
                ),
                ("https://example.com/css.css", false),
                ("https://example.com/js/main.js", false),
            ],
        ),
        (
            V2,
            "PathPrefix(`/a.b`)",
            &[("http://h/a.b/c", true), ("http://h/axb", false)],
        ),
        (
            V2,
            "PathPrefix(`/foo bar`)",
            &[("http://h/foo%20bar", true)],
        ),
        (
            V2,
            "Query(`foo=bar`, `bar=baz`)",
            &[
                ("http://localhost/foo?foo=bar&bar=baz", true),
                ("http://localhost/foo?bar=baz", false),
            ],
        ),
        (
            V2,
            "Query(`foo=b=ar`)",
            &[
                ("http://localhost/foo?foo=b=ar", true),
                ("http://localhost/foo?foo=bar", false),
            ],
        ),
        // gorilla/mux reads only the first value of a key.
        (
            V2,
            "Query(`foo=bar`)",
            &[
                ("http://h?foo=bar&foo=baz", true),
                ("http://h?foo=baz&foo=bar", false),
                ("http://h?foo=%zz&foo=bar", true),
                ("http://h?foo=b%61r", true),
                ("http://h", false),
            ],
        ),
        (
            V2,
            "Query(`foo=`)",
            &[
                ("http://h?foo=x", true),
                ("http://h?foo", true),
                ("http://h?bar=x", false),
            ],
        ),
        (
            V2,
            "Query(`id={id:[0-9]+}`)",
            &[
                ("http://h?id=42", true),
                ("http://h?id=x42", false),
                ("http://h?id=x&id=42", false),
            ],
        ),
        (
            V2,
            "Query(`q={v}`)",
            &[
                ("http://h?q=anything", true),
                ("http://h?q=", true),
                ("http://h?p=1", false),
            ],
        ),
        // `Query(`a`, `b`)` pairs the two pieces up: it means a=b.
        (
            V2,
            "Query(`a`, `b`)",
            &[("http://h?a=b", true), ("http://h?a=c", false)],
        ),
    ]);
}

#[test]
fn v2_method_headers_client_ip_operators() {
    check_rows(&[
        (V2, "Method(`GET`, `POST`)", Req::url("http://h"), true),
        (
            V2,
            "Method(`GET`, `POST`)",
            Req::url("http://h").method("POST"),
            true,
        ),
        (
            V2,
            "Method(`GET`, `POST`)",
            Req::url("http://h").method("PUT"),
            false,
        ),
        (V2, "Method(`get`)", Req::url("http://h"), true),
        (
            V2,
            "Method(`GET`)",
            Req::url("http://h").method("get"),
            false,
        ),
        (
            V2,
            "Headers(`X-Forwarded-Proto`, `https`)",
            Req::url("http://h").header("X-Forwarded-Proto", "https"),
            true,
        ),
        (
            V2,
            "Headers(`x-forwarded-proto`, `https`)",
            Req::url("http://h")
                .header("X-Forwarded-Proto", "http")
                .header("X-Forwarded-Proto", "https"),
            true,
        ),
        (
            V2,
            "Headers(`X-Forwarded-Proto`, `https`)",
            Req::url("http://h").header("X-Forwarded-Host", "example.com"),
            false,
        ),
        (
            V2,
            "Headers(`Content-Type`,`application/json`)",
            Req::url("http://h").header("Content-Type", "application/json"),
            true,
        ),
        (
            V2,
            "Headers(`Content-Type`,`application/foo`)",
            Req::url("http://h").header("Content-Type", "application/json"),
            false,
        ),
        (
            V2,
            "Headers(`A`, `1`, `B`, `2`)",
            Req::url("http://h").header("A", "1").header("B", "2"),
            true,
        ),
        (
            V2,
            "Headers(`A`, `1`, `B`, `2`)",
            Req::url("http://h").header("A", "1"),
            false,
        ),
        (
            V2,
            "Headers(`A`, `1`, `A`, `2`)",
            Req::url("http://h").header("A", "2"),
            true,
        ),
        (
            V2,
            "Headers(`A`, `1`, `A`, `2`)",
            Req::url("http://h").header("A", "1"),
            false,
        ),
        (
            V2,
            "HeadersRegexp(`Content-Type`, `application/(text|json)`)",
            Req::url("http://h").header("Content-Type", "application/json"),
            true,
        ),
        (
            V2,
            "HeadersRegexp(`Content-Type`, `application/(text|json)`)",
            Req::url("http://h").header("Content-Type", "application/foo"),
            false,
        ),
        (
            V2,
            "HeadersRegexp(`Content-Type`, `application/(text|json)`)",
            Req::url("http://h").header("Content-Type", "application/text"),
            true,
        ),
        (
            V2,
            "HeadersRegexp(`X-Forwarded-Proto`, `^https?$`)",
            Req::url("http://h")
                .header("X-Forwarded-Proto", "ws")
                .header("X-Forwarded-Proto", "https"),
            true,
        ),
        (
            V2,
            "HeadersRegexp(`X-Forwarded-Proto`, `^https?$`)",
            Req::url("http://h").header("X-Forwarded-Proto", "HTTPS"),
            false,
        ),
        (
            V2,
            "HeadersRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)",
            Req::url("http://h").header("X-Forwarded-Proto", "http{secure:s}"),
            true,
        ),
        (
            V2,
            "HeadersRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)",
            Req::url("http://h").header("X-Forwarded-Proto", "https"),
            false,
        ),
        (
            V2,
            "ClientIP(`127.0.0.1`, `192.168.1.0/24`)",
            Req::url("http://h").ip("127.0.0.1"),
            true,
        ),
        (
            V2,
            "ClientIP(`127.0.0.1`, `192.168.1.0/24`)",
            Req::url("http://h").ip("192.168.1.1"),
            true,
        ),
        (
            V2,
            "ClientIP(`127.0.0.1`, `192.168.1.0/24`)",
            Req::url("http://h").ip("10.0.0.1"),
            false,
        ),
        (
            V2,
            "ClientIP(`10.10.1.1`)",
            Req::url("http://tchouk/toto").ip("10.0.0.0"),
            false,
        ),
        (
            V2,
            "ClientIP(`10::10`)",
            Req::url("http://tchouk/toto").ip("::1"),
            false,
        ),
        (
            V2,
            "ClientIP(`10.0.0.0`)",
            Req::url("http://tchouk/toto").ip("10.0.0.0"),
            true,
        ),
        (
            V2,
            "ClientIP(`10::10`)",
            Req::url("http://tchouk/toto").ip("10::10"),
            true,
        ),
        (
            V2,
            "ClientIP(`10.0.0.1`, `10.0.0.0`)",
            Req::url("http://tchouk/toto").ip("10.0.0.0"),
            true,
        ),
        (
            V2,
            "ClientIP(`11.0.0.0/24`)",
            Req::url("http://tchouk/toto").ip("10.0.0.0"),
            false,
        ),
        (
            V2,
            "ClientIP(`11::/16`)",
            Req::url("http://tchouk/toto").ip("10::"),
            false,
        ),
        (
            V2,
            "ClientIP(`10.0.0.0/16`)",
            Req::url("http://tchouk/toto").ip("10.0.0.0"),
            true,
        ),
        (
            V2,
            "ClientIP(`10::/16`)",
            Req::url("http://tchouk/toto").ip("10::10"),
            true,
        ),
        (
            V2,
            "ClientIP(`11.0.0.0/16`, `10.0.0.0/16`)",
            Req::url("http://tchouk/toto").ip("10.0.0.0"),
            true,
        ),
        (
            V2,
            "ClientIP(`11.0.0.0/16`, `10.0.0.0`)",
            Req::url("http://tchouk/toto").ip("10.0.0.0"),
            true,
        ),
        (
            V2,
            "ClientIP(`11.0.0.0`, `10.0.0.0/16`)",
            Req::url("http://tchouk/toto").ip("10.0.0.0"),
            true,
        ),
    ]);
    check_urls(&[
        (
            V2,
            r#"Path("/a") && Host("plop")"#,
            &[("http://plop/a", true), ("http://plopi/a", false)],
        ),
        (
            V2,
            r#"Host("tchouk") || Host("pouet")"#,
            &[
                ("http://tchouk/toto", true),
                ("http://pouet/a", true),
                ("http://plopi/a", false),
            ],
        ),
        (
            V2,
            r#"Host("tchouk") || Host("pouet") && Path("/powpow")"#,
            &[
                ("http://tchouk/toto", true),
                ("http://tchouk/powpow", true),
                ("http://pouet/powpow", true),
                ("http://pouet/toto", false),
                ("http://plopi/a", false),
            ],
        ),
        (
            V2,
            r#"(Host("tchouk","pouet")) && Path("/powpow")"#,
            &[
                ("http://tchouk/toto", false),
                ("http://tchouk/powpow", true),
                ("http://pouet/powpow", true),
            ],
        ),
        (
            V2,
            r#"Host("tchouk","pouet") && Path("/powpow", "/titi")"#,
            &[
                ("http://tchouk/toto", false),
                ("http://tchouk/powpow", true),
                ("http://pouet/titi", true),
                ("http://plopi/a", false),
            ],
        ),
        (
            V2,
            r#"(HOST("tchouk") && PATHPREFIX("/titi"))"#,
            &[
                ("http://tchouk/titi", true),
                ("http://tchouk/powpow", false),
            ],
        ),
        (
            V2,
            r#"(host("tchouk") && pathprefix("/titi"))"#,
            &[
                ("http://tchouk/titi", true),
                ("http://tchouk/powpow", false),
            ],
        ),
        (
            V2,
            r#"(Host("tchouk") && Pathprefix("/titi"))"#,
            &[
                ("http://tchouk/titi", true),
                ("http://tchouk/powpow", false),
            ],
        ),
        (
            V2,
            r#"!Host("tchouk")"#,
            &[("http://tchouk/titi", false), ("http://test/powpow", true)],
        ),
        (
            V2,
            r#"!Path("/titi")"#,
            &[
                ("http://tchouk/titi", false),
                ("http://tchouk/powpow", true),
            ],
        ),
        (
            V2,
            r#"!(Host("tchouk") || Host("toto"))"#,
            &[
                ("http://tchouk/titi", false),
                ("http://toto/powpow", false),
                ("http://test/powpow", true),
            ],
        ),
        (
            V2,
            r#"!(Host("tchouk") && !Path("/titi"))"#,
            &[
                ("http://tchouk/titi", true),
                ("http://toto/titi", true),
                ("http://tchouk/toto", false),
            ],
        ),
        (
            V2,
            r#"!Host("tchouk") && Pathprefix("/titi")"#,
            &[
                ("http://tchouk/titi", false),
                ("http://toto/powpow", false),
                ("http://toto/titi", true),
            ],
        ),
        (
            V2,
            r#"!(Host("tchouk","pouet") && Path("/powpow", "/titi"))"#,
            &[
                ("http://tchouk/toto", true),
                ("http://tchouk/powpow", false),
                ("http://pouet/titi", false),
                ("http://pouet/toto", true),
                ("http://plopi/a", true),
            ],
        ),
    ]);
}

/// `(syntax, rule, marker, fragment)`: the error's column is where `marker` first occurs in
/// the rule (`END` = one past the last char; a `LAST:` prefix = the last occurrence), and its
/// message contains `fragment`.
const END: &str = "<END>";

fn column_of(rule: &str, marker: &str) -> usize {
    if marker == END {
        return rule.chars().count() + 1;
    }
    let at = match marker.strip_prefix("LAST:") {
        Some(m) => rule.rfind(m),
        None => rule.find(marker),
    };
    let at = at.unwrap_or_else(|| panic!("marker {marker:?} not in {rule:?}"));
    rule[..at].chars().count() + 1
}

fn check_errors(rows: &[(Syntax, &str, &str, &str)], tcp: bool) {
    let mut failures = Vec::new();
    for (syntax, rule, marker, fragment) in rows {
        let result = if tcp {
            parse_tcp(rule, *syntax).map(|_| ())
        } else {
            parse(rule, *syntax).map(|_| ())
        };
        let want_col = column_of(rule, marker);
        match result {
            Ok(()) => failures.push(format!("{syntax} {rule:?}: parsed, want an error")),
            Err(e) => {
                if e.column != want_col || !e.message.contains(fragment) {
                    failures.push(format!(
                        "{syntax} {rule:?}: got `{e}`, want column {want_col} containing {fragment:?}"
                    ));
                }
                assert_eq!(e.to_string(), format!("column {}: {}", e.column, e.message));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing rows:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn http_errors() {
    check_errors(
        &[
            (V3, "", END, "empty rule"),
            (V3, "   ", "   ", "empty rule"),
            (
                V3,
                "rulewithnotmatcher",
                "rulewithnotmatcher",
                "unknown matcher `rulewithnotmatcher`",
            ),
            (V3, "Host(example.com)", "example", "quoted string"),
            (V3, "Host(tchouk)", "tchouk", "quote it: Host(`tchouk`)"),
            (V3, "Host()", ")", "Host needs a host name"),
            (V3, "Host(``)", "`", "empty argument for Host"),
            (V3, "Host(`🦭.com`)", "`", "non-ASCII"),
            (V3, "Host(`locàlhost`)", "`", "non-ASCII"),
            (V3, "HostRegexp(`locàlhost`)", "`", "non-ASCII"),
            (
                V3,
                "Host(`example.com`, `example.org`)",
                "`example.org",
                "exactly 1",
            ),
            (V3, "Hots(`example.com`)", "Hots", "did you mean `Host`?"),
            (
                V3,
                "PathPrefx(`/`)",
                "PathPrefx",
                "did you mean `PathPrefix`?",
            ),
            (
                V3,
                "Foobar(`foo.bar`,`test.bar`)",
                "Foobar",
                "the v3 HTTP matchers are",
            ),
            (
                V3,
                "pathPrefix(`/`)",
                "pathPrefix",
                "case-sensitive, write `PathPrefix`",
            ),
            (V3, "HoSt(`a`)", "HoSt", "case-sensitive"),
            (
                V3,
                "PathPrefix(`/api` && Host(`a`)",
                "&&",
                "expected `)` after the argument of PathPrefix",
            ),
            (
                V3,
                "Header(`a` `b`)",
                "`b`",
                "expected `,` or `)` after argument 1 of Header",
            ),
            (
                V3,
                "Host(`a`",
                END,
                "expected `)` after the argument of Host",
            ),
            (V3, "Host(`a`) &&", END, "unexpected end of rule"),
            (V3, "Host(`a`) ||", END, "unexpected end of rule"),
            (V3, "Host(`a`) && ", END, "unexpected end of rule"),
            (V3, "Host(`a)", "`", "unterminated string"),
            (V3, "Host(\"a)", "\"", "unterminated string"),
            (V3, "Host(\"a\nb\")", "\"", "unterminated string"),
            (V3, "Host(`a`))", "LAST:)", "unexpected `)`"),
            (V3, "Host(`a`)))", "LAST:))", "unexpected `)`"),
            (
                V3,
                "(Host(`a`)",
                END,
                "expected `)` to close the `(` at column 1",
            ),
            (
                V3,
                "(Host(`a`) Path(`/`))",
                "Path",
                "expected `&&`, `||` or `)`",
            ),
            (
                V3,
                "Host(`a`) Path(`/`)",
                "Path",
                "expected `&&`, `||` or the end of the rule",
            ),
            (V3, "Host(`a`) & Path(`/`)", "&", "the AND operator is `&&`"),
            (V3, "Host(`a`) | Path(`/`)", "|", "the OR operator is `||`"),
            (
                V3,
                "Host(`a`) and Path(`/`)",
                "and",
                "the AND operator is `&&`",
            ),
            (
                V3,
                "Host(`a`) OR Path(`/`)",
                "OR",
                "the OR operator is `||`",
            ),
            (V3, "Host(`a`) != Path(`/`)", "!=", "not supported"),
            (V3, "Host('a')", "'", "single quotes"),
            (V3, "Host(\"a\\qb\")", "\\", "invalid escape sequence `\\q`"),
            (V3, "Host(\"\\xZZ\")", "\\", "hexadecimal"),
            (V3, "Host(\"\\400\")", "\\", "above 255"),
            (V3, "Host(\"\\xff\")", "\"", "not valid UTF-8"),
            (V3, "Host(1)", "1", "quoted string"),
            (V3, "1", "1", "found the number `1`"),
            (V3, "`a`", "`", "unexpected string"),
            (
                V3,
                "Host",
                END,
                "expected `(` after the matcher name `Host`",
            ),
            (V3, "Host(`a`) && !", END, "unexpected end of rule"),
            (V3, "!", END, "unexpected end of rule"),
            (V3, "()", ")", "expected a matcher"),
            (V3, "Host(`a`,,)", ",)", "quoted string"),
            (V3, "Host(,)", ",", "quoted string"),
            (V3, "Host.Sub(`a`)", ".", "unexpected character `.`"),
            (
                V3,
                "Host(`a`) && Path(`/é`) && Foo(`x`)",
                "Foo",
                "unknown matcher `Foo`",
            ),
            (V3, "Path(`/é`) && Fo(`x`)", "Fo(", "unknown matcher"),
            (V3, "Path(`css`)", "`", "must start with `/`"),
            (V3, "PathPrefix(`css`)", "`", "must start with `/`"),
            (V3, "Path(`/css`, `/js`)", "`/js", "exactly 1"),
            (
                V3,
                "PathRegexp(`/(css`)",
                "`",
                "invalid regular expression `/(css` for PathRegexp",
            ),
            (
                V3,
                "HostRegexp(`(example.com`)",
                "`",
                "invalid regular expression",
            ),
            (
                V3,
                "HostRegexp(`example.com`, `example.org`)",
                "`example.org",
                "exactly 1",
            ),
            (
                V3,
                "HeaderRegexp(`X-Forwarded-Host`,`(example.com`)",
                "`(",
                "invalid regular expression",
            ),
            (
                V3,
                "HeaderRegexp(`X-Forwarded-Host`, `example.com`, `example.org`)",
                "`example.org",
                "exactly 2",
            ),
            (
                V3,
                "Header(`X-Forwarded-Host`)",
                ")",
                "Header needs a header name and a value (2 arguments), got 1",
            ),
            (V3, "Header(`X-Forwarded-Host`, ``)", "``", "empty argument"),
            (V3, "Header(``, `example.com`)", "``", "empty argument"),
            (V3, "Header()", ")", "got no argument"),
            (V3, "HeaderRegexp()", ")", "got no argument"),
            (V3, "Method()", ")", "got no argument"),
            (V3, "Method(``)", "`", "empty argument"),
            (V3, "Method(`GET`, `POST`)", "`POST", "exactly 1"),
            (V3, "ClientIP(`1`)", "`", "expected an IP address"),
            (V3, "ClientIP(`invalid`)", "`", "expected an IP address"),
            (V3, "ClientIP(`10.0.0.0/33`)", "`", "expected an IP address"),
            (V3, "ClientIP()", ")", "got no argument"),
            (V3, "ClientIP(``)", "`", "empty argument"),
            (
                V3,
                "ClientIP(`127.0.0.1`, `192.168.1.0/24`)",
                "`192",
                "exactly 1",
            ),
            (V3, "Query()", ")", "got no argument"),
            (V3, "Query(``)", "`", "empty argument"),
            (V3, "Query(``, `traefik`)", "`", "empty argument"),
            (V3, "Query(`q`, ``)", "``", "empty argument"),
            (
                V3,
                "Query(`q`, `traefik`, `proxy`)",
                "`proxy",
                "1 or 2 arguments",
            ),
            (V3, "QueryRegexp()", ")", "got no argument"),
            (V3, "QueryRegexp(``)", "`", "empty argument"),
            (
                V3,
                "QueryRegexp(`q`, `(traefik`)",
                "`(",
                "invalid regular expression",
            ),
            (
                V3,
                "QueryRegexp(`q`, `traefik`, `proxy`)",
                "`proxy",
                "1 or 2 arguments",
            ),
            (V3, "Headers(`a`, `b`)", "Headers", "v2 spelling"),
            (V3, "HostHeader(`a`)", "HostHeader", "only in v2"),
            (V3, "HostSNI(`a`)", "HostSNI", "TCP matcher"),
            (V3, "PathRegexp(`\\1`)", "`", "backreferences"),
            (V3, "PathRegexp(`a{1001}`)", "`", "invalid repeat count"),
            (V3, "PathRegexp(`(?x)a`)", "`", "unsupported Perl syntax"),
            (
                V3,
                "PathRegexp(`[[:foo:]]`)",
                "`",
                "invalid character class",
            ),
            (
                V3,
                "Host(`a`) && (Path(`/b`) || )",
                "LAST:)",
                "expected a matcher",
            ),
            (V2, "Host()", ")", "got no argument"),
            (V2, "Host(``)", "`", "empty argument"),
            (V2, "Host(`🦭.com`)", "`", "non-ASCII"),
            (V2, "HostRegexp(`🦭.com`)", "`", "non-ASCII"),
            (V2, "HostRegexp()", ")", "got no argument"),
            (V2, "HostRegexp(``)", "`", "empty argument"),
            (V2, r#"HostRegexp("{test")"#, "\"", "unbalanced braces"),
            (V2, "HostRegexp(`{}.a`)", "`", "missing name or pattern"),
            (V2, "HostRegexp(`{x:}.a`)", "`", "missing name or pattern"),
            (V2, "HostRegexp(`{x:(}.a`)", "`", "invalid template"),
            (V2, "HostRegexp(`{x:a)(b}.a`)", "`", "invalid template"),
            (V2, "Path(`css`)", "`", "must start with `/`"),
            (V2, r#"Path("titi")"#, "\"", "must start with `/`"),
            (V2, r#"PathPrefix("titi")"#, "\"", "must start with `/`"),
            (
                V2,
                r#"Host("tchouk") && Path()"#,
                "LAST:)",
                "got no argument",
            ),
            (
                V2,
                r#"Host("tchouk") && Path("")"#,
                "\"\"",
                "empty argument",
            ),
            (
                V2,
                r#"Host("tchouk") && Path("", "/titi")"#,
                "\"\"",
                "empty argument",
            ),
            (V2, "Method()", ")", "got no argument"),
            (V2, "Method(``)", "`", "empty argument"),
            (V2, "Headers()", ")", "got no argument"),
            (V2, "Headers(`X-Forwarded-Host`)", "`", "pairs, got 1"),
            (
                V2,
                "Headers(`X-Forwarded-Host`, ``)",
                "``",
                "empty argument",
            ),
            (V2, "Headers(``, `example.com`)", "`", "empty argument"),
            (
                V2,
                "Headers(`X-Forwarded-Host`, `example.com`, `example.org`)",
                "`example.org",
                "pairs, got 3",
            ),
            (V2, r#"Headers("titi")"#, "\"", "pairs"),
            (V2, "HeaderRegexp()", "HeaderRegexp", "v3 spelling"),
            (V2, "Header(`a`, `b`)", "Header", "v3 spelling"),
            (V2, "HeadersRegexp(`X-Forwarded-Host`)", "`", "pairs, got 1"),
            (
                V2,
                "HeadersRegexp(`X-Forwarded-Host`, ``)",
                "``",
                "empty argument",
            ),
            (
                V2,
                "HeadersRegexp(``, `example.com`)",
                "`",
                "empty argument",
            ),
            (
                V2,
                "HeadersRegexp(`X-Forwarded-Host`,`(example.com`)",
                "`(",
                "invalid regular expression",
            ),
            (
                V2,
                "HeadersRegexp(`X-Forwarded-Host`, `example.com`, `example.org`)",
                "`example.org",
                "pairs",
            ),
            (V2, r#"HeadersRegexp("titi")"#, "\"", "pairs"),
            (V2, r#"Query("titi")"#, "\"", "has no `=`"),
            (V2, r#"Query("titi={test")"#, "\"", "unbalanced braces"),
            (V2, "Query(`a=1`, `b`)", "`b`", "has no `=`"),
            (V2, "ClientIP(`1`)", "`", "expected an IP address"),
            (V2, "ClientIP()", ")", "got no argument"),
            (V2, "ClientIP(``)", "`", "empty argument"),
            (V2, "ClientIP(`invalid`)", "`", "expected an IP address"),
            (V2, "PathRegexp(`/a`)", "PathRegexp", "only in v3"),
            (V2, "Host(tchouk)", "tchouk", "quoted string"),
        ],
        false,
    );
}

#[test]
fn nesting_is_capped() {
    let deep = format!("{}Host(`a`){}", "(".repeat(150), ")".repeat(150));
    let e = parse(&deep, V3).unwrap_err();
    assert!(e.message.contains("levels deep"), "{e}");
    assert_eq!(e.column, parser::MAX_DEPTH + 1);
    let bangs = format!("{}Host(`a`)", "!".repeat(500));
    assert!(parse(&bangs, V3)
        .unwrap_err()
        .message
        .contains("levels deep"));
    let ok = format!("{}Host(`a`){}", "(".repeat(50), ")".repeat(50));
    assert!(parse(&ok, V3).is_ok());
    // Long flat chains are not nesting.
    let chain = vec!["Host(`a`)"; 5000].join(" || ");
    assert!(parse(&chain, V3)
        .unwrap()
        .matches(&Req::url("http://a").view()));
}

#[test]
fn exact_hosts() {
    let rows: &[(Syntax, &str, Option<&[&str]>)] = &[
        (V3, "Host(`a`) && PathPrefix(`/x`)", Some(&["a"])),
        (V3, "Host(`a`) || Host(`b`)", Some(&["a", "b"])),
        (V3, "Host(`a`) || Host(`a`)", Some(&["a"])),
        (V3, "PathPrefix(`/`)", None),
        (V3, "Host(`a`) || Path(`/x`)", None),
        (V3, "!Host(`a`)", None),
        (V3, "!!Host(`a`)", Some(&["a"])),
        (V3, "!(Host(`a`) || Path(`/`))", None),
        (V3, "HostRegexp(`a`)", None),
        (
            V3,
            "Host(`Example.COM.`) && Method(`GET`)",
            Some(&["example.com"]),
        ),
        (V3, "Host(`*.a.com`)", None),
        (V3, "Host(`*`)", None),
        (V3, "Host(`*`) && Host(`a`)", Some(&["a"])),
        (V3, "(Host(`a`) || Host(`b`)) && Host(`b`)", Some(&["b"])),
        (V3, "Host(`a`) && Host(`b`)", Some(&[])),
        (V3, "Host(`a`) && (Path(`/x`) || Host(`b`))", Some(&["a"])),
        (
            V3,
            "(Host(`a`) && Path(`/`)) || (Host(`b`) && Path(`/b`))",
            Some(&["a", "b"]),
        ),
        (V3, "(Host(`a`) && Path(`/`)) || Path(`/b`)", None),
        (V3, "Header(`Host`, `a`)", Some(&[])),
        (V3, "Host(`.`)", Some(&[])),
        (V2, "Host(`a`, `B`) && Path(`/`)", Some(&["a", "b"])),
        (V2, "HostHeader(`a`)", Some(&["a"])),
        (V2, "HostRegexp(`a.com`)", Some(&["a.com"])),
        (V2, "HostRegexp(`a.com`, `{x}.b.com`)", None),
        (V2, "HostRegexp(`{x}.a.com`)", None),
        (V2, "Host(`*.a.com`)", Some(&["*.a.com"])),
    ];
    for (syntax, rule, want) in rows {
        let got = parse(rule, *syntax).unwrap().exact_hosts();
        let want: Option<Vec<String>> = want.map(|w| w.iter().map(|s| s.to_string()).collect());
        assert_eq!(got, want, "{syntax} {rule}");
    }
}

#[test]
fn domains() {
    let rows: &[(Syntax, &str, &[&str])] = &[
        (V3, "Path(`/test`)", &[]),
        (V3, "Host(`foo.bar`) && Path(`/test`)", &["foo.bar"]),
        (
            V3,
            "Host(`Foo.Bar`) || Host(`bar.buz`) && Path(`/test`)",
            &["foo.bar", "bar.buz"],
        ),
        (V3, "Host(`Foo.Bar`) && Path(`/test`)", &["foo.bar"]),
        (V3, "!Host(`a.com`)", &["a.com"]),
        (V3, "Host(`*.a.com`)", &["*.a.com"]),
        (V3, "Host(`*`)", &[]),
        (V3, "Host(`a.com.`) || Host(`A.com`)", &["a.com"]),
        (V3, "HostRegexp(`a.com`)", &[]),
        (V2, "Host(`a.com`, `b.com`)", &["a.com", "b.com"]),
        (V2, "HostHeader(`a.com`)", &[]),
        (V2, "HostRegexp(`a.com`)", &[]),
    ];
    for (syntax, rule, want) in rows {
        assert_eq!(
            parse(rule, *syntax).unwrap().domains(),
            *want,
            "{syntax} {rule}"
        );
    }
}

#[test]
fn normalize_host_rows() {
    let rows: &[(&str, &str)] = &[
        ("example.com", "example.com"),
        ("EXAMPLE.com:8080", "example.com"),
        ("example.com.", "example.com"),
        ("example.com.:443", "example.com"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("[::1]x", "[::1]x"),
        ("::1", "::1"),
        ("[FE80::1]:443", "fe80::1"),
        ("10.0.0.1:80", "10.0.0.1"),
        ("a:", "a"),
        (" a.com ", "a.com"),
        ("", ""),
        ("a:b:c", "a:b:c"),
        ("ÉCOLE.fr", "école.fr"),
        ("user:pw@Example.com:80", "example.com"),
        ("@", ""),
    ];
    for (raw, want) in rows {
        assert_eq!(normalize_host(raw), *want, "{raw:?}");
    }
    assert!(matches!(normalize_host("example.com"), Cow::Borrowed(_)));
    assert!(matches!(normalize_host("example.com:80"), Cow::Borrowed(_)));
    assert!(matches!(normalize_host("Example.com"), Cow::Owned(_)));
}

#[test]
fn syntax_from_str() {
    assert_eq!("v2".parse::<Syntax>(), Ok(Syntax::V2));
    assert_eq!("V3".parse::<Syntax>(), Ok(Syntax::V3));
    assert_eq!("v3".parse::<Syntax>(), Ok(Syntax::V3));
    assert!("v4".parse::<Syntax>().is_err());
    assert!("".parse::<Syntax>().is_err());
    assert_eq!(Syntax::default(), Syntax::V3);
    assert_eq!(Syntax::V2.to_string(), "v2");
}

#[test]
fn rule_accessors_and_priority() {
    let r = parse("Host(`a`)", V2).unwrap();
    assert_eq!(r.as_str(), "Host(`a`)");
    assert_eq!(r.to_string(), "Host(`a`)");
    assert_eq!(r.syntax(), V2);
    assert_eq!(default_priority("Host(`example.org`)"), 19);
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Rule>();
    assert_send_sync::<TcpRule>();
}

#[test]
fn routing_path_validity() {
    for (p, ok) in [
        ("/a/b", true),
        ("/a%20b", true),
        ("/a%2Fb", true),
        ("/a%2fb", true),
        ("/a%", false),
        ("/a%4", false),
        ("/a%zz", false),
        ("%41", true),
    ] {
        assert_eq!(is_valid_routing_path(p), ok, "{p}");
    }
}

#[test]
fn go_regex_dialect() {
    let rows: &[(&str, &str, bool)] = &[
        (r"^\d+$", "123", true),
        (r"^\d+$", "٣", false),
        (r"^\w$", "é", false),
        (r"^\w$", "_", true),
        (r"^\s$", "\u{b}", false),
        (r"^\s$", "\u{c}", true),
        (r"\bfoo\b", "a foo b", true),
        (r"\bfoo\b", "éfooé", true),
        (r"^a{,3}$", "a{,3}", true),
        (r"^a{ 2}$", "a{ 2}", true),
        (r"^x{2}$", "xx", true),
        (r"^x{2,}$", "xxx", true),
        (r"^x{1,2}$", "xxx", false),
        (r"^{$", "{", true),
        (r"^a}$", "a}", true),
        (r"^[[]$", "[", true),
        (r"^[a&&b]$", "&", true),
        (r"^[a~~b]$", "~", true),
        (r"^[--/]$", ".", true),
        (r"^[--/]$", "a", false),
        (r"^[]a]$", "]", true),
        (r"^[^]a]$", "b", true),
        (r"^[^]a]$", "]", false),
        (r"^[a-]$", "-", true),
        (r"^\Qa.b\E$", "a.b", true),
        (r"^\Qa.b\E$", "axb", false),
        (r"^\Qa.b", "a.b", true),
        (r"^\101$", "A", true),
        (r"^\0$", "\0", true),
        (r"^\x41\x{263a}$", "A☺", true),
        (r"^\<\>$", "<>", true),
        (r"^[\d]$", "5", true),
        (r"^[^\D]$", "5", true),
        (r"^[^\D]$", "a", false),
        (r"^[\D]$", "a", true),
        (r"^[\w.]+$", "a.b_c", true),
        (r"^(?i)ABC$", "abc", true),
        (r"^(?i:A)b$", "aB", false),
        (r"^(?P<x>a)(?<y>b)$", "ab", true),
        (r"^\pL$", "é", true),
        (r"^\p{^L}$", "1", true),
        (r"^\P{L}$", "1", true),
        (r"^[\p{Greek}]$", "α", true),
        (r"^[[:alpha:]]+$", "abc", true),
        (r"^[[:^digit:]]$", "a", true),
        (r"^\.\*\+$", ".*+", true),
        (r"^\C$", "a", true),
        (r"^a\z", "a", true),
        (r"\Aa", "ba", false),
        (r"(?U)a+", "aaa", true),
        (r"^\a\f\t\n\r\v$", "\u{7}\u{c}\t\n\r\u{b}", true),
    ];
    for (pattern, subject, want) in rows {
        let re = goregex::compile(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(
            re.is_match(subject.as_bytes()),
            *want,
            "{pattern} on {subject:?} (as {:?})",
            goregex::translate(pattern)
        );
    }
    for bad in [
        r"a{1001}",
        r"a{2,1}",
        r"(?x)a",
        r"\1",
        r"\8",
        r"\q",
        r"[[:foo:]]",
        r"[b-a]",
        r"a\",
        r"[a",
        r"(a",
        r"\p{",
        r"(?P<>a)",
        r"[a--]",
        r"\x{110000}",
        r"(?i-)a",
        r"(?)a",
        r"*",
        r"\pé",
    ] {
        assert!(goregex::compile(bad).is_err(), "{bad} should not compile");
    }
}

#[test]
fn tcp_rules() {
    type Row<'a> = (
        Syntax,
        &'a str,
        Option<&'a str>,
        &'a str,
        &'a [&'a str],
        bool,
    );
    let rows: &[Row<'_>] = &[
        (
            V3,
            "HostSNI(`example.com`)",
            Some("example.com"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V3,
            "HostSNI(`example.com`)",
            Some("example.org"),
            "1.2.3.4",
            &[],
            false,
        ),
        (V3, "HostSNI(`example.com`)", None, "1.2.3.4", &[], false),
        (
            V3,
            "HostSNI(`xn--9t9h.com`)",
            Some("xn--9t9h.com"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V3,
            "HostSNI(`xn--9t9h.com`)",
            Some("🦭.com"),
            "1.2.3.4",
            &[],
            false,
        ),
        (
            V3,
            "HostSNI(`*`)",
            Some("example.com"),
            "1.2.3.4",
            &[],
            true,
        ),
        (V3, "HostSNI(`*`)", None, "1.2.3.4", &[], true),
        (
            V3,
            "HostSNI(`example.com.`)",
            Some("example.com"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V3,
            "HostSNI(`foo.example.com`)",
            Some("foo.example.com"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V3,
            "HostSNI(`foo_bar.example.com`)",
            Some("foo_bar.example.com"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V3,
            "HostSNI(`*.example.com`)",
            Some("foo.example.com"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V3,
            "HostSNI(`*.example.com`)",
            Some("example.com"),
            "1.2.3.4",
            &[],
            false,
        ),
        (V3, "HostSNI(`*.example.com`)", None, "1.2.3.4", &[], false),
        (
            V3,
            "HostSNI(`Example.COM`)",
            Some("example.com"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V3,
            r"HostSNIRegexp(`^example\.(com|org)$`)",
            Some("example.com"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V3,
            r"HostSNIRegexp(`^example\.(com|org)$`)",
            Some("example.com."),
            "1.2.3.4",
            &[],
            false,
        ),
        (
            V3,
            r"HostSNIRegexp(`^example\.(com|org)$`)",
            Some("example.org"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V3,
            r"HostSNIRegexp(`^example\.(com|org)$`)",
            Some("exampleuorg"),
            "1.2.3.4",
            &[],
            false,
        ),
        (
            V3,
            r"HostSNIRegexp(`^example\.(com|org)$`)",
            None,
            "1.2.3.4",
            &[],
            false,
        ),
        (
            V3,
            "HostSNIRegexp(`example.{tld:(com|org)}`)",
            Some("example.com"),
            "1.2.3.4",
            &[],
            false,
        ),
        (V3, "HostSNIRegexp(`.*`)", None, "1.2.3.4", &[], true),
        (
            V3,
            "ClientIP(`20.20.20.20`)",
            None,
            "20.20.20.20",
            &[],
            true,
        ),
        (
            V3,
            "ClientIP(`20.20.20.20`)",
            None,
            "10.10.10.10",
            &[],
            false,
        ),
        (
            V3,
            "ClientIP(`20.20.20.20/24`)",
            None,
            "20.20.20.40",
            &[],
            true,
        ),
        (
            V3,
            "ClientIP(`20.20.20.20/24`)",
            None,
            "10.10.10.10",
            &[],
            false,
        ),
        (V3, "ALPN(`h2`)", None, "1.2.3.4", &["h2"], true),
        (V3, "ALPN(`h2`)", None, "1.2.3.4", &["http/1.1", "h2"], true),
        (V3, "ALPN(`h2`)", None, "1.2.3.4", &["mqtt"], false),
        (V3, "ALPN(`h2`)", None, "1.2.3.4", &[], false),
        (
            V3,
            "HostSNI(`a`) && ALPN(`h2`) || ClientIP(`10.0.0.0/8`)",
            Some("b"),
            "10.1.1.1",
            &[],
            true,
        ),
        (
            V2,
            "HostSNI(`foobar`)",
            Some("foobar"),
            "1.2.3.4",
            &[],
            true,
        ),
        (V2, "!HostSNI(`bar`)", Some("foobar"), "1.2.3.4", &[], true),
        (
            V2,
            "hostsni(`foobar`)",
            Some("foobar"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V2,
            "HOSTSNI(`foobar`)",
            Some("foobar"),
            "1.2.3.4",
            &[],
            true,
        ),
        (V2, "HostSNI(`foobar`)", Some("bar"), "1.2.3.4", &[], false),
        (
            V2,
            "HostSNI(`foobar`, `bar`)",
            Some("bar"),
            "1.2.3.4",
            &[],
            true,
        ),
        (V2, "HostSNI(`*`)", None, "1.2.3.4", &[], true),
        (V2, "HostSNI(`*`, `a`)", None, "1.2.3.4", &[], true),
        (V2, "HostSNI(`a`, `*`)", None, "1.2.3.4", &[], false),
        (V2, "HostSNI(`a`, `*`)", Some("z"), "1.2.3.4", &[], true),
        (
            V2,
            "HostSNIRegexp(`{subdomain:[a-z]+}.foobar`)",
            Some("sub.foobar"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V2,
            "!HostSNIRegexp(`bar`)",
            Some("foobar"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V2,
            "hostsniregexp(`foobar`)",
            Some("foobar"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V2,
            "HOSTSNIREGEXP(`foobar`)",
            Some("foobar"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V2,
            "HostSNIRegexp(`foobar`)",
            Some("bar"),
            "1.2.3.4",
            &[],
            false,
        ),
        (V2, "!HostSNI(`bar`)", Some("bar"), "1.2.3.4", &[], false),
        (
            V2,
            "HostSNIRegexp(`{subdomain:[a-z]*}`)",
            None,
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V2,
            "HostSNIRegexp(`{dummy}`)",
            Some("toto"),
            "1.2.3.4",
            &[],
            true,
        ),
        (
            V2,
            "HostSNIRegexp(`{dummy}`)",
            Some("toto.com"),
            "1.2.3.4",
            &[],
            false,
        ),
        (V2, "ClientIP(`10.0.0.1`)", None, "10.0.0.1", &[], true),
        (V2, "!ClientIP(`20.0.0.1`)", None, "10.0.0.1", &[], true),
        (V2, "clientip(`10.0.0.1`)", None, "10.0.0.1", &[], true),
        (V2, "CLIENTIP(`10.0.0.1`)", None, "10.0.0.1", &[], true),
        (V2, "ClientIP(`10.0.0.1`)", None, "10.0.0.2", &[], false),
        (V2, "!ClientIP(`10.0.0.2`)", None, "10.0.0.2", &[], false),
        (V2, "ClientIP(`10::10`)", None, "10::10", &[], true),
        (V2, "!ClientIP(`10::10`)", None, "::1", &[], true),
        (
            V2,
            "ClientIP(`10.0.0.1`, `10.0.0.0`)",
            None,
            "10.0.0.0",
            &[],
            true,
        ),
        (V2, "ClientIP(`11::/16`)", None, "11::", &[], true),
        (V2, "ClientIP(`11::/16`)", None, "10::", &[], false),
        (
            V2,
            "ClientIP(`11.0.0.0`, `10.0.0.0/16`)",
            None,
            "10.0.0.0",
            &[],
            true,
        ),
        (
            V2,
            "HostSNI(`foobar`) && ClientIP(`10.0.0.1`)",
            Some("foobar"),
            "10.0.0.1",
            &[],
            true,
        ),
        (
            V2,
            "!HostSNI(`bar`) && ClientIP(`10.0.0.1`)",
            Some("foobar"),
            "10.0.0.1",
            &[],
            true,
        ),
        (
            V2,
            "HostSNI(`foobar`) && !ClientIP(`10.0.0.2`)",
            Some("foobar"),
            "10.0.0.1",
            &[],
            true,
        ),
        (
            V2,
            "!(HostSNI(`bar`) || ClientIP(`10.0.0.2`))",
            Some("foobar"),
            "10.0.0.1",
            &[],
            true,
        ),
        (
            V2,
            "!(HostSNI(`bar`) && ClientIP(`10.0.0.2`))",
            Some("foobar"),
            "10.0.0.2",
            &[],
            true,
        ),
        (
            V2,
            "!(HostSNI(`bar`) && ClientIP(`10.0.0.2`))",
            Some("bar"),
            "10.0.0.2",
            &[],
            false,
        ),
        (V2, "ALPN(`h2`, `mqtt`)", None, "1.2.3.4", &["mqtt"], true),
        (
            V2,
            "ALPN(`h2`, `mqtt`)",
            None,
            "1.2.3.4",
            &["http/1.1"],
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (syntax, rule, sni, ip, alpn, want) in rows {
        match parse_tcp(rule, *syntax) {
            Ok(r) => {
                let got = r.matches(*sni, ip.parse().unwrap(), alpn);
                if got != *want {
                    failures.push(format!(
                        "{syntax} {rule} sni={sni:?} ip={ip} alpn={alpn:?}: got {got}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{syntax} {rule}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    check_errors(
        &[
            (V3, "", END, "empty rule"),
            (
                V3,
                "rulewithnotmatcher",
                "rulewithnotmatcher",
                "unknown matcher",
            ),
            (V3, "HostSNI(``)", "`", "empty argument"),
            (
                V3,
                "HostSNI(`example.com`, `example.org`)",
                "`example.org",
                "exactly 1",
            ),
            (V3, "HostSNI(`🦭.com`)", "`", "not a valid host name"),
            (
                V3,
                "HostSNI(`*.*.example.com`)",
                "`",
                "not a valid host name",
            ),
            (V3, "HostSNIRegexp(``)", "`", "empty argument"),
            (V3, "HostSNIRegexp(`🦭.com`)", "`", "non-ASCII"),
            (
                V3,
                "HostSNIRegexp(`(example.com`)",
                "`",
                "invalid regular expression",
            ),
            (
                V3,
                "HostSNIRegexp(`example.com`, `example.org`)",
                "`example.org",
                "exactly 1",
            ),
            (V3, "ClientIP(``)", "`", "empty argument"),
            (V3, "ClientIP(`🦭/32`)", "`", "expected an IP address"),
            (
                V3,
                "ClientIP(`127.0.0.1`, `127.0.0.2`)",
                "`127.0.0.2",
                "exactly 1",
            ),
            (V3, "ALPN(`acme-tls/1`)", "`", "reserved for ACME"),
            (V3, "ALPN(``)", "`", "empty argument"),
            (V3, "ALPN(`h2`, `mqtt`)", "`mqtt", "exactly 1"),
            (
                V3,
                "Host(`a`)",
                "Host",
                "TCP routers match the TLS server name with HostSNI",
            ),
            (V3, "HostSni(`a`)", "HostSni", "case-sensitive"),
            (V2, "HostSNI()", ")", "got no argument"),
            (V2, "HostSNI(``)", "`", "empty argument"),
            (V2, "HostSNI(`*.example.com`)", "`", "not a valid host name"),
            (V2, "HostSNIRegexp()", ")", "got no argument"),
            (V2, "HostSNIRegexp(`{a`)", "`", "unbalanced braces"),
            (V2, "ClientIP()", ")", "got no argument"),
            (V2, "ClientIP(`invalid`)", "`", "expected an IP address"),
            (V2, "ALPN(`h2`, `acme-tls/1`)", "`acme", "reserved for ACME"),
            (V2, "PathPrefix(`/`)", "PathPrefix", "cannot see paths"),
        ],
        true,
    );

    let r = parse_tcp(
        "HostSNI(`A.com.`) || HostSNI(`b.com`) && ALPN(`h2`) || HostSNI(`a.com`)",
        V3,
    )
    .unwrap();
    assert_eq!(r.sni_names(), ["a.com", "b.com"]);
    assert_eq!(
        r.exact_snis(),
        Some(vec!["a.com".to_owned(), "b.com".to_owned()])
    );
    let r = parse_tcp("HostSNI(`*`)", V3).unwrap();
    assert_eq!(r.sni_names(), ["*"]);
    assert_eq!(r.exact_snis(), None);
    assert_eq!(
        parse_tcp("HostSNI(`a`) && ClientIP(`::1`)", V3)
            .unwrap()
            .exact_snis(),
        Some(vec!["a".to_owned()])
    );
    assert_eq!(
        parse_tcp("HostSNI(`a`, `b`)", V2).unwrap().sni_names(),
        ["a", "b"]
    );
    assert_eq!(parse_tcp("ClientIP(`::1`)", V2).unwrap().exact_snis(), None);
    assert_eq!(
        parse_tcp("HostSNI(`a`)", V2).unwrap().to_string(),
        "HostSNI(`a`)"
    );
}

/// Rule strings built from real matchers and operators (more likely than random text to
/// reach deep into lowering), over a few hosts, paths and queries.
fn rule_strategy() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["a", "b", "c", "*.a", "*", "B."])
            .prop_map(|h| format!("Host(`{h}`)")),
        prop::sample::select(vec!["/", "/x", "/x/y"]).prop_map(|p| format!("PathPrefix(`{p}`)")),
        prop::sample::select(vec!["/x", "/"]).prop_map(|p| format!("Path(`{p}`)")),
        Just("HostRegexp(`^a$`)".to_owned()),
        Just("Query(`k`, `v`)".to_owned()),
        Just("Method(`GET`)".to_owned()),
        Just("Header(`Host`, `a`)".to_owned()),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4)
                .prop_map(|v| format!("({})", v.join(" && "))),
            prop::collection::vec(inner.clone(), 2..4)
                .prop_map(|v| format!("({})", v.join(" || "))),
            inner.prop_map(|r| format!("!{r}")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary text never panics the parser, in any grammar.
    #[test]
    fn parse_never_panics(s in ".{0,200}") {
        for syntax in [V2, V3] {
            if let Ok(r) = parse(&s, syntax) {
                let req = Req::url("http://a/x?k=v");
                let _ = r.matches(&req.view());
                let _ = r.exact_hosts();
                let _ = r.domains();
            }
            let _ = parse_tcp(&s, syntax);
        }
    }

    /// Text made of rule fragments (deeper than random text gets) never panics either, and a
    /// reported column always points inside the rule or just past its end.
    #[test]
    fn fragments_never_panic(parts in prop::collection::vec(prop::sample::select(vec![
        "Host(", "HostRegexp(", "PathPrefix(", "Path(", "PathRegexp(", "Query(", "QueryRegexp(",
        "Header(", "HeaderRegexp(", "ClientIP(", "Method(", "Headers(", "HostSNI(", "ALPN(",
        "`a`", "`/x`", "`{x:[0-9]+}`", "`(`", "`[`", "`\\`", "`{`", "`*.a`", "`10.0.0.0/8`",
        "\"\\x41\"", "\"\\", "\"", "`", ")", "(", ",", "&&", "||", "!", " ", "é", "HOST(",
        "hostregexp(", "`a=b`", "`{x}`", "`k`",
    ]), 0..24)) {
        let s: String = parts.concat();
        for syntax in [V2, V3] {
            match parse(&s, syntax) {
                Ok(r) => {
                    let _ = r.matches(&Req::url("http://a/x?k=v").view());
                    let _ = r.exact_hosts();
                }
                Err(e) => prop_assert!(e.column >= 1 && e.column <= s.chars().count() + 1, "{e} for {s:?}"),
            }
            if let Err(e) = parse_tcp(&s, syntax) {
                prop_assert!(e.column >= 1 && e.column <= s.chars().count() + 1, "{e} for {s:?}");
            }
        }
    }

    /// `exact_hosts` is conservative: when it names a set, no request for another host matches.
    #[test]
    fn exact_hosts_is_sound(rule in rule_strategy()) {
        let r = parse(&rule, V3).unwrap();
        if let Some(hosts) = r.exact_hosts() {
            for host in ["a", "b", "c", "d", "x.a", "", "b."] {
                for url in ["/", "/x", "/x/y?k=v"] {
                    let req = Req::url(&format!("http://{host}{url}")).header("Host", host);
                    if r.matches(&req.view()) {
                        prop_assert!(hosts.contains(&req.host), "{rule} matched host {host:?} outside {hosts:?}");
                    }
                }
            }
        }
    }
}
