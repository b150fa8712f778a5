//! The Swarm provider against the real engine: swarmgate runs as a Swarm service (host-mode port on
//! 127.0.0.1, Docker socket bind-mounted), backends are Swarm services on a test overlay network.
//!
//! The engine is made a one-node Swarm manager if it is not one (`docker swarm init --advertise-addr
//! 127.0.0.1`) and left so. Ingress-mode ports and service VIPs (IPVS) do not work on this machine, so
//! swarmgate's port is published in host mode and it routes to task IPs.
//!
//! Measurements (`eprintln!`, run with `--nocapture`):
//! - convergence: `SGT_TRIALS=20 cargo test --test swarm_services convergence -- --nocapture`
//!   (default 3 trials);
//! - rolling update under load: `SGT_ROLLING_SECS=30 cargo test --test swarm_services rolling -- --nocapture`
//!   (default 10 s of load).
//!
//! Without a Docker engine these tests fail, unless `SWARMGATE_SKIP_DOCKER_TESTS=1` is set (then each one
//! prints a loud skip note and passes).

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use support::client;
use support::docker::{self, docker, docker_ok, percentile, Cleanup, Images};

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

struct Swarm {
    p: String,
    net: String,
    img: Images,
    clean: Cleanup,
}

impl Swarm {
    fn new(test: &str) -> Swarm {
        docker::ensure_swarm();
        let p = docker::prefix(test);
        let img = docker::images();
        let clean = Cleanup::default();
        let net = docker::create_network(&p, true, &clean);
        Swarm { p, net, img, clean }
    }

    fn service(&self, name: &str, args: &[&str], image_args: &[&str]) -> String {
        let sname = format!("{}-{name}", self.p);
        let mut a: Vec<String> = vec![
            "service".into(),
            "create".into(),
            "-d".into(),
            "--name".into(),
            sname.clone(),
            "--network".into(),
            self.net.clone(),
        ];
        a.extend(["--label".into(), format!("sgt.run={}", self.p)]);
        a.extend(args.iter().map(|s| s.to_string()));
        self.clean.service(&sname);
        a.push(if name.contains("gate") || name == "traefik" {
            self.img.gate.clone()
        } else {
            self.img.whoami.clone()
        });
        a.extend(image_args.iter().map(|s| s.to_string()));
        docker_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
        sname
    }

    /// swarmgate as a service with the v3 swarm provider limited to this test's services.
    fn gate(&self, extra: &[&str]) -> (String, u16) {
        let port = docker::free_port();
        let publish = format!("mode=host,target=80,published={port}");
        let mut flags = vec![
            "--entrypoints.web.address=:80".to_string(),
            "--providers.swarm=true".into(),
            format!("--providers.swarm.network={}", self.net),
            format!(
                "--providers.swarm.constraints=Label(`sgt.run`, `{}`)",
                self.p
            ),
            "--providers.providersThrottleDuration=50ms".into(),
        ];
        flags.extend(extra.iter().map(|s| s.to_string()));
        let f: Vec<&str> = flags.iter().map(String::as_str).collect();
        let name = self.service(
            "gate",
            &[
                "--publish",
                &publish,
                "--mount",
                "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock",
                "--constraint=node.role==manager",
            ],
            &f,
        );
        (name, port)
    }
}

/// One GET with `Host`, optional cookie; returns status, the whoami `Hostname:` and `Set-Cookie`.
async fn hit(
    c: &HttpClient,
    port: u16,
    host: &str,
    cookie: Option<&str>,
) -> Option<(StatusCode, Option<String>, Option<String>)> {
    let mut b = http::Request::get(format!("http://127.0.0.1:{port}/")).header("host", host);
    if let Some(ck) = cookie {
        b = b.header("cookie", ck);
    }
    let req = b.body(Full::new(Bytes::new())).ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(5), c.request(req))
        .await
        .ok()?
        .ok()?;
    let st = resp.status();
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    let text = String::from_utf8_lossy(&body).to_string();
    Some((
        st,
        text.lines()
            .find_map(|l| l.strip_prefix("Hostname: "))
            .map(str::to_string),
        set_cookie,
    ))
}

async fn wait_ok(c: &HttpClient, port: u16, host: &str, timeout: Duration) -> bool {
    support::poll_until(timeout, || async {
        matches!(hit(c, port, host, None).await, Some((StatusCode::OK, _, _)))
    })
    .await
}

