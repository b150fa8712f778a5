//! Mutual exclusion from Raft itself: one lease config per (resolver, names), created under a fixed name,
//! kept alive by its holder with compare-and-swap label updates.
//!
//! - **Acquire**: `POST /configs/create` with the fixed name, labels holder and expiry. Swarm's Raft store
//!   admits one object per name, so of any number of concurrent creates exactly one succeeds; the others get
//!   409 Conflict and read the lease (`GET /configs/{name}`).
//! - **Heartbeat**: configs are immutable except for their labels, and a labels update names the version
//!   (Raft index) it read: `POST /configs/{id}/update?version=N` is applied only if the object is still at
//!   N — a compare-and-swap inside Raft. Every quarter of the lease the holder moves `expires` to
//!   now + lease at the version it last wrote, then reads the new version back. The holder's own deadline
//!   is 90 % of the lease after sending its last *successful* renewal; a renewal that fails (refused or
//!   unanswered until the deadline) leaves the deadline where it was, and at the deadline the holder stops.
//! - **Stale take-over**: a lease whose expiry has passed belongs to a replica that died or lost contact.
//!   A contender first **fences** it: a CAS update, at the version it inspected, setting itself as holder
//!   and the expiry to 0. Only then does it remove the object by id and compete in the create again.
//! - **Release**: the holder removes its lease by id when the work ends.
//!
//! The race argument. (1) Of two CAS updates naming the same version exactly one is applied, so a holder's
//! renewal and a contender's fence of the same read are totally ordered by Raft: if the renewal commits
//! first, the fence is refused (the contender reads again and sees a live lease); if the fence commits
//! first, the renewal is refused and the holder stops at once. A holder can therefore never believe it
//! extended a lease that a contender is taking over — the window a plain remove + create would leave (a
//! renewal committed between the contender's read and its removal would be lost silently). (2) A fence is
//! attempted only on a lease read as expired, i.e. more than a full lease after the send time of the last
//! committed renewal, and the holder's deadline is 90 % of a lease after that same send time: the holder
//! has stopped before any contender may fence, as long as clocks agree to within 10 % of the lease.
//! (3) Removal is by id, and every live lease has the fresh id of its own create: a late removal (a
//! contender that read long ago, a holder releasing after being fenced) can only remove a fenced or
//! stale object, never a lease another replica works under. (4) After any removal Raft again admits
//! exactly one create for the name. Hence no interleaving has two replicas working under live leases.
//!
//! Clocks: expiry is an absolute time written by the holder and compared by contenders, so replicas'
//! clocks must agree within a small fraction of the lease (NTP); the lease is minutes long by default.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::names;
use crate::provider::docker::client::{DockerClient, DockerError};
use crate::provider::docker::configs::{self, ConfigObject, Created, Updated};

/// What a lease object says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// Swarm id.
    pub id: String,
    /// Holder's replica id.
    pub holder: String,
    /// Expiry, ms since the epoch (0 when unreadable: treated as stale).
    pub expires_ms: u64,
    /// Raft version the labels were read at (what a CAS update names).
    pub version: u64,
}

impl LeaseInfo {
    /// Reads a lease object's labels.
    pub fn from_object(o: &ConfigObject) -> LeaseInfo {
        LeaseInfo {
            id: o.id.clone(),
            holder: o.labels.get(names::HOLDER).cloned().unwrap_or_default(),
            expires_ms: o
                .labels
                .get(names::EXPIRES)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            version: o.index,
        }
    }

    /// Is the lease over at `now_ms`?
    pub fn is_stale(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Labels of a new lease.
pub fn lease_labels(
    prefix: &str,
    resolver: &str,
    names_: &[String],
    holder: &str,
    expires_ms: u64,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (names::STORE.to_string(), prefix.to_string()),
        (names::KIND.to_string(), names::kind::LEASE.to_string()),
        (names::RESOLVER.to_string(), resolver.to_string()),
        (names::DOMAINS.to_string(), names::names_key(names_)),
        (names::HOLDER.to_string(), holder.to_string()),
        (names::EXPIRES.to_string(), expires_ms.to_string()),
    ])
}

/// A held lease: kept alive by a heartbeat while held, removed (by id) on drop; [`LeaseGuard::expired`]
/// fires when it is lost (a renewal refused) or runs out (renewals failing until the deadline).
pub struct LeaseGuard {
    client: DockerClient,
    /// The lease's name.
    pub name: String,
    /// The lease's id.
    pub id: String,
    expired: CancellationToken,
    stop: CancellationToken,
    renewals: Arc<AtomicU64>,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeaseGuard({} {})", self.name, self.id)
    }
}

