//! `swarmgate check` on stack files modelled on real public Traefik stacks: the rawdata JSON on stdout, the
//! error and warning lines on stderr and the exit code are pinned in `tests/fixtures/check/`.
//! Regenerate after an intended change with `SGT_UPDATE_FIXTURES=1 cargo test --test check` and review the diff.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn check(name: &str, want_exit: i32) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check");
    let out = Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .args(["check", &format!("{name}.yml"), "--name", "demo"])
        .current_dir(&dir)
        .env_clear()
        // The output must not depend on this machine's Docker engine (images are not read).
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("DOMAIN", "example.com")
        .env("USERNAME", "admin")
        .env("HASHED_PASSWORD", "$apr1$89eqM5Ro$CxaFELthUKV21DpI3UTQO.")
        .env("EMAIL", "admin@example.com")
        .output()
        .expect("run swarmgate check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (json, err) = (
        dir.join(format!("{name}.json")),
        dir.join(format!("{name}.stderr")),
    );
    if std::env::var_os("SGT_UPDATE_FIXTURES").is_some() {
        std::fs::write(&json, stdout.as_bytes()).expect("write");
        std::fs::write(&err, stderr.as_bytes()).expect("write");
    }
    assert_eq!(out.status.code(), Some(want_exit), "exit code\n{stderr}");
    assert_eq!(
        stdout,
        std::fs::read_to_string(&json).unwrap_or_default(),
        "stdout of {name}"
    );
    assert_eq!(
        stderr,
        std::fs::read_to_string(&err).unwrap_or_default(),
        "stderr of {name}"
    );
}

#[test]
fn dockerswarm_rocks_traefik_stack() {
    check("dockerswarm-rocks-traefik", 0);
}

#[test]
fn traefik_v1_stack() {
    check("v1-stack", 0);
}

#[test]
fn v3_swarm_stack_with_as_default_entrypoints() {
    check("v3-swarm-asdefault", 0);
}

#[test]
fn one_bad_label_per_router_fails_only_those() {
    check("broken", 1);
}

#[test]
fn missing_variable_and_file_are_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .args([
            "check",
            "tests/fixtures/check/dockerswarm-rocks-traefik.yml",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("USERNAME") && e.contains("Variable not set"),
        "{e}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .args(["check", "/nonexistent.yml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// Every middleware of Traefik's test tables (`tests/fixtures/traefik-tables/`), by a name unique across the
/// tables, with its labels renamed to it.
fn table_middlewares() -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/traefik-tables");
    let mut out: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for (file, short) in [
        ("label-decode.json", "ld"),
        ("docker-build.json", "db"),
        ("docker-default-rule.json", "dr"),
        ("v2.11.53/label-decode.json", "v2ld"),
        ("v2.11.53/docker-build.json", "v2db"),
    ] {
        let table: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).expect("table"))
                .expect("table json");
        let mut label_sets: Vec<&serde_json::Map<String, Value>> = Vec::new();
        for case in table["cases"].as_array().expect("cases") {
            if let Some(l) = case["labels"].as_object() {
                label_sets.push(l);
            }
            for c in case["containers"].as_array().into_iter().flatten() {
                if let Some(l) = c["Labels"].as_object() {
                    label_sets.push(l);
                }
            }
        }
        for (i, labels) in label_sets.into_iter().enumerate() {
            for (k, v) in labels {
                let parts: Vec<&str> = k.splitn(5, '.').collect();
                // traefik.http.middlewares.<name>.<options>
                if parts.len() < 5
                    || !parts[1].eq_ignore_ascii_case("http")
                    || !parts[2].eq_ignore_ascii_case("middlewares")
                {
                    continue;
                }
                let name = format!("{short}{i}-{}", parts[3]);
                let key = format!("traefik.http.middlewares.{name}.{}", parts[4]);
                out.entry(name)
                    .or_default()
                    .push((key, v.as_str().unwrap_or("").to_string()));
            }
        }
    }
    out
}

