//! Observability against the real binary: ping (200, then 503 while draining), `swarmgate healthcheck` exit
//! codes, Prometheus counts per entrypoint/router/service after traffic (and removed servers' series
//! disappearing), and access-log lines in the common and JSON formats.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::time::Duration;

use support::{get, poll_until, write_atomic, Backend, Gate};

/// A port for flags that need a fixed address, like `healthcheck`'s (see `support::free_port`).
fn free_port() -> u16 {
    support::free_port()
}

fn healthcheck(flags: &[String]) -> (i32, String) {
    let out = std::process::Command::new(support::bin())
        .arg("healthcheck")
        .args(flags)
        .env_remove("TRAEFIK_PING")
        .output()
        .expect("run healthcheck");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn ping_turns_503_while_draining_and_healthcheck_follows() {
    let port = free_port();
    let ep = format!("--entrypoints.traefik.address=127.0.0.1:{port}");
    let mut gate = Gate::with_dynamic(
        "http: {}\n",
        &[
            "--ping",
            &ep,
            "--entryPoints.web.transport.lifeCycle.requestAcceptGraceTimeout=3s",
            "--entryPoints.traefik.transport.lifeCycle.requestAcceptGraceTimeout=3s",
        ],
    );
    let addr = gate.ep("traefik");
    let r = get(addr, "localhost", "/ping").await;
    assert_eq!(r.status, 200, "{}", gate.logs());
    assert_eq!(r.body, "OK");

    let flags = vec!["--ping".to_string(), ep.clone()];
    let (code, out) = healthcheck(&flags);
    assert_eq!(code, 0, "healthcheck against a healthy instance: {out}");

    gate.signal("TERM");
    let draining = poll_until(Duration::from_secs(2), || async {
        get(addr, "localhost", "/ping").await.status == 503
    })
    .await;
    assert!(
        draining,
        "ping must answer 503 while accepting during requestAcceptGraceTimeout\n{}",
        gate.logs()
    );
    let (code, out) = healthcheck(&flags);
    assert_eq!(code, 1, "healthcheck while draining: {out}");
    assert!(out.contains("503"), "{out}");
    assert!(gate.wait_exit(Duration::from_secs(15)).is_some());

    // Nothing listening, ping disabled: both exit 1 with a reason.
    let (code, out) = healthcheck(&flags);
    assert_eq!(code, 1, "{out}");
    let (code, out) = healthcheck(&[ep]);
    assert_eq!(code, 1);
    assert!(out.contains("enable `ping`"), "{out}");
}

fn scrape_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_per_entrypoint_router_and_service_and_forget_removed_servers() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let dynamic = |servers: &[&str]| {
        let list: String = servers
            .iter()
            .map(|u| format!("          - url: {u}\n"))
            .collect();
        format!(
            "http:\n  routers:\n    app:\n      rule: Host(`app.test`)\n      service: app\n    other:\n      rule: Host(`other.test`)\n      service: other\n  services:\n    app:\n      loadBalancer:\n        servers:\n{list}    other:\n      loadBalancer:\n        servers:\n          - url: {}\n",
            b.url
        )
    };
    let gate = Gate::with_dynamic(
        &dynamic(&[&a.url, &b.url]),
        &[
            "--metrics.prometheus",
            "--metrics.prometheus.addRoutersLabels=true",
            "--entrypoints.traefik.address=127.0.0.1:0",
        ],
    );
    let web = gate.web();
    for _ in 0..5 {
        assert_eq!(get(web, "app.test", "/").await.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(web, "other.test", "/").await.status, 200);
    }
    assert_eq!(get(web, "nobody.test", "/").await.status, 404);
    let text = get(gate.ep("traefik"), "localhost", "/metrics").await.body;
    let v = |s: &str| scrape_value(&text, s);
    assert_eq!(
        v("traefik_service_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",service=\"app@file\"}"),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        v("traefik_service_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",service=\"other@file\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        v("traefik_router_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",router=\"app@file\"}"),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        v("traefik_entrypoint_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",entrypoint=\"web\"}"),
        Some(8.0),
        "{text}"
    );
    assert_eq!(
        v("traefik_entrypoint_requests_total{code=\"404\",method=\"GET\",protocol=\"http\",entrypoint=\"web\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        v("traefik_service_request_duration_seconds_count{protocol=\"http\",service=\"app@file\"}"),
        Some(5.0),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("traefik_entrypoint_requests_total")
                && l.contains("entrypoint=\"traefik\"")),
        "scrapes of internal services are not counted\n{text}"
    );
    let up_a = format!(
        "traefik_service_server_up{{service=\"app@file\",url=\"{}\"}}",
        a.url
    );
    assert_eq!(v(&up_a), Some(1.0), "{text}");

    // Remove server a: its series disappears, the service's counters continue.
    write_atomic(&gate.dynamic_file(), &dynamic(&[&b.url]));
    let traefik = gate.ep("traefik");
    let gone = poll_until(Duration::from_secs(5), || async {
        !get(traefik, "localhost", "/metrics")
            .await
            .body
            .contains(&up_a)
    })
    .await;
    assert!(
        gone,
        "removed server's series must disappear\n{}",
        gate.logs()
    );
    let text = get(traefik, "localhost", "/metrics").await.body;
    assert_eq!(
        scrape_value(&text, "traefik_service_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",service=\"app@file\"}"),
        Some(5.0),
        "{text}"
    );
    assert!(
        scrape_value(&text, "traefik_config_reloads_total").unwrap_or(0.0) >= 2.0,
        "{text}"
    );
}

