//! UDP routers from Docker labels against the real engine: a container with `traefik.udp.*` labels (whoami's
//! UDP echo) is routed to its IP on the test network by swarmgate running as a container with the Docker
//! socket mounted; the test reaches swarmgate only through ports published on 127.0.0.1.
//!
//! Without a Docker engine these tests fail, unless `SWARMGATE_SKIP_DOCKER_TESTS=1` is set (then each one
//! prints a loud skip note and passes).

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::time::Duration;

use support::docker::{self, docker_ok, Cleanup};
use support::{get, poll_until};
use tokio::net::UdpSocket;

/// Sends `payload` to 127.0.0.1:`port` from a fresh client and returns the answer, if one comes in 2 s.
async fn ask(port: u16, payload: &str) -> Option<String> {
    let c = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    c.send_to(payload.as_bytes(), ("127.0.0.1", port))
        .await
        .ok()?;
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(2), c.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}

/// The labels of the UDP echo backend, on a container or a service.
const ECHO_LABELS: &[&str] = &[
    "--label",
    "traefik.enable=true",
    "--label",
    "traefik.udp.routers.echo.entrypoints=echo",
    "--label",
    "traefik.udp.services.echo.loadbalancer.server.port=5300",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_with_udp_labels_is_routed_to_its_ip() {
    if !docker::engine_or_skip("a_container_with_udp_labels_is_routed_to_its_ip") {
        return;
    }
    let p = format!("h17u-{}", docker::prefix("udp"));
    let img = docker::images();
    let clean = Cleanup::default();
    let net = docker::create_network(&p, false, &clean);

    let echo = format!("{p}-echo");
    clean.run(
        &echo,
        &net,
        &[
            &["--label", &format!("sgt.run={p}")],
            ECHO_LABELS,
            &[&img.whoami, "--name", "u1", "--udp", "0.0.0.0:5300"],
        ]
        .concat(),
    );
    let echo_ip = docker_ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        &echo,
    ]);
    let echo_ip = echo_ip.trim().to_string();

    let gate = format!("{p}-gate");
    let (udp_port, api_port) = (docker::free_port(), docker::free_port());
    clean.run(
        &gate,
        &net,
        &[
            "-p",
            &format!("127.0.0.1:{udp_port}:5300/udp"),
            "-p",
            &format!("127.0.0.1:{api_port}:8080"),
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            &img.gate,
            "--entrypoints.echo.address=:5300/udp",
            "--entrypoints.traefik.address=:8080",
            "--api.insecure=true",
            "--providers.docker=true",
            "--providers.docker.exposedByDefault=false",
            &format!("--providers.docker.network={net}"),
            &format!("--providers.docker.constraints=Label(`sgt.run`, `{p}`)"),
            "--providers.providersThrottleDuration=50ms",
        ],
    );
    let gate_ip = docker_ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        &gate,
    ]);
    let gate_ip = gate_ip.trim().to_string();

    let answered = poll_until(Duration::from_secs(30), || async {
        ask(udp_port, "ready?").await.is_some()
    })
    .await;
    assert!(
        answered,
        "no UDP answer through swarmgate:\n{}",
        docker::logs(&gate, false)
    );
    let answer = ask(udp_port, "ping").await.expect("an answer");
    // whoami answers `<name> <sender> <payload>`: the sender is swarmgate's session socket on the test
    // network, so the datagram went from swarmgate to the container's IP.
    let parts: Vec<&str> = answer.splitn(3, ' ').collect();
    assert_eq!(parts[0], "u1", "{answer}");
    assert!(
        parts[1].starts_with(&format!("{gate_ip}:")),
        "{answer} (gate {gate_ip})"
    );
    assert_eq!(parts[2], "ping");

    let api = std::net::SocketAddr::from(([127, 0, 0, 1], api_port));
    let s = get(api, "localhost", "/api/udp/services/echo@docker").await;
    assert_eq!(s.status, 200, "{}", s.body);
    let v: serde_json::Value = serde_json::from_str(&s.body).unwrap();
    assert_eq!(
        v["loadBalancer"]["servers"][0]["address"],
        format!("{echo_ip}:5300")
    );
    assert_eq!(v["status"], "enabled");
    let r = get(api, "localhost", "/api/udp/routers/echo@docker").await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "enabled", "{}", r.body);
    assert_eq!(v["using"], serde_json::json!(["echo"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_service_with_udp_labels_is_balanced_over_its_tasks() {
    if !docker::engine_or_skip("a_swarm_service_with_udp_labels_is_balanced_over_its_tasks") {
        return;
    }
    docker::ensure_swarm();
    let p = format!("h17u-{}", docker::prefix("udpswarm"));
    let img = docker::images();
    let clean = Cleanup::default();
    let net = docker::create_network(&p, true, &clean);
    let run_label = format!("sgt.run={p}");

    let echo = format!("{p}-echo");
    clean.service(&echo);
    docker_ok(
        &[
            &[
                "service",
                "create",
                "-d",
                "--name",
                &echo,
                "--network",
                &net,
                "--replicas",
                "2",
                "--env",
                "WHOAMI_NAME=task{{.Task.Slot}}",
                "--label",
                &run_label,
            ],
            ECHO_LABELS,
            &[&img.whoami, "--udp", "0.0.0.0:5300"],
        ]
        .concat(),
    );

    let gate = format!("{p}-gate");
    let (udp_port, api_port) = (docker::free_port(), docker::free_port());
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
        &run_label,
        "--publish",
        &format!("mode=host,target=5300,published={udp_port},protocol=udp"),
        "--publish",
        &format!("mode=host,target=8080,published={api_port}"),
        "--mount",
        "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock",
        "--constraint=node.role==manager",
        &img.gate,
        "--entrypoints.echo.address=:5300/udp",
        "--entrypoints.traefik.address=:8080",
        "--api.insecure=true",
        "--providers.swarm=true",
        &format!("--providers.swarm.network={net}"),
        &format!("--providers.swarm.constraints=Label(`sgt.run`, `{p}`)"),
        "--providers.providersThrottleDuration=50ms",
    ]);

    // Fresh clients open fresh sessions, which take the tasks in turn once both are in the table.
    let both = poll_until(Duration::from_secs(90), || async {
        let a = ask(udp_port, "one").await;
        let b = ask(udp_port, "two").await;
        let name = |x: &Option<String>| x.as_deref().and_then(|s| s.split(' ').next()).map(str::to_string);
        matches!((name(&a), name(&b)), (Some(x), Some(y)) if x != y && x.starts_with("task") && y.starts_with("task"))
    })
    .await;
    assert!(
        both,
        "sessions never reached both tasks:\n{}",
        docker::logs(&gate, true)
    );
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], api_port));
    let s = get(api, "localhost", "/api/udp/services/echo@swarm").await;
    let v: serde_json::Value = serde_json::from_str(&s.body).unwrap();
    let servers = v["loadBalancer"]["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{}", s.body);
    assert!(servers
        .iter()
        .all(|x| x["address"].as_str().unwrap().ends_with(":5300")));
}
