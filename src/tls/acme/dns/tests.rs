use super::*;

fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn txt_value_is_base64url_sha256_of_the_key_authorization() {
    // RFC 8555 §8.4: base64url(SHA-256(keyAuthorization)), no padding. Reference computed with
    // `printf %s 'token.thumb' | openssl dgst -sha256 -binary | basenc --base64url | tr -d =`.
    assert_eq!(
        txt_value("token.thumb"),
        URL_SAFE_NO_PAD.encode(Sha256::digest(b"token.thumb"))
    );
    assert_eq!(txt_value("").len(), 43);
    assert!(!txt_value("x").contains(['+', '/', '=']));
}

#[test]
fn challenge_names_strip_the_wildcard() {
    assert_eq!(
        challenge_fqdn("*.example.test"),
        "_acme-challenge.example.test."
    );
    assert_eq!(
        challenge_fqdn("a.example.test."),
        "_acme-challenge.a.example.test."
    );
}

#[test]
fn unknown_provider_names_the_supported_ones() {
    let get = env_of(&[]);
    let env = Env::new(&get);
    let e =
        Dns01::from_config(&serde_json::json!({"provider": "gandi"}), &env).expect_err("unknown");
    for p in SUPPORTED {
        assert!(e.contains(p), "{e}");
    }
    let e = Dns01::from_config(&serde_json::json!({}), &env).expect_err("unset");
    assert!(e.contains("not set"), "{e}");
}

#[test]
fn options_traefik_v3_and_v2_case_insensitively() {
    let get = env_of(&[
        ("EXEC_PATH", "/bin/true"),
        ("EXEC_PROPAGATION_TIMEOUT", "7"),
        ("EXEC_POLLING_INTERVAL", "500ms"),
    ]);
    let env = Env::new(&get);
    let d = Dns01::from_config(
        &serde_json::json!({"provider": "exec", "resolvers": "127.0.0.1:5353,10.0.0.1",
            "propagation": {"delaybeforechecks": "2s", "requireallrns": "true", "disableANSChecks": true}}),
        &env,
    )
    .expect("v3");
    assert_eq!(
        d.lookup.resolvers,
        vec![
            "127.0.0.1:5353".parse().expect("addr"),
            "10.0.0.1:53".parse().expect("addr")
        ]
    );
    assert_eq!(d.propagation.delay, Duration::from_secs(2));
    assert!(d.propagation.require_all_rns && d.propagation.disable_ans_checks);
    assert!(!d.propagation.disable_checks);
    assert_eq!(d.propagation.ns_port, 53);
    assert_eq!(
        d.provider.timing(),
        Timing {
            timeout: Duration::from_secs(7),
            interval: Duration::from_millis(500)
        }
    );
    let v2 = Dns01::from_config(
        &serde_json::json!({"provider": "exec", "resolvers": ["1.1.1.1:53"],
            "delayBeforeCheck": 3, "disablePropagationCheck": "true"}),
        &env,
    )
    .expect("v2");
    assert_eq!(v2.propagation.delay, Duration::from_secs(3));
    assert!(v2.propagation.disable_checks);
}

#[test]
#[allow(clippy::disallowed_methods)]
fn file_variants_are_read_and_values_win() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("secret");
    std::fs::write(&f, "s3cret\n").expect("write");
    let path = f.display().to_string();
    let get = move |k: &str| match k {
        "A_FILE" => Some(path.clone()),
        "B" => Some("direct".to_string()),
        "B_FILE" => Some("/nonexistent".to_string()),
        "C_FILE" => Some("/nonexistent".to_string()),
        _ => None,
    };
    let env = Env::new(&get);
    assert_eq!(env.get("A").expect("a").as_deref(), Some("s3cret"));
    assert_eq!(env.get("B").expect("b").as_deref(), Some("direct"));
    assert!(env.get("C").expect_err("c").contains("C_FILE"));
    assert_eq!(env.get("D").expect("d"), None);
}

