//! The one task that turns provider snapshots into routing tables.
//!
//! Providers publish whole configurations on `watch` channels; this task waits for any change, lets bursts
//! settle for `providersThrottleDuration`, merges the latest value of every provider, and — unless the merged
//! input equals the current table's — compiles and stores a new table in the [`Store`], logs a short diff, and
//! publishes the table's health check targets (the app's prober restarts its checks from them). Compilation
//! runs on tokio's blocking pool, so a large configuration never stalls the runtime's workers. Compilation never fails as a whole: bad items are dropped and logged,
//! so the previous table is replaced only by one that serves everything that is valid; if a build dies
//! (a bug), the previous table and the state carried between builds are kept.
//!
//! The builder owns the state carried from one build to the next ([`CarriedState`]: per-server health,
//! rate limiters, in-flight counters, circuit breakers); nothing else holds it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::compile::{compile, BuildInput, CarriedState, CompileContext, Compiled};
use super::{RoutingTable, Store, TableStatus};
use crate::balance::health::CheckTarget;

/// Provider snapshots, defined with the configuration model; named here for the code that feeds the builder.
pub use crate::dynamic::snapshot::{ProviderFeed, Snapshot};

/// Owns the control-plane state of table building.
pub struct TableBuilder {
    store: Store,
    ctx: Arc<CompileContext>,
    carried: Arc<CarriedState>,
    generation: u64,
    health: watch::Sender<Arc<Vec<CheckTarget>>>,
    shutdown: CancellationToken,
    wanted: watch::Sender<Arc<Vec<crate::tls::CertRequest>>>,
    changes: Option<ChangeLog>,
    /// Replaced tables that requests still held when they left the store (see [`TableBuilder::retire`]).
    retired: Vec<Arc<RoutingTable>>,
}

impl TableBuilder {
    /// Creates the builder around an existing store; it runs until `shutdown`.
    pub fn new(store: Store, ctx: CompileContext, shutdown: CancellationToken) -> TableBuilder {
        TableBuilder {
            store,
            ctx: Arc::new(ctx),
            carried: Arc::new(CarriedState::default()),
            generation: 0,
            health: watch::Sender::new(Arc::new(Vec::new())),
            shutdown,
            wanted: watch::Sender::new(Arc::new(Vec::new())),
            changes: None,
            retired: Vec::new(),
        }
    }

    /// Records every stored table's diff in `log` (the last [`CHANGE_LOG_LEN`]), for the dashboard.
    pub fn set_change_log(&mut self, log: ChangeLog) {
        self.changes = Some(log);
    }

    /// Certificates the current table's routers want from ACME resolvers; updated after every build
    /// (only when the set changes). The ACME manager subscribes here.
    pub fn wanted_certificates(&self) -> watch::Receiver<Arc<Vec<crate::tls::CertRequest>>> {
        self.wanted.subscribe()
    }

    /// The servers to health-check, with their settings and shared state: replaced after every stored table
    /// (even with equal targets, so the checks restart with the table, as they always have). The app's
    /// prober (`proxy::health_check`) subscribes here.
    pub fn health_targets(&self) -> watch::Receiver<Arc<Vec<CheckTarget>>> {
        self.health.subscribe()
    }

    /// Compiles and stores a table for `input`, unless it equals the input of the current table; compiles
    /// on the calling thread (start-up, tests). Returns whether a new table was stored.
    pub fn apply(&mut self, input: BuildInput) -> bool {
        let Some(job) = self.job(input) else {
            return false;
        };
        let built = job.run();
        self.publish(built);
        true
    }

    /// [`apply`](Self::apply) with the compilation on tokio's blocking pool. A build that panics is
    /// logged and changes nothing: the current table and the carried state stay.
    pub async fn apply_off_runtime(&mut self, input: BuildInput) -> bool {
        let Some(job) = self.job(input) else {
            return false;
        };
        let generation = job.generation;
        match tokio::task::spawn_blocking(move || job.run()).await {
            Ok(built) => {
                self.publish(built);
                true
            }
            Err(e) => {
                tracing::error!(
                    generation,
                    "routing table build failed ({e}); the current table is kept"
                );
                false
            }
        }
    }

