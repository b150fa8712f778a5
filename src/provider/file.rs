//! The file provider: one file or a directory of YAML/TOML dynamic configuration, optionally watched.
//!
//! Each read produces one whole [`Configuration`] snapshot. A file that does not parse keeps the last good
//! snapshot and logs the file, line, column and reason; an item that does not decode is dropped alone and
//! logged the same way. Watching uses the OS notifier on the containing directory (so editors that replace a
//! file by renaming are seen), with a short debounce so a burst of writes is read once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::sources::{from_file_text, SourceError};
use crate::dynamic::{decode_configuration, Configuration, ItemError};
use crate::table::builder::Snapshot;

/// How long to wait for a burst of file events to end before reading.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Why the configuration could not be read at all (the last good one stays in use).
#[derive(Debug, thiserror::Error)]
pub enum FileProviderError {
    /// Neither `filename` nor `directory` is set.
    #[error("providers.file: set `filename` or `directory`")]
    NoPath,
    /// A file or directory could not be read.
    #[error("providers.file: cannot read {path}: {source}")]
    Read {
        /// What was read.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file does not parse.
    #[error("providers.file: {0}")]
    Syntax(#[from] SourceError),
    /// Watching could not start.
    #[error("providers.file: cannot watch {path}: {reason}")]
    Watch {
        /// What was watched.
        path: PathBuf,
        /// The notifier's error.
        reason: String,
    },
}

/// Where the file provider reads from.
#[derive(Clone, Debug)]
pub enum FileSource {
    /// One file.
    File(PathBuf),
    /// Every `.yml`, `.yaml` and `.toml` file of a directory (not recursive), in name order.
    Directory(PathBuf),
}

impl FileSource {
    /// From the static configuration; `filename` wins when both are set (as Traefik).
    pub fn from_config(
        c: &crate::config::types::FileProvider,
    ) -> Result<FileSource, FileProviderError> {
        match (&c.filename, &c.directory) {
            (Some(f), _) if !f.is_empty() => Ok(FileSource::File(PathBuf::from(f))),
            (_, Some(d)) if !d.is_empty() => Ok(FileSource::Directory(PathBuf::from(d))),
            _ => Err(FileProviderError::NoPath),
        }
    }

    fn watch_dir(&self) -> PathBuf {
        match self {
            FileSource::File(f) => f
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            FileSource::Directory(d) => d.clone(),
        }
    }
}

/// Reads the whole configuration once. Items that fail are dropped and returned as errors; a file that
/// does not parse fails the whole read (so the caller keeps its last good snapshot).
pub fn read(source: &FileSource) -> Result<(Configuration, Vec<ItemError>), FileProviderError> {
    let files = match source {
        FileSource::File(f) => vec![f.clone()],
        FileSource::Directory(d) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(d)
                .map_err(|e| FileProviderError::Read {
                    path: d.clone(),
                    source: e,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                            matches!(e.to_ascii_lowercase().as_str(), "yml" | "yaml" | "toml")
                        })
                })
                .collect();
            files.sort();
            files
        }
    };
    let mut merged = Configuration::default();
    let mut errors = Vec::new();
    for f in files {
        let text = crate::config::sources::read_text(&f).map_err(|e| FileProviderError::Read {
            path: f.clone(),
            source: e,
        })?;
        let node = from_file_text(&text, &f.display().to_string())?;
        let (cfg, errs) = decode_configuration(&node);
        errors.extend(errs);
        merge_into(&mut merged, cfg, &f, &mut errors);
    }
    Ok((merged, errors))
}

