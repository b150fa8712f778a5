//! TLS termination through the real binary: certificates by SNI, default certificate, sniStrict, TLS
//! routers vs plain routers on one entrypoint, ALPN, versions, and live certificate changes.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::time::Duration;

use http::StatusCode;
use support::{get, poll_until, self_signed, tls_client, tls_get, Backend, Gate};

static ALL: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn dynamic(backend: &str, cert: &std::path::Path, key: &std::path::Path, extra: &str) -> String {
    format!(
        r#"http:
  routers:
    secure:
      rule: Host(`a.test`)
      service: s
      tls: {{}}
    plain:
      rule: Host(`a.test`)
      service: p
  services:
    s:
      loadBalancer:
        servers:
          - url: "{backend}"
    p:
      loadBalancer:
        servers:
          - url: "{backend}/plain"
            preservePath: true
tls:
  certificates:
    - certFile: {}
      keyFile: {}
{extra}"#,
        cert.display(),
        key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_by_sni_default_certificate_and_tls_only_routers() {
    let a = Backend::start("A").await;
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(&["a.test"]);
    let (cp, kp) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    std::fs::write(&cp, &cert).expect("w");
    std::fs::write(&kp, &key).expect("w");
    let gate = Gate::with_dynamic(&dynamic(&a.url, &cp, &kp, ""), &[]);

    // The file certificate for its name, verified against it; h2 negotiated by ALPN.
    let r = tls_get(
        gate.web(),
        "a.test",
        Some("/x"),
        tls_client(Some(&cert), &[b"h2", b"http/1.1"], ALL),
    )
    .await
    .expect("tls");
    assert_eq!(r.cert_names, vec!["a.test"]);
    assert_eq!(r.alpn.as_deref(), Some(&b"h2"[..]));
    let reply = r.reply.expect("reply");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        reply.body.contains("GET /x HTTP/1.1"),
        "the TLS router (no /plain prefix) answered: {}",
        reply.body
    );
    assert!(
        reply.body.contains("X-Forwarded-Proto: https"),
        "{}",
        reply.body
    );

    // HTTP/1.1 over TLS too.
    let r = tls_get(
        gate.web(),
        "a.test",
        Some("/y"),
        tls_client(Some(&cert), &[b"http/1.1"], ALL),
    )
    .await
    .expect("tls");
    assert_eq!(r.reply.expect("reply").status, StatusCode::OK);

    // Plain HTTP on the same entrypoint reaches the plain router only.
    let plain = get(gate.web(), "a.test", "/z").await;
    assert!(
        plain.body.contains("GET /plain/z HTTP/1.1"),
        "{}",
        plain.body
    );

    // Unknown SNI: Traefik's default certificate; a TLS request for a host without a TLS router is 404.
    let r = tls_get(
        gate.web(),
        "other.test",
        Some("/"),
        tls_client(None, &[b"http/1.1"], ALL),
    )
    .await
    .expect("tls");
    assert_eq!(r.cert_names, vec!["traefik default cert"]);
    assert_eq!(r.reply.expect("reply").status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_options_sni_strict_and_min_version() {
    let a = Backend::start("A").await;
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(&["a.test"]);
    let (cp, kp) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    std::fs::write(&cp, &cert).expect("w");
    std::fs::write(&kp, &key).expect("w");
    let extra = "  options:\n    default:\n      sniStrict: true\n      minVersion: VersionTLS13\n";
    let gate = Gate::with_dynamic(&dynamic(&a.url, &cp, &kp, extra), &[]);
    let ok = tls_get(
        gate.web(),
        "a.test",
        None,
        tls_client(Some(&cert), &[], ALL),
    )
    .await
    .expect("tls");
    assert_eq!(ok.version, Some(rustls::ProtocolVersion::TLSv1_3));
    let strict = tls_get(gate.web(), "other.test", None, tls_client(None, &[], ALL)).await;
    assert!(
        strict.is_err(),
        "sniStrict must refuse an unknown name: {strict:?}"
    );
    let old = tls_get(
        gate.web(),
        "a.test",
        None,
        tls_client(Some(&cert), &[], &[&rustls::version::TLS12]),
    )
    .await;
    assert!(
        old.is_err(),
        "minVersion TLS 1.3 must refuse TLS 1.2: {old:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_changes_are_live() {
    let a = Backend::start("A").await;
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(&["a.test"]);
    let (cp, kp) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    std::fs::write(&cp, &cert).expect("w");
    std::fs::write(&kp, &key).expect("w");
    let gate = Gate::with_dynamic(&dynamic(&a.url, &cp, &kp, ""), &[]);
    assert!(
        tls_get(gate.web(), "b.test", None, tls_client(None, &[], ALL))
            .await
            .expect("tls")
            .cert_names
            == vec!["traefik default cert"]
    );

    // Add a certificate for b.test (inline PEM, as Traefik accepts) and a router for it.
    let (cert_b, key_b) = self_signed(&["b.test"]);
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("        {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let extra = format!(
        "    - certFile: |\n{}\n      keyFile: |\n{}\n",
        indent(&cert_b),
        indent(&key_b)
    );
    let text = dynamic(&a.url, &cp, &kp, &extra);
    support::write_atomic(&gate.dynamic_file(), &text);
    let live = poll_until(Duration::from_secs(3), || async {
        tls_get(gate.web(), "b.test", None, tls_client(None, &[], ALL))
            .await
            .map(|r| r.cert_names == vec!["b.test"])
            .unwrap_or(false)
    })
    .await;
    assert!(live, "new certificate not served:\n{}", gate.logs());
    let r = tls_get(
        gate.web(),
        "b.test",
        None,
        tls_client(Some(&cert_b), &[], ALL),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entrypoint_tls_and_http_to_https_redirection() {
    let a = Backend::start("A").await;
    let dir = tempfile::tempdir().expect("tmp");
    let dyn_file = dir.path().join("dynamic.yml");
    std::fs::write(&dyn_file, format!("http:\n  routers:\n    r:\n      rule: Host(`a.test`)\n      service: s\n  services:\n    s:\n      loadBalancer:\n        servers:\n          - url: {}\n", a.url)).expect("w");
    let args: Vec<String> = [
        "--entrypoints.web.address=127.0.0.1:0",
        "--entrypoints.web.http.redirections.entrypoint.to=websecure",
        "--entrypoints.web.http.redirections.entrypoint.scheme=https",
        "--entrypoints.websecure.address=127.0.0.1:0",
        "--entrypoints.websecure.http.tls=true",
        &format!("--providers.file.filename={}", dyn_file.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let gate = Gate::start_in(dir, &args, 2);
    let r = get(gate.web(), "a.test", "/p?q=1").await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    let loc = r
        .headers
        .get("location")
        .expect("location")
        .to_str()
        .expect("ascii");
    assert_eq!(
        loc,
        format!("https://a.test:{}/p?q=1", gate.ep("websecure").port())
    );
    // The router without `tls` is a TLS router on the TLS entrypoint.
    let r = tls_get(
        gate.ep("websecure"),
        "a.test",
        Some("/p"),
        tls_client(None, &[b"http/1.1"], ALL),
    )
    .await
    .expect("tls");
    assert_eq!(r.reply.expect("reply").status, StatusCode::OK);
}

/// A CA (cert PEM, the issuer to sign with) and a client certificate it signed: (CA PEM, client cert PEM,
/// client key PEM).
fn client_ca_and_cert(cn: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test client CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["client.test".to_string()]).expect("p");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.signed_by(&key, &issuer).expect("client cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_tls_client_cert_hands_the_mutual_tls_certificate_to_the_backend() {
    use rustls::pki_types::pem::PemObject;
    let a = Backend::start("A").await;
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(&["a.test"]);
    let (cp, kp) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    std::fs::write(&cp, &cert).expect("w");
    std::fs::write(&kp, &key).expect("w");
    let (ca, client_cert, client_key) = client_ca_and_cert("client one");
    let ca_path = dir.path().join("ca.crt");
    std::fs::write(&ca_path, &ca).expect("w");
    let dynamic = format!(
        r#"http:
  routers:
    secure:
      rule: Host(`a.test`)
      service: s
      middlewares: [pc]
      tls:
        options: mtls
  middlewares:
    pc:
      passTLSClientCert:
        pem: true
        info:
          notAfter: true
          subject:
            commonName: true
          issuer:
            commonName: true
  services:
    s:
      loadBalancer:
        servers:
          - url: "{}"
tls:
  certificates:
    - certFile: {}
      keyFile: {}
  options:
    mtls:
      clientAuth:
        caFiles: ["{}"]
        clientAuthType: RequireAndVerifyClientCert
"#,
        a.url,
        cp.display(),
        kp.display(),
        ca_path.display()
    );
    let gate = Gate::with_dynamic(&dynamic, &[]);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(client_cert.as_bytes())
        .map(|c| c.expect("pem"))
        .collect();
    let client_key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(client_key.as_bytes()).expect("key");
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(ALL)
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain.clone(), client_key)
        .expect("client auth");
    let r = tls_get(gate.web(), "a.test", Some("/"), std::sync::Arc::new(cfg))
        .await
        .expect("mutual TLS handshake")
        .reply
        .expect("reply");
    assert_eq!(r.status, StatusCode::OK, "{}", gate.logs());
    use base64::Engine as _;
    let der_b64 = base64::engine::general_purpose::STANDARD.encode(chain[0].as_ref());
    assert!(
        r.body
            .contains(&format!("X-Forwarded-Tls-Client-Cert: {der_b64}")),
        "{}",
        r.body
    );
    let info = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("X-Forwarded-Tls-Client-Cert-Info: "))
        .expect("info header");
    assert!(
        info.starts_with(
            "Subject%3D%22CN%3Dclient+one%22%3BIssuer%3D%22CN%3Dtest+client+CA%22%3BNA%3D%22"
        ),
        "{info}"
    );
    // Without a client certificate the handshake is refused (RequireAndVerifyClientCert).
    let no_cert = tls_get(
        gate.web(),
        "a.test",
        Some("/"),
        tls_client(Some(&cert), &[], ALL),
    )
    .await;
    assert!(
        no_cert.is_err() || no_cert.is_ok_and(|r| r.reply.is_none()),
        "a client without a certificate must not be served"
    );
}
