//! Test fixtures: the real swarmgate binary on free loopback ports, real whoami backends, a small client,
//! and bounded polling. Every wait has a deadline; nothing sleeps blindly.

#![allow(dead_code)]

pub mod docker;
pub mod load;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

/// A whoami backend on 127.0.0.1:<free port>, stopped on drop.
pub struct Backend {
    /// Its address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// Its name (first line of every answer: `Name: <name>`).
    pub name: String,
    cancel: CancellationToken,
}

impl Backend {
    /// Starts one.
    pub async fn start(name: &str) -> Backend {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = l.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        tokio::spawn(swarmgate::whoami::serve(
            l,
            name.to_string(),
            cancel.clone(),
        ));
        Backend {
            addr,
            url: format!("http://{addr}"),
            name: name.to_string(),
            cancel,
        }
    }

    /// Starts one over TLS with a fresh self-signed certificate for `127.0.0.1` and `localhost`;
    /// returns it with the certificate's PEM (to trust it). The URL is `https://127.0.0.1:port`.
    pub async fn start_tls(name: &str) -> (Backend, String) {
        let ck = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .expect("cert");
        let pem = ck.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .expect("server config");
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = l.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        tokio::spawn(swarmgate::whoami::serve_tls(
            l,
            name.to_string(),
            std::sync::Arc::new(cfg),
            cancel.clone(),
        ));
        (
            Backend {
                addr,
                url: format!("https://{addr}"),
                name: name.to_string(),
                cancel,
            },
            pem,
        )
    }

