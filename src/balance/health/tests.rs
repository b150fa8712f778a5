//! Tests for the health state, the pure probe-URL logic and the redirect rules of one probe (the prober
//! against real servers is tested in `proxy::health_check`).

use super::*;

use std::time::Duration;

use http::header::{AUTHORIZATION, HOST, REFERER};
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};

fn uri(s: &str) -> Uri {
    s.parse().expect("test URI")
}

fn settings(path: &str) -> HealthCheckSettings {
    HealthCheckSettings {
        path: path.to_owned(),
        ..HealthCheckSettings::default()
    }
}

fn probe_str(server: &str, s: &HealthCheckSettings) -> Result<String, String> {
    probe_uri(&uri(server), s)
        .map(|u| u.to_string())
        .map_err(|e| e.to_string())
}

#[test]
fn server_health_active_and_passive() {
    let h = ServerHealth::new();
    assert!(h.is_up(0));
    assert!(h.active_up());
    assert!(!h.set_active(true));
    assert!(h.set_active(false));
    assert!(!h.is_up(0));
    assert!(!h.set_active(false));
    assert!(h.set_active(true));
    h.mark_failed(1_000, 500);
    assert!(!h.is_up(1_000));
    assert!(!h.is_up(1_499));
    assert!(h.is_up(1_500));
    // A shorter, earlier mark does not shorten the window.
    h.mark_failed(1_100, 100);
    assert!(!h.is_up(1_300));
    h.mark_failed(u64::MAX, 10);
    assert!(!h.is_up(u64::MAX - 1));
    assert!(ServerHealth::default().is_up(0));
}

#[test]
fn now_ms_is_monotonic() {
    let a = now_ms();
    let b = now_ms();
    assert!(b >= a);
}

#[test]
fn healthy_status_rules() {
    let s = HealthCheckSettings::default();
    for (code, want) in [
        (100, false),
        (199, false),
        (200, true),
        (204, true),
        (302, true),
        (308, true),
        (399, true),
        (400, false),
        (404, false),
        (503, false),
    ] {
        assert_eq!(is_healthy_status(code, &s), want, "{code}");
    }
    let s = HealthCheckSettings {
        status: Some(404),
        ..HealthCheckSettings::default()
    };
    assert!(is_healthy_status(404, &s));
    assert!(!is_healthy_status(200, &s));
}

#[test]
fn defaults_match_traefik() {
    let s = HealthCheckSettings::default();
    assert_eq!(s.interval, Duration::from_secs(30));
    assert_eq!(s.timeout, Duration::from_secs(5));
    assert_eq!(s.method, Method::GET);
    assert!(s.follow_redirects);
    let zero = HealthCheckSettings {
        interval: Duration::ZERO,
        timeout: Duration::ZERO,
        unhealthy_interval: Some(Duration::ZERO),
        ..HealthCheckSettings::default()
    };
    assert_eq!(zero.effective_interval(), DEFAULT_INTERVAL);
    assert_eq!(zero.effective_timeout(), DEFAULT_TIMEOUT);
    assert_eq!(zero.effective_unhealthy_interval(), DEFAULT_INTERVAL);
    let custom = HealthCheckSettings {
        interval: Duration::from_secs(3),
        ..HealthCheckSettings::default()
    };
    assert_eq!(
        custom.effective_unhealthy_interval(),
        Duration::from_secs(3)
    );
}

