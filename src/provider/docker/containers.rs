//! Plain containers (`docker run`, compose) → [`Workload`]s, with one `GET /containers/json` per read.
//!
//! Every container is listed (one call, no inspection per container); one that is not running is left
//! out, unless its `traefik.docker.allownonrunning` label keeps its routers and services without servers
//! (Traefik v3.6). A container with a health check is skipped until it is `healthy` (read from the list
//! answer itself), or with `allowEmptyServices` kept without servers. The service name is
//! Traefik's: compose `service_project` when the compose labels are present, else the container name.

use std::collections::{BTreeMap, BTreeSet};

use super::client::{DockerClient, DockerError};
use super::labels::{self, PortBinding, Settings, Workload};
use bollard::models::ContainerSummary;

use super::network::Attachment;
use super::Reading;

const COMPOSE_PROJECT: &str = "com.docker.compose.project";
const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// Reads the containers into workloads (disabled and non-running ones left out, problems listed).
pub async fn read(
    client: &DockerClient,
    settings: &Settings,
    provider_network: Option<&str>,
    ours: &BTreeSet<String>,
    stopping: &BTreeSet<String>,
) -> Result<Reading, DockerError> {
    // Every container, as Traefik: those not running are left out unless `traefik.docker.allownonrunning`.
    let opts = bollard::query_parameters::ListContainersOptions {
        all: true,
        ..Default::default()
    };
    let list = client
        .docker
        .list_containers(Some(opts))
        .await
        .map_err(client.api_error("GET /containers/json"))?;
    let mut reading = Reading::default();
    for c in &list {
        if stopping.contains(c.id.as_deref().unwrap_or_default()) {
            continue;
        }
        let w = container_workload(c, settings, provider_network, ours, &mut reading);
        if let Some(w) = w {
            reading.workloads.push(w);
        }
    }
    Ok(reading)
}

/// One container → its workload, or `None` when it is skipped (not healthy yet, disabled, or a problem
/// listed in `reading`).
fn container_workload(
    c: &ContainerSummary,
    settings: &Settings,
    provider_network: Option<&str>,
    ours: &BTreeSet<String>,
    reading: &mut Reading,
) -> Option<Workload> {
    let id = c.id.clone().unwrap_or_default();
    let container_name = c
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| id.chars().take(12).collect());
    let labels: BTreeMap<String, String> =
        c.labels.clone().unwrap_or_default().into_iter().collect();
    let name = match (labels.get(COMPOSE_SERVICE), labels.get(COMPOSE_PROJECT)) {
        (Some(s), Some(p)) => format!("{s}_{p}"),
        _ => container_name.clone(),
    };
    let mut w = Workload {
        name,
        container_name: container_name.clone(),
        labels,
        ..Default::default()
    };
    let state = c.state.as_ref().map(|s| s.to_string());
    let status = health(c);
    let admitted = match admission(state.as_deref(), status.as_deref(), false, settings) {
        Admission::Serve => Admission::Serve,
        // Options are read (and their problems reported) only for containers that are kept.
        _ => {
            let allow = labels::options(&w, settings).is_ok_and(|o| o.allow_non_running);
            admission(state.as_deref(), status.as_deref(), allow, settings)
        }
    };
    if admitted == Admission::Skip {
        tracing::debug!(container = %container_name, state = ?state, health = ?status, "container skipped until running and healthy");
        return None;
    }
    let o = reading.enabled_options(&w, settings)?;
    w.exposed_ports = tcp_ports(c);
    w.bindings = bindings(c);
    if admitted == Admission::WithoutServers {
        return Some(w);
    }
    let mode = c
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    if mode == "host" {
        w.addresses = vec!["127.0.0.1".into()];
        return Some(w);
    }
    let (attached, ips) = container_networks(c);
    let owner = format!("container `{container_name}`");
    let net = reading.pick_network(
        &owner,
        &attached,
        o.network.as_deref().or(provider_network),
        w.labels.get(COMPOSE_PROJECT).map(String::as_str),
        ours,
    )?;
    match ips.get(&net.name).filter(|ip| !ip.is_empty()) {
        Some(ip) => w.addresses = vec![ip.clone()],
        None => {
            reading.problems.push(format!(
                "{owner}: no IP address on network `{}`; skipped",
                net.name
            ));
            return None;
        }
    }
    Some(w)
}

/// What the provider does with a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Left out.
    Skip,
    /// Its routers and services are kept without servers (503 instead of 404).
    WithoutServers,
    /// Routed to.
    Serve,
}

/// Traefik's rule for a container's `state` (`running`, `exited`, …; `None`: unknown, taken as running)
/// and `health` (`None`, `none`: no health check): a running, healthy container is served. Otherwise it is
/// kept without servers when it carries `traefik.docker.allownonrunning=true` (`allow_non_running`), or
/// when it is running but not healthy and the provider has `allowEmptyServices`; else it is left out.
pub fn admission(
    state: Option<&str>,
    health: Option<&str>,
    allow_non_running: bool,
    settings: &Settings,
) -> Admission {
    let running = state.is_none_or(|s| s.is_empty() || s == "running");
    let healthy = health.is_none_or(|h| h.is_empty() || h == "none" || h == "healthy");
    if running && healthy {
        Admission::Serve
    } else if allow_non_running || (running && settings.allow_empty_services) {
        Admission::WithoutServers
    } else {
        Admission::Skip
    }
}

/// The container's health: from the list answer's `Health`, else from its status text (`Up 3s (healthy)`).
fn health(c: &ContainerSummary) -> Option<String> {
    c.health
        .as_ref()
        .and_then(|h| h.status.as_ref())
        .map(|s| s.to_string())
        .or_else(|| {
            let st = c.status.as_deref().unwrap_or("");
            if st.contains("(healthy)") {
                Some("healthy".into())
            } else if st.contains("(unhealthy)") {
                Some("unhealthy".into())
            } else if st.contains("(health: starting)") {
                Some("starting".into())
            } else {
                None
            }
        })
}

/// The container's published ports (for `useBindPortIP`), in the order the engine lists them.
fn bindings(c: &ContainerSummary) -> Vec<PortBinding> {
    c.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortBinding {
                private_port: p.private_port,
                host_ip: p.ip.clone().unwrap_or_default(),
                host_port: p.public_port?,
            })
        })
        .collect()
}

/// The container's private TCP ports, sorted and unique.
fn tcp_ports(c: &ContainerSummary) -> Vec<u16> {
    let mut ports: Vec<u16> = c
        .ports
        .as_ref()
        .map(|ps| {
            ps.iter()
                .filter(|p| p.typ.as_ref().is_none_or(|t| t.to_string() == "tcp"))
                .map(|p| p.private_port)
                .collect()
        })
        .unwrap_or_default();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The container's networks in name order, and its IP address on each (by network name).
fn container_networks(c: &ContainerSummary) -> (Vec<Attachment>, BTreeMap<String, String>) {
    let nets = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    let mut attached = Vec::new();
    let mut ips = BTreeMap::new();
    for (name, ep) in nets {
        ips.insert(name.clone(), ep.ip_address.unwrap_or_default());
        attached.push(Attachment {
            ingress: name == "ingress",
            id: ep.network_id.unwrap_or_default(),
            name,
        });
    }
    attached.sort_by(|a, b| a.name.cmp(&b.name));
    (attached, ips)
}
