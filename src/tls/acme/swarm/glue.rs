//! The manager's calls that differ between the file store and the Swarm store, kept here so the manager
//! (`acme/mod.rs`) stays one code path: settings, opening the store at start-up, the storage "stamp" and
//! read, the issuance lock (lock file or lease), the read-modify-write, and the challenge propagation delay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::lease::{self, Acquired};
use super::seal::Sealer;
use super::store::{SwarmAnswers, SwarmStore};
use super::{names, SwarmSettings};
use crate::config::types::Acme as AcmeConfig;
use crate::provider::docker::client::DockerClient;
use crate::tls::acme::challenge_store::{self, RemoteAnswers};
use crate::tls::acme::storage::{self, AcmeFile, StorageError};
use crate::tls::acme::{cluster, order, Acme, AcmeError, ResolverSettings};

/// The Swarm stores of the manager, by storage key (`swarm://<prefix>`).
pub type Swarms = BTreeMap<PathBuf, Arc<SwarmStore>>;

/// How long the ordering replica waits between publishing an answer and telling the CA: the answer is in
/// Raft when the create returns; the other replicas load it on the config event (milliseconds), or at the
/// latest at their periodic resync when events are lost. This is the normal path; a replica the CA reaches
/// before it loaded the answer reads through on the miss (an immediate, bounded resync: `tls::challenge`).
pub const SWARM_PROPAGATION: Duration = Duration::from_secs(1);