/// Traefik's `TestServiceHealthChecker_newRequest` cases, plus Go's
/// reference-resolution rules.
#[test]
fn probe_uri_cases() {
    let port = |p| HealthCheckSettings {
        port: Some(p),
        ..settings("/health")
    };
    let cases: Vec<(&str, HealthCheckSettings, Result<&str, ()>)> = vec![
        (
            "http://backend1:80",
            settings("/test"),
            Ok("http://backend1:80/test"),
        ),
        (
            "http://backend2:80",
            HealthCheckSettings {
                port: Some(8080),
                ..settings("/test")
            },
            Ok("http://backend2:8080/test"),
        ),
        (
            "http://backend1",
            settings("/health"),
            Ok("http://backend1/health"),
        ),
        (
            "http://backend2",
            port(8080),
            Ok("http://backend2:8080/health"),
        ),
        (
            "https://backend1:80",
            HealthCheckSettings {
                scheme: Some("http".into()),
                ..settings("/test")
            },
            Ok("http://backend1:80/test"),
        ),
        (
            "http://backend1:80",
            settings("http://backend2/health?powpow=do"),
            Err(()),
        ),
        ("http://backend1:80", settings("//backend2/health"), Err(())),
        (
            "http://backend1:80",
            settings("/health?powpow=do"),
            Ok("http://backend1:80/health?powpow=do"),
        ),
        (
            "http://backend1:80",
            settings("/health?powpow=do&do=powpow"),
            Ok("http://backend1:80/health?powpow=do&do=powpow"),
        ),
        ("http://backend1:80", settings(":"), Err(())),
        (
            "http://backend1:80",
            settings("/"),
            Ok("http://backend1:80/"),
        ),
        // Relative references resolve against the server URL's path.
        (
            "http://h:80/api/v1",
            settings("health"),
            Ok("http://h:80/api/health"),
        ),
        (
            "http://h:80/api/v1/",
            settings("health"),
            Ok("http://h:80/api/v1/health"),
        ),
        (
            "http://h:80/api/v1",
            settings("../health"),
            Ok("http://h:80/health"),
        ),
        (
            "http://h:80/app/",
            settings("/health"),
            Ok("http://h:80/health"),
        ),
        (
            "http://h:80/a/b",
            settings("/x/./y/../z"),
            Ok("http://h:80/x/z"),
        ),
        ("http://h:80/a/b", settings("/x/.."), Ok("http://h:80/")),
        ("http://h:80", settings("health"), Ok("http://h:80/health")),
        // Empty path: the server URL itself, its query kept.
        (
            "http://h:80/base?q=1",
            settings(""),
            Ok("http://h:80/base?q=1"),
        ),
        (
            "http://h:80/base?q=1",
            settings("?x=2"),
            Ok("http://h:80/base?x=2"),
        ),
        ("http://h:80", settings(""), Ok("http://h:80/")),
        // Fragment dropped; unsafe bytes escaped; escapes kept.
        (
            "http://h:80",
            settings("/a b#frag"),
            Ok("http://h:80/a%20b"),
        ),
        (
            "http://h:80",
            settings("/%7Euser/{x}"),
            Ok("http://h:80/%7Euser/%7Bx%7D"),
        ),
        ("http://h:80", settings("/é"), Ok("http://h:80/%C3%A9")),
        ("http://h:80", settings("/a%zz"), Err(())),
        ("http://h:80", settings("/a\u{1}"), Err(())),
        ("http://h:80", settings("a:b/c"), Err(())),
        ("http://h:80", settings("1a:b"), Err(())),
        // IPv6 and user info survive a port override.
        (
            "http://[::1]:80",
            port(8080),
            Ok("http://[::1]:8080/health"),
        ),
        (
            "http://[fe80::1]",
            port(9000),
            Ok("http://[fe80::1]:9000/health"),
        ),
        ("http://u:p@h:80", port(81), Ok("http://u:p@h:81/health")),
        // A bad scheme override is an error, not a panic.
        (
            "http://h:80",
            HealthCheckSettings {
                scheme: Some("bad scheme".into()),
                ..settings("/")
            },
            Err(()),
        ),
    ];
    for (server, s, want) in cases {
        let got = probe_str(server, &s);
        match want {
            Ok(w) => assert_eq!(got.as_deref(), Ok(w), "{server} + {:?}", s.path),
            Err(()) => assert!(got.is_err(), "{server} + {:?} gave {got:?}", s.path),
        }
    }
}

#[test]
fn probe_uri_error_kinds() {
    let e = probe_uri(&uri("http://h"), &settings("http://x/health"));
    assert!(matches!(e, Err(HealthError::AbsolutePath { .. })));
    assert_eq!(
        e.map_err(|e| e.to_string()).err().as_deref(),
        Some("health check path must be a relative URL, got: \"http://x/health\"")
    );
    assert!(matches!(
        probe_uri(&uri("http://h"), &settings(":")),
        Err(HealthError::InvalidPath {
            reason: "missing protocol scheme",
            ..
        })
    ));
    assert!(matches!(
        probe_uri(&uri("http://h"), &settings("mailto:x")),
        Err(HealthError::AbsolutePath { .. })
    ));
}

