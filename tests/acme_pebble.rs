//! ACME through the real binary against a real Pebble CA that validates for real (HTTP-01 on the `web`
//! entrypoint, TLS-ALPN-01 on `websecure`): issuance, renewal of short-lived certificates, a CA outage, two
//! replicas sharing one storage directory, and a Traefik `acme.json` served without an order.
//!
//! Needs `pebble` and `pebble-challtestsrv` (`apt-get install pebble`); `scripts/test.sh` installs them.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

#[path = "support/pebble.rs"]
mod pebble;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use pebble::{free_port, Pebble, PebbleOptions};
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use support::{poll_until, tls_client, tls_get, Backend, Gate};

static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn dynamic(host: Option<&str>, backend: &str) -> String {
    match host {
        Some(host) => format!(
            r#"http:
  routers:
    app:
      rule: Host(`{host}`)
      entryPoints: [websecure]
      service: app
      tls:
        certResolver: le
  services:
    app:
      loadBalancer:
        servers:
          - url: "{backend}"
"#
        ),
        None => format!(
            r#"http:
  services:
    app:
      loadBalancer:
        servers:
          - url: "{backend}"
"#
        ),
    }
}

/// Starts swarmgate with `web` on `web_port`, `websecure` on `tls_port`, the file provider on `dynamic`, and
/// resolver `le` on `storage`, trusting Pebble's API through `caCertificates`.
fn gate(
    web_port: u16,
    tls_port: u16,
    dynamic_text: &str,
    storage: &Path,
    ca_server: &str,
    ca_file: &Path,
    challenge: &str,
) -> Gate {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("dynamic.yml");
    std::fs::write(&file, dynamic_text).expect("write dynamic");
    let args = vec![
        format!("--entrypoints.web.address=127.0.0.1:{web_port}"),
        format!("--entrypoints.websecure.address=127.0.0.1:{tls_port}"),
        format!("--providers.file.filename={}", file.display()),
        "--providers.file.watch=true".to_string(),
        "--providers.providersThrottleDuration=50ms".to_string(),
        "--certificatesresolvers.le.acme.email=ops@example.com".to_string(),
        format!(
            "--certificatesresolvers.le.acme.storage={}",
            storage.display()
        ),
        format!("--certificatesresolvers.le.acme.caserver={ca_server}"),
        "--certificatesresolvers.le.acme.keytype=EC256".to_string(),
        challenge.to_string(),
    ];
    // TLS-ALPN-01 runs trust Pebble's API the lego way (LEGO_CA_CERTIFICATES, as Traefik users do);
    // the others through Traefik v3's `acme.caCertificates`.
    if challenge == TLSALPN01 {
        let ca = ca_file.display().to_string();
        Gate::start_in_env(dir, &args, 2, &[("LEGO_CA_CERTIFICATES", &ca)])
    } else {
        let mut args = args;
        args.push(format!(
            "--certificatesresolvers.le.acme.cacertificates={}",
            ca_file.display()
        ));
        Gate::start_in(dir, &args, 2)
    }
}

const HTTP01: &str = "--certificatesresolvers.le.acme.httpchallenge.entrypoint=web";
const TLSALPN01: &str = "--certificatesresolvers.le.acme.tlschallenge=true";

/// The SHA-256 of the leaf certificate `addr` serves for `sni` (no verification).
async fn served_fingerprint(addr: SocketAddr, sni: &str) -> Option<String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let cfg = tls_client(None, &[b"http/1.1"], TLS13);
    let name = ServerName::try_from(sni.to_string()).ok()?;
    let tls = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .ok()?
    .ok()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?.clone();
    Some(hex::encode(Sha256::digest(leaf.as_ref())))
}

/// GET / over TLS, verified against `root`.
async fn verified_get(addr: SocketAddr, host: &str, root: &str) -> Result<StatusCode, String> {
    let r = tls_get(
        addr,
        host,
        Some("/"),
        tls_client(Some(root), &[b"http/1.1"], TLS13),
    )
    .await?;
    r.reply.map(|r| r.status).ok_or_else(|| "no reply".into())
}

/// Waits until `addr` serves `host` with a certificate that verifies against `root` and answers 200.
async fn wait_verified(addr: SocketAddr, host: &str, root: &str, timeout: Duration) -> bool {
    poll_until(timeout, || async {
        verified_get(addr, host, root).await == Ok(StatusCode::OK)
    })
    .await
}

