//! Replicas that share a storage directory form a cluster; this module serializes their work with lock files
//! in `<storage dir>/.swarmgate/locks/`.
//!
//! A lock is a file created with `O_CREAT|O_EXCL` (atomic on local file systems and on NFSv3+), holding its
//! owner's id. The holder touches it every [`LockSettings::heartbeat`] while it works; a lock not touched for
//! [`LockSettings::stale_after`] belongs to a replica that died and is taken over. Take-over renames the stale
//! file to a unique name first (only one contender can win the rename), re-checks that what it renamed is still
//! stale (a contender may have replaced it with a fresh lock in between — then it is put back), and only then
//! creates its own lock. Dropping a [`LockGuard`] removes the file if it is still ours.
//!
//! Two kinds of lock exist: one per resolver and domain set (issuance of a name is serialized across the
//! cluster) and one per `acme.json` (read-modify-write of the file).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Timing of lock files.
#[derive(Clone, Copy, Debug)]
pub struct LockSettings {
    /// A lock untouched for this long is stale and may be taken over.
    pub stale_after: Duration,
    /// How often the holder touches its lock.
    pub heartbeat: Duration,
}

impl Default for LockSettings {
    fn default() -> LockSettings {
        LockSettings {
            stale_after: Duration::from_secs(120),
            heartbeat: Duration::from_secs(20),
        }
    }
}

/// Why a lock operation failed (other than "held by someone else", which is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
#[error("lock {path}: {source}")]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

/// This process's identity in lock files: host name, pid and a random suffix.
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "swarmgate".into());
    format!("{host}/{}/{:08x}", std::process::id(), fastrand::u32(..))
}

/// The locks directory of a storage directory.
pub fn locks_dir(storage_dir: &Path) -> PathBuf {
    storage_dir.join(".swarmgate").join("locks")
}

/// Lock file name for issuing `names` (sorted, lowercase) with `resolver`.
pub fn issuance_lock_name(resolver: &str, names: &[String]) -> String {
    let mut sorted: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    sorted.sort();
    sorted.dedup();
    let digest = Sha256::digest(format!("{resolver}\n{}", sorted.join(",")).as_bytes());
    // The first 12 bytes (of 32) name the lock.
    let short: Vec<u8> = digest.iter().take(12).copied().collect();
    format!("issue-{}.lock", hex::encode(short))
}

/// A held lock; removed on drop (if still ours).
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    owner: String,
    heartbeat: Option<CancellationToken>,
}

impl LockGuard {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Touches the lock (the holder is alive).
    pub fn touch(&self) {
        touch(&self.path);
    }