    /// The build of `input`, or `None` when it equals the current table's input (snapshots compared by
    /// pointer first, then by value).
    fn job(&self, input: BuildInput) -> Option<BuildJob> {
        let old = self.store.load_full();
        if self.generation > 0 && *old.input == input {
            tracing::debug!("configuration unchanged; routing table kept");
            return None;
        }
        Some(BuildJob {
            input,
            ctx: self.ctx.clone(),
            carried: self.carried.clone(),
            generation: self.generation + 1,
            old,
            record_change: self.changes.is_some(),
        })
    }

    /// Stores a built table and what goes with it: carried state, change log, wanted certificates, checks.
    fn publish(&mut self, built: Built) {
        let Built { compiled, change } = built;
        let Compiled {
            table,
            health_targets,
            cert_requests,
            carried,
            ..
        } = compiled;
        self.generation = table.generation;
        self.carried = Arc::new(carried);
        if let (Some(log), Some(change)) = (&self.changes, change) {
            let mut ring = log.lock().unwrap_or_else(|e| e.into_inner());
            if ring.len() >= CHANGE_LOG_LEN {
                ring.pop_front();
            }
            ring.push_back(change);
        }
        let replaced = self.store.swap(Arc::new(table));
        self.retire(replaced);
        self.wanted.send_if_modified(|cur| {
            if **cur == cert_requests {
                false
            } else {
                *cur = Arc::new(cert_requests);
                true
            }
        });
        self.publish_health_targets(health_targets);
    }

    /// Keeps a replaced table until no request holds it any more, and frees the ones nobody holds here, on
    /// the blocking pool. Requests hold the table (`load_full`) while they run: without this, the last
    /// request using a replaced table would free it — for a large stack, milliseconds of deallocation on a
    /// proxy worker, in the middle of serving. After `swap` the reference counts are exact (arc-swap turns
    /// outstanding guards into counted references), and a table out of the store gains no new holder, so a
    /// count of one means only this builder holds it. Checked at every stored table.
    fn retire(&mut self, replaced: Arc<RoutingTable>) {
        self.retired.push(replaced);
        let (free, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|t| Arc::strong_count(t) == 1);
        self.retired = held;
        if free.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(move || drop(free))),
            Err(_) => drop(free),
        }
    }

    /// Tables replaced but still held by requests (tests, diagnostics).
    pub fn retired_tables(&self) -> usize {
        self.retired.len()
    }

    /// Hands the new table's health check targets to the prober, which restarts its checks from them.
    fn publish_health_targets(&self, targets: Vec<CheckTarget>) {
        self.health.send_replace(Arc::new(targets));
    }

    /// Runs until `shutdown`: waits for provider changes, throttles, merges and applies.
    pub async fn run(mut self, mut feeds: Vec<ProviderFeed>, throttle: Duration) {
        let shutdown = self.shutdown.clone();
        // A provider whose channel closed keeps its last snapshot in every merge; we stop waiting on it.
        let mut open = vec![true; feeds.len()];
        loop {
            let live: Vec<usize> = (0..feeds.len())
                .zip(&open)
                .filter(|(_, o)| **o)
                .map(|(i, _)| i)
                .collect();
            if live.is_empty() {
                shutdown.cancelled().await;
                return;
            }
            let changed = futures_util::future::select_all(
                feeds
                    .iter_mut()
                    .zip(&open)
                    .filter(|(_, o)| **o)
                    .map(|(f, _)| Box::pin(f.rx.changed())),
            );
            let (result, pos, _) = tokio::select! {
                r = changed => r,
                _ = shutdown.cancelled() => return,
            };
            if result.is_err() {
                if shutdown.is_cancelled() {
                    return; // providers stop with us; nothing to report
                }
                if let Some(&idx) = live.get(pos) {
                    if let Some(o) = open.get_mut(idx) {
                        *o = false;
                    }
                    if let Some(f) = feeds.get(idx) {
                        tracing::warn!(provider = %f.name, "provider stopped; its last configuration is kept");
                    }
                }
                continue;
            }
            if !throttle.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(throttle) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            let input = merge(&mut feeds);
            self.apply_off_runtime(input).await;
        }
    }
}