#[tokio::test]
async fn access_log_lines_in_common_and_json_formats() {
    let a = Backend::start("a").await;
    let dynamic = format!(
        "http:\n  routers:\n    app:\n      rule: Host(`app.test`)\n      service: app\n  services:\n    app:\n      loadBalancer:\n        servers:\n          - url: {}\n",
        a.url
    );
    for format in ["common", "json"] {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("access.log");
        let gate = Gate::with_dynamic(
            &dynamic,
            &[
                "--accesslog",
                &format!("--accesslog.filepath={}", log.display()),
                &format!("--accesslog.format={format}"),
                "--accesslog.fields.headers.names.User-Agent=keep",
            ],
        );
        let web = gate.web();
        let r = support::get_with(
            &support::client(),
            web,
            "app.test",
            "/hello?x=1",
            &[("user-agent", "obs-test/1")],
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(get(web, "nobody.test", "/missing").await.status, 404);
        let read = || std::fs::read_to_string(&log).unwrap_or_default();
        let ok = poll_until(Duration::from_secs(5), || async {
            read().lines().count() >= 2
        })
        .await;
        assert!(
            ok,
            "two lines expected in {format}:\n{}\n{}",
            read(),
            gate.logs()
        );
        let text = read();
        let lines: Vec<&str> = text.lines().collect();
        if format == "common" {
            let l = lines
                .iter()
                .find(|l| l.contains("/hello"))
                .expect("hello line");
            assert!(l.starts_with("127.0.0.1 - - ["), "{l}");
            assert!(l.contains("\"GET /hello?x=1 HTTP/1.1\" 200 "), "{l}");
            assert!(l.contains("\"-\" \"obs-test/1\" "), "{l}");
            assert!(l.contains(&format!("\"app@file\" \"{}\" ", a.url)), "{l}");
            assert!(l.ends_with("ms"), "{l}");
            let miss = lines
                .iter()
                .find(|l| l.contains("/missing"))
                .expect("404 line");
            assert!(miss.contains("\" 404 "), "{miss}");
        } else {
            let v: serde_json::Value = serde_json::from_str(
                lines
                    .iter()
                    .find(|l| l.contains("/hello"))
                    .expect("hello line"),
            )
            .expect("json line");
            assert_eq!(v["ClientHost"], "127.0.0.1");
            assert_eq!(v["RequestMethod"], "GET");
            assert_eq!(v["RequestPath"], "/hello?x=1");
            assert_eq!(v["RequestProtocol"], "HTTP/1.1");
            assert_eq!(v["RequestHost"], "app.test");
            assert_eq!(v["DownstreamStatus"], 200);
            assert_eq!(v["OriginStatus"], 200);
            assert_eq!(v["RouterName"], "app@file");
            assert_eq!(v["ServiceName"], "app@file");
            assert_eq!(v["ServiceURL"], a.url.as_str());
            assert_eq!(v["RetryAttempts"], 0);
            assert_eq!(v["request_User-Agent"], "obs-test/1");
            assert!(v["Duration"].as_u64().is_some(), "{v}");
            assert!(
                v["StartUTC"].as_str().is_some_and(|s| s.ends_with('Z')),
                "{v}"
            );
            assert_eq!(v["level"], "info");
        }
    }
}

#[tokio::test]
async fn sighup_reloads_the_file_provider_without_watch() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("dynamic.yml");
    let cfg = |host: &str| {
        format!(
            "http:\n  routers:\n    app:\n      rule: Host(`{host}`)\n      service: app\n  services:\n    app:\n      loadBalancer:\n        servers:\n          - url: {}\n",
            a.url
        )
    };
    std::fs::write(&file, cfg("one.test")).expect("write");
    let args = vec![
        "--entrypoints.web.address=127.0.0.1:0".to_string(),
        format!("--providers.file.filename={}", file.display()),
        "--providers.providersThrottleDuration=10ms".to_string(),
    ];
    let gate = Gate::start_in(dir, &args, 1);
    assert!(
        gate.wait_log("swarmgate started", Duration::from_secs(5)),
        "startup summary line\n{}",
        gate.logs()
    );
    let web = gate.web();
    assert_eq!(get(web, "one.test", "/").await.status, 200);
    write_atomic(&gate.dir.path().join("dynamic.yml"), &cfg("two.test"));
    // Without watch, nothing changes until SIGHUP. Deliberate gap: 300 ms in which a watcher would have applied
    // the change (and must not); a condition that must stay false cannot be polled for.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(web, "two.test", "/").await.status, 404);
    gate.signal("HUP");
    let reloaded = poll_until(Duration::from_secs(5), || async {
        get(web, "two.test", "/").await.status == 200
    })
    .await;
    assert!(reloaded, "SIGHUP must re-read the file\n{}", gate.logs());
}

