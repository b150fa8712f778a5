//! Mutual exclusion from Raft itself: one lease config per (resolver, names), created under a fixed name.
//!
//! - **Acquire**: `POST /configs/create` with the fixed name, labels holder and expiry. Swarm's Raft store
//!   admits one object per name, so of any number of concurrent creates exactly one succeeds; the others get
//!   409 Conflict and read the lease (`GET /configs/{name}`).
//! - **Stale take-over**: a lease whose expiry has passed belongs to a replica that died (or overran its
//!   lease; the holder gives up its order when its lease expires). A contender removes it **by id**
//!   (`DELETE /configs/{id}`), then creates its own under the fixed name. The race argument: a removal by id
//!   can only remove the exact stale object the contender inspected — never a fresh lease another contender
//!   created meanwhile, which has a new id — and after any removal, Raft again admits exactly one create. So
//!   two contenders that both see the stale lease both remove it (one gets 404), both create, one wins; a
//!   contender that inspected long ago and wakes late removes nothing (404) and then loses the create.
//! - **Release**: the holder removes its lease by id when the work ends.
//!
//! Clocks: expiry is an absolute time written by the holder and compared by contenders, so replicas'
//! clocks must agree within a small fraction of the lease (NTP); the lease is minutes long by default.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::names;
use crate::provider::docker::client::{DockerClient, DockerError};
use crate::provider::docker::configs::{self, ConfigObject, Created};

/// What a lease object says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// Swarm id.
    pub id: String,
    /// Holder's replica id.
    pub holder: String,
    /// Expiry, ms since the epoch (0 when unreadable: treated as stale).
    pub expires_ms: u64,
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

/// A held lease: removed (by id) on drop; [`LeaseGuard::expired`] fires when it runs out.
pub struct LeaseGuard {
    client: DockerClient,
    /// The lease's name.
    pub name: String,
    /// The lease's id.
    pub id: String,
    expired: CancellationToken,
    timer: CancellationToken,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeaseGuard({} {})", self.name, self.id)
    }
}

impl LeaseGuard {
    /// Cancelled when the lease expires (a contender may then take it over: stop working).
    pub fn expired(&self) -> CancellationToken {
        self.expired.clone()
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.timer.cancel();
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
        let expires = now_ms() + ttl.as_millis() as u64;
        match configs::create(client, name, &labels(expires), holder.as_bytes()).await? {
            Created::Id(id) => return Ok(Acquired::Held(Box::new(guard(client, name, id, ttl)))),
            Created::Exists => {}
        }
        let Some(obj) = configs::inspect(client, name).await? else {
            continue; // released between our create and our read: try again
        };
        let info = LeaseInfo::from_object(&obj);
        if !info.is_stale(now_ms()) {
            return Ok(Acquired::Busy(info));
        }
        // Stale: remove exactly that object (by id), then compete in the create again.
        if configs::remove(client, &info.id).await? {
            tracing::warn!(lease = %name, holder = %info.holder, "stale ACME lease taken over (expired {} ms ago)", now_ms().saturating_sub(info.expires_ms));
        }
        last = Some(info);
    }
    Ok(Acquired::Busy(last.unwrap_or(LeaseInfo {
        id: String::new(),
        holder: String::new(),
        expires_ms: 0,
    })))
}

fn guard(client: &DockerClient, name: &str, id: String, ttl: Duration) -> LeaseGuard {
    let expired = CancellationToken::new();
    let timer = CancellationToken::new();
    let (e, t) = (expired.clone(), timer.clone());
    // A little before the contenders see it expire, so the holder stops first.
    let run_for = ttl.mul_f64(0.9);
    tokio::spawn(async move {
        tokio::select! {
            _ = t.cancelled() => {}
            _ = tokio::time::sleep(run_for) => e.cancel(),
        }
    });
    LeaseGuard {
        client: client.clone(),
        name: name.to_string(),
        id,
        expired,
        timer,
    }
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
