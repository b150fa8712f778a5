//! ACME DNS-01 through the real binary: a real BIND 9 (`named`) is authoritative for `example.test` with a
//! TSIG key, Pebble validates DNS-01 by querying it (`-dnsserver`, no `PEBBLE_VA_ALWAYS_VALID`), and
//! swarmgate's providers write the TXT records — `rfc2136` directly, `exec` through a shell script running
//! `nsupdate`, `httpreq` through a small HTTP server running `nsupdate`. A wildcard certificate is issued and
//! served for two host names, verified against Pebble's root; the records are gone afterwards.
//!
//! Needs `pebble`, `named`, `nsupdate`, `dig` (`apt-get install pebble bind9 bind9-utils bind9-dnsutils`);
//! `scripts/test.sh` installs them.

// Test code: a failed unwrap, expect or index is the assertion, and tests write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

#[path = "support/bind.rs"]
mod bind;
#[allow(dead_code)] // the HTTP-01/TLS-ALPN-01 parts of the fixture are not used here
#[path = "support/pebble.rs"]
mod pebble;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bind::Bind;
use http::StatusCode;
use pebble::{free_port, Pebble, PebbleOptions};
use support::{poll_until, tls_client, tls_get, Backend, Gate};

static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A router for `hosts` on `websecure`, certificate from resolver `le` for `domains` (`main`, `sans`).
fn dynamic(hosts: &[&str], main: &str, sans: &[&str], backend: &str) -> String {
    let rule = hosts
        .iter()
        .map(|h| format!("Host(`{h}`)"))
        .collect::<Vec<_>>()
        .join(" || ");
    let sans = sans
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"http:
  routers:
    app:
      rule: "{rule}"
      entryPoints: [websecure]
      service: app
      tls:
        certResolver: le
        domains:
          - main: "{main}"
            sans: [{sans}]
  services:
    app:
      loadBalancer:
        servers:
          - url: "{backend}"
"#
    )
}

/// Pebble resolving and validating through `bind`.
fn pebble_on(bind: &Bind) -> Pebble {
    Pebble::start_with_dns(
        PebbleOptions {
            http_port: free_port(),
            tls_port: free_port(),
            validity_secs: None,
        },
        Some(bind.addr),
    )
}

/// swarmgate with `websecure`, resolver `le` using DNS-01 with `dns_flags`, provider settings in `env`.
fn gate(
    tls_port: u16,
    dynamic_text: &str,
    storage: &Path,
    pebble: &Pebble,
    dns_flags: &[String],
    env: &[(&str, &str)],
) -> Gate {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("dynamic.yml");
    std::fs::write(&file, dynamic_text).expect("write dynamic");
    let mut args = vec![
        format!("--entrypoints.websecure.address=127.0.0.1:{tls_port}"),
        format!("--providers.file.filename={}", file.display()),
        "--providers.providersThrottleDuration=50ms".to_string(),
        "--certificatesresolvers.le.acme.email=ops@example.com".to_string(),
        format!(
            "--certificatesresolvers.le.acme.storage={}",
            storage.display()
        ),
        format!(
            "--certificatesresolvers.le.acme.caserver={}",
            pebble.directory
        ),
        format!(
            "--certificatesresolvers.le.acme.cacertificates={}",
            pebble.api_ca_file.display()
        ),
    ];
    args.extend(dns_flags.iter().cloned());
    Gate::start_in_env(dir, &args, 1, env)
}

/// Waits until `addr` serves `host` with a certificate verified by `root` and answers 200.
async fn wait_verified(addr: SocketAddr, host: &str, root: &str, timeout: Duration) -> bool {
    poll_until(timeout, || async {
        let r = tls_get(
            addr,
            host,
            Some("/"),
            tls_client(Some(root), &[b"http/1.1"], TLS13),
        )
        .await;
        matches!(r, Ok(r) if r.reply.as_ref().map(|r| r.status) == Some(StatusCode::OK))
    })
    .await
}

