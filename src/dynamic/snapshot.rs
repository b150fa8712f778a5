//! What providers publish: whole configurations on a `watch` channel, one per provider. Defined with the
//! configuration model rather than with the table builder that consumes them, so that producers (the file
//! and Docker providers, the ACME manager's certificates) name nothing above them.

use std::sync::Arc;

use tokio::sync::watch;

use super::Configuration;

/// A provider's output: its latest whole configuration (`None` until its first read).
pub type Snapshot = Option<Arc<Configuration>>;

/// Receiving end of one provider's snapshots.
pub struct ProviderFeed {
    /// Provider name used to qualify its items (`file`, `docker`, `swarm`).
    pub name: String,
    /// Its snapshots.
    pub rx: watch::Receiver<Snapshot>,
}
