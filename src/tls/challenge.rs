//! ACME challenge answers as the data plane sees them: HTTP-01 key authorizations by token, and TLS-ALPN-01
//! certificates by domain.
//!
//! Any client can ask for `/.well-known/acme-challenge/<anything>` or offer `acme-tls/1` in a ClientHello,
//! so a lookup must cost no more than a hash lookup: the answers are one immutable [`Answers`] snapshot
//! behind an `ArcSwap`, replaced as a whole by the control plane (the ACME manager when it publishes or
//! withdraws a challenge, and its watcher of the shared storage directory, see
//! `acme::challenge_store`). This module has no file-system code at all: the request path cannot touch
//! a disk through it. A token that is not an RFC 8555 token is refused before any lookup.
//!
//! # Read-through on a miss (Swarm store only)
//!
//! With a Swarm store, another replica's answer reaches this one through a config event or the periodic
//! resync; under load the CA's validation can arrive first. A [`MemoryChallenges`] built
//! [`with_read_through`](MemoryChallenges::with_read_through) (only when a Swarm store is configured) then
//! lets a *miss* wait: the lookup asks the store watchers for an immediate resync and waits for the next
//! resync to finish ([`MemoryChallenges::resynced`]), looks again, and gives up at its bound. A hit costs
//! exactly what it did (one `ArcSwap` load and a hash lookup); without a Swarm store nothing ever waits.
//!
//! Any client can send valid-looking random tokens or `acme-tls/1` hellos for any name, so the wait is
//! bounded three ways:
//! - time: one waiting lookup lasts at most [`READ_THROUGH_BOUND`] (then it is a miss, as before);
//! - concurrency: at most [`READ_THROUGH_WAITERS`] lookups wait at once, per process (a semaphore taken
//!   with `try_acquire`: when none is left the lookup misses at once; it never queues);
//! - Docker API load: each watcher starts an on-demand resync at most once per [`RESYNC_ON_DEMAND_EVERY`],
//!   one list call each, however many lookups want one (wants are a generation counter: every want that
//!   arrives before a resync starts is answered by it, later ones by the next).
//!
//! So a flood of random tokens costs at most 5 list calls a second per store and [`READ_THROUGH_WAITERS`]
//! parked requests; the waiting itself takes tokio's `Notify`/`Semaphore` (no lock of ours) and one small
//! allocation per admitted wait.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// Longest a missed lookup waits for a resync to bring its answer (see the module doc). Well under a CA's
/// validation timeout (Let's Encrypt and Pebble wait several seconds for an answer), above one resync
/// (one list call, a few ms to a few hundred under load) plus the on-demand interval.
pub const READ_THROUGH_BOUND: Duration = Duration::from_millis(1500);

/// Most lookups waiting at once (per process); the next misses at once.
pub const READ_THROUGH_WAITERS: usize = 64;

/// Shortest interval between two on-demand resyncs of one store watcher.
pub const RESYNC_ON_DEMAND_EVERY: Duration = Duration::from_millis(200);

/// A wait admitted by the read-through: resolves to the answer, or `None` after the bound.
pub type ReadThroughWait<T> = Pin<Box<dyn Future<Output = Option<T>> + Send>>;

/// The read-through's shared state (see the module doc).
#[derive(Debug)]
struct ReadThrough {
    /// How long one lookup waits.
    bound: Duration,
    /// Admission of waiting lookups (`try_acquire` only).
    waiters: Arc<Semaphore>,
    /// Resyncs wanted so far: a generation the watchers compare with what they served.
    wanted: AtomicU64,
    /// Wakes the watchers when `wanted` moves.
    want: Notify,
    /// Wakes the waiting lookups when a resync finished (changed or not).
    resynced: Notify,
}

/// One immutable set of pending challenge answers (this replica's and the other replicas').
#[derive(Debug, Default, Clone)]
pub struct Answers {
    /// HTTP-01: token → key authorization.
    pub http01: HashMap<String, Arc<str>>,
    /// TLS-ALPN-01: domain (lowercase, no trailing dot) → the RFC 8737 validation certificate.
    pub tls_alpn01: HashMap<String, Arc<CertifiedKey>>,
}

/// The challenge answers the data plane reads: a snapshot swapped atomically by the control plane.
/// Without an ACME resolver it stays empty.
#[derive(Debug, Default)]
pub struct MemoryChallenges {
    current: ArcSwap<Answers>,
    /// Present only with a Swarm store: a miss may wait for a resync.
    read_through: Option<ReadThrough>,
}

