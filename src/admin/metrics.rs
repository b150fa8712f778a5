//! `prometheus@internal`: the metrics exposition, with the server states read from the current table at
//! scrape time, so `traefik_service_server_up` is never stale and removed servers disappear (traefik#9836).
//! The registry and the per-request handles stay in [`crate::metrics`], which never reads the table.

use std::fmt::Write as _;

use crate::balance::health::now_ms;
use crate::metrics::{escape, Metrics};
use crate::table::{RoutingTable, ServiceKind};

/// The text exposition for `table`. Scrape time only.
pub fn render(metrics: &Metrics, table: &RoutingTable) -> String {
    metrics.render(|out| server_up(out, table))
}

/// `traefik_service_server_up{service,url}` for every server of every load balancer of `table`.
fn server_up(out: &mut String, table: &RoutingTable) {
    let now = now_ms();
    let _ = writeln!(
        out,
        "# HELP traefik_service_server_up service server is up, described by gauge value of 0 or 1."
    );
    let _ = writeln!(out, "# TYPE traefik_service_server_up gauge");
    for svc in table.services.iter() {
        if let ServiceKind::LoadBalancer(lb) = &svc.kind {
            for srv in lb.servers.iter() {
                let up = u8::from(srv.health.is_up(now));
                let _ = writeln!(
                    out,
                    "traefik_service_server_up{{service=\"{}\",url=\"{}\"}} {up}",
                    escape(&svc.name),
                    escape(&srv.url)
                );
            }
        }
    }
}
