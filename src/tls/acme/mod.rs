//! ACME certificate resolvers (`certificatesResolvers.<name>.acme`): obtains, stores, renews and shares
//! certificates, and publishes them as the `acme` provider's snapshot.
//!
//! Owns: the `acme.json` files (Traefik's format, [`storage`]), the order state machine ([`order`]), the
//! renewal schedule ([`renewal`]), the cluster locks ([`cluster`]) and the challenge answers shared with the
//! data plane ([`challenge_store`]). It never touches the routing table: certificates leave as a whole
//! [`Snapshot`] on a `watch` channel, which the table builder compiles like any file certificate.
//!
//! One manager task serves every resolver, one order at a time (orders are rare; this keeps CA load and
//! rate-limit exposure low). Each turn it re-reads changed storage files (another replica may have written),
//! publishes the certificates, and picks the first due piece of work:
//! - a wanted name that no stored certificate of its resolver covers → an order for the uncovered names
//!   (as Traefik does);
//! - a stored certificate with one third of its validity left (or an earlier ARI window) → a renewal with
//!   ARI `replaces` when the CA supports it.
//!
//! Work runs under the cluster lock of its resolver and names; after taking the lock the storage is read
//! again, so a certificate another replica just obtained is used, not ordered twice. A failure keeps the
//! current certificate and schedules the same work again with jittered exponential backoff (at least 15
//! minutes after a rate limit), never in a tight loop. Lifecycle of an order: see [`order`].

// Control plane: challenge files shared through the storage directory
#[allow(clippy::disallowed_methods)]
pub mod challenge_store;
#[allow(clippy::disallowed_methods)] // control plane: the cluster lock file next to acme.json
pub mod cluster;
pub mod dns;
pub mod order;
pub mod renewal;
#[allow(clippy::disallowed_methods)] // control plane: acme.json reads and atomic writes
pub mod storage;
pub mod swarm;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::types::{Acme as AcmeConfig, CertificateResolver};
use crate::dynamic::snapshot::{ProviderFeed, Snapshot};
use crate::dynamic::{CertificateFile, Configuration};
use crate::tls::challenge::SharedChallenges;
use crate::tls::CertRequest;
use challenge_store::StoredChallenges;
use cluster::LockSettings;
use order::{AcmeHttp, ChallengeKind, KeyType};
use storage::{AcmeFile, StorageError, StoredCertificate, StoredDomain};

/// Let's Encrypt production, Traefik's default `caServer`.
pub const DEFAULT_CA_SERVER: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Provider name of the published certificates.
pub const PROVIDER: &str = "acme";

/// A resolver's configuration that cannot work. Each variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// `dnsChallenge` cannot work (unknown provider, missing credentials, bad option): the resolver is
    /// disabled, the others still run.
    #[error(
        "certificatesResolvers.{resolver}.acme.dnsChallenge: {reason}; this resolver is disabled"
    )]
    Dns {
        /// Resolver name.
        resolver: String,
        /// Why (names variables, never their values).
        reason: String,
    },
    /// No challenge is configured (Traefik's message).
    #[error("certificatesResolvers.{resolver}.acme: ACME challenge not specified, please select TLS or HTTP or DNS Challenge")]
    NoChallenge {
        /// Resolver name.
        resolver: String,
    },
    /// A setting is invalid.
    #[error("certificatesResolvers.{resolver}.acme.{key}: {reason}")]
    Invalid {
        /// Resolver name.
        resolver: String,
        /// The key under `acme`.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The storage file cannot be used.
    #[error("certificatesResolvers.{resolver}.acme.storage: {source}")]
    Storage {
        /// Resolver name.
        resolver: String,
        /// The storage error (Traefik's "permissions … are too open" among them).
        source: StorageError,
    },
}

/// A resolver's validated settings.
#[derive(Clone, Debug)]
pub struct ResolverSettings {
    /// Resolver name.
    pub name: String,
    /// `caServer`.
    pub directory: String,
    /// `email`.
    pub email: String,
    /// `storage` (the `acme.json` path).
    pub storage: PathBuf,
    /// Its directory: the cluster's shared directory.
    pub storage_dir: PathBuf,
    /// Challenge type.
    pub kind: ChallengeKind,
    /// Certificate key type.
    pub key_type: KeyType,
    /// `certificatesDuration` in hours (default 2160): bounds the re-check interval as in Traefik.
    pub certificates_duration: u64,
    /// `eab`: key id and decoded HMAC key.
    pub eab: Option<(String, Vec<u8>)>,
    /// `caCertificates`, else `LEGO_CA_CERTIFICATES`.
    pub ca_files: Vec<PathBuf>,
    /// `caSystemCertPool` / `LEGO_CA_SYSTEM_CERT_POOL`.
    pub ca_system: bool,
    /// `caServerName` / `LEGO_CA_SERVER_NAME`.
    pub ca_server_name: Option<String>,
    /// `disableCommonName`.
    pub disable_common_name: bool,
    /// `profile`.
    pub profile: Option<String>,
    /// `clientTimeout`.
    pub client_timeout: Duration,
    /// `certificateTimeout`, used as the bound on validation + issuance (at least 60 s).
    pub certificate_timeout: Duration,
    /// `storage=swarm://<prefix>`: the Swarm store's settings (then `storage` is the URL itself).
    pub swarm: Option<swarm::SwarmSettings>,
}

