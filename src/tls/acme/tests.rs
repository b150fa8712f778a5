use super::*;
use crate::config::types::{Acme as AcmeConfig, HttpChallenge};

fn resolver(acme: AcmeConfig) -> BTreeMap<String, CertificateResolver> {
    let mut m = BTreeMap::new();
    m.insert(
        "le".to_string(),
        CertificateResolver {
            acme: Some(acme),
            tailscale: None,
        },
    );
    m
}

fn http(storage: &Path) -> AcmeConfig {
    AcmeConfig {
        storage: Some(storage.display().to_string()),
        http_challenge: Some(HttpChallenge {
            entry_point: "web".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn challenge_choice_and_clear_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("acme.json");
    let s = settings(&resolver(http(&p)), &no_env).expect("ok");
    assert_eq!(
        s[0].kind,
        ChallengeKind::Http01 {
            entry_point: "web".into()
        }
    );
    assert_eq!(s[0].directory, DEFAULT_CA_SERVER);
    assert_eq!(s[0].storage_dir, dir.path());

    let mut tls = AcmeConfig {
        storage: Some(p.display().to_string()),
        ..Default::default()
    };
    tls.tls_challenge = Some(serde_json::Value::Bool(true));
    assert_eq!(
        settings(&resolver(tls), &no_env).expect("ok")[0].kind,
        ChallengeKind::TlsAlpn01
    );

    let dns = AcmeConfig {
        dns_challenge: Some(serde_json::json!({"provider": "route53"})),
        ..Default::default()
    };
    // An unusable dnsChallenge disables that resolver only (logged with the supported providers).
    let disabled = settings(&resolver(dns), &no_env).expect("dns disables, not fails");
    assert!(disabled.is_empty());

    let e = settings(&resolver(AcmeConfig::default()), &no_env).expect_err("none");
    assert!(
        e.to_string().contains("ACME challenge not specified"),
        "{e}"
    );

    let mut rsa = http(&p);
    rsa.key_type = Some("RSA4096".into());
    assert!(settings(&resolver(rsa), &no_env)
        .expect_err("rsa")
        .to_string()
        .contains("keyType"));
}

#[test]
fn lego_environment_is_used_when_the_config_names_no_ca() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("acme.json");
    let env = |k: &str| match k {
        "LEGO_CA_CERTIFICATES" => Some("/a.pem:/b.pem".to_string()),
        "LEGO_CA_SYSTEM_CERT_POOL" => Some("true".to_string()),
        _ => None,
    };
    let s = settings(&resolver(http(&p)), &env).expect("ok");
    assert_eq!(
        s[0].ca_files,
        [PathBuf::from("/a.pem"), PathBuf::from("/b.pem")]
    );
    assert!(s[0].ca_system);
    let mut cfg = http(&p);
    cfg.ca_certificates = vec!["/c.pem".into()];
    let s = settings(&resolver(cfg), &env).expect("ok");
    assert_eq!(s[0].ca_files, [PathBuf::from("/c.pem")]);
    assert!(!s[0].ca_system);
}

#[test]
fn too_open_storage_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("acme.json");
    std::fs::write(&p, "{}").expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let e = prepare_with(&resolver(http(&p)), &no_env, ManagerTiming::default())
        .err()
        .expect("refused");
    assert!(
        e.to_string().ends_with("are too open, please use 600"),
        "{e}"
    );
}

fn cert(names: &[&str], days_before: u64, days_after: u64) -> StoredCertificate {
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    p.not_before = (now - day * days_before as u32).into();
    p.not_after = (now + day * days_after as u32).into();
    let k = rcgen::KeyPair::generate().expect("key");
    let c = p.self_signed(&k).expect("cert");
    StoredCertificate {
        domain: StoredDomain {
            main: names[0].into(),
            sans: names[1..].iter().map(|s| s.to_string()).collect(),
        },
        certificate: storage::GoBytes(c.pem().into_bytes()),
        key: storage::GoBytes(k.serialize_pem().into_bytes()),
        store: "default".into(),
    }
}

#[test]
fn plan_orders_uncovered_names_and_renews_at_one_third() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = settings(&resolver(http(&dir.path().join("acme.json"))), &no_env)
        .expect("ok")
        .remove(0);
    let data = storage::ResolverData {
        certificates: vec![
            cert(&["fresh.example", "*.wild.example"], 10, 80), // renew at day 60: not due
            cert(&["old.example"], 70, 20),                     // renew at day 60: due
        ],
        ..Default::default()
    };
    let req = |main: &str, sans: &[&str]| CertRequest {
        resolver: "le".into(),
        main: main.into(),
        sans: sans.iter().map(|s| s.to_string()).collect(),
    };
    let wanted = vec![
        req("fresh.example", &["a.wild.example"]), // covered (wildcard)
        req("new.example", &["fresh.example", "x.example"]), // partly covered
        req("other.example", &[]),
        CertRequest {
            resolver: "elsewhere".into(),
            main: "z.example".into(),
            sans: vec![],
        },
    ];
    let (work, next) = plan(&r, Some(&data), &wanted, SystemTime::now(), &HashMap::new());
    assert_eq!(
        work.iter().map(|w| w.key().1).collect::<Vec<_>>(),
        vec![
            vec!["old.example".to_string()],
            vec!["new.example".into(), "x.example".into()],
            vec!["other.example".into()]
        ]
    );
    assert!(matches!(work[0], Work::Renew { .. }));
    let next = next.expect("next renewal");
    let in_days = next
        .duration_since(SystemTime::now())
        .expect("future")
        .as_secs()
        / 86_400;
    assert!((49..=50).contains(&in_days), "{in_days}");
    assert!(!matches("a.b.wild.example", "*.wild.example"));
    assert!(matches("A.wild.example.", "*.wild.example"));
}

#[test]
fn stored_certificates_are_published_inline_in_the_default_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("acme.json");
    let mut f = AcmeFile::default();
    f.resolvers
        .entry("le".into())
        .or_default()
        .certificates
        .push(cert(&["a.example"], 1, 89));
    storage::save(&p, &f).expect("save");
    let acme = prepare_with(&resolver(http(&p)), &no_env, ManagerTiming::default())
        .expect("ok")
        .expect("some");
    let snap = acme.initial().expect("snapshot");
    assert_eq!(snap.tls.certificates.len(), 1);
    let c = &snap.tls.certificates[0];
    assert!(c.cert_file.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(c.key_file.contains("PRIVATE KEY"));
    assert_eq!(c.stores, ["default"]);
    crate::tls::certs::certified_key(c.cert_file.as_bytes(), c.key_file.as_bytes(), "test")
        .expect("loads");
}
