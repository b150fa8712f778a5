//! Step "udp": UDP services and routers, compiled as Traefik's UDP managers build them.
//!
//! - services: a load balancer of `host:port` servers (an address that does not split into host and
//!   port disables the service, with the address in the error), or a weighted service of other UDP
//!   services (unknown, disabled or cyclic children disable it);
//! - routers: no rule; entrypoints default to every UDP entrypoint; an entrypoint that is not a UDP
//!   entrypoint is an error that leaves the router `warning` when another one is valid, `disabled` when
//!   none is (Traefik's "no valid entryPoint for this router"); a missing or unavailable service disables
//!   the router;
//! - per entrypoint one router is served: of those that build, the greatest name (Traefik sorts them in
//!   reverse and takes the first); the others stay enabled as in Traefik, and a line says which one won.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::super::udp::{
    UdpEntryPoint, UdpRoute, UdpServiceKind, UdpServiceRuntime, UdpTable, UdpTarget,
};
use super::super::{ItemStatus, Status};
use super::{BuildInput, CompileContext, Report};
use crate::balance::WeightedRoundRobin;
use crate::dynamic::{self, ItemKind, UdpRouter, UdpService};

/// One service before indices are final: built kind with children by name, or why it cannot run.
enum Draft {
    Servers(Vec<UdpTarget>),
    Weighted(Vec<(String, u32)>),
}

/// Compiles the UDP section of every provider into the table's [`UdpTable`], with every item's status.
pub(super) fn compile(input: &BuildInput, ctx: &CompileContext, report: &mut Report) -> UdpTable {
    let mut services: BTreeMap<String, (&str, &UdpService)> = BTreeMap::new();
    let mut routers: BTreeMap<String, (&str, &UdpRouter)> = BTreeMap::new();
    for (provider, cfg) in &input.providers {
        let p = provider.as_str();
        for (name, s) in &cfg.udp.services {
            services.insert(dynamic::qualify(name, p), (p, s));
        }
        for (name, r) in &cfg.udp.routers {
            routers.insert(dynamic::qualify(name, p), (p, r));
        }
    }
    let (runtime, index) = compile_services(&services, report);
    let per_ep = compile_routers(&routers, &index, ctx, report);
    list_dropped(input, report);
    let entry_points = ctx
        .udp_entry_points
        .iter()
        .map(|ep| UdpEntryPoint {
            name: ep.clone(),
            route: choose_route(ep, per_ep.get(ep.as_str()), report),
        })
        .collect();
    UdpTable {
        entry_points,
        services: runtime.into_boxed_slice(),
    }
}

/// Builds the services; returns the enabled ones and their index by qualified name.
fn compile_services(
    items: &BTreeMap<String, (&str, &UdpService)>,
    report: &mut Report,
) -> (Vec<UdpServiceRuntime>, HashMap<String, usize>) {
    let mut drafts: BTreeMap<&str, Result<Draft, String>> = items
        .iter()
        .map(|(name, (provider, svc))| (name.as_str(), draft(provider, svc)))
        .collect();
    disable_broken_children(&mut drafts);
    let mut index = HashMap::new();
    for (name, d) in &drafts {
        if d.is_ok() {
            let next = index.len();
            index.insert(name.to_string(), next);
        }
    }
    let mut runtime = Vec::with_capacity(index.len());
    for (name, d) in drafts {
        let provider = items.get(name).map(|(p, _)| *p).unwrap_or_default();
        let st = match d {
            Ok(Draft::Servers(servers)) => {
                let wrr = WeightedRoundRobin::new(&vec![1; servers.len()]);
                runtime.push(UdpServiceRuntime {
                    name: Arc::from(name),
                    kind: UdpServiceKind::LoadBalancer {
                        servers: servers.into_boxed_slice(),
                        wrr,
                    },
                });
                ItemStatus::new(Status::Enabled, provider)
            }
            Ok(Draft::Weighted(children)) => {
                let weights: Vec<u32> = children.iter().map(|(_, w)| *w).collect();
                runtime.push(UdpServiceRuntime {
                    name: Arc::from(name),
                    kind: UdpServiceKind::Weighted {
                        children: children
                            .iter()
                            .filter_map(|(c, _)| index.get(c).copied())
                            .collect(),
                        wrr: WeightedRoundRobin::new(&weights),
                    },
                });
                ItemStatus::new(Status::Enabled, provider)
            }
            Err(e) => {
                report
                    .issues
                    .push(format!("UDP service `{name}` disabled: {e}"));
                ItemStatus::new(Status::Disabled, provider).with_errors(vec![e])
            }
        };
        report.status.udp_services.insert(name.to_string(), st);
    }
    (runtime, index)
}

