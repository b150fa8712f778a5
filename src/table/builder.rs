//! The one task that turns provider snapshots into routing tables.
//!
//! Providers publish whole configurations on `watch` channels; this task waits for any change, lets bursts
//! settle for `providersThrottleDuration`, merges the latest value of every provider, and — unless the merged
//! input equals the current table's — compiles and stores a new table in the [`Store`], logs a short diff, and
//! restarts the active health checks. Compilation never fails as a whole: bad items are dropped and logged,
//! so the previous table is replaced only by one that serves everything that is valid.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::compile::{compile, BuildInput, CompileContext, HealthRegistry};
use super::{RoutingTable, Store, TableStatus};
use crate::balance::health::spawn_checker;
use crate::dynamic::Configuration;

/// A provider's output: its latest whole configuration (`None` until its first read).
pub type Snapshot = Option<Arc<Configuration>>;

/// Receiving end of one provider's snapshots.
pub struct ProviderFeed {
    /// Provider name used to qualify its items (`file`, `docker`, `swarm`).
    pub name: String,
    /// Its snapshots.
    pub rx: watch::Receiver<Snapshot>,
}

/// Owns the control-plane state of table building.
pub struct TableBuilder {
    store: Store,
    ctx: CompileContext,
    registry: HealthRegistry,
    generation: u64,
    checks: Option<CancellationToken>,
    shutdown: CancellationToken,
    wanted: watch::Sender<Arc<Vec<crate::tls::CertRequest>>>,
}

impl TableBuilder {
    /// Creates the builder around an existing store; `shutdown` also stops the health checkers it starts.
    pub fn new(store: Store, ctx: CompileContext, shutdown: CancellationToken) -> TableBuilder {
        TableBuilder {
            store,
            ctx,
            registry: HealthRegistry::default(),
            generation: 0,
            checks: None,
            shutdown,
            wanted: watch::Sender::new(Arc::new(Vec::new())),
        }
    }

    /// Certificates the current table's routers want from ACME resolvers; updated after every build
    /// (only when the set changes). The ACME manager subscribes here.
    pub fn wanted_certificates(&self) -> watch::Receiver<Arc<Vec<crate::tls::CertRequest>>> {
        self.wanted.subscribe()
    }

    /// Compiles and stores a table for `input`, unless it equals the input of the current table.
    /// Returns whether a new table was stored.
    pub fn apply(&mut self, input: BuildInput) -> bool {
        if self.generation > 0 && *self.store.load().input == input {
            tracing::debug!("configuration unchanged; routing table kept");
            return false;
        }
        self.generation += 1;
        let compiled = compile(&input, &self.ctx, &mut self.registry, self.generation);
        if let Some(m) = &self.ctx.metrics {
            m.config_reloads.inc();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            m.config_last_reload_success.set(now);
        }
        for issue in &compiled.issues {
            tracing::error!(generation = self.generation, "{issue}");
        }
        let old = self.store.load_full();
        log_diff(&old, &compiled.table);
        self.store.store(Arc::new(compiled.table));
        let wanted = compiled.cert_requests;
        self.wanted.send_if_modified(|cur| {
            if **cur == wanted {
                false
            } else {
                *cur = Arc::new(wanted);
                true
            }
        });
        if let Some(old) = self.checks.take() {
            old.cancel();
        }
        if !compiled.health_targets.is_empty() {
            let token = self.shutdown.child_token();
            spawn_checker(compiled.health_targets, token.clone());
            self.checks = Some(token);
        }
        true
    }

    /// Runs until `shutdown`: waits for provider changes, throttles, merges and applies.
    pub async fn run(mut self, mut feeds: Vec<ProviderFeed>, throttle: Duration) {
        let shutdown = self.shutdown.clone();
        // A provider whose channel closed keeps its last snapshot in every merge; we stop waiting on it.
        let mut closed = vec![false; feeds.len()];
        loop {
            let live: Vec<usize> = (0..feeds.len()).filter(|&i| !closed[i]).collect();
            if live.is_empty() {
                shutdown.cancelled().await;
                return;
            }
            let changed = futures_util::future::select_all(
                feeds
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| !closed[*i])
                    .map(|(_, f)| Box::pin(f.rx.changed())),
            );
            let (result, pos, _) = tokio::select! {
                r = changed => r,
                _ = shutdown.cancelled() => return,
            };
            if result.is_err() {
                let idx = live[pos];
                closed[idx] = true;
                tracing::warn!(provider = %feeds[idx].name, "provider stopped; its last configuration is kept");
                continue;
            }
            if !throttle.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(throttle) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            let input = merge(&mut feeds);
            self.apply(input);
        }
    }
}

/// The latest snapshot of every feed, marking them seen.
pub fn merge(feeds: &mut [ProviderFeed]) -> BuildInput {
    let mut providers = BTreeMap::new();
    for f in feeds.iter_mut() {
        if let Some(cfg) = f.rx.borrow_and_update().as_ref() {
            providers.insert(f.name.clone(), (**cfg).clone());
        }
    }
    BuildInput { providers }
}

/// Logs routers added, removed and changed between two tables (sozu's `ConfigState::diff`, briefly).
fn log_diff(old: &RoutingTable, new: &RoutingTable) {
    let d = diff(&old.status, &new.status);
    let serving = new
        .entry_points
        .iter()
        .map(|e| e.http.len() + e.https.len())
        .sum::<usize>();
    tracing::info!(
        generation = new.generation,
        routes = serving,
        added = ?d.added,
        removed = ?d.removed,
        changed = ?d.changed,
        "routing table updated"
    );
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
