//! Plain containers (`docker run`, compose) → [`Workload`]s, with one `GET /containers/json` per read.
//!
//! Only running containers are listed; a container with a health check is skipped until it is `healthy`
//! (read from the list answer itself, so there is no inspection per container), or with
//! `allowEmptyServices` kept without servers. The service name is
//! Traefik's: compose `service_project` when the compose labels are present, else the container name.

use std::collections::{BTreeMap, BTreeSet};

use super::client::{DockerClient, DockerError};
use super::labels::{Settings, Workload};
use bollard::models::ContainerSummary;

use super::network::Attachment;
use super::Reading;

const COMPOSE_PROJECT: &str = "com.docker.compose.project";
const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// Reads every running container into workloads (disabled ones left out, problems listed).
pub async fn read(
    client: &DockerClient,
    settings: &Settings,
    provider_network: Option<&str>,
    ours: &BTreeSet<String>,
    stopping: &BTreeSet<String>,
) -> Result<Reading, DockerError> {
    let opts = bollard::query_parameters::ListContainersOptions {
        all: false,
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
    let status = health(c);
    let serves = health_serves(status.as_deref());
    if !serves && !settings.allow_empty_services {
        tracing::debug!(container = %container_name, health = ?status, "container skipped until healthy");
        return None;
    }
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
    let o = reading.enabled_options(&w, settings)?;
    w.exposed_ports = tcp_ports(c);
    if !serves {
        // `allowEmptyServices`: its routers and services are kept, without servers (503, not 404).
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

/// Whether a container in this health state gets servers: it has no health check, or it is `healthy`.
/// Others are left out until healthy, as Traefik does; with `allowEmptyServices` their routers and services
/// are kept without servers.
pub fn health_serves(health: Option<&str>) -> bool {
    health.is_none_or(|h| h.is_empty() || h == "none" || h == "healthy")
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
