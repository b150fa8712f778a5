//! Swarm tasks coming and going under load, with backends that really die (issue 15): swarmgate runs as a
//! Swarm service (host-mode port on 127.0.0.1), backends are whoami services that exit at once on SIGTERM
//! (`--on-sigterm exit`, the default stop signal), and GET and POST load runs through swarmgate while
//! tasks are updated, killed, scaled down and removed. GETs must all succeed; POST failures are counted and
//! reported, not asserted (a POST lost after it was written cannot be replayed).
//!
//! The counts are printed with `--nocapture` (lines starting `CHURN`), and quoted in docs/zero-loss.md.
//! `SWARMGATE_SLOW_TESTS=1` runs the long variants: 20 de-routing trials instead of 3.
//! Docker objects are named `h15-…`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::docker::{self, docker, docker_ok, percentile, Cleanup, Images};
use support::load::{unix_ns, Load, LoadReport, LoadSpec};

struct Swarm {
    p: String,
    net: String,
    img: Images,
    clean: Cleanup,
}

impl Swarm {
    fn new(test: &str) -> Swarm {
        docker::ensure_swarm();
        let p = format!("h15-{}", docker::prefix(test));
        let img = docker::images();
        let clean = Cleanup::default();
        let net = docker::create_network(&p, true, &clean);
        Swarm { p, net, img, clean }
    }

    /// A service `<prefix>-name` on the test network running `image` with `image_args`.
    fn service_of(&self, name: &str, args: &[&str], image: &str, image_args: &[&str]) -> String {
        let sname = format!("{}-{name}", self.p);
        let mut a: Vec<String> = [
            "service",
            "create",
            "-d",
            "--name",
            &sname,
            "--network",
            &self.net,
        ]
        .map(String::from)
        .to_vec();
        a.extend(["--label".into(), format!("sgt.run={}", self.p)]);
        a.extend(args.iter().map(|s| s.to_string()));
        self.clean.service(&sname);
        a.push(image.to_string());
        a.extend(image_args.iter().map(|s| s.to_string()));
        docker_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
        sname
    }

    /// A whoami service routed at `Host(host)`, with `replicas` tasks that exit at once on SIGTERM.
    fn app(&self, name: &str, host: &str, replicas: u32, extra: &[&str], on_term: &str) -> String {
        let replicas = replicas.to_string();
        let rule = format!("traefik.http.routers.{name}.rule=Host(`{host}`)");
        let port = format!("traefik.http.services.{name}.loadbalancer.server.port=80");
        let mut args = vec!["--replicas", &replicas, "--label", &rule, "--label", &port];
        args.extend(extra);
        let img = self.img.whoami.clone();
        self.service_of(name, &args, &img, &["--on-sigterm", on_term])
    }

    /// swarmgate as a service with the swarm provider limited to this test's services.
    fn gate(&self) -> (String, u16) {
        let port = docker::free_port();
        let publish = format!("mode=host,target=80,published={port}");
        let flags = [
            "--entrypoints.web.address=:80".to_string(),
            "--providers.swarm=true".into(),
            format!("--providers.swarm.network={}", self.net),
            format!(
                "--providers.swarm.constraints=Label(`sgt.run`, `{}`)",
                self.p
            ),
            "--providers.providersThrottleDuration=50ms".into(),
        ];
        let f: Vec<&str> = flags.iter().map(String::as_str).collect();
        let img = self.img.gate.clone();
        let name = self.service_of(
            "gate",
            &[
                "--publish",
                &publish,
                "--mount",
                "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock",
                "--constraint=node.role==manager",
            ],
            &img,
            &f,
        );
        (name, port)
    }
}

fn addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// Distinct backends answering `host` over `n` GETs.
async fn hostnames(port: u16, host: &str, n: u64) -> BTreeSet<String> {
    let mut spec = LoadSpec::get(addr(port), host, Duration::from_secs(20));
    spec.concurrency = 1;
    spec.max_requests = Some(n);
    Load::run(spec).await.hosts.into_keys().collect()
}

