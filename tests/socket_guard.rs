//! `swarmgate socket-guard` against the real engine: every call swarmgate's Docker provider makes passes
//! through it (routes appear for plain containers and for Swarm services, with swarmgate reading the engine
//! only through the guard), while the Docker CLI pointed at the guard cannot create a container, exec, or
//! read a secret, and no path, encoding or framing trick reaches the engine.
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

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::docker::{self, docker, docker_ok, wait_for, Cleanup};
use support::{client, poll_until};

/// The guard as a host process on a unix socket in a fresh directory (bind-mount the directory).
struct Guard {
    dir: tempfile::TempDir,
    child: Child,
}

impl Guard {
    fn start(extra: &[&str]) -> Guard {
        let dir = tempfile::Builder::new()
            .prefix("sgt-guard")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = dir.path().join("guard.sock");
        let log = std::fs::File::create(dir.path().join("guard.log")).unwrap();
        let child = Command::new(support::bin())
            .args(["socket-guard", "--listen"])
            .arg(format!("unix://{}", sock.display()))
            .args(["--docker", "/var/run/docker.sock"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let g = Guard { dir, child };
        assert!(
            wait_for(Duration::from_secs(10), || UnixStream::connect(g.sock())
                .is_ok()),
            "the guard does not listen: {}",
            g.logs()
        );
        g
    }
    fn sock(&self) -> PathBuf {
        self.dir.path().join("guard.sock")
    }
    fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("guard.log")).unwrap_or_default()
    }
    /// `docker -H unix://<guard> args…`.
    fn docker(&self, args: &[&str]) -> std::process::Output {
        let host = format!("unix://{}", self.sock().display());
        let mut a = vec!["-H", host.as_str()];
        a.extend(args);
        docker(&a)
    }
    /// Sends raw bytes on one connection and returns everything the guard answers before closing.
    fn raw(&self, request: &str) -> String {
        let mut s = UnixStream::connect(self.sock()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).to_string()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[test]
fn docker_cli_through_the_guard_cannot_create_exec_or_read_secrets() {
    if !docker::engine_or_skip("docker_cli_through_the_guard_cannot_create_exec_or_read_secrets") {
        return;
    }
    let g = Guard::start(&[]);
    let img = docker::images();
    let p = docker::prefix("guardcli");
    let clean = Cleanup::default();
    // Reads pass: version, ps, inspect.
    let v = g.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let victim = format!("{p}-victim");
    clean.container(&victim);
    docker_ok(&["run", "-d", "--name", &victim, &img.whoami]);
    let ps = g.docker(&["ps", "--format", "{{.Names}}"]);
    assert!(String::from_utf8_lossy(&ps.stdout).contains(&victim));
    assert!(g.docker(&["inspect", &victim]).status.success());

    // Writes and the dangerous reads are refused with 403 and the guard's message.
    let made = format!("{p}-made");
    clean.container(&made);
    for args in [
        vec!["create", "--name", made.as_str(), img.whoami.as_str()],
        vec!["run", "--rm", img.whoami.as_str()],
        vec!["exec", victim.as_str(), "/app", "--help"],
        vec!["secret", "ls"],
        vec!["secret", "inspect", "anything"],
        vec!["rm", "-f", victim.as_str()],
        vec!["logs", victim.as_str()],
        vec!["cp", &format!("{victim}:/app"), "/tmp/sgt-guard-stolen"],
        vec!["swarm", "join-token", "worker"],
        vec!["config", "create", "x", "/etc/hostname"],
    ] {
        let o = g.docker(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "docker {args:?} passed the guard");
        assert!(err.contains("socket-guard"), "docker {args:?}: {err}");
    }
    assert!(
        !docker(&["inspect", &made]).status.success(),
        "a container was created through the guard"
    );
    assert!(docker(&["inspect", &victim]).status.success());
    let logs = g.logs();
    assert!(
        logs.contains("refused (403)") && logs.contains("/containers/create"),
        "{logs}"
    );
}

#[test]
fn path_encoding_and_framing_tricks_do_not_reach_the_engine() {
    if !docker::engine_or_skip("path_encoding_and_framing_tricks_do_not_reach_the_engine") {
        return;
    }
    let g = Guard::start(&[]);
    let body = r#"{"Image":"scratch"}"#;
    let post = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    for path in [
        "/v1.41/../containers/create",
        "/v1.41/./containers/create",
        "//containers/create",
        "/v1.41//containers/create",
        "/v1.41/%63ontainers/create",
        "/v1.41/containers%2fcreate",
        "/v1.41/configs/create/../../containers/create",
        "/v1.41/configs/%2e%2e/containers/create",
        "/containers/create?x=/configs/create",
        "http://d/v1.41/containers/create",
    ] {
        let a = g.raw(&post(path));
        assert!(
            status_line(&a).contains(" 403 ") || status_line(&a).contains(" 400 "),
            "{path}: {a}"
        );
    }
    // GET tricks that would read what is not allowed.
    for path in [
        "/v1.41/containers/json/../../secrets",
        "/v1.41/secrets",
        "/v1.41/%73ecrets",
        "/v1.41/swarm",
        "/v1.41/containers/x/archive?path=/",
    ] {
        let a = g.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
        ));
        assert!(status_line(&a).contains(" 403 "), "{path}: {a}");
        assert!(a.contains(r#"{"message":"socket-guard: "#), "{a}");
    }
    // Request smuggling: a read with a body hiding a second request, and TE + CL.
    let hidden = "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}";
    let a = g.raw(&format!(
        "GET /v1.41/version HTTP/1.1\r\nHost: d\r\nContent-Length: {}\r\n\r\n{hidden}",
        hidden.len()
    ));
    assert!(status_line(&a).contains(" 400 "), "{a}");
    assert!(!a.contains("ApiVersion"), "{a}");
    let a = g.raw(&format!(
        "GET /v1.41/version HTTP/1.1\r\nHost: d\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
    ));
    assert!(status_line(&a).contains(" 400 "), "{a}");
    assert_eq!(a.matches("HTTP/1.1").count(), 1, "{a}");
    let a = g.raw(&format!(
        "GET /v1.41/version HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
    ));
    assert!(!a.contains(" 201 ") && !a.contains("\"Id\""), "{a}");
    // Methods other than GET/HEAD on read endpoints.
    for m in ["PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT"] {
        let a = g.raw(&format!(
            "{m} /v1.41/containers/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
        ));
        assert!(
            status_line(&a).contains(" 403 ") || status_line(&a).contains(" 400 "),
            "{m}: {a}"
        );
    }
    // A head too large is refused, and the guard still answers afterwards.
    let big = format!(
        "GET /v1.41/version HTTP/1.1\r\nHost: d\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let a = g.raw(&big);
    assert!(!a.contains("ApiVersion"), "{a}");
    let a = g.raw("GET /v1.41/version HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    assert!(
        status_line(&a).contains(" 200 ") && a.contains("ApiVersion"),
        "{a}"
    );
    // Config writes: refused without the flag.
    let a = g.raw(&post("/v1.41/configs/create"));
    assert!(
        status_line(&a).contains(" 403 ") && a.contains("--allow-config-writes"),
        "{a}"
    );
}

#[test]
fn config_writes_pass_only_with_the_flag() {
    if !docker::engine_or_skip("config_writes_pass_only_with_the_flag") {
        return;
    }
    docker::ensure_swarm();
    let g = Guard::start(&["--allow-config-writes"]);
    let name = format!("{}-cfg", docker::prefix("guardcfg"));
    let file = g.dir.path().join("cfg.txt");
    std::fs::write(&file, "hello").unwrap();
    let made = g.docker(&["config", "create", &name, file.to_str().unwrap()]);
    let _rm = scopeguard(&name);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let data = g.docker(&[
        "config",
        "inspect",
        "--format",
        "{{json .Spec.Data}}",
        &name,
    ]);
    assert!(data.status.success());
    assert!(g.docker(&["config", "ls"]).status.success());
    let rm = g.docker(&["config", "rm", &name]);
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    // Secrets stay out of reach even with the flag.
    let o = g.docker(&["secret", "ls"]);
    assert!(!o.status.success());
}

/// Removes a Swarm config on drop (the test may fail before it does).
fn scopeguard(name: &str) -> impl Drop + '_ {
    struct Rm<'a>(&'a str);
    impl Drop for Rm<'_> {
        fn drop(&mut self) {
            docker(&["config", "rm", self.0]);
        }
    }
    Rm(name)
}

