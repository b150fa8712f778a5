//! One `swarm://<prefix>` store as every replica sees it: a cache of the store's objects, decoded into the
//! same [`AcmeFile`] the file backend reads (so orders, renewal and publication are shared code), refreshed
//! by Docker config events and a periodic resync; and the writes (certificates, account, challenge answers).
//!
//! Reading is one `GET /configs?filters={"label":["swarmgate.acme.store=<prefix>"]}` (configs are returned
//! with their data). Decoding picks, per (resolver, names), the certificate with the latest notAfter (ties:
//! the newest object), and per resolver the first-created account, so every replica agrees on one. A
//! certificate whose sealed key does not open (another key file) is skipped with one warning.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::names::{self, kind};
use super::seal::Sealer;
use super::SwarmSettings;
use crate::provider::docker::client::{DockerClient, DockerError};
use crate::provider::docker::configs::{self, ConfigObject};
use crate::tls::acme::challenge_store::{RemoteAnswers, SharedAnswers, StoredChallenges};
use crate::tls::acme::renewal;
use crate::tls::acme::storage::{
    AcmeFile, GoBytes, Registration, ResolverData, StoredAccount, StoredCertificate, StoredDomain,
};
use crate::tls::challenge::ResyncDemand;

/// Swarm limits a config to 500 KB (1000 KB in recent engines; the lower bound is kept).
pub const MAX_OBJECT_BYTES: usize = 500 * 1024;