#[test]
fn resolve_path_matches_go() {
    // Go's url_test.go resolveReferenceTests (path part).
    for (base, reference, want) in [
        ("/a/b", "", "/a/b"),
        ("", "", ""),
        ("/a/b", ".", "/a/"),
        ("/a/b", "./", "/a/"),
        ("/a/b", "..", "/"),
        ("/a/b/", "..", "/a/"),
        ("/a/b/c", "../..", "/"),
        ("/a/b/c", "../../..", "/"),
        ("/a/b/c", "../../../d", "/d"),
        ("/", "./foo/..", "/"),
        ("/", "./foo/../", "/"),
        ("/a/b/c/d/e", "../../../g", "/a/g"),
        ("/a/b/c/d/e", "../../../../g", "/g"),
        ("/a//b", "c", "/a//c"),
        ("/foo", "bar", "/bar"),
        ("/foo/", "bar", "/foo/bar"),
        ("/foo/bar", "./quux", "/foo/quux"),
        ("/", "//x", "/x"),
    ] {
        // `//x` as a reference would be an authority; here we test the merge only.
        let got = resolve_path(base, reference);
        if reference == "//x" {
            assert_eq!(resolve_path("", "/x"), want);
            continue;
        }
        assert_eq!(got, want, "{base} + {reference}");
    }
}

#[test]
fn error_messages_follow_traefik() {
    let e = HealthError::UnhealthyStatus {
        status: 500,
        expected: None,
    };
    assert_eq!(e.to_string(), "received error status code: 500");
    let e = HealthError::UnhealthyStatus {
        status: 200,
        expected: Some(503),
    };
    assert_eq!(
        e.to_string(),
        "received error status code: 200 expected status code: 503"
    );
    assert_eq!(
        HealthError::TooManyRedirects.to_string(),
        "stopped after 10 redirects"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Any configured path and port: an error or a URI whose path is
        /// absolute, on the server's host — never a panic.
        #[test]
        fn probe_uri_total(path in "\\PC{0,24}", port in proptest::option::of(any::<u16>())) {
            let s = HealthCheckSettings { path, port, ..HealthCheckSettings::default() };
            if let Ok(u) = probe_uri(&uri("http://[::1]:8080/a/b?c=d"), &s) {
                prop_assert!(u.path().starts_with('/'));
                prop_assert_eq!(u.host(), Some("[::1]"));
            }
        }

        /// Any `Location` value resolves or errors without panicking.
        #[test]
        fn location_resolution_total(location in "[ -~]{0,32}") {
            let base = uri("http://h:80/x/y");
            if let Ok(r) = parse_reference(&location) {
                let res = resolve(&base, &r);
                let _ = build_uri(res.scheme, res.authority, &res.path, res.query);
            }
        }
    }
}

// ---- the requests of one probe (Go's redirect rules) ----

fn plan_for<'a>(server: &str, s: &'a HealthCheckSettings) -> ProbePlan<'a> {
    ProbePlan::new(&uri(server), s).expect("plan")
}

fn header<'a>(r: &'a http::Request<()>, name: &HeaderName) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

fn redirect(plan: &mut ProbePlan<'_>, code: u16, to: &str) -> Result<Next, HealthError> {
    let status = StatusCode::from_u16(code).expect("status");
    plan.on_response(status, Some(&HeaderValue::from_str(to).expect("location")))
}

#[test]
fn first_request_is_origin_form_with_gos_host_and_headers() {
    let s = HealthCheckSettings {
        headers: vec![
            (
                HeaderName::from_static("x-custom"),
                HeaderValue::from_static("foo"),
            ),
            (HOST, HeaderValue::from_static("ignored")),
        ],
        method: Method::HEAD,
        ..settings("/health?x=1")
    };
    let plan = plan_for("http://10.0.0.1:80", &s);
    let r = plan.request();
    assert_eq!(r.method(), Method::HEAD);
    assert_eq!(r.uri().to_string(), "/health?x=1");
    assert_eq!(plan.uri().to_string(), "http://10.0.0.1:80/health?x=1");
    // Go keeps the default port in `Host`; a `Host` entry in `headers` is ignored.
    assert_eq!(header(&r, &HOST), Some("10.0.0.1:80"));
    assert_eq!(
        header(&r, &HeaderName::from_static("x-custom")),
        Some("foo")
    );
    let s = HealthCheckSettings {
        hostname: Some("myhost".into()),
        ..settings("/health")
    };
    assert_eq!(
        header(&plan_for("https://h:8443", &s).request(), &HOST),
        Some("myhost")
    );
    let bad = HealthCheckSettings {
        hostname: Some("bad\nhost".into()),
        ..settings("/health")
    };
    assert!(matches!(
        ProbePlan::new(&uri("http://h"), &bad),
        Err(HealthError::InvalidHostname { .. })
    ));
}

