use super::*;
use crate::dynamic::{CertificateFile, TlsOptions};
use crate::tls::challenge::MemoryChallenges;

fn shared() -> TlsShared {
    TlsShared::new(Arc::new(MemoryChallenges::default())).expect("shared")
}

fn pem(names: &[&str]) -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("gen");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

#[test]
fn bad_certificates_and_options_are_reported_not_fatal() {
    let (c, k) = pem(&["a.test"]);
    let mut t = TlsConfiguration::default();
    t.certificates.push(CertificateFile {
        cert_file: c,
        key_file: k,
        stores: vec![],
    });
    t.certificates.push(CertificateFile {
        cert_file: "/nope.crt".into(),
        key_file: "/nope.key".into(),
        stores: vec![],
    });
    t.options.insert(
        "old".into(),
        TlsOptions {
            min_version: Some("VersionTLS10".into()),
            ..Default::default()
        },
    );
    t.options.insert(
        "bad".into(),
        TlsOptions {
            min_version: Some("TLS9".into()),
            ..Default::default()
        },
    );
    t.options.insert(
        "suites".into(),
        TlsOptions {
            cipher_suites: vec![
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".into(),
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
            ],
            ..Default::default()
        },
    );
    let (rt, issues) = compile(&[("file".into(), &t)], &TlsUsage::default(), &shared());
    assert!(rt.certs.covers("a.test"));
    assert!(issues.iter().any(|i| i.contains("/nope.crt")), "{issues:?}");
    assert!(
        issues
            .iter()
            .any(|i| i.contains("`old@file`") && i.contains("TLS 1.2")),
        "{issues:?}"
    );
    assert!(
        issues.iter().any(|i| i.contains("`bad@file` disabled")),
        "{issues:?}"
    );
    assert!(issues.iter().any(|i| i.contains("CBC")), "{issues:?}");
    assert!(
        rt.configs.contains_key("old@file")
            && rt.configs.contains_key("suites@file")
            && !rt.configs.contains_key("bad@file")
    );
}

#[test]
fn conflicting_options_on_one_host_fall_back_to_default() {
    let mut t = TlsConfiguration::default();
    t.options.insert("a".into(), TlsOptions::default());
    t.options.insert("b".into(), TlsOptions::default());
    let usage = TlsUsage {
        host_options: vec![
            ("x.test".into(), "a@file".into(), "r1@file".into()),
            ("x.test".into(), "b@file".into(), "r2@file".into()),
            ("y.test".into(), "a@file".into(), "r3@file".into()),
            ("z.test".into(), "ghost@file".into(), "r4@file".into()),
        ],
    };
    let (rt, issues) = compile(&[("file".into(), &t)], &usage, &shared());
    assert!(!rt.host_options.contains_key("x.test"));
    assert_eq!(
        rt.host_options.get("y.test").map(String::as_str),
        Some("a@file")
    );
    assert!(issues.iter().any(|i| i.contains("x.test")), "{issues:?}");
    assert!(
        issues.iter().any(|i| i.contains("ghost@file")),
        "{issues:?}"
    );
}

#[test]
fn cert_requests_prefer_explicit_domains() {
    let d = vec![Domain {
        main: "Example.com".into(),
        sans: vec!["WWW.example.com".into()],
    }];
    let r = cert_requests("le", &d, vec!["ignored.test".into()]);
    assert_eq!(
        r,
        vec![CertRequest {
            resolver: "le".into(),
            main: "example.com".into(),
            sans: vec!["www.example.com".into()]
        }]
    );
    let r = cert_requests("le", &[], vec!["a.test".into(), "b.test".into()]);
    assert_eq!(r[0].main, "a.test");
    assert_eq!(r[0].sans, vec!["b.test"]);
    assert!(cert_requests("le", &[], vec![]).is_empty());
}

/// The bytes of a real ClientHello for `sni` offering `alpn`.
fn client_hello(sni: &str, alpn: &[&[u8]]) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("name");
    let mut c = rustls::ClientConnection::new(Arc::new(cfg), name).expect("client");
    let mut out = Vec::new();
    c.write_tls(&mut out).expect("hello");
    out
}

/// Runs `f` on the parsed ClientHello in `bytes`, as the listener's acceptor sees it.
fn with_hello<R>(bytes: &[u8], f: impl FnOnce(ClientHello<'_>) -> R) -> R {
    let mut acceptor = rustls::server::Acceptor::default();
    acceptor.read_tls(&mut &bytes[..]).expect("read");
    match acceptor.accept() {
        Ok(Some(accepted)) => f(accepted.client_hello()),
        _ => panic!("no ClientHello"),
    }
}

#[test]
fn acme_tls_hellos_share_one_configuration_across_challenge_changes() {
    let sh = shared();
    let (rt, _) = compile(&[], &TlsUsage::default(), &sh);
    let acme = client_hello("alpn.test", &[ACME_TLS_ALPN]);
    let first = with_hello(&acme, |h| rt.config_for(&h));
    let resolve =
        |cfg: &Arc<ServerConfig>, bytes: &[u8]| with_hello(bytes, |h| cfg.cert_resolver.resolve(h));
    // No pending challenge: no certificate, so the handshake fails (as Traefik's "unrecognized name").
    assert!(resolve(&first, &acme).is_none());
    // A challenge appears: the same configuration answers it, for the SNI in any case.
    let ck = Arc::new(
        acme::challenge_store::tls_alpn01_certificate("alpn.test", "t.thumb").expect("cert"),
    );
    let mut answers = challenge::Answers::default();
    answers.tls_alpn01.insert("alpn.test".into(), ck.clone());
    sh.challenges.publish(answers);
    let second = with_hello(&client_hello("ALPN.test", &[ACME_TLS_ALPN]), |h| {
        rt.config_for(&h)
    });
    assert!(Arc::ptr_eq(&first, &second), "a configuration per hello");
    let got = resolve(&second, &client_hello("ALPN.test", &[ACME_TLS_ALPN])).expect("answered");
    assert!(Arc::ptr_eq(&got, &ck));
    assert!(resolve(&second, &client_hello("other.test", &[ACME_TLS_ALPN])).is_none());
    // A table rebuild keeps the one configuration; an ordinary hello gets the default options.
    let (rt2, _) = compile(&[], &TlsUsage::default(), &sh);
    let third = with_hello(&acme, |h| rt2.config_for(&h));
    assert!(Arc::ptr_eq(&first, &third));
    let normal = with_hello(&client_hello("alpn.test", &[b"h2"]), |h| rt2.config_for(&h));
    assert!(!Arc::ptr_eq(&first, &normal));
    assert!(Arc::ptr_eq(&normal, &rt2.default));
}
