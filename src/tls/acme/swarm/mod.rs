//! `storage=swarm://<prefix>`: ACME state kept in Swarm's own replicated store (Raft), as Swarm configs read
//! and written through the Docker API of a manager — no shared volume. See docs/shared-certificates.md.
//!
//! - [`names`]: object names (stable, derived from a hash of resolver and names) and labels;
//! - [`seal`]: AES-256-GCM of private keys under the key file (a Docker secret);
//! - [`lease`]: mutual exclusion per (resolver, names) from Raft's unique names, kept alive by a heartbeat
//!   of compare-and-swap label updates;
//! - [`store`]: the cache every replica keeps, fed by config events and a periodic resync, and the writes;
//! - [`glue`]: the manager's calls into the store (issuance lease, read-modify-write, propagation delay);
//! - [`migrate`]: `swarmgate acme import` / `export` of a Traefik `acme.json`.

pub mod glue;
pub mod lease;
pub mod migrate;
pub mod names;
pub mod seal;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

/// Storage scheme of the Swarm store.
pub const SCHEME: &str = "swarm://";

/// Environment variable that shortens the issuance lease (seconds), for tests and impatient operators.
pub const LEASE_TTL_ENV: &str = "SWARMGATE_ACME_LEASE_TTL";

/// Environment variable that sets how long a published challenge answer lives (seconds), for tests.
pub const ANSWER_TTL_ENV: &str = "SWARMGATE_ACME_ANSWER_TTL";

/// Environment variable that sets the periodic resync (seconds; default [`DEFAULT_RESYNC`]).
pub const RESYNC_ENV: &str = "SWARMGATE_ACME_SWARM_RESYNC";

/// Default issuance lease: renewed by its holder every quarter of it while the order runs (so an order may
/// outlast it); a holder that dies or loses the managers is taken over once it has passed.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(300);

/// Added to the resolver's `certificateTimeout` for the life of a challenge answer: the account and order
/// requests before the answer is published and the propagation delay after it.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(60);

/// Default periodic resync, besides the config events.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(10);

/// A resolver's Swarm storage settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmSettings {
    /// Object name prefix (`acme` in `swarm://acme`).
    pub prefix: String,
    /// File holding the key private keys are sealed with.
    pub key_file: PathBuf,
    /// Issuance lease duration.
    pub lease_ttl: Duration,
    /// How long a published challenge answer lives: after it, any replica removes it (its order is over, or
    /// its replica died). At least the lease, and at least the longest validation (`certificateTimeout` +
    /// [`ANSWER_MARGIN`], see [`SwarmSettings::with_certificate_timeout`]): an order kept alive by the lease
    /// heartbeat may outlast the lease, and its answers must not expire under it.
    pub answer_ttl: Duration,
    /// Periodic resync.
    pub resync: Duration,
    /// Docker endpoint (`DOCKER_HOST`, else the default socket).
    pub endpoint: String,
}