impl LeaseGuard {
    /// Cancelled when the lease is lost or expires (a contender may then take it over: stop working).
    pub fn expired(&self) -> CancellationToken {
        self.expired.clone()
    }

    /// Successful renewals so far (for logs and tests).
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        let client = self.client.clone();
        let id = self.id.clone();
        let name = self.name.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = configs::remove(&client, &id).await {
                    tracing::warn!(lease = %name, "ACME lease not released (it expires on its own): {e}");
                }
            });
        }
    }
}

/// Result of one acquisition attempt.
#[derive(Debug)]
pub enum Acquired {
    /// Ours until dropped or expired.
    Held(Box<LeaseGuard>),
    /// Held by someone else (live).
    Busy(LeaseInfo),
}

/// Result of one renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Extended; the lease is now at this version.
    Renewed {
        /// The new Raft version (what the next renewal names).
        version: u64,
    },
    /// Refused (the lease changed since `version`: fenced by a contender) or gone: stop working.
    Lost,
}

/// The part of a lease that stays fixed while it is held: what a renewal rewrites.
#[derive(Clone, Debug)]
pub struct Held {
    /// Lease id.
    pub id: String,
    /// Lease name (Swarm checks an update keeps it).
    pub name: String,
    /// Holder id written in the labels.
    pub holder: String,
    /// The labels as created; renewals change only the expiry.
    pub labels: BTreeMap<String, String>,
}

/// One heartbeat: moves the expiry of `lease` to `expires_ms` if it is still at `version` (a CAS in Raft),
/// then reads the new version back. [`Renewal::Lost`] when the update is refused because someone else
/// changed the lease, or the object is gone. A refusal caused by our own earlier renewal whose answer was
/// lost (the object still names us as holder with a non-zero expiry: only we write that) is retried once
/// at the version read.
pub async fn renew(
    client: &DockerClient,
    lease: &Held,
    version: u64,
    expires_ms: u64,
) -> Result<Renewal, DockerError> {
    let mut labels = lease.labels.clone();
    labels.insert(names::EXPIRES.to_string(), expires_ms.to_string());
    let ours = |o: &ConfigObject| {
        o.labels.get(names::HOLDER) == Some(&lease.holder)
            && LeaseInfo::from_object(o).expires_ms > 0
    };
    let mut version = version;
    for _ in 0..2 {
        match configs::update_labels(client, &lease.id, &lease.name, version, &labels).await? {
            Updated::Done => {
                return Ok(match configs::inspect(client, &lease.id).await? {
                    Some(o)
                        if ours(&o)
                            && o.labels.get(names::EXPIRES) == labels.get(names::EXPIRES) =>
                    {
                        Renewal::Renewed { version: o.index }
                    }
                    _ => Renewal::Lost,
                });
            }
            Updated::Gone => return Ok(Renewal::Lost),
            Updated::Stale => match configs::inspect(client, &lease.id).await? {
                Some(o) if ours(&o) => version = o.index,
                _ => return Ok(Renewal::Lost),
            },
        }
    }
    Ok(Renewal::Lost)
}

/// Fences the stale lease `o` for `holder`: a CAS update at the version read, holder = us, expiry 0. Only
/// the contender whose fence is applied removes it; a renewal of the old holder after that is refused.
pub async fn fence(
    client: &DockerClient,
    o: &ConfigObject,
    holder: &str,
) -> Result<Updated, DockerError> {
    let mut labels = o.labels.clone();
    labels.insert(names::HOLDER.to_string(), holder.to_string());
    labels.insert(names::EXPIRES.to_string(), "0".to_string());
    configs::update_labels(client, &o.id, &o.name, o.index, &labels).await
}

