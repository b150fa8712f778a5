//! What this measures: the added cost per request of a 5-middleware chain, end to end through the real
//! binary, against the same request on a router without middlewares.
//!
//! Setup: the release `swarmgate` binary with a file provider, one in-process whoami backend, and two
//! routers to the same service on one entrypoint:
//! - `chain/none`: `Host(none.test)`, no middleware — the hot path's "pays nothing" case;
//! - `chain/five`: `Host(five.test)` through `ipAllowList` (127.0.0.1/32), `rateLimit` (a budget never
//!   reached), `basicAuth` (`{SHA}` hash, so the hash itself costs microseconds, not bcrypt's milliseconds),
//!   `stripPrefix` and `headers` (a custom request header, a custom response header and two security
//!   headers) — the common dashboard-style stack.
//!
//! Each iteration is one keep-alive HTTP/1.1 `GET /bench` (2-byte answer) from one client, sequentially,
//! so the number is latency, not throughput. The difference of the two medians is the chain's cost per
//! request (request steps, response headers, the one boxed note list). Client, proxy and backend share the
//! machine's cores, so absolute numbers are dominated by loopback I/O; compare the two lines of one run.
//!
//! Why: middlewares run on almost every real router; this puts a number on "built once, walked per request"
//! and shows the no-middleware path is not taxed by their existence.

// Benchmark code: a failed unwrap, expect or index aborts the measurement on purpose; setup may use std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

struct Proxy {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(backend: SocketAddr) -> Proxy {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("dynamic.yml");
    let dynamic = format!(
        r#"http:
  routers:
    none:
      rule: Host(`none.test`)
      service: s
    five:
      rule: Host(`five.test`)
      service: s
      middlewares: [allow, limit, auth, strip, hdr]
  middlewares:
    allow:
      ipAllowList:
        sourceRange: ["127.0.0.1/32"]
    limit:
      rateLimit:
        average: 100000000
        burst: 100000000
    auth:
      basicAuth:
        users: ["bench:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g="]
    strip:
      stripPrefix:
        prefixes: ["/app"]
    hdr:
      headers:
        customRequestHeaders:
          X-Bench: "1"
        customResponseHeaders:
          X-Served-By: swarmgate
        frameDeny: true
        contentTypeNosniff: true
  services:
    s:
      loadBalancer:
        servers:
          - url: "http://{backend}"
"#
    );
    std::fs::write(&file, dynamic).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .args([
            "--entrypoints.web.address=127.0.0.1:0".to_string(),
            format!("--providers.file.filename={}", file.display()),
        ])
        .env("SWARMGATE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn swarmgate");
    // The start-up line ("entrypoint web listening on …") may go to either stream.
    let (tx, rx) = std::sync::mpsc::channel();
    let streams: Vec<Box<dyn std::io::Read + Send>> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    for stream in streams {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    if let Ok(a) = rest.trim().parse::<SocketAddr>() {
                        let _ = tx.send(a);
                    }
                }
            }
        });
    }
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("swarmgate did not start");
    Proxy {
        child,
        addr,
        _dir: dir,
    }
}

fn chain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cancel = CancellationToken::new();
    let backend = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let a = l.local_addr().expect("addr");
        tokio::spawn(swarmgate::whoami::serve(
            l,
            "bench".to_string(),
            cancel.clone(),
        ));
        a
    });
    let proxy = start_proxy(backend);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let send = |host: &'static str, path: &'static str| {
        let client = client.clone();
        let addr = proxy.addr;
        async move {
            let req = Request::get(format!("http://{addr}{path}"))
                .header("host", host)
                .header("authorization", "Basic YmVuY2g6cGFzc3dvcmQ=")
                .body(Full::new(Bytes::new()))
                .expect("request");
            let resp = client.request(req).await.expect("send");
            let status = resp.status();
            let _ = resp.into_body().collect().await.expect("body");
            status
        }
    };
    // Wait until both routers are live.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.block_on(send("five.test", "/app/bench")) != StatusCode::OK
        || rt.block_on(send("none.test", "/bench")) != StatusCode::OK
    {
        assert!(Instant::now() < deadline, "routers never went live");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut group = c.benchmark_group("chain");
    group.bench_function("none", |b| {
        b.iter(|| rt.block_on(send("none.test", "/bench")))
    });
    group.bench_function("five", |b| {
        b.iter(|| rt.block_on(send("five.test", "/app/bench")))
    });
    group.finish();
    cancel.cancel();
    drop(proxy);
}

criterion_group!(benches, chain);
criterion_main!(benches);