/// One build, with everything it needs owned, so it can run on any thread.
struct BuildJob {
    input: BuildInput,
    ctx: Arc<CompileContext>,
    carried: Arc<CarriedState>,
    generation: u64,
    /// The current table, to log and record what changed.
    old: Arc<RoutingTable>,
    record_change: bool,
}

/// A finished build and its entry for the change log.
struct Built {
    compiled: Compiled,
    change: Option<ConfigChange>,
}

impl BuildJob {
    /// Compiles, logs the issues and the diff, and updates the reload metrics. Control plane, CPU only.
    fn run(self) -> Built {
        let compiled = compile(&self.input, &self.ctx, &self.carried, self.generation);
        if let Some(m) = &self.ctx.metrics {
            record_reload(m, &compiled.table);
        }
        for issue in &compiled.issues {
            tracing::error!(generation = self.generation, "{issue}");
        }
        log_diff(&self.old, &compiled.table);
        let change = self.record_change.then(|| {
            let mut change =
                ConfigChange::between(&self.old.status, &compiled.table.status, self.generation);
            change.add_server_changes(&self.old.input, &compiled.table.input);
            change
        });
        Built { compiled, change }
    }
}

/// Counts the reload and exposes the new table's certificates' expiry.
fn record_reload(m: &crate::metrics::Metrics, table: &RoutingTable) {
    m.config_reloads.inc();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    m.config_last_reload_success.set(now);
    let Some(tls) = &table.tls else {
        return;
    };
    // traefik_tls_certs_not_after{cn,serial,sans}: rebuilt per table, so removed certificates disappear.
    m.tls_certs_not_after.reset();
    for ck in tls.certs.certificates() {
        let Some(leaf) = ck.cert.first() else {
            continue;
        };
        let Ok((_, x)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
            continue;
        };
        let cn = x
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or("")
            .to_string();
        let serial = x.tbs_certificate.raw_serial_as_string();
        let mut sans = crate::tls::certs::names(leaf);
        sans.sort();
        m.tls_certs_not_after
            .with_label_values(&[cn.as_str(), serial.as_str(), sans.join(",").as_str()])
            .set(x.validity().not_after.timestamp() as f64);
    }
}

/// The latest snapshot of every feed, marking them seen. Shares the snapshots: nothing is copied.
pub fn merge(feeds: &mut [ProviderFeed]) -> BuildInput {
    let mut providers = BTreeMap::new();
    for f in feeds.iter_mut() {
        if let Some(cfg) = f.rx.borrow_and_update().as_ref() {
            providers.insert(f.name.clone(), cfg.clone());
        }
    }
    BuildInput { providers }
}

/// Logs what changed between two tables, for a reader: routers added, removed and changed, and per
/// service the servers added and removed. At INFO only when something a user would notice changed; a
/// rebuild that changes none of these (a provider re-publishing an equal-looking configuration, a
/// middleware detail) is one DEBUG line.
fn log_diff(old: &RoutingTable, new: &RoutingTable) {
    let d = diff(&old.status, &new.status);
    let servers = server_changes(&old.input, &new.input);
    let serving = new
        .entry_points
        .iter()
        .map(|e| e.http.len() + e.https.len())
        .sum::<usize>();
    if d == Diff::default() && servers.is_empty() {
        tracing::debug!(
            generation = new.generation,
            routes = serving,
            "routing table rebuilt; no router or server changed"
        );
        return;
    }
    let mut what: Vec<String> = Vec::new();
    for (label, names) in [
        ("added", &d.added),
        ("removed", &d.removed),
        ("changed", &d.changed),
    ] {
        if !names.is_empty() {
            what.push(format!("routers {label}: {}", names.join(", ")));
        }
    }
    what.extend(servers);
    tracing::info!(
        generation = new.generation,
        routes = serving,
        "routing table updated: {}",
        what.join("; ")
    );
}

