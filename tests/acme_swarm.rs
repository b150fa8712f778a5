//! ACME state in Swarm's own store (`storage=swarm://<prefix>`), with the real binary, the real Docker engine
//! (a one-node Swarm, initialised when needed) and a real Pebble that validates for real:
//! two replicas with separate local directories, one order per name, Pebble's validation answered by the
//! replica that did not order, every replica serving each certificate (timed: issuance → served everywhere),
//! a replica killed mid-order taken over once its lease expires (timed), a replica whose config events are
//! held back answering challenges by reading through on the miss, lease contenders racing on the
//! engine, `swarmgate acme import/export`, and the refusal without a key file.
//!
//! Every config a test creates carries the label `swarmgate.acme.store=h19-…` and is removed at the end.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

#[path = "support/pebble.rs"]
#[allow(dead_code)] // `stop` is for the other ACME tests
mod pebble;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pebble::{free_port, Pebble, PebbleOptions};
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use support::docker::{
    docker, docker_ok, engine_or_skip, ensure_swarm, images, percentile, SocketForwarder,
};
use support::{poll_until, tls_client, Backend, Gate};
use swarmgate::provider::docker::client::DockerClient;
use swarmgate::provider::docker::configs;
use swarmgate::tls::acme::swarm::{lease, names};

static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A store prefix unique to this test (`h19-` + 8 hex), its configs removed on drop.
struct Store {
    prefix: String,
}

impl Store {
    fn new() -> Store {
        Store {
            prefix: format!("h19-{:08x}", fastrand::u32(..)),
        }
    }
    fn url(&self) -> String {
        format!("swarm://{}", self.prefix)
    }
    /// Names of this store's configs of `kind`, optionally with label `extra`.
    fn configs(&self, kind: &str, extra: Option<&str>) -> Vec<String> {
        let store = format!("label={}={}", names::STORE, self.prefix);
        let kind = format!("label={}={kind}", names::KIND);
        let mut args = vec![
            "config",
            "ls",
            "--filter",
            &store,
            "--filter",
            &kind,
            "--format",
            "{{.Name}}",
        ];
        let extra = extra.map(|e| format!("label={e}"));
        if let Some(e) = &extra {
            args.extend(["--filter", e]);
        }
        docker_ok(&args)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let filter = format!("label={}={}", names::STORE, self.prefix);
        let o = docker(&["config", "ls", "-q", "--filter", &filter]);
        for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
            docker(&["config", "rm", id]);
        }
    }
}

/// What two replicas of one resolver share in these tests: a store, the sealing key (and the directory that
/// holds it), a backend, the four ports (web and TLS of replicas A and B), and a Pebble validating against
/// replica B only, with its issuing root.
struct Replicas {
    store: Store,
    _keys: tempfile::TempDir,
    key: PathBuf,
    backend: Backend,
    /// Web and TLS ports of replica A, then of replica B.
    ports: [u16; 4],
    pebble: Pebble,
    root: String,
}

impl Replicas {
    /// One replica on `web`/`tls`, with routers for `hosts` and `env` (see [`gate`]).
    fn gate(&self, web: u16, tls: u16, hosts: &[String], env: &[(&str, &str)]) -> Gate {
        gate(
            web,
            tls,
            &dynamic(hosts, &self.backend.url),
            &self.store,
            &self.key,
            &self.pebble.directory,
            &self.pebble.api_ca_file,
            env,
        )
    }
}

/// The shared parts of two replicas; `validity_secs` shortens the certificates' life.
async fn two_replicas(validity_secs: Option<u64>) -> Replicas {
    let store = Store::new();
    let keys = tempfile::tempdir().expect("tmp");
    let key = key_file(keys.path());
    let backend = Backend::start("acme").await;
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let pebble = Pebble::start(PebbleOptions {
        http_port: ports[2],
        tls_port: ports[3],
        validity_secs,
    });
    let root = pebble.issuing_root().await;
    Replicas {
        store,
        _keys: keys,
        key,
        backend,
        ports,
        pebble,
        root,
    }
}

fn key_file(dir: &Path) -> PathBuf {
    let p = dir.join("swarmgate-acme-key");
    std::fs::write(&p, "c3dhcm1nYXRlIHRlc3Qga2V5IG1hdGVyaWFsIDMyIGJ5dGVz\n").expect("key");
    p
}

fn dynamic(hosts: &[String], backend: &str) -> String {
    let mut routers = String::new();
    for (i, h) in hosts.iter().enumerate() {
        routers.push_str(&format!(
            "    r{i}:\n      rule: Host(`{h}`)\n      entryPoints: [websecure]\n      service: app\n      tls:\n        certResolver: le\n"
        ));
    }
    let routers = if routers.is_empty() {
        String::new()
    } else {
        format!("  routers:\n{routers}")
    };
    format!("http:\n{routers}  services:\n    app:\n      loadBalancer:\n        servers:\n          - url: \"{backend}\"\n")
}

/// swarmgate with `web`/`websecure` on the given ports, the resolver `le` on `store` (HTTP-01 on `web`),
/// its own local directory, and `env`.
#[allow(clippy::too_many_arguments)]
fn gate(
    web: u16,
    websecure: u16,
    dynamic_text: &str,
    store: &Store,
    key: &Path,
    ca_server: &str,
    ca_file: &Path,
    env: &[(&str, &str)],
) -> Gate {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("dynamic.yml");
    std::fs::write(&file, dynamic_text).expect("write dynamic");
    let args = vec![
        format!("--entrypoints.web.address=127.0.0.1:{web}"),
        format!("--entrypoints.websecure.address=127.0.0.1:{websecure}"),
        format!("--providers.file.filename={}", file.display()),
        "--providers.file.watch=true".to_string(),
        "--providers.providersThrottleDuration=50ms".to_string(),
        "--certificatesresolvers.le.acme.email=ops@example.com".to_string(),
        format!("--certificatesresolvers.le.acme.storage={}", store.url()),
        format!(
            "--certificatesresolvers.le.acme.storageKeyFile={}",
            key.display()
        ),
        format!("--certificatesresolvers.le.acme.caserver={ca_server}"),
        format!(
            "--certificatesresolvers.le.acme.cacertificates={}",
            ca_file.display()
        ),
        "--certificatesresolvers.le.acme.httpchallenge.entrypoint=web".to_string(),
    ];
    Gate::start_in_env(dir, &args, 2, env)
}

