//! `swarmgate healthcheck`: asks the running instance's `ping@internal` whether it is healthy, for a Docker
//! `HEALTHCHECK` in the `FROM scratch` image, which has no curl. Like `traefik healthcheck`, it reads the same
//! static configuration (flags, environment, file) to find ping's entrypoint address.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::types::StaticConfig;

/// Why the instance is not healthy (or could not be asked).
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// `--ping` is not enabled in the static configuration.
    #[error("please enable `ping` to use health check")]
    PingDisabled,
    /// Ping is only routed by the user's own router; its address is unknown.
    #[error("ping.manualRouting is set: the ping address cannot be derived from the static configuration")]
    ManualRouting,
    /// The ping entrypoint is not defined.
    #[error("ping entrypoint `{0}` is not defined")]
    NoEntryPoint(String),
    /// The entrypoint's address does not parse.
    #[error("entryPoints.{name}.address `{address}`: {reason}")]
    Address {
        /// Entrypoint name.
        name: String,
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// Connecting, writing or reading failed or timed out.
    #[error("GET http://{addr}/ping: {reason}")]
    Request {
        /// Where.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// Ping answered, but not 200.
    #[error("bad healthcheck status: {0}")]
    Status(u16),
}

/// The address to request: the ping entrypoint's, with an unspecified host replaced by loopback.
pub fn ping_address(cfg: &StaticConfig) -> Result<std::net::SocketAddr, HealthcheckError> {
    let ping = cfg.ping.as_ref().ok_or(HealthcheckError::PingDisabled)?;
    if ping.manual_routing {
        return Err(HealthcheckError::ManualRouting);
    }
    let name = ping.entry_point.clone().unwrap_or_else(|| "traefik".into());
    let address = match cfg.entry_points.get(&name) {
        Some(ep) => ep.address.clone(),
        // Traefik's implicit `traefik` entrypoint listens on :8080.
        None if name == "traefik" => ":8080".to_string(),
        None => return Err(HealthcheckError::NoEntryPoint(name)),
    };
    let (mut addr, _) =
        crate::config::parse_address(&address).map_err(|reason| HealthcheckError::Address {
            name: name.clone(),
            address: address.clone(),
            reason,
        })?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(addr)
}

/// Requests `/ping` on the ping entrypoint (5 s timeout, as Traefik); `Ok` only for a 200 answer.
pub async fn run(cfg: &StaticConfig) -> Result<(), HealthcheckError> {
    let addr = ping_address(cfg)?;
    let fail = |reason: String| HealthcheckError::Request {
        addr: addr.to_string(),
        reason,
    };
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let req = format!("GET /ping HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
            let n = s.read(&mut chunk).await.map_err(|e| fail(e.to_string()))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        let line = String::from_utf8_lossy(&buf);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| fail("not an HTTP answer".into()))?;
        Ok::<u16, HealthcheckError>(code)
    };
    let code = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| fail("timed out after 5s".into()))??;
    if code == 200 {
        Ok(())
    } else {
        Err(HealthcheckError::Status(code))
    }
}