    /// Touches the lock every `every` until the guard is dropped (for long operations such as an order).
    pub fn keep_alive(&mut self, every: Duration) {
        let token = CancellationToken::new();
        let path = self.path.clone();
        let t = token.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = t.cancelled() => return,
                    _ = tokio::time::sleep(every) => touch(&path),
                }
            }
        });
        self.heartbeat = Some(token);
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(t) = self.heartbeat.take() {
            t.cancel();
        }
        if fs::read_to_string(&self.path)
            .map(|s| s.trim() == self.owner)
            .unwrap_or(false)
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn touch(path: &Path) {
    if let Ok(f) = fs::OpenOptions::new().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn age(path: &Path, now: SystemTime) -> Option<Duration> {
    let m = fs::metadata(path).ok()?.modified().ok()?;
    Some(now.duration_since(m).unwrap_or(Duration::ZERO))
}

/// Tries once to take the lock `dir/name` for `owner`. `Ok(None)` when a live lock is held by someone else.
pub fn try_lock(
    dir: &Path,
    name: &str,
    owner: &str,
    settings: &LockSettings,
) -> Result<Option<LockGuard>, LockError> {
    let path = dir.join(name);
    let err = |source| LockError {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    for _ in 0..2 {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(owner.as_bytes()).map_err(err)?;
                let _ = f.sync_all();
                return Ok(Some(LockGuard {
                    path,
                    owner: owner.to_string(),
                    heartbeat: None,
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let Some(a) = age(&path, SystemTime::now()) else {
                    continue;
                };
                if a < settings.stale_after {
                    return Ok(None);
                }
                // Stale: move it aside, re-check, then retry the create.
                let aside = dir.join(format!(".{name}.stale.{:08x}", fastrand::u32(..)));
                if fs::rename(&path, &aside).is_err() {
                    continue;
                }
                let still_stale =
                    age(&aside, SystemTime::now()).is_none_or(|a| a >= settings.stale_after);
                if !still_stale {
                    // We moved a fresh lock: put it back unless someone created another meanwhile.
                    let _ = fs::hard_link(&aside, &path);
                    let _ = fs::remove_file(&aside);
                    return Ok(None);
                }
                let holder = fs::read_to_string(&aside).unwrap_or_default();
                tracing::warn!(lock = %path.display(), holder = %holder.trim(), "stale ACME lock taken over (holder silent for {a:?})");
                let _ = fs::remove_file(&aside);
            }
            Err(e) => return Err(err(e)),
        }
    }
    Ok(None)
}

/// Waits for the lock, polling every `poll`, until `timeout` (then `Ok(None)`) or `cancel`.
pub async fn lock(
    dir: &Path,
    name: &str,
    owner: &str,
    settings: &LockSettings,
    poll: Duration,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Option<LockGuard>, LockError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(g) = try_lock(dir, name, owner, settings)? {
            return Ok(Some(g));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(None),
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_stale_locks_expire() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = LockSettings {
            stale_after: Duration::from_secs(60),
            heartbeat: Duration::from_secs(5),
        };
        let a = try_lock(dir.path(), "x.lock", "a", &s)
            .expect("io")
            .expect("a gets it");
        assert!(try_lock(dir.path(), "x.lock", "b", &s)
            .expect("io")
            .is_none());
        drop(a);
        let b = try_lock(dir.path(), "x.lock", "b", &s)
            .expect("io")
            .expect("b after a released");
        // b dies without releasing: its lock ages past stale_after.
        let old = SystemTime::now() - Duration::from_secs(120);
        fs::File::options()
            .append(true)
            .open(b.path())
            .expect("open")
            .set_modified(old)
            .expect("mtime");
        std::mem::forget(b);
        let c = try_lock(dir.path(), "x.lock", "c", &s)
            .expect("io")
            .expect("c takes over");
        assert_eq!(fs::read_to_string(c.path()).expect("read"), "c");
        // A touched lock is not stale.
        c.touch();
        assert!(try_lock(dir.path(), "x.lock", "d", &s)
            .expect("io")
            .is_none());
        drop(c);
        assert!(
            fs::read_dir(dir.path()).expect("ls").next().is_none(),
            "no leftovers"
        );
    }

    #[test]
    fn drop_does_not_remove_someone_elses_lock() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = LockSettings::default();
        let a = try_lock(dir.path(), "y.lock", "a", &s)
            .expect("io")
            .expect("a");
        fs::write(a.path(), "b").expect("overwrite");
        let p = a.path().to_path_buf();
        drop(a);
        assert!(p.exists());
    }

    #[test]
    fn issuance_lock_names_ignore_order_and_case() {
        let a = issuance_lock_name("le", &["B.example".into(), "a.example".into()]);
        let b = issuance_lock_name("le", &["a.example".into(), "b.example".into()]);
        assert_eq!(a, b);
        assert_ne!(
            a,
            issuance_lock_name("other", &["a.example".into(), "b.example".into()])
        );
    }

    #[tokio::test]
    async fn waiting_for_a_lock_ends_at_the_deadline_or_when_released() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = LockSettings::default();
        let cancel = CancellationToken::new();
        let a = try_lock(dir.path(), "z.lock", "a", &s)
            .expect("io")
            .expect("a");
        let none = lock(
            dir.path(),
            "z.lock",
            "b",
            &s,
            Duration::from_millis(10),
            Duration::from_millis(50),
            &cancel,
        )
        .await;
        assert!(none.expect("io").is_none());
        let path = dir.path().to_path_buf();
        let waiter = tokio::spawn(async move {
            lock(
                &path,
                "z.lock",
                "b",
                &LockSettings::default(),
                Duration::from_millis(10),
                Duration::from_secs(5),
                &CancellationToken::new(),
            )
            .await
            .map(|g| g.is_some())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(a);
        assert!(waiter.await.expect("join").expect("io"));
    }
}