fn stored_certificates(storage: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(storage).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["le"]["Certificates"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn issue_with(challenge: &str, host: &str) {
    let backend = Backend::start("acme").await;
    let (web, websecure) = (free_port(), free_port());
    let pebble = Pebble::start(PebbleOptions {
        http_port: web,
        tls_port: websecure,
        validity_secs: None,
    });
    let root = pebble.issuing_root().await;
    let storage_dir = tempfile::tempdir().expect("tmp");
    let storage = storage_dir.path().join("acme.json");
    let g = gate(
        web,
        websecure,
        &dynamic(Some(host), &backend.url),
        &storage,
        &pebble.directory,
        &pebble.api_ca_file,
        challenge,
    );

    assert!(
        wait_verified(g.ep("websecure"), host, &root, Duration::from_secs(60)).await,
        "no certificate verified by Pebble's root\n--- swarmgate\n{}\n--- pebble\n{}",
        g.logs(),
        pebble.log()
    );
    // Stored in Traefik's format, mode 0600.
    let certs = stored_certificates(&storage);
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(certs[0]["domain"]["main"], host);
    assert_eq!(certs[0]["Store"], "default");
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(certs[0]["certificate"].as_str().expect("b64"))
        .expect("b64");
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&storage)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        g.logs().contains("ACME certificate obtained"),
        "{}",
        g.logs()
    );
    // Challenge answers are withdrawn after the order.
    let http01 = storage_dir.path().join(".swarmgate/challenges/http-01");
    assert!(std::fs::read_dir(&http01)
        .map(|d| d.count() == 0)
        .unwrap_or(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_certificate_is_issued_and_verifies_against_pebbles_root() {
    issue_with(HTTP01, "http01.example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_certificate_is_issued_and_verifies_against_pebbles_root() {
    issue_with(TLSALPN01, "alpn.example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificate_renews_then_survives_a_ca_outage() {
    let host = "renew.example.com";
    let backend = Backend::start("acme").await;
    let (web, websecure) = (free_port(), free_port());
    // 30 s certificates: renewal when 10 s remain, i.e. 20 s after issuance.
    let mut pebble = Pebble::start(PebbleOptions {
        http_port: web,
        tls_port: websecure,
        validity_secs: Some(30),
    });
    let root = pebble.issuing_root().await;
    let storage_dir = tempfile::tempdir().expect("tmp");
    let storage = storage_dir.path().join("acme.json");
    let g = gate(
        web,
        websecure,
        &dynamic(Some(host), &backend.url),
        &storage,
        &pebble.directory,
        &pebble.api_ca_file,
        HTTP01,
    );
    assert!(
        wait_verified(g.ep("websecure"), host, &root, Duration::from_secs(60)).await,
        "{}",
        g.logs()
    );
    let first = served_fingerprint(g.ep("websecure"), host)
        .await
        .expect("served");

    // Renewed by its own lifetime, swapped in without restart; the stored entry is replaced, not added.
    let renewed = poll_until(Duration::from_secs(60), || async {
        served_fingerprint(g.ep("websecure"), host)
            .await
            .is_some_and(|f| f != first)
    })
    .await;
    assert!(renewed, "not renewed\n{}", g.logs());
    assert!(g.logs().contains("renewing a certificate"), "{}", g.logs());
    assert_eq!(stored_certificates(&storage).len(), 1);
    assert!(wait_verified(g.ep("websecure"), host, &root, Duration::from_secs(5)).await);
    let second = served_fingerprint(g.ep("websecure"), host)
        .await
        .expect("served");

    // The CA goes away: the next renewal fails, is logged and retried with backoff; the current certificate stays.
    pebble.stop();
    assert!(
        g.wait_log("ACME renewal failed", Duration::from_secs(60)),
        "{}",
        g.logs()
    );
    assert_eq!(
        served_fingerprint(g.ep("websecure"), host).await.as_deref(),
        Some(second.as_str())
    );
    let failures = |logs: &str| logs.matches("ACME renewal failed").count();
    let t0 = std::time::Instant::now();
    assert!(
        poll_until(Duration::from_secs(30), || async {
            failures(&g.logs()) >= 2
        })
        .await,
        "no retry\n{}",
        g.logs()
    );
    assert!(
        t0.elapsed() >= Duration::from_secs(3),
        "retried in a tight loop:\n{}",
        g.logs()
    );
    assert!(g.logs().contains("retrying in"), "{}", g.logs());
    assert_eq!(
        served_fingerprint(g.ep("websecure"), host).await.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(stored_certificates(&storage).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_storage_and_answer_each_others_challenges() {
    let host = "shared.example.com";
    let backend = Backend::start("acme").await;
    let (a_web, a_tls, b_web, b_tls) = (free_port(), free_port(), free_port(), free_port());
    // Pebble validates against replica B; replica A places the order.
    let pebble = Pebble::start(PebbleOptions {
        http_port: b_web,
        tls_port: b_tls,
        validity_secs: None,
    });
    let root = pebble.issuing_root().await;
    let shared = tempfile::tempdir().expect("tmp");
    let storage = shared.path().join("acme.json");
    let b = gate(
        b_web,
        b_tls,
        &dynamic(None, &backend.url),
        &storage,
        &pebble.directory,
        &pebble.api_ca_file,
        HTTP01,
    );
    let a = gate(
        a_web,
        a_tls,
        &dynamic(Some(host), &backend.url),
        &storage,
        &pebble.directory,
        &pebble.api_ca_file,
        HTTP01,
    );

    assert!(
        wait_verified(a.ep("websecure"), host, &root, Duration::from_secs(60)).await,
        "A got no certificate\n--- A\n{}\n--- B\n{}\n--- pebble\n{}",
        a.logs(),
        b.logs(),
        pebble.log()
    );
    // B now routes the host too: it serves the certificate A obtained, read from the shared storage.
    support::write_atomic(&b.dynamic_file(), &dynamic(Some(host), &backend.url));
    assert!(
        wait_verified(b.ep("websecure"), host, &root, Duration::from_secs(20)).await,
        "{}",
        b.logs()
    );
    assert_eq!(
        served_fingerprint(a.ep("websecure"), host).await,
        served_fingerprint(b.ep("websecure"), host).await
    );
    // Issued once. Deliberate gap: B gets 3 s in which a second order would show in its log and the storage;
    // proving that something does not happen needs a window, not a condition to poll for.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stored_certificates(&storage).len(), 1);
    assert!(a.logs().contains("obtaining a certificate"), "{}", a.logs());
    assert!(
        !b.logs().contains("obtaining a certificate"),
        "B ordered too:\n{}",
        b.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_acme_json_is_served_without_an_order() {
    let host = "fixture.example.com";
    let backend = Backend::start("acme").await;
    // A CA and a leaf, stored as Traefik writes them (base64 of PEM, Store "default", account with an RSA key).
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec![host.to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let fixture = serde_json::json!({
        "le": {
            "Account": {
                "Email": "ops@example.com",
                "Registration": { "body": { "status": "valid", "contact": ["mailto:ops@example.com"] },
                                  "uri": "https://127.0.0.1:1/acme/acct/1" },
                "PrivateKey": "MIIJKAIBAAKCAgEAwJ3pL",
                "KeyType": "4096"
            },
            "Certificates": [ {
                "domain": { "main": host },
                "certificate": b64(&format!("{}{}", leaf.pem(), ca.pem())),
                "key": b64(&key.serialize_pem()),
                "Store": "default"
            } ]
        }
    });
    let storage_dir = tempfile::tempdir().expect("tmp");
    let storage = storage_dir.path().join("acme.json");
    std::fs::write(
        &storage,
        serde_json::to_string_pretty(&fixture).expect("json"),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&storage, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let ca_file = storage_dir.path().join("unused-ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write");

    // The CA is unreachable: any order would fail loudly.
    let (web, websecure) = (free_port(), free_port());
    let g = gate(
        web,
        websecure,
        &dynamic(Some(host), &backend.url),
        &storage,
        "https://127.0.0.1:1/dir",
        &ca_file,
        HTTP01,
    );
    assert!(
        wait_verified(g.ep("websecure"), host, &ca.pem(), Duration::from_secs(10)).await,
        "{}",
        g.logs()
    );
    assert!(
        g.logs().contains("ACME certificate expires"),
        "expiry not logged:\n{}",
        g.logs()
    );
    // Deliberate gap: 3 s in which an (unwanted) order would be logged; nothing to poll for.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !g.logs().contains("obtaining a certificate"),
        "{}",
        g.logs()
    );
    assert!(!g.logs().contains("ACME order failed"), "{}", g.logs());
    // The file is untouched (Traefik's account kept verbatim).
    let now: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&storage).expect("read")).expect("json");
    assert_eq!(now, fixture);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_readable_by_others_is_refused_with_traefiks_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("acme.json");
    std::fs::write(&storage, "{}").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&storage, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = std::process::Command::new(support::bin())
        .args([
            "--entrypoints.web.address=127.0.0.1:0".to_string(),
            format!(
                "--certificatesresolvers.le.acme.storage={}",
                storage.display()
            ),
            HTTP01.to_string(),
        ])
        .output()
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(
        text.contains(&format!(
            "permissions 644 for {} are too open, please use 600",
            storage.display()
        )),
        "{text}"
    );
}
