//! The Docker provider (plain containers) against the real engine: swarmgate runs as a container on a test
//! network with the Docker socket mounted; the test reaches it only through a port published on 127.0.0.1.
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

use std::time::{Duration, Instant};

use http::StatusCode;
use support::docker::{self, docker, docker_ok, Cleanup, Images, SocketForwarder};
use support::{client, get_with, poll_until};

struct Net {
    p: String,
    net: String,
    img: Images,
    clean: Cleanup,
}

impl Net {
    fn new(test: &str) -> Net {
        let p = docker::prefix(test);
        let img = docker::images();
        let clean = Cleanup::default();
        let net = docker::create_network(&p, false, &clean);
        Net { p, net, img, clean }
    }

    fn whoami(&self, name: &str, labels: &[(&str, &str)]) -> String {
        let cname = format!("{}-{name}", self.p);
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            cname.clone(),
            "--network".into(),
            self.net.clone(),
        ];
        args.extend(["--label".into(), format!("sgt.run={}", self.p)]);
        for (k, v) in labels {
            args.extend(["--label".into(), format!("{k}={v}")]);
        }
        args.extend([self.img.whoami.clone(), "--name".into(), name.into()]);
        self.clean.container(&cname);
        docker_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        cname
    }

    /// Starts swarmgate with the Docker provider limited to this test's containers; returns its host port.
    fn gate(&self, socket_mount: &str, extra: &[&str]) -> (String, u16) {
        let name = format!("{}-gate", self.p);
        let port = docker::free_port();
        let mut args: Vec<String> = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &self.net,
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "-v",
            socket_mount,
        ]
        .into_iter()
        .map(String::from)
        .collect();
        args.push(self.img.gate.clone());
        args.extend([
            "--entrypoints.web.address=:80".to_string(),
            "--providers.docker=true".into(),
            "--providers.docker.exposedByDefault=false".into(),
            format!("--providers.docker.network={}", self.net),
            format!(
                "--providers.docker.constraints=Label(`sgt.run`, `{}`)",
                self.p
            ),
            "--providers.providersThrottleDuration=50ms".into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        self.clean.container(&name);
        docker_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        (name, port)
    }
}

fn addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

