//! Docker fixtures: test images built once from the binaries under test, unique names per run, cleanup guards
//! that run on panic, a one-node Swarm, and a unix-socket forwarder that can be cut.
//!
//! Images: `FROM scratch` with the test build of `swarmgate` / `whoami` and the shared libraries `ldd` lists,
//! tagged by the binary's size and mtime, so every test binary (and every nextest process) reuses one build
//! and a code change rebuilds it. The tags `swarmgate-it:*` / `swarmgate-whoami-it:*` are a cache kept
//! between runs (older tags are removed when a new one is built); everything else a test creates
//! (containers, services, networks) is removed by [`Cleanup`] even when the test panics.
//!
//! The test client only ever talks to swarmgate through a port published on 127.0.0.1 (host mode);
//! swarmgate reaches the backends over the Docker network.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Runs `docker args…`, returning its output (never panics).
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker: {e}"))
}

/// Runs `docker args…` and returns trimmed stdout; panics with stderr on failure.
pub fn docker_ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(
        o.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The environment switch that lets the Docker tests pass without an engine: `SWARMGATE_SKIP_DOCKER_TESTS=1`.
pub const SKIP_ENV: &str = "SWARMGATE_SKIP_DOCKER_TESTS";

/// Whether a Docker engine answers `docker info`: `Err` says why not (the CLI's own error).
fn engine() -> Result<(), String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(format!("cannot run `docker`: {e}")),
    }
}

/// Whether `test` should run. With a Docker engine: true. Without one the test fails with a clear message (a
/// Docker test that silently passes proves nothing), unless `SWARMGATE_SKIP_DOCKER_TESTS=1` asks to skip:
/// then false, after a loud note on stderr.
pub fn engine_or_skip(test: &str) -> bool {
    let Err(why) = engine() else {
        return true;
    };
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!(
            "\n*** SKIPPED {test}: no Docker engine ({why}), and {SKIP_ENV}=1 asks to skip. \
             This test proves nothing in this run. ***\n"
        );
        return false;
    }
    panic!(
        "{test} needs a Docker engine and none answers `docker info`: {why}\n\
         Start Docker (and give this user access to its socket), or set {SKIP_ENV}=1 to skip the Docker tests."
    );
}

/// A name prefix unique to this test run and test.
pub fn prefix(test: &str) -> String {
    let n: u32 = fastrand::u32(..0xffff);
    format!("sgt{}{:04x}-{test}", std::process::id() % 100_000, n)
}

/// Creates the test run's network `<prefix>-net` (overlay for Swarm tests), labelled with the run so
/// leftovers can be found, and registers it with `clean`.
pub fn create_network(prefix: &str, overlay: bool, clean: &Cleanup) -> String {
    let net = format!("{prefix}-net");
    let label = format!("sgt.run={prefix}");
    let mut args = vec!["network", "create"];
    if overlay {
        args.push("--driver=overlay");
    }
    args.extend(["--label", &label, &net]);
    docker_ok(&args);
    clean.network(&net);
    net
}

/// Removes what a test created, in reverse order, on drop (also on panic).
#[derive(Default)]
pub struct Cleanup {
    items: Mutex<Vec<(&'static str, String)>>,
}

impl Cleanup {
    /// A container to `docker rm -f`.
    pub fn container(&self, name: &str) {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(("container", name.to_string()));
    }
    /// A service to `docker service rm`.
    pub fn service(&self, name: &str) {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(("service", name.to_string()));
    }
    /// Starts a detached container `name` on `network` (`docker run -d --name … --network … args…`), removed
    /// on drop; returns its ID.
    pub fn run(&self, name: &str, network: &str, args: &[&str]) -> String {
        self.container(name);
        let mut all = vec!["run", "-d", "--name", name, "--network", network];
        all.extend_from_slice(args);
        docker_ok(&all)
    }
    /// A network to `docker network rm` (after its users).
    pub fn network(&self, name: &str) {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(("network", name.to_string()));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let items = std::mem::take(&mut *self.items.lock().unwrap_or_else(|e| e.into_inner()));
        for (kind, name) in items.iter().rev() {
            match *kind {
                "container" => {
                    docker(&["rm", "-f", "-v", name]);
                }
                "service" => {
                    docker(&["service", "rm", name]);
                }
                _ => {
                    // Service tasks take a moment to release the network.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while !docker(&["network", "rm", name]).status.success()
                        && Instant::now() < deadline
                    {
                        if !docker(&["network", "inspect", name]).status.success() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(250));
                    }
                }
            }
        }
    }
}

/// An image this test built, removed on drop (also on panic).
pub struct BuiltImage(pub String);

impl BuiltImage {
    /// `docker build -q -t tag context`.
    pub fn build(tag: &str, context: &Path) -> BuiltImage {
        docker_ok(&[
            "build",
            "-q",
            "-t",
            tag,
            context.to_str().expect("utf-8 path"),
        ]);
        BuiltImage(tag.to_string())
    }
}

