//! Challenge answers shared by every replica: this process's pending challenges, and every replica's in the
//! shared storage directory, so that the replica the CA happens to reach can answer a challenge another
//! replica started.
//!
//! Layout under each storage directory (the directory of `acme.json`):
//! `.swarmgate/challenges/http-01/<token>` holds the key authorization;
//! `.swarmgate/challenges/tls-alpn-01/<domain>` holds the key authorization, from which each replica builds
//! the RFC 8737 certificate itself (a fresh P-256 key; the CA checks only the SAN and the acmeIdentifier).
//!
//! Everything here is control plane. The data plane reads one in-memory snapshot ([`MemoryChallenges`]),
//! which is republished when this replica publishes or withdraws an answer, and when [`StoredChallenges::refresh`]
//! (run every [`CHALLENGE_POLL`] by [`StoredChallenges::watch`], on a blocking thread) finds that the shared
//! directories changed. A poll, not inotify: the storage is typically shared through a network file system,
//! where another host's writes raise no local event. The poll is bounded: at most [`MAX_SHARED_ANSWERS`] entries
//! per kind and directory, regular files only (no symlinks, FIFOs or devices, which could block or point
//! elsewhere), at most [`MAX_ANSWER_BYTES`] read from each; names are checked first (tokens are RFC 8555
//! tokens, domains are DNS names), so nothing outside the directory is read.
//!
//! Because another replica sees an answer only at its next poll, the ACME manager waits
//! [`propagation_delay`] after publishing before it tells the CA to validate.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{CertificateParams, CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::storage::write_atomic;
use crate::tls::challenge::{
    valid_token, Answers, MemoryChallenges, SharedChallenges, READ_THROUGH_BOUND,
    READ_THROUGH_WAITERS,
};
use tokio_util::sync::CancellationToken;

/// Why a TLS-ALPN-01 certificate could not be built.
#[derive(Debug, thiserror::Error)]
#[error("TLS-ALPN-01 certificate for `{domain}`: {reason}")]
pub struct AlpnCertError {
    /// The domain.
    pub domain: String,
    /// What failed.
    pub reason: String,
}

/// Builds the RFC 8737 validation certificate: self-signed, SAN = `domain`, critical acmeIdentifier extension
/// holding SHA-256(`key_authorization`).
pub fn tls_alpn01_certificate(
    domain: &str,
    key_authorization: &str,
) -> Result<CertifiedKey, AlpnCertError> {
    let err = |reason: String| AlpnCertError {
        domain: domain.to_string(),
        reason,
    };
    let digest = Sha256::digest(key_authorization.as_bytes());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| err(e.to_string()))?;
    let mut params =
        CertificateParams::new(vec![domain.to_string()]).map_err(|e| err(e.to_string()))?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(&digest)];
    let cert = params.self_signed(&key).map_err(|e| err(e.to_string()))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| err(e.to_string()))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

/// Is `domain` safe as a file name (DNS name characters, no leading dot)?
fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && !domain.starts_with('.')
        && domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'
        })
}

const HTTP01: &str = "http-01";
const TLS_ALPN01: &str = "tls-alpn-01";

/// How often the shared challenge directories are read for answers other replicas published. Short,
/// because a CA validates right after it is told to (see [`propagation_delay`]); cheap, because an idle
/// directory costs one `readdir` (or one failed `stat` when it does not exist).
pub const CHALLENGE_POLL: Duration = Duration::from_millis(250);

/// Most answers of one kind read from one directory per poll. A replica has one pending answer per name
/// of its current order (one order at a time), so a few hundred is far beyond any real cluster; the cap
/// bounds the work a polluted directory can cause.
pub const MAX_SHARED_ANSWERS: usize = 1024;

/// Most bytes read from one answer file. A key authorization is `<token>.<thumbprint>`: about 90 bytes.
pub const MAX_ANSWER_BYTES: u64 = 4096;

/// How long to wait between publishing an answer and asking the CA to validate, so that every replica
/// polling every `poll` has loaded it: two full poll periods and a margin for a slow scan.
pub fn propagation_delay(poll: Duration) -> Duration {
    poll * 2 + Duration::from_millis(250)
}

/// The challenges directory under a storage directory.
pub fn challenges_dir(storage_dir: &Path) -> PathBuf {
    storage_dir.join(".swarmgate").join("challenges")
}

/// The answers of every replica, as read from the shared directories: name → key authorization.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SharedAnswers {
    /// HTTP-01 token → key authorization.
    pub http01: BTreeMap<String, String>,
    /// TLS-ALPN-01 domain → key authorization.
    pub tls_alpn01: BTreeMap<String, String>,
}

