//! The ports a service's image exposes (`EXPOSE`), for `swarmgate check` on compose services that declare
//! none: at runtime the Docker provider reads them from the container; offline, `check` asks the Docker
//! engine for the image (`GET /images/{name}/json`, `Config.ExposedPorts`) when one is reachable.
//!
//! [`ImageSource`] is what the checker asks; [`Engine`] answers from a Docker engine (`DOCKER_HOST`, else
//! the local socket), connecting once on first use and giving each call a few seconds at most; [`NoEngine`]
//! answers that no engine is asked (tests, fixtures). Control plane only: `check` is a one-shot command.

use std::cell::OnceCell;
use std::time::Duration;

use crate::provider::docker::client::DockerClient;

/// Why an image's ports are unknown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// No Docker engine answered (said once for the whole check).
    #[error("no Docker engine reachable ({0})")]
    Unreachable(String),
    /// The engine does not have the image (it is pulled or built at deploy time).
    #[error("image `{0}` is not on this Docker engine")]
    NotFound(String),
    /// The engine answered something else.
    #[error("image `{image}`: {reason}")]
    Api {
        /// The image.
        image: String,
        /// The engine's answer.
        reason: String,
    },
}

/// Where `check` learns an image's exposed ports.
pub trait ImageSource {
    /// The TCP ports `image` exposes, sorted and unique (empty: it exposes none).
    fn exposed_ports(&self, image: &str) -> Result<Vec<u16>, ImageError>;
}

/// Asks no engine: every image's ports are unknown ("not asked"). For tests and fixtures, whose answers
/// must not depend on the machine's Docker engine.
pub struct NoEngine;

impl ImageSource for NoEngine {
    fn exposed_ports(&self, _image: &str) -> Result<Vec<u16>, ImageError> {
        Err(ImageError::Unreachable(
            "the Docker engine is not asked".into(),
        ))
    }
}

/// A Docker engine: `DOCKER_HOST` (`unix://…` or `tcp://…`), else `unix:///var/run/docker.sock`.
pub struct Engine {
    endpoint: String,
    rt: Option<tokio::runtime::Runtime>,
    client: OnceCell<Result<DockerClient, String>>,
}

/// How long the engine has for the connection and for each image.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(5);

impl Engine {
    /// The engine `docker_host` names (the `DOCKER_HOST` variable), or the local socket. No I/O yet.
    pub fn new(docker_host: Option<&str>) -> Engine {
        let endpoint = docker_host
            .filter(|h| !h.trim().is_empty())
            .unwrap_or("unix:///var/run/docker.sock")
            .to_string();
        Engine {
            endpoint,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok(),
            client: OnceCell::new(),
        }
    }

    fn client(&self) -> Result<(&DockerClient, &tokio::runtime::Runtime), ImageError> {
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| ImageError::Unreachable("no runtime for the Docker client".into()))?;
        let client = self.client.get_or_init(|| {
            let c = DockerClient::new(&self.endpoint, None, ENGINE_TIMEOUT)
                .map_err(|e| e.to_string())?;
            rt.block_on(c.connect()).map_err(|e| e.to_string())
        });
        match client {
            Ok(c) => Ok((c, rt)),
            Err(e) => Err(ImageError::Unreachable(e.clone())),
        }
    }
}

impl ImageSource for Engine {
    fn exposed_ports(&self, image: &str) -> Result<Vec<u16>, ImageError> {
        let (client, rt) = self.client()?;
        let answer = rt.block_on(async {
            tokio::time::timeout(ENGINE_TIMEOUT, client.docker.inspect_image(image)).await
        });
        let inspect = match answer {
            Err(_) => {
                return Err(ImageError::Api {
                    image: image.into(),
                    reason: format!("no answer within {ENGINE_TIMEOUT:?}"),
                })
            }
            Ok(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            })) => return Err(ImageError::NotFound(image.into())),
            Ok(Err(e)) => {
                return Err(ImageError::Api {
                    image: image.into(),
                    reason: e.to_string(),
                })
            }
            Ok(Ok(i)) => i,
        };
        Ok(tcp_ports(
            inspect
                .config
                .and_then(|c| c.exposed_ports)
                .unwrap_or_default()
                .iter()
                .map(String::as_str),
        ))
    }
}

/// `80/tcp`, `53/udp`, `8080` → the TCP ports, sorted and unique (the provider routes TCP ports only).
fn tcp_ports<'a>(exposed: impl Iterator<Item = &'a str>) -> Vec<u16> {
    let mut ports: Vec<u16> = exposed
        .filter_map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            (proto == "tcp").then(|| port.parse().ok()).flatten()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_tcp_ports() {
        assert_eq!(
            tcp_ports(["8080/tcp", "53/udp", "80/tcp", "80", "x/tcp"].into_iter()),
            [80, 8080]
        );
    }

    #[test]
    fn an_engine_that_is_not_there_is_unreachable() {
        let e = Engine::new(Some("unix:///nonexistent/docker.sock"));
        assert!(matches!(
            e.exposed_ports("app"),
            Err(ImageError::Unreachable(_))
        ));
    }
}
