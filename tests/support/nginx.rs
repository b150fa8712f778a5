//! nginx fixture: a real `nginx` (Debian's `nginx-light` is enough) in a fresh directory with one `server`
//! block, for tests that put nginx behind or in front of swarmgate; killed on drop.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::support::poll_until;

/// Writes `nginx.conf` in `dir`: an `http` block holding `server`, every path inside `dir`.
fn nginx_conf(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d};
  proxy_temp_path {d};
  fastcgi_temp_path {d};
  uwsgi_temp_path {d};
  scgi_temp_path {d};
  {server}
}}
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    conf
}

/// nginx with `server` (a `server { ... }` block) in a fresh directory; killed on drop.
pub struct Nginx {
    child: std::process::Child,
    /// Its directory (logs).
    pub dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx and waits until `port` accepts.
    pub async fn start(server: impl Fn(&std::path::Path) -> String, port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let conf = nginx_conf(dir.path(), &server(dir.path()));
        let child = std::process::Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx (apt-get install nginx-light)");
        let n = Nginx { child, dir };
        let up = poll_until(Duration::from_secs(10), || async {
            TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        assert!(
            up,
            "nginx did not start: {}",
            std::fs::read_to_string(n.dir.path().join("error.log")).unwrap_or_default()
        );
        n
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
