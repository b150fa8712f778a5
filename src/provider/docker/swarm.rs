//! Swarm services → [`Workload`]s: one `GET /services`, one `GET /networks` and one `GET /tasks` per read.
//!
//! A service's servers are its tasks that are **running** and whose desired state is still **running**
//! (a task the orchestrator is stopping has desired state `shutdown` and leaves the rotation at once), each
//! at its address on the chosen overlay network; with `lbswarm` the service's virtual IP instead. Task
//! addresses come from `NetworksAttachments`, which bollard's `Task` model lacks, hence the raw call.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::client::{DockerClient, DockerError};
use super::labels::{Settings, Workload};
use super::network::{strip_prefix_len, Attachment};
use super::Reading;

const STACK: &str = "com.docker.stack.namespace";

/// `GET /tasks` with `desired-state=running`, URL-encoded.
const TASKS_PATH: &str = "/tasks?filters=%7B%22desired-state%22%3A%5B%22running%22%5D%7D";

/// The part of a task we read (Docker API `Task`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RawTask {
    /// Task ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Owning service.
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// Current state.
    pub status: RawStatus,
    /// What the orchestrator wants.
    pub desired_state: String,
    /// Networks and addresses.
    pub networks_attachments: Vec<RawAttachment>,
}

/// `Task.Status`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RawStatus {
    /// `running`, `shutdown`, …
    pub state: String,
    /// The container, once created.
    pub container_status: Option<RawContainerStatus>,
}

/// `Task.Status.ContainerStatus`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawContainerStatus {
    /// Container ID.
    #[serde(rename = "ContainerID")]
    pub container_id: String,
}

/// `Task.NetworksAttachments[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RawAttachment {
    /// The network.
    pub network: RawNetwork,
    /// CIDR addresses (`10.0.1.5/24`).
    pub addresses: Vec<String>,
}

/// `…Network`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawNetwork {
    /// Network ID.
    #[serde(rename = "ID")]
    pub id: String,
}

/// Parses the `GET /tasks` answer, keeping only tasks that serve: running and meant to keep running, and
/// not known to be stopping (by task or container ID).
pub fn serving_tasks(body: &[u8], stopping: &BTreeSet<String>) -> Result<Vec<RawTask>, String> {
    let tasks: Vec<RawTask> =
        serde_json::from_slice(body).map_err(|e| format!("unexpected JSON: {e}"))?;
    Ok(tasks
        .into_iter()
        .filter(|t| t.status.state == "running" && t.desired_state == "running")
        .filter(|t| {
            !stopping.contains(&t.id)
                && !t
                    .status
                    .container_status
                    .as_ref()
                    .is_some_and(|c| stopping.contains(&c.container_id))
        })
        .collect())
}

/// Reads every Swarm service into workloads (disabled ones left out, problems listed).
pub async fn read(
    client: &DockerClient,
    settings: &Settings,
    provider_network: Option<&str>,
    ours: &BTreeSet<String>,
    stopping: &BTreeSet<String>,
) -> Result<Reading, DockerError> {
    let services = client
        .docker
        .list_services(None)
        .await
        .map_err(client.api_error("GET /services"))?;
    let networks = client
        .docker
        .list_networks(None)
        .await
        .map_err(client.api_error("GET /networks"))?;
    let body = client.raw_get(TASKS_PATH).await?;
    let tasks =
        serving_tasks(&body, stopping).map_err(|reason| super::client::DockerError::Raw {
            endpoint: client.endpoint_text.clone(),
            call: "GET /tasks".into(),
            reason,
        })?;
    let cluster = Cluster {
        networks: networks_by_id(networks),
        tasks,
        settings,
        provider_network,
        ours,
    };
    let mut reading = Reading::default();
    for svc in &services {
        if let Some(w) = service_workload(svc, &cluster, &mut reading) {
            reading.workloads.push(w);
        }
    }
    Ok(reading)
}

/// What one read knows besides the services themselves.
struct Cluster<'a> {
    /// Every network, by ID.
    networks: BTreeMap<String, Attachment>,
    /// The serving tasks of every service.
    tasks: Vec<RawTask>,
    settings: &'a Settings,
    provider_network: Option<&'a str>,
    ours: &'a BTreeSet<String>,
}

/// `GET /networks` by ID; a network named `ingress` counts as the routing mesh even when not flagged so.
fn networks_by_id(networks: Vec<bollard::models::Network>) -> BTreeMap<String, Attachment> {
    networks
        .into_iter()
        .filter_map(|n| {
            let id = n.id?;
            let name = n.name.unwrap_or_default();
            Some((
                id.clone(),
                Attachment {
                    ingress: n.ingress.unwrap_or(false) || name == "ingress",
                    name,
                    id,
                },
            ))
        })
        .collect()
}

