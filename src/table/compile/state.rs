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
/// One flat map rather than a map per service: a build records every server, and a map per service cost
/// an allocation per service to build and another to drop (a quarter of a 10,000-service build).
#[derive(Debug, Default)]
pub struct HealthRegistry {
    /// foldhash, not SipHash: the keys are configuration names, and this runs for every server of a build.
    states: HashMap<(Arc<str>, Arc<str>), Arc<ServerHealth>, foldhash::fast::RandomState>,
}

impl HealthRegistry {
    /// Makes room for `servers` more servers, so recording a build's servers does not rehash.
    pub(super) fn reserve(&mut self, servers: usize) {
        self.states.reserve(servers);
    }

    /// The state of server `url` of `service`: the previous build's if it had this server, else a new one
    /// (healthy); recorded in `next` either way.
    pub(super) fn take(
        &self,
        service: &Arc<str>,
        url: &Arc<str>,
        next: &mut HealthRegistry,
    ) -> Arc<ServerHealth> {
        let key = (service.clone(), url.clone());
        let state = match self.states.get(&key) {
            Some(s) => s.clone(),
            None => Arc::new(ServerHealth::new()),
        };
        next.states.insert(key, state.clone());
        state
    }
}
