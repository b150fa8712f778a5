//! Active health checks of HTTPS servers through the real binary: probed with the same TLS settings as
//! traffic (`serversTransport.insecureSkipVerify` here), a failing server leaves the rotation and comes back.

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

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::{client, get, poll_until, send, Backend, Gate};

/// Sets a TLS whoami's `/health` answer through the gate's `ctl.test` router (no health check there).
async fn set_health(gate: &Gate, server: &str, status: &str) {
    let req = Request::post(format!("http://{}/health", gate.web()))
        .header(http::header::HOST, format!("ctl-{server}.test"))
        .body(Full::new(Bytes::from(status.to_string())))
        .expect("req");
    let r = send(&client(), req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_servers_are_checked_and_leave_and_rejoin_the_rotation() {
    let ((a, _), (b, _)) = (Backend::start_tls("A").await, Backend::start_tls("B").await);
    let dynamic = format!(
        "http:\n  routers:\n    r:\n      rule: Host(`h.test`)\n      service: s\n    ctl-a:\n      rule: Host(`ctl-a.test`)\n      service: ctl-a\n    ctl-b:\n      rule: Host(`ctl-b.test`)\n      service: ctl-b\n  services:\n    s:\n      loadBalancer:\n        healthCheck:\n          path: /health\n          interval: 100ms\n          timeout: 1s\n        servers:\n          - url: \"{a}\"\n          - url: \"{b}\"\n    ctl-a:\n      loadBalancer:\n        servers:\n          - url: \"{a}\"\n    ctl-b:\n      loadBalancer:\n        servers:\n          - url: \"{b}\"\n",
        a = a.url,
        b = b.url
    );
    let gate = Gate::with_dynamic(&dynamic, &["--serversTransport.insecureSkipVerify=true"]);
    set_health(&gate, "b", "500").await;
    let only_a = poll_until(Duration::from_secs(5), || async {
        let mut all_a = true;
        for _ in 0..4 {
            all_a &= get(gate.web(), "h.test", "/").await.backend() == Some("A");
        }
        all_a
    })
    .await;
    assert!(only_a, "B still in rotation:\n{}", gate.logs());
    assert!(
        gate.wait_log(
            "health check failed, server is down",
            Duration::from_secs(5)
        ),
        "the prober marked B down:\n{}",
        gate.logs()
    );
    assert!(
        !gate.logs().contains("not supported"),
        "HTTPS servers are checked, not skipped:\n{}",
        gate.logs()
    );
    set_health(&gate, "b", "200").await;
    let back = poll_until(Duration::from_secs(5), || async {
        get(gate.web(), "h.test", "/").await.backend() == Some("B")
    })
    .await;
    assert!(back, "B did not come back:\n{}", gate.logs());
    assert!(
        gate.wait_log("health check passed, server is up", Duration::from_secs(5)),
        "{}",
        gate.logs()
    );
}
