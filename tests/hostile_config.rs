//! Configuration files written by someone who wants to take the process down, or who makes a typo that would
//! expose a service: an alias bomb over a watched file and as the static file, a 20,000-router file, a log file
//! written beside the watched file, and a Traefik v1 rule typo checked offline.
//!
//! Each test starts the real binary. Timings are printed, not asserted (they depend on the machine).

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
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{get, poll_until, rss_kb, write_atomic, Backend, Gate};

/// The "billion laughs" YAML document: 9 levels of 9 aliases each (9^9 strings if expanded).
fn alias_bomb() -> String {
    let mut text = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..=9 {
        let refs = vec![format!("*a{}", i - 1); 9].join(",");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text
}

fn one_route(backend: &Backend) -> String {
    format!(
        "http:\n  routers:\n    app:\n      rule: \"Host(`app.test`)\"\n      service: app\n  services:\n    app:\n      loadBalancer:\n        servers:\n          - url: \"{}\"\n",
        backend.url
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn alias_bomb_over_a_watched_file_is_refused_and_the_last_good_config_serves() {
    let backend = Backend::start("good").await;
    let gate = Gate::with_dynamic(&one_route(&backend), &[]);
    let pid = gate.pid();
    assert!(
        poll_until(Duration::from_secs(10), || async {
            get(gate.web(), "app.test", "/").await.backend() == Some("good")
        })
        .await
    );
    write_atomic(&gate.dynamic_file(), &alias_bomb());
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut logged = false;
    while Instant::now() < deadline {
        peak = peak.max(rss_kb(pid));
        if gate.logs().contains("excessive aliasing") {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    peak = peak.max(rss_kb(pid));
    println!("alias bomb over the watched file: peak VmRSS {peak} kB");
    assert!(logged, "no error logged:\n{}", gate.logs());
    let line = gate
        .logs()
        .lines()
        .find(|l| l.contains("excessive aliasing"))
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("dynamic.yml:"), "{line}");
    assert!(
        line.contains("keeping the last good configuration"),
        "{line}"
    );
    assert!(peak < 200 * 1024, "VmRSS grew to {peak} kB");
    let r = get(gate.web(), "app.test", "/").await;
    assert_eq!(
        r.backend(),
        Some("good"),
        "last good routes must still serve"
    );
}

#[test]
fn alias_bomb_as_the_static_file_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("traefik.yml");
    std::fs::write(&file, alias_bomb()).expect("write");
    let mut child = Command::new(support::bin())
        .arg(format!("--configfile={}", file.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut peak = 0;
    while child.try_wait().ok().flatten().is_none() {
        peak = peak.max(rss_kb(child.id()));
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("swarmgate did not exit on an alias bomb (VmRSS {peak} kB)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("traefik.yml:"), "{text}");
    assert!(text.contains("excessive aliasing"), "{text}");
    assert!(peak < 200 * 1024, "VmRSS grew to {peak} kB");
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_thousand_routers_are_applied() {
    const N: usize = 20_000;
    let backend = Backend::start("many").await;
    let gate = Gate::with_dynamic("http: {}\n", &[]);
    let mut text = String::with_capacity(N * 100);
    text.push_str("http:\n  routers:\n");
    for i in 0..N {
        text.push_str(&format!(
            "    r{i}:\n      rule: \"Host(`h{i}.test`)\"\n      service: s{}\n",
            i % 100
        ));
    }
    text.push_str("  services:\n");
    for i in 0..100 {
        text.push_str(&format!(
            "    s{i}:\n      loadBalancer:\n        servers:\n          - url: \"{}\"\n",
            backend.url
        ));
    }
    let started = Instant::now();
    write_atomic(&gate.dynamic_file(), &text);
    let last = format!("h{}.test", N - 1);
    let applied = poll_until(Duration::from_secs(180), || async {
        get(gate.web(), &last, "/").await.backend() == Some("many")
    })
    .await;
    let took = started.elapsed();
    println!(
        "{N} routers ({} bytes) applied in {:.2} s (build profile: {})",
        text.len(),
        took.as_secs_f64(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert!(applied, "the last router never served:\n{}", gate.logs());
    assert_eq!(
        get(gate.web(), "h0.test", "/").await.backend(),
        Some("many")
    );
}

/// A log file written beside the watched file must not make the provider re-read it; a real change (an
/// editor's rename over the file) still does. Each read of this file logs its one bad router, so the number
/// of those lines counts the reads. The bad router is also listed by the API, disabled with its error.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_file_beside_the_watched_file_causes_no_reread() {
    let backend = Backend::start("w").await;
    let good = one_route(&backend);
    let text = good.replace(
        "  services:\n",
        "    bad:\n      rule: \"Host(`bad.test`)\"\n      servce: app\n  services:\n",
    );
    let gate = Gate::with_dynamic(&text, &["--api.insecure=true"]);
    assert!(
        poll_until(Duration::from_secs(10), || async {
            get(gate.web(), "app.test", "/").await.backend() == Some("w")
        })
        .await
    );
    let reads = |g: &Gate| g.logs().matches("router `bad` dropped").count();
    let before = reads(&gate);
    assert!(before >= 1, "{}", gate.logs());

    // The dropped router is visible in the API, disabled, and counted.
    let api = gate.ep("traefik");
    let routers: Value =
        serde_json::from_str(&get(api, "localhost", "/api/http/routers").await.body).expect("json");
    let bad = routers
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "bad@file"))
        .cloned()
        .unwrap_or_else(|| panic!("bad@file not listed: {routers}"));
    assert_eq!(bad["status"], "disabled", "{bad}");
    assert!(
        bad["error"][0].as_str().unwrap_or("").contains("servce"),
        "{bad}"
    );
    let overview: Value =
        serde_json::from_str(&get(api, "localhost", "/api/overview").await.body).expect("json");
    assert_eq!(overview["http"]["routers"]["errors"], 1, "{overview}");

    let log = gate.dynamic_file().with_file_name("access.log");
    let until = Instant::now() + Duration::from_secs(2);
    let mut n = 0;
    while Instant::now() < until {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        writeln!(f, "line {n}").expect("append");
        n += 1;
        // Pacing, not waiting: one log line every 10 ms, as a busy access log writes.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Deliberate gap, past the debounce of the last write: any read it caused would have logged by now (this
    // proves that no re-read happens, so there is no condition to poll for).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = reads(&gate);
    println!(
        "{n} log writes beside the watched file: {} re-reads",
        after - before
    );
    assert_eq!(
        after, before,
        "the watched file was re-read for a log file's writes"
    );

    // A real change, written as editors do (temp file renamed over it), is still read.
    write_atomic(&gate.dynamic_file(), &text.replace("app.test", "new.test"));
    assert!(
        poll_until(Duration::from_secs(10), || async {
            get(gate.web(), "new.test", "/").await.backend() == Some("w")
        })
        .await,
        "{}",
        gate.logs()
    );
}

/// Kubernetes mounts a ConfigMap as `file -> ..data/file`, `..data -> ..<timestamp>`, and updates it by
/// swapping `..data`: no event names the file, yet the change must be read.
#[tokio::test(flavor = "multi_thread")]
async fn a_symlink_swap_of_the_watched_file_is_read() {
    let backend = Backend::start("k").await;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let v1 = d.join("..v1");
    std::fs::create_dir(&v1).expect("mkdir");
    std::fs::write(v1.join("dynamic.yml"), one_route(&backend)).expect("write");
    std::os::unix::fs::symlink("..v1", d.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/dynamic.yml", d.join("dynamic.yml")).expect("symlink");
    let args = vec![
        "--entrypoints.web.address=127.0.0.1:0".to_string(),
        format!(
            "--providers.file.filename={}",
            d.join("dynamic.yml").display()
        ),
        "--providers.file.watch=true".to_string(),
        "--providers.providersThrottleDuration=50ms".to_string(),
    ];
    let path = d.to_path_buf();
    let gate = Gate::start_in(dir, &args, 1);
    assert!(
        poll_until(Duration::from_secs(10), || async {
            get(gate.web(), "app.test", "/").await.backend() == Some("k")
        })
        .await
    );
    swap(
        &path,
        &one_route(&backend).replace("app.test", "swapped.test"),
    );
    assert!(
        poll_until(Duration::from_secs(10), || async {
            get(gate.web(), "swapped.test", "/").await.backend() == Some("k")
        })
        .await,
        "{}",
        gate.logs()
    );
}

/// Kubelet's atomic update: a new timestamped directory, a new `..data_tmp` link, renamed over `..data`.
fn swap(dir: &Path, text: &str) {
    let v2 = dir.join("..v2");
    std::fs::create_dir(&v2).expect("mkdir");
    std::fs::write(v2.join("dynamic.yml"), text).expect("write");
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).expect("symlink");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("rename");
}

/// `traefik.frontend.rule=Hostt:x` on a Swarm service: no router serves the service (no default
/// `Host(...)` router), and the router is listed disabled with its error.
#[test]
fn v1_rule_typo_is_disabled_not_replaced_by_a_default_router() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile");
    let out = Command::new(support::bin())
        .args(["check", "v1-typo.yml", "--name", "demo"])
        .current_dir(&dir)
        .env_clear()
        .output()
        .expect("run swarmgate check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let raw: Value = serde_json::from_str(&stdout).expect("json");
    let routers = raw["routers"].as_object().cloned().unwrap_or_default();
    let svc = &routers["demo-svc@docker"];
    assert_eq!(svc["status"], "disabled", "{stdout}");
    assert!(
        svc["error"][0]
            .as_str()
            .unwrap_or("")
            .contains("traefik.frontend.rule"),
        "{svc}"
    );
    // Nothing else routes to the service: the only enabled router is the other service's.
    for (name, r) in &routers {
        if r["status"] == "enabled" {
            assert_eq!(name, "demo-ok@docker", "{stdout}");
            assert_ne!(r["service"], "demo-svc@docker", "{stdout}");
        }
    }
    assert!(
        stderr.contains("Hostt") || stderr.contains("hostt"),
        "{stderr}"
    );
}