/// Waits (bounded) until `host` is served by `n` distinct tasks.
async fn wait_tasks(port: u16, host: &str, n: usize, gate: &str) {
    let ok = support::poll_until(Duration::from_secs(120), || async {
        hostnames(port, host, n as u64 * 4).await.len() == n
    })
    .await;
    assert!(
        ok,
        "{host}: never {n} tasks in rotation\n{}",
        docker::logs(gate, true)
    );
}

fn running_tasks(service: &str) -> usize {
    let o = docker(&[
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
    ]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("Running"))
        .count()
}

/// Blocks until the service's update completed (bounded); on failure says what Swarm reported.
fn wait_update_completed(service: &str) -> bool {
    let state = || {
        docker_ok(&[
            "service",
            "inspect",
            service,
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}} {{.UpdateStatus.Message}}{{end}}",
        ])
    };
    let done = docker::wait_for(Duration::from_secs(180), || {
        state().starts_with("completed")
    });
    if !done {
        let ps = docker(&["service", "ps", "--no-trunc", service]);
        eprintln!(
            "update of {service} not completed: {}\n{}",
            state(),
            String::from_utf8_lossy(&ps.stdout)
        );
    }
    done
}

/// GET load (4 workers) and POST load (2 workers) on `host`, counted separately, around `action` (run on a
/// blocking thread); the load goes on for `settle` after it returns.
async fn under_load(
    port: u16,
    host: &str,
    settle: Duration,
    action: impl FnOnce() + Send + 'static,
) -> (LoadReport, LoadReport) {
    let mut get = LoadSpec::get(addr(port), host, Duration::from_secs(300));
    get.concurrency = 4;
    let mut post = LoadSpec::post(addr(port), host, Duration::from_secs(300));
    post.concurrency = 2;
    let (gets, posts) = (Load::start(get), Load::start(post));
    // Deliberate gap: a second of steady load first, so the change happens under traffic.
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::spawn_blocking(action).await.unwrap();
    // Deliberate gap: the load goes on while the last retired task finishes its grace period.
    tokio::time::sleep(settle).await;
    (gets.stop().await, posts.stop().await)
}

