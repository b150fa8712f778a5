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

use std::path::Path;
use std::process::Command;

fn check(name: &str, want_exit: i32) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check");
    let out = Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .args(["check", &format!("{name}.yml"), "--name", "demo"])
        .current_dir(&dir)
        .env_clear()
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