/// The SAN DNS names of the leaf served for `sni`.
async fn served_sans(addr: SocketAddr, sni: &str, root: &str) -> Vec<String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let cfg = tls_client(Some(root), &[b"http/1.1"], TLS13);
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("sni");
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .expect("verified handshake");
    let leaf = tls.get_ref().1.peer_certificates().expect("certs")[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).expect("x509");
    let san = cert
        .subject_alternative_name()
        .expect("san ext")
        .expect("san");
    let mut names: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|g| match g {
            x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    names.sort();
    names
}

fn rfc2136_env(bind: &Bind) -> Vec<(&'static str, String)> {
    vec![
        ("RFC2136_NAMESERVER", bind.addr.to_string()),
        ("RFC2136_TSIG_KEY", bind::KEY_NAME.to_string()),
        ("RFC2136_TSIG_SECRET", bind::KEY_SECRET.to_string()),
        ("RFC2136_TSIG_ALGORITHM", "hmac-sha256.".to_string()),
        ("RFC2136_POLLING_INTERVAL", "1".to_string()),
        // Authoritative checks go to port 53 in production; the test's BIND listens elsewhere.
        ("SWARMGATE_DNS01_NS_PORT", bind.addr.port().to_string()),
    ]
}

fn dns_flags(provider: &str, bind: &Bind, extra: &[&str]) -> Vec<String> {
    let mut f = vec![
        format!("--certificatesresolvers.le.acme.dnschallenge.provider={provider}"),
        format!(
            "--certificatesresolvers.le.acme.dnschallenge.resolvers={}",
            bind.addr
        ),
    ];
    f.extend(
        extra
            .iter()
            .map(|e| format!("--certificatesresolvers.le.acme.dnschallenge.{e}")),
    );
    f
}

/// Issues `*.example.test` + `example.test` with `provider`, checks it is served (verified) for two host
/// names, and that no challenge record is left. Returns the time from start to the first verified answer.
async fn wildcard_with(
    bind: &Bind,
    pebble: &Pebble,
    provider: &str,
    extra_flags: &[&str],
    env: &[(&str, String)],
) -> Duration {
    let backend = Backend::start("dns").await;
    let root = pebble.issuing_root().await;
    let storage_dir = tempfile::tempdir().expect("tmp");
    let storage = storage_dir.path().join("acme.json");
    let tls_port = free_port();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let started = Instant::now();
    let g = gate(
        tls_port,
        &dynamic(
            &["a.example.test", "b.example.test"],
            "*.example.test",
            &["example.test"],
            &backend.url,
        ),
        &storage,
        pebble,
        &dns_flags(provider, bind, extra_flags),
        &env,
    );
    let ok = wait_verified(
        g.ep("websecure"),
        "a.example.test",
        &root,
        Duration::from_secs(90),
    )
    .await;
    let took = started.elapsed();
    assert!(
        ok,
        "no wildcard certificate verified by Pebble's root\n--- swarmgate\n{}\n--- pebble\n{}\n--- named\n{}",
        g.logs(),
        pebble.log(),
        bind.log()
    );
    assert!(
        wait_verified(
            g.ep("websecure"),
            "b.example.test",
            &root,
            Duration::from_secs(10)
        )
        .await,
        "second host name not served"
    );
    assert_eq!(
        served_sans(g.ep("websecure"), "b.example.test", &root).await,
        ["*.example.test", "example.test"]
    );
    // The TXT records are removed after the order.
    assert!(
        poll_until(Duration::from_secs(10), || async {
            bind.txt("_acme-challenge.example.test").is_empty()
        })
        .await,
        "challenge records left: {:?}",
        bind.txt("_acme-challenge.example.test")
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc2136_wildcard_certificate_validated_by_pebble_through_bind() {
    let bind = Bind::start();
    let pebble = pebble_on(&bind);
    wildcard_with(&bind, &pebble, "rfc2136", &[], &rfc2136_env(&bind)).await;
}