impl MemoryChallenges {
    /// Answers whose misses read through to the store watchers: a missed lookup may wait up to `bound`,
    /// at most `max_waiters` at once (see the module doc). Built by the ACME side only when a Swarm store
    /// is configured.
    pub fn with_read_through(bound: Duration, max_waiters: usize) -> MemoryChallenges {
        MemoryChallenges {
            current: ArcSwap::default(),
            read_through: Some(ReadThrough {
                bound,
                waiters: Arc::new(Semaphore::new(max_waiters)),
                wanted: AtomicU64::new(0),
                want: Notify::new(),
                resynced: Notify::new(),
            }),
        }
    }

    /// Does a miss read through (a Swarm store is configured)?
    pub fn reads_through(&self) -> bool {
        self.read_through.is_some()
    }

    /// Hot path: the key authorization for an HTTP-01 `token`, if a challenge with that token is pending.
    /// A token that is not a valid RFC 8555 token ([`valid_token`]) is refused without a lookup. No lock,
    /// no I/O; allocates only when it answers.
    pub fn http01(&self, token: &str) -> Option<String> {
        if !valid_token(token) {
            return None;
        }
        let answers = self.current.load();
        answers.http01.get(token).map(|v| v.to_string())
    }

    /// Hot path (TLS): the `acme-tls/1` certificate for the ClientHello's server name, if a TLS-ALPN-01
    /// challenge is pending for it. Names are compared case-insensitively, a trailing dot ignored.
    pub fn tls_alpn01(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let answers = self.current.load();
        if answers.tls_alpn01.is_empty() {
            return None;
        }
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        answers.tls_alpn01.get(&name).cloned()
    }

    /// Control plane: replaces the answers as a whole.
    pub fn publish(&self, answers: Answers) {
        self.current.store(Arc::new(answers));
    }

    /// The current answers (tests, and the control plane's bookkeeping).
    pub fn snapshot(&self) -> Arc<Answers> {
        self.current.load_full()
    }

    /// Request path, after [`http01`](Self::http01) missed: a wait for `token`'s answer through an
    /// immediate resync, or `None` — then the miss stands at once — when there is no read-through (no
    /// Swarm store), `token` is not an RFC 8555 token, or [`READ_THROUGH_WAITERS`] lookups already wait.
    /// The wait resolves to the key authorization, or `None` after the bound.
    pub fn http01_read_through(self: &Arc<Self>, token: &str) -> Option<ReadThroughWait<String>> {
        if !valid_token(token) {
            return None;
        }
        self.read_through(token, MemoryChallenges::http01)
    }

    /// TLS handshake, for an `acme-tls/1` ClientHello whose name has no answer: as
    /// [`http01_read_through`](Self::http01_read_through), for the TLS-ALPN-01 certificate of
    /// `server_name`.
    pub fn tls_alpn01_read_through(
        self: &Arc<Self>,
        server_name: &str,
    ) -> Option<ReadThroughWait<Arc<CertifiedKey>>> {
        if server_name.is_empty() || server_name.len() > 253 {
            return None;
        }
        self.read_through(server_name, MemoryChallenges::tls_alpn01)
    }

    /// The bounded wait for `look(key)`, holding a waiting slot until it resolves (see
    /// [`http01_read_through`](Self::http01_read_through)).
    fn read_through<T: Send + 'static>(
        self: &Arc<Self>,
        key: &str,
        look: fn(&MemoryChallenges, &str) -> Option<T>,
    ) -> Option<ReadThroughWait<T>> {
        let permit = self.admit()?;
        let me = self.clone();
        let key = key.to_string();
        Some(Box::pin(async move {
            let answer = me.wait_for(|m| look(m, &key)).await;
            drop(permit);
            answer
        }))
    }

    /// A waiting slot, if the read-through is on and one is free (never queues).
    fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let rt = self.read_through.as_ref()?;
        rt.waiters.clone().try_acquire_owned().ok()
    }

    /// Looks up with `look` until it answers or the bound passes, asking for one resync first. Each round
    /// registers for the next "resynced" before looking, so a resync that ends between the look and the
    /// wait still wakes it.
    async fn wait_for<T>(&self, look: impl Fn(&Self) -> Option<T>) -> Option<T> {
        let rt = self.read_through.as_ref()?;
        let deadline = Instant::now() + rt.bound;
        let mut asked = false;
        loop {
            let resynced = rt.resynced.notified();
            tokio::pin!(resynced);
            resynced.as_mut().enable();
            if let Some(v) = look(self) {
                return Some(v);
            }
            if !asked {
                rt.wanted.fetch_add(1, Ordering::AcqRel);
                rt.want.notify_waiters();
                asked = true;
            }
            if tokio::time::timeout_at(deadline, resynced).await.is_err() {
                return look(self);
            }
        }
    }

    /// Control plane: a store watcher finished a resync (whether or not it changed the answers, and also
    /// when it failed): waiting lookups look again. Call it after publishing what the resync read.
    pub fn resynced(&self) {
        if let Some(rt) = &self.read_through {
            rt.resynced.notify_waiters();
        }
    }
}