/// One service's servers or children (qualified), or why it cannot run.
fn draft(provider: &str, svc: &UdpService) -> Result<Draft, String> {
    match (&svc.load_balancer, &svc.weighted) {
        (Some(lb), None) => lb
            .servers
            .iter()
            .map(|s| target(&s.address))
            .collect::<Result<Vec<_>, _>>()
            .map(Draft::Servers),
        (None, Some(w)) => Ok(Draft::Weighted(
            w.services
                .iter()
                .map(|c| (dynamic::qualify(&c.name, provider), c.weight.unwrap_or(1)))
                .collect(),
        )),
        (None, None) => Err("the UDP service has no type (loadBalancer or weighted)".into()),
        (Some(_), Some(_)) => Err(
            "a UDP service has one type: loadBalancer or weighted, not both (declare two services)"
                .into(),
        ),
    }
}

/// A server address: `host:port`, the port a number; resolved now when `host` is an IP.
fn target(address: &str) -> Result<UdpTarget, String> {
    let a = address.trim();
    let (host, port) = a
        .rsplit_once(':')
        .ok_or_else(|| format!("server address `{a}` is not `host:port`"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("server address `{a}` is not `host:port`"));
    }
    Ok(UdpTarget {
        address: Arc::from(a),
        resolved: a.parse().ok(),
    })
}

/// Weighted services whose children are unknown or disabled are disabled, until nothing changes; then
/// the ones in a cycle.
fn disable_broken_children(drafts: &mut BTreeMap<&str, Result<Draft, String>>) {
    loop {
        let bad: Vec<(&str, String)> = drafts
            .iter()
            .filter_map(|(name, d)| match d {
                Ok(Draft::Weighted(children)) => children
                    .iter()
                    .find(|(c, _)| !matches!(drafts.get(c.as_str()), Some(Ok(_))))
                    .map(|(c, _)| (*name, format!("child UDP service `{c}` is not available"))),
                _ => None,
            })
            .collect();
        if bad.is_empty() {
            break;
        }
        for (name, e) in bad {
            drafts.insert(name, Err(e));
        }
    }
    let cyclic: Vec<&str> = drafts
        .keys()
        .copied()
        .filter(|n| in_cycle(n, drafts))
        .collect();
    for name in cyclic {
        drafts.insert(name, Err("weighted UDP services form a cycle".into()));
    }
}

/// Whether following `start`'s weighted children leads back to `start`.
fn in_cycle(start: &str, drafts: &BTreeMap<&str, Result<Draft, String>>) -> bool {
    let mut stack = vec![start.to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = stack.pop() {
        if let Some(Ok(Draft::Weighted(children))) = drafts.get(n.as_str()) {
            for (c, _) in children {
                if c == start {
                    return true;
                }
                if seen.insert(c.clone()) {
                    stack.push(c.clone());
                }
            }
        }
    }
    false
}

/// Routers: status of each, and per UDP entrypoint the enabled routers on it (name, service index).
fn compile_routers<'a>(
    items: &'a BTreeMap<String, (&'a str, &'a UdpRouter)>,
    services: &HashMap<String, usize>,
    ctx: &'a CompileContext,
    report: &mut Report,
) -> BTreeMap<&'a str, Vec<(&'a str, usize)>> {
    let mut per_ep: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
    for (name, (provider, r)) in items {
        let mut errors = Vec::new();
        let wanted: Vec<&str> = if r.entry_points.is_empty() {
            ctx.udp_entry_points.iter().map(String::as_str).collect()
        } else {
            r.entry_points.iter().map(String::as_str).collect()
        };
        let mut using = Vec::new();
        for ep in wanted {
            match ctx.udp_entry_points.iter().find(|e| e.as_str() == ep) {
                Some(e) => using.push(e.as_str()),
                None => errors.push(format!("entryPoint \"{ep}\" doesn't exist")),
            }
        }
        let qualified = dynamic::qualify(&r.service, provider);
        let service = if r.service.is_empty() {
            Err("the service is missing on the udp router".to_string())
        } else {
            services
                .get(&qualified)
                .copied()
                .ok_or_else(|| format!("the udp service \"{qualified}\" does not exist"))
        };
        let status = match (&service, using.is_empty()) {
            (Ok(_), false) if errors.is_empty() => Status::Enabled,
            (Ok(_), false) => Status::Warning,
            (Ok(_), true) => {
                errors.push("no valid entryPoint for this router".into());
                Status::Disabled
            }
            (Err(e), _) => {
                errors.push(e.clone());
                Status::Disabled
            }
        };
        if status == Status::Disabled {
            report.issues.push(format!(
                "UDP router `{name}` disabled: {}",
                errors.join("; ")
            ));
        }
        if let (Ok(s), true) = (service, status != Status::Disabled) {
            for ep in &using {
                per_ep.entry(ep).or_default().push((name.as_str(), s));
            }
        }
        let mut st = ItemStatus::new(status, provider).with_errors(errors);
        st.entry_points = using.iter().map(|s| s.to_string()).collect();
        st.service = (!r.service.is_empty()).then_some(qualified);
        report.status.udp_routers.insert(name.clone(), st);
    }
    per_ep
}

