//! Start-up behaviour of the real binary: Traefik's static configuration sources and their errors.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::process::Command;
use std::time::Duration;

use http::StatusCode;
use support::{get, Backend, Gate};

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cmd = Command::new(support::bin());
    cmd.args(args)
        .current_dir(dir.path())
        .env_remove("HOME")
        .env_remove("XDG_CONFIG_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("TRAEFIK_FLAGS") && out.contains("--entrypoints"),
        "{out}"
    );
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("swarmgate "), "{out}");
}

#[test]
fn unknown_flag_exits_2_naming_key_source_and_suggestion() {
    let (code, _, err) = run(&["--entrypoints.web.adress=:80"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("entryPoints.web.adress"), "{err}");
    assert!(err.contains("flag `--entrypoints.web.adress=:80`"), "{err}");
    assert!(
        err.contains("did you mean `entryPoints.web.address`"),
        "{err}"
    );
    // A typo in a section, below which the key goes on: the nearest section is named too.
    let (code, _, err) = run(&["--entrypoints.web.forwardedheaderz.insecure=true"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("did you mean `entryPoints.web.forwardedHeaders`"),
        "{err}"
    );
}

#[test]
fn unknown_env_key_exits_2_naming_the_variable() {
    let (code, _, err) = run(&[], &[("TRAEFIK_ENTRYPOINTS_WEB_ADRESS", ":80")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("TRAEFIK_ENTRYPOINTS_WEB_ADRESS"), "{err}");
}

#[test]
fn bad_value_in_config_file_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("traefik.toml");
    std::fs::write(&f, "[entryPoints.web]\naddress = \":80\"\n\n[entryPoints.web.transport.lifeCycle]\ngraceTimeOut = \"ten seconds\"\n").expect("w");
    let (code, _, err) = run(&[&format!("--configfile={}", f.display())], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("traefik.toml:5:"), "{err}");
    assert!(err.contains("graceTimeOut"), "{err}");
}

#[test]
fn port_in_use_exits_2_without_half_starting() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr");
    let (code, out, err) = run(
        &[
            &format!("--entrypoints.web.address={addr}"),
            "--entrypoints.other.address=127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        (out.clone() + &err).contains(&format!("cannot listen on {addr}")),
        "{out}{err}"
    );
    assert!(
        !out.contains("listening on"),
        "nothing may start listening: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_yaml_file_and_env_sources_serve() {
    let a = Backend::start("A").await;
    let dir = tempfile::tempdir().expect("tmp");
    let dynamic = dir.path().join("dyn.toml");
    std::fs::write(&dynamic, format!("[http.routers.r]\nrule = \"Host(`t.test`)\"\nservice = \"s\"\n[[http.services.s.loadBalancer.servers]]\nurl = \"{}\"\n", a.url)).expect("w");
    // A static file in the working directory is found without --configfile, as Traefik does.
    std::fs::write(
        dir.path().join("traefik.yml"),
        format!("entryPoints:\n  web:\n    address: \"127.0.0.1:0\"\nproviders:\n  file:\n    filename: {}\n", dynamic.display()),
    )
    .expect("w");
    let gate = Gate::start_in(dir, &[], 1);
    assert!(
        gate.logs()
            .contains("static configuration from file ./traefik.yml"),
        "{}",
        gate.logs()
    );
    assert_eq!(get(gate.web(), "t.test", "/").await.status, StatusCode::OK);
    drop(gate);

    // Environment variables when there are neither flags nor files.
    let dir = tempfile::tempdir().expect("tmp");
    let dynamic = dir.path().join("dyn.yml");
    std::fs::write(&dynamic, format!("http:\n  routers:\n    r:\n      rule: Host(`e.test`)\n      service: s\n  services:\n    s:\n      loadBalancer:\n        servers:\n          - url: {}\n", a.url)).expect("w");
    let mut cmd = std::process::Command::new(support::bin());
    cmd.current_dir(dir.path())
        .env("TRAEFIK_ENTRYPOINTS_WEB_ADDRESS", "127.0.0.1:0")
        .env(
            "TRAEFIK_PROVIDERS_FILE_FILENAME",
            dynamic.display().to_string(),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = line.split("listening on ").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20)).expect("listening");
    let r = get(addr.parse().expect("addr"), "e.test", "/").await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_options_swarmgate_lacks_start_with_one_warning_each() {
    let a = Backend::start("A").await;
    let dir = tempfile::tempdir().expect("tmp");
    let dynamic = dir.path().join("dyn.yml");
    std::fs::write(&dynamic, support::catch_all_config(&a.url)).expect("w");
    let args: Vec<String> = vec![
        "--entrypoints.web.address=127.0.0.1:0".into(),
        format!("--providers.file.filename={}", dynamic.display()),
        // Traefik v3 knows these; swarmgate implements neither (a KV provider, an HTTP/2 tuning knob).
        "--providers.consul.endpoints=127.0.0.1:8500".into(),
        "--providers.consul.rootKey=traefik".into(),
        "--entrypoints.web.http2.maxDecoderHeaderTableSize=8192".into(),
        // Traefik v1's KV flag, from a v1 stack.
        "--consul.endpoint=127.0.0.1:8500".into(),
    ];
    let gate = Gate::start_in(dir, &args, 1);
    let logs = gate.logs();
    for key in [
        "providers.consul",
        "entryPoints.web.http2",
        "consul` (from flag `--consul.endpoint",
    ] {
        let lines = logs
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(key) && l.contains("ignored"))
            .count();
        assert_eq!(lines, 1, "one warning for `{key}`:\n{logs}");
    }
    assert_eq!(
        get(gate.web(), "any.test", "/").await.status,
        StatusCode::OK
    );
}

#[test]
fn an_ignored_option_that_would_weaken_security_stops_start_up() {
    let (code, _, err) = run(
        &[
            "--entrypoints.web.address=127.0.0.1:0",
            "--entrypoints.web.http.encodedCharacters.allowEncodedSlash=false",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot be ignored safely") && err.contains("allowEncodedSlash"),
        "{err}"
    );
    // The same key at its safe value (what swarmgate does anyway) only warns.
    let (code, _, err) = run(
        &[
            "--entrypoints.web.address=127.0.0.1:0",
            "--entrypoints.web.http.encodedCharacters.allowEncodedSlash=true",
            "--entrypoints.web.adress=x",
        ],
        &[],
    );
    // The typo beside it still stops start-up, naming the nearest key.
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("did you mean `entryPoints.web.address`"),
        "{err}"
    );
    // A typo below a section Traefik knows is still a typo.
    let (code, _, err) = run(
        &[
            "--entrypoints.web.address=127.0.0.1:0",
            "--providers.consul.endpoinz=x",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("providers.consul.endpoinz"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underscore_headers_strategy_keeps_deletes_or_rejects() {
    let a = Backend::start("A").await;
    for (strategy, status, forwarded) in [
        ("keep", StatusCode::OK, true),
        ("delete", StatusCode::OK, false),
        ("reject", StatusCode::BAD_REQUEST, false),
    ] {
        let flag = format!("--entrypoints.web.http.underscoreHeadersStrategy={strategy}");
        let gate = Gate::with_dynamic(&support::catch_all_config(&a.url), &[&flag]);
        let r = support::get_with(
            &support::client(),
            gate.web(),
            "u.test",
            "/",
            &[("x_forwarded_user", "admin"), ("x-plain", "1")],
        )
        .await;
        assert_eq!(r.status, status, "{strategy}: {}", r.body);
        if status == StatusCode::OK {
            assert!(r.body.contains("X-Plain"), "{strategy}: {}", r.body);
            assert_eq!(
                r.body.to_ascii_lowercase().contains("x_forwarded_user"),
                forwarded,
                "{strategy}: {}",
                r.body
            );
        }
    }
    let (code, _, err) = run(
        &[
            "--entrypoints.web.address=127.0.0.1:0",
            "--entrypoints.web.http.underscoreHeadersStrategy=drop",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("underscoreHeadersStrategy"), "{err}");
}