/// A store watcher's side of the read-through: resolves when a lookup wanted a resync the watcher has not
/// started yet, at most once per [`RESYNC_ON_DEMAND_EVERY`]. Without read-through it never resolves.
#[derive(Debug)]
pub struct ResyncDemand {
    challenges: SharedChallenges,
    /// The want generation the last on-demand resync covered.
    seen: u64,
    /// When the next on-demand resync may start.
    next: Option<Instant>,
}

impl ResyncDemand {
    /// The demand of `challenges`, with the wants made so far counted as served (the watcher's first
    /// resync covers them).
    pub fn new(challenges: SharedChallenges) -> ResyncDemand {
        let seen = challenges
            .read_through
            .as_ref()
            .map_or(0, |rt| rt.wanted.load(Ordering::Acquire));
        ResyncDemand {
            challenges,
            seen,
            next: None,
        }
    }

    /// Waits for a want not yet served and for the interval since the last on-demand resync; the caller
    /// then resyncs once. Every want made before this returns is covered by that resync. Cancel-safe: a
    /// want is marked served only when this returns.
    pub async fn wanted(&mut self) {
        let challenges = self.challenges.clone();
        let Some(rt) = challenges.read_through.as_ref() else {
            return std::future::pending().await;
        };
        loop {
            let want = rt.want.notified();
            tokio::pin!(want);
            want.as_mut().enable();
            if rt.wanted.load(Ordering::Acquire) != self.seen {
                break;
            }
            want.await;
        }
        if let Some(next) = self.next {
            tokio::time::sleep_until(next).await;
        }
        self.seen = rt.wanted.load(Ordering::Acquire);
        self.next = Some(Instant::now() + RESYNC_ON_DEMAND_EVERY);
    }
}

/// The handle passed around: the ACME manager publishes into it, the data plane reads it.
pub type SharedChallenges = Arc<MemoryChallenges>;

/// Longest token accepted. RFC 8555 sets no maximum; CAs issue 43 characters (32 bytes).
const MAX_TOKEN_LEN: usize = 256;

/// Shortest token accepted: RFC 8555 §8.3 requires at least 128 bits of entropy, i.e. at least 22
/// base64url characters.
const MIN_TOKEN_LEN: usize = 22;