/// One service → its workload, or `None` when it is skipped (disabled, or a problem listed in `reading`).
fn service_workload(
    svc: &bollard::models::Service,
    cluster: &Cluster<'_>,
    reading: &mut Reading,
) -> Option<Workload> {
    let spec = svc.spec.as_ref()?;
    let name = spec.name.clone().unwrap_or_default();
    let service_id = svc.id.clone().unwrap_or_default();
    let labels: BTreeMap<String, String> = spec
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut w = Workload {
        name: name.clone(),
        container_name: name.clone(),
        labels,
        ..Default::default()
    };
    let o = reading.enabled_options(&w, cluster.settings)?;
    let vips = virtual_ips(svc);
    let attached = service_networks(spec, &vips, &cluster.networks);
    let net = reading.pick_network(
        &format!("service `{name}`"),
        &attached,
        o.network.as_deref().or(cluster.provider_network),
        w.labels.get(STACK).map(String::as_str),
        cluster.ours,
    )?;
    if o.lbswarm {
        let Some((_, addr)) = vips.iter().find(|v| v.0 == net.id) else {
            reading.problems.push(format!("service `{name}`: lbswarm is set but the service has no virtual IP on `{}` (endpoint mode dnsrr?); skipped", net.name));
            return None;
        };
        w.addresses = vec![strip_prefix_len(addr).to_string()];
    } else {
        w.addresses = task_addresses(&cluster.tasks, &service_id, &net.id);
    }
    if w.addresses.is_empty() && !cluster.settings.allow_empty_services {
        tracing::debug!(service = %name, "no running task; not routed");
        return None;
    }
    Some(w)
}

/// The service's virtual IPs as (network ID, CIDR address).
fn virtual_ips(svc: &bollard::models::Service) -> Vec<(String, String)> {
    svc.endpoint
        .as_ref()
        .and_then(|e| e.virtual_ips.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| Some((v.network_id?, v.addr?)))
        .collect()
}

/// The networks a service is attached to (by its task template, by ID or name, and by its virtual IPs),
/// once each, in name order.
fn service_networks(
    spec: &bollard::models::ServiceSpec,
    vips: &[(String, String)],
    by_id: &BTreeMap<String, Attachment>,
) -> Vec<Attachment> {
    let by_name = |t: &str| by_id.values().find(|a| a.name == t).cloned();
    let targets = spec
        .task_template
        .as_ref()
        .and_then(|t| t.networks.clone())
        .unwrap_or_default();
    let mut attached: Vec<Attachment> = Vec::new();
    for t in targets
        .iter()
        .filter_map(|n| n.target.clone())
        .chain(vips.iter().map(|v| v.0.clone()))
    {
        if let Some(a) = by_id.get(&t).cloned().or_else(|| by_name(&t)) {
            if !attached.iter().any(|x| x.id == a.id) {
                attached.push(a);
            }
        }
    }
    attached.sort_by(|a, b| a.name.cmp(&b.name));
    attached
}

/// The service's serving tasks' addresses on network `net_id`, without prefix length, sorted and unique.
fn task_addresses(tasks: &[RawTask], service_id: &str, net_id: &str) -> Vec<String> {
    let mut addrs: Vec<String> = tasks
        .iter()
        .filter(|t| t.service_id == service_id)
        .filter_map(|t| {
            t.networks_attachments
                .iter()
                .find(|a| a.network.id == net_id)
        })
        .filter_map(|a| a.addresses.first().map(|x| strip_prefix_len(x).to_string()))
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_tasks_meant_to_run_and_not_stopping() {
        let body = br#"[
          {"ID":"t1","ServiceID":"s","DesiredState":"running","Status":{"State":"running","ContainerStatus":{"ContainerID":"c1"}},
           "NetworksAttachments":[{"Network":{"ID":"n1","Spec":{"Name":"net"}},"Addresses":["10.0.1.5/24"]}]},
          {"ID":"t2","ServiceID":"s","DesiredState":"shutdown","Status":{"State":"running"}},
          {"ID":"t3","ServiceID":"s","DesiredState":"running","Status":{"State":"starting"}},
          {"ID":"t4","ServiceID":"s","DesiredState":"running","Status":{"State":"running","ContainerStatus":{"ContainerID":"c4"}}},
          {"ID":"t5","ServiceID":"s","DesiredState":"running","Status":{"State":"running"},"Unknown":1}
        ]"#;
        let stopping: BTreeSet<String> = ["c4".to_string()].into();
        let t = serving_tasks(body, &stopping).expect("parse");
        assert_eq!(
            t.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["t1", "t5"]
        );
        assert_eq!(t[0].networks_attachments[0].addresses, ["10.0.1.5/24"]);
        assert!(serving_tasks(b"{", &stopping).is_err());
    }
}
