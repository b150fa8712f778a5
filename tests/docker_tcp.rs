//! TCP routers from Docker labels against the real engine: containers, and Swarm services whose tasks follow
//! scaling, with `traefik.tcp.*` labels are routed to their IPs on the test network by a `HostSNI(`*`)`
//! router; a container or task started later joins the service (round robin per connection). swarmgate runs
//! as a container (or a service) with the Docker socket mounted; the test reaches it through a port published
//! on 127.0.0.1. Objects are named `h17t-…`.
//!
//! Without a Docker engine this test fails, unless `SWARMGATE_SKIP_DOCKER_TESTS=1` is set.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::docker::{self, docker_ok, Cleanup};
use support::poll_until;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.0 request over a fresh TCP connection (so each is a new TCP-router connection); the
/// whoami name that answered.
async fn name_over_tcp(port: u16) -> Option<String> {
    field_over_tcp(port, "Name: ").await
}

/// The value of whoami's line starting with `field` in the answer to a fresh TCP connection.
async fn field_over_tcp(port: u16, field: &str) -> Option<String> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: any\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .map(str::to_string)
    };
    tokio::time::timeout(Duration::from_secs(3), work)
        .await
        .ok()
        .flatten()
}

fn whoami(p: &str, net: &str, image: &str, name: &str, clean: &Cleanup) {
    let cname = format!("{p}-{name}");
    let run = format!("sgt.run={p}");
    clean.run(
        &cname,
        net,
        &[
            "--label",
            &run,
            "--label",
            "traefik.enable=true",
            "--label",
            "traefik.tcp.routers.echo.rule=HostSNI(`*`)",
            "--label",
            "traefik.tcp.routers.echo.entrypoints=tcp",
            "--label",
            "traefik.tcp.services.echo.loadbalancer.server.port=80",
            image,
            "--name",
            name,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_labels_route_to_container_ips_and_follow_new_containers() {
    if !docker::engine_or_skip("tcp_labels_route_to_container_ips_and_follow_new_containers") {
        return;
    }
    let p = format!("h17t-{}", docker::prefix("tcp"));
    let img = docker::images();
    let clean = Cleanup::default();
    let net = docker::create_network(&p, false, &clean);
    whoami(&p, &net, &img.whoami, "t1", &clean);
    let gate = format!("{p}-gate");
    let port = docker::free_port();
    clean.run(
        &gate,
        &net,
        &[
            "-p",
            &format!("127.0.0.1:{port}:9000"),
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            &img.gate,
            "--entrypoints.tcp.address=:9000",
            "--providers.docker=true",
            "--providers.docker.exposedByDefault=false",
            &format!("--providers.docker.network={net}"),
            &format!("--providers.docker.constraints=Label(`sgt.run`, `{p}`)"),
            "--providers.providersThrottleDuration=50ms",
        ],
    );
    let live = poll_until(Duration::from_secs(30), || async {
        name_over_tcp(port).await.as_deref() == Some("t1")
    })
    .await;
    assert!(
        live,
        "the TCP route never reached t1:\n{}",
        docker::logs(&gate, false)
    );
    // A second container with the same labels joins the service: new connections alternate.
    whoami(&p, &net, &img.whoami, "t2", &clean);
    let both = poll_until(Duration::from_secs(30), || async {
        name_over_tcp(port).await.as_deref() == Some("t2")
    })
    .await;
    assert!(
        both,
        "t2 never answered through the TCP route:\n{}",
        docker::logs(&gate, false)
    );
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        if let Some(n) = name_over_tcp(port).await {
            seen.insert(n);
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["t1", "t2"],
        "connections are spread over both containers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_service_tcp_labels_route_to_task_ips_and_follow_scaling() {
    if !docker::engine_or_skip("swarm_service_tcp_labels_route_to_task_ips_and_follow_scaling") {
        return;
    }
    docker::ensure_swarm();
    let p = format!("h17t-{}", docker::prefix("swarmtcp"));
    let img = docker::images();
    let clean = Cleanup::default();
    let net = docker::create_network(&p, true, &clean);
    let run = format!("sgt.run={p}");
    let app = format!("{p}-app");
    clean.service(&app);
    docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        &app,
        "--network",
        &net,
        "--label",
        &run,
        "--label",
        "traefik.enable=true",
        "--label",
        "traefik.tcp.routers.db.rule=HostSNI(`*`)",
        "--label",
        "traefik.tcp.routers.db.entrypoints=db",
        "--label",
        "traefik.tcp.services.db.loadbalancer.server.port=80",
        &img.whoami,
    ]);
    let gate = format!("{p}-gate");
    let port = docker::free_port();
    clean.service(&gate);
    docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        &gate,
        "--network",
        &net,
        "--label",
        &run,
        "--publish",
        &format!("mode=host,target=9000,published={port}"),
        "--mount",
        "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock",
        "--constraint=node.role==manager",
        &img.gate,
        "--entrypoints.db.address=:9000",
        "--providers.swarm=true",
        &format!("--providers.swarm.network={net}"),
        &format!("--providers.swarm.constraints=Label(`sgt.run`, `{p}`)"),
        "--providers.providersThrottleDuration=50ms",
    ]);
    let live = poll_until(Duration::from_secs(60), || async {
        field_over_tcp(port, "Hostname: ").await.is_some()
    })
    .await;
    assert!(
        live,
        "the TCP route never reached a task:\n{}",
        docker::logs(&gate, true)
    );
    docker_ok(&["service", "scale", "-d", &format!("{app}=2")]);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let both = poll_until(Duration::from_secs(60), || {
        let seen = seen.clone();
        async move {
            if let Some(h) = field_over_tcp(port, "Hostname: ").await {
                seen.lock().unwrap().insert(h);
            }
            seen.lock().unwrap().len() >= 2
        }
    })
    .await;
    assert!(
        both,
        "the second task never answered (saw {:?}):\n{}",
        seen.lock().unwrap(),
        docker::logs(&gate, true)
    );
}
