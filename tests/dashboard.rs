//! The dashboard in a real browser: headless Chromium (Debian's `chromium` package) loads `/dashboard/` from the
//! real binary started with `--api.insecure` and a file config of several routers, one broken; the rendered
//! DOM must list every router with its status, and a screenshot is saved as a CI artifact
//! (`target/dashboard.png`, phone width `target/dashboard-phone.png`).
//!
//! Without Chromium this test fails with instructions (it does not pass silently): `apt-get install chromium`
//! (scripts/test.sh installs it).

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{get, poll_until, Backend, Gate};

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !p.is_empty() {
                return PathBuf::from(p);
            }
        }
    }
    panic!(
        "headless Chromium is required for the dashboard test: `apt-get install -y chromium` \
         (scripts/test.sh installs it)"
    );
}

fn browser(args: &[String]) -> (bool, String, String) {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("run chromium");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `<tr>` element of the routers table for `name`, as dumped.
fn router_row<'d>(dom: &'d str, name: &str) -> Option<&'d str> {
    let table = &dom[dom.find("id=\"routers\"")?..];
    let start = table.find(&format!("data-name=\"{name}\""))?;
    let row = &table[start..];
    Some(&row[..row.find("</tr>")?])
}

#[tokio::test]
async fn dashboard_renders_routers_with_status_in_headless_chromium() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let dynamic = format!(
        r#"http:
  routers:
    shop:
      rule: Host(`shop.example.com`)
      service: shop
      middlewares: [strip]
    blog:
      rule: Host(`blog.example.com`) && PathPrefix(`/posts`)
      service: blog
    broken:
      rule: Host(`broken.example.com`
      service: shop
    orphan:
      rule: Host(`orphan.example.com`)
      service: does-not-exist
  services:
    shop:
      loadBalancer:
        servers:
          - url: {a}
            weight: 3
          - url: {b}
    blog:
      loadBalancer:
        servers:
          - url: {b}
  middlewares:
    strip:
      stripPrefix:
        prefixes: [/api]
"#,
        a = a.url,
        b = b.url
    );
    let gate = Gate::with_dynamic(
        &dynamic,
        &[
            "--api.insecure",
            "--entrypoints.traefik.address=127.0.0.1:0",
            "--metrics.prometheus",
        ],
    );
    let web = gate.web();
    for _ in 0..4 {
        assert_eq!(get(web, "shop.example.com", "/").await.status, 200);
    }
    // A configuration change, so the "last changes" panel has something to show.
    support::write_atomic(
        &gate.dynamic_file(),
        &dynamic.replace("PathPrefix(`/posts`)", "PathPrefix(`/articles`)"),
    );
    assert!(
        gate.wait_log("generation=2", Duration::from_secs(5)),
        "{}",
        gate.logs()
    );
    let admin = gate.ep("traefik");
    let url = format!("http://{admin}/dashboard/");
    assert!(
        poll_until(Duration::from_secs(2), || async {
            get(admin, "localhost", "/dashboard/").await.status == 200
        })
        .await
    );

    let (ok, dom, err) = browser(&["--dump-dom".to_string(), url.clone()]);
    assert!(ok, "chromium --dump-dom failed: {err}");
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page's scripts did not finish:\n{dom}\n{err}"
    );
    for (name, status) in [
        ("shop@file", "enabled"),
        ("blog@file", "enabled"),
        ("broken@file", "disabled"),
        ("orphan@file", "disabled"),
        ("api@internal", "enabled"),
    ] {
        let row =
            router_row(&dom, name).unwrap_or_else(|| panic!("router {name} not rendered:\n{dom}"));
        assert!(
            row.contains(&format!("data-status=\"{status}\"")),
            "router {name} should be {status}: {row}"
        );
    }
    let broken = router_row(&dom, "broken@file").unwrap_or_default();
    assert!(
        broken.contains("class=\"err\">") && !broken.contains("class=\"err\"></span>"),
        "error shown: {broken}"
    );
    // Servers with health and weight, the change panel and the node view.
    assert!(
        dom.contains(&format!("data-url=\"{}\" data-health=\"UP\"", a.url)),
        "{dom}"
    );
    assert!(dom.contains("weight 3"), "{dom}");
    assert!(
        dom.contains("PathPrefix(`/articles`)"),
        "change diff shown:\n{dom}"
    );
    assert!(
        !dom.contains("http://cdn") && !dom.contains("https://"),
        "no external requests"
    );

    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    for (file, size) in [
        ("dashboard.png", "1280,2200"),
        ("dashboard-phone.png", "390,1800"),
    ] {
        let png = target.join(file);
        let _ = std::fs::remove_file(&png);
        let (ok, _, err) = browser(&[
            format!("--screenshot={}", png.display()),
            format!("--window-size={size}"),
            url.clone(),
        ]);
        assert!(ok && png.is_file(), "screenshot failed: {err}");
        println!("dashboard screenshot (CI artifact): {}", png.display());
    }
}