    /// Stops it (connections already open may finish).
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A plain HTTP/1 backend that tells the test when a request has arrived and holds every request whose
/// path starts with `/hold` until [`HoldingBackend::release`]: a test that needs "a request is in flight at
/// the backend" waits for exactly that instead of sleeping and hoping. Other paths are answered at once.
/// Answers are `200` with the body `Name: <name>` and `Connection: close`.
pub struct HoldingBackend {
    /// Its address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port`.
    pub url: String,
    held: Arc<std::sync::atomic::AtomicUsize>,
    release: tokio::sync::watch::Sender<bool>,
    cancel: CancellationToken,
}

impl HoldingBackend {
    /// Starts one.
    pub async fn start(name: &str) -> HoldingBackend {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = l.local_addr().expect("addr");
        let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let cancel = CancellationToken::new();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\nName: {name}",
            "Name: ".len() + name.len()
        );
        let (h, stop) = (held.clone(), cancel.clone());
        tokio::spawn(async move {
            loop {
                let mut s = tokio::select! {
                    a = l.accept() => match a { Ok((s, _)) => s, Err(_) => return },
                    () = stop.cancelled() => return,
                };
                let (h, mut released, answer) = (h.clone(), released.clone(), answer.clone());
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head);
                    if line
                        .split(' ')
                        .nth(1)
                        .is_some_and(|p| p.starts_with("/hold"))
                    {
                        h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let _ = released.wait_for(|r| *r).await;
                    }
                    let _ = s.write_all(answer.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        HoldingBackend {
            addr,
            url: format!("http://{addr}"),
            held,
            release,
            cancel,
        }
    }

    /// Waits until `n` `/hold` requests have arrived (in all), up to `timeout`.
    pub async fn wait_held(&self, n: usize, timeout: Duration) -> bool {
        poll_until(timeout, || async {
            self.held.load(std::sync::atomic::Ordering::SeqCst) >= n
        })
        .await
    }

    /// Answers every held request, and every later `/hold` request at once.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

impl Drop for HoldingBackend {
    fn drop(&mut self) {
        let _ = self.release.send(true);
        self.cancel.cancel();
    }
}

/// A running swarmgate process, killed on drop.
pub struct Gate {
    child: Option<Child>,
    logs: Arc<Mutex<String>>,
    /// Entrypoint name → bound address, read from the start-up log.
    pub entry_points: Vec<(String, SocketAddr)>,
    /// Scratch directory for config files (removed on drop).
    pub dir: tempfile::TempDir,
}

/// Path of the binary under test.
/// A field in kB of /proc/<pid>/status (`VmRSS:`, `VmHWM:`); 0 when unreadable.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory of a process in kB (`VmRSS`).
pub fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_swarmgate")
}

impl Gate {
    /// Writes `dynamic` (YAML) to `dynamic.yml` in a fresh directory and starts swarmgate with an entrypoint
    /// `web` on 127.0.0.1:0 watching it, plus `extra` flags.
    pub fn with_dynamic(dynamic: &str, extra: &[&str]) -> Gate {
        let dir = tempfile::tempdir().expect("tmpdir");
        let file = dir.path().join("dynamic.yml");
        std::fs::write(&file, dynamic).expect("write dynamic");
        let mut args = vec![
            "--entrypoints.web.address=127.0.0.1:0".to_string(),
            format!("--providers.file.filename={}", file.display()),
            "--providers.file.watch=true".to_string(),
            "--providers.providersThrottleDuration=50ms".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Gate::start_in(dir, &args, 1)
    }

    /// Starts swarmgate with `args` in `dir`, waiting until `expect_eps` entrypoints are listening.
    pub fn start_in(dir: tempfile::TempDir, args: &[String], expect_eps: usize) -> Gate {
        Gate::start_in_env(dir, args, expect_eps, &[])
    }

    /// [`Gate::start_in`] with extra environment variables (e.g. `LEGO_CA_CERTIFICATES`).
    pub fn start_in_env(
        dir: tempfile::TempDir,
        args: &[String],
        expect_eps: usize,
        env: &[(&str, &str)],
    ) -> Gate {
        Gate::start_under(&[], dir, args, expect_eps, env)
    }

    /// [`Gate::start_in_env`] with the binary run by `wrapper` (e.g. `["prlimit", "--nofile=64:64"]`, which
    /// execs it: the pid stays swarmgate's).
    pub fn start_under(
        wrapper: &[&str],
        dir: tempfile::TempDir,
        args: &[String],
        expect_eps: usize,
        env: &[(&str, &str)],
    ) -> Gate {
        let mut cmd = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut c = Command::new(program);
                c.args(wrapper_args).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let mut child = cmd
            .args(args)
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .env("SWARMGATE_LOG", "info")
            .env_remove("TRAEFIK_LOG_LEVEL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn swarmgate");
        let logs = Arc::new(Mutex::new(String::new()));
        for stream in [
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
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("SWARMGATE_TEST_ECHO").is_some() {
                        eprintln!("[swarmgate] {line}");
                    }
                    let mut l = logs.lock().unwrap_or_else(|e| e.into_inner());
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let mut gate = Gate {
            child: Some(child),
            logs,
            entry_points: Vec::new(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            gate.entry_points = parse_listening(&gate.logs());
            if gate.entry_points.len() >= expect_eps {
                break;
            }
            if let Some(status) = gate
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "swarmgate exited with {status} before listening:\n{}",
                    gate.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "swarmgate did not start:\n{}",
                gate.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        gate
    }

    /// The `web` entrypoint's address.
    pub fn web(&self) -> SocketAddr {
        self.ep("web")
    }

    /// An entrypoint's address by name. The start waits for as many entrypoints as the caller expected;
    /// with more of them (an extra `traefik` entrypoint) this one may be announced a moment later, so its
    /// line is waited for (10 s at most) rather than assumed missing.
    pub fn ep(&self, name: &str) -> SocketAddr {
        let find =
            |eps: &[(String, SocketAddr)]| eps.iter().find(|(n, _)| n == name).map(|(_, a)| *a);
        if let Some(a) = find(&self.entry_points) {
            return a;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(a) = find(&parse_listening(&self.logs())) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "no entrypoint {name}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id (to read its /proc entries).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Everything logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The dynamic file written by [`Gate::with_dynamic`].
    pub fn dynamic_file(&self) -> PathBuf {
        self.dir.path().join("dynamic.yml")
    }

    /// Sends a signal (`TERM`, `HUP`, `KILL`).
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the log contains `needle`, up to `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn parse_listening(logs: &str) -> Vec<(String, SocketAddr)> {
    logs.lines()
        .filter_map(|l| {
            let rest = &l[l.find("entrypoint ")? + "entrypoint ".len()..];
            let (name, addr) = rest.split_once(" listening on ")?;
            Some((name.to_string(), addr.trim().parse().ok()?))
        })
        .collect()
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text (lossy).
    pub body: String,
}

impl Reply {
    /// The whoami backend's name (`Name: x` line), if the answer came from one.
    pub fn backend(&self) -> Option<&str> {
        self.body.lines().find_map(|l| l.strip_prefix("Name: "))
    }
}

/// A pooled HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one request (with a 10 s deadline) and reads the whole answer.
pub async fn send(c: &Client<HttpConnector, Full<Bytes>>, req: Request<Full<Bytes>>) -> Reply {
    let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("body timed out")
        .expect("body")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// GET `path` on `addr` with `Host: host`.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    get_with(&client(), addr, host, path, &[]).await
}

/// GET with extra headers, on a given client.
pub async fn get_with(
    c: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut b = Request::get(format!("http://{addr}{path}")).header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(c, b.body(Full::new(Bytes::new())).expect("request")).await
}

/// A dynamic configuration (YAML) with one catch-all router (`PathPrefix(`/`)`) to service `s` on `url`.
pub fn catch_all_config(url: &str) -> String {
    format!(
        r#"http:
  routers:
    all:
      rule: PathPrefix(`/`)
      service: s
  services:
    s:
      loadBalancer:
        servers:
          - url: "{url}"
"#
    )
}

/// Polls `f` every 25 ms until it returns true or `timeout` passes; returns whether it succeeded.
pub async fn poll_until<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Writes a file atomically (temp + rename), as editors and config tools do.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write tmp");
    std::fs::rename(&tmp, path).expect("rename");
}

/// What a TLS client saw.
#[derive(Debug)]
pub struct TlsReply {
    /// The HTTP answer (None when only the handshake was made).
    pub reply: Option<Reply>,
    /// Names in the server's leaf certificate.
    pub cert_names: Vec<String>,
    /// Negotiated ALPN.
    pub alpn: Option<Vec<u8>>,
    /// Negotiated protocol version.
    pub version: Option<rustls::ProtocolVersion>,
}

/// A client TLS config trusting `roots` (PEM) — or anything when `roots` is None — offering `alpn`.
pub fn tls_client(
    roots: Option<&str>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions");
    let mut cfg = match roots {
        Some(pem) => {
            let mut store = rustls::RootCertStore::empty();
            for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                store.add(c.expect("pem")).expect("add root");
            }
            b.with_root_certificates(store).with_no_client_auth()
        }
        None => b
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAll(
                provider,
                Signatures::Checked,
            )))
            .with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    std::sync::Arc::new(cfg)
}

/// Whether [`AcceptAll`] still checks the handshake signature against the (unverified) certificate's key.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Signatures {
    Checked,
    /// For certificates webpki cannot parse (RFC 8737's critical acmeIdentifier extension).
    Unchecked,
}

/// A test client's verifier that accepts any certificate.
#[derive(Debug)]
struct AcceptAll(std::sync::Arc<rustls::crypto::CryptoProvider>, Signatures);

impl rustls::client::danger::ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        if self.1 == Signatures::Unchecked {
            return Ok(rustls::client::danger::HandshakeSignatureValid::assertion());
        }
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        if self.1 == Signatures::Unchecked {
            return Ok(rustls::client::danger::HandshakeSignatureValid::assertion());
        }
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects with TLS to `addr` using SNI `sni`, then (when `path` is Some) sends one GET with `Host: sni`.
/// Returns Err with the handshake error text when the handshake fails.
pub async fn tls_get(
    addr: SocketAddr,
    sni: &str,
    path: Option<&str>,
    cfg: std::sync::Arc<rustls::ClientConfig>,
) -> Result<TlsReply, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name =
        rustls::pki_types::ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let (_, conn) = tls.get_ref();
    let cert_names = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| swarmgate::tls::certs::names(c))
        .unwrap_or_default();
    let alpn = conn.alpn_protocol().map(|a| a.to_vec());
    let version = conn.protocol_version();
    let Some(path) = path else {
        return Ok(TlsReply {
            reply: None,
            cert_names,
            alpn,
            version,
        });
    };
    let io = hyper_util::rt::TokioIo::new(tls);
    let req = Request::get(path)
        .header("host", sni)
        .body(Full::new(Bytes::new()))
        .expect("req");
    let resp = if alpn.as_deref() == Some(b"h2") {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = req;
        *req.uri_mut() = format!("https://{sni}{path}").parse().expect("uri");
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(TlsReply {
        reply: Some(Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }),
        cert_names,
        alpn,
        version,
    })
}

/// A self-signed certificate for `names`: (cert PEM, key PEM).
pub fn self_signed(names: &[&str]) -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("cert");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// A loopback port for a test that must name its ports before the process that binds them starts
/// (Pebble's validation ports, published container ports, `healthcheck`'s address).
///
/// Two races are avoided: ports are drawn below the kernel's ephemeral range (32768–60999 here), so no
/// outgoing connection takes them meanwhile; and a port is reserved across every test process of the run
/// by creating `$TMPDIR/swarmgate-test-ports/<port>` (atomic `mkdir`; reservations older than ten minutes
/// are reused), so parallel tests never get the same one. The port is also checked to be bindable now.
pub fn free_port() -> u16 {
    let dir = std::env::temp_dir().join("swarmgate-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    for _ in 0..10_000 {
        let port = 20_000 + (fastrand_u16() % 12_000);
        let mark = dir.join(port.to_string());
        if std::fs::create_dir(&mark).is_err() {
            let stale = std::fs::metadata(&mark)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|e| e > Duration::from_secs(600));
            if !stale {
                continue;
            }
            let _ = std::fs::remove_dir(&mark);
            if std::fs::create_dir(&mark).is_err() {
                continue;
            }
        }
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if tcp && udp {
            return port;
        }
    }
    panic!("no free loopback port found in 20000-31999");
}

fn fastrand_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() as u16
}

/// A TLS 1.3 client, as a CA validating TLS-ALPN-01 (RFC 8737): offering only `acme-tls/1`, accepting any certificate and signature (the RFC 8737 certificate
/// carries a critical extension that webpki refuses, so even the signature check must not parse it: a CA
/// checks the extension itself).
pub fn acme_tls_client() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll(provider, Signatures::Unchecked)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    Arc::new(cfg)
}
