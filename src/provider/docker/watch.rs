//! The provider loop: connect, read everything, publish; then react to events, resync periodically, and
//! reconnect with backoff when the daemon goes away.
//!
//! Lifecycle: `connect` (negotiate the API version) → subscribe to events → full read → publish → wait for
//! an event, the resync timer or cancellation → re-read (one list call per kind) → publish if changed. Bursts
//! of events are coalesced for [`DEBOUNCE`]; a container `kill`/`stop`/`die` is acted on at once, and its
//! container (and Swarm task) is left out of the rotation from then on, before the process exits; so is a
//! container whose `HEALTHCHECK` turns unhealthy (`health_status` events), until it is healthy again. Swarm
//! mode also listens to `node` events (a drained node retires its tasks). After a
//! Swarm service changes, tasks are re-read every [`FAST_INTERVAL`] for [`FAST_WINDOW`] so that tasks
//! starting (also on other nodes, which send us no container events) join quickly. When the event stream or
//! a read fails, the last snapshot stays published (nothing on the request path waits for Docker), and the
//! loop reconnects after a jittered backoff (1 s doubling to 30 s), then reads everything again, which
//! removes whatever went away meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{DockerClient, DockerError};
use super::labels::Mode;
use super::{assemble, containers, swarm, ProviderSpec, Reading};
use crate::backoff::Backoff;
use crate::dynamic::Snapshot;

/// How long a burst of events may last before the re-read.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Re-read period after a Swarm change.
pub const FAST_INTERVAL: Duration = Duration::from_millis(250);
/// How long the fast re-reads go on after the last Swarm change.
pub const FAST_WINDOW: Duration = Duration::from_secs(10);
/// How long a killed container stays out of the rotation even if the API still lists it running.
const STOPPING_TTL: Duration = Duration::from_secs(120);

const CONTAINER_EVENTS: &[&str] = &[
    "start",
    "die",
    "kill",
    "stop",
    "health_status",
    "destroy",
    "pause",
    "unpause",
];