/// Why the Swarm store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SwarmStoreError {
    /// The Docker API failed.
    #[error("swarm storage: {0}")]
    Docker(#[from] DockerError),
    /// A key could not be sealed.
    #[error("swarm storage: {0}")]
    Seal(#[from] super::seal::SealError),
    /// An object would exceed Swarm's size limit.
    #[error("swarm storage: {what} is {len} bytes, over Swarm's {MAX_OBJECT_BYTES}-byte limit")]
    TooLarge {
        /// Which object.
        what: String,
        /// Its size.
        len: usize,
    },
    /// JSON encoding failed.
    #[error("swarm storage: {0}")]
    Json(#[from] serde_json::Error),
}

/// A certificate object's data.
#[derive(Debug, Serialize, Deserialize)]
struct CertPayload {
    resolver: String,
    domain: StoredDomain,
    /// PEM chain (public).
    certificate: GoBytes,
    /// Sealed PEM key.
    #[serde(rename = "sealedKey")]
    sealed_key: GoBytes,
    #[serde(rename = "Store", default)]
    store: String,
}

/// An account object's data.
#[derive(Debug, Serialize, Deserialize)]
struct AccountPayload {
    resolver: String,
    #[serde(rename = "Email", default)]
    email: String,
    #[serde(rename = "Registration", default)]
    registration: Option<Registration>,
    /// Sealed PKCS#8 key.
    #[serde(rename = "sealedPrivateKey")]
    sealed_private_key: GoBytes,
    #[serde(rename = "KeyType", default)]
    key_type: String,
}

/// A challenge answer object's data.
#[derive(Debug, Serialize, Deserialize)]
struct AnswerPayload {
    /// Token (HTTP-01) or domain (TLS-ALPN-01).
    name: String,
    #[serde(rename = "keyAuthorization")]
    key_authorization: String,
}

/// Certificate objects by (resolver, set hash): (id, Raft index) of every generation.
type Generations = BTreeMap<(String, String), Vec<(String, u64)>>;

#[derive(Default)]
struct Cache {
    data: AcmeFile,
    answers: SharedAnswers,
    generations: Generations,
    /// Objects already warned about (undecodable).
    warned: HashSet<String>,
}

/// One Swarm store (see the module doc).
pub struct SwarmStore {
    client: DockerClient,
    settings: SwarmSettings,
    sealer: Sealer,
    cache: Mutex<Cache>,
    generation: AtomicU64,
    changed: Arc<Notify>,
}

impl std::fmt::Debug for SwarmStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SwarmStore(swarm://{})", self.settings.prefix)
    }
}

impl SwarmStore {
    /// A store over `client` (no I/O yet).
    /// `changed` is notified (one permit) after each resync that changed something.
    pub fn new(
        client: DockerClient,
        settings: SwarmSettings,
        sealer: Sealer,
        changed: Arc<Notify>,
    ) -> SwarmStore {
        SwarmStore {
            client,
            settings,
            sealer,
            cache: Mutex::new(Cache::default()),
            generation: AtomicU64::new(0),
            changed,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &SwarmSettings {
        &self.settings
    }

    /// The Docker client.
    pub fn client(&self) -> &DockerClient {
        &self.client
    }

    /// Notified after each resync that changed the decoded data or the answers.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Bumped on every change of the decoded data (the manager's "stamp").
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The decoded data as of the last resync.
    pub fn data(&self) -> AcmeFile {
        self.cache().data.clone()
    }

    /// The challenge answers as of the last resync.
    pub fn answers(&self) -> SharedAnswers {
        self.cache().answers.clone()
    }

    fn label(&self) -> String {
        format!("{}={}", names::STORE, self.settings.prefix)
    }

    fn labels(&self, k: &str, resolver: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (names::STORE.to_string(), self.settings.prefix.clone()),
            (names::KIND.to_string(), k.to_string()),
            (names::RESOLVER.to_string(), resolver.to_string()),
        ])
    }

    /// Reads the whole store; returns whether the data or the answers changed.
    pub async fn resync(&self) -> Result<bool, SwarmStoreError> {
        let mut objects = configs::list(&self.client, &self.label()).await?;
        self.remove_expired_answers(&mut objects).await;
        let mut cache = self.cache();
        let (data, answers, generations) = self.decode(&objects, &mut cache.warned);
        let changed = data != cache.data || answers != cache.answers;
        cache.generations = generations;
        if changed {
            cache.data = data;
            cache.answers = answers;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        drop(cache);
        if changed {
            self.changed.notify_one();
        }
        Ok(changed)
    }

    /// Challenge answers outlive their order only when the ordering replica died: each carries an expiry
    /// (`answer_ttl` from its creation), after which any replica removes it (by id).
    async fn remove_expired_answers(&self, objects: &mut Vec<ConfigObject>) {
        let now = super::lease::now_ms();
        let expired = |o: &ConfigObject| {
            matches!(
                o.labels.get(names::KIND).map(String::as_str),
                Some(kind::HTTP01 | kind::TLS_ALPN01)
            ) && o
                .labels
                .get(names::EXPIRES)
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|e| e <= now)
        };
        let (old, keep): (Vec<ConfigObject>, Vec<ConfigObject>) =
            std::mem::take(objects).into_iter().partition(expired);
        *objects = keep;
        for o in old {
            match configs::remove(&self.client, &o.id).await {
                Ok(_) => {
                    tracing::info!(config = %o.name, "ACME swarm storage: expired challenge answer removed (its replica ended without withdrawing it)")
                }
                Err(e) => {
                    tracing::warn!(config = %o.name, "ACME swarm storage: expired answer not removed: {e}")
                }
            }
        }
    }

    /// Decodes the store's objects (see the module doc).
    fn decode(
        &self,
        objects: &[ConfigObject],
        warned: &mut HashSet<String>,
    ) -> (AcmeFile, SharedAnswers, Generations) {
        let mut best: BTreeMap<(String, String), (std::time::SystemTime, u64, StoredCertificate)> =
            BTreeMap::new();
        let mut accounts: BTreeMap<String, (u64, StoredAccount)> = BTreeMap::new();
        let mut answers = SharedAnswers::default();
        let mut generations = Generations::new();
        let mut sorted: Vec<&ConfigObject> = objects.iter().collect();
        sorted.sort_by_key(|o| o.index);
        for o in sorted {
            let k = o.labels.get(names::KIND).map(String::as_str).unwrap_or("");
            let warn = |warned: &mut HashSet<String>, why: String| {
                if warned.insert(o.id.clone()) {
                    tracing::warn!(config = %o.name, "ACME swarm storage: object skipped: {why}");
                }
            };
            match k {
                kind::CERT => match self.decode_cert(o) {
                    Ok((resolver, cert)) => {
                        let set = names::set_hash(&resolver, &cert.domain.names());
                        generations
                            .entry((resolver.clone(), set.clone()))
                            .or_default()
                            .push((o.id.clone(), o.index));
                        let not_after = renewal::cert_info(&cert.certificate.0)
                            .map(|i| i.not_after)
                            .unwrap_or(std::time::UNIX_EPOCH);
                        let slot = best.entry((resolver, set));
                        match slot {
                            std::collections::btree_map::Entry::Occupied(mut e) => {
                                if (not_after, o.index) >= (e.get().0, e.get().1) {
                                    e.insert((not_after, o.index, cert));
                                }
                            }
                            std::collections::btree_map::Entry::Vacant(e) => {
                                e.insert((not_after, o.index, cert));
                            }
                        }
                    }
                    Err(why) => warn(warned, why),
                },
                kind::ACCOUNT => match self.decode_account(o) {
                    Ok((resolver, acct)) => {
                        accounts.entry(resolver).or_insert((o.index, acct));
                    }
                    Err(why) => warn(warned, why),
                },
                kind::HTTP01 | kind::TLS_ALPN01 => {
                    match serde_json::from_slice::<AnswerPayload>(&o.data) {
                        Ok(a) => {
                            let map = if k == kind::HTTP01 {
                                &mut answers.http01
                            } else {
                                &mut answers.tls_alpn01
                            };
                            map.insert(a.name, a.key_authorization);
                        }
                        Err(e) => warn(warned, e.to_string()),
                    }
                }
                _ => {}
            }
        }
        let mut data = AcmeFile::default();
        for ((resolver, _), (_, _, cert)) in best {
            data.resolvers
                .entry(resolver)
                .or_default()
                .certificates
                .push(cert);
        }
        for (resolver, (_, acct)) in accounts {
            data.resolvers
                .entry(resolver)
                .or_default()
                .swarmgate_account = Some(acct);
        }
        (data, answers, generations)
    }

    fn decode_cert(&self, o: &ConfigObject) -> Result<(String, StoredCertificate), String> {
        let p: CertPayload = serde_json::from_slice(&o.data).map_err(|e| e.to_string())?;
        let ctx = names::cert_context(&p.resolver, &p.domain.names());
        let key = self
            .sealer
            .open(&p.sealed_key.0, &ctx)
            .map_err(|e| e.to_string())?;
        Ok((
            p.resolver,
            StoredCertificate {
                domain: p.domain,
                certificate: p.certificate,
                key: GoBytes(key),
                store: p.store,
            },
        ))
    }

    fn decode_account(&self, o: &ConfigObject) -> Result<(String, StoredAccount), String> {
        let p: AccountPayload = serde_json::from_slice(&o.data).map_err(|e| e.to_string())?;
        let key = self
            .sealer
            .open(
                &p.sealed_private_key.0,
                &names::account_context(&p.resolver),
            )
            .map_err(|e| e.to_string())?;
        Ok((
            p.resolver,
            StoredAccount {
                email: p.email,
                registration: p.registration,
                private_key: GoBytes(key),
                key_type: p.key_type,
            },
        ))
    }

    /// Stores a certificate generation, then removes the older generations of the same (resolver, names).
    pub async fn put_certificate(
        &self,
        resolver: &str,
        cert: &StoredCertificate,
    ) -> Result<(), SwarmStoreError> {
        let names_ = cert.domain.names();
        let sealed = self
            .sealer
            .seal(&cert.key.0, &names::cert_context(resolver, &names_))?;
        let payload = serde_json::to_vec(&CertPayload {
            resolver: resolver.to_string(),
            domain: cert.domain.clone(),
            certificate: cert.certificate.clone(),
            sealed_key: GoBytes(sealed),
            store: cert.store.clone(),
        })?;
        if payload.len() > MAX_OBJECT_BYTES {
            return Err(SwarmStoreError::TooLarge {
                what: format!("certificate {names_:?}"),
                len: payload.len(),
            });
        }
        let name = names::cert(
            &self.settings.prefix,
            resolver,
            &names_,
            &cert.certificate.0,
        );
        let mut labels = self.labels(kind::CERT, resolver);
        labels.insert(names::DOMAINS.into(), names_.join(","));
        if let Ok(i) = renewal::cert_info(&cert.certificate.0) {
            labels.insert(names::NOT_AFTER.into(), renewal::rfc3339(i.not_after));
        }
        let created = configs::create(&self.client, &name, &labels, &payload).await?;
        self.resync().await?;
        if let configs::Created::Id(id) = created {
            self.remove_older(resolver, &names_, &id).await;
        }
        Ok(())
    }

    /// Removes the generations of (resolver, names) other than `keep` (by id).
    async fn remove_older(&self, resolver: &str, names_: &[String], keep: &str) {
        let set = names::set_hash(resolver, names_);
        let old: Vec<String> = self
            .cache()
            .generations
            .get(&(resolver.to_string(), set))
            .map(|g| {
                g.iter()
                    .filter(|(id, _)| id != keep)
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        for id in old {
            if let Err(e) = configs::remove(&self.client, &id).await {
                tracing::warn!("ACME swarm storage: old certificate {id} not removed: {e}");
            }
        }
    }

    /// Stores an account.
    pub async fn put_account(
        &self,
        resolver: &str,
        acct: &StoredAccount,
    ) -> Result<(), SwarmStoreError> {
        let sealed = self
            .sealer
            .seal(&acct.private_key.0, &names::account_context(resolver))?;
        let payload = serde_json::to_vec(&AccountPayload {
            resolver: resolver.to_string(),
            email: acct.email.clone(),
            registration: acct.registration.clone(),
            sealed_private_key: GoBytes(sealed),
            key_type: acct.key_type.clone(),
        })?;
        let name = names::account(&self.settings.prefix, resolver, &acct.private_key.0);
        configs::create(
            &self.client,
            &name,
            &self.labels(kind::ACCOUNT, resolver),
            &payload,
        )
        .await?;
        self.resync().await?;
        Ok(())
    }

    /// Writes what `next` has and `current` has not (new or changed certificates, a new account).
    pub async fn write_changes(
        &self,
        resolver: &str,
        current: &ResolverData,
        next: &ResolverData,
    ) -> Result<(), SwarmStoreError> {
        if next.swarmgate_account.is_some() && next.swarmgate_account != current.swarmgate_account {
            if let Some(a) = &next.swarmgate_account {
                self.put_account(resolver, a).await?;
            }
        }
        for c in &next.certificates {
            if !current.certificates.contains(c) {
                self.put_certificate(resolver, c).await?;
            }
        }
        Ok(())
    }

    async fn put_answer(&self, k: &str, name: &str, object: &str, key_authorization: &str) {
        let payload = serde_json::to_vec(&AnswerPayload {
            name: name.to_string(),
            key_authorization: key_authorization.to_string(),
        });
        let mut labels = self.labels(k, "");
        let life = u64::try_from(self.settings.answer_ttl.as_millis()).unwrap_or(u64::MAX);
        let expires = super::lease::now_ms().saturating_add(life);
        labels.insert(names::EXPIRES.into(), expires.to_string());
        let result = match payload {
            Ok(p) => configs::create(&self.client, object, &labels, &p)
                .await
                .map(|_| ()),
            Err(e) => {
                tracing::error!("ACME swarm storage: answer not encoded: {e}");
                return;
            }
        };
        match result {
            Ok(()) => {
                if let Err(e) = self.resync().await {
                    tracing::warn!("{e}");
                }
            }
            Err(e) => {
                tracing::error!("ACME swarm storage: {k} answer not published (only this replica answers it): {e}")
            }
        }
    }

    async fn remove_answer(&self, object: &str) {
        // Removal by name: answer objects are created by the order that removes them.
        if let Err(e) = configs::remove(&self.client, object).await {
            tracing::warn!("ACME swarm storage: answer {object} not removed: {e}");
        }
    }

    /// Keeps the cache current until `cancel`: a resync at start, on every config event (create or remove,
    /// any replica), every `resync`, and when a challenge lookup missed and wants one (the read-through,
    /// at most once per `RESYNC_ON_DEMAND_EVERY`, see `tls::challenge`); after each change the answers go
    /// to `challenges` and the manager is notified. A lost event stream is reconnected with backoff (the
    /// periodic and on-demand resyncs cover the gap).
    pub async fn watch(
        self: Arc<Self>,
        challenges: Arc<StoredChallenges>,
        cancel: CancellationToken,
    ) {
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let mut tick = tokio::time::interval(self.settings.resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut demand = ResyncDemand::new(challenges.data_plane());
        loop {
            self.sync_into(&challenges).await;
            let mut events = std::pin::pin!(configs::events(&self.client));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => self.sync_into(&challenges).await,
                    () = demand.wanted() => self.sync_into(&challenges).await,
                    ev = events.next() => match ev {
                        Some(Ok(_)) => {
                            backoff = crate::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
                            self.sync_into(&challenges).await;
                        }
                        Some(Err(e)) => {
                            tracing::warn!("ACME swarm storage: config events lost ({e}); reconnecting");
                            break;
                        }
                        None => break,
                    },
                }
            }
            // Waiting to reconnect: lookups that miss meanwhile are still read through.
            let reconnect = tokio::time::Instant::now() + backoff.next_delay();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep_until(reconnect) => break,
                    () = demand.wanted() => self.sync_into(&challenges).await,
                }
            }
        }
    }

    /// One resync, its answers handed to `challenges`; lookups waiting on a miss are then woken (also when
    /// the resync failed: they look again and keep their own bound).
    pub async fn sync_into(&self, challenges: &StoredChallenges) {
        match self.resync().await {
            Ok(_) => challenges.set_remote_answers(&self.settings.prefix, self.answers()),
            Err(e) => {
                tracing::warn!("ACME swarm storage not refreshed (the last copy is kept): {e}")
            }
        }
        challenges.remote_resynced();
    }
}