/// This replica's answers and the other replicas', from which the data plane's snapshot is built.
#[derive(Debug, Default)]
struct State {
    /// Our HTTP-01 answers: token → key authorization.
    own_http01: HashMap<String, Arc<str>>,
    /// Our TLS-ALPN-01 answers: domain → (key authorization, certificate).
    own_alpn: HashMap<String, (String, Arc<CertifiedKey>)>,
    /// What the last poll read.
    shared: SharedAnswers,
    /// Certificates built for the shared TLS-ALPN-01 answers: domain → (key authorization, certificate).
    shared_alpn: HashMap<String, (String, Arc<CertifiedKey>)>,
    /// Answers read from remote stores (Swarm), by store.
    remote: BTreeMap<String, SharedAnswers>,
}

/// A store that shares answers other than through a directory (the Swarm store): answers whose storage
/// "directory" it [`handles`](RemoteAnswers::handles) are published through it instead of files, and what
/// it reads comes back through [`StoredChallenges::set_remote_answers`].
pub trait RemoteAnswers: Send + Sync + std::fmt::Debug {
    /// Does this store serve the resolver whose storage key is `storage_dir`?
    fn handles(&self, storage_dir: &Path) -> bool;
    /// Publishes an answer (`http01`: token; else TLS-ALPN-01: domain).
    fn publish(&self, http01: bool, name: &str, key_authorization: &str);
    /// Withdraws an answer.
    fn withdraw(&self, http01: bool, name: &str);
}

/// This replica's answers plus the shared directories', published to the data plane as one snapshot.
#[derive(Debug)]
pub struct StoredChallenges {
    /// What the data plane reads.
    answers: Arc<MemoryChallenges>,
    /// `.swarmgate/challenges` of every storage directory in use.
    dirs: Vec<PathBuf>,
    /// Control-plane bookkeeping; never locked by the data plane.
    state: Mutex<State>,
    /// Stores that publish answers themselves (Swarm).
    remotes: Vec<Arc<dyn RemoteAnswers>>,
}

impl StoredChallenges {
    /// Answers backed by memory and by the given storage directories (directories of `acme.json` files).
    /// Nothing is read until [`StoredChallenges::refresh`].
    pub fn new(storage_dirs: Vec<PathBuf>) -> StoredChallenges {
        let mut dirs: Vec<PathBuf> = storage_dirs.iter().map(|d| challenges_dir(d)).collect();
        dirs.sort();
        dirs.dedup();
        StoredChallenges {
            answers: Arc::new(MemoryChallenges::default()),
            dirs,
            state: Mutex::new(State::default()),
            remotes: Vec::new(),
        }
    }

    /// Adds stores that publish answers themselves; storage directories they handle are not scanned. With
    /// at least one, the data plane's misses read through to the stores' watchers (see
    /// `tls::challenge`): their answers arrive by events and resyncs, which a CA can outrun.
    pub fn with_remotes(mut self, remotes: Vec<Arc<dyn RemoteAnswers>>) -> StoredChallenges {
        self.dirs
            .retain(|d| !remotes.iter().any(|r| d.ancestors().any(|a| r.handles(a))));
        if !remotes.is_empty() {
            // Nothing is published yet (answers come after construction), so the empty snapshot is kept.
            self.answers = Arc::new(MemoryChallenges::with_read_through(
                READ_THROUGH_BOUND,
                READ_THROUGH_WAITERS,
            ));
        }
        self.remotes = remotes;
        self
    }

    fn remote_for(&self, storage_dir: &Path) -> Option<&Arc<dyn RemoteAnswers>> {
        self.remotes.iter().find(|r| r.handles(storage_dir))
    }

    /// Installs the answers a remote store (`store`) read, and republishes.
    pub fn set_remote_answers(&self, store: &str, answers: SharedAnswers) {
        let (file, mut remote, reuse) = {
            let st = self.state();
            if st.remote.get(store) == Some(&answers) {
                return;
            }
            (st.shared.clone(), st.remote.clone(), alpn_reuse(&st))
        };
        remote.insert(store.to_string(), answers);
        let shared_alpn = build_alpn(&file, &remote, &reuse);
        let mut st = self.state();
        st.remote = remote;
        st.shared_alpn = shared_alpn;
        self.republish(&st);
    }

    /// A remote store's resync finished (installed, unchanged or failed): lookups waiting on a miss look
    /// again.
    pub fn remote_resynced(&self) {
        self.answers.resynced();
    }

