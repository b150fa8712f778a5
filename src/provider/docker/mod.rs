//! The Docker and Swarm providers: containers or Swarm services → whole dynamic-configuration snapshots.
//!
//! - [`labels`]: pure label → configuration function (with [`template`] for `defaultRule` and
//!   [`constraints`] for `constraints`), shared with `swarmgate check`;
//! - `containers` / `swarm`: read the Docker API (one list call per kind) into [`labels::Workload`]s;
//! - `watch`: events, periodic resync and reconnection with backoff; publishes snapshots.

pub mod constraints;
pub mod labels;
pub mod template;