#[test]
fn statuses_are_final_unless_a_followed_redirect() {
    let s = settings("/health");
    let mut plan = plan_for("http://h:80", &s);
    assert_eq!(
        plan.on_response(StatusCode::OK, None).expect("ok"),
        Next::Done(StatusCode::OK)
    );
    // A 3xx without Location (or with an empty one) is final.
    let mut plan = plan_for("http://h:80", &s);
    assert_eq!(
        plan.on_response(StatusCode::FOUND, None).expect("ok"),
        Next::Done(StatusCode::FOUND)
    );
    // Not following: the redirect itself is judged.
    let no_follow = HealthCheckSettings {
        follow_redirects: false,
        ..settings("/redirect")
    };
    let mut plan = plan_for("http://h:80", &no_follow);
    assert_eq!(
        redirect(&mut plan, 302, "/health").expect("ok"),
        Next::Done(StatusCode::FOUND)
    );
}

#[test]
fn redirects_follow_gos_rules() {
    // 303 turns POST into GET; Referer is the previous URL; a relative Location keeps the Host override.
    let s = HealthCheckSettings {
        method: Method::POST,
        hostname: Some("myhost".into()),
        ..settings("/see-other")
    };
    let mut plan = plan_for("http://u:p@h:80", &s);
    assert_eq!(
        redirect(&mut plan, 303, "health").expect("ok"),
        Next::Follow
    );
    let r = plan.request();
    assert_eq!(r.method(), Method::GET);
    assert_eq!(r.uri().to_string(), "/health");
    assert_eq!(header(&r, &REFERER), Some("http://h:80/see-other"));
    assert_eq!(header(&r, &HOST), Some("myhost"));

    // 307 keeps the method.
    let s = HealthCheckSettings {
        method: Method::POST,
        ..settings("/temporary")
    };
    let mut plan = plan_for("http://h:80", &s);
    assert_eq!(
        redirect(&mut plan, 307, "/health").expect("ok"),
        Next::Follow
    );
    assert_eq!(plan.request().method(), Method::POST);

    // An absolute redirect to another host drops the Host override and credentials; to https it is
    // followed (the prober speaks TLS).
    let s = HealthCheckSettings {
        hostname: Some("myhost".into()),
        headers: vec![(AUTHORIZATION, HeaderValue::from_static("Basic eA=="))],
        ..settings("/abs")
    };
    let mut plan = plan_for("http://h:80", &s);
    assert!(plan.request().headers().contains_key(AUTHORIZATION));
    assert_eq!(
        redirect(&mut plan, 301, "https://other:8443/health").expect("ok"),
        Next::Follow
    );
    assert_eq!(plan.uri().to_string(), "https://other:8443/health");
    let r = plan.request();
    assert!(!r.headers().contains_key(AUTHORIZATION));
    assert_eq!(header(&r, &HOST), Some("other:8443"));
}

#[test]
fn redirect_errors() {
    let s = settings("/loop");
    let mut plan = plan_for("http://h:80", &s);
    for i in 1..MAX_REQUESTS_PER_PROBE {
        assert_eq!(
            redirect(&mut plan, 302, &format!("/loop/{i}")).expect("ok"),
            Next::Follow
        );
    }
    assert!(matches!(
        redirect(&mut plan, 302, "/loop/10"),
        Err(HealthError::TooManyRedirects)
    ));
    let mut plan = plan_for("http://h:80", &s);
    assert!(matches!(
        redirect(&mut plan, 302, "mailto:x"),
        Err(HealthError::BadRedirect { .. })
    ));
    let mut plan = plan_for("http://h:80", &s);
    let location = HeaderValue::from_bytes(b"/\xff").expect("bytes");
    assert!(matches!(
        plan.on_response(StatusCode::FOUND, Some(&location)),
        Err(HealthError::BadRedirect { .. })
    ));
}