/// Does `addr` serve `host` with a certificate that verifies against `root` (a TLS handshake only)?
async fn serves_verified(addr: SocketAddr, host: &str, root: &str) -> bool {
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let cfg = tls_client(Some(root), &[b"http/1.1"], TLS13);
    let name = ServerName::try_from(host.to_string()).expect("name");
    matches!(
        tokio::time::timeout(
            Duration::from_secs(5),
            tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
        )
        .await,
        Ok(Ok(_))
    )
}

/// SHA-256 of the leaf `addr` serves for `sni` (no verification).
async fn fingerprint(addr: SocketAddr, sni: &str) -> Option<String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let cfg = tls_client(None, &[b"http/1.1"], TLS13);
    let name = ServerName::try_from(sni.to_string()).ok()?;
    let tls = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .ok()?
    .ok()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?.clone();
    Some(hex::encode(Sha256::digest(leaf.as_ref())))
}

/// `2026-12-05T12:55:01.123456789Z` → time (UTC only, as Docker prints it).
fn parse_rfc3339(s: &str) -> SystemTime {
    let (date, time) = s.trim().split_once('T').expect("T");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().expect("date")).collect();
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<u64> = hms.split(':').map(|x| x.parse().expect("time")).collect();
    // Days from civil (Howard Hinnant).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe - 719_468) as u64;
    let nanos: u64 = format!("{frac:0<9}")[..9].parse().expect("frac");
    UNIX_EPOCH
        + Duration::from_secs(days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2])
        + Duration::from_nanos(nanos)
}

fn created_at(config: &str) -> SystemTime {
    parse_rfc3339(
        docker_ok(&[
            "config",
            "inspect",
            "--format",
            "{{json .CreatedAt}}",
            config,
        ])
        .trim_matches('"'),
    )
}

fn count(logs: &str, needle: &str) -> usize {
    logs.matches(needle).count()
}

const ORDERING: &str = "ACME: obtaining a certificate";

fn swarm_or_skip(test: &str) -> bool {
    if !engine_or_skip(test) {
        return false;
    }
    ensure_swarm();
    true
}