/// Per HTTP service (`name@provider`), the servers added and removed between two inputs, one text each
/// (`service whoami@swarm: +http://10.0.1.5:80 -http://10.0.1.4:80`), in name order.
pub fn server_changes(old: &BuildInput, new: &BuildInput) -> Vec<String> {
    use std::collections::BTreeSet;
    let servers = |input: &BuildInput| {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (provider, cfg) in &input.providers {
            for (name, svc) in &cfg.http.services {
                let urls = svc
                    .load_balancer
                    .iter()
                    .flat_map(|lb| lb.servers.iter().map(|s| s.url.clone()))
                    .collect();
                m.insert(format!("{name}@{provider}"), urls);
            }
        }
        m
    };
    let (before, after) = (servers(old), servers(new));
    let empty = BTreeSet::new();
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let b = before.get(name).unwrap_or(&empty);
            let a = after.get(name).unwrap_or(&empty);
            let mut parts: Vec<String> = a.difference(b).map(|u| format!("+{u}")).collect();
            parts.extend(b.difference(a).map(|u| format!("-{u}")));
            (!parts.is_empty()).then(|| format!("service {name}: {}", parts.join(" ")))
        })
        .collect()
}

/// Router names added, removed and changed between two statuses.
#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    /// New routers.
    pub added: Vec<String>,
    /// Routers gone.
    pub removed: Vec<String>,
    /// Routers whose rule, service, priority, entrypoints or status changed.
    pub changed: Vec<String>,
}

/// Computes the router diff between two statuses.
pub fn diff(old: &TableStatus, new: &TableStatus) -> Diff {
    let mut d = Diff::default();
    for (name, st) in &new.routers {
        match old.routers.get(name) {
            None => d.added.push(name.clone()),
            Some(o) if o != st => d.changed.push(name.clone()),
            _ => {}
        }
    }
    for name in old.routers.keys() {
        if !new.routers.contains_key(name) {
            d.removed.push(name.clone());
        }
    }
    d
}

/// How many configuration changes [`ChangeLog`] keeps.
pub const CHANGE_LOG_LEN: usize = 20;

/// The last configuration changes, oldest first; written by the builder, read by the admin API.
pub type ChangeLog = Arc<std::sync::Mutex<std::collections::VecDeque<ConfigChange>>>;

/// One stored table's difference from the previous one, per kind of item.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigChange {
    /// Generation of the new table.
    pub generation: u64,
    /// When it was stored (Unix milliseconds).
    #[serde(rename = "atUnixMs")]
    pub at_unix_ms: u64,
    /// Routers.
    pub routers: ItemDiff,
    /// Services.
    pub services: ItemDiff,
    /// Middlewares.
    pub middlewares: ItemDiff,
}

/// Items added, removed and changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ItemDiff {
    /// New items.
    pub added: Vec<String>,
    /// Items gone.
    pub removed: Vec<String>,
    /// Items that changed, each with what changed (`rule: a → b`).
    pub changed: Vec<(String, Vec<String>)>,
}

impl ConfigChange {
    /// Computes the change between two statuses.
    pub fn between(old: &TableStatus, new: &TableStatus, generation: u64) -> ConfigChange {
        ConfigChange {
            generation,
            at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            routers: item_diff(&old.routers, &new.routers),
            services: item_diff(&old.services, &new.services),
            middlewares: item_diff(&old.middlewares, &new.middlewares),
        }
    }

