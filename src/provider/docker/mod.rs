//! The Docker and Swarm providers: containers or Swarm services → whole dynamic-configuration snapshots.
//!
//! - [`labels`]: the pure label → configuration function (with [`template`] for `defaultRule` and
//!   [`constraints`] for `constraints`), shared with `swarmgate check`;
//! - [`containers`] / [`swarm`]: read the Docker API (one list call per kind) into [`labels::Workload`]s,
//!   choosing each one's network with [`network`];
//! - [`watch`]: events, periodic resync and reconnection with backoff; publishes snapshots;
//! - [`client`]: endpoint resolution and the bollard client.
//!
//! [`spawn`] starts every configured provider (`providers.docker`, `providers.swarm`, and the v1 `--docker`
//! flags translated into them) as background tasks and returns their feeds for the table builder. A provider
//! that cannot start (bad template, bad constraints, bad endpoint) is logged and left out; the others run.

// Control plane: checks the Docker socket path before connecting
#[allow(clippy::disallowed_methods)]
pub mod client;
pub mod configs;
pub mod constraints;
pub mod containers;
pub mod labels;
pub mod network;
pub mod swarm;
pub mod template;
pub mod watch;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::types::{DockerProvider, StaticConfig};
use crate::dynamic::Configuration;
use crate::dynamic::ProviderFeed;
use labels::{LabelError, Mode, Settings, Workload};

/// What one read of the Docker API produced: the enabled workloads with their addresses, and problems that
/// skipped a workload or made a guess (network choice), one line each.
#[derive(Debug, Default)]
pub struct Reading {
    /// Enabled workloads.
    pub workloads: Vec<Workload>,
    /// One line per skipped workload or guess.
    pub problems: Vec<String>,
}

/// The steps [`containers`] and [`swarm`] share: each skips a workload with one problem line.
impl Reading {
    /// The workload's options when it is enabled; unreadable options are listed and the workload skipped.
    fn enabled_options(
        &mut self,
        w: &Workload,
        settings: &Settings,
    ) -> Option<labels::WorkloadOptions> {
        match labels::options(w, settings) {
            Ok(o) => o.enable.then_some(o),
            Err(e) => {
                self.problems.push(e.to_string());
                None
            }
        }
    }

    /// The network `owner` (``service `x` `` or ``container `x` ``) is reached on, by [`network::choose`]; a
    /// guess is listed as a warning, no usable network as a problem that skips the workload.
    fn pick_network<'a>(
        &mut self,
        owner: &str,
        attached: &'a [network::Attachment],
        wanted: Option<&str>,
        stack: Option<&str>,
        ours: &std::collections::BTreeSet<String>,
    ) -> Option<&'a network::Attachment> {
        let chosen = network::choose(attached, wanted, stack, ours).and_then(|(i, warning)| {
            Ok((attached.get(i).ok_or_else(network::not_attached)?, warning))
        });
        match chosen {
            Ok((net, warning)) => {
                if let Some(warning) = warning {
                    self.problems.push(format!("{owner}: {warning}"));
                }
                Some(net)
            }
            Err(reason) => {
                self.problems.push(format!("{owner}: {reason}; skipped"));
                None
            }
        }
    }
}

/// The provider's whole configuration for one read, and what to tell the user.
#[derive(Debug, Default)]
pub struct Assembled {
    /// The merged configuration.
    pub config: Configuration,
    /// Dropped items.
    pub errors: Vec<LabelError>,
    /// Deprecations and remarks.
    pub notes: Vec<String>,
}

/// Builds every workload's configuration and merges them (Traefik's merge rules). Pure; workloads are
/// taken in name order so the result and its messages do not depend on the API's ordering.
pub fn assemble(workloads: &[Workload], settings: &Settings) -> Assembled {
    let mut sorted: Vec<&Workload> = workloads.iter().collect();
    sorted.sort_by(|a, b| {
        (a.name.as_str(), a.container_name.as_str())
            .cmp(&(b.name.as_str(), b.container_name.as_str()))
    });
    let mut out = Assembled::default();
    let mut parts = Vec::with_capacity(sorted.len());
    for w in sorted {
        let built = labels::build(w, settings);
        out.errors.extend(built.errors);
        out.notes.extend(built.notes);
        parts.push((
            if w.container_name.is_empty() {
                w.name.clone()
            } else {
                w.container_name.clone()
            },
            built.config,
        ));
    }
    let (config, errors) = labels::merge(&parts);
    out.config = config;
    out.errors.extend(errors);
    out.notes.sort();
    out.notes.dedup();
    out
}

