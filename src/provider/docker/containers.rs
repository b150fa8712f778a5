//! Plain containers (`docker run`, compose) → [`Workload`]s, with one `GET /containers/json` per read.
//!
//! Only running containers are listed; a container with a health check is skipped until it is `healthy`
//! (read from the list answer itself, so there is no inspection per container). The service name is
//! Traefik's: compose `service_project` when the compose labels are present, else the container name.

use std::collections::{BTreeMap, BTreeSet};

use super::client::{DockerClient, DockerError};
use super::labels::{self, Settings, Workload};
use super::network::{choose, not_attached, Attachment};
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
    for c in list {
        let id = c.id.clone().unwrap_or_default();
        if stopping.contains(&id) {
            continue;
        }
        let container_name = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| id.chars().take(12).collect());
        let labels: BTreeMap<String, String> =
            c.labels.clone().unwrap_or_default().into_iter().collect();
        let health = c
            .health
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
            });
        if let Some(h) = health.filter(|h| !h.is_empty() && h != "none" && h != "healthy") {
            tracing::debug!(container = %container_name, health = %h, "container skipped until healthy");
            continue;
        }
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
        let o = match labels::options(&w, settings) {
            Ok(o) => o,
            Err(e) => {
                reading.problems.push(e.to_string());
                continue;
            }
        };
        if !o.enable {
            continue;
        }
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
        w.exposed_ports = ports;
        let mode = c
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.clone())
            .unwrap_or_default();
        if mode == "host" {
            w.addresses = vec!["127.0.0.1".into()];
        } else {
            let nets = c
                .network_settings
                .as_ref()
                .and_then(|n| n.networks.clone())
                .unwrap_or_default();
            let mut attached: Vec<(Attachment, String)> = nets
                .into_iter()
                .map(|(name, ep)| {
                    (
                        Attachment {
                            ingress: name == "ingress",
                            id: ep.network_id.unwrap_or_default(),
                            name,
                        },
                        ep.ip_address.unwrap_or_default(),
                    )
                })
                .collect();
            attached.sort_by(|a, b| a.0.name.cmp(&b.0.name));
            let only: Vec<Attachment> = attached.iter().map(|(a, _)| a.clone()).collect();
            let wanted = o.network.as_deref().or(provider_network);
            let chosen = choose(
                &only,
                wanted,
                w.labels.get(COMPOSE_PROJECT).map(String::as_str),
                ours,
            )
            .and_then(|(i, warning)| Ok((attached.get(i).ok_or_else(not_attached)?, warning)));
            match chosen {
                Ok(((net, ip), warning)) => {
                    if let Some(warning) = warning {
                        reading
                            .problems
                            .push(format!("container `{container_name}`: {warning}"));
                    }
                    if ip.is_empty() {
                        reading.problems.push(format!(
                            "container `{container_name}`: no IP address on network `{}`; skipped",
                            net.name
                        ));
                        continue;
                    }
                    w.addresses = vec![ip.clone()];
                }
                Err(reason) => {
                    reading
                        .problems
                        .push(format!("container `{container_name}`: {reason}; skipped"));
                    continue;
                }
            }
        }
        reading.workloads.push(w);
    }
    Ok(reading)
}
