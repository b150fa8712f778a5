//! UDP routers and services through the real binary: a real DNS server (dnsmasq) answers `dig` through
//! swarmgate; UDP echo backends (whoami's UDP mode, which answers `<name> <sender> <payload>`) show which
//! backend and which proxy session (the sender address the backend sees) each datagram took.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests write
// fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{free_port, get, poll_until, write_atomic, Gate};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// A UDP echo backend on loopback, stopped on drop.
struct Echo {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Echo {
    async fn start(name: &str) -> Echo {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(swarmgate::whoami::serve_udp(
            s,
            name.to_string(),
            stop.clone(),
        ));
        Echo { addr, stop }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A client with its own address (so its own session).
struct Client(UdpSocket);

/// An echo answer: which backend, and the proxy session's address as the backend saw it.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    backend: String,
    session: String,
    payload: String,
}

impl Client {
    async fn new() -> Client {
        Client(UdpSocket::bind("127.0.0.1:0").await.unwrap())
    }

    /// Sends `payload` to `to` and waits (bounded) for one answer.
    async fn ask(&self, to: SocketAddr, payload: &str) -> Option<Answer> {
        self.0.send_to(payload.as_bytes(), to).await.ok()?;
        let mut buf = vec![0u8; 2048];
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), self.0.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        assert_eq!(from, to, "the answer comes from the entrypoint's address");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let mut parts = text.splitn(3, ' ');
        Some(Answer {
            backend: parts.next()?.to_string(),
            session: parts.next()?.to_string(),
            payload: parts.next().unwrap_or_default().to_string(),
        })
    }