#[test]
fn bind_key_files_parse() {
    let text = "key \"swarmgate-key\" {\n\talgorithm hmac-sha512;\n\tsecret \"c2VjcmV0\";\n};\n";
    assert_eq!(
        rfc2136::parse_key_file(text).expect("parse"),
        (
            "swarmgate-key".into(),
            "hmac-sha512".into(),
            "c2VjcmV0".into()
        )
    );
}

#[test]
fn rfc2136_refuses_unsupported_algorithms_without_echoing_the_secret() {
    let get = env_of(&[
        ("RFC2136_NAMESERVER", "127.0.0.1:53"),
        ("RFC2136_TSIG_KEY", "k."),
        ("RFC2136_TSIG_SECRET", "c2VjcmV0"),
        ("RFC2136_TSIG_ALGORITHM", "hmac-md5.sig-alg.reg.int."),
    ]);
    let env = Env::new(&get);
    let e = provider("rfc2136", &env).err().expect("md5");
    assert!(e.contains("hmac-sha256") && !e.contains("c2VjcmV0"), "{e}");
}

#[test]
fn exec_and_httpreq_speak_lego() {
    let r = Record {
        domain: "a.example.test".into(),
        fqdn: "_acme-challenge.a.example.test.".into(),
        value: "v".into(),
        token: "-tok".into(),
        key_auth: "-tok.thumb".into(),
    };
    let get = env_of(&[("EXEC_PATH", "/x"), ("EXEC_MODE", "RAW")]);
    let e = exec::Exec::from_env(&Env::new(&get)).expect("exec");
    assert_eq!(
        e.args("present", &r),
        ["present", "--", "a.example.test", "-tok", "-tok.thumb"]
    );
    let get = env_of(&[("EXEC_PATH", "/x")]);
    let e = exec::Exec::from_env(&Env::new(&get)).expect("exec");
    assert_eq!(
        e.args("cleanup", &r),
        ["cleanup", "_acme-challenge.a.example.test.", "v"]
    );
    let get = env_of(&[("HTTPREQ_ENDPOINT", "http://127.0.0.1:1/")]);
    let h = httpreq::HttpReq::from_env(&Env::new(&get)).expect("httpreq");
    assert_eq!(
        h.body(&r),
        serde_json::json!({"fqdn": r.fqdn, "value": "v"})
    );
    let get = env_of(&[("HTTPREQ_ENDPOINT", "not a url")]);
    assert!(httpreq::HttpReq::from_env(&Env::new(&get)).is_err());
}

#[test]
fn cloudflare_credentials_as_lego_reads_them() {
    let get = env_of(&[("CF_API_EMAIL", "ops@example.com")]);
    let e = provider("cloudflare", &Env::new(&get))
        .err()
        .expect("no key");
    assert!(
        e.contains("CF_DNS_API_TOKEN") && e.contains("CF_API_KEY"),
        "{e}"
    );
    let get = env_of(&[
        ("CLOUDFLARE_EMAIL", "ops@example.com"),
        ("CLOUDFLARE_API_KEY", "k"),
    ]);
    assert!(provider("cloudflare", &Env::new(&get)).is_ok());
    let get = env_of(&[("CF_DNS_API_TOKEN", "t"), ("CLOUDFLARE_TTL", "60")]);
    let e = provider("cloudflare", &Env::new(&get)).err().expect("ttl");
    assert!(e.contains("120"), "{e}");
}

#[test]
fn route53_change_batches_and_answers() {
    let values: std::collections::BTreeSet<String> = ["b".to_string(), "a".to_string()].into();
    let body = route53::change_body("UPSERT", "_acme-challenge.example.test.", 10, &values);
    assert_eq!(route53::tags(&body, "Action"), ["UPSERT"]);
    assert_eq!(route53::tags(&body, "Value"), ["\"a\"", "\"b\""]);
    assert_eq!(route53::tags(&body, "TTL"), ["10"]);
    assert!(body.contains("xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\""));
    let get = env_of(&[("AWS_ACCESS_KEY_ID", "id")]);
    let e = provider("route53", &Env::new(&get)).err().expect("secret");
    assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
}