/// The challenge answers of a store, published as configs so any replica answers any challenge.
#[derive(Debug)]
pub struct SwarmAnswers {
    /// The store.
    pub store: Arc<SwarmStore>,
    /// The manager's storage key for it (`swarm://<prefix>`).
    pub key: std::path::PathBuf,
}

impl SwarmAnswers {
    /// Runs `f` to completion now on a multi-threaded runtime (so the answer is in Raft before the CA is
    /// told to validate), else in the background.
    fn run<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| h.block_on(f))
            }
            Ok(h) => {
                h.spawn(f);
            }
            Err(_) => {}
        }
    }
}

impl RemoteAnswers for SwarmAnswers {
    fn handles(&self, storage_dir: &std::path::Path) -> bool {
        storage_dir == self.key
    }

    fn publish(&self, http01: bool, name: &str, key_authorization: &str) {
        let store = self.store.clone();
        let (k, object) = if http01 {
            (kind::HTTP01, names::http01(&store.settings.prefix, name))
        } else {
            (
                kind::TLS_ALPN01,
                names::tls_alpn01(&store.settings.prefix, name),
            )
        };
        let (name, ka) = (name.to_string(), key_authorization.to_string());
        self.run(async move { store.put_answer(k, &name, &object, &ka).await });
    }

    fn withdraw(&self, http01: bool, name: &str) {
        let store = self.store.clone();
        let object = if http01 {
            names::http01(&store.settings.prefix, name)
        } else {
            names::tls_alpn01(&store.settings.prefix, name)
        };
        // Withdrawal need not block the order's end: in the background.
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move { store.remove_answer(&object).await });
        }
    }
}

/// Base64 of bytes (for messages and export).
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}