/// Validates the ACME resolvers (others, e.g. tailscale, are skipped). `env` reads environment variables
/// (`LEGO_CA_CERTIFICATES`, `LEGO_CA_SYSTEM_CERT_POOL`, `LEGO_CA_SERVER_NAME`, as Traefik and lego do).
pub fn settings(
    resolvers: &BTreeMap<String, CertificateResolver>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<ResolverSettings>, AcmeError> {
    resolvers
        .iter()
        .filter_map(|(name, r)| Some(resolver_settings(name, r.acme.as_ref()?, env)))
        .filter(dns_usable)
        .collect()
}

/// A resolver whose `dnsChallenge` cannot work is disabled (logged), as Traefik does; other errors stop.
fn dns_usable(r: &Result<ResolverSettings, AcmeError>) -> bool {
    match r {
        Err(e @ AcmeError::Dns { .. }) => {
            tracing::error!("{e}");
            false
        }
        _ => true,
    }
}

/// One resolver's `acme` section, validated in Traefik's order: challenge, key type, EAB, storage.
fn resolver_settings(
    name: &str,
    a: &AcmeConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ResolverSettings, AcmeError> {
    let invalid = |key, reason: String| AcmeError::Invalid {
        resolver: name.to_string(),
        key,
        reason,
    };
    let kind = challenge_kind(name, a, env)?;
    let key_type =
        KeyType::parse(a.key_type.as_deref().unwrap_or("")).map_err(|e| invalid("keyType", e))?;
    let eab = match &a.eab {
        Some(e) if !e.kid.is_empty() => Some((
            e.kid.clone(),
            order::decode_hmac(&e.hmac_encoded).map_err(|r| invalid("eab.hmacEncoded", r))?,
        )),
        _ => None,
    };
    let (ca_files, ca_system, ca_server_name) = ca_trust(a, env);
    let (storage, storage_dir) = storage_paths(name, a)?;
    let swarm = swarm::glue::resolver_swarm(name, a, env)?;
    if a.preferred_chain.as_deref().is_some_and(|p| !p.is_empty()) {
        tracing::warn!(resolver = %name, "acme.preferredChain is not supported yet: the CA's default chain is used");
    }
    Ok(ResolverSettings {
        name: name.to_string(),
        directory: a
            .ca_server
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_CA_SERVER.into()),
        email: a.email.clone().unwrap_or_default(),
        storage,
        storage_dir,
        kind,
        key_type,
        certificates_duration: a.certificates_duration.filter(|d| *d > 0).unwrap_or(2160),
        eab,
        ca_files,
        ca_system,
        ca_server_name,
        disable_common_name: a.disable_common_name,
        profile: a.profile.clone().filter(|p| !p.is_empty()),
        client_timeout: a
            .client_timeout
            .non_zero()
            .unwrap_or(Duration::from_secs(120)),
        certificate_timeout: a
            .certificate_timeout
            .non_zero()
            .unwrap_or(Duration::from_secs(30))
            .max(Duration::from_secs(60)),
        swarm,
    })
}

/// The challenge to answer: HTTP-01, else TLS-ALPN-01, else DNS-01 (the first configured, in that order).
fn challenge_kind(
    name: &str,
    a: &AcmeConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ChallengeKind, AcmeError> {
    let set = |v: &&serde_json::Value| !v.is_null() && **v != serde_json::Value::Bool(false);
    let dns = a.dns_challenge.as_ref().filter(set);
    let http = a
        .http_challenge
        .as_ref()
        .filter(|h| !h.entry_point.is_empty());
    let tls = a.tls_challenge.as_ref().filter(set);
    let resolver = name.to_string();
    match (http, tls, dns) {
        (Some(h), _, _) => Ok(ChallengeKind::Http01 {
            entry_point: h.entry_point.clone(),
        }),
        (None, Some(_), _) => Ok(ChallengeKind::TlsAlpn01),
        (None, None, Some(d)) => dns_kind(resolver, d, env),
        (None, None, None) => Err(AcmeError::NoChallenge { resolver }),
    }
}

/// `dnsChallenge`: provider (from the environment), resolvers, propagation.
fn dns_kind(
    resolver: String,
    v: &serde_json::Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ChallengeKind, AcmeError> {
    dns::Dns01::from_config(v, &dns::Env::new(env))
        .map(|d| ChallengeKind::Dns01(Arc::new(d)))
        .map_err(|reason| AcmeError::Dns { resolver, reason })
}

/// The CAs trusted for the ACME server (files, system pool, server name): the resolver's own settings,
/// else lego's `LEGO_CA_*` environment variables, as Traefik reads them.
fn ca_trust(
    a: &AcmeConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<PathBuf>, bool, Option<String>) {
    if !a.ca_certificates.is_empty() || a.ca_server_name.is_some() {
        return (
            a.ca_certificates.iter().map(PathBuf::from).collect(),
            a.ca_system_cert_pool,
            a.ca_server_name.clone(),
        );
    }
    let files = env("LEGO_CA_CERTIFICATES")
        .map(|v| {
            v.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let system = env("LEGO_CA_SYSTEM_CERT_POOL")
        .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
    (
        files,
        system,
        env("LEGO_CA_SERVER_NAME").filter(|s| !s.is_empty()),
    )
}

/// The storage file (`acme.json` by default) and its directory, once its permissions are checked.
fn storage_paths(name: &str, a: &AcmeConfig) -> Result<(PathBuf, PathBuf), AcmeError> {
    if let Some(url) = a.storage.as_deref().filter(|s| swarm::glue::is_swarm(s)) {
        return Ok((PathBuf::from(url), PathBuf::from(url)));
    }
    let storage = PathBuf::from(
        a.storage
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "acme.json".into()),
    );
    let storage_dir = match storage.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    storage::check_permissions(&storage).map_err(|source| AcmeError::Storage {
        resolver: name.to_string(),
        source,
    })?;
    Ok((storage, storage_dir))
}

/// Timing knobs of the manager (defaults for production; tests shorten them).
#[derive(Clone, Copy, Debug)]
pub struct ManagerTiming {
    /// How often storage files are checked for changes made by other replicas.
    pub storage_poll: Duration,
    /// First retry delay after a failed order (doubles up to `retry_max`, jittered).
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Lock files.
    pub locks: LockSettings,
    /// How often the shared challenge directories are read for other replicas' answers; the manager
    /// waits [`challenge_store::propagation_delay`] of it before a CA validates.
    pub challenge_poll: Duration,
}

impl Default for ManagerTiming {
    fn default() -> ManagerTiming {
        ManagerTiming {
            storage_poll: Duration::from_secs(2),
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            locks: LockSettings::default(),
            challenge_poll: challenge_store::CHALLENGE_POLL,
        }
    }
}

/// The ACME side of the application, between [`prepare`] and [`Acme::start`].
pub struct Acme {
    resolvers: Vec<ResolverSettings>,
    challenges: Arc<StoredChallenges>,
    files: BTreeMap<PathBuf, FileState>,
    timing: ManagerTiming,
    /// This replica's id in lock files.
    owner: String,
    /// Swarm stores (`storage=swarm://…`), by storage key.
    swarm: swarm::glue::Swarms,
    /// Notified when a Swarm store changed (the manager re-reads at once).
    changed: Arc<tokio::sync::Notify>,
}

/// What the application wires: the `acme` provider feed and the challenge answers for the data plane.
pub struct AcmeHandles {
    /// Certificates, as the `acme` provider.
    pub feed: ProviderFeed,
    /// Challenge answers (memory + shared storage).
    pub challenges: SharedChallenges,
}

#[derive(Debug, Default)]
struct FileState {
    stamp: Option<(SystemTime, u64)>,
    data: AcmeFile,
}

#[allow(clippy::disallowed_methods)] // ACME storage poll (control plane): acme.json mtime and size
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Validates the resolvers and loads their storage. `None` when no ACME resolver is configured. Called
/// before the first table is built, so stored certificates are served from the first request.
pub fn prepare(
    resolvers: &BTreeMap<String, CertificateResolver>,
) -> Result<Option<Acme>, AcmeError> {
    prepare_with(
        resolvers,
        &|k| std::env::var(k).ok(),
        ManagerTiming::default(),
    )
}

/// [`prepare`] with an explicit environment and timing (tests).
pub fn prepare_with(
    resolvers: &BTreeMap<String, CertificateResolver>,
    env: &dyn Fn(&str) -> Option<String>,
    timing: ManagerTiming,
) -> Result<Option<Acme>, AcmeError> {
    let resolvers = settings(resolvers, env)?;
    if resolvers.is_empty() {
        return Ok(None);
    }
    let mut files = BTreeMap::new();
    let mut swarms = swarm::glue::Swarms::new();
    let changed = Arc::new(tokio::sync::Notify::new());
    for r in &resolvers {
        if files.contains_key(&r.storage) {
            continue;
        }
        let data = match &r.swarm {
            Some(sw) => swarm::glue::open_store(r, sw, &mut swarms, &changed)?,
            None => storage::load(&r.storage).map_err(|source| AcmeError::Storage {
                resolver: r.name.clone(),
                source,
            })?,
        };
        files.insert(
            r.storage.clone(),
            FileState {
                stamp: swarm::glue::stamp_of(&swarms, &r.storage, stamp),
                data,
            },
        );
    }
    let challenges = Arc::new(
        StoredChallenges::new(resolvers.iter().map(|r| r.storage_dir.clone()).collect())
            .with_remotes(swarm::glue::remotes(&swarms)),
    );
    // Answers other replicas published before we started are served from the first request.
    challenges.refresh();
    let acme = Acme {
        resolvers,
        challenges,
        files,
        timing,
        owner: cluster::replica_id(),
        swarm: swarms,
        changed,
    };
    acme.log_expiry();
    Ok(Some(acme))
}

/// One stored certificate as the manager sees it.
struct Held<'a> {
    cert: &'a StoredCertificate,
    info: Option<renewal::CertInfo>,
}

/// Does `name` match `cert_name` (exact or one-label wildcard, as Traefik's `MatchDomain`)?
fn matches(name: &str, cert_name: &str) -> bool {
    let cert_name = cert_name.trim_end_matches('.').to_ascii_lowercase();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == cert_name {
        return true;
    }
    match cert_name.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => false,
    }
}

/// A piece of work for the manager.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Work {
    /// Order `names` (not covered by any stored certificate).
    Issue {
        resolver: String,
        names: Vec<String>,
    },
    /// Renew the stored certificate for `names`.
    Renew {
        resolver: String,
        names: Vec<String>,
        ari: Option<String>,
    },
}

impl Work {
    fn key(&self) -> (String, Vec<String>) {
        match self {
            Work::Issue { resolver, names }
            | Work::Renew {
                resolver, names, ..
            } => (resolver.clone(), names.clone()),
        }
    }
}

/// Work due at `now` for `resolver`, and the earliest future renewal time.
fn plan(
    resolver: &ResolverSettings,
    data: Option<&storage::ResolverData>,
    wanted: &[CertRequest],
    now: SystemTime,
    ari: &HashMap<String, SystemTime>,
) -> (Vec<Work>, Option<SystemTime>) {
    let held: Vec<Held<'_>> = data
        .map(|d| {
            d.certificates
                .iter()
                .map(|c| Held {
                    cert: c,
                    info: renewal::cert_info(&c.certificate.0).ok(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut work = Vec::new();
    let mut next: Option<SystemTime> = None;
    for h in &held {
        let names = h.cert.domain.names();
        if names.is_empty() {
            continue;
        }
        let (at, id) = match &h.info {
            Some(info) => {
                let a = info.ari_id.as_ref().and_then(|id| ari.get(id)).copied();
                (renewal::renewal_time(info, a), info.ari_id.clone())
            }
            None => (now, None),
        };
        if at <= now {
            work.push(Work::Renew {
                resolver: resolver.name.clone(),
                names,
                ari: id,
            });
        } else {
            next = Some(next.map_or(at, |n: SystemTime| n.min(at)));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for req in wanted.iter().filter(|r| r.resolver == resolver.name) {
        let mut names: Vec<String> = std::iter::once(&req.main)
            .chain(req.sans.iter())
            .map(|n| n.to_ascii_lowercase())
            .collect();
        names.dedup();
        let uncovered: Vec<String> = names
            .into_iter()
            .filter(|n| {
                !held
                    .iter()
                    .any(|h| h.cert.domain.names().iter().any(|c| matches(n, c)))
            })
            .collect();
        if !uncovered.is_empty() && seen.insert(uncovered.clone()) {
            work.push(Work::Issue {
                resolver: resolver.name.clone(),
                names: uncovered,
            });
        }
    }
    (work, next)
}

/// Retry state of one piece of work.
struct Retry {
    backoff: Backoff,
    next: tokio::time::Instant,
}

impl Acme {
    /// The challenge answers the data plane must use: one in-memory snapshot of ours and the other
    /// replicas' (refreshed by the watcher [`Acme::start`] runs).
    pub fn challenges(&self) -> SharedChallenges {
        self.challenges.data_plane()
    }

    /// The certificates in storage now, as the `acme` provider's first snapshot.
    pub fn initial(&self) -> Snapshot {
        Some(Arc::new(self.configuration()))
    }

    fn log_expiry(&self) {
        for r in &self.resolvers {
            let Some(d) = self
                .files
                .get(&r.storage)
                .and_then(|f| f.data.resolvers.get(&r.name))
            else {
                tracing::info!(resolver = %r.name, storage = %r.storage.display(), "ACME: no stored certificate");
                continue;
            };
            for c in &d.certificates {
                match renewal::cert_info(&c.certificate.0) {
                    Ok(i) => tracing::info!(
                        resolver = %r.name,
                        domains = ?c.domain.names(),
                        "ACME certificate expires {} (renewal from {})",
                        renewal::rfc3339(i.not_after),
                        renewal::rfc3339(renewal::renew_at(i.not_before, i.not_after))
                    ),
                    Err(e) => {
                        tracing::warn!(resolver = %r.name, domains = ?c.domain.names(), "ACME certificate unreadable ({e}); it will be renewed")
                    }
                }
            }
        }
    }

    /// Every stored certificate of the configured resolvers, inline PEM, in its store.
    fn configuration(&self) -> Configuration {
        let mut cfg = Configuration::default();
        for r in &self.resolvers {
            let Some(d) = self
                .files
                .get(&r.storage)
                .and_then(|f| f.data.resolvers.get(&r.name))
            else {
                continue;
            };
            for c in &d.certificates {
                let (Ok(cert), Ok(key)) = (
                    String::from_utf8(c.certificate.0.clone()),
                    String::from_utf8(c.key.0.clone()),
                ) else {
                    tracing::warn!(resolver = %r.name, domains = ?c.domain.names(), "ACME certificate is not PEM text; skipped");
                    continue;
                };
                let store = if c.store.is_empty() {
                    "default".to_string()
                } else {
                    c.store.clone()
                };
                let file = CertificateFile {
                    cert_file: cert,
                    key_file: key,
                    stores: vec![store],
                };
                if !cfg.tls.certificates.contains(&file) {
                    cfg.tls.certificates.push(file);
                }
            }
        }
        cfg
    }

    /// Starts the manager and the watcher of the shared challenge directories in `tasks`; both run until
    /// `cancel`. `wanted` comes from the table builder.
    pub fn start(
        self,
        wanted: watch::Receiver<Arc<Vec<CertRequest>>>,
        cancel: CancellationToken,
        tasks: &mut crate::supervisor::Supervisor,
    ) -> ProviderFeed {
        let (tx, mut rx) = watch::channel(self.initial());
        rx.mark_unchanged();
        tasks.spawn_may_end(
            "ACME challenge watcher",
            self.challenges
                .clone()
                .watch(self.timing.challenge_poll, cancel.clone()),
        );
        self.start_swarm(&cancel, tasks);
        tasks.spawn("ACME manager", self.run(wanted, tx, cancel));
        ProviderFeed {
            name: PROVIDER.into(),
            rx,
        }
    }

    /// Re-reads changed storage files; returns whether anything changed.
    fn refresh(&mut self) -> bool {
        let mut changed = false;
        for (path, state) in self.files.iter_mut() {
            let now = swarm::glue::stamp_of(&self.swarm, path, stamp);
            if now == state.stamp {
                continue;
            }
            match swarm::glue::load_of(&self.swarm, path) {
                Ok(data) => {
                    state.stamp = now;
                    if data != state.data {
                        state.data = data;
                        changed = true;
                    }
                }
                Err(e) => {
                    tracing::error!("ACME storage not reloaded (the last good copy is kept): {e}")
                }
            }
        }
        changed
    }

    fn publish(&self, tx: &watch::Sender<Snapshot>) {
        let cfg = self.configuration();
        tx.send_if_modified(|cur| {
            if cur.as_deref() == Some(&cfg) {
                false
            } else {
                *cur = Some(Arc::new(cfg));
                true
            }
        });
    }

    async fn run(
        mut self,
        mut wanted: watch::Receiver<Arc<Vec<CertRequest>>>,
        tx: watch::Sender<Snapshot>,
        cancel: CancellationToken,
    ) {
        let owner = self.owner.clone();
        let swarm_changed = self.changed.clone();
        let mut builder_alive = true;
        let mut retries: HashMap<(String, Vec<String>), Retry> = HashMap::new();
        let mut accounts: HashMap<String, instant_acme::Account> = HashMap::new();
        let mut ari: HashMap<String, SystemTime> = HashMap::new();
        let mut ari_next: HashMap<String, tokio::time::Instant> = HashMap::new();
        loop {
            if self.refresh() {
                self.publish(&tx);
            }
            self.refresh_ari(&mut accounts, &mut ari, &mut ari_next)
                .await;
            let want = wanted.borrow_and_update().clone();
            let now = SystemTime::now();
            let mut due: Option<Work> = None;
            let mut wake = tokio::time::Instant::now() + self.timing.storage_poll;
            for r in &self.resolvers {
                let data = self
                    .files
                    .get(&r.storage)
                    .and_then(|f| f.data.resolvers.get(&r.name));
                let (work, next) = plan(r, data, &want, now, &ari);
                if let Some(n) = next {
                    let secs = n.duration_since(now).unwrap_or(Duration::ZERO);
                    let cap = renewal::check_interval(r.certificates_duration);
                    wake = wake.min(tokio::time::Instant::now() + secs.min(cap));
                }
                for w in work {
                    match retries.get(&w.key()) {
                        Some(rt) if rt.next > tokio::time::Instant::now() => {
                            wake = wake.min(rt.next)
                        }
                        _ => {
                            if due.is_none() {
                                due = Some(w);
                            }
                        }
                    }
                }
            }
            if let Some(w) = due {
                let key = w.key();
                match self.execute(&w, &owner, &mut accounts, &cancel).await {
                    Ok(Outcome::Done) => {
                        retries.remove(&key);
                        self.publish(&tx);
                    }
                    Ok(Outcome::Busy) => {
                        // Another replica holds the lock; its result arrives through the storage.
                        let rt = retries.entry(key).or_insert_with(|| Retry {
                            backoff: Backoff::new(self.timing.retry_initial, self.timing.retry_max),
                            next: tokio::time::Instant::now(),
                        });
                        rt.next = tokio::time::Instant::now() + self.timing.storage_poll;
                    }
                    Err(e) => {
                        let rt = retries.entry(key).or_insert_with(|| Retry {
                            backoff: Backoff::new(self.timing.retry_initial, self.timing.retry_max),
                            next: tokio::time::Instant::now(),
                        });
                        let delay = rt.backoff.next_delay().max(e.retry_floor());
                        rt.next = tokio::time::Instant::now() + delay;
                        let (resolver, names) = w.key();
                        let what = if matches!(w, Work::Renew { .. }) {
                            "renewal"
                        } else {
                            "order"
                        };
                        tracing::error!(
                            resolver = %resolver,
                            domains = ?names,
                            "ACME {what} failed (the current certificate, if any, is kept); retrying in {:.1}s: {e}",
                            delay.as_secs_f64()
                        );
                    }
                }
                if cancel.is_cancelled() {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = wanted.changed(), if builder_alive => {
                    if r.is_err() {
                        // The builder is gone: keep renewing what is stored, woken by the timer only.
                        builder_alive = false;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
                _ = swarm_changed.notified() => {}
            }
        }
    }

    /// ARI (RFC 9773): for each stored certificate of a resolver that has an account, fetches the CA's
    /// suggested renewal window when the cached one is due (Retry-After, clamped to [1 min, 24 h]) and keeps
    /// a uniformly random point of it. A CA without `renewalInfo` is asked once per resolver and run.
    async fn refresh_ari(
        &mut self,
        accounts: &mut HashMap<String, instant_acme::Account>,
        ari: &mut HashMap<String, SystemTime>,
        ari_next: &mut HashMap<String, tokio::time::Instant>,
    ) {
        let now = tokio::time::Instant::now();
        for r in self.resolvers.clone() {
            if ari_next
                .get(&format!("resolver:{}", r.name))
                .is_some_and(|t| *t > now)
            {
                continue;
            }
            let ids: Vec<String> = self
                .files
                .get(&r.storage)
                .and_then(|f| f.data.resolvers.get(&r.name))
                .map(|d| {
                    d.certificates
                        .iter()
                        .filter_map(|c| renewal::cert_info(&c.certificate.0).ok()?.ari_id)
                        .collect()
                })
                .unwrap_or_default();
            let due: Vec<String> = ids
                .into_iter()
                .filter(|id| ari_next.get(id).is_none_or(|t| *t <= now))
                .collect();
            if due.is_empty() {
                continue;
            }
            let account = match self.account_for(&r, accounts, false).await {
                Ok(Some(a)) => a,
                _ => continue,
            };
            for id in due {
                let Some(cid) = parse_ari_id(&id) else {
                    continue;
                };
                match account.renewal_info(&cid).await {
                    Ok((info, retry)) => {
                        let at =
                            |t: i64| std::time::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
                        let start = at(info.suggested_window.start.unix_timestamp());
                        let end = at(info.suggested_window.end.unix_timestamp());
                        let point = renewal::ari_point(start, end, fastrand::f64());
                        tracing::debug!(resolver = %r.name, cert = %id, "ARI renewal point {}", renewal::rfc3339(point));
                        ari.insert(id.clone(), point);
                        let wait =
                            retry.clamp(Duration::from_secs(60), Duration::from_secs(86_400));
                        ari_next.insert(id, now + wait);
                    }
                    Err(instant_acme::Error::Unsupported(_)) => {
                        tracing::debug!(resolver = %r.name, "the CA offers no ARI (renewalInfo); one-third rule only");
                        ari_next.insert(
                            format!("resolver:{}", r.name),
                            now + Duration::from_secs(86_400),
                        );
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(resolver = %r.name, cert = %id, "ARI renewalInfo failed: {e}");
                        ari_next.insert(id, now + Duration::from_secs(3600));
                    }
                }
            }
        }
    }

    /// The resolver's account: cached, else restored from storage, else (when `create`) registered and
    /// stored. `Ok(None)` when none is stored and `create` is false.
    async fn account_for(
        &mut self,
        r: &ResolverSettings,
        accounts: &mut HashMap<String, instant_acme::Account>,
        create: bool,
    ) -> Result<Option<instant_acme::Account>, order::OrderError> {
        if let Some(a) = accounts.get(&r.name) {
            return Ok(Some(a.clone()));
        }
        let stored = self
            .files
            .get(&r.storage)
            .and_then(|f| f.data.resolvers.get(&r.name))
            .and_then(|d| d.swarmgate_account.clone());
        if stored.is_none() && !create {
            return Ok(None);
        }
        let http = self.http(r)?;
        let eab = r.eab.as_ref().map(|(k, h)| (k.as_str(), h.as_slice()));
        let settings = order::AccountSettings {
            directory: &r.directory,
            email: &r.email,
            eab,
        };
        if !create && stored.as_ref().is_some_and(|st| st.key_type != "P256") {
            return Ok(None);
        }
        let (acct, new) = order::account(&http, stored.as_ref(), &settings).await?;
        if let Some(new) = new {
            self.update(r, &self.owner.clone(), &CancellationToken::new(), |d| {
                d.swarmgate_account = Some(new.clone())
            })
            .await?;
        }
        accounts.insert(r.name.clone(), acct.clone());
        Ok(Some(acct))
    }

    fn http(&self, r: &ResolverSettings) -> Result<AcmeHttp, order::OrderError> {
        AcmeHttp::new(
            order::root_store(&r.ca_files, r.ca_system).map_err(order::OrderError::Account)?,
            r.ca_server_name.clone(),
            r.client_timeout,
        )
        .map_err(order::OrderError::Account)
    }

    async fn execute(
        &mut self,
        work: &Work,
        owner: &str,
        accounts: &mut HashMap<String, instant_acme::Account>,
        cancel: &CancellationToken,
    ) -> Result<Outcome, order::OrderError> {
        let (resolver, names) = work.key();
        let Some(r) = self.resolvers.iter().find(|r| r.name == resolver).cloned() else {
            return Ok(Outcome::Done);
        };
        // The first name is the certificate's main domain, the rest its SANs; no name, nothing to obtain.
        let Some((main, sans)) = names.split_first() else {
            return Ok(Outcome::Done);
        };
        let Some(guard) = self.issuance_lock(&r, &names, owner).await? else {
            tracing::info!(resolver = %r.name, domains = ?names, "another replica is obtaining this certificate; waiting for it");
            return Ok(Outcome::Busy);
        };
        // Under the lock, look again: another replica may have finished just before.
        self.files.entry(r.storage.clone()).or_default().stamp = None;
        self.refresh();
        let want: Vec<CertRequest> = match work {
            Work::Issue { .. } => vec![CertRequest {
                resolver: r.name.clone(),
                main: main.clone(),
                sans: sans.to_vec(),
            }],
            Work::Renew { .. } => Vec::new(),
        };
        let data = self
            .files
            .get(&r.storage)
            .and_then(|f| f.data.resolvers.get(&r.name));
        let (still, _) = plan(&r, data, &want, SystemTime::now(), &HashMap::new());
        if !still.iter().any(|w| w.key() == work.key()) {
            tracing::info!(resolver = %r.name, domains = ?names, "certificate already obtained by another replica");
            return Ok(Outcome::Done);
        }
        let account = match self.account_for(&r, accounts, true).await? {
            Some(a) => a,
            None => return Err(order::OrderError::Account("no account".into())),
        };
        let replaces = match work {
            Work::Renew { ari: Some(id), .. } => parse_ari_id(id),
            _ => None,
        };
        let what = if matches!(work, Work::Renew { .. }) {
            "renewing"
        } else {
            "obtaining"
        };
        tracing::info!(resolver = %r.name, domains = ?names, "ACME: {what} a certificate from {}", r.directory);
        let req = order::OrderRequest {
            names: &names,
            kind: &r.kind,
            key_type: r.key_type,
            challenges: &self.challenges,
            propagation: self.propagation(&r),
            storage_dir: &r.storage_dir,
            replaces,
            disable_common_name: r.disable_common_name,
            profile: r.profile.as_deref(),
            timeout: r.certificate_timeout,
        };
        let lease_over = guard.expired();
        let issued = tokio::select! {
            res = order::obtain(&account, &req) => res?,
            _ = cancel.cancelled() => return Ok(Outcome::Busy),
            _ = lease_over.cancelled() => return Err(order::OrderError::Account("the issuance lease expired before the order ended; another replica may take over".into())),
        };
        let domain = StoredDomain {
            main: main.clone(),
            sans: sans.to_vec(),
        };
        let cert = StoredCertificate {
            domain: domain.clone(),
            certificate: storage::GoBytes(issued.chain_pem.into_bytes()),
            key: storage::GoBytes(issued.key_pem.into_bytes()),
            store: "default".into(),
        };
        let expiry = renewal::cert_info(&cert.certificate.0)
            .map(|i| renewal::rfc3339(i.not_after))
            .unwrap_or_default();
        self.update(&r, owner, cancel, move |d| {
            match d.certificates.iter_mut().find(|c| c.domain == domain) {
                Some(c) => *c = cert.clone(),
                None => d.certificates.push(cert.clone()),
            }
        })
        .await?;
        tracing::info!(resolver = %r.name, domains = ?names, "ACME certificate obtained; expires {expiry}");
        drop(guard);
        Ok(Outcome::Done)
    }

    /// Read-modify-write of the resolver's storage under the file's cluster lock.
    async fn update(
        &mut self,
        r: &ResolverSettings,
        owner: &str,
        cancel: &CancellationToken,
        change: impl Fn(&mut storage::ResolverData),
    ) -> Result<(), order::OrderError> {
        if let Some(store) = self.swarm.get(&r.storage).cloned() {
            return self.update_swarm(&store, r, change).await;
        }
        let locks = cluster::locks_dir(&r.storage_dir);
        let name = format!(
            "file-{}.lock",
            r.storage
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "acme.json".into())
        );
        let io =
            |e: String| order::OrderError::Account(format!("storage {}: {e}", r.storage.display()));
        let guard = cluster::lock(
            &locks,
            &name,
            owner,
            &self.timing.locks,
            Duration::from_millis(50),
            Duration::from_secs(30),
            cancel,
        )
        .await
        .map_err(|e| io(e.to_string()))?
        .ok_or_else(|| io("storage lock not acquired within 30s".into()))?;
        let mut data = storage::load(&r.storage).map_err(|e| io(e.to_string()))?;
        change(data.resolvers.entry(r.name.clone()).or_default());
        storage::save(&r.storage, &data).map_err(|e| io(e.to_string()))?;
        drop(guard);
        let state = self.files.entry(r.storage.clone()).or_default();
        state.stamp = stamp(&r.storage);
        state.data = data;
        Ok(())
    }
}

fn parse_ari_id(id: &str) -> Option<instant_acme::CertificateIdentifier<'static>> {
    let (aki, serial) = id.split_once('.')?;
    Some(instant_acme::CertificateIdentifier {
        authority_key_identifier: aki.to_string().into(),
        serial: serial.to_string().into(),
    })
}

/// How a piece of work ended without error.
enum Outcome {
    /// Done (by us or another replica).
    Done,
    /// Someone else is on it, or we are shutting down.
    Busy,
}

/// Validates the ACME resolvers, loads their storage and starts the manager: the one call the application
/// makes when it has `wanted` at hand. `None` when no ACME resolver is configured.
pub fn spawn(
    resolvers: &BTreeMap<String, CertificateResolver>,
    wanted: watch::Receiver<Arc<Vec<CertRequest>>>,
    cancel: CancellationToken,
    tasks: &mut crate::supervisor::Supervisor,
) -> Result<Option<AcmeHandles>, AcmeError> {
    Ok(prepare(resolvers)?.map(|acme| {
        let challenges = acme.challenges();
        AcmeHandles {
            feed: acme.start(wanted, cancel, tasks),
            challenges,
        }
    }))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write acme.json fixtures
mod tests;
