//! State one table build hands to the next, owned by the table builder: per-server health (by service and
//! server URL) and stateful middlewares (by name and configuration). A build reads the previous state and
//! produces the next one holding exactly what the new table uses, so state of removed items is dropped and
//! a build that never finishes leaves the previous state untouched.

use std::collections::HashMap;
use std::sync::Arc;

use crate::balance::health::ServerHealth;
use crate::middleware::StatefulMiddlewares;

/// What a table build carries over from the previous one.
#[derive(Debug, Default)]
pub struct CarriedState {
    /// Health of every server, so a rebuild does not forget which servers are down.
    pub health: HealthRegistry,
    /// Rate limiters, in-flight counters and circuit breakers, so a rebuild does not reset them.
    pub middlewares: StatefulMiddlewares,
}

/// Per-server health state, kept across builds by (service, server URL).
///
/// Keyed by the `Arc<str>` names the table itself holds (the service's and the server's), so recording a
/// server costs two reference counts, not two string copies: this runs for every server of every build.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    states: HashMap<Arc<str>, HashMap<Arc<str>, Arc<ServerHealth>>>,
}

impl HealthRegistry {
    /// The state of server `url` of `service`: the previous build's if it had this server, else a new one
    /// (healthy); recorded in `next` either way.
    pub(super) fn take(
        &self,
        service: &Arc<str>,
        url: &Arc<str>,
        next: &mut HealthRegistry,
    ) -> Arc<ServerHealth> {
        let state = self
            .states
            .get(&**service)
            .and_then(|servers| servers.get(&**url))
            .cloned()
            .unwrap_or_else(|| Arc::new(ServerHealth::new()));
        next.states
            .entry(service.clone())
            .or_default()
            .insert(url.clone(), state.clone());
        state
    }
}
