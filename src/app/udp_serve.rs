//! Start-up step for the UDP entrypoints: bind them (before anything is served, so a bind failure stops
//! start-up like a TCP one), tell the table compiler their order, and run one UDP proxy task each.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::config::types::StaticConfig;
use crate::proxy::udp::{self, UdpEntryPointSpec};
use crate::supervisor::Supervisor;
use crate::table::{CompileContext, Store};

use super::{setup, AppError};

/// The bound UDP entrypoints, not yet served.
pub(super) struct BoundUdp {
    specs: Vec<UdpEntryPointSpec>,
}

/// Binds every UDP entrypoint and lists them, in order, in `ctx.udp_entry_points`.
pub(super) fn bind(cfg: &StaticConfig, ctx: &mut CompileContext) -> Result<BoundUdp, AppError> {
    let mut specs = Vec::new();
    for (index, ep) in setup::udp_entry_points(cfg)?.into_iter().enumerate() {
        let socket = std::net::UdpSocket::bind(ep.addr)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|source| AppError::Bind {
                name: ep.name.clone(),
                addr: ep.addr,
                source,
            })?;
        if let Ok(addr) = socket.local_addr() {
            tracing::info!("entrypoint {} listening on {addr}", ep.name);
            tracing::info!(
                "entrypoint {} is UDP: session timeout {:?}, at most {} sessions",
                ep.name,
                ep.timeout,
                ep.max_sessions
            );
        }
        let open_sessions = ctx.metrics.as_ref().map(|m| {
            m.open_connections
                .with_label_values(&[ep.name.as_str(), "UDP"])
        });
        ctx.udp_entry_points.push(ep.name.clone());
        specs.push(UdpEntryPointSpec {
            index,
            name: ep.name,
            socket,
            timeout: ep.timeout,
            max_sessions: ep.max_sessions,
            open_sessions,
        });
    }
    Ok(BoundUdp { specs })
}

impl BoundUdp {
    /// Each UDP entrypoint's name and bound address (for the API's entrypoint list).
    pub(super) fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.specs
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.socket.local_addr().ok()?)))
            .collect()
    }

    /// Serves every UDP entrypoint from `store` until `stop` is cancelled, supervised.
    pub(super) fn start(self, store: &Store, stop: &CancellationToken, tasks: &mut Supervisor) {
        for spec in self.specs {
            let name = format!("UDP entrypoint {}", spec.name);
            tasks.spawn(name, udp::serve(spec, store.clone(), stop.clone()));
        }
    }
}
