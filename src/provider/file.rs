//! The file provider: one file or a directory of YAML/TOML dynamic configuration, optionally watched.
//!
//! Each read produces one whole [`Configuration`] snapshot. A file that does not parse keeps the last good
//! snapshot and logs the file, line, column and reason; an item that does not decode is dropped alone and
//! logged the same way, and listed in the snapshot's `dropped` items. Watching uses the OS notifier on the
//! containing directory (so editors that replace a file by renaming are seen), reading only when an event names
//! a configuration file or the files' fingerprint changed (a Kubernetes symlink swap), with a short debounce
//! so a burst of writes is read once. Documents are bounded in size, depth and alias expansion
//! ([`crate::config::sources`]): a hostile file is refused and the last good configuration kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::sources::{from_file_text, SourceError};
use crate::dynamic::Snapshot;
use crate::dynamic::{decode_configuration, Configuration, DroppedItem, ItemError};

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

    /// The files a read parses: the file, or the directory's configuration files in name order.
    fn files(&self) -> Result<Vec<PathBuf>, FileProviderError> {
        match self {
            FileSource::File(f) => Ok(vec![f.clone()]),
            FileSource::Directory(d) => {
                let mut files: Vec<PathBuf> = std::fs::read_dir(d)
                    .map_err(|e| FileProviderError::Read {
                        path: d.clone(),
                        source: e,
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| is_config_file(p) && p.is_file())
                    .collect();
                files.sort();
                Ok(files)
            }
        }
    }

    /// Whether a file-system event on `path` (in the watched directory) may concern the configuration: the
    /// watched file's own name (written in place, or renamed over by an editor's atomic write), or, for a
    /// directory, any `.yml`/`.yaml`/`.toml` file in it. Anything else (a log file beside it) does not.
    fn names(&self, path: &Path) -> bool {
        match self {
            FileSource::File(f) => f.file_name().is_some() && path.file_name() == f.file_name(),
            FileSource::Directory(_) => is_config_file(path),
        }
    }

    /// What the files a read would parse look like now: each file's resolved path (symlinks followed), size
    /// and modification time. A change that no event names — a Kubernetes ConfigMap swaps a `..data` symlink,
    /// so only `..data` is named — shows here, and costs one `stat` per file instead of a parse.
    pub fn fingerprint(&self) -> Fingerprint {
        let files = self.files().unwrap_or_default();
        Fingerprint(
            files
                .into_iter()
                .map(|f| {
                    let meta = std::fs::metadata(&f)
                        .ok()
                        .map(|m| (m.len(), m.modified().ok()));
                    (std::fs::canonicalize(&f).unwrap_or(f), meta)
                })
                .collect(),
        )
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

/// A `.yml`, `.yaml` or `.toml` name (any case): what a watched directory reads.
fn is_config_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yml" | "yaml" | "toml"))
}

/// Size and modification time of a file (`None` when it cannot be read).
type FileStamp = Option<(u64, Option<std::time::SystemTime>)>;

/// See [`FileSource::fingerprint`]: each file's resolved path and stamp, compared to tell whether the files
/// changed since a read without parsing them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, FileStamp)>);

/// Reads the whole configuration once. Items that fail are dropped and returned as errors (and listed in the
/// configuration's `dropped`, so that the API shows them disabled); a file that does not parse — or is too
/// large, too deep or aliases excessively — fails the whole read (so the caller keeps its last good snapshot).
pub fn read(source: &FileSource) -> Result<(Configuration, Vec<ItemError>), FileProviderError> {
    let files = source.files()?;
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
    merged.dropped = errors.iter().map(DroppedItem::from).collect();
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
    put(
        &mut into.tcp.middlewares,
        from.tcp.middlewares,
        ItemKind::Middleware,
        file,
        errors,
    );
    put(
        &mut into.tcp.servers_transports,
        from.tcp.servers_transports,
        ItemKind::ServersTransport,
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
    // UDP: routers and services by name, the first definition kept as for the other sections.
    put(
        &mut into.udp.routers,
        from.udp.routers,
        ItemKind::UdpRouter,
        file,
        errors,
    );
    put(
        &mut into.udp.services,
        from.udp.services,
        ItemKind::UdpService,
        file,
        errors,
    );
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
/// The OS notifier watches the containing directory (so that renames over the file are seen). An event that
/// names the watched file (or, for a directory, one of its configuration files) triggers a read after the
/// debounce; any other event in the directory only compares the files' [fingerprint](FileSource::fingerprint)
/// with the last read's, so a log file written beside the configuration never causes a re-parse while a
/// symlink swap still does. Also re-reads on `reload` (SIGHUP). `first_read` is the fingerprint taken before
/// the caller's first read. Returns an error only if the watcher cannot start.
pub async fn watch(
    source: FileSource,
    first_read: Fingerprint,
    tx: watch::Sender<Snapshot>,
    mut reload_rx: mpsc::Receiver<()>,
    cancel: CancellationToken,
) -> Result<(), FileProviderError> {
    use notify::Watcher;
    // `true` when the event names a configuration file, `false` for any other change in the directory.
    let (ev_tx, mut ev_rx) = mpsc::channel::<bool>(16);
    let dir = source.watch_dir();
    let filter = source.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !matches!(ev.kind, notify::EventKind::Access(_)) {
                let named = ev.paths.iter().any(|p| filter.names(p));
                // A full channel already holds a pending read; a named event must not be lost behind
                // unnamed ones, so it waits for room (the receiver drains quickly).
                if ev_tx.try_send(named).is_err() && named {
                    let _ = ev_tx.blocking_send(named);
                }
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
    // The first snapshot was read before the notifier started, and a write in between raised no event: read
    // again if the files changed since `first_read`, now that every later change is seen.
    let mut last = source.fingerprint();
    if last != first_read {
        reload(&source, &tx);
    }
    loop {
        let mut named = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            Some(n) = ev_rx.recv() => n,
            Some(()) = reload_rx.recv() => true,
        };
        // Debounce: let the burst finish, then drain it.
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(DEBOUNCE) => {}
        }
        while let Ok(n) = ev_rx.try_recv() {
            named |= n;
        }
        let now = source.fingerprint();
        if !named && now == last {
            continue;
        }
        last = now;
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
    fn events_are_filtered_by_the_watched_names() {
        let file = FileSource::File(PathBuf::from("/etc/gate/dynamic.yml"));
        assert!(file.names(Path::new("/etc/gate/dynamic.yml")));
        assert!(!file.names(Path::new("/etc/gate/access.log")));
        assert!(!file.names(Path::new("/etc/gate/other.yml")));
        assert!(!file.names(Path::new("/etc/gate/..data")));
        let dir = FileSource::Directory(PathBuf::from("/etc/gate"));
        assert!(dir.names(Path::new("/etc/gate/a.YAML")));
        assert!(dir.names(Path::new("/etc/gate/b.toml")));
        assert!(!dir.names(Path::new("/etc/gate/access.log")));
        assert!(!dir.names(Path::new("/etc/gate/.a.yml.swp")));
    }

    #[test]
    fn fingerprint_sees_symlink_swaps_and_ignores_other_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        for v in ["..v1", "..v2"] {
            std::fs::create_dir(d.join(v)).expect("mkdir");
            std::fs::write(d.join(v).join("c.yml"), "http: {}\n").expect("w");
        }
        std::os::unix::fs::symlink("..v1", d.join("..data")).expect("ln");
        std::os::unix::fs::symlink("..data/c.yml", d.join("c.yml")).expect("ln");
        for source in [
            FileSource::File(d.join("c.yml")),
            FileSource::Directory(d.to_path_buf()),
        ] {
            let before = source.fingerprint();
            std::fs::write(d.join("access.log"), "x").expect("w");
            assert_eq!(source.fingerprint(), before, "{source:?}");
            std::os::unix::fs::symlink("..v2", d.join("..tmp")).expect("ln");
            std::fs::rename(d.join("..tmp"), d.join("..data")).expect("mv");
            assert_ne!(source.fingerprint(), before, "{source:?}");
            std::os::unix::fs::symlink("..v1", d.join("..tmp")).expect("ln");
            std::fs::rename(d.join("..tmp"), d.join("..data")).expect("mv");
        }
    }

    #[test]
    fn dropped_items_are_carried_in_the_snapshot() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("d.yml");
        std::fs::write(
            &f,
            "http:\n  routers:\n    bad:\n      rule: Host(`a`)\n      servce: s\n",
        )
        .expect("w");
        let (cfg, errors) = read(&FileSource::File(f)).expect("read");
        assert_eq!(errors.len(), 1);
        assert!(cfg.http.routers.is_empty());
        assert_eq!(cfg.dropped.len(), 1);
        assert_eq!(cfg.dropped[0].name, "bad");
        assert!(cfg.dropped[0].error.contains("servce"), "{:?}", cfg.dropped);
    }

    #[test]
    fn alias_bomb_fails_the_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("bomb.yml");
        let mut text = String::from("a0: &a0 [x,x,x,x,x,x,x,x,x]\n");
        for i in 1..=9 {
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 9].join(",")
            ));
        }
        std::fs::write(&f, text).expect("w");
        let e = read(&FileSource::File(f)).expect_err("refused");
        assert!(e.to_string().contains("excessive aliasing"), "{e}");
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