    /// Adds services whose server list changed (their status alone does not show it).
    pub fn add_server_changes(&mut self, old: &BuildInput, new: &BuildInput) {
        let servers = |input: &BuildInput| -> BTreeMap<String, Vec<String>> {
            let mut out = BTreeMap::new();
            for (provider, cfg) in &input.providers {
                for (name, svc) in &cfg.http.services {
                    if let Some(lb) = &svc.load_balancer {
                        out.insert(
                            crate::dynamic::qualify(name, provider),
                            lb.servers.iter().map(|s| s.url.clone()).collect(),
                        );
                    }
                }
            }
            out
        };
        let (before, after) = (servers(old), servers(new));
        for (name, now) in &after {
            let Some(was) = before.get(name) else {
                continue;
            };
            if was == now {
                continue;
            }
            let line = format!("servers: {} → {}", was.join(", "), now.join(", "));
            match self.services.changed.iter_mut().find(|(n, _)| n == name) {
                Some((_, what)) => what.push(line),
                None => self.services.changed.push((name.clone(), vec![line])),
            }
        }
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        [&self.routers, &self.services, &self.middlewares]
            .iter()
            .all(|d| d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty())
    }
}

fn item_diff(
    old: &BTreeMap<String, super::ItemStatus>,
    new: &BTreeMap<String, super::ItemStatus>,
) -> ItemDiff {
    let mut d = ItemDiff::default();
    for (name, st) in new {
        match old.get(name) {
            None => d.added.push(name.clone()),
            Some(o) if o != st => {
                let mut what = Vec::new();
                let mut field = |label: &str, a: String, b: String| {
                    if a != b {
                        what.push(format!("{label}: {a} → {b}"));
                    }
                };
                field("status", o.status.to_string(), st.status.to_string());
                field(
                    "rule",
                    format!("{:?}", o.rule.as_deref().unwrap_or("")),
                    format!("{:?}", st.rule.as_deref().unwrap_or("")),
                );
                field(
                    "service",
                    o.service.clone().unwrap_or_default(),
                    st.service.clone().unwrap_or_default(),
                );
                field(
                    "entryPoints",
                    o.entry_points.join(","),
                    st.entry_points.join(","),
                );
                field(
                    "priority",
                    o.priority.map(|p| p.to_string()).unwrap_or_default(),
                    st.priority.map(|p| p.to_string()).unwrap_or_default(),
                );
                field("error", o.errors.join("; "), st.errors.join("; "));
                d.changed.push((name.clone(), what));
            }
            _ => {}
        }
    }
    for name in old.keys() {
        if !new.contains_key(name) {
            d.removed.push(name.clone());
        }
    }
    d
}

#[cfg(test)]
mod log_tests {
    use super::*;
    use crate::dynamic::{Configuration, LoadBalancer, Server, Service};

    fn input(services: &[(&str, &[&str])]) -> BuildInput {
        let mut cfg = Configuration::default();
        for (name, urls) in services {
            let lb = LoadBalancer {
                servers: urls
                    .iter()
                    .map(|u| Server {
                        url: u.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            cfg.http.services.insert(
                name.to_string(),
                Service {
                    load_balancer: Some(lb),
                    ..Default::default()
                },
            );
        }
        let mut providers = BTreeMap::new();
        providers.insert("swarm".to_string(), Arc::new(cfg));
        BuildInput { providers }
    }

    #[test]
    fn server_changes_name_the_servers_added_and_removed_per_service() {
        let a = input(&[
            ("web", &["http://10.0.0.1:80", "http://10.0.0.2:80"]),
            ("db", &[]),
        ]);
        let b = input(&[
            ("web", &["http://10.0.0.2:80", "http://10.0.0.3:80"]),
            ("api", &["http://10.0.0.9:8080"]),
        ]);
        assert_eq!(
            server_changes(&a, &b),
            vec![
                "service api@swarm: +http://10.0.0.9:8080".to_string(),
                "service web@swarm: +http://10.0.0.3:80 -http://10.0.0.1:80".to_string(),
            ]
        );
        assert!(server_changes(&a, &a).is_empty());
        assert!(server_changes(&b, &b.clone()).is_empty());
    }
}