/// The router an entrypoint serves: Traefik sorts the entrypoint's routers by name in reverse and takes the
/// first that builds.
fn choose_route(
    ep: &str,
    routers: Option<&Vec<(&str, usize)>>,
    report: &mut Report,
) -> Option<UdpRoute> {
    let routers = routers?;
    let (name, service) = routers.iter().max_by(|a, b| a.0.cmp(b.0))?;
    if routers.len() > 1 {
        let all: Vec<&str> = routers.iter().map(|r| r.0).collect();
        report.issues.push(format!(
            "UDP entrypoint `{ep}`: more than one UDP router ({}); `{name}` is served, as Traefik serves one router per UDP entrypoint",
            all.join(", ")
        ));
    }
    Some(UdpRoute {
        name: Arc::from(*name),
        service: *service,
    })
}

/// UDP items their provider dropped: listed as disabled with the provider's error.
fn list_dropped(input: &BuildInput, report: &mut Report) {
    for (provider, cfg) in &input.providers {
        for d in &cfg.dropped {
            let map = match d.kind {
                ItemKind::UdpRouter => &mut report.status.udp_routers,
                ItemKind::UdpService => &mut report.status.udp_services,
                _ => continue,
            };
            let st = map
                .entry(dynamic::qualify(&d.name, provider))
                .or_insert_with(|| ItemStatus::new(Status::Disabled, provider));
            if st.status == Status::Disabled && !st.errors.contains(&d.error) {
                st.errors.push(d.error.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{compile, BuildInput, CarriedState, CompileContext};
    use crate::config::sources::from_yaml;
    use crate::dynamic::decode_configuration;
    use crate::table::udp::UdpServiceKind;
    use crate::table::{RoutingTable, Status};

    fn table(yaml: &str, udp_eps: &[&str]) -> (RoutingTable, Vec<String>) {
        let (cfg, errors) = decode_configuration(&from_yaml(yaml, "t.yml").expect("yaml"));
        assert!(errors.is_empty(), "{errors:?}");
        let mut input = BuildInput::default();
        input
            .providers
            .insert("file".into(), std::sync::Arc::new(cfg));
        let ctx = CompileContext {
            udp_entry_points: udp_eps.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let c = compile(&input, &ctx, &CarriedState::default(), 1);
        (c.table, c.issues)
    }

    #[test]
    fn one_router_per_entrypoint_the_greatest_name_as_traefik() {
        let (t, issues) = table(
            r#"
udp:
  routers:
    alpha: {service: s}
    beta: {service: s, entryPoints: [dns]}
    zulu: {service: missing}
  services:
    s:
      loadBalancer:
        servers: [{address: "127.0.0.1:53"}]
"#,
            &["dns", "game"],
        );
        // `zulu` sorts first but does not build: `beta` is served on dns, `alpha` (all UDP entrypoints)
        // on game.
        let route = |i| t.udp.route(i).map(|r| r.name.to_string());
        assert_eq!(route(0).as_deref(), Some("beta@file"));
        assert_eq!(route(1).as_deref(), Some("alpha@file"));
        assert!(issues
            .iter()
            .any(|i| i.contains("more than one UDP router")));
        let st = &t.status.udp_routers;
        assert_eq!(st["zulu@file"].status, Status::Disabled);
        assert_eq!(st["alpha@file"].status, Status::Enabled);
        assert_eq!(st["alpha@file"].entry_points, ["dns", "game"]);
    }

    #[test]
    fn weighted_services_pick_by_weight_and_broken_ones_are_disabled() {
        let (t, _) = table(
            r#"
udp:
  routers:
    r: {service: w}
  services:
    w:
      weighted:
        services: [{name: a, weight: 3}, {name: b, weight: 1}]
    a:
      loadBalancer:
        servers: [{address: "10.0.0.1:53"}]
    b:
      loadBalancer:
        servers: [{address: "10.0.0.2:53"}]
    bad:
      loadBalancer:
        servers: [{address: "10.0.0.3"}]
    uses-bad:
      weighted:
        services: [{name: bad}]
    loop1:
      weighted:
        services: [{name: loop2}]
    loop2:
      weighted:
        services: [{name: loop1}]
"#,
            &["dns"],
        );
        let svc = t.udp.route(0).map(|r| r.service).expect("route");
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..8 {
            let target = t.udp.pick(svc).expect("a server");
            *counts.entry(target.address.to_string()).or_insert(0) += 1;
        }
        assert_eq!(counts["10.0.0.1:53"], 6);
        assert_eq!(counts["10.0.0.2:53"], 2);
        let st = &t.status.udp_services;
        for name in ["bad@file", "uses-bad@file", "loop1@file", "loop2@file"] {
            assert_eq!(st[name].status, Status::Disabled, "{name}");
        }
        assert!(st["bad@file"].errors[0].contains("10.0.0.3"));
        assert!(t.udp.services.iter().all(
            |s| !matches!(&s.kind, UdpServiceKind::Weighted { children, .. } if children.is_empty())
        ));
    }
}