    /// The snapshot the data plane reads (cheap to clone, shared).
    pub fn data_plane(&self) -> SharedChallenges {
        self.answers.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps (each update is one insert or remove).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes an HTTP-01 answer in memory (at once) and in `storage_dir` (for the other replicas). A
    /// failed file write is returned; the memory answer stays (this replica can still answer). A token
    /// that is not an RFC 8555 token is refused: the data plane would never answer it.
    pub fn add_http01(
        &self,
        storage_dir: &Path,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), ChallengeError> {
        if !valid_token(token) {
            return Err(ChallengeError::Token(token.chars().take(64).collect()));
        }
        {
            let mut st = self.state();
            st.own_http01
                .insert(token.to_string(), Arc::from(key_authorization));
            self.republish(&st);
        }
        if let Some(r) = self.remote_for(storage_dir) {
            r.publish(true, token, key_authorization);
            return Ok(());
        }
        write_atomic(
            &challenges_dir(storage_dir).join(HTTP01).join(token),
            key_authorization.as_bytes(),
        )?;
        Ok(())
    }

    /// Publishes a TLS-ALPN-01 answer: the certificate in memory, the key authorization in `storage_dir`.
    pub fn add_tls_alpn01(
        &self,
        storage_dir: &Path,
        domain: &str,
        key_authorization: &str,
    ) -> Result<(), ChallengeError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let cert = Arc::new(tls_alpn01_certificate(&domain, key_authorization)?);
        {
            let mut st = self.state();
            st.own_alpn
                .insert(domain.clone(), (key_authorization.to_string(), cert));
            self.republish(&st);
        }
        if let Some(r) = self.remote_for(storage_dir) {
            r.publish(false, &domain, key_authorization);
            return Ok(());
        }
        if valid_domain(&domain) {
            write_atomic(
                &challenges_dir(storage_dir).join(TLS_ALPN01).join(&domain),
                key_authorization.as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Removes an HTTP-01 answer (memory and file).
    pub fn remove_http01(&self, storage_dir: &Path, token: &str) {
        {
            let mut st = self.state();
            st.own_http01.remove(token);
            // Our own file was read by a poll too: forget it now rather than at the next poll.
            st.shared.http01.remove(token);
            for a in st.remote.values_mut() {
                a.http01.remove(token);
            }
            self.republish(&st);
        }
        if let Some(r) = self.remote_for(storage_dir) {
            r.withdraw(true, token);
            return;
        }
        if valid_token(token) {
            let _ = std::fs::remove_file(challenges_dir(storage_dir).join(HTTP01).join(token));
        }
    }

    /// Removes a TLS-ALPN-01 answer (memory and file).
    pub fn remove_tls_alpn01(&self, storage_dir: &Path, domain: &str) {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        {
            let mut st = self.state();
            st.own_alpn.remove(&domain);
            st.shared.tls_alpn01.remove(&domain);
            st.shared_alpn.remove(&domain);
            for a in st.remote.values_mut() {
                a.tls_alpn01.remove(&domain);
            }
            self.republish(&st);
        }
        if let Some(r) = self.remote_for(storage_dir) {
            r.withdraw(false, &domain);
            return;
        }
        if valid_domain(&domain) {
            let _ =
                std::fs::remove_file(challenges_dir(storage_dir).join(TLS_ALPN01).join(&domain));
        }
    }

    /// Control plane (blocking file I/O: call it from a blocking thread or at start-up): reads the shared
    /// directories and republishes the answers when they changed. Returns whether they changed.
    pub fn refresh(&self) -> bool {
        let shared = scan(&self.dirs);
        let (remote, reuse) = {
            let st = self.state();
            if st.shared == shared {
                return false;
            }
            (st.remote.clone(), alpn_reuse(&st))
        };
        // Build the certificates of new TLS-ALPN-01 answers outside the lock (a key generation each).
        let shared_alpn = build_alpn(&shared, &remote, &reuse);
        let mut st = self.state();
        st.shared = shared;
        st.shared_alpn = shared_alpn;
        self.republish(&st);
        true
    }

    /// Polls the shared directories every `every` until `cancel`, each read on a blocking thread.
    pub async fn watch(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        if self.dirs.is_empty() {
            return;
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let me = self.clone();
            if tokio::task::spawn_blocking(move || me.refresh())
                .await
                .is_err()
            {
                tracing::warn!("reading the shared ACME challenges failed; retrying");
            }
        }
    }

    /// Builds the data plane's snapshot from our answers over the shared ones, and swaps it in.
    fn republish(&self, st: &State) {
        let mut answers = Answers::default();
        for (token, ka) in st.remote.values().flat_map(|a| a.http01.iter()) {
            answers.http01.insert(token.clone(), Arc::from(ka.as_str()));
        }
        for (token, ka) in &st.shared.http01 {
            answers.http01.insert(token.clone(), Arc::from(ka.as_str()));
        }
        for (domain, (_, cert)) in &st.shared_alpn {
            answers.tls_alpn01.insert(domain.clone(), cert.clone());
        }
        for (token, ka) in &st.own_http01 {
            answers.http01.insert(token.clone(), ka.clone());
        }
        for (domain, (_, cert)) in &st.own_alpn {
            answers.tls_alpn01.insert(domain.clone(), cert.clone());
        }
        self.answers.publish(answers);
    }
}

/// The TLS-ALPN-01 certificates already built (shared and own), to reuse for unchanged answers.
fn alpn_reuse(st: &State) -> HashMap<String, (String, Arc<CertifiedKey>)> {
    st.shared_alpn
        .iter()
        .chain(st.own_alpn.iter())
        .map(|(d, v)| (d.clone(), v.clone()))
        .collect()
}

/// The certificates of the TLS-ALPN-01 answers read from directories and remote stores: reused when the
/// key authorization is unchanged, else built (a key generation each).
fn build_alpn(
    file: &SharedAnswers,
    remote: &BTreeMap<String, SharedAnswers>,
    reuse: &HashMap<String, (String, Arc<CertifiedKey>)>,
) -> HashMap<String, (String, Arc<CertifiedKey>)> {
    let mut out = HashMap::new();
    let all = remote
        .values()
        .flat_map(|a| a.tls_alpn01.iter())
        .chain(file.tls_alpn01.iter());
    for (domain, key_auth) in all {
        match reuse.get(domain) {
            Some((ka, cert)) if ka == key_auth => {
                out.insert(domain.clone(), (ka.clone(), cert.clone()));
            }
            _ => match tls_alpn01_certificate(domain, key_auth) {
                Ok(c) => {
                    out.insert(domain.clone(), (key_auth.clone(), Arc::new(c)));
                }
                Err(e) => tracing::warn!("{e}"),
            },
        }
    }
    out
}

/// Reads the answers in `dirs` (see the module doc for the bounds). Missing directories are empty.
pub fn scan(dirs: &[PathBuf]) -> SharedAnswers {
    let mut out = SharedAnswers::default();
    for d in dirs {
        read_kind(&d.join(HTTP01), valid_token, &mut out.http01);
        read_kind(&d.join(TLS_ALPN01), valid_domain, &mut out.tls_alpn01);
    }
    out
}

fn read_kind(dir: &Path, valid: fn(&str) -> bool, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten().take(MAX_SHARED_ANSWERS) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // `file_type` does not follow symlinks: only regular files are opened (a FIFO would block).
        if !valid(name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if let Some(text) = read_answer(&entry.path()) {
            out.entry(name.to_string()).or_insert(text);
        }
    }
}

fn read_answer(path: &Path) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    // Replaced by something else since `readdir`? Only a regular file is read.
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    f.take(MAX_ANSWER_BYTES).read_to_string(&mut text).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Why a challenge answer could not be published.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    /// The TLS-ALPN-01 certificate could not be built.
    #[error(transparent)]
    Cert(#[from] AlpnCertError),
    /// The shared file could not be written.
    #[error(transparent)]
    Storage(#[from] super::storage::StorageError),
    /// The CA sent a token that is not an RFC 8555 token (base64url, at least 128 bits).
    #[error("HTTP-01 token `{0}` is not an RFC 8555 token; it could not be answered")]
    Token(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";

    fn acme_identifier(ck: &CertifiedKey) -> (bool, Vec<u8>, String) {
        let (_, x) = x509_parser::parse_x509_certificate(ck.cert[0].as_ref()).expect("x509");
        let ext = x
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        let san = x.subject_alternative_name().expect("san").expect("san");
        (
            ext.critical,
            ext.value.to_vec(),
            format!("{:?}", san.value.general_names),
        )
    }

    #[test]
    fn another_replica_answers_from_the_shared_directory_after_a_refresh() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = StoredChallenges::new(vec![dir.path().to_path_buf()]);
        let b = StoredChallenges::new(vec![dir.path().to_path_buf()]);
        let (da, db) = (a.data_plane(), b.data_plane());
        a.add_http01(dir.path(), TOKEN, "tok.thumb").expect("add");
        // Ours at once; theirs at their next refresh.
        assert_eq!(da.http01(TOKEN).as_deref(), Some("tok.thumb"));
        assert_eq!(db.http01(TOKEN), None);
        assert!(b.refresh());
        assert!(!b.refresh(), "nothing changed");
        assert_eq!(db.http01(TOKEN).as_deref(), Some("tok.thumb"));
        assert_eq!(db.http01("../../etc/passwd"), None);
        assert!(a.add_http01(dir.path(), "../x", "k").is_err());
        a.remove_http01(dir.path(), TOKEN);
        assert_eq!(da.http01(TOKEN), None);
        assert!(b.refresh());
        assert_eq!(db.http01(TOKEN), None);

        a.add_tls_alpn01(dir.path(), "Example.COM", "t.thumb")
            .expect("add");
        let mine = da.tls_alpn01("example.com").expect("memory");
        assert!(b.refresh());
        let theirs = db.tls_alpn01("EXAMPLE.com.").expect("shared");
        // Built once per key authorization, not per lookup or per poll.
        assert!(Arc::ptr_eq(
            &theirs,
            &db.tls_alpn01("example.com").expect("again")
        ));
        assert!(!b.refresh());
        for ck in [mine, theirs] {
            let (critical, value, san) = acme_identifier(&ck);
            assert!(critical);
            // OCTET STRING (0x04, 32) wrapping the digest.
            assert_eq!(&value[..2], &[0x04, 0x20]);
            assert_eq!(&value[2..], Sha256::digest(b"t.thumb").as_slice());
            assert_eq!(san, "[DNSName(\"example.com\")]");
        }
        a.remove_tls_alpn01(dir.path(), "example.com");
        assert!(b.refresh());
        assert!(db.tls_alpn01("example.com").is_none());
        assert!(db.tls_alpn01("../x").is_none());
    }

    #[test]
    fn the_request_path_reads_memory_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let http01 = challenges_dir(dir.path()).join(HTTP01);
        std::fs::create_dir_all(&http01).expect("mkdir");
        std::fs::write(http01.join(TOKEN), "tok.thumb\n").expect("write");
        let s = StoredChallenges::new(vec![dir.path().to_path_buf()]);
        let plane = s.data_plane();
        assert_eq!(
            plane.http01(TOKEN),
            None,
            "nothing is read before a refresh"
        );
        assert!(s.refresh());
        // The directory goes away (or its file system stalls): lookups are answered from memory, and
        // would have to read nothing to answer: there is no file-system code behind `MemoryChallenges`.
        std::fs::remove_dir_all(dir.path().join(".swarmgate")).expect("rm");
        std::fs::write(dir.path().join(".swarmgate"), "not a directory").expect("replace");
        assert_eq!(plane.http01(TOKEN).as_deref(), Some("tok.thumb"));
        for _ in 0..1000 {
            let random: String = (0..43).map(|_| fastrand::alphanumeric()).collect();
            assert_eq!(plane.http01(&random), None);
        }
        // The next poll sees the withdrawal.
        assert!(s.refresh());
        assert_eq!(plane.http01(TOKEN), None);
    }

    #[test]
    fn a_poll_reads_only_bounded_regular_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let http01 = challenges_dir(dir.path()).join(HTTP01);
        std::fs::create_dir_all(&http01).expect("mkdir");
        // A FIFO (opening it would block), a symlink out of the directory, a huge file, a bad name.
        let fifo = "FIFOFIFOFIFOFIFOFIFOFIFOFIFOFIFOFIFOFIFOFIF";
        let made = std::process::Command::new("mkfifo")
            .arg(http01.join(fifo))
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let link = "LINKLINKLINKLINKLINKLINKLINKLINKLINKLINKLIN";
        std::os::unix::fs::symlink("/etc/hostname", http01.join(link)).expect("symlink");
        let big = "BIGBIGBIGBIGBIGBIGBIGBIGBIGBIGBIGBIGBIGBIG0";
        std::fs::write(http01.join(big), "x".repeat(1 << 20)).expect("big");
        std::fs::write(http01.join("bad name"), "x").expect("bad");
        std::fs::write(http01.join(TOKEN), "tok.thumb").expect("write");
        let (tx, rx) = std::sync::mpsc::channel();
        let dirs = vec![challenges_dir(dir.path())];
        std::thread::spawn(move || {
            let _ = tx.send(scan(&dirs));
        });
        let read = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the scan blocked");
        assert_eq!(read.http01.len(), 2, "{:?}", read.http01.keys());
        assert_eq!(read.http01[TOKEN], "tok.thumb");
        assert_eq!(read.http01[big].len() as u64, MAX_ANSWER_BYTES);
        assert!(propagation_delay(CHALLENGE_POLL) > CHALLENGE_POLL * 2);
    }
}
