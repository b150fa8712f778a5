//! Configuration providers. Each one publishes whole [`crate::dynamic::Configuration`] snapshots on a
//! `watch` channel ([`crate::dynamic::Snapshot`]); none of them touches the routing table directly.

pub mod docker;
#[allow(clippy::disallowed_methods)] // control plane: the file provider reads and watches its files
pub mod file;