/// Is `token` an RFC 8555 §8.3 challenge token: base64url alphabet, no padding, at least 128 bits,
/// bounded length? (A length of 4n+1 characters is no unpadded base64 encoding.) Used by the hot path
/// before any lookup, and by the control plane before a token becomes a file name.
pub fn valid_token(token: &str) -> bool {
    (MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len())
        && token.len() % 4 != 1
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Path prefix of HTTP-01 validation requests.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_before_any_lookup() {
        let ok = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
        assert!(valid_token(ok));
        assert!(valid_token(&"a".repeat(22)));
        for bad in [
            "",
            "short",
            "../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaa",
            "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0=",
            "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEu+0",
            "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEu%2F",
            &"a".repeat(257),
            &"a".repeat(25),
        ] {
            assert!(!valid_token(bad), "{bad}");
        }
        let m = MemoryChallenges::default();
        let mut a = Answers::default();
        a.http01.insert(ok.into(), "k.a".into());
        // Even a key that is in the map is not answered when it is not a token.
        a.http01.insert("short".into(), "no".into());
        m.publish(a);
        assert_eq!(m.http01(ok).as_deref(), Some("k.a"));
        assert_eq!(m.http01("short"), None);
        assert_eq!(m.http01(&"b".repeat(43)), None);
    }

    const TOKEN: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";

    fn answers_with(token: &str, key_authorization: &str) -> Answers {
        let mut a = Answers::default();
        a.http01.insert(token.into(), key_authorization.into());
        a
    }

    /// A store watcher stand-in: on each wanted resync, records when it started, publishes what `read`
    /// returns for that resync (by its number), and reports the resync done.
    fn fake_watcher(
        m: &SharedChallenges,
        read: impl Fn(usize) -> Option<Answers> + Send + 'static,
    ) -> (
        tokio::task::JoinHandle<()>,
        Arc<std::sync::Mutex<Vec<Instant>>>,
    ) {
        let started = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (m, log) = (m.clone(), started.clone());
        // Created now, as the real watcher creates it before its first resync: wants made before count
        // as served by that resync.
        let mut demand = ResyncDemand::new(m.clone());
        let task = tokio::spawn(async move {
            loop {
                demand.wanted().await;
                let n = {
                    let mut l = log.lock().expect("log");
                    l.push(Instant::now());
                    l.len()
                };
                // One list call's worth of latency.
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Some(a) = read(n) {
                    m.publish(a);
                }
                m.resynced();
            }
        });
        (task, started)
    }

    #[tokio::test(start_paused = true)]
    async fn a_miss_is_answered_when_the_resync_it_asks_for_publishes_the_answer() {
        let m = Arc::new(MemoryChallenges::with_read_through(
            READ_THROUGH_BOUND,
            READ_THROUGH_WAITERS,
        ));
        let (watcher, resyncs) = fake_watcher(&m, |_| Some(answers_with(TOKEN, "tok.thumb")));
        assert_eq!(m.http01(TOKEN), None, "not loaded yet");
        let wait = m.http01_read_through(TOKEN).expect("admitted");
        assert_eq!(wait.await.as_deref(), Some("tok.thumb"));
        assert_eq!(resyncs.lock().expect("log").len(), 1, "one resync per want");
        watcher.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_miss_gives_up_after_the_bound_and_asks_for_one_resync() {
        let m = Arc::new(MemoryChallenges::with_read_through(
            READ_THROUGH_BOUND,
            READ_THROUGH_WAITERS,
        ));
        // Every resync reads a store without the token.
        let (watcher, resyncs) = fake_watcher(&m, |_| Some(answers_with(&"x".repeat(43), "other")));
        let t0 = Instant::now();
        let wait = m.http01_read_through(TOKEN).expect("admitted");
        assert_eq!(wait.await, None);
        assert_eq!(
            Instant::now() - t0,
            READ_THROUGH_BOUND,
            "the paused clock ran to the bound"
        );
        assert_eq!(
            resyncs.lock().expect("log").len(),
            1,
            "woken, it does not ask again"
        );
        // The slot came back: the next miss is admitted.
        assert!(m.http01_read_through(TOKEN).is_some());
        watcher.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn excess_waiters_miss_at_once_and_nothing_waits_without_a_store() {
        let m = Arc::new(MemoryChallenges::with_read_through(READ_THROUGH_BOUND, 2));
        let first = m.http01_read_through(TOKEN).expect("slot 1");
        let second = m
            .tls_alpn01_read_through("a.example.com")
            .expect("slot 2: both kinds share the slots");
        assert!(m.http01_read_through(TOKEN).is_none(), "no slot: miss now");
        assert!(m.tls_alpn01_read_through("b.example.com").is_none());
        drop(second);
        let third = m.http01_read_through(TOKEN).expect("a slot freed");
        drop((first, third));
        // Not a token, or no name: never a wait.
        assert!(m.http01_read_through("short").is_none());
        assert!(m.tls_alpn01_read_through("").is_none());
        // File storage or no ACME at all: exactly the old behaviour, no waiting.
        let plain = Arc::new(MemoryChallenges::default());
        assert!(!plain.reads_through());
        assert!(plain.http01_read_through(TOKEN).is_none());
        assert!(plain.tls_alpn01_read_through("a.example.com").is_none());
        // And a watcher of a store without read-through is never woken.
        let mut demand = ResyncDemand::new(plain);
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), demand.wanted())
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_of_misses_cost_one_resync_each_spaced_by_the_interval() {
        let m = Arc::new(MemoryChallenges::with_read_through(
            READ_THROUGH_BOUND,
            READ_THROUGH_WAITERS,
        ));
        let second = "SECONDtokenSECONDtokenSECONDtokenSECONDtok0";
        // The store holds TOKEN from the start; `second` is created after the first resync.
        let (watcher, resyncs) = fake_watcher(&m, move |n| {
            let mut a = answers_with(TOKEN, "k.a");
            if n >= 2 {
                a.http01.insert(second.into(), "k.b".into());
            }
            Some(a)
        });
        for (token, expected) in [(TOKEN, "k.a"), (second, "k.b")] {
            let mut waits = tokio::task::JoinSet::new();
            for _ in 0..READ_THROUGH_WAITERS {
                waits.spawn(m.http01_read_through(token).expect("admitted"));
            }
            assert!(m.http01_read_through(token).is_none(), "all slots taken");
            while let Some(r) = waits.join_next().await {
                assert_eq!(r.expect("join").as_deref(), Some(expected));
            }
        }
        let r = resyncs.lock().expect("log").clone();
        assert_eq!(r.len(), 2, "one resync per burst of {READ_THROUGH_WAITERS}");
        assert!(r[1] - r[0] >= RESYNC_ON_DEMAND_EVERY, "{:?}", r[1] - r[0]);
        watcher.abort();
    }
}