/// Trials of the issuance → served-everywhere measurement (`SWARMGATE_ACME_SWARM_TRIALS`, default 10).
fn trials() -> usize {
    std::env::var("SWARMGATE_ACME_SWARM_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_order_per_name_validation_by_the_other_served_everywhere() {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    // Pebble validates against replica B only; replica A places the orders.
    let r = two_replicas(None).await;
    let (store, pebble, root) = (&r.store, &r.pebble, r.root.clone());
    let [a_web, a_tls, b_web, b_tls] = r.ports;
    let b = r.gate(b_web, b_tls, &[], &[]);
    let a = r.gate(a_web, a_tls, &[], &[]);
    let (a_ep, b_ep) = (a.ep("websecure"), b.ep("websecure"));
    let n = trials();
    let mut hosts: Vec<String> = Vec::new();
    let mut latencies = Vec::new();
    for i in 0..n {
        let host = format!("t{i}.{}.example.com", store.prefix);
        hosts.push(host.clone());
        support::write_atomic(&a.dynamic_file(), &dynamic(&hosts, &r.backend.url));
        if i == 0 {
            // B wants the first name too, once A is ordering it: B must wait for A's result, not order.
            assert!(
                a.wait_log(ORDERING, Duration::from_secs(30)),
                "{}",
                a.logs()
            );
            support::write_atomic(&b.dynamic_file(), &dynamic(&hosts[..1], &r.backend.url));
        }
        let (mut at_a, mut at_b) = (None, None);
        // Bounded poll (10 ms apart) recording when each replica first serves the new certificate.
        let deadline = Instant::now() + Duration::from_secs(60);
        while (at_a.is_none() || at_b.is_none()) && Instant::now() < deadline {
            if at_a.is_none() && serves_verified(a_ep, &host, &root).await {
                at_a = Some(SystemTime::now());
            }
            if at_b.is_none() && serves_verified(b_ep, &host, &root).await {
                at_b = Some(SystemTime::now());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let done = at_a.is_some() && at_b.is_some();
        assert!(
            done,
            "trial {i}: A {at_a:?} B {at_b:?}\n--- A\n{}\n--- B\n{}\n--- pebble\n{}",
            a.logs(),
            b.logs(),
            pebble.log()
        );
        let certs = store.configs(
            names::kind::CERT,
            Some(&format!("{}={host}", names::DOMAINS)),
        );
        assert_eq!(certs.len(), 1, "trial {i}: {certs:?}");
        let issued = created_at(&certs[0]);
        let everywhere = at_a.max(at_b).expect("both");
        latencies.push(everywhere.duration_since(issued).unwrap_or(Duration::ZERO));
    }
    // Same certificate on both replicas (polled: a handshake may time out on a loaded machine).
    assert!(
        poll_until(Duration::from_secs(20), || async {
            let fa = fingerprint(a_ep, &hosts[0]).await;
            fa.is_some() && fa == fingerprint(b_ep, &hosts[0]).await
        })
        .await,
        "A and B serve different certificates for {}",
        hosts[0]
    );
    // One order per name, all by A; B ordered nothing (it wanted the first name while A held its lease).
    assert_eq!(count(&a.logs(), ORDERING), n, "{}", a.logs());
    assert_eq!(count(&b.logs(), ORDERING), 0, "B ordered:\n{}", b.logs());
    assert_eq!(store.configs(names::kind::CERT, None).len(), n);
    assert_eq!(store.configs(names::kind::ACCOUNT, None).len(), 1);
    // Answers and leases are removed after the orders.
    assert!(
        poll_until(Duration::from_secs(10), || async {
            store.configs(names::kind::HTTP01, None).is_empty()
                && store.configs(names::kind::LEASE, None).is_empty()
        })
        .await,
        "answers or leases left: {:?} {:?}",
        store.configs(names::kind::HTTP01, None),
        store.configs(names::kind::LEASE, None)
    );
    // Private keys are not in clear in the store.
    for c in store.configs(names::kind::CERT, None) {
        let data = docker_ok(&["config", "inspect", "--format", "{{json .Spec.Data}}", &c]);
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(data.trim_matches('"'))
            .expect("b64");
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("sealedKey"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "key in clear: {text}");
    }
    latencies.sort();
    eprintln!(
        "MEASURE acme_swarm: orders per name = 1 ({n} names, {n} orders); issuance -> served by both replicas over {n} trials: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_order_is_taken_over_after_its_lease_expires() {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    let r = two_replicas(None).await;
    let (store, pebble, root) = (&r.store, &r.pebble, r.root.clone());
    let [a_web, a_tls, b_web, b_tls] = r.ports;
    let host = format!("takeover.{}.example.com", store.prefix);
    let hosts = vec![host.clone()];
    let ttl = 6u64;
    // The orphaned answer lives 6 s too (by default it covers a whole validation, 120 s at least).
    let env = [
        ("SWARMGATE_ACME_LEASE_TTL", "6"),
        ("SWARMGATE_ACME_ANSWER_TTL", "6"),
    ];
    let mut a = r.gate(a_web, a_tls, &hosts, &env);
    // A is mid-order once its challenge answer is published: kill it there, lease held.
    assert!(
        poll_until(Duration::from_secs(30), || async {
            !store.configs(names::kind::HTTP01, None).is_empty()
        })
        .await,
        "{}",
        a.logs()
    );
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(10)).expect("A exits");
    let killed = Instant::now();
    let leases = store.configs(names::kind::LEASE, None);
    assert_eq!(leases.len(), 1, "A's lease: {leases:?}");
    let expires_ms: u64 = docker_ok(&[
        "config",
        "inspect",
        "--format",
        &format!("{{{{index .Spec.Labels \"{}\"}}}}", names::EXPIRES),
        &leases[0],
    ])
    .parse()
    .expect("expires");
    let expires = UNIX_EPOCH + Duration::from_millis(expires_ms);

    let b = r.gate(b_web, b_tls, &hosts, &env);
    assert!(
        b.wait_log(
            "another replica is obtaining this certificate",
            Duration::from_secs(20)
        ),
        "{}",
        b.logs()
    );
    assert!(
        poll_until(Duration::from_secs(60), || async {
            serves_verified(b.ep("websecure"), &host, &root).await
        })
        .await,
        "--- B\n{}\n--- pebble\n{}",
        b.logs(),
        pebble.log()
    );
    let served = SystemTime::now();
    let kill_to_served = killed.elapsed();
    assert!(
        b.logs().contains("stale ACME lease taken over"),
        "{}",
        b.logs()
    );
    assert_eq!(count(&b.logs(), ORDERING), 1, "{}", b.logs());
    // B did not order before the lease expired.
    assert!(served >= expires, "served before the lease expired");
    // A's orphaned challenge answer expires with the lease and is removed by a live replica.
    assert!(
        poll_until(Duration::from_secs(30), || async {
            store.configs(names::kind::HTTP01, None).is_empty()
        })
        .await,
        "{:?}\n{}",
        store.configs(names::kind::HTTP01, None),
        b.logs()
    );
    eprintln!(
        "MEASURE acme_swarm: lease {ttl}s; A killed mid-order -> B serves: {:?}; lease expiry -> B serves: {:?}",
        kill_to_served,
        served.duration_since(expires).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_longer_than_its_lease_is_kept_alive_and_ordered_once() {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    let r = two_replicas(None).await;
    let (store, pebble, root) = (&r.store, &r.pebble, r.root.clone());
    let [a_web, a_tls, b_web, b_tls] = r.ports;
    // A 1 s lease: its holder stops at 0.9 s unless renewed, and an order takes longer than that (the 1 s
    // propagation wait alone). Without the heartbeat every order would be abandoned and retried forever.
    let env = [("SWARMGATE_ACME_LEASE_TTL", "1")];
    let hosts: Vec<String> = (0..3)
        .map(|i| format!("long{i}.{}.example.com", store.prefix))
        .collect();
    let b = r.gate(b_web, b_tls, &hosts, &env);
    let a = r.gate(a_web, a_tls, &hosts, &env);
    let (a_ep, b_ep) = (a.ep("websecure"), b.ep("websecure"));
    assert!(
        poll_until(Duration::from_secs(90), || async {
            for h in &hosts {
                if !(serves_verified(a_ep, h, &root).await && serves_verified(b_ep, h, &root).await)
                {
                    return false;
                }
            }
            true
        })
        .await,
        "--- A\n{}\n--- B\n{}\n--- pebble\n{}",
        a.logs(),
        b.logs(),
        pebble.log()
    );
    let logs = format!("{}{}", a.logs(), b.logs());
    for h in &hosts {
        let quoted = format!("\"{h}\"");
        let orders = logs
            .lines()
            .filter(|l| l.contains(ORDERING) && l.contains(&quoted))
            .count();
        assert_eq!(orders, 1, "{h}:\n{logs}");
    }
    assert_eq!(count(&logs, ORDERING), hosts.len(), "{logs}");
    assert_eq!(
        count(&logs, "lease expired before the order ended"),
        0,
        "{logs}"
    );
    assert_eq!(count(&logs, "ACME lease lost"), 0, "{logs}");
    assert_eq!(store.configs(names::kind::CERT, None).len(), hosts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_once_for_both_replicas() {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    // 30 s certificates: renewed when 10 s remain, by whichever replica takes the lease.
    let r = two_replicas(Some(30)).await;
    let (store, root) = (&r.store, r.root.clone());
    let [a_web, a_tls, b_web, b_tls] = r.ports;
    let host = format!("renew.{}.example.com", store.prefix);
    let hosts = vec![host.clone()];
    let b = r.gate(b_web, b_tls, &[], &[]);
    let a = r.gate(a_web, a_tls, &hosts, &[]);
    assert!(
        a.wait_log(ORDERING, Duration::from_secs(30)),
        "{}",
        a.logs()
    );
    support::write_atomic(&b.dynamic_file(), &dynamic(&hosts, &r.backend.url));
    let (a_ep, b_ep) = (a.ep("websecure"), b.ep("websecure"));
    assert!(
        poll_until(Duration::from_secs(60), || async {
            serves_verified(a_ep, &host, &root).await && serves_verified(b_ep, &host, &root).await
        })
        .await,
        "--- A\n{}\n--- B\n{}",
        a.logs(),
        b.logs()
    );
    let first = fingerprint(a_ep, &host).await.expect("first");
    // Both replicas serve the renewed certificate (same one).
    assert!(
        poll_until(Duration::from_secs(60), || async {
            let (fa, fb) = (
                fingerprint(a_ep, &host).await,
                fingerprint(b_ep, &host).await,
            );
            fa.is_some()
                && fa == fb
                && fa.as_deref() != Some(first.as_str())
                && serves_verified(a_ep, &host, &root).await
        })
        .await,
        "not renewed everywhere\n--- A\n{}\n--- B\n{}",
        a.logs(),
        b.logs()
    );
    const RENEWING: &str = "ACME: renewing a certificate";
    let renewals = count(&a.logs(), RENEWING) + count(&b.logs(), RENEWING);
    let orders = count(&a.logs(), ORDERING) + count(&b.logs(), ORDERING);
    assert_eq!(
        (orders, renewals),
        (1, 1),
        "--- A\n{}\n--- B\n{}",
        a.logs(),
        b.logs()
    );
    // The old generation is removed: one certificate object for the name.
    assert!(
        poll_until(Duration::from_secs(10), || async {
            store.configs(names::kind::CERT, None).len() == 1
        })
        .await,
        "{:?}",
        store.configs(names::kind::CERT, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_contenders_race_on_the_engine_and_exactly_one_wins() {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    let store = Store::new();
    let client = engine_client().await;
    let names_ = vec!["race.example.com".to_string()];
    for round in 0..10 {
        let name = format!("{}-lease-r{round}", store.prefix);
        let prefix = store.prefix.clone();
        let labels =
            move |exp| lease::lease_labels(&prefix, "le", &["race.example.com".into()], "x", exp);
        // Odd rounds: a stale lease (expired a second ago) is there first; contenders must take it over.
        let stale_id = if round % 2 == 1 {
            let l =
                lease::lease_labels(&store.prefix, "le", &names_, "dead", lease::now_ms() - 1000);
            match configs::create(&client, &name, &l, b"dead")
                .await
                .expect("create")
            {
                configs::Created::Id(id) => Some(id),
                configs::Created::Exists => panic!("exists"),
            }
        } else {
            None
        };
        let mut tasks = Vec::new();
        for c in 0..8 {
            let (client, name, labels) = (client.clone(), name.clone(), labels.clone());
            tasks.push(tokio::spawn(async move {
                let me = format!("contender-{c}");
                lease::acquire(&client, &name, labels, &me, Duration::from_secs(30))
                    .await
                    .expect("acquire")
            }));
        }
        let mut held = Vec::new();
        for t in tasks {
            if let lease::Acquired::Held(g) = t.await.expect("join") {
                held.push(g);
            }
        }
        assert_eq!(held.len(), 1, "round {round}: {held:?}");
        let now = configs::inspect(&client, &name)
            .await
            .expect("inspect")
            .expect("lease");
        assert_eq!(now.id, held[0].id);
        if let Some(stale) = stale_id {
            assert_ne!(now.id, stale, "the stale lease was replaced");
        }
        drop(held);
        assert!(lease_gone(&client, &name).await, "released on drop");
    }
}

async fn engine_client() -> DockerClient {
    DockerClient::new(
        &std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
        None,
        Duration::from_secs(30),
    )
    .expect("client")
    .connect()
    .await
    .expect("engine")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_is_renewed_past_its_ttl_and_contenders_stay_out() {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    let store = Store::new();
    let client = engine_client().await;
    let names_ = vec!["heartbeat.example.com".to_string()];
    let name = names::lease(&store.prefix, "le", &names_);
    let prefix = store.prefix.clone();
    let labels = |holder: &'static str| {
        let (prefix, names_) = (prefix.clone(), names_.clone());
        move |exp| lease::lease_labels(&prefix, "le", &names_, holder, exp)
    };
    let ttl = Duration::from_secs(2);
    let lease::Acquired::Held(g) = lease::acquire(&client, &name, labels("a"), "a", ttl)
        .await
        .expect("acquire")
    else {
        panic!("free lease not acquired");
    };
    let first = configs::inspect(&client, &name)
        .await
        .expect("inspect")
        .expect("lease");
    let expired = g.expired();
    // Three lease lengths: without the heartbeat the lease would have expired (and been taken) twice.
    let until = Instant::now() + ttl * 3;
    let mut busy = 0;
    while Instant::now() < until {
        match lease::acquire(&client, &name, labels("b"), "b", ttl)
            .await
            .expect("contender")
        {
            lease::Acquired::Busy(info) => {
                assert_eq!(info.holder, "a");
                assert_eq!(info.id, g.id);
                busy += 1;
            }
            lease::Acquired::Held(h) => panic!("contender took a live lease: {h:?}"),
        }
        assert!(
            !expired.is_cancelled(),
            "the holder gave up a renewed lease"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let now = configs::inspect(&client, &name)
        .await
        .expect("inspect")
        .expect("lease");
    let info = lease::LeaseInfo::from_object(&now);
    assert_eq!(now.id, first.id, "same object, renewed in place");
    assert!(now.index > first.index, "version moved");
    assert!(
        !info.is_stale(lease::now_ms()),
        "expiry kept ahead: {info:?}"
    );
    assert!(g.renewals() >= 4, "renewals: {}", g.renewals());
    eprintln!(
        "MEASURE acme_swarm: lease {ttl:?} held {:?} with {} renewals; {busy} contender attempts all busy",
        ttl * 3,
        g.renewals()
    );
    drop(g);
    assert!(lease_gone(&client, &name).await, "released on drop");
}

/// Whether the lease config `name` is gone within 10 s (a dropped guard removes it in the background).
async fn lease_gone(client: &DockerClient, name: &str) -> bool {
    poll_until(Duration::from_secs(10), || async {
        configs::inspect(client, name)
            .await
            .expect("inspect")
            .is_none()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_holder_stops_at_its_next_heartbeat() {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    let store = Store::new();
    let client = engine_client().await;
    let names_ = vec!["fenced.example.com".to_string()];
    let name = names::lease(&store.prefix, "le", &names_);
    let (prefix, n2) = (store.prefix.clone(), names_.clone());
    let labels = move |exp| lease::lease_labels(&prefix, "le", &n2, "a", exp);
    let ttl = Duration::from_secs(4);
    let lease::Acquired::Held(g) = lease::acquire(&client, &name, labels, "a", ttl)
        .await
        .expect("acquire")
    else {
        panic!("free lease not acquired");
    };
    let expired = g.expired();
    // A contender fences the lease at the version it reads (as a take-over does with a stale one).
    let o = configs::inspect(&client, &name)
        .await
        .expect("inspect")
        .expect("lease");
    let fenced = Instant::now();
    assert_eq!(
        lease::fence(&client, &o, "b").await.expect("fence"),
        configs::Updated::Done
    );
    // Fencing again at the same (now old) version is refused: the CAS admits one writer per version.
    assert_eq!(
        lease::fence(&client, &o, "c").await.expect("fence"),
        configs::Updated::Stale
    );
    let within = lease::heartbeat_every(ttl) + Duration::from_secs(2);
    assert!(
        tokio::time::timeout(within, expired.cancelled())
            .await
            .is_ok(),
        "holder still working {within:?} after being fenced"
    );
    let stopped = fenced.elapsed();
    assert!(
        stopped < lease::holder_deadline(ttl),
        "stopped by the refusal, not the deadline: {stopped:?}"
    );
    let after = configs::inspect(&client, &name)
        .await
        .expect("inspect")
        .expect("lease");
    assert_eq!(
        after.labels[names::HOLDER],
        "b",
        "no renewal overwrote the fence"
    );
    eprintln!("MEASURE acme_swarm: fenced holder (lease {ttl:?}, heartbeat {:?}) stopped after {stopped:?}", lease::heartbeat_every(ttl));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renewal_and_a_take_over_race_on_one_version_and_exactly_one_wins() {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    let store = Store::new();
    let client = engine_client().await;
    let names_ = vec!["renew-race.example.com".to_string()];
    let (mut renewals_won, mut takeovers_won) = (0, 0);
    for round in 0..20 {
        let name = format!("{}-lease-rr{round}", store.prefix);
        // The holder's lease, read as just expired by the contenders: its renewal and their fences race
        // on the same version.
        let l = lease::lease_labels(&store.prefix, "le", &names_, "holder", lease::now_ms() - 1);
        let configs::Created::Id(id) = configs::create(&client, &name, &l, b"holder")
            .await
            .expect("create")
        else {
            panic!("exists");
        };
        let version = configs::inspect(&client, &id)
            .await
            .expect("inspect")
            .expect("lease")
            .index;
        let held = lease::Held {
            id: id.clone(),
            name: name.clone(),
            holder: "holder".into(),
            labels: l,
        };
        let renewal = {
            let client = client.clone();
            // A random head start for the contenders (0–6 ms), so both orders of commit occur.
            let delay = Duration::from_micros(fastrand::u64(0..6000));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                lease::renew(&client, &held, version, lease::now_ms() + 30_000)
                    .await
                    .expect("renew")
            })
        };
        let mut tasks = Vec::new();
        for c in 0..3 {
            let (client, name, prefix, names_) = (
                client.clone(),
                name.clone(),
                store.prefix.clone(),
                names_.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let me = format!("contender-{c}");
                let labels = |exp| lease::lease_labels(&prefix, "le", &names_, &me, exp);
                lease::acquire(&client, &name, labels, &me, Duration::from_secs(30))
                    .await
                    .expect("acquire")
            }));
        }
        let renewed = matches!(renewal.await.expect("join"), lease::Renewal::Renewed { .. });
        let mut held = Vec::new();
        for t in tasks {
            if let lease::Acquired::Held(g) = t.await.expect("join") {
                held.push(g);
            }
        }
        let now = configs::inspect(&client, &name)
            .await
            .expect("inspect")
            .expect("a lease");
        if renewed {
            // The renewal committed first: every fence was refused, the holder keeps its object.
            assert!(
                held.is_empty(),
                "round {round}: renewed and taken: {held:?}"
            );
            assert_eq!(now.id, id, "round {round}");
            assert_eq!(now.labels[names::HOLDER], "holder");
            renewals_won += 1;
            configs::remove(&client, &id).await.expect("rm");
        } else {
            // A fence committed first: the renewal was refused and exactly one contender holds a new lease.
            assert_eq!(held.len(), 1, "round {round}: {held:?}");
            assert_ne!(now.id, id, "round {round}: the fenced lease was replaced");
            assert_eq!(now.id, held[0].id);
            takeovers_won += 1;
        }
        drop(held);
    }
    eprintln!("MEASURE acme_swarm: renewal vs 3 take-overs on one version, 20 rounds: renewal won {renewals_won}, a take-over won {takeovers_won}, never both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_json_imports_into_swarm_is_served_without_an_order_and_exports_back() {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    let store = Store::new();
    let tmp = tempfile::tempdir().expect("tmp");
    let key = key_file(tmp.path());
    let host = format!("import.{}.example.com", store.prefix);
    let (cert, cert_key) = support::self_signed(&[&host]);
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let fixture = serde_json::json!({ "le": {
        "Account": { "Email": "ops@example.com", "PrivateKey": "MIIJKAIBAAKCAgEAwJ3pL", "KeyType": "4096" },
        "Certificates": [ { "domain": { "main": host }, "certificate": b64(&cert), "key": b64(&cert_key), "Store": "default" } ]
    }});
    let file = tmp.path().join("acme.json");
    std::fs::write(&file, fixture.to_string()).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(support::bin())
            .args(args)
            .output()
            .expect("run");
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let url = store.url();
    let key_arg = key.display().to_string();
    let file_arg = file.display().to_string();
    let (ok, out) = run(&[
        "acme",
        "import",
        &file_arg,
        "--storage",
        &url,
        "--key-file",
        &key_arg,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("1 certificate(s) written"), "{out}");
    assert!(out.contains("Traefik (RSA) account"), "{out}");
    // Idempotent.
    let (ok, out) = run(&[
        "acme",
        "import",
        &file_arg,
        "--storage",
        &url,
        "--key-file",
        &key_arg,
    ]);
    assert!(ok && out.contains("1 already present"), "{out}");
    assert_eq!(store.configs(names::kind::CERT, None).len(), 1);

    // Served from the store with the CA unreachable: no order.
    let backend = Backend::start("acme").await;
    let ca = tmp.path().join("unused-ca.pem");
    std::fs::write(&ca, &cert).expect("write");
    let g = gate(
        free_port(),
        free_port(),
        &dynamic(std::slice::from_ref(&host), &backend.url),
        &store,
        &key,
        "https://127.0.0.1:1/dir",
        &ca,
        &[],
    );
    assert!(
        poll_until(Duration::from_secs(10), || async {
            serves_verified(g.ep("websecure"), &host, &cert).await
        })
        .await,
        "{}",
        g.logs()
    );
    assert_eq!(count(&g.logs(), ORDERING), 0, "{}", g.logs());

    // Export: the same certificate and key, mode 0600; with another key file the keys do not open.
    let out_file = tmp.path().join("out/acme.json");
    let out_arg = out_file.display().to_string();
    let (ok, out) = run(&[
        "acme",
        "export",
        "--storage",
        &url,
        "--key-file",
        &key_arg,
        "-o",
        &out_arg,
    ]);
    assert!(ok, "{out}");
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).expect("read")).expect("json");
    assert_eq!(back["le"]["Certificates"][0]["certificate"], b64(&cert));
    assert_eq!(back["le"]["Certificates"][0]["key"], b64(&cert_key));
    assert_eq!(
        std::fs::metadata(&out_file)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let other = tmp.path().join("other-key");
    std::fs::write(&other, "another key, 32 bytes or more, for the test").expect("write");
    let other_arg = other.display().to_string();
    let wrong = tmp.path().join("wrong.json").display().to_string();
    let (ok, out) = run(&[
        "acme",
        "export",
        "--storage",
        &url,
        "--key-file",
        &other_arg,
        "-o",
        &wrong,
    ]);
    assert!(ok && out.contains("0 certificate(s)"), "{out}");
}

#[test]
fn swarm_storage_without_a_key_file_is_refused_at_start_up() {
    let o = std::process::Command::new(support::bin())
        .args([
            "--entrypoints.web.address=127.0.0.1:0",
            "--certificatesresolvers.le.acme.storage=swarm://h19-nokey",
            "--certificatesresolvers.le.acme.storageKeyFile=/nonexistent/swarmgate-acme-key",
            "--certificatesresolvers.le.acme.httpchallenge.entrypoint=web",
        ])
        .output()
        .expect("run");
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("certificatesResolvers.le.acme.storage")
            && err.contains("/nonexistent/swarmgate-acme-key")
            && err.contains("docker secret create"),
        "{err}"
    );
}

/// Removes a service, then a secret it uses, on drop.
struct SwarmObjects {
    service: String,
    secret: String,
}

impl Drop for SwarmObjects {
    fn drop(&mut self) {
        docker(&["service", "rm", &self.service]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !docker(&["secret", "rm", &self.secret]).status.success() && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_service_task_orders_with_its_key_from_a_docker_secret_and_a_process_replica_serves(
) {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    let store = Store::new();
    let tmp = tempfile::tempdir().expect("tmp");
    let backend = Backend::start("acme").await;
    let (a_web, a_tls, b_web, b_tls) = (free_port(), free_port(), free_port(), free_port());
    let pebble = Pebble::start(PebbleOptions {
        http_port: b_web,
        tls_port: b_tls,
        validity_secs: None,
    });
    let root = pebble.issuing_root().await;
    let host = format!("global.{}.example.com", store.prefix);
    // The sealing key as a real Docker secret, mounted by Swarm at the default path.
    let key = key_file(tmp.path());
    let objects = SwarmObjects {
        service: format!("{}-gate", store.prefix),
        secret: format!("{}-key", store.prefix),
    };
    docker_ok(&[
        "secret",
        "create",
        &objects.secret,
        &key.display().to_string(),
    ]);
    let conf = tmp.path().join("conf");
    std::fs::create_dir_all(&conf).expect("mkdir");
    std::fs::write(
        conf.join("dynamic.yml"),
        dynamic(std::slice::from_ref(&host), &backend.url),
    )
    .expect("write");
    std::fs::copy(&pebble.api_ca_file, conf.join("pebble-ca.pem")).expect("copy");
    let image = images().gate;
    let secret = format!(
        "source={},target=swarmgate-acme-key,mode=0400",
        objects.secret
    );
    let conf_mount = format!("type=bind,source={},target=/conf", conf.display());
    // Host networking: the task reaches Pebble and the backend on 127.0.0.1, as the process replica does.
    let args = [
        format!("--entrypoints.web.address=127.0.0.1:{a_web}"),
        format!("--entrypoints.websecure.address=127.0.0.1:{a_tls}"),
        "--providers.file.filename=/conf/dynamic.yml".to_string(),
        "--certificatesresolvers.le.acme.email=ops@example.com".to_string(),
        format!("--certificatesresolvers.le.acme.storage={}", store.url()),
        format!(
            "--certificatesresolvers.le.acme.caserver={}",
            pebble.directory
        ),
        "--certificatesresolvers.le.acme.cacertificates=/conf/pebble-ca.pem".to_string(),
        "--certificatesresolvers.le.acme.httpchallenge.entrypoint=web".to_string(),
    ];
    let mut create = vec![
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--mode",
        "global",
        "--name",
        &objects.service,
        "--network",
        "host",
        "--secret",
        &secret,
        "--mount",
        "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock",
        "--mount",
        &conf_mount,
        "--restart-condition",
        "none",
        &image,
    ];
    create.extend(args.iter().map(String::as_str));
    docker_ok(&create);
    let b = gate(
        b_web,
        b_tls,
        &dynamic(&[], &backend.url),
        &store,
        &key,
        &pebble.directory,
        &pebble.api_ca_file,
        &[],
    );
    let ok = poll_until(Duration::from_secs(90), || async {
        serves_verified(SocketAddr::from(([127, 0, 0, 1], a_tls)), &host, &root).await
            && serves_verified(b.ep("websecure"), &host, &root).await
    })
    .await;
    let task_logs = support::docker::logs(&objects.service, true);
    assert!(
        ok,
        "--- task\n{task_logs}\n--- B\n{}\n--- pebble\n{}",
        b.logs(),
        pebble.log()
    );
    assert_eq!(count(&task_logs, ORDERING), 1, "{task_logs}");
    assert_eq!(count(&b.logs(), ORDERING), 0, "{}", b.logs());
    assert_eq!(store.configs(names::kind::CERT, None).len(), 1);
}

/// The 3-node run (`scripts/multinode-acme.sh`): slow (release images, three nested engines), so only with
/// `SWARMGATE_SLOW_TESTS=1`. Asserts the script's own checks passed (one order per name, every node served
/// every name with the same certificate) and prints its RESULT lines.
#[test]
fn three_node_swarm_orders_once_and_every_node_serves() {
    if std::env::var("SWARMGATE_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("acme_swarm: 3-node run skipped (set SWARMGATE_SLOW_TESTS=1; it builds release images and starts three nested Docker engines)");
        return;
    }
    if !engine_or_skip("three_node_swarm_orders_once_and_every_node_serves") {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    // What the run makes on the host engine is named after this prefix: `<prefix>-swarmgate`,
    // `<prefix>-whoami` (images, kept for the next run) and `<prefix>-tools` (removed at the end).
    let prefix = std::env::var("SWARMGATE_MN_PREFIX").unwrap_or_else(|_| "h19mn".into());
    let (gate, whoami) = (format!("{prefix}-swarmgate"), format!("{prefix}-whoami"));
    let images = [
        ("GATE_IMAGE", gate.as_str()),
        ("WHOAMI_IMAGE", whoami.as_str()),
    ];
    let o = std::process::Command::new("bash")
        .arg(format!("{root}/scripts/image.sh"))
        .envs(images)
        .output()
        .expect("scripts/image.sh");
    assert!(
        o.status.success(),
        "scripts/image.sh: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let o = std::process::Command::new("bash")
        .args([&format!("{root}/scripts/multinode-acme.sh"), "run"])
        .envs(images.map(|(k, v)| (k, format!("{v}:latest"))))
        .env("PREFIX", &prefix)
        .output()
        .expect("scripts/multinode-acme.sh");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{out}\n{err}");
    let results: Vec<&str> = out.lines().filter(|l| l.starts_with("RESULT")).collect();
    eprintln!("{}", results.join("\n"));
    let orders = results
        .iter()
        .find(|l| l.starts_with("RESULT orders per name:"))
        .expect("orders line");
    for per_name in orders.split_whitespace().skip(4) {
        // `nN.mn.test=1` for the names; the take-over name `kN…` counts the killed holder's order too.
        if per_name.contains('=') && !per_name.starts_with('k') {
            assert!(per_name.ends_with("=1"), "{orders}");
        }
    }
    assert!(
        results
            .iter()
            .filter(|l| l.contains("fingerprints_equal"))
            .all(|l| l.contains("fingerprints_equal=yes")),
        "{out}"
    );
}

/// The read-through on a miss: replica B's config events are late (a forwarder in front of the engine
/// socket holds back what the daemon sends on B's event stream; every other call flows) and its periodic
/// resync is ten minutes away, so an answer another replica publishes would reach B only much later. The
/// answers are created as that replica would (same names, labels and payload, through the engine), their
/// create events are seen waiting in the forwarder, and B still answers the first HTTP-01 request and the
/// first TLS-ALPN-01 handshake: each miss asks B's watcher for an immediate resync and waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_events_are_late_answers_published_challenges_by_reading_through() {
    if !swarm_or_skip("acme_swarm") {
        return;
    }
    let r = two_replicas(None).await;
    let store = &r.store;
    let [_, _, b_web, b_tls] = r.ports;
    let engine = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    let fwd = SocketForwarder::start(&engine);
    fwd.hold_events(true);
    let docker_host = format!("unix://{}", fwd.path().display());
    let b = r.gate(
        b_web,
        b_tls,
        &[],
        &[
            ("DOCKER_HOST", &docker_host),
            (swarmgate::tls::acme::swarm::RESYNC_ENV, "600"),
        ],
    );
    assert!(
        poll_until(Duration::from_secs(10), || async {
            fwd.event_streams() >= 1
        })
        .await,
        "B never asked for config events through the forwarder\n{}",
        b.logs()
    );

    let token: String = (0..43).map(|_| fastrand::alphanumeric()).collect();
    let key_auth = format!("{token}.readthroughthumbprint");
    let path = format!("/.well-known/acme-challenge/{token}");
    // Nothing published yet: the miss waits its bound, then the request is routed as before (no route: 404).
    let before = support::get(b.web(), "any.example.com", &path).await;
    assert_eq!(before.status, 404, "{}", before.body);

    // The replica that orders publishes the answer; its create event waits in the forwarder, unheard by B.
    publish_unheard(&fwd, store, Challenge::Http01, &token, &key_auth).await;
    let answered = support::get(b.web(), "any.example.com", &path).await;
    assert_eq!(answered.status, 200, "{}\n{}", answered.body, b.logs());
    assert_eq!(answered.body, key_auth);

    // Then a TLS-ALPN-01 answer (published after the HTTP-01 read-through, so only its own loads it).
    let domain = format!("alpn.{}.example.com", store.prefix);
    let alpn_auth = format!("alpnToken.{token}");
    publish_unheard(&fwd, store, Challenge::TlsAlpn01, &domain, &alpn_auth).await;
    let tcp = tokio::net::TcpStream::connect(b.ep("websecure"))
        .await
        .expect("connect");
    let cfg = support::acme_tls_client();
    let name = ServerName::try_from(domain.clone()).expect("name");
    let tls = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .expect("handshake within 10 s")
    .expect("the acme-tls/1 handshake for a published answer succeeds");
    let leaf = tls.get_ref().1.peer_certificates().expect("certificate")[0].clone();
    let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref()).expect("x509");
    let id = x
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
        .expect("acmeIdentifier extension");
    assert_eq!(
        &id.value[2..],
        Sha256::digest(alpn_auth.as_bytes()).as_slice()
    );
    // All of this while B's events were still held back.
    assert_eq!(
        fwd.event_streams(),
        1,
        "B's event stream was never replaced"
    );
}

/// The two challenge kinds whose answers the store shares.
#[derive(Clone, Copy)]
enum Challenge {
    Http01,
    TlsAlpn01,
}

/// [`publish_answer`] for `name` (HTTP-01: the token; TLS-ALPN-01: the domain), then waits until the
/// engine's create event sits in `fwd` (held, so the replica behind it has not heard of the answer).
async fn publish_unheard(
    fwd: &SocketForwarder,
    store: &Store,
    challenge: Challenge,
    name: &str,
    key_authorization: &str,
) {
    let (kind, object) = match challenge {
        Challenge::Http01 => (names::kind::HTTP01, names::http01(&store.prefix, name)),
        Challenge::TlsAlpn01 => (
            names::kind::TLS_ALPN01,
            names::tls_alpn01(&store.prefix, name),
        ),
    };
    let before = fwd.held_event_chunks();
    publish_answer(store, kind, &object, name, key_authorization);
    let arrived = poll_until(Duration::from_secs(10), || async {
        fwd.held_event_chunks() > before
    })
    .await;
    assert!(arrived, "the engine sent no config event");
}

/// Creates a challenge answer config in `store` exactly as the ordering replica does (see
/// `swarm::store::put_answer`): name, the store/kind/resolver/expires labels, `{name, keyAuthorization}`.
fn publish_answer(store: &Store, kind: &str, object: &str, name: &str, key_authorization: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("answer.json");
    std::fs::write(
        &data,
        format!(r#"{{"name":"{name}","keyAuthorization":"{key_authorization}"}}"#),
    )
    .expect("write");
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 600_000;
    let labels = [
        format!("{}={}", names::STORE, store.prefix),
        format!("{}={kind}", names::KIND),
        format!("{}=", names::RESOLVER),
        format!("{}={expires}", names::EXPIRES),
    ];
    let mut args = vec!["config", "create"];
    for l in &labels {
        args.extend(["--label", l]);
    }
    args.extend([object, data.to_str().expect("utf-8")]);
    docker_ok(&args);
}