/// Runs one provider until `cancel`. Never returns an error: problems are logged and retried.
pub async fn run(spec: ProviderSpec, tx: watch::Sender<Snapshot>, cancel: CancellationToken) {
    let name = spec.name;
    if let Err(e) = super::client::Endpoint::parse(&spec.endpoint, spec.cfg.tls.as_ref()) {
        tracing::error!(
            provider = name,
            "{e}; provider {name} disabled, the other providers keep working"
        );
        return;
    }
    let mut backoff = Backoff::docker();
    let mut state = LoopState::default();
    let mut failures = 0u32;
    loop {
        let outcome = session(&spec, &tx, &cancel, &mut state, &mut backoff).await;
        if cancel.is_cancelled() {
            return;
        }
        if let Err(e) = outcome {
            failures += 1;
            if failures == 1 {
                tracing::error!(
                    provider = name,
                    "{e}; serving the last known configuration and retrying"
                );
            } else {
                tracing::warn!(provider = name, attempt = failures, "{e}");
            }
        } else {
            failures = 0;
        }
        let delay = backoff.next_delay();
        tracing::info!(
            provider = name,
            "reconnecting to {} in {delay:?}",
            spec.endpoint
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

#[derive(Default)]
struct LoopState {
    /// Container or task IDs seen stopping, with when.
    stopping: HashMap<String, Instant>,
    /// Lines logged after the last read (only new ones are logged again).
    logged: BTreeSet<String>,
}

/// One connection's life; returns when the event stream or a read fails (Ok when the stream just ended).
async fn session(
    spec: &ProviderSpec,
    tx: &watch::Sender<Snapshot>,
    cancel: &CancellationToken,
    state: &mut LoopState,
    backoff: &mut Backoff,
) -> Result<(), DockerError> {
    let name = spec.name;
    let client = DockerClient::new(
        &spec.endpoint,
        spec.cfg.tls.as_ref(),
        spec.cfg.http_client_timeout.0,
    )?
    .connect()
    .await?;
    let mut events = if spec.cfg.watch {
        let mut filters = HashMap::new();
        let mut types = vec![
            "container".to_string(),
            "service".to_string(),
            "network".to_string(),
        ];
        // A node drained or paused retires its tasks; Swarm says so with a node `update` event only.
        if spec.mode == Mode::Swarm {
            types.push("node".to_string());
        }
        filters.insert("type".to_string(), types);
        let mut ev: Vec<String> = CONTAINER_EVENTS.iter().map(|s| s.to_string()).collect();
        ev.extend(["create", "update", "remove", "connect", "disconnect"].map(String::from));
        filters.insert("event".to_string(), ev);
        let opts = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        Some(client.docker.events(Some(opts)).boxed())
    } else {
        None
    };
    rebuild(spec, &client, tx, state).await?;
    backoff.reset();
    tracing::info!(provider = name, endpoint = %spec.endpoint, watch = spec.cfg.watch, "connected to the Docker API");
    let mut due: Option<tokio::time::Instant> = None;
    let mut fast_until: Option<Instant> = None;
    let mut next_resync = tokio::time::Instant::now() + spec.refresh;
    loop {
        let fast = fast_until.is_some_and(|t| Instant::now() < t);
        let timer = match due {
            Some(d) => d,
            None if fast => (tokio::time::Instant::now() + FAST_INTERVAL).min(next_resync),
            None => next_resync,
        };
        let event = async {
            match events.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            ev = event => match ev {
                None => {
                    tracing::warn!(provider = name, "Docker event stream ended");
                    return Ok(());
                }
                Some(Err(e)) => return Err(DockerError::Api { endpoint: spec.endpoint.clone(), call: "GET /events", source: e }),
                Some(Ok(ev)) => {
                    let kind = ev.typ.map(|t| t.to_string()).unwrap_or_default();
                    let action = ev.action.unwrap_or_default();
                    let actor = ev.actor.unwrap_or_default();
                    let id = actor.id.unwrap_or_default();
                    let attrs = actor.attributes.unwrap_or_default();
                    tracing::debug!(provider = name, kind = %kind, action = %action, id = %id, "docker event");
                    let now = tokio::time::Instant::now();
                    if kind == "container" && matches!(action.as_str(), "kill" | "stop" | "die") {
                        // `docker kill -s HUP` (a reload) must not take a container out of rotation: only
                        // terminating signals mark it. Swarm tasks being stopped are dropped anyway by the
                        // immediate re-read, which sees their desired state `shutdown`.
                        if action != "kill" || attrs.get("signal").is_some_and(|s| is_terminating(s)) {
                            state.stopping.insert(id.clone(), Instant::now());
                            if let Some(task) = attrs.get("com.docker.swarm.task.id") {
                                state.stopping.insert(task.clone(), Instant::now());
                            }
                        }
                        due = Some(now);
                    } else if kind == "container" && action.starts_with("health_status") {
                        // `health_status: unhealthy` takes the container (and its task: Swarm only retires
                        // it after its restart policy runs) out of rotation at once, `healthy` brings it back.
                        let task = attrs.get("com.docker.swarm.task.id");
                        if health_event_is_unhealthy(&action) {
                            state.stopping.insert(id.clone(), Instant::now());
                            if let Some(task) = task {
                                state.stopping.insert(task.clone(), Instant::now());
                            }
                        } else {
                            state.stopping.remove(&id);
                            if let Some(task) = task {
                                state.stopping.remove(task);
                            }
                        }
                        due = Some(now);
                    } else {
                        if kind == "container" && action == "start" {
                            state.stopping.remove(&id);
                        }
                        due = Some(due.map_or(now + DEBOUNCE, |d| d.min(now + DEBOUNCE)));
                    }
                    if spec.mode == Mode::Swarm {
                        fast_until = Some(Instant::now() + FAST_WINDOW);
                    }
                }
            },
            _ = tokio::time::sleep_until(timer) => {
                due = None;
                rebuild(spec, &client, tx, state).await?;
                if tokio::time::Instant::now() >= next_resync {
                    next_resync = tokio::time::Instant::now() + spec.refresh;
                }
            }
        }
    }
}

/// Whether a container health event (`health_status: unhealthy`, `health_status: healthy`, `… starting`)
/// says the container must get no traffic: anything but `healthy`, as Traefik routes only healthy ones.
fn health_event_is_unhealthy(action: &str) -> bool {
    action
        .split_once(':')
        .is_none_or(|(_, status)| status.trim() != "healthy")
}

/// Whether a `kill` event's signal (number or name) ends the process: TERM, KILL, INT or QUIT.
fn is_terminating(signal: &str) -> bool {
    let s = signal.trim().trim_start_matches("SIG").to_ascii_uppercase();
    matches!(
        s.as_str(),
        "15" | "9" | "2" | "3" | "TERM" | "KILL" | "INT" | "QUIT"
    )
}

/// Reads everything once and publishes the snapshot if it changed; logs new problems once.
async fn rebuild(
    spec: &ProviderSpec,
    client: &DockerClient,
    tx: &watch::Sender<Snapshot>,
    state: &mut LoopState,
) -> Result<(), DockerError> {
    state.stopping.retain(|_, at| at.elapsed() < STOPPING_TTL);
    let stopping: BTreeSet<String> = state.stopping.keys().cloned().collect();
    let ours = self_networks(client).await;
    let reading: Reading = match spec.mode {
        Mode::Containers => {
            containers::read(
                client,
                &spec.settings,
                spec.cfg.network.as_deref(),
                &ours,
                &stopping,
            )
            .await?
        }
        Mode::Swarm => {
            swarm::read(
                client,
                &spec.settings,
                spec.cfg.network.as_deref(),
                &ours,
                &stopping,
            )
            .await?
        }
    };
    let assembled = assemble(&reading.workloads, &spec.settings);
    let mut lines = BTreeMap::new();
    for p in &reading.problems {
        lines.insert(format!("W {p}"), ());
    }
    for e in &assembled.errors {
        lines.insert(format!("E {e}"), ());
    }
    for n in &assembled.notes {
        lines.insert(format!("N {n}"), ());
    }
    let name = spec.name;
    for line in lines.keys() {
        if state.logged.contains(line) {
            continue;
        }
        match line.split_at(2) {
            ("E ", l) => tracing::error!(provider = name, "{l}"),
            ("W ", l) => tracing::warn!(provider = name, "{l}"),
            (_, l) => tracing::warn!(provider = name, "deprecated: {l}"),
        }
    }
    state.logged = lines.into_keys().collect();
    let config = assembled.config;
    let changed = tx.send_if_modified(|cur| {
        if cur.as_deref() == Some(&config) {
            false
        } else {
            *cur = Some(Arc::new(config));
            true
        }
    });
    if changed {
        let snap = tx.borrow();
        let (routers, services) = snap.as_ref().map_or((0, 0), |c| {
            (
                c.http.routers.len() + c.tcp.routers.len(),
                c.http.services.len(),
            )
        });
        tracing::info!(
            provider = name,
            workloads = reading.workloads.len(),
            routers,
            services,
            "configuration changed"
        );
    }
    Ok(())
}

/// Names and IDs of the networks swarmgate's own container is on (empty when not in a container).
async fn self_networks(client: &DockerClient) -> BTreeSet<String> {
    let Ok(host) = std::env::var("HOSTNAME") else {
        return BTreeSet::new();
    };
    match client.docker.inspect_container(&host, None).await {
        Ok(c) => c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(name, ep)| [Some(name), ep.network_id].into_iter().flatten())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_events_other_than_healthy_take_a_container_out() {
        assert!(health_event_is_unhealthy("health_status: unhealthy"));
        assert!(health_event_is_unhealthy("health_status: starting"));
        assert!(!health_event_is_unhealthy("health_status: healthy"));
        assert!(!health_event_is_unhealthy("health_status:healthy"));
    }

    #[test]
    fn only_terminating_signals_mark_a_container_stopping() {
        for s in ["15", "9", "SIGTERM", "TERM", "2", "3"] {
            assert!(is_terminating(s), "{s}");
        }
        for s in ["1", "SIGHUP", "10", "USR1", "23", ""] {
            assert!(!is_terminating(s), "{s}");
        }
    }
}
