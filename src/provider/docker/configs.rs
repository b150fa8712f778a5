//! Swarm configs through the Docker API of a manager: the replicated store the ACME `swarm://` storage keeps
//! its certificates, account, leases and challenge answers in (`tls::acme::swarm`).
//!
//! Exactly these calls, so a socket proxy can allow just them:
//! `GET /configs?filters={"label":[…]}` (list, with data), `GET /configs/{name or id}` (inspect),
//! `POST /configs/create`, `POST /configs/{id}/update?version=N` (labels only), `DELETE /configs/{id}`, and
//! `GET /events?filters={"type":["config"]}`.
//! Creating a config whose name exists fails with 409 Conflict — Raft serializes it, which is what the
//! leases build on ([`Created::Exists`]). A config's name and data are immutable; its labels can be changed
//! by an update that names the version it read, and Swarm's store refuses the update when the object changed
//! since ("update out of sequence"): a compare-and-swap in Raft, which the lease heartbeat builds on
//! ([`Updated::Stale`]).

use std::collections::{BTreeMap, HashMap};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bollard::errors::Error as BollardError;
use bollard::models::{Config, ConfigSpec};
use bollard::query_parameters::{EventsOptions, ListConfigsOptions, UpdateConfigOptions};
use futures_util::{Stream, StreamExt};

use super::client::{DockerClient, DockerError};

/// One config as read back: identity, labels and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigObject {
    /// Swarm id (what removal takes, so a removal never hits a newer object of the same name).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Decoded data.
    pub data: Vec<u8>,
    /// Raft index of the object's last change: orders objects by creation (only a lease's labels change),
    /// and is the version a labels update names.
    pub index: u64,
}

/// What a create did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// Created, with this id.
    Id(String),
    /// A config with this name exists (409): someone else created it first.
    Exists,
}

/// What a labels update did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Updated {
    /// Applied: the object had the version named.
    Done,
    /// Refused: the object changed since that version (someone else updated it first).
    Stale,
    /// The object does not exist (any more).
    Gone,
}

fn status(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn object(c: Config) -> Option<ConfigObject> {
    let spec = c.spec?;
    let data = spec
        .data
        .as_deref()
        .and_then(|d| STANDARD.decode(d.trim()).ok())
        .unwrap_or_default();
    Some(ConfigObject {
        id: c.id?,
        name: spec.name?,
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
        data,
        index: c.version.and_then(|v| v.index).unwrap_or(0),
    })
}

/// `GET /configs` filtered by `label` (`key` or `key=value`), with their data.
pub async fn list(client: &DockerClient, label: &str) -> Result<Vec<ConfigObject>, DockerError> {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let opts = ListConfigsOptions {
        filters: Some(filters),
    };
    let all = client
        .docker
        .list_configs(Some(opts))
        .await
        .map_err(client.api_error("GET /configs"))?;
    Ok(all.into_iter().filter_map(object).collect())
}

/// `GET /configs/{name or id}`; `None` when it does not exist.
pub async fn inspect(
    client: &DockerClient,
    name_or_id: &str,
) -> Result<Option<ConfigObject>, DockerError> {
    match client.docker.inspect_config(name_or_id).await {
        Ok(c) => Ok(object(c)),
        Err(e) if status(&e) == Some(404) => Ok(None),
        Err(e) => Err(client.api_error("GET /configs/{id}")(e)),
    }
}

/// `POST /configs/create`; [`Created::Exists`] when the name is taken.
pub async fn create(
    client: &DockerClient,
    name: &str,
    labels: &BTreeMap<String, String>,
    data: &[u8],
) -> Result<Created, DockerError> {
    let spec = ConfigSpec {
        name: Some(name.to_string()),
        labels: Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        data: Some(STANDARD.encode(data)),
        templating: None,
    };
    match client.docker.create_config(spec).await {
        Ok(r) => Ok(Created::Id(r.id)),
        Err(e) if status(&e) == Some(409) => Ok(Created::Exists),
        Err(e) => Err(client.api_error("POST /configs/create")(e)),
    }
}

/// `POST /configs/{id}/update?version={version}` replacing the labels of config `id` (named `name`: Swarm
/// checks the name is unchanged; the data is omitted, so it stays). Swarm compares `version` with the
/// object's current Raft version inside the store's transaction: of two updates naming the same version,
/// exactly one is applied ([`Updated::Stale`] for the other; the engine answers 500 "update out of sequence").
pub async fn update_labels(
    client: &DockerClient,
    id: &str,
    name: &str,
    version: u64,
    labels: &BTreeMap<String, String>,
) -> Result<Updated, DockerError> {
    let spec = ConfigSpec {
        name: Some(name.to_string()),
        labels: Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        data: None,
        templating: None,
    };
    let opts = UpdateConfigOptions {
        version: i64::try_from(version).unwrap_or(i64::MAX),
    };
    match client.docker.update_config(id, spec, opts).await {
        Ok(()) => Ok(Updated::Done),
        Err(e) if status(&e) == Some(404) => Ok(Updated::Gone),
        Err(BollardError::DockerResponseServerError { message, .. })
            if message.contains("out of sequence") =>
        {
            Ok(Updated::Stale)
        }
        Err(e) => Err(client.api_error("POST /configs/{id}/update")(e)),
    }
}

/// `DELETE /configs/{id}`; `false` when it was already gone.
pub async fn remove(client: &DockerClient, id: &str) -> Result<bool, DockerError> {
    match client.docker.delete_config(id).await {
        Ok(()) => Ok(true),
        Err(e) if status(&e) == Some(404) => Ok(false),
        Err(e) => Err(client.api_error("DELETE /configs/{id}")(e)),
    }
}

/// `GET /events?filters={"type":["config"]}`: one item per config event (create, remove, update). The
/// stream ends (or yields an error) when the connection drops; the caller resyncs and reconnects.
pub fn events(client: &DockerClient) -> impl Stream<Item = Result<String, DockerError>> + '_ {
    let filters = HashMap::from([("type".to_string(), vec!["config".to_string()])]);
    let opts = EventsOptions {
        since: None,
        until: None,
        filters: Some(filters),
    };
    client.docker.events(Some(opts)).map(move |r| {
        r.map(|m| m.action.unwrap_or_default())
            .map_err(client.api_error("GET /events"))
    })
}