/// Tries to take the lease `name` for `holder` for `ttl` (see the module doc for the protocol).
pub async fn acquire(
    client: &DockerClient,
    name: &str,
    labels: impl Fn(u64) -> BTreeMap<String, String>,
    holder: &str,
    ttl: Duration,
) -> Result<Acquired, DockerError> {
    let mut last = None;
    for _ in 0..3 {
        let sent = Instant::now();
        let l = labels(now_ms() + ttl_ms(ttl));
        if let Created::Id(id) = configs::create(client, name, &l, holder.as_bytes()).await? {
            // The version the first renewal names. A fresh lease cannot have been fenced (it is live).
            let Some(o) = configs::inspect(client, &id).await? else {
                continue;
            };
            let held = Held {
                id,
                name: name.to_string(),
                holder: holder.to_string(),
                labels: l,
            };
            return Ok(Acquired::Held(Box::new(guard(
                client, held, o.index, sent, ttl,
            ))));
        }
        let Some(obj) = configs::inspect(client, name).await? else {
            continue; // released between our create and our read: try again
        };
        let info = LeaseInfo::from_object(&obj);
        if !info.is_stale(now_ms()) {
            return Ok(Acquired::Busy(info));
        }
        // Stale: fence exactly what we read (CAS on its version), then remove it by id and compete in the
        // create again. A refused fence means it was renewed or fenced meanwhile: read it again.
        if fence(client, &obj, holder).await? == Updated::Done
            && configs::remove(client, &info.id).await?
        {
            tracing::warn!(lease = %name, holder = %info.holder, "stale ACME lease taken over (expired {} ms ago)", now_ms().saturating_sub(info.expires_ms));
        }
        last = Some(info);
    }
    Ok(Acquired::Busy(last.unwrap_or(LeaseInfo {
        id: String::new(),
        holder: String::new(),
        expires_ms: 0,
        version: 0,
    })))
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

/// Renewal period: a quarter of the lease, so two renewals may fail before the holder's deadline.
pub fn heartbeat_every(ttl: Duration) -> Duration {
    ttl / 4
}

/// How long after sending a successful renewal (or the create) the holder may keep working: 90 % of the
/// lease, so it stops before contenders see the lease expire.
pub fn holder_deadline(ttl: Duration) -> Duration {
    ttl.mul_f64(0.9)
}

fn guard(
    client: &DockerClient,
    held: Held,
    version: u64,
    sent: Instant,
    ttl: Duration,
) -> LeaseGuard {
    let expired = CancellationToken::new();
    let stop = CancellationToken::new();
    let renewals = Arc::new(AtomicU64::new(0));
    let guard = LeaseGuard {
        client: client.clone(),
        name: held.name.clone(),
        id: held.id.clone(),
        expired: expired.clone(),
        stop: stop.clone(),
        renewals: renewals.clone(),
    };
    tokio::spawn(heartbeat(
        client.clone(),
        held,
        version,
        sent,
        ttl,
        stop,
        expired,
        renewals,
    ));
    guard
}

/// Renews `held` every [`heartbeat_every`] until `stop`; cancels `expired` when a renewal is refused or the
/// deadline passes without a successful one (a renewal still unanswered at the deadline counts as failed).
#[allow(clippy::too_many_arguments)]
async fn heartbeat(
    client: DockerClient,
    held: Held,
    mut version: u64,
    sent: Instant,
    ttl: Duration,
    stop: CancellationToken,
    expired: CancellationToken,
    renewals: Arc<AtomicU64>,
) {
    let mut deadline = tokio::time::Instant::from_std(sent + holder_deadline(ttl));
    let every = heartbeat_every(ttl);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tokio::time::sleep(every) => {}
        }
        let sent = Instant::now();
        let expires = now_ms() + ttl_ms(ttl);
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout_at(deadline, renew(&client, &held, version, expires)) => r,
        };
        match attempt {
            Ok(Ok(Renewal::Renewed { version: v })) => {
                version = v;
                deadline = tokio::time::Instant::from_std(sent + holder_deadline(ttl));
                renewals.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(Renewal::Lost)) => {
                tracing::warn!(lease = %held.name, "ACME lease lost (another replica fenced it); stopping the order");
                expired.cancel();
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(lease = %held.name, "ACME lease not renewed (retrying until its deadline): {e}")
            }
            Err(_) => break,
        }
    }
    tracing::warn!(lease = %held.name, "ACME lease not renewed before its deadline; stopping the order");
    expired.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(labels: &[(&str, &str)]) -> ConfigObject {
        ConfigObject {
            id: "id1".into(),
            name: "acme-lease-x".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            data: Vec::new(),
            index: 1,
        }
    }

    #[test]
    fn a_lease_is_stale_from_its_expiry_and_unreadable_ones_are_stale() {
        let l = LeaseInfo::from_object(&obj(&[(names::HOLDER, "a"), (names::EXPIRES, "1000")]));
        assert_eq!(l.holder, "a");
        assert!(!l.is_stale(999));
        assert!(l.is_stale(1000));
        assert!(LeaseInfo::from_object(&obj(&[(names::EXPIRES, "soon")])).is_stale(0));
        let labels = lease_labels("p", "le", &["B.x".into(), "a.x".into()], "me", 42);
        assert_eq!(labels[names::DOMAINS], "a.x,b.x");
        assert_eq!(labels[names::KIND], names::kind::LEASE);
        let back = LeaseInfo::from_object(&ConfigObject { labels, ..obj(&[]) });
        assert_eq!((back.holder.as_str(), back.expires_ms), ("me", 42));
    }
}