#[tokio::test]
async fn certificates_in_the_api_and_their_expiry_in_metrics() {
    let (cert, key) = support::self_signed(&["shop.example.com", "www.shop.example.com"]);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("c.pem"), &cert).expect("write");
    std::fs::write(dir.path().join("k.pem"), &key).expect("write");
    let dynamic = format!(
        "tls:\n  certificates:\n    - certFile: {}\n      keyFile: {}\nhttp: {{}}\n",
        dir.path().join("c.pem").display(),
        dir.path().join("k.pem").display()
    );
    let gate = Gate::with_dynamic(
        &dynamic,
        &[
            "--api.insecure",
            "--metrics.prometheus",
            "--entrypoints.traefik.address=127.0.0.1:0",
        ],
    );
    let admin = gate.ep("traefik");
    let r = get(admin, "localhost", "/api/certificates").await;
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    let c = &v[0];
    assert_eq!(
        c["sans"],
        serde_json::json!(["shop.example.com", "www.shop.example.com"]),
        "{v}"
    );
    assert_eq!(c["status"], "enabled", "{v}");
    for k in [
        "name",
        "notAfter",
        "notBefore",
        "serialNumber",
        "certFingerprint",
    ] {
        assert!(c[k].as_str().is_some_and(|s| !s.is_empty()), "{k}: {v}");
    }
    let text = get(admin, "localhost", "/metrics").await.body;
    assert!(
        text.lines()
            .any(|l| l.starts_with("traefik_tls_certs_not_after{")
                && l.contains("sans=\"shop.example.com,www.shop.example.com\"")),
        "{text}"
    );
}
