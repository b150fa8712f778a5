//! Start-up step: the providers. Each one is read once synchronously where it can be (so the first table
//! is complete before we accept), then watched by a supervised task publishing whole snapshots.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::types::StaticConfig;
use crate::provider::file::{self, FileSource};
use crate::supervisor::Supervisor;
use crate::table::builder::{ProviderFeed, Snapshot};
use crate::table::BuildInput;

use super::setup::internal_config;
use super::AppError;

/// The providers' feeds for the table builder, and what they read at start.
pub(super) struct Providers {
    /// One feed per provider.
    pub feeds: Vec<ProviderFeed>,
    /// The first table's input.
    pub initial: BuildInput,
    /// The internal provider never changes; its sender is kept for the life of the app, or the builder
    /// would see the feed close.
    pub _internal: watch::Sender<Snapshot>,
}

/// Starts the internal, file and Docker/Swarm providers; their watchers are spawned in `tasks` and stop
/// with `cancel`. `reload_rx` (SIGHUP) goes to the file provider.
pub(super) fn start(
    cfg: &StaticConfig,
    reload_rx: mpsc::Receiver<()>,
    cancel: &CancellationToken,
    tasks: &mut Supervisor,
) -> Result<Providers, AppError> {
    let mut feeds = Vec::new();
    let mut initial = BuildInput::default();
    // Internal routers (api, dashboard, ping, prometheus) are a provider of their own that never changes.
    let (internal_cfg, _, _) = internal_config(cfg);
    let internal_cfg = Arc::new(internal_cfg);
    initial
        .providers
        .insert("internal".into(), internal_cfg.clone());
    let (internal, mut internal_rx) = watch::channel(Some(internal_cfg));
    internal_rx.mark_unchanged();
    feeds.push(ProviderFeed {
        name: "internal".into(),
        rx: internal_rx,
    });
    if let Some(feed) = start_file(cfg, reload_rx, &mut initial, cancel, tasks)? {
        feeds.push(feed);
    }
    // Docker / Swarm providers: background tasks publishing whole snapshots; never block start-up.
    feeds.extend(crate::provider::docker::spawn(cfg, cancel.clone(), tasks));
    Ok(Providers {
        feeds,
        initial,
        _internal: internal,
    })
}

/// The file provider: read now, then watched (or re-read on SIGHUP only, without `watch`).
fn start_file(
    cfg: &StaticConfig,
    reload_rx: mpsc::Receiver<()>,
    initial: &mut BuildInput,
    cancel: &CancellationToken,
    tasks: &mut Supervisor,
) -> Result<Option<ProviderFeed>, AppError> {
    let Some(fp) = &cfg.providers.file else {
        return Ok(None);
    };
    let source = FileSource::from_config(fp)?;
    let first_read = source.fingerprint();
    let first: Snapshot = match file::read(&source) {
        Ok((c, errors)) => {
            file::log_item_errors(&errors);
            Some(Arc::new(c))
        }
        Err(e) => {
            tracing::error!("{e}");
            None
        }
    };
    if let Some(c) = &first {
        initial.providers.insert("file".into(), c.clone());
    }
    let (tx, mut rx) = watch::channel(first);
    let token = cancel.clone();
    if fp.watch {
        // A watcher that cannot start is logged and the configuration read above keeps serving (as it
        // always has), so this task may end.
        tasks.spawn_may_end("file provider watcher", async move {
            if let Err(e) = file::watch(source, first_read, tx, reload_rx, token).await {
                tracing::error!("{e}");
            }
        });
    } else {
        tasks.spawn(
            "file provider (SIGHUP)",
            file::reload_on_signal(source, tx, reload_rx, token),
        );
    }
    rx.mark_unchanged();
    Ok(Some(ProviderFeed {
        name: "file".into(),
        rx,
    }))
}