impl Drop for BuiltImage {
    fn drop(&mut self) {
        docker(&["rmi", "-f", &self.0]);
    }
}

/// Makes this engine a one-node Swarm manager if it is not one (left initialised afterwards).
pub fn ensure_swarm() {
    let state = docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    if state == "active" {
        return;
    }
    let o = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() || err.contains("already part of a swarm"),
        "docker swarm init: {err}"
    );
}

/// A free TCP port on 127.0.0.1, reserved for this test run (see [`super::free_port`]).
pub fn free_port() -> u16 {
    super::free_port()
}

/// The two test images.
pub struct Images {
    /// swarmgate.
    pub gate: String,
    /// whoami.
    pub whoami: String,
}

/// Builds (once per binary version) and returns the test images.
pub fn images() -> Images {
    Images {
        gate: image("swarmgate-it", env!("CARGO_BIN_EXE_swarmgate")),
        whoami: image("swarmgate-whoami-it", env!("CARGO_BIN_EXE_whoami")),
    }
}

fn image(repo: &str, bin: &str) -> String {
    let meta = std::fs::metadata(bin).unwrap_or_else(|e| panic!("{bin}: {e}"));
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let tag = format!("{repo}:{:x}-{:x}", meta.len(), mtime);
    if docker(&["image", "inspect", &tag]).status.success() {
        return tag;
    }
    let lock = std::env::temp_dir().join(format!("{repo}.build.lock"));
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match std::fs::create_dir(&lock) {
            Ok(()) => break,
            Err(_) => {
                if docker(&["image", "inspect", &tag]).status.success() {
                    return tag;
                }
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|e| e > Duration::from_secs(180));
                if stale {
                    let _ = std::fs::remove_dir(&lock);
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {}",
                    lock.display()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    struct Unlock(PathBuf);
    impl Drop for Unlock {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unlock = Unlock(lock);
    if docker(&["image", "inspect", &tag]).status.success() {
        return tag;
    }
    let ctx = tempfile::tempdir().expect("tmp");
    copy_with_libs(Path::new(bin), ctx.path());
    let mut f = std::fs::File::create(ctx.path().join("Dockerfile")).expect("Dockerfile");
    writeln!(f, "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/app\"]").expect("write");
    let t0 = Instant::now();
    let o = Command::new("docker")
        .args(["build", "-q", "-t", &tag, "."])
        .current_dir(ctx.path())
        .output()
        .expect("docker build");
    assert!(
        o.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("built test image {tag} in {:?}", t0.elapsed());
    // Drop older builds of the same repository (best effort; images in use stay).
    let old = docker_ok(&["images", repo, "--format", "{{.Repository}}:{{.Tag}}"]);
    for t in old.lines().filter(|t| *t != tag) {
        docker(&["rmi", t]);
    }
    tag
}

/// Copies `bin` to `ctx/rootfs/app` with the shared libraries `ldd` lists, for a `FROM scratch` image.
/// The copy has no debug sections (`objcopy --strip-debug`, when binutils is there): images stay a third of
/// the binary's size on CI disks, and function names remain for backtraces.
pub fn copy_with_libs(bin: &Path, ctx: &Path) {
    let root = ctx.join("rootfs");
    std::fs::create_dir_all(&root).expect("mkdir");
    let app = root.join("app");
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(bin)
        .arg(&app)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(bin, &app).expect("copy binary");
    }
    let o = Command::new("ldd").arg(bin).output().expect("ldd");
    let text = String::from_utf8_lossy(&o.stdout);
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
        let path = line
            .split("=>")
            .nth(1)
            .unwrap_or(line)
            .split_whitespace()
            .next()
            .unwrap_or("");
        if !path.starts_with('/') {
            continue;
        }
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
        let dest = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&real, &dest).unwrap_or_else(|e| panic!("copy {path}: {e}"));
    }
}

/// Logs of a container or service (stdout and stderr).
pub fn logs(name: &str, service: bool) -> String {
    let o = if service {
        docker(&["service", "logs", "--raw", name])
    } else {
        docker(&["logs", name])
    };
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Blocking poll with a deadline.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A unix-socket forwarder in front of the Docker socket that a test can cut and restore, to simulate the
/// daemon going away, or whose event streams it can hold back, to make events late. Connections are
/// spliced byte for byte.
pub struct SocketForwarder {
    /// Directory holding `docker.sock` (bind-mount it into the swarmgate container).
    pub dir: tempfile::TempDir,
    cut: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    target: PathBuf,
    events: EventHold,
}

/// What the forwarder does with `GET …/events` streams: while `held` is true, the daemon's bytes on a
/// connection that asked for events are read from the daemon but not passed on (they wait in the
/// forwarder); every other request and response flows.
#[derive(Clone)]
struct EventHold {
    held: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    /// Connections that asked for events.
    streams: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Chunks of event-stream bytes that had to wait (each waits until the hold is released).
    waited: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl EventHold {
    /// Splices `inbound` (swarmgate) and `outbound` (the daemon) until either side closes.
    async fn splice(self, inbound: tokio::net::UnixStream, outbound: tokio::net::UnixStream) {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client_rd, mut client_wr) = inbound.into_split();
        let (mut daemon_rd, mut daemon_wr) = outbound.into_split();
        let events = std::sync::Arc::new(AtomicBool::new(false));
        let up = {
            let (events, streams) = (events.clone(), self.streams.clone());
            async move {
                let mut buf = vec![0u8; 16 * 1024];
                // The last bytes of the previous read: a request line split across reads is still seen.
                let mut tail: Vec<u8> = Vec::new();
                loop {
                    let n = client_rd.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        let _ = daemon_wr.shutdown().await;
                        return;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    // Set before the request reaches the daemon, so its answer is already held.
                    if !events.load(Ordering::SeqCst)
                        && tail.windows(b"/events".len()).any(|w| w == b"/events")
                    {
                        events.store(true, Ordering::SeqCst);
                        streams.fetch_add(1, Ordering::SeqCst);
                    }
                    let keep = tail.len().saturating_sub(16);
                    tail.drain(..keep);
                    if daemon_wr.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        };
        let down = async move {
            let mut buf = vec![0u8; 16 * 1024];
            // Bytes read from the daemon and not yet passed on, in order.
            let mut pending: Vec<u8> = Vec::new();
            let mut hold = self.held.subscribe();
            loop {
                let held = || events.load(Ordering::SeqCst) && *self.held.borrow();
                if !held() && !pending.is_empty() {
                    if client_wr.write_all(&pending).await.is_err() {
                        return;
                    }
                    pending.clear();
                }
                tokio::select! {
                    r = daemon_rd.read(&mut buf) => {
                        let n = r.unwrap_or(0);
                        if n == 0 {
                            let _ = client_wr.shutdown().await;
                            return;
                        }
                        pending.extend_from_slice(&buf[..n]);
                        if held() {
                            self.waited.fetch_add(1, Ordering::SeqCst);
                        } else {
                            if client_wr.write_all(&pending).await.is_err() {
                                return;
                            }
                            pending.clear();
                        }
                    }
                    // Released (or held again): look again.
                    _ = hold.changed() => {}
                }
            }
        };
        tokio::join!(up, down);
    }
}

impl SocketForwarder {
    /// Starts forwarding `<dir>/docker.sock` → `target`.
    pub fn start(target: &Path) -> SocketForwarder {
        let dir = tempfile::Builder::new()
            .prefix("sgt-sock")
            .tempdir_in("/tmp")
            .expect("tmp");
        let mut f = SocketForwarder {
            dir,
            cut: tokio_util::sync::CancellationToken::new(),
            task: None,
            target: target.to_path_buf(),
            events: EventHold {
                held: std::sync::Arc::new(tokio::sync::watch::channel(false).0),
                streams: Default::default(),
                waited: Default::default(),
            },
        };
        f.restore();
        f
    }

    /// Path of the forwarding socket.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// Holds back (`true`) or lets through (`false`) what the daemon sends on event streams (`GET
    /// …/events`), so that events arrive late while every other call is answered at once. Held bytes
    /// are delivered, in order, when the hold is released.
    pub fn hold_events(&self, hold: bool) {
        self.events.held.send_replace(hold);
    }

    /// How many connections have asked for an event stream so far.
    pub fn event_streams(&self) -> usize {
        self.events
            .streams
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many chunks of event-stream bytes were held back so far (each is a response head or events
    /// the daemon sent while the hold was on).
    pub fn held_event_chunks(&self) -> usize {
        self.events.waited.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes the socket and every open connection (the daemon "goes away").
    pub fn cut(&mut self) {
        self.cut.cancel();
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let _ = std::fs::remove_file(self.path());
    }

    /// Listens again (the daemon "comes back").
    pub fn restore(&mut self) {
        self.cut();
        self.cut = tokio_util::sync::CancellationToken::new();
        let path = self.path();
        let listener = tokio::net::UnixListener::bind(&path).expect("bind forwarder");
        // World-writable so the container's root can connect whatever the user mapping.
        let _ = Command::new("chmod").arg("666").arg(&path).status();
        let target = self.target.clone();
        let cut = self.cut.clone();
        let events = self.events.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let (inbound, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(c) => c, Err(_) => return },
                    _ = cut.cancelled() => return,
                };
                let target = target.clone();
                let cut = cut.clone();
                let events = events.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::UnixStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        () = events.splice(inbound, outbound) => {}
                        _ = cut.cancelled() => {}
                    }
                });
            }
        }));
    }
}

impl Drop for SocketForwarder {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Percentile (0–100) of durations, nearest-rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}