async fn status(port: u16, host: &str) -> Option<(StatusCode, Option<String>)> {
    let c = client();
    let req = http::Request::get(format!("http://127.0.0.1:{port}/"))
        .header("host", host)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(3), c.request(req))
        .await
        .ok()?
        .ok()?;
    let st = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .ok()?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).to_string();
    Some((
        st,
        text.lines()
            .find_map(|l| l.strip_prefix("Name: "))
            .map(str::to_string),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn containers_route_merge_isolate_and_converge() {
    if !docker::engine_or_skip("containers_route_merge_isolate_and_converge") {
        return;
    }
    let env = Net::new("ctr");
    let app: &[(&str, &str)] = &[
        ("traefik.enable", "true"),
        ("traefik.http.routers.app.rule", "Host(`app.test`)"),
        ("traefik.http.services.app.loadbalancer.server.port", "80"),
    ];
    let a1 = env.whoami("a1", app);
    env.whoami("a2", app);
    env.whoami(
        "b",
        &[
            ("traefik.enable", "true"),
            ("traefik.http.routers.good.rule", "Host(`good.test`)"),
            ("traefik.http.routers.good.service", "b"),
            (
                "traefik.http.routers.bad.rule",
                "Host(`bad.test`) && PathPrefx(`/`)",
            ),
            ("traefik.http.routers.bad.service", "b"),
            ("traefik.http.routers.nomw.rule", "Host(`nomw.test`)"),
            ("traefik.http.routers.nomw.service", "b"),
            ("traefik.http.routers.nomw.middlewares", "missing"),
            ("traefik.http.services.b.loadbalancer.server.port", "80"),
        ],
    );
    env.whoami(
        "off",
        &[
            ("traefik.enable", "false"),
            ("traefik.http.routers.off.rule", "Host(`off.test`)"),
        ],
    );
    let (gate, port) = env.gate("/var/run/docker.sock:/var/run/docker.sock", &[]);
    let c = client();
    let live = poll_until(Duration::from_secs(30), || async {
        matches!(status(port, "app.test").await, Some((StatusCode::OK, _)))
    })
    .await;
    assert!(
        live,
        "app.test never became live:\n{}",
        docker::logs(&gate, false)
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let r = get_with(&c, addr(port), "app.test", "/", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        seen.insert(r.backend().unwrap_or_default().to_string());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["a1", "a2"],
        "identical labels on two containers merge into one service"
    );
    assert_eq!(
        get_with(&c, addr(port), "good.test", "/", &[])
            .await
            .backend(),
        Some("b")
    );
    assert_eq!(
        get_with(&c, addr(port), "bad.test", "/", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_with(&c, addr(port), "nomw.test", "/", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_with(&c, addr(port), "off.test", "/", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    let logs = docker::logs(&gate, false);
    let line = logs
        .lines()
        .find(|l| l.contains("router `bad` dropped"))
        .unwrap_or_else(|| panic!("no log line for the bad router:\n{logs}"));
    assert!(
        line.contains("traefik.http.routers.bad.rule")
            && line.contains("PathPrefx")
            && line.contains(&format!("{}-b", env.p)),
        "{line}"
    );
    assert!(
        logs.contains("nomw@docker"),
        "the router with a missing middleware is named:\n{logs}"
    );

    // A new container goes live; a stopped one leaves the rotation.
    let t0 = Instant::now();
    env.whoami(
        "c",
        &[
            ("traefik.enable", "true"),
            ("traefik.http.routers.c.rule", "Host(`c.test`)"),
            ("traefik.http.services.c.loadbalancer.server.port", "80"),
        ],
    );
    let live = poll_until(Duration::from_secs(20), || async {
        matches!(status(port, "c.test").await, Some((StatusCode::OK, _)))
    })
    .await;
    assert!(live, "c.test never became live");
    eprintln!(
        "container start → route live: {:?} (includes `docker run`)",
        t0.elapsed()
    );
    docker_ok(&["stop", "-t", "1", &a1]);
    let gone = poll_until(Duration::from_secs(20), || async {
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..4 {
            if let Some((StatusCode::OK, Some(n))) = status(port, "app.test").await {
                names.insert(n);
            }
        }
        names.len() == 1 && names.contains("a2")
    })
    .await;
    assert!(
        gone,
        "a1 never left the rotation:\n{}",
        docker::logs(&gate, false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daemon_cut_keeps_serving_and_resyncs() {
    if !docker::engine_or_skip("daemon_cut_keeps_serving_and_resyncs") {
        return;
    }
    let env = Net::new("cut");
    let mut fwd = SocketForwarder::start(std::path::Path::new("/var/run/docker.sock"));
    let mount = format!("{}:/var/run/sgt", fwd.dir.path().display());
    let labels = |h: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("traefik.enable", "true".into()),
            (
                if h.starts_with('x') {
                    "traefik.http.routers.rx.rule"
                } else {
                    "traefik.http.routers.ry.rule"
                },
                format!("Host(`{h}`)"),
            ),
            (
                if h.starts_with('x') {
                    "traefik.http.services.sx.loadbalancer.server.port"
                } else {
                    "traefik.http.services.sy.loadbalancer.server.port"
                },
                "80".into(),
            ),
        ]
    };
    let lx = labels("x.test");
    let x = env.whoami(
        "x",
        &lx.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
    );
    let (gate, port) = env.gate(
        &mount,
        &["--providers.docker.endpoint=unix:///var/run/sgt/docker.sock"],
    );
    assert!(
        poll_until(Duration::from_secs(30), || async {
            matches!(status(port, "x.test").await, Some((StatusCode::OK, _)))
        })
        .await,
        "x.test never became live:\n{}",
        docker::logs(&gate, false)
    );
    fwd.cut();
    let c = client();
    let (mut ok, mut failed) = (0, 0);
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(2), async {
            get_with(&c, addr(port), "x.test", "/", &[]).await.status
        })
        .await
        {
            Ok(StatusCode::OK) => ok += 1,
            _ => failed += 1,
        }
        // Pacing, not waiting: a steady client asking every 20 ms for the whole 4 s window.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("while the Docker socket was cut: {ok} ok, {failed} failed");
    assert_eq!(failed, 0);
    assert!(
        docker::wait_for(Duration::from_secs(10), || docker::logs(&gate, false)
            .contains("unix:///var/run/sgt/docker.sock")),
        "the lost endpoint is named:\n{}",
        docker::logs(&gate, false)
    );
    // Changes made while the daemon is unreachable are picked up after it comes back.
    let ly = labels("y.test");
    env.whoami(
        "y",
        &ly.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
    );
    docker_ok(&["stop", "-t", "1", &x]);
    fwd.restore();
    let t0 = Instant::now();
    let synced = poll_until(Duration::from_secs(40), || async {
        matches!(status(port, "y.test").await, Some((StatusCode::OK, _)))
            && matches!(
                status(port, "x.test").await,
                Some((StatusCode::NOT_FOUND, _))
            )
    })
    .await;
    assert!(
        synced,
        "routes did not resync after the socket came back:\n{}",
        docker::logs(&gate, false)
    );
    eprintln!(
        "socket restored → routes resynced in {:?} (reconnect backoff included)",
        t0.elapsed()
    );
    let _ = docker(&["logs", &gate]);
}
