//! Swarm services → [`Workload`]s: one `GET /services`, one `GET /networks` and one `GET /tasks` per read.
//!
//! A service's servers are its tasks that are **running** and whose desired state is still **running**
//! (a task the orchestrator is stopping has desired state `shutdown` and leaves the rotation at once), each
//! at its address on the chosen overlay network; with `lbswarm` the service's virtual IP instead. Task
//! addresses come from `NetworksAttachments`, which bollard's `Task` model lacks, hence the raw call.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::client::{DockerClient, DockerError};
use super::labels::{self, Settings, Workload};
use super::network::{choose, not_attached, strip_prefix_len, Attachment};
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
    let by_id: BTreeMap<String, Attachment> = networks
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
        .collect();
    let by_name = |t: &str| by_id.values().find(|a| a.name == t).cloned();
    let mut reading = Reading::default();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
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
        let vips: Vec<(String, String)> = svc
            .endpoint
            .as_ref()
            .and_then(|e| e.virtual_ips.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| Some((v.network_id?, v.addr?)))
            .collect();
        let mut attached: Vec<Attachment> = Vec::new();
        let targets = spec
            .task_template
            .as_ref()
            .and_then(|t| t.networks.clone())
            .unwrap_or_default();
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
        let wanted = o.network.as_deref().or(provider_network);
        let chosen = choose(
            &attached,
            wanted,
            w.labels.get(STACK).map(String::as_str),
            ours,
        )
        .and_then(|(i, warning)| Ok((attached.get(i).ok_or_else(not_attached)?, warning)));
        let (net, warning) = match chosen {
            Ok(c) => c,
            Err(reason) => {
                reading
                    .problems
                    .push(format!("service `{name}`: {reason}; skipped"));
                continue;
            }
        };
        if let Some(warning) = warning {
            reading
                .problems
                .push(format!("service `{name}`: {warning}"));
        }
        if o.lbswarm {
            match vips.iter().find(|v| v.0 == net.id) {
                Some((_, addr)) => w.addresses = vec![strip_prefix_len(addr).to_string()],
                None => {
                    reading.problems.push(format!("service `{name}`: lbswarm is set but the service has no virtual IP on `{}` (endpoint mode dnsrr?); skipped", net.name));
                    continue;
                }
            }
        } else {
            let mut addrs: Vec<String> = tasks
                .iter()
                .filter(|t| t.service_id == service_id)
                .filter_map(|t| {
                    t.networks_attachments
                        .iter()
                        .find(|a| a.network.id == net.id)
                })
                .filter_map(|a| a.addresses.first().map(|x| strip_prefix_len(x).to_string()))
                .collect();
            addrs.sort();
            addrs.dedup();
            w.addresses = addrs;
        }
        if w.addresses.is_empty() && !settings.allow_empty_services {
            tracing::debug!(service = %name, "no running task; not routed");
            continue;
        }
        reading.workloads.push(w);
    }
    Ok(reading)
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