/// Merges one file's configuration into the directory's; a name defined by two files keeps the first and
/// reports the second.
fn merge_into(
    into: &mut Configuration,
    from: Configuration,
    file: &Path,
    errors: &mut Vec<ItemError>,
) {
    use crate::config::node::{DecodeError, Source};
    use crate::dynamic::ItemKind;
    fn put<T>(
        dst: &mut std::collections::BTreeMap<String, T>,
        src: std::collections::BTreeMap<String, T>,
        kind: ItemKind,
        file: &Path,
        errors: &mut Vec<ItemError>,
    ) {
        use std::collections::btree_map::Entry;
        for (k, v) in src {
            match dst.entry(k) {
                Entry::Occupied(o) => errors.push(ItemError {
                    kind,
                    name: o.key().clone(),
                    error: DecodeError {
                        key: o.key().clone(),
                        origin: Source::File {
                            path: Arc::from(file.display().to_string()),
                            line: 1,
                            column: 1,
                        },
                        message: "defined in more than one file; the first definition is kept"
                            .into(),
                    },
                }),
                Entry::Vacant(slot) => {
                    slot.insert(v);
                }
            }
        }
    }
    put(
        &mut into.http.routers,
        from.http.routers,
        ItemKind::Router,
        file,
        errors,
    );
    put(
        &mut into.http.services,
        from.http.services,
        ItemKind::Service,
        file,
        errors,
    );
    put(
        &mut into.http.middlewares,
        from.http.middlewares,
        ItemKind::Middleware,
        file,
        errors,
    );
    put(
        &mut into.http.servers_transports,
        from.http.servers_transports,
        ItemKind::ServersTransport,
        file,
        errors,
    );
    put(
        &mut into.tcp.routers,
        from.tcp.routers,
        ItemKind::TcpRouter,
        file,
        errors,
    );
    put(
        &mut into.tcp.services,
        from.tcp.services,
        ItemKind::TcpService,
        file,
        errors,
    );
    into.tls.certificates.extend(from.tls.certificates);
    put(
        &mut into.tls.options,
        from.tls.options,
        ItemKind::Tls,
        file,
        errors,
    );
    put(
        &mut into.tls.stores,
        from.tls.stores,
        ItemKind::Tls,
        file,
        errors,
    );
    if into.udp.is_none() {
        into.udp = from.udp;
    }
}

/// Logs the items a read dropped, one line each with file:line and reason.
pub fn log_item_errors(errors: &[ItemError]) {
    for e in errors {
        tracing::error!(provider = "file", "{e}");
    }
}

/// Reads once and publishes; on failure logs and keeps what the channel holds.
fn reload(source: &FileSource, tx: &watch::Sender<Snapshot>) {
    match read(source) {
        Ok((cfg, errors)) => {
            log_item_errors(&errors);
            tx.send_if_modified(|cur| {
                if cur.as_deref() == Some(&cfg) {
                    false
                } else {
                    *cur = Some(Arc::new(cfg));
                    true
                }
            });
        }
        Err(e) => tracing::error!("{e}; keeping the last good configuration"),
    }
}

/// Watches the source and publishes a snapshot after each change, until `cancel`.
///
/// Also re-reads on `reload` (SIGHUP). Returns an error only if the watcher cannot start.
pub async fn watch(
    source: FileSource,
    tx: watch::Sender<Snapshot>,
    mut reload_rx: mpsc::Receiver<()>,
    cancel: CancellationToken,
) -> Result<(), FileProviderError> {
    use notify::Watcher;
    let (ev_tx, mut ev_rx) = mpsc::channel::<()>(16);
    let dir = source.watch_dir();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = ev_tx.try_send(());
            }
        }
    })
    .map_err(|e| FileProviderError::Watch {
        path: dir.clone(),
        reason: e.to_string(),
    })?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| FileProviderError::Watch {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            Some(()) = ev_rx.recv() => {}
            Some(()) = reload_rx.recv() => {}
        }
        // Debounce: let the burst finish, then drain it.
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(DEBOUNCE) => {}
        }
        while ev_rx.try_recv().is_ok() {}
        reload(&source, &tx);
    }
}

/// Re-reads on every `reload` signal only (no OS watch), until `cancel`.
pub async fn reload_on_signal(
    source: FileSource,
    tx: watch::Sender<Snapshot>,
    mut reload_rx: mpsc::Receiver<()>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = reload_rx.recv() => if r.is_none() { cancel.cancelled().await; return },
        }
        reload(&source, &tx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_merges_files_and_reports_duplicates() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join("a.yml"),
            "http:\n  routers:\n    r:\n      rule: Host(`a`)\n      service: s\n",
        )
        .expect("w");
        std::fs::write(dir.path().join("b.toml"), "[http.routers.r]\nrule = \"Host(`b`)\"\nservice = \"s\"\n[http.routers.t]\nrule = \"Host(`t`)\"\nservice = \"s\"\n").expect("w");
        std::fs::write(dir.path().join("ignored.txt"), "garbage").expect("w");
        let (cfg, errors) = read(&FileSource::Directory(dir.path().to_path_buf())).expect("read");
        assert_eq!(cfg.http.routers["r"].rule, "Host(`a`)");
        assert!(cfg.http.routers.contains_key("t"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].name, "r");
    }

    #[test]
    fn broken_file_is_an_error_with_position() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("d.yml");
        std::fs::write(&f, "http:\n  routers: [\n").expect("w");
        let e = read(&FileSource::File(f)).expect_err("broken");
        assert!(e.to_string().contains("d.yml:"), "{e}");
    }
}