/// Polls until `host` answers 200 through swarmgate on `port` (connection errors while it starts count as no).
async fn wait_route(port: u16, host: &str) -> bool {
    let c = client();
    poll_until(Duration::from_secs(60), || {
        let c = &c;
        async move {
            let Ok(req) = http::Request::get(format!("http://127.0.0.1:{port}/"))
                .header("host", host)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
            else {
                return false;
            };
            let r = tokio::time::timeout(Duration::from_secs(3), c.request(req)).await;
            matches!(r, Ok(Ok(r)) if r.status() == http::StatusCode::OK)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarmgate_reads_containers_and_services_through_the_guard() {
    if !docker::engine_or_skip("swarmgate_reads_containers_and_services_through_the_guard") {
        return;
    }
    docker::ensure_swarm();
    let g = Guard::start(&[]);
    let img = docker::images();
    let p = docker::prefix("guardgate");
    let clean = Cleanup::default();
    let mount = format!("{}:/guard", g.dir.path().display());

    // Plain containers: swarmgate as a container, Docker provider on the guard socket.
    let net = docker::create_network(&p, false, &clean);
    let app = format!("{p}-app");
    clean.run(
        &app,
        &net,
        &[
            "--label",
            &format!("sgt.run={p}"),
            "--label",
            "traefik.enable=true",
            "--label",
            "traefik.http.routers.gapp.rule=Host(`guard-app.test`)",
            "--label",
            "traefik.http.services.gapp.loadbalancer.server.port=80",
            &img.whoami,
        ],
    );
    let port = docker::free_port();
    let gate = format!("{p}-gate");
    clean.run(
        &gate,
        &net,
        &[
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "-v",
            &mount,
            &img.gate,
            "--entrypoints.web.address=:80",
            "--providers.docker.endpoint=unix:///guard/guard.sock",
            "--providers.docker.exposedByDefault=false",
            &format!("--providers.docker.network={net}"),
            &format!("--providers.docker.constraints=Label(`sgt.run`, `{p}`)"),
            "--providers.providersThrottleDuration=50ms",
        ],
    );
    assert!(
        wait_route(port, "guard-app.test").await,
        "no route through the guard; swarmgate: {}\nguard: {}",
        docker::logs(&gate, false),
        g.logs()
    );

    // Swarm services: swarmgate as a service, Swarm provider on the guard socket.
    let onet = format!("{p}-onet");
    docker_ok(&[
        "network",
        "create",
        "--driver=overlay",
        "--label",
        &format!("sgt.run={p}"),
        &onet,
    ]);
    clean.network(&onet);
    let svc = format!("{p}-svc");
    clean.service(&svc);
    docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        &svc,
        "--network",
        &onet,
        "--label",
        &format!("sgt.run={p}"),
        "--label",
        "traefik.enable=true",
        "--label",
        "traefik.http.routers.gsvc.rule=Host(`guard-svc.test`)",
        "--label",
        "traefik.http.services.gsvc.loadbalancer.server.port=80",
        &img.whoami,
    ]);
    let sport = docker::free_port();
    let sgate = format!("{p}-sgate");
    clean.service(&sgate);
    docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        &sgate,
        "--network",
        &onet,
        "--publish",
        &format!("mode=host,target=80,published={sport}"),
        "--mount",
        &format!("type=bind,source={},target=/guard", g.dir.path().display()),
        "--constraint=node.role==manager",
        &img.gate,
        "--entrypoints.web.address=:80",
        "--providers.swarm.endpoint=unix:///guard/guard.sock",
        "--providers.swarm.exposedByDefault=false",
        &format!("--providers.swarm.network={onet}"),
        &format!("--providers.swarm.constraints=Label(`sgt.run`, `{p}`)"),
        "--providers.providersThrottleDuration=50ms",
    ]);
    assert!(
        wait_route(sport, "guard-svc.test").await,
        "no Swarm route through the guard; swarmgate: {}\nguard: {}",
        docker::logs(&sgate, true),
        g.logs()
    );
    // swarmgate never asked for anything the guard refuses.
    let logs = g.logs();
    assert!(
        !logs.contains("refused"),
        "swarmgate made a refused call: {logs}"
    );
    let gate_logs = docker::logs(&gate, false) + &docker::logs(&sgate, true);
    assert!(!gate_logs.contains("403"), "{gate_logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_through_the_guard() {
    if !docker::engine_or_skip("events_stream_through_the_guard") {
        return;
    }
    let g = Guard::start(&[]);
    let img = docker::images();
    let p = docker::prefix("guardev");
    let clean = Cleanup::default();
    let mut s = tokio::net::UnixStream::connect(g.sock()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D HTTP/1.1\r\nHost: d\r\n\r\n")
        .await
        .unwrap();
    let name = format!("{p}-ev");
    clean.container(&name);
    // The container is created after the stream is open: its event must arrive on it.
    let mut seen = Vec::new();
    let mut started = false;
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            if !started && String::from_utf8_lossy(&seen).contains("200 OK") {
                docker_ok(&["run", "-d", "--name", &name, &img.whoami]);
                started = true;
            }
            let n = s.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "the stream ended: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains(&name) {
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no event: {}",
        String::from_utf8_lossy(&seen)
    );
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{text}"
    );
}
