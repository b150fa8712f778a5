//! `examples/stack.yml`, deployed as a user would: `scripts/image.sh` builds the images, `docker stack deploy
//! --resolve-image=never -c examples/stack.yml` starts swarmgate (global), its socket guard (global on
//! managers) and the whoami demo; the test then checks, through the published host-mode ports only: the
//! demo routes and rotates over its tasks, the sticky cookie pins a client to one task, the dashboard and
//! API answer on the dashboard port and nowhere else, and the start-up logs of swarmgate and the guard hold
//! no ERROR line.
//!
//! Slow (a release build when the images are stale, then a stack deploy): runs only with
//! `SWARMGATE_SLOW_TESTS=1`; otherwise it prints a note and passes.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use support::docker::{self, docker, docker_ok, wait_for};
use support::{client, poll_until};

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// Removes the stack on drop (also on panic) and waits until its networks are gone.
struct Stack(String);

impl Drop for Stack {
    fn drop(&mut self) {
        docker(&["stack", "rm", &self.0]);
        let label = format!("label=com.docker.stack.namespace={}", self.0);
        wait_for(Duration::from_secs(60), || {
            docker_ok(&["network", "ls", "-q", "--filter", &label]).is_empty()
        });
    }
}

struct Answer {
    status: StatusCode,
    hostname: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

async fn hit(
    c: &HttpClient,
    port: u16,
    host: &str,
    path: &str,
    cookie: Option<&str>,
) -> Option<Answer> {
    let mut b = http::Request::get(format!("http://127.0.0.1:{port}{path}")).header("host", host);
    if let Some(ck) = cookie {
        b = b.header("cookie", ck);
    }
    let req = b.body(Full::new(Bytes::new())).ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(5), c.request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status();
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    let body = String::from_utf8_lossy(&body).to_string();
    let hostname = body
        .lines()
        .find_map(|l| l.strip_prefix("Hostname: "))
        .map(str::to_string);
    Some(Answer {
        status,
        hostname,
        set_cookie,
        body,
    })
}

fn service_logs(name: &str) -> String {
    docker::logs(name, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_yml_deploys_routes_sticks_and_keeps_the_dashboard_on_its_port() {
    if std::env::var("SWARMGATE_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("stack_deploy: skipped (set SWARMGATE_SLOW_TESTS=1 to run it; it builds release images)");
        return;
    }
    if !docker::engine_or_skip(
        "stack_yml_deploys_routes_sticks_and_keeps_the_dashboard_on_its_port",
    ) {
        return;
    }
    docker::ensure_swarm();
    let root = env!("CARGO_MANIFEST_DIR");
    let t0 = Instant::now();
    let o = Command::new("bash")
        .arg(format!("{root}/scripts/image.sh"))
        .output()
        .expect("scripts/image.sh");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "scripts/image.sh: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("scripts/image.sh in {:?}:\n{out}", t0.elapsed());

    let name = format!("h18sg{:04x}", fastrand::u16(..));
    let (http_port, https_port, dash_port) = (
        docker::free_port(),
        docker::free_port(),
        docker::free_port(),
    );
    let t1 = Instant::now();
    let _stack = Stack(name.clone());
    let o = Command::new("docker")
        .args(["stack", "deploy", "--resolve-image=never", "-c"])
        .arg(format!("{root}/examples/stack.yml"))
        .arg(&name)
        .env("HTTP_PORT", http_port.to_string())
        .env("HTTPS_PORT", https_port.to_string())
        .env("DASHBOARD_PORT", dash_port.to_string())
        .output()
        .expect("docker stack deploy");
    assert!(
        o.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let c = client();
    let gate = format!("{name}_swarmgate");
    let guard = format!("{name}_guard");
    let routed = poll_until(Duration::from_secs(120), || {
        let c = &c;
        async move {
            matches!(hit(c, http_port, "whoami.localhost", "/", None).await,
                Some(a) if a.status == StatusCode::OK)
        }
    })
    .await;
    assert!(
        routed,
        "whoami.localhost never answered; swarmgate: {}\nguard: {}",
        service_logs(&gate),
        service_logs(&guard)
    );
    eprintln!("stack deploy → first routed answer in {:?}", t1.elapsed());

    // Every task of the demo serves, in turn.
    let all = poll_until(Duration::from_secs(60), || {
        let c = &c;
        async move {
            let mut seen = BTreeSet::new();
            for _ in 0..12 {
                if let Some(Answer {
                    hostname: Some(h), ..
                }) = hit(c, http_port, "whoami.localhost", "/", None).await
                {
                    seen.insert(h);
                }
            }
            seen.len() == 3
        }
    })
    .await;
    assert!(all, "not every whoami task is in rotation");

    // The sticky cookie pins a client to one task.
    let first = hit(&c, http_port, "whoami.localhost", "/", None)
        .await
        .unwrap();
    let cookie = first.set_cookie.clone().expect("a sticky cookie");
    assert!(cookie.starts_with("whoami_sticky="), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    for _ in 0..10 {
        let a = hit(&c, http_port, "whoami.localhost", "/", Some(&pair))
            .await
            .unwrap();
        assert_eq!(a.hostname, first.hostname, "the cookie did not stick");
    }

    // Dashboard and API: on the dashboard port, and not on the web port.
    let d = hit(&c, dash_port, "127.0.0.1", "/dashboard/", None)
        .await
        .unwrap();
    assert_eq!(d.status, StatusCode::OK);
    let api = hit(&c, dash_port, "127.0.0.1", "/api/http/routers", None)
        .await
        .unwrap();
    assert!(
        api.status == StatusCode::OK && api.body.contains("whoami"),
        "{}",
        api.body
    );
    for path in ["/dashboard/", "/api/http/routers", "/api/rawdata"] {
        let a = hit(&c, http_port, "127.0.0.1", path, None).await.unwrap();
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path} on the web port");
    }

    // Start-up logs a newcomer can read: no ERROR line from swarmgate or the guard.
    for svc in [&gate, &guard] {
        let logs = service_logs(svc);
        eprintln!("--- {svc} start-up log ---\n{logs}");
        assert!(!logs.contains("ERROR"), "{svc} logged an ERROR: {logs}");
        assert!(!logs.is_empty(), "{svc}: no log at all");
    }
    assert!(
        !service_logs(&guard).contains("refused"),
        "swarmgate made a call the guard refused"
    );
}
