//! The API's JSON against fixtures of what Traefik returns for the same file config
//! (`tests/fixtures/api/dynamic.yml`). The fixtures were written from Traefik's source (`pkg/api/handler_*.go`,
//! `pkg/config/runtime/runtime_http.go`, `pkg/server/aggregator.go` defaults, and its `pkg/api/testdata`
//! golden files): field names, omitted empty fields, defaults filled in by Traefik.
//!
//! Normalized before comparing: error messages (`"error": ["*"]` — the wording is ours, the field is
//! Traefik's) and swarmgate's extension fields (`boundAddress`). Known, documented differences are asserted
//! explicitly below rather than hidden.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use serde_json::Value;
use support::{get, Gate};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/api/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture json")
}

/// Replaces error texts by `*` and drops swarmgate's extension fields, recursively.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("boundAddress");
            if let Some(Value::Array(errs)) = m.get_mut("error") {
                for e in errs.iter_mut() {
                    *e = Value::String("*".into());
                }
                errs.dedup();
            }
            for (_, x) in m.iter_mut() {
                normalize(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

async fn api(gate: &Gate, path: &str) -> Value {
    let r = get(gate.ep("traefik"), "localhost", path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{path}"
    );
    let mut v: Value = serde_json::from_str(&r.body).expect("json");
    normalize(&mut v);
    v
}

fn same(path: &str, got: &Value, want: &Value) {
    assert_eq!(
        got,
        want,
        "{path}\n got: {}\nwant: {}",
        serde_json::to_string_pretty(got).unwrap_or_default(),
        serde_json::to_string_pretty(want).unwrap_or_default()
    );
}

#[tokio::test]
async fn api_json_matches_traefik_for_the_same_file_config() {
    let dynamic = std::fs::read_to_string(format!(
        "{}/tests/fixtures/api/dynamic.yml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("dynamic");
    let gate = Gate::with_dynamic(
        &dynamic,
        &[
            "--api.insecure",
            "--entrypoints.traefik.address=127.0.0.1:0",
            // Traefik's default readTimeout (60 s), so the entrypoint fixture is Traefik's defaults.
            "--entrypoints.web.transport.respondingTimeouts.readTimeout=60s",
            "--entrypoints.traefik.transport.respondingTimeouts.readTimeout=60s",
        ],
    );

    // Lists filtered to the file provider (`?provider=file` is Traefik's filter too).
    for (path, file) in [
        ("/api/http/routers?provider=file", "routers.json"),
        ("/api/http/services?provider=file", "services.json"),
        ("/api/http/middlewares?provider=file", "middlewares.json"),
        ("/api/entrypoints", "entrypoints.json"),
    ] {
        same(path, &api(&gate, path).await, &fixture(file));
    }

    // One item by name, percent-encoded as Traefik's dashboard requests it.
    let one = api(&gate, "/api/http/routers/app%40file").await;
    same("router app@file", &one, &fixture("routers.json")[0]);

    // rawdata: only the file provider's items are in the fixture; internal ones are checked by name.
    let mut raw = api(&gate, "/api/rawdata").await;
    for kind in ["routers", "services", "middlewares"] {
        if let Some(Value::Object(m)) = raw.get_mut(kind) {
            let internal: Vec<String> = m
                .keys()
                .filter(|k| k.ends_with("@internal"))
                .cloned()
                .collect();
            if kind == "routers" {
                assert_eq!(internal, ["api@internal", "dashboard@internal"], "{kind}");
            }
            if kind == "services" {
                assert_eq!(
                    internal,
                    ["api@internal", "dashboard@internal", "noop@internal"],
                    "{kind}"
                );
            }
            m.retain(|k, _| !k.ends_with("@internal"));
        }
    }
    same("/api/rawdata", &raw, &fixture("rawdata.json"));

    // overview: Traefik also has the middlewares dashboard_redirect@internal and dashboard_stripprefix@internal,
    // which swarmgate does not need (it serves /dashboard/ itself): 2 fewer middlewares, the only difference.
    let mut want = fixture("overview.json");
    let traefik_total = want["http"]["middlewares"]["total"].as_u64().unwrap_or(0);
    want["http"]["middlewares"]["total"] = Value::from(traefik_total - 2);
    same("/api/overview", &api(&gate, "/api/overview").await, &want);

    let v = api(&gate, "/api/version").await;
    let keys: Vec<&String> = v
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["Codename", "Version", "startDate"], "{v}");

    // Unknown items: 404 with a JSON message, as Traefik.
    let r = get(
        gate.ep("traefik"),
        "localhost",
        "/api/http/routers/nope@file",
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("not found"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_entrypoint_answers_404_outside_api_dashboard_ping_and_metrics() {
    let gate = Gate::with_dynamic(
        "http: {}\n",
        &[
            "--api.insecure",
            "--ping",
            "--metrics.prometheus",
            "--entrypoints.traefik.address=127.0.0.1:0",
        ],
    );
    let admin = gate.ep("traefik");
    for (path, want) in [
        ("/api/overview", 200),
        ("/ping", 200),
        ("/metrics", 200),
        ("/dashboard/", 200),
        ("/", 302),
        ("/dashboard", 302),
        ("/health", 404),
        ("/healthz", 404),
        ("/dashboard/nope.js", 404),
        ("/index.html", 404),
    ] {
        let r = get(admin, "localhost", path).await;
        assert_eq!(r.status.as_u16(), want, "{path}: {}", r.body);
    }
}

/// Item 4 of issue 16: the API writes configurations as Traefik does — typed option values (numbers,
/// booleans, lists; the configuration tree holds text), the defaults Traefik's structs set (load balancer,
/// health check, circuit breaker), and an entrypoint's `http.tls` on the routers that inherit it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_writes_typed_values_defaults_and_inherited_tls() {
    let dynamic = r#"
http:
  routers:
    plain:
      entryPoints: [web]
      rule: Host(`plain.test`)
      service: app
      middlewares: [sec, cb]
    secure:
      entryPoints: [websecure]
      rule: Host(`secure.test`)
      service: app
  services:
    app:
      loadBalancer:
        servers:
          - url: http://127.0.0.1:1
        healthCheck:
          path: /health
          interval: 10
  middlewares:
    sec:
      headers:
        stsSeconds: "42"
        frameDeny: "true"
        accessControlAllowMethods: GET, PUT
    cb:
      circuitBreaker:
        expression: NetworkErrorRatio() > 0.5
"#;
    let gate = Gate::with_dynamic(
        dynamic,
        &[
            "--api.insecure",
            "--entrypoints.traefik.address=127.0.0.1:0",
            "--entrypoints.websecure.address=127.0.0.1:0",
            "--entrypoints.websecure.http.tls.certresolver=le",
            "--certificatesresolvers.le.acme.email=admin@example.test",
            "--certificatesresolvers.le.acme.storage=acme.json",
            // Loopback, nothing listens: no certificate is ever ordered.
            "--certificatesresolvers.le.acme.caserver=https://127.0.0.1:9/directory",
            "--certificatesresolvers.le.acme.tlschallenge=true",
        ],
    );
    let m = api(&gate, "/api/http/middlewares/sec@file").await;
    assert_eq!(
        m["headers"],
        serde_json::json!({"stsSeconds": 42, "frameDeny": true, "accessControlAllowMethods": ["GET", "PUT"]}),
        "{m}"
    );
    let m = api(&gate, "/api/http/middlewares/cb@file").await;
    assert_eq!(
        m["circuitBreaker"],
        serde_json::json!({"expression": "NetworkErrorRatio() > 0.5", "checkPeriod": "100ms",
                           "fallbackDuration": "10s", "recoveryDuration": "10s", "responseCode": 503}),
        "{m}"
    );
    let s = api(&gate, "/api/http/services/app@file").await;
    let lb = &s["loadBalancer"];
    assert_eq!(lb["passHostHeader"], Value::Bool(true), "{s}");
    assert_eq!(lb["strategy"], "wrr", "{s}");
    assert_eq!(lb["responseForwarding"]["flushInterval"], "100ms", "{s}");
    assert_eq!(
        lb["healthCheck"],
        serde_json::json!({"path": "/health", "interval": "10s", "timeout": "5s", "mode": "http",
                           "followRedirects": true}),
        "{s}"
    );
    let r = api(&gate, "/api/http/routers/secure@file").await;
    assert_eq!(
        r["tls"],
        serde_json::json!({"certResolver": "le", "options": "default"}),
        "{r}"
    );
    let r = api(&gate, "/api/http/routers/plain@file").await;
    assert!(r.get("tls").is_none(), "{r}");
    let raw = api(&gate, "/api/rawdata").await;
    assert_eq!(raw["routers"]["secure@file"]["tls"]["certResolver"], "le");
    assert_eq!(raw["middlewares"]["sec@file"]["headers"]["stsSeconds"], 42);
}