fn report(scenario: &str, gets: &LoadReport, posts: &LoadReport) {
    eprintln!("CHURN {scenario}: GET  {}", gets.summary());
    eprintln!("CHURN {scenario}: POST {}", posts.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_updates_of_backends_that_exit_on_sigterm_lose_no_get() {
    if !docker::engine_or_skip("rolling_updates_of_backends_that_exit_on_sigterm_lose_no_get") {
        return;
    }
    let s = Swarm::new("roll");
    let (gate, port) = s.gate();
    let app = s.app(
        "app",
        "roll.test",
        3,
        &["--update-parallelism", "1"],
        "exit",
    );
    wait_tasks(port, "roll.test", 3, &gate).await;
    let mut failures = Vec::new();
    for order in ["start-first", "stop-first"] {
        let before = hostnames(port, "roll.test", 12).await;
        let svc = app.clone();
        let (gets, posts) = under_load(port, "roll.test", Duration::from_secs(2), move || {
            docker_ok(&[
                "service",
                "update",
                "-d",
                "--force",
                "--update-order",
                order,
                &svc,
            ]);
            assert!(
                wait_update_completed(&svc),
                "update {order} never completed"
            );
        })
        .await;
        report(
            &format!("rolling update --force, 3 replicas, {order}, exit on SIGTERM"),
            &gets,
            &posts,
        );
        let after = hostnames(port, "roll.test", 12).await;
        assert!(
            after.is_disjoint(&before),
            "{order}: tasks not replaced: {before:?} / {after:?}"
        );
        assert!(gets.ok > 0);
        failures.push((order, gets.failed(), gets.summary()));
    }
    for (order, failed, summary) in failures {
        assert_eq!(
            failed,
            0,
            "{order}: {summary}\n{}",
            docker::logs(&gate, true)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_scale_down_and_service_rm_lose_no_get() {
    if !docker::engine_or_skip("kill_scale_down_and_service_rm_lose_no_get") {
        return;
    }
    let s = Swarm::new("kill");
    let (gate, port) = s.gate();
    let app = s.app("app", "app.test", 5, &[], "exit");
    let other = s.app("other", "other.test", 2, &[], "exit");
    wait_tasks(port, "app.test", 5, &gate).await;
    wait_tasks(port, "other.test", 2, &gate).await;
    let mut results = Vec::new();

    // `docker kill` (SIGKILL) of one task: its connections die mid-request; Swarm replaces it.
    let victim = docker_ok(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={app}"),
    ])
    .lines()
    .next()
    .expect("a task container")
    .to_string();
    let label = format!("label=com.docker.swarm.service.name={app}");
    let (gets, posts) = under_load(port, "app.test", Duration::from_secs(1), move || {
        docker_ok(&["kill", &victim]);
        // Until Swarm has replaced it: the victim gone and five task containers running again.
        let replaced = docker::wait_for(Duration::from_secs(60), || {
            let ids = docker_ok(&["ps", "-q", "--no-trunc", "--filter", &label]);
            !ids.lines().any(|id| id.starts_with(&victim)) && ids.lines().count() == 5
        });
        assert!(replaced, "the killed task was never replaced");
    })
    .await;
    report("docker kill of 1 of 5 tasks", &gets, &posts);
    results.push(("kill", gets));

    // Scale 5 → 1: four tasks retired at once, each exiting on SIGTERM.
    let svc = app.clone();
    let (gets, posts) = under_load(port, "app.test", Duration::from_secs(2), move || {
        docker_ok(&["service", "scale", "-d", &format!("{svc}=1")]);
        assert!(docker::wait_for(Duration::from_secs(60), || running_tasks(
            &svc
        ) == 1));
    })
    .await;
    report("docker service scale 5 -> 1", &gets, &posts);
    results.push(("scale", gets));

    // `docker service rm` of the other service: the remaining route loses nothing.
    let (gets, posts) = under_load(port, "app.test", Duration::from_secs(2), move || {
        docker_ok(&["service", "rm", &other]);
    })
    .await;
    report(
        "docker service rm of the other of two services (load on the remaining route)",
        &gets,
        &posts,
    );
    results.push(("rm", gets));
    for (what, gets) in results {
        assert!(gets.ok > 0, "{what}: no request succeeded");
        assert_eq!(
            gets.failed(),
            0,
            "{what}: {}\n{}",
            gets.summary(),
            docker::logs(&gate, true)
        );
    }
}

/// `docker events` `kill` times (ns since the epoch) of the service's containers, by container ID, streamed
/// from a `docker events` child while the test runs (the engine keeps only the last 256 events for
/// `--since` queries, and other jobs on this engine produce events too). Stopped on drop.
struct KillEvents {
    child: std::process::Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, i128)>>>,
}

impl KillEvents {
    fn watch(service: &str) -> KillEvents {
        use std::io::BufRead;
        let mut child = std::process::Command::new("docker")
            .args([
                "events",
                "--filter",
                "event=kill",
                "--filter",
                &format!("label=com.docker.swarm.service.name={service}"),
                "--format",
                "{{.Actor.ID}} {{.TimeNano}}",
            ])
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("docker events");
        let out = child.stdout.take().expect("stdout");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Some((id, t)) = line.split_once(' ') {
                    if let Ok(t) = t.parse::<i128>() {
                        sink.lock().unwrap().push((id.to_string(), t));
                    }
                }
            }
        });
        KillEvents { child, seen }
    }

    fn all(&self) -> Vec<(String, i128)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for KillEvents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn deroute_trials() -> usize {
    if let Some(n) = std::env::var("SGT_DEROUTE_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if std::env::var("SWARMGATE_SLOW_TESTS").is_ok_and(|v| v == "1") {
        20
    } else {
        1
    }
}

/// How long after `docker service update` a retired task stops getting new requests. The backend keeps
/// serving for 3 s after SIGTERM (`--on-sigterm drain:3s`), so any request it got after being retired
/// would still be answered and seen here; the last request it answered marks the de-routing. Two figures
/// per trial: from the update command (Swarm's own latency to stop the task included), and from the
/// task's `kill` event (SIGTERM sent: what swarmgate itself takes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_from_service_update_to_no_new_request() {
    if !docker::engine_or_skip("time_from_service_update_to_no_new_request") {
        return;
    }
    let s = Swarm::new("deroute");
    let (gate, port) = s.gate();
    let app = s.app(
        "dr",
        "dr.test",
        2,
        &[
            "--update-order",
            "stop-first",
            "--update-parallelism",
            "1",
            "--stop-grace-period",
            "10s",
        ],
        "drain:3s",
    );
    wait_tasks(port, "dr.test", 2, &gate).await;
    let mut get = LoadSpec::get(addr(port), "dr.test", Duration::from_secs(1200));
    get.concurrency = 4;
    get.timeline = true;
    let kills = KillEvents::watch(&app);
    let load = Load::start(get);
    let mut trials = Vec::new();
    for _ in 0..deroute_trials() {
        // Deliberate gap: steady load before each update.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = unix_ns();
        let svc = app.clone();
        let done = tokio::task::spawn_blocking(move || {
            docker_ok(&["service", "update", "-d", "--force", &svc]);
            wait_update_completed(&svc)
        })
        .await
        .unwrap();
        assert!(done, "update never completed");
        trials.push(t0);
    }
    // Deliberate gap: the last retired task's drain (3 s) ends before the load stops.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = load.stop().await;
    let kills = kills.all();
    let at_ns = |at: &Duration| r.started_unix_ns + at.as_nanos() as i128;
    let last_of = |host: &str| {
        r.timeline
            .iter()
            .filter(|(_, h)| h == host)
            .map(|(at, _)| at_ns(at))
            .max()
    };
    let mut from_cmd = Vec::new();
    let mut from_kill = Vec::new();
    for (i, &t0) in trials.iter().enumerate() {
        // The tasks serving just before the update; the first of them to get no more requests is the
        // one this update retired first.
        let old: BTreeSet<&str> = r
            .timeline
            .iter()
            .filter(|(at, _)| at_ns(at) < t0 && at_ns(at) >= t0 - 400_000_000)
            .map(|(_, h)| h.as_str())
            .collect();
        let first_last = old.iter().filter_map(|h| last_of(h)).min();
        let Some(first_last) = first_last else {
            continue;
        };
        assert!(
            first_last >= t0,
            "trial {i}: the old tasks got nothing after the update was issued"
        );
        from_cmd.push(Duration::from_nanos((first_last - t0) as u64));
    }
    for (id, kill_ns) in &kills {
        let host: String = id.chars().take(12).collect();
        let Some(last) = last_of(&host) else { continue };
        // Bounded: a task serves nothing once its drain ended (it had exited).
        assert!(
            last < kill_ns + 3_000_000_000,
            "task {host} served after its drain"
        );
        // Negative: the task got its last request before Swarm even sent SIGTERM (de-routed on the
        // task's desired state `shutdown`, read after the service `update` event).
        from_kill.push((last - kill_ns) / 1_000_000);
    }
    from_cmd.sort();
    from_kill.sort();
    eprintln!("CHURN de-routing load: GET {}", r.summary());
    eprintln!(
        "CHURN DEROUTE docker service update -> no new request: n={} p50={:?} p99={:?} max={:?}",
        from_cmd.len(),
        percentile(&from_cmd, 50.0),
        percentile(&from_cmd, 99.0),
        from_cmd.last().copied().unwrap_or_default()
    );
    let ms = |p: f64| {
        let rank = ((p / 100.0) * from_kill.len() as f64).ceil().max(1.0) as usize;
        from_kill
            .get(rank.min(from_kill.len()).saturating_sub(1))
            .copied()
            .unwrap_or(0)
    };
    eprintln!(
        "CHURN DEROUTE last request relative to the task's kill event (SIGTERM), ms: n={} p50={} p99={} max={}",
        from_kill.len(),
        ms(50.0),
        ms(99.0),
        from_kill.last().copied().unwrap_or(0)
    );
    assert!(
        from_cmd.len() >= trials.len(),
        "trials without a measurement: {} of {}",
        from_cmd.len(),
        trials.len()
    );
    assert_eq!(r.failed(), 0, "{}", r.summary());
}

