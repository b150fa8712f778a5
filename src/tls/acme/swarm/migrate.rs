//! `swarmgate acme import acme.json --storage swarm://acme` and `swarmgate acme export --storage …`: a
//! Traefik (or swarmgate) `acme.json` moves into a Swarm store and back without re-issuing anything.
//!
//! Import writes every certificate the store does not hold yet (one object each, key sealed) and
//! swarmgate's own account (`SwarmgateAccount`) when the store has none; Traefik's RSA account cannot sign
//! for swarmgate's ACME client (see `storage`), so it is not imported — a new account is registered at the
//! first order. Export writes the store's certificates and account as an `acme.json` (mode 0600, atomic).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::seal::Sealer;
use super::store::{SwarmStore, SwarmStoreError};
use crate::provider::docker::client::DockerClient;
use crate::tls::acme::storage::{self, AcmeFile};

/// Why a migration failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// `--storage` is not `swarm://<prefix>`.
    #[error("--storage: {0}")]
    Storage(String),
    /// The key file cannot be used.
    #[error(transparent)]
    Key(#[from] super::seal::SealError),
    /// The Docker API cannot be used.
    #[error(transparent)]
    Docker(#[from] crate::provider::docker::client::DockerError),
    /// Reading or writing the store failed.
    #[error(transparent)]
    Store(#[from] SwarmStoreError),
    /// Reading or writing the file failed.
    #[error(transparent)]
    File(#[from] storage::StorageError),
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Certificates written.
    pub certificates: usize,
    /// Certificates already in the store.
    pub unchanged: usize,
    /// Accounts written.
    pub accounts: usize,
    /// Resolvers whose only account is Traefik's (RSA): not imported.
    pub traefik_accounts_skipped: usize,
}

/// Opens `storage` (`swarm://<prefix>`) with the key file and the Docker endpoint (`DOCKER_HOST`, else the
/// default socket), and reads it.
pub async fn open(storage: &str, key_file: Option<&str>) -> Result<Arc<SwarmStore>, MigrateError> {
    let env = |k: &str| std::env::var(k).ok();
    let sw = match super::settings(storage, key_file, &env) {
        None => {
            return Err(MigrateError::Storage(format!(
                "`{storage}` is not swarm://<prefix>"
            )))
        }
        Some(Err(e)) => return Err(MigrateError::Storage(e)),
        Some(Ok(s)) => s,
    };
    let sealer = Sealer::from_file(&sw.key_file)?;
    let client = DockerClient::new(&sw.endpoint, None, Duration::from_secs(30))?
        .connect()
        .await?;
    let store = Arc::new(SwarmStore::new(
        client,
        sw,
        sealer,
        Arc::new(tokio::sync::Notify::new()),
    ));
    store.resync().await?;
    Ok(store)
}

/// Imports `file` into `store` (see the module doc).
pub async fn import(store: &SwarmStore, file: &AcmeFile) -> Result<Imported, MigrateError> {
    let mut done = Imported::default();
    for (resolver, data) in &file.resolvers {
        let current = store
            .data()
            .resolvers
            .get(resolver)
            .cloned()
            .unwrap_or_default();
        let mut next = current.clone();
        if current.swarmgate_account.is_none() {
            if let Some(a) = &data.swarmgate_account {
                next.swarmgate_account = Some(a.clone());
                done.accounts += 1;
            } else if data.account.as_ref().is_some_and(|a| !a.is_null()) {
                done.traefik_accounts_skipped += 1;
            }
        }
        for c in &data.certificates {
            if current.certificates.contains(c) {
                done.unchanged += 1;
            } else {
                next.certificates.push(c.clone());
                done.certificates += 1;
            }
        }
        store.write_changes(resolver, &current, &next).await?;
    }
    Ok(done)
}

/// Reads `path` (Traefik's format; permissions checked as Traefik does) and imports it.
pub async fn import_file(store: &SwarmStore, path: &Path) -> Result<Imported, MigrateError> {
    let file = storage::load(path)?;
    import(store, &file).await
}

/// The store's content as an `acme.json`.
pub fn export(store: &SwarmStore) -> AcmeFile {
    store.data()
}

/// Writes the store's content to `path` (0600, atomic).
pub fn export_file(store: &SwarmStore, path: &Path) -> Result<(), MigrateError> {
    Ok(storage::save(path, &export(store))?)
}