/// The status (`enabled`, `warning`, `disabled`) of each middleware of a rawdata-shaped answer, by name
/// without the provider.
fn middleware_statuses(v: &Value) -> std::collections::BTreeMap<String, String> {
    let items: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, x)| (k.clone(), x)).collect(),
        Value::Array(a) => a
            .iter()
            .map(|x| (x["name"].as_str().unwrap_or("").to_string(), x))
            .collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .map(|(name, x)| {
            (
                name.split('@').next().unwrap_or("").to_string(),
                x["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The closing requirement: `check` and the runtime agree on every middleware of Traefik's tables.
/// The same labels go (a) through `swarmgate check` on a compose file and (b) on a real container that a
/// running swarmgate reads with its Docker provider; each middleware's status in `check`'s rawdata must be
/// its status in the running instance's `/api/http/middlewares`.
#[tokio::test(flavor = "multi_thread")]
async fn check_and_runtime_agree_on_every_table_middleware() {
    use support::docker::{self as d, docker_ok, Cleanup};
    if !d::engine_or_skip("check_and_runtime_agree_on_every_table_middleware") {
        return;
    }
    let middlewares = table_middlewares();
    assert!(middlewares.len() >= 20, "{middlewares:?}");
    let mut labels: Vec<(String, String)> = vec![
        ("traefik.enable".into(), "true".into()),
        (
            "traefik.http.routers.app.rule".into(),
            "Host(`app.test`)".into(),
        ),
        (
            "traefik.http.services.app.loadbalancer.server.port".into(),
            "80".into(),
        ),
    ];
    labels.extend(middlewares.values().flatten().cloned());

    // (a) `swarmgate check` on a compose file carrying the labels.
    let dir = tempfile::tempdir().expect("tmp");
    let mut compose = String::from("services:\n  app:\n    image: app\n    labels:\n");
    for (k, v) in &labels {
        compose.push_str(&format!(
            "      {}: {}\n",
            serde_json::to_string(k).expect("key"),
            // `$` is Compose's interpolation sign: `$$` writes the label's `$` as it is.
            serde_json::to_string(&v.replace('$', "$$")).expect("value")
        ));
    }
    std::fs::write(dir.path().join("app.yml"), &compose).expect("write compose");
    let out = Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .args([
            "check",
            "app.yml",
            "--name",
            "demo",
            "--entrypoints.web.address=:80",
            "--providers.docker=true",
        ])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .expect("run swarmgate check");
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check's stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let by_check = middleware_statuses(&checked["middlewares"]);

    // (b) The same labels on a running container, read by a running swarmgate's Docker provider.
    let run = format!("sgc-{}-{:04x}", std::process::id(), fastrand::u16(..));
    let clean = Cleanup::default();
    let ctx = tempfile::tempdir().expect("tmp");
    d::copy_with_libs(Path::new(env!("CARGO_BIN_EXE_whoami")), ctx.path());
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/app\"]\n",
    )
    .expect("Dockerfile");
    let image = format!("{run}-img:latest");
    let _image = d::BuiltImage::build(&image, ctx.path());
    let container = format!("{run}-app");
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        container.clone(),
        "--label".into(),
        format!("sgc.run={run}"),
    ];
    for (k, v) in &labels {
        args.extend(["--label".into(), format!("{k}={v}")]);
    }
    args.extend([image.clone(), "--listen".into(), "0.0.0.0:80".into()]);
    clean.container(&container);
    docker_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let gate_dir = tempfile::tempdir().expect("tmp");
    let gate = support::Gate::start_in(
        gate_dir,
        &[
            "--entrypoints.web.address=127.0.0.1:0".into(),
            "--entrypoints.traefik.address=127.0.0.1:0".into(),
            "--api.insecure".into(),
            "--providers.docker=true".into(),
            "--providers.docker.exposedByDefault=false".into(),
            format!("--providers.docker.constraints=Label(`sgc.run`, `{run}`)"),
            "--providers.providersThrottleDuration=50ms".into(),
        ],
        2,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let by_runtime = loop {
        let r = support::get(
            gate.ep("traefik"),
            "localhost",
            "/api/http/middlewares?provider=docker&per_page=1000",
        )
        .await;
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        let got = middleware_statuses(&v);
        if got.len() >= middlewares.len() || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };

    let mut disagree = Vec::new();
    for name in middlewares.keys() {
        let (c, r) = (by_check.get(name), by_runtime.get(name));
        if c != r {
            disagree.push(format!("{name}: check {c:?}, runtime {r:?}"));
        }
    }
    let enabled = by_runtime.values().filter(|s| *s != "disabled").count();
    println!(
        "{} table middlewares: check and runtime agree on {} ({enabled} enabled or warning at runtime)",
        middlewares.len(),
        middlewares.len() - disagree.len()
    );
    assert!(
        disagree.is_empty(),
        "check and the runtime disagree:\n{}\ncheck stderr:\n{}\nruntime logs:\n{}",
        disagree.join("\n"),
        String::from_utf8_lossy(&out.stderr),
        gate.logs()
    );
}

/// Issue 16, item 6: a compose service without `ports`/`expose` gets its image's `EXPOSE`d port when a
/// Docker engine is reachable (a real image built here: `FROM scratch` + `EXPOSE 8080`), and one line says
/// so when none is.
#[test]
fn check_reads_exposed_ports_from_the_engine_or_says_once_it_cannot() {
    use support::docker as d;
    if !d::engine_or_skip("check_reads_exposed_ports_from_the_engine_or_says_once_it_cannot") {
        return;
    }
    let image = format!(
        "sgc-{}-{:04x}-expose:1",
        std::process::id(),
        fastrand::u16(..)
    );
    let ctx = tempfile::tempdir().expect("tmp");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nEXPOSE 8080/tcp 53/udp\n",
    )
    .expect("Dockerfile");
    let _image = d::BuiltImage::build(&image, ctx.path());
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("app.yml"),
        format!(
            "services:\n  app:\n    image: {image}\n    labels:\n      traefik.http.routers.app.rule: Host(`app.test`)\n  other:\n    image: {image}\n    labels:\n      traefik.http.routers.other.rule: Host(`other.test`)\n"
        ),
    )
    .expect("compose");
    let run = |docker_host: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarmgate"));
        cmd.args([
            "check",
            "app.yml",
            "--name",
            "demo",
            "--providers.docker=true",
        ])
        .current_dir(dir.path())
        .env_clear();
        if let Some(h) = docker_host.or(std::env::var("DOCKER_HOST").ok().as_deref()) {
            cmd.env("DOCKER_HOST", h);
        }
        let out = cmd.output().expect("run swarmgate check");
        let raw: Value = serde_json::from_slice(&out.stdout).expect("rawdata");
        (
            raw,
            String::from_utf8_lossy(&out.stderr).to_string(),
            out.status.code(),
        )
    };

    let (raw, err, code) = run(None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        raw["services"]["app-demo@docker"]["loadBalancer"]["servers"][0]["url"], "http://app:8080",
        "{raw}\n{err}"
    );
    assert!(
        err.contains(&format!(
            "info: service `app`: port 8080 from image `{image}` (EXPOSE)"
        )),
        "{err}"
    );
    assert!(!err.contains("checked with port 80"), "{err}");

    let (raw, err, code) = run(Some("unix:///nonexistent/docker.sock"));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        raw["services"]["app-demo@docker"]["loadBalancer"]["servers"][0]["url"], "http://app:80",
        "{raw}"
    );
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("no Docker engine reachable"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("services app, other"), "{err}");
    assert!(!err.contains("exposes no port"), "{err}");
}