    /// Asks until an answer comes (the first datagrams may race the first table), bounded.
    async fn ask_until(&self, to: SocketAddr, payload: &str) -> Answer {
        for _ in 0..20 {
            if let Some(a) = self.ask(to, payload).await {
                return a;
            }
        }
        panic!("no answer through {to} for {payload}");
    }
}

/// swarmgate with the dynamic `yaml`, UDP entrypoints `udp_eps` on 127.0.0.1:0/udp, the API and metrics on
/// entrypoint `traefik`, plus `extra` flags.
fn gate(yaml: &str, udp_eps: &[&str], extra: &[&str]) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dynamic.yml");
    std::fs::write(&file, yaml).unwrap();
    let mut args = vec![
        "--entrypoints.traefik.address=127.0.0.1:0".to_string(),
        "--api.insecure=true".into(),
        "--metrics.prometheus=true".into(),
        format!("--providers.file.filename={}", file.display()),
        "--providers.file.watch=true".into(),
        "--providers.providersThrottleDuration=50ms".into(),
    ];
    for ep in udp_eps {
        args.push(format!("--entrypoints.{ep}.address=127.0.0.1:0/udp"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Gate::start_in(dir, &args, 1 + udp_eps.len())
}

fn lb(servers: &[SocketAddr]) -> String {
    let mut s = String::from("      loadBalancer:\n        servers:\n");
    for a in servers {
        s.push_str(&format!("          - address: \"{a}\"\n"));
    }
    s
}

async fn api(g: &Gate, path: &str) -> Value {
    let r = get(g.ep("traefik"), "localhost", path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

async fn open_sessions(g: &Gate, ep: &str) -> Option<i64> {
    let body = get(g.ep("traefik"), "localhost", "/metrics").await.body;
    let key = format!("traefik_open_connections{{entrypoint=\"{ep}\",protocol=\"UDP\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// dnsmasq answering `swarmgate.test` with 10.1.2.3 on a loopback port, killed on drop.
struct Dnsmasq {
    child: Child,
    port: u16,
}

impl Dnsmasq {
    fn start() -> Dnsmasq {
        let bin = ["dnsmasq", "/usr/sbin/dnsmasq"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .status()
                    .is_ok()
            })
            .expect("dnsmasq is installed (apt-get install dnsmasq-base)");
        let port = free_port();
        let child = Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                &format!("--port={port}"),
                "--address=/swarmgate.test/10.1.2.3",
                "--log-facility=-",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        Dnsmasq { child, port }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dig(server: SocketAddr, name: &str) -> String {
    let out = Command::new("dig")
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            name,
            "A",
            "+short",
            "+tries=1",
            "+time=2",
        ])
        .output()
        .expect("dig is installed (apt-get install dnsutils)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_through_a_udp_router_gets_dnsmasq_answer() {
    let dns = Dnsmasq::start();
    let server: SocketAddr = format!("127.0.0.1:{}", dns.port).parse().unwrap();
    let yaml = format!(
        "udp:\n  routers:\n    dns:\n      entryPoints: [dns]\n      service: dns\n  services:\n    dns:\n{}",
        lb(&[server])
    );
    let g = gate(&yaml, &["dns"], &[]);
    let through = g.ep("dns");
    let ok = poll_until(Duration::from_secs(15), || async {
        tokio::task::spawn_blocking(move || dig(through, "swarmgate.test"))
            .await
            .unwrap()
            == "10.1.2.3"
    })
    .await;
    assert!(
        ok,
        "dig through swarmgate: {:?}\n{}",
        dig(through, "swarmgate.test"),
        g.logs()
    );
    // The API shows the router and the service as Traefik does.
    let r = api(&g, "/api/udp/routers/dns@file").await;
    assert_eq!(r["status"], "enabled");
    assert_eq!(r["using"], serde_json::json!(["dns"]));
    assert_eq!(r["service"], "dns");
    let s = api(&g, "/api/udp/services/dns@file").await;
    assert_eq!(s["type"], "loadbalancer");
    assert_eq!(s["usedBy"], serde_json::json!(["dns@file"]));
    assert_eq!(
        s["loadBalancer"]["servers"][0]["address"],
        server.to_string()
    );
    let o = api(&g, "/api/overview").await;
    assert_eq!(o["udp"]["routers"]["total"], 1);
    assert_eq!(o["udp"]["services"]["total"], 1);
    let ep = api(&g, "/api/entrypoints/dns").await;
    assert_eq!(ep["boundAddress"], through.to_string());
    assert!(ep["address"].as_str().unwrap().ends_with("/udp"), "{ep}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_balanced_round_robin_and_stick_to_their_backend() {
    let (a, b) = (Echo::start("A").await, Echo::start("B").await);
    let yaml = format!(
        "udp:\n  routers:\n    echo:\n      service: echo\n  services:\n    echo:\n{}",
        lb(&[a.addr, b.addr])
    );
    let g = gate(&yaml, &["echo"], &["--entrypoints.echo.udp.timeout=60s"]);
    let to = g.ep("echo");
    let (c1, c2) = (Client::new().await, Client::new().await);
    let first = c1.ask_until(to, "hello-1").await;
    assert_eq!(first.payload, "hello-1");
    let second = c2.ask_until(to, "hello-2").await;
    assert_ne!(
        first.backend, second.backend,
        "two sessions go to the two backends in turn"
    );
    // Every datagram of one client goes through its session: same backend, same session socket.
    for i in 0..10 {
        let again = c1.ask(to, &format!("more-{i}")).await.expect("answer");
        assert_eq!(again.backend, first.backend);
        assert_eq!(again.session, first.session);
        assert_eq!(again.payload, format!("more-{i}"));
        let other = c2.ask(to, &format!("other-{i}")).await.expect("answer");
        assert_eq!(other.backend, second.backend);
        assert_eq!(other.session, second.session);
    }
    assert_eq!(open_sessions(&g, "echo").await, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_after_the_udp_timeout() {
    let a = Echo::start("A").await;
    let yaml = format!(
        "udp:\n  routers:\n    echo:\n      service: echo\n  services:\n    echo:\n{}",
        lb(&[a.addr])
    );
    let g = gate(&yaml, &["echo"], &["--entrypoints.echo.udp.timeout=300ms"]);
    let to = g.ep("echo");
    let c = Client::new().await;
    let first = c.ask_until(to, "one").await;
    let ended = poll_until(Duration::from_secs(10), || async {
        open_sessions(&g, "echo").await == Some(0)
    })
    .await;
    assert!(ended, "the idle session ended");
    // The same client now gets a new session: a new socket towards the backend.
    let next = c.ask_until(to, "two").await;
    assert_eq!(next.backend, "A");
    assert_ne!(
        next.session, first.session,
        "a new session after the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_change_swaps_the_udp_table_for_new_sessions() {
    let (a, b) = (Echo::start("A").await, Echo::start("B").await);
    let config = |server: SocketAddr| {
        format!(
            "udp:\n  routers:\n    echo:\n      service: echo\n  services:\n    echo:\n{}",
            lb(&[server])
        )
    };
    let g = gate(
        &config(a.addr),
        &["echo"],
        &["--entrypoints.echo.udp.timeout=60s"],
    );
    let to = g.ep("echo");
    let old = Client::new().await;
    let before = old.ask_until(to, "before").await;
    assert_eq!(before.backend, "A");
    write_atomic(&g.dynamic_file(), &config(b.addr));
    let swapped = poll_until(Duration::from_secs(10), || async {
        let fresh = Client::new().await;
        fresh
            .ask(to, "probe")
            .await
            .is_some_and(|x| x.backend == "B")
    })
    .await;
    assert!(swapped, "new sessions use the new table\n{}", g.logs());
    // The session opened before the change keeps its server until it is idle.
    let after = old.ask(to, "after").await.expect("answer");
    assert_eq!(after.backend, "A");
    assert_eq!(after.session, before.session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_udp_item_is_disabled_with_its_error_and_neighbours_keep_working() {
    let a = Echo::start("A").await;
    let yaml = format!(
        r#"udp:
  routers:
    good:
      entryPoints: [echo]
      service: echo
    to-bad:
      entryPoints: [other]
      service: bad
    undecodable:
      entryPoints: [other]
      service: [not, a, string]
    stray:
      entryPoints: [echo, nowhere]
      service: echo
  services:
    echo:
{}    bad:
      loadBalancer:
        servers:
          - address: "no-port-here"
"#,
        lb(&[a.addr])
    );
    let g = gate(&yaml, &["echo", "other"], &[]);
    let c = Client::new().await;
    assert_eq!(c.ask_until(g.ep("echo"), "x").await.backend, "A");
    // Nothing serves `other`: its only router's service is disabled.
    let lost = Client::new().await;
    assert_eq!(lost.ask(g.ep("other"), "y").await, None);

    let bad = api(&g, "/api/udp/services/bad@file").await;
    assert_eq!(bad["status"], "disabled");
    assert!(
        bad["error"][0].as_str().unwrap().contains("no-port-here"),
        "{bad}"
    );
    let r = api(&g, "/api/udp/routers/to-bad@file").await;
    assert_eq!(r["status"], "disabled");
    assert!(r["error"][0].as_str().unwrap().contains("bad@file"), "{r}");
    let u = api(&g, "/api/udp/routers/undecodable@file").await;
    assert_eq!(u["status"], "disabled");
    assert!(!u["error"].as_array().unwrap().is_empty(), "{u}");
    let s = api(&g, "/api/udp/routers/stray@file").await;
    assert_eq!(s["status"], "warning");
    assert_eq!(s["using"], serde_json::json!(["echo"]));
    assert!(s["error"][0].as_str().unwrap().contains("nowhere"), "{s}");
    let o = api(&g, "/api/overview").await;
    assert_eq!(o["udp"]["routers"]["total"], 4);
    assert_eq!(o["udp"]["routers"]["errors"], 2);
    assert_eq!(o["udp"]["routers"]["warnings"], 1);
    assert_eq!(o["udp"]["services"]["errors"], 1);
    let list = api(&g, "/api/udp/routers").await;
    assert_eq!(list.as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_beyond_the_cap_are_refused_and_existing_ones_keep_working() {
    let a = Echo::start("A").await;
    let yaml = format!(
        "udp:\n  routers:\n    echo:\n      service: echo\n  services:\n    echo:\n{}",
        lb(&[a.addr])
    );
    let g = gate(
        &yaml,
        &["echo"],
        &[
            "--entrypoints.echo.udp.timeout=60s",
            "--entrypoints.echo.udp.maxSessions=3",
        ],
    );
    let to = g.ep("echo");
    let mut clients = Vec::new();
    for i in 0..3 {
        let c = Client::new().await;
        c.ask_until(to, &format!("c{i}")).await;
        clients.push(c);
    }
    // A flood of new client addresses opens no more sessions.
    for _ in 0..50 {
        let c = Client::new().await;
        c.0.send_to(b"flood", to).await.unwrap();
    }
    let refused = Client::new().await;
    assert_eq!(refused.ask(to, "over the cap").await, None);
    assert_eq!(open_sessions(&g, "echo").await, Some(3));
    for (i, c) in clients.iter().enumerate() {
        let x = c.ask(to, &format!("still-{i}")).await.expect("answer");
        assert_eq!(x.payload, format!("still-{i}"));
    }
}
