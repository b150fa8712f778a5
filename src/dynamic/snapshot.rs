//! What providers publish: whole [`Configuration`] snapshots on a `watch` channel. The type lives here, with
//! the configuration it carries, so providers (file, Docker, Swarm, ACME) and their consumer (the table
//! builder) both depend on `dynamic` and not on each other.

use std::sync::Arc;

use tokio::sync::watch;

use super::Configuration;

/// A provider's output: its latest whole configuration (`None` until its first read). Shared, never copied:
/// the table built from it keeps the same `Arc`.
pub type Snapshot = Option<Arc<Configuration>>;

/// Receiving end of one provider's snapshots, as the table builder consumes it.
pub struct ProviderFeed {
    /// Provider name used to qualify its items (`file`, `docker`, `swarm`).
    pub name: String,
    /// Its snapshots.
    pub rx: watch::Receiver<Snapshot>,
}