/// Everything one provider task needs.
#[derive(Clone, Debug)]
pub struct ProviderSpec {
    /// `docker` or `swarm` (the `@provider` suffix).
    pub name: &'static str,
    /// Containers or Swarm services.
    pub mode: Mode,
    /// The static settings.
    pub cfg: DockerProvider,
    /// The endpoint actually used.
    pub endpoint: String,
    /// Label settings.
    pub settings: Settings,
    /// Periodic resync.
    pub refresh: Duration,
}

/// Why a provider's settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `constraints` does not parse.
    #[error("providers.{provider}.constraints: {source}")]
    Constraints {
        /// `docker` or `swarm`.
        provider: &'static str,
        /// The parse error.
        source: constraints::ConstraintError,
    },
}

/// The label settings of a provider. `name` is `docker` or `swarm`.
pub fn settings(
    name: &'static str,
    cfg: &DockerProvider,
    stat: &StaticConfig,
) -> Result<(Mode, Settings), SpecError> {
    let mode = if name == "swarm" || cfg.swarm_mode {
        Mode::Swarm
    } else {
        Mode::Containers
    };
    let mut s = Settings::new(mode);
    s.namespace = name;
    s.exposed_by_default = cfg.exposed_by_default;
    match cfg.default_rule.as_deref() {
        // Configured empty: routers without a rule are not created (Traefik: "undefined rule").
        Some(r) if r.trim().is_empty() => s.default_rule_off = true,
        // A template that does not parse costs the routers that need it, not the provider.
        Some(r) => match template::Template::parse(r) {
            Ok(t) => s.default_rule = t,
            Err(e) => {
                s.default_rule_error = Some(format!("providers.{name}.defaultRule: {e}"));
            }
        },
        None => s.v1_domain = cfg.domain.clone().filter(|d| !d.is_empty()),
    }
    if let Some(c) = cfg.constraints.as_deref().filter(|c| !c.trim().is_empty()) {
        s.constraints =
            Some(
                constraints::Constraint::parse(c).map_err(|source| SpecError::Constraints {
                    provider: name,
                    source,
                })?,
            );
    }
    s.allow_empty_services = cfg.allow_empty_services;
    s.use_bind_port_ip = cfg.use_bind_port_ip && mode == Mode::Containers;
    s.default_syntax = crate::config::default_rule_syntax(stat);
    Ok((mode, s))
}

/// Starts the configured Docker/Swarm providers as supervised `tasks` and returns their feeds (possibly none).
///
/// Called once by `app::run`; never blocks on the Docker API. Each provider's first snapshot arrives when
/// its first read completes; until then the table builder leaves it out.
pub fn spawn(
    cfg: &StaticConfig,
    cancel: CancellationToken,
    tasks: &mut crate::supervisor::Supervisor,
) -> Vec<ProviderFeed> {
    let mut feeds = Vec::new();
    let docker_host = std::env::var("DOCKER_HOST").ok();
    for (name, p) in [
        ("docker", &cfg.providers.docker),
        ("swarm", &cfg.providers.swarm),
    ] {
        let Some(p) = p else { continue };
        let (mode, settings) = match settings(name, p, cfg) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}; provider {name} disabled, the other providers keep working");
                continue;
            }
        };
        let refresh = if name == "swarm" {
            p.refresh_seconds.0
        } else {
            p.swarm_mode_refresh_seconds.0
        };
        let spec = ProviderSpec {
            name,
            mode,
            cfg: p.clone(),
            endpoint: client::endpoint_text(p, docker_host.as_deref()),
            settings,
            refresh: if refresh.is_zero() {
                Duration::from_secs(15)
            } else {
                refresh
            },
        };
        tracing::info!(provider = name, endpoint = %spec.endpoint, swarm = mode == Mode::Swarm, "starting the Docker provider");
        let (tx, rx) = tokio::sync::watch::channel(None);
        // May end on its own: a bad endpoint disables this provider and leaves the others working.
        tasks.spawn_may_end(
            format!("{name} provider"),
            watch::run(spec, tx, cancel.clone()),
        );
        feeds.push(ProviderFeed {
            name: name.to_string(),
            rx,
        });
    }
    feeds
}