/// The resolver's Swarm settings when its storage is `swarm://…`.
pub fn resolver_swarm(
    name: &str,
    a: &AcmeConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SwarmSettings>, AcmeError> {
    let storage = a.storage.as_deref().unwrap_or("");
    match super::settings(storage, a.storage_key_file.as_deref(), env) {
        None => Ok(None),
        Some(Ok(s)) => {
            // The validation bound the order uses (`certificateTimeout`, 60 s at least, as the manager reads it).
            let validation = a
                .certificate_timeout
                .non_zero()
                .unwrap_or(Duration::from_secs(30))
                .max(Duration::from_secs(60));
            Ok(Some(s.with_certificate_timeout(validation, env)))
        }
        Some(Err(reason)) => Err(AcmeError::Invalid {
            resolver: name.to_string(),
            key: "storage",
            reason,
        }),
    }
}

/// Is `storage` a Swarm store (its "path" is the `swarm://` URL itself)?
pub fn is_swarm(storage: &str) -> bool {
    storage.starts_with(super::SCHEME)
}

/// Opens (or reuses) the store of `r`: reads the key file (refused clearly without it), builds the Docker
/// client, and — on a multi-threaded runtime — reads the store once, so stored certificates are served
/// from the first request. Returns the store's data.
pub fn open_store(
    r: &ResolverSettings,
    sw: &SwarmSettings,
    swarms: &mut Swarms,
    changed: &Arc<Notify>,
) -> Result<AcmeFile, AcmeError> {
    if let Some(s) = swarms.get(&r.storage) {
        return Ok(s.data());
    }
    let invalid = |reason: String| AcmeError::Invalid {
        resolver: r.name.clone(),
        key: "storage",
        reason,
    };
    let sealer = Sealer::from_file(&sw.key_file).map_err(|e| invalid(e.to_string()))?;
    let mut client = DockerClient::new(&sw.endpoint, None, Duration::from_secs(30))
        .map_err(|e| invalid(e.to_string()))?;
    let multi_thread = tokio::runtime::Handle::try_current()
        .ok()
        .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if let Some(h) = &multi_thread {
        // Agree on the API version (GET /version), so an older engine is spoken to in its version.
        client = tokio::task::block_in_place(|| h.block_on(client.connect()))
            .map_err(|e| invalid(e.to_string()))?;
    }
    let store = Arc::new(SwarmStore::new(client, sw.clone(), sealer, changed.clone()));
    if let Some(h) = &multi_thread {
        let s = store.clone();
        tokio::task::block_in_place(|| h.block_on(s.resync()))
            .map_err(|e| invalid(e.to_string()))?;
    }
    let data = store.data();
    swarms.insert(r.storage.clone(), store);
    Ok(data)
}

/// The stores as challenge publishers.
pub fn remotes(swarms: &Swarms) -> Vec<Arc<dyn RemoteAnswers>> {
    swarms
        .iter()
        .map(|(key, store)| {
            Arc::new(SwarmAnswers {
                store: store.clone(),
                key: key.clone(),
            }) as Arc<dyn RemoteAnswers>
        })
        .collect()
}

/// The change stamp of a storage: the file's mtime and size, or the Swarm store's generation.
pub fn stamp_of(
    swarms: &Swarms,
    path: &Path,
    file_stamp: impl Fn(&Path) -> Option<(SystemTime, u64)>,
) -> Option<(SystemTime, u64)> {
    match swarms.get(path) {
        Some(s) => Some((UNIX_EPOCH, s.generation())),
        None => file_stamp(path),
    }
}

/// Reads a storage: the file, or the Swarm store's cache.
pub fn load_of(swarms: &Swarms, path: &Path) -> Result<AcmeFile, StorageError> {
    match swarms.get(path) {
        Some(s) => Ok(s.data()),
        None => storage::load(path),
    }
}

/// The issuance lock of a (resolver, names): a lock file or a Swarm lease.
#[derive(Debug)]
pub enum IssueGuard {
    /// Lock file (shared-volume store), touched while held.
    File(cluster::LockGuard),
    /// Swarm lease.
    Lease(Box<lease::LeaseGuard>),
}

impl IssueGuard {
    /// Cancelled when the lock runs out (leases only): the holder stops its order.
    pub fn expired(&self) -> CancellationToken {
        match self {
            IssueGuard::File(_) => CancellationToken::new(),
            IssueGuard::Lease(l) => l.expired(),
        }
    }
}

impl Acme {
    /// Starts the watchers of the Swarm stores (events + resync) in `tasks`.
    pub(in crate::tls::acme) fn start_swarm(
        &self,
        cancel: &CancellationToken,
        tasks: &mut crate::supervisor::Supervisor,
    ) {
        for store in self.swarm.values() {
            tasks.spawn(
                "ACME swarm storage watcher",
                store.clone().watch(self.challenges.clone(), cancel.clone()),
            );
        }
    }

    /// Takes the issuance lock of (`r`, `names`) for `owner`; `None` when another replica holds it. Once
    /// held, the storage is read again, so a certificate another replica just stored is seen.
    pub(in crate::tls::acme) async fn issuance_lock(
        &mut self,
        r: &ResolverSettings,
        names_: &[String],
        owner: &str,
    ) -> Result<Option<IssueGuard>, order::OrderError> {
        let fail = |e: String| order::OrderError::Account(e);
        let Some(store) = self.swarm.get(&r.storage).cloned() else {
            let locks = cluster::locks_dir(&r.storage_dir);
            let lock_name = cluster::issuance_lock_name(&r.name, names_);
            let guard = cluster::try_lock(&locks, &lock_name, owner, &self.timing.locks)
                .map_err(|e| fail(e.to_string()))?;
            return Ok(guard.map(|mut g| {
                g.keep_alive(self.timing.locks.heartbeat);
                IssueGuard::File(g)
            }));
        };
        let sw = store.settings().clone();
        let name = names::lease(&sw.prefix, &r.name, names_);
        let labels = |exp| lease::lease_labels(&sw.prefix, &r.name, names_, owner, exp);
        match lease::acquire(store.client(), &name, labels, owner, sw.lease_ttl)
            .await
            .map_err(|e| fail(e.to_string()))?
        {
            Acquired::Busy(_) => Ok(None),
            Acquired::Held(g) => {
                store.resync().await.map_err(|e| fail(e.to_string()))?;
                Ok(Some(IssueGuard::Lease(g)))
            }
        }
    }

    /// Read-modify-write of a Swarm store: `change` applied to the resolver's current data; what it adds
    /// (a certificate generation, an account) is created as objects. The issuance lease serializes writers
    /// of a (resolver, names); accounts are created once per resolver (first-created wins on read).
    pub(in crate::tls::acme) async fn update_swarm(
        &mut self,
        store: &Arc<SwarmStore>,
        r: &ResolverSettings,
        change: impl Fn(&mut storage::ResolverData),
    ) -> Result<(), order::OrderError> {
        let fail =
            |e: String| order::OrderError::Account(format!("storage {}: {e}", r.storage.display()));
        store.resync().await.map_err(|e| fail(e.to_string()))?;
        let current = store
            .data()
            .resolvers
            .get(&r.name)
            .cloned()
            .unwrap_or_default();
        let mut next = current.clone();
        change(&mut next);
        store
            .write_changes(&r.name, &current, &next)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let state = self.files.entry(r.storage.clone()).or_default();
        state.stamp = Some((UNIX_EPOCH, store.generation()));
        state.data = store.data();
        Ok(())
    }

    /// How long to wait between publishing a challenge answer and telling the CA.
    pub(in crate::tls::acme) fn propagation(&self, r: &ResolverSettings) -> Duration {
        if self.swarm.contains_key(&r.storage) {
            SWARM_PROPAGATION
        } else {
            challenge_store::propagation_delay(self.timing.challenge_poll)
        }
    }
}