impl SwarmSettings {
    /// Raises the answer life to cover a validation of `certificate_timeout` (unless the environment set it).
    pub fn with_certificate_timeout(
        mut self,
        certificate_timeout: Duration,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> SwarmSettings {
        if secs_env(env, ANSWER_TTL_ENV).is_none() {
            self.answer_ttl = self
                .answer_ttl
                .max(certificate_timeout.saturating_add(ANSWER_MARGIN));
        }
        self
    }
}

/// `swarm://<prefix>` → the prefix; `None` for a file path. The prefix must be a valid start of a Swarm
/// object name: letters, digits, `-`, `_`, `.`, starting with a letter or digit, at most 20 characters.
pub fn parse_storage(storage: &str) -> Option<Result<String, String>> {
    let prefix = storage.strip_prefix(SCHEME)?;
    let ok = !prefix.is_empty()
        && prefix.len() <= 20
        && prefix.starts_with(|c: char| c.is_ascii_alphanumeric())
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    Some(if ok {
        Ok(prefix.to_string())
    } else {
        Err(format!(
            "`{storage}`: the prefix after swarm:// must be 1 to 20 letters, digits, '-', '_' or '.', starting with a letter or digit"
        ))
    })
}

fn secs_env(env: &dyn Fn(&str) -> Option<String>, key: &str) -> Option<Duration> {
    let v = env(key)?;
    let s: f64 = v.trim().trim_end_matches('s').parse().ok()?;
    (s.is_finite() && s > 0.0).then(|| Duration::from_secs_f64(s))
}

/// The Swarm settings of `storage`, when it is `swarm://…`: key file (`acme.storageKeyFile`, else the
/// default secret path), lease and resync (environment), Docker endpoint (`DOCKER_HOST`, else the socket).
pub fn settings(
    storage: &str,
    key_file: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Result<SwarmSettings, String>> {
    let prefix = match parse_storage(storage)? {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let lease_ttl = secs_env(env, LEASE_TTL_ENV).unwrap_or(DEFAULT_LEASE_TTL);
    Some(Ok(SwarmSettings {
        prefix,
        key_file: PathBuf::from(
            key_file
                .filter(|k| !k.is_empty())
                .unwrap_or(seal::DEFAULT_KEY_FILE),
        ),
        lease_ttl,
        answer_ttl: secs_env(env, ANSWER_TTL_ENV).unwrap_or(lease_ttl),
        resync: secs_env(env, RESYNC_ENV).unwrap_or(DEFAULT_RESYNC),
        endpoint: env("DOCKER_HOST")
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| crate::provider::docker::client::DEFAULT_ENDPOINT.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_scheme_and_prefix() {
        assert_eq!(parse_storage("/acme/acme.json"), None);
        assert_eq!(parse_storage("swarm://acme"), Some(Ok("acme".into())));
        assert_eq!(
            parse_storage("swarm://h19-x.y_z"),
            Some(Ok("h19-x.y_z".into()))
        );
        for bad in [
            "swarm://",
            "swarm://-a",
            "swarm://a/b",
            "swarm://a b",
            "swarm://aaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(matches!(parse_storage(bad), Some(Err(_))), "{bad}");
        }
        let env = |k: &str| match k {
            LEASE_TTL_ENV => Some("3".to_string()),
            "DOCKER_HOST" => Some("tcp://127.0.0.1:2375".to_string()),
            _ => None,
        };
        let s = settings("swarm://acme", None, &env)
            .expect("swarm")
            .expect("valid");
        assert_eq!(s.key_file, PathBuf::from(seal::DEFAULT_KEY_FILE));
        assert_eq!(s.lease_ttl, Duration::from_secs(3));
        assert_eq!(s.answer_ttl, Duration::from_secs(3));
        let s = s.with_certificate_timeout(Duration::from_secs(60), &env);
        assert_eq!(
            s.answer_ttl,
            Duration::from_secs(120),
            "a validation outlives a short lease"
        );
        assert_eq!(s.resync, DEFAULT_RESYNC);
        assert_eq!(s.endpoint, "tcp://127.0.0.1:2375");
        let s = settings("swarm://acme", Some("/k"), &|_| None)
            .expect("swarm")
            .expect("valid");
        assert_eq!(s.key_file, PathBuf::from("/k"));
        assert_eq!(s.lease_ttl, DEFAULT_LEASE_TTL);
        let s = s.with_certificate_timeout(Duration::from_secs(60), &|_| None);
        assert_eq!(s.answer_ttl, DEFAULT_LEASE_TTL);
        let env = |k: &str| (k == ANSWER_TTL_ENV).then(|| "7".to_string());
        let s = settings("swarm://acme", None, &env)
            .expect("swarm")
            .expect("valid")
            .with_certificate_timeout(Duration::from_secs(600), &env);
        assert_eq!(s.answer_ttl, Duration::from_secs(7), "the environment wins");
    }
}