/// The whoami test image with `HEALTHCHECK CMD ["/app", "healthcheck"]` (exec form: the image is
/// `FROM scratch`, no shell), built once per whoami build and kept as a cache like the other test images (older builds removed).
fn healthcheck_image(img: &Images) -> String {
    let suffix = img.whoami.rsplit(':').next().unwrap_or("latest");
    let tag = format!("h15-whoami-hc:{suffix}");
    if docker(&["image", "inspect", &tag]).status.success() {
        return tag;
    }
    let dockerfile = format!(
        "FROM {}\nHEALTHCHECK --interval=2s --timeout=2s --retries=1 CMD [\"/app\", \"healthcheck\"]\n",
        img.whoami
    );
    let mut child = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker build");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dockerfile.as_bytes())
            .unwrap();
    }
    assert!(child.wait().unwrap().success(), "docker build {tag}");
    // Drop the builds of earlier whoami binaries (each keeps its whoami layer alive); best effort.
    let old = docker_ok(&[
        "images",
        "h15-whoami-hc",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    for t in old.lines().filter(|t| *t != tag) {
        docker(&["rmi", t]);
    }
    tag
}

fn health_of(container: &str) -> String {
    docker_ok(&[
        "inspect",
        "-f",
        "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
        container,
    ])
}

async fn status_of(port: u16, host: &str) -> Option<u16> {
    let mut spec = LoadSpec::get(addr(port), host, Duration::from_secs(5));
    spec.concurrency = 1;
    spec.max_requests = Some(1);
    let r = Load::run(spec).await;
    if r.ok == 1 {
        Some(200)
    } else if r.s503 == 1 {
        Some(503)
    } else if r.other_status == 1 {
        Some(404)
    } else {
        None
    }
}

/// A plain container with a Docker `HEALTHCHECK`: no traffic while `starting`, traffic once `healthy`, none
/// again once `unhealthy` (as Traefik: only healthy containers are routed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthcheck_starting_and_unhealthy_containers_get_no_traffic() {
    if !docker::engine_or_skip("healthcheck_starting_and_unhealthy_containers_get_no_traffic") {
        return;
    }
    let p = format!("h15-{}", docker::prefix("hc"));
    let img = docker::images();
    let hc = healthcheck_image(&img);
    let clean = Cleanup::default();
    let net = docker::create_network(&p, false, &clean);
    let port = docker::free_port();
    let gate = format!("{p}-gate");
    clean.run(
        &gate,
        &net,
        &[
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            &img.gate,
            "--entrypoints.web.address=:80",
            "--providers.docker=true",
            "--providers.docker.exposedByDefault=false",
            &format!("--providers.docker.network={net}"),
            &format!("--providers.docker.constraints=Label(`sgt.run`, `{p}`)"),
            "--providers.providersThrottleDuration=50ms",
        ],
    );
    assert!(
        support::poll_until(Duration::from_secs(60), || async {
            status_of(port, "hc.test").await.is_some()
        })
        .await,
        "swarmgate never answered\n{}",
        docker::logs(&gate, false)
    );
    let app = format!("{p}-app");
    clean.run(
        &app,
        &net,
        &[
            "--label",
            &format!("sgt.run={p}"),
            "--label",
            "traefik.enable=true",
            "--label",
            "traefik.http.routers.hc.rule=Host(`hc.test`)",
            "--label",
            "traefik.http.services.hc.loadbalancer.server.port=80",
            "--health-interval",
            "3s",
            &hc,
        ],
    );
    // While Docker says `starting`, the container gets nothing (its first probe runs after 3 s).
    let mut checked = 0;
    while health_of(&app) == "starting" {
        let st = status_of(port, "hc.test").await;
        if health_of(&app) == "starting" {
            assert_ne!(st, Some(200), "a starting container got traffic");
            checked += 1;
        }
        // Deliberate gap: a few samples across the start window, not a busy loop.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(checked > 0, "the container was never seen starting");
    assert!(
        support::poll_until(Duration::from_secs(30), || async {
            status_of(port, "hc.test").await == Some(200)
        })
        .await,
        "the healthy container never got traffic (health {})\n{}",
        health_of(&app),
        docker::logs(&gate, false)
    );
    // Make its /health answer 500 (through swarmgate): the next probe fails, Docker marks it unhealthy.
    let c = support::client();
    let req = http::Request::post(format!("http://127.0.0.1:{port}/health"))
        .header("host", "hc.test")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"500")))
        .unwrap();
    assert_eq!(support::send(&c, req).await.status, 200);
    assert!(
        docker::wait_for(Duration::from_secs(30), || health_of(&app) == "unhealthy"),
        "never unhealthy"
    );
    assert!(
        support::poll_until(Duration::from_secs(10), || async {
            status_of(port, "hc.test").await != Some(200)
        })
        .await,
        "an unhealthy container still gets traffic"
    );
    for _ in 0..10 {
        assert_ne!(
            status_of(port, "hc.test").await,
            Some(200),
            "an unhealthy container got traffic"
        );
    }
}

