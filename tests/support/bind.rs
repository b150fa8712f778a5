//! BIND 9 fixture for DNS-01 tests: a real authoritative `named` on a free loopback port serving the zone
//! `example.test` (SOA, NS `ns.example.test` → 127.0.0.1, `*` → 127.0.0.1, and the CNAME
//! `_acme-challenge.c` → `_acme-challenge.delegated`), dynamic updates allowed with the TSIG key
//! [`KEY_NAME`] (hmac-sha256). [`nsupdate`] writes into the zone with Debian's `nsupdate`, the way the
//! exec/httpreq/API stand-ins of the tests do. Needs `named` and `nsupdate` (`apt-get install bind9
//! bind9-utils`); killed on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The TSIG key name.
pub const KEY_NAME: &str = "swarmgate-test-key";
/// The TSIG secret (base64).
pub const KEY_SECRET: &str = "c3dhcm1nYXRlLXRlc3QtdHNpZy1zZWNyZXQtMzItYnl0ZXM=";
/// The test zone.
pub const ZONE: &str = "example.test";

/// A running `named`.
pub struct Bind {
    child: Option<Child>,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Bind {
    /// Starts `named` in the foreground and waits until it answers the zone's SOA.
    pub fn start() -> Bind {
        let dir = tempfile::tempdir().expect("tmp");
        let port = crate::support::free_port();
        let d = dir.path().display().to_string();
        let conf = format!(
            r#"options {{
  directory "{d}";
  pid-file "{d}/named.pid";
  session-keyfile "{d}/session.key";
  managed-keys-directory "{d}";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  notify no;
}};
controls {{ }};
key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{KEY_SECRET}"; }};
zone "{ZONE}" {{
  type primary;
  file "{d}/{ZONE}.zone";
  allow-update {{ key "{KEY_NAME}"; }};
}};
"#
        );
        let zone = format!(
            "$TTL 5\n@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 60 60 600 5\n@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n* IN A 127.0.0.1\n_acme-challenge.c IN CNAME _acme-challenge.delegated.{ZONE}.\n"
        );
        std::fs::write(dir.path().join("named.conf"), conf).expect("conf");
        std::fs::write(dir.path().join(format!("{ZONE}.zone")), zone).expect("zone");
        let log = std::fs::File::create(dir.path().join("named.log")).expect("log");
        let child = Command::new("named")
            .args(["-g", "-4", "-n", "1", "-c"])
            .arg(dir.path().join("named.conf"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn named (apt-get install bind9)");
        let b = Bind {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if b.dig(ZONE, "SOA").contains("hostmaster") {
                return b;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("named did not start:\n{}", b.log());
    }

    /// named's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    /// `dig +short` of `name`/`rtype` at this server.
    pub fn dig(&self, name: &str, rtype: &str) -> String {
        let out = Command::new("dig")
            .args(["+short", "+time=1", "+tries=1", "-p"])
            .arg(self.addr.port().to_string())
            .arg("@127.0.0.1")
            .args([name, rtype])
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The TXT values of `name` (quotes removed).
    pub fn txt(&self, name: &str) -> Vec<String> {
        self.dig(name, "TXT")
            .lines()
            .map(|l| l.trim().trim_matches('"').to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The directory of this run (scripts may be written there).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `nsupdate` commands adding (`add`) or deleting a TXT value at the server on `port`, signed with the key.
pub fn nsupdate_script(port: u16, add: bool, fqdn: &str, value: &str) -> String {
    let verb = if add { "add" } else { "delete" };
    let ttl = if add { "5 " } else { "" };
    format!(
        "server 127.0.0.1 {port}\nkey hmac-sha256:{KEY_NAME} {KEY_SECRET}\nupdate {verb} {fqdn} {ttl}TXT \"{value}\"\nsend\n"
    )
}

/// Runs `nsupdate` against the server on `port` (blocking); true when it succeeded.
pub fn nsupdate(port: u16, add: bool, fqdn: &str, value: &str) -> bool {
    use std::io::Write;
    let mut child = Command::new("nsupdate")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nsupdate (apt-get install bind9-utils)");
    let script = nsupdate_script(port, add, fqdn, value);
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    child.wait().map(|s| s.success()).unwrap_or(false)
}
