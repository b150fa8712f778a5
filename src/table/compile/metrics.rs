//! Step "metrics handles": resolves each entrypoint's, router's and service's request counters once per
//! build, so a request only adds to atomics and never looks a metric up by label.

use super::super::{EntryPointRoutes, ServiceKind, ServiceRuntime, Status, TableStatus};
use crate::metrics::Metrics;

/// Attaches the handles of `metrics` to the table's entrypoints, served routes and configured services.
pub(super) fn attach(
    metrics: &Metrics,
    status: &TableStatus,
    entry_points: &mut [EntryPointRoutes],
    services: &mut [ServiceRuntime],
) {
    let ep_names: Vec<String> = entry_points.iter().map(|e| e.name.clone()).collect();
    let router_names: Vec<String> = status
        .routers
        .iter()
        .filter(|(_, st)| st.status != Status::Disabled)
        .map(|(n, _)| n.clone())
        .collect();
    let service_names: Vec<String> = services
        .iter()
        .filter(|s| !matches!(s.kind, ServiceKind::Internal(_)))
        .map(|s| s.name.to_string())
        .collect();
    let r = metrics.resolve(&ep_names, &router_names, &service_names);
    for ep in entry_points.iter_mut() {
        ep.stats = r.entry_points.get(&ep.name).cloned();
        for route in ep.http.routes.iter_mut().chain(ep.https.routes.iter_mut()) {
            route.stats = r.routers.get(&*route.name).cloned();
        }
    }
    for svc in services.iter_mut() {
        svc.stats = r.services.get(&*svc.name).cloned();
    }
}