/// A Swarm task with a `HEALTHCHECK` stays `starting` until its first probe passes: no traffic until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthcheck_starting_swarm_task_gets_no_traffic() {
    if !docker::engine_or_skip("healthcheck_starting_swarm_task_gets_no_traffic") {
        return;
    }
    let s = Swarm::new("hcs");
    let hc = healthcheck_image(&s.img);
    let (gate, port) = s.gate();
    assert!(
        support::poll_until(Duration::from_secs(90), || async {
            status_of(port, "hcs.test").await.is_some()
        })
        .await,
        "swarmgate never answered\n{}",
        docker::logs(&gate, true)
    );
    let app = s.service_of(
        "app",
        &[
            "--label",
            "traefik.http.routers.hcs.rule=Host(`hcs.test`)",
            "--label",
            "traefik.http.services.hcs.loadbalancer.server.port=80",
            "--health-interval",
            "4s",
        ],
        &hc,
        &[],
    );
    let state = |svc: &str| {
        docker_ok(&[
            "service",
            "ps",
            svc,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}}",
        ])
    };
    let mut checked = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !state(&app).starts_with("Running") && std::time::Instant::now() < deadline {
        let st = status_of(port, "hcs.test").await;
        if state(&app).starts_with("Starting") {
            assert_ne!(st, Some(200), "a starting task got traffic");
            checked += 1;
        }
        // Deliberate gap: samples across the start window.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("CHURN healthcheck: {checked} requests while the task was starting, none served");
    assert!(
        support::poll_until(Duration::from_secs(30), || async {
            status_of(port, "hcs.test").await == Some(200)
        })
        .await,
        "the healthy task never got traffic\n{}",
        docker::logs(&gate, true)
    );
}
