//! `/api/udp/routers` and `/api/udp/services` as Traefik shows them: the dynamic item with `name`,
//! `provider`, `status`, `error`, and `using` (routers: the UDP entrypoints it is attached to) or `usedBy`
//! and `type` (services). Items a provider dropped are listed `disabled` with their error.

use serde_json::{json, Value};

use super::{dropped, omit_empty, raw_items, typed, with_status};
use crate::dynamic::traefik_json;
use crate::dynamic::ItemKind;
use crate::table::RoutingTable;

/// UDP routers with their status.
pub fn routers(table: &RoutingTable) -> Vec<Value> {
    raw_items(&table.input.providers, |c| {
        c.udp
            .routers
            .iter()
            .map(|(n, r)| (n, typed(r, traefik_json::UDP_ROUTER)))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, mut v)| {
        omit_empty(&mut v);
        let st = table.status.udp_routers.get(&name);
        if let (Value::Object(m), Some(st)) = (&mut v, st) {
            if !m.contains_key("entryPoints") && !st.entry_points.is_empty() {
                m.insert("entryPoints".into(), json!(st.entry_points));
            }
        }
        with_status(v, &name, &provider, st)
    })
    .chain(dropped(
        table,
        ItemKind::UdpRouter,
        &table.status.udp_routers,
        |c, n| c.udp.routers.contains_key(n),
    ))
    .collect()
}

/// UDP services with their status, type and the routers using them.
pub fn services(table: &RoutingTable) -> Vec<Value> {
    let used_by = super::used_by(&table.status.udp_routers);
    raw_items(&table.input.providers, |c| {
        c.udp
            .services
            .iter()
            .map(|(n, s)| (n, typed(s, traefik_json::UDP_SERVICE)))
            .collect()
    })
    .into_iter()
    .map(|(name, provider, v)| {
        let kind = super::service_type(&v);
        let mut v = with_status(v, &name, &provider, table.status.udp_services.get(&name));
        if let Value::Object(m) = &mut v {
            m.insert("type".into(), json!(kind));
            if let Some(users) = used_by.get(name.as_str()) {
                m.insert("usedBy".into(), json!(users));
            }
        }
        v
    })
    .chain(dropped(
        table,
        ItemKind::UdpService,
        &table.status.udp_services,
        |c, n| c.udp.services.contains_key(n),
    ))
    .collect()
}