/// Distinct hostnames answering `host` over `n` requests.
async fn hostnames(c: &HttpClient, port: u16, host: &str, n: usize) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for _ in 0..n {
        if let Some((StatusCode::OK, Some(h), _)) = hit(c, port, host, None).await {
            s.insert(h);
        }
    }
    s
}

fn running_tasks(service: &str) -> usize {
    let o = docker(&[
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
    ]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("Running"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tutorial_stack_verbatim() {
    if !docker::engine_or_skip("tutorial_stack_verbatim") {
        return;
    }
    let s = Swarm::new("tut");
    let port = docker::free_port();
    let publish = format!("mode=host,target=80,published={port}");
    // The tutorial's flags, verbatim (its `--publish 80:80` becomes host mode on a free port here).
    let gate = s.service(
        "traefik",
        &[
            "--constraint=node.role==manager",
            "--publish",
            &publish,
            "--mount",
            "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock",
        ],
        &[
            "--docker",
            "--docker.swarmMode",
            "--docker.domain=traefik",
            "--docker.watch",
            "--api",
        ],
    );
    let w0 = s.service("whoami0", &["--label", "traefik.port=80"], &[]);
    // The tutorial runs one whoami1 replica; three make the sticky check meaningful.
    let w1 = s.service(
        "whoami1",
        &[
            "--label",
            "traefik.port=80",
            "--label",
            "traefik.backend.loadbalancer.sticky=true",
            "--replicas",
            "3",
        ],
        &[],
    );
    let c = client();
    let h0 = format!("{w0}.traefik");
    let h1 = format!("{w1}.traefik");
    assert!(
        wait_ok(&c, port, &h0, Duration::from_secs(90)).await,
        "{h0} never answered:\n{}",
        docker::logs(&gate, true)
    );

    // Scale to 5: five distinct task hostnames in rotation.
    docker_ok(&["service", "scale", "-d", &format!("{w0}=5")]);
    let t0 = Instant::now();
    let mut seen = BTreeSet::new();
    let mut five = false;
    while t0.elapsed() < Duration::from_secs(90) {
        seen = hostnames(&c, port, &h0, 10).await;
        if seen.len() == 5 {
            five = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        five,
        "only {seen:?} in rotation after scaling to 5:\n{}",
        docker::logs(&gate, true)
    );
    eprintln!(
        "scale whoami0=5 → 5 task hostnames in rotation after {:?} (includes task start)",
        t0.elapsed()
    );

    // Sticky: the v1 cookie name, and one task holds.
    assert!(
        wait_ok(&c, port, &h1, Duration::from_secs(60)).await,
        "{h1} never answered"
    );
    assert!(
        support::poll_until(Duration::from_secs(60), || hostnames_len(&c, port, &h1, 3)).await,
        "whoami1 never had 3 tasks in rotation"
    );
    let (st, first, set_cookie) = hit(&c, port, &h1, None).await.expect("answer");
    assert_eq!(st, StatusCode::OK);
    let set_cookie = set_cookie.expect("sticky cookie set");
    assert!(set_cookie.starts_with("_TRAEFIK_BACKEND="), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_string();
    for _ in 0..15 {
        let (st, h, _) = hit(&c, port, &h1, Some(&cookie)).await.expect("answer");
        assert_eq!(
            (st, h.as_deref()),
            (StatusCode::OK, first.as_deref()),
            "sticky cookie did not hold"
        );
    }

    // `docker service rm` removes the route.
    docker_ok(&["service", "rm", &w0]);
    let gone = support::poll_until(Duration::from_secs(20), || async {
        matches!(
            hit(&c, port, &h0, None).await,
            Some((StatusCode::NOT_FOUND, _, _))
        )
    })
    .await;
    assert!(gone, "{h0} still routed after service rm");
    let logs = docker::logs(&gate, true);
    assert!(
        logs.contains("deprecated") && logs.contains("traefik.port"),
        "v1 labels are reported as deprecated:\n{logs}"
    );
    // The proxy's own service (no Traefik label, no port) is skipped quietly, and the tutorial's services
    // log no error. (Other services on a shared engine may; they are not this test's.)
    let errors: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("ERROR") && [&gate, &w0, &w1].iter().any(|n| l.contains(n.as_str())))
        .collect();
    assert!(
        errors.is_empty(),
        "ERROR lines about the tutorial's services:\n{}",
        errors.join("\n")
    );
}

async fn hostnames_len(c: &HttpClient, port: u16, host: &str, n: usize) -> bool {
    hostnames(c, port, host, n * 4).await.len() == n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_labels_drop_only_their_router() {
    if !docker::engine_or_skip("malformed_labels_drop_only_their_router") {
        return;
    }
    let s = Swarm::new("bad");
    let (gate, port) = s.gate(&[]);
    let app = s.service(
        "app",
        &[
            "--label",
            "traefik.http.routers.good.rule=Host(`good.test`)",
            "--label",
            "traefik.http.routers.good.service=app",
            "--label",
            "traefik.http.routers.badrule.rule=Host(`br.test`) && Pth(`/`)",
            "--label",
            "traefik.http.routers.badrule.service=app",
            "--label",
            "traefik.http.routers.badport.rule=Host(`bp.test`)",
            "--label",
            "traefik.http.routers.badport.service=bp",
            "--label",
            "traefik.http.services.bp.loadbalancer.server.port=http",
            "--label",
            "traefik.http.routers.nomw.rule=Host(`mw.test`)",
            "--label",
            "traefik.http.routers.nomw.service=app",
            "--label",
            "traefik.http.routers.nomw.middlewares=nope",
            "--label",
            "traefik.http.services.app.loadbalancer.server.port=80",
        ],
        &[],
    );
    let c = client();
    assert!(
        wait_ok(&c, port, "good.test", Duration::from_secs(90)).await,
        "good router never served:\n{}",
        docker::logs(&gate, true)
    );
    for h in ["br.test", "bp.test", "mw.test"] {
        assert_eq!(
            hit(&c, port, h, None).await.map(|r| r.0),
            Some(StatusCode::NOT_FOUND),
            "{h}"
        );
    }
    let logs = docker::logs(&gate, true);
    let line = |needle: &str| {
        logs.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no log line with {needle}:\n{logs}"))
            .to_string()
    };
    let br = line("router `badrule` dropped");
    assert!(
        br.contains(&app) && br.contains("traefik.http.routers.badrule.rule") && br.contains("Pth"),
        "{br}"
    );
    let bp = line("service `bp` dropped");
    assert!(
        bp.contains("traefik.http.services.bp.loadbalancer.server.port") && bp.contains("`http`"),
        "{bp}"
    );
    line("router `badport` is dropped with it"); // on `bp`'s line: one line per mistake
    line("nope@swarm");
}

fn trials() -> usize {
    std::env::var("SGT_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn convergence_label_add_and_scale() {
    if !docker::engine_or_skip("convergence_label_add_and_scale") {
        return;
    }
    let s = Swarm::new("conv");
    let (gate, port) = s.gate(&[]);
    let app = s.service(
        "app",
        &[
            "--label",
            "traefik.http.services.app.loadbalancer.server.port=80",
            "--label",
            "traefik.http.routers.app.rule=Host(`conv.test`)",
        ],
        &[],
    );
    let c = client();
    assert!(
        wait_ok(&c, port, "conv.test", Duration::from_secs(90)).await,
        "never live:\n{}",
        docker::logs(&gate, true)
    );
    let n = trials();
    // Label added → route live (the update command's own time included).
    let mut label_times = Vec::new();
    for i in 0..n {
        let host = format!("t{i}.conv.test");
        let t0 = Instant::now();
        docker_ok(&[
            "service",
            "update",
            "-d",
            "--label-add",
            &format!("traefik.http.routers.t{i}.rule=Host(`{host}`)"),
            &app,
        ]);
        let issued = t0.elapsed();
        assert!(
            wait_ok(&c, port, &host, Duration::from_secs(20)).await,
            "label {i} never live"
        );
        label_times.push(t0.elapsed());
        eprintln!(
            "label trial {i}: live {:?} after issuing the update (CLI took {issued:?})",
            t0.elapsed()
        );
    }
    // Scale +1 → the new task in rotation, measured from when `docker service ps` first shows it running.
    let mut scale_times = Vec::new();
    let mut after_run = Vec::new();
    for i in 0..n {
        let replicas = i + 2;
        let before = hostnames(&c, port, "conv.test", replicas * 3).await;
        let t0 = Instant::now();
        docker_ok(&["service", "scale", "-d", &format!("{app}={replicas}")]);
        let app2 = app.clone();
        let running_at = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if running_tasks(&app2) >= replicas {
                    return Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        });
        let mut seen_at = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let now = hostnames(&c, port, "conv.test", replicas * 2).await;
            if now.len() >= replicas && !now.is_subset(&before) {
                seen_at = Some(Instant::now());
                break;
            }
        }
        let seen_at = seen_at.expect("new task never in rotation");
        let running_at = running_at.await.ok().flatten().expect("task never running");
        let lag = seen_at.saturating_duration_since(running_at);
        scale_times.push(seen_at - t0);
        after_run.push(lag);
        eprintln!("scale trial {i}: in rotation {:?} after the scale command, {lag:?} after `docker service ps` showed it running", seen_at - t0);
    }
    for (what, v) in [
        ("label-add → live", &mut label_times),
        ("scale → in rotation (from command)", &mut scale_times),
        ("scale → in rotation (from task running)", &mut after_run),
    ] {
        v.sort();
        eprintln!(
            "CONVERGENCE {what}: n={} p50={:?} p99={:?} max={:?}",
            v.len(),
            percentile(v, 50.0),
            percentile(v, 99.0),
            v.last().copied().unwrap_or_default()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_start_first_under_load() {
    if !docker::engine_or_skip("rolling_update_start_first_under_load") {
        return;
    }
    let secs: u64 = std::env::var("SGT_ROLLING_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let s = Swarm::new("roll");
    let (gate, port) = s.gate(&[]);
    // SIGURG is ignored by the backend, so on `docker stop` it keeps serving for the stop grace period, as an
    // application that drains would; swarmgate must take it out of rotation within that window.
    let app = s.service(
        "app",
        &[
            "--replicas",
            "3",
            "--update-order",
            "start-first",
            "--update-parallelism",
            "1",
            "--update-delay",
            "1s",
            "--stop-signal",
            "SIGURG",
            "--stop-grace-period",
            "3s",
            "--label",
            "traefik.http.services.app.loadbalancer.server.port=80",
            "--label",
            "traefik.http.routers.app.rule=Host(`roll.test`)",
        ],
        &[],
    );
    let c = client();
    assert!(
        wait_ok(&c, port, "roll.test", Duration::from_secs(90)).await,
        "never live:\n{}",
        docker::logs(&gate, true)
    );
    assert!(
        support::poll_until(Duration::from_secs(60), || hostnames_len(
            &c,
            port,
            "roll.test",
            3
        ))
        .await,
        "3 tasks never in rotation"
    );
    let before = hostnames(&c, port, "roll.test", 12).await;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (c, ok, failed, stop) = (client(), ok.clone(), failed.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                match hit(&c, port, "roll.test", None).await {
                    Some((StatusCode::OK, _, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    // Deliberate gap: a second of steady load before the rolling update, so the update starts under traffic.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    docker_ok(&["service", "update", "-d", "--force", &app]);
    let app2 = app.clone();
    let done = tokio::task::spawn_blocking(move || {
        docker::wait_for(Duration::from_secs(120), || {
            docker_ok(&[
                "service",
                "inspect",
                &app2,
                "--format",
                "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
            ]) == "completed"
        })
    })
    .await
    .unwrap_or(false);
    let update_took = t0.elapsed();
    let rest = Duration::from_secs(secs).saturating_sub(t0.elapsed());
    // Deliberate gap: the load runs for the whole `secs` window, whether the update finished early or not.
    tokio::time::sleep(rest).await;
    stop.cancel();
    for w in workers {
        let _ = w.await;
    }
    let after = hostnames(&c, port, "roll.test", 12).await;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "ROLLING UPDATE start-first, 3 replicas, {:?} of load: {ok} ok, {failed} failed; update took {update_took:?}",
        Duration::from_secs(secs).max(t0.elapsed())
    );
    assert!(
        done,
        "the update did not complete:\n{}",
        docker::logs(&gate, true)
    );
    assert!(
        after.is_disjoint(&before),
        "all tasks replaced: before {before:?}, after {after:?}"
    );
    assert_eq!(
        failed,
        0,
        "requests failed during the rolling update:\n{}",
        docker::logs(&gate, true)
    );
}
