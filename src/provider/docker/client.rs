//! The connection to the Docker Engine API: endpoint resolution, bollard client, and one raw call.
//!
//! Endpoints as Traefik takes them: `unix:///var/run/docker.sock` (default), `tcp://host:2375` (a
//! docker-socket-proxy), `http://…`, or `DOCKER_HOST` when the provider sets no `endpoint`; TLS client files
//! from `providers.docker.tls`. The client only reads (list, inspect, events).
//!
//! bollard's `Task` model has no `NetworksAttachments`, which carries the task addresses Swarm routing needs,
//! so [`DockerClient::raw_get`] performs that one `GET /tasks` itself over the same endpoint (HTTP/1.1 on a
//! fresh connection, JSON body).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

use crate::config::types::{ClientTls, DockerProvider};

/// Default endpoint, as Docker and Traefik.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// Why the Docker API could not be used. Every variant names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The endpoint text is not understood.
    #[error("docker endpoint `{endpoint}`: {reason}")]
    Endpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The socket or host cannot be reached.
    #[error("docker endpoint `{endpoint}` is unreachable: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The OS or HTTP error.
        reason: String,
    },
    /// An API call failed; the message names the cause (DNS, refused, timeout, TLS) found in the error chain.
    #[error("docker endpoint `{endpoint}`: {call}: {}", cause(.source))]
    Api {
        /// The endpoint.
        endpoint: String,
        /// Which call (`GET /services`).
        call: &'static str,
        /// bollard's error.
        source: bollard::errors::Error,
    },
    /// A raw call failed or answered something unexpected.
    #[error("docker endpoint `{endpoint}`: {call}: {reason}")]
    Raw {
        /// The endpoint.
        endpoint: String,
        /// Which call.
        call: String,
        /// What went wrong.
        reason: String,
    },
}

/// Where the Docker API answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` over TCP, with TLS when client files are configured.
    Tcp {
        /// `host:port`.
        authority: String,
        /// TLS client settings.
        tls: Option<ClientTls>,
    },
}

impl Endpoint {
    /// Parses `unix:///path`, `/path`, `tcp://host:port`, `http://host:port` or `https://host:port`.
    pub fn parse(text: &str, tls: Option<&ClientTls>) -> Result<Endpoint, DockerError> {
        let bad = |reason: &str| DockerError::Endpoint {
            endpoint: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text.trim();
        if let Some(p) = t.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(bad("empty socket path"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if t.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(t)));
        }
        for scheme in ["tcp://", "http://", "https://"] {
            if let Some(rest) = t.strip_prefix(scheme) {
                let authority = rest.trim_end_matches('/').to_string();
                if authority.is_empty() || !authority.contains(':') {
                    return Err(bad("expected host:port"));
                }
                let tls = tls
                    .cloned()
                    .filter(|c| c.ca.is_some() || c.cert.is_some() || c.insecure_skip_verify);
                return Ok(Endpoint::Tcp { authority, tls });
            }
        }
        if t.starts_with("ssh://") || t.starts_with("npipe://") {
            return Err(bad(
                "ssh and named-pipe endpoints are not supported (use unix:// or tcp://)",
            ));
        }
        Err(bad(
            "expected unix:///path/to/docker.sock or tcp://host:port",
        ))
    }
}

/// The endpoint a provider uses: its own `endpoint`, else `DOCKER_HOST`, else the default socket.
pub fn endpoint_text(cfg: &DockerProvider, docker_host: Option<&str>) -> String {
    cfg.endpoint
        .clone()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            docker_host
                .map(str::to_string)
                .filter(|e| !e.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
}

/// A read-only Docker API client.
#[derive(Clone)]
pub struct DockerClient {
    /// The typed client.
    pub docker: Docker,
    /// The endpoint as configured (for messages).
    pub endpoint_text: String,
    endpoint: Endpoint,
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn api<'a>(
    endpoint: &'a str,
    call: &'static str,
) -> impl FnOnce(bollard::errors::Error) -> DockerError + 'a {
    move |source| DockerError::Api {
        endpoint: endpoint.to_string(),
        call,
        source,
    }
}

impl DockerClient {
    /// Builds a client (no I/O yet) for `endpoint_text`; `timeout` bounds every call except the event stream
    /// (`httpClientTimeout`; 0 means Traefik's default of 32 s... we use 30 s).
    pub fn new(
        endpoint_text: &str,
        tls: Option<&ClientTls>,
        timeout: Duration,
    ) -> Result<DockerClient, DockerError> {
        let endpoint = Endpoint::parse(endpoint_text, tls)?;
        let timeout = if timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            timeout
        };
        let secs = timeout.as_secs().max(1);
        let bad = |e: bollard::errors::Error| DockerError::Endpoint {
            endpoint: endpoint_text.to_string(),
            reason: e.to_string(),
        };
        let (docker, tls_cfg) = match &endpoint {
            Endpoint::Unix(path) => (
                {
                    if let Err(e) = std::fs::metadata(path) {
                        return Err(DockerError::Unreachable {
                            endpoint: endpoint_text.to_string(),
                            reason: format!("{}: {e} (mount the Docker socket, or set providers.docker.endpoint)", path.display()),
                        });
                    }
                    Docker::connect_with_unix(
                        &path.to_string_lossy(),
                        secs,
                        bollard::API_DEFAULT_VERSION,
                    )
                    .map_err(bad)?
                },
                None,
            ),
            Endpoint::Tcp {
                authority,
                tls: None,
            } => (
                Docker::connect_with_http(
                    &format!("http://{authority}"),
                    secs,
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(bad)?,
                None,
            ),
            Endpoint::Tcp {
                authority,
                tls: Some(t),
            } => {
                let (Some(ca), Some(cert), Some(key)) = (&t.ca, &t.cert, &t.key) else {
                    return Err(DockerError::Endpoint {
                        endpoint: endpoint_text.to_string(),
                        reason: "TLS needs providers.docker.tls.ca, .cert and .key".into(),
                    });
                };
                let docker = Docker::connect_with_ssl(
                    &format!("https://{authority}"),
                    Path::new(key),
                    Path::new(cert),
                    Path::new(ca),
                    secs,
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(bad)?;
                let cfg = raw_tls_config(t).map_err(|reason| DockerError::Endpoint {
                    endpoint: endpoint_text.to_string(),
                    reason,
                })?;
                (docker, Some(Arc::new(cfg)))
            }
        };
        Ok(DockerClient {
            docker,
            endpoint_text: endpoint_text.to_string(),
            endpoint,
            timeout,
            tls: tls_cfg,
        })
    }

    /// Checks the endpoint answers and agrees on an API version (the engine's, if older than ours).
    /// A missing socket is reported as such, naming the path.
    pub async fn connect(mut self) -> Result<DockerClient, DockerError> {
        if let Endpoint::Unix(p) = &self.endpoint {
            if let Err(e) = std::fs::metadata(p) {
                return Err(DockerError::Unreachable {
                    endpoint: self.endpoint_text.clone(),
                    reason: format!(
                        "{}: {e} (mount the Docker socket, or set providers.docker.endpoint)",
                        p.display()
                    ),
                });
            }
        }
        let docker = tokio::time::timeout(self.timeout, self.docker.clone().negotiate_version())
            .await
            .map_err(|_| DockerError::Unreachable {
                endpoint: self.endpoint_text.clone(),
                reason: format!("no answer within {:?}", self.timeout),
            })?
            .map_err(|e| DockerError::Unreachable {
                endpoint: self.endpoint_text.clone(),
                reason: cause(&e),
            })?;
        self.docker = docker;
        Ok(self)
    }

    /// The negotiated API version prefix (`/v1.41`).
    fn version_prefix(&self) -> String {
        let v = self.docker.client_version();
        format!("/v{}.{}", v.major_version, v.minor_version)
    }

    /// Maps a bollard error to ours for `call`.
    pub fn api_error(
        &self,
        call: &'static str,
    ) -> impl FnOnce(bollard::errors::Error) -> DockerError + '_ {
        api(&self.endpoint_text, call)
    }

    /// `GET path` (with the API version prefix) on a fresh connection; returns the body of a 200 answer.
    pub async fn raw_get(&self, path: &str) -> Result<Bytes, DockerError> {
        let call = format!("GET {path}");
        let fail = |reason: String| DockerError::Raw {
            endpoint: self.endpoint_text.clone(),
            call: call.clone(),
            reason,
        };
        let uri = format!("{}{path}", self.version_prefix());
        let work = async {
            let host = match &self.endpoint {
                Endpoint::Unix(_) => "docker".to_string(),
                Endpoint::Tcp { authority, .. } => authority.clone(),
            };
            let req = http::Request::get(uri.as_str())
                .header(http::header::HOST, host)
                .header(http::header::USER_AGENT, "swarmgate")
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let resp = match &self.endpoint {
                Endpoint::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p)
                        .await
                        .map_err(|e| format!("{}: {}", p.display(), cause(&e)))?;
                    send(s, req).await?
                }
                Endpoint::Tcp { authority, .. } => {
                    let s = tokio::net::TcpStream::connect(authority.as_str())
                        .await
                        .map_err(|e| cause(&e))?;
                    match &self.tls {
                        None => send(s, req).await?,
                        Some(cfg) => {
                            let host = authority
                                .rsplit_once(':')
                                .map(|(h, _)| h)
                                .unwrap_or(authority)
                                .trim_matches(['[', ']']);
                            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                                .map_err(|e| e.to_string())?;
                            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                                .connect(name, s)
                                .await
                                .map_err(|e| cause(&e))?;
                            send(tls, req).await?
                        }
                    }
                }
            };
            Ok::<_, String>(resp)
        };
        let (status, body) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| fail(format!("no answer within {:?}", self.timeout)))?
            .map_err(fail)?;
        if status != http::StatusCode::OK {
            return Err(DockerError::Raw {
                endpoint: self.endpoint_text.clone(),
                call: format!("GET {path}"),
                reason: format!("{status}: {}", String::from_utf8_lossy(&body).trim()),
            });
        }
        Ok(body)
    }
}

async fn send<S>(
    stream: S,
    req: http::Request<Empty<Bytes>>,
) -> Result<(http::StatusCode, Bytes), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| cause(&e))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| cause(&e))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driver.abort();
    Ok((status, body))
}

/// The error with the cause of a connection failure named (`crate::cause`), and for an untrusted engine
/// certificate the setting that fixes it.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let text = crate::cause::describe(e);
    if crate::cause::classify(e) == Some(crate::cause::Cause::TlsUnknownIssuer) {
        format!(
            "{text} (set providers.docker.tls.ca to the CA that signed the engine's certificate)"
        )
    } else {
        text
    }
}

fn raw_tls_config(t: &ClientTls) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &t.ca {
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("tls.ca {ca}: {e}"))? {
            roots
                .add(c.map_err(|e| format!("tls.ca {ca}: {e}"))?)
                .map_err(|e| format!("tls.ca {ca}: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("tls.cert {cert}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("tls.cert {cert}: {e}"))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls.key {key}: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| e.to_string())
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("unix:///var/run/docker.sock", None).ok(),
            Some(Endpoint::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("/tmp/d.sock", None).ok(),
            Some(Endpoint::Unix("/tmp/d.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://socket-proxy:2375", None).ok(),
            Some(Endpoint::Tcp {
                authority: "socket-proxy:2375".into(),
                tls: None
            })
        );
        for bad in ["tcp://nohost", "ftp://x:1", "unix://", "ssh://me@host"] {
            let e = Endpoint::parse(bad, None).expect_err(bad).to_string();
            assert!(e.contains(bad), "{e}");
        }
        let cfg = DockerProvider {
            endpoint: None,
            ..Default::default()
        };
        assert_eq!(endpoint_text(&cfg, Some("tcp://h:2375")), "tcp://h:2375");
        assert_eq!(endpoint_text(&cfg, None), DEFAULT_ENDPOINT);
        let cfg = DockerProvider {
            endpoint: Some("unix:///x.sock".into()),
            ..Default::default()
        };
        assert_eq!(endpoint_text(&cfg, Some("tcp://h:2375")), "unix:///x.sock");
    }

    #[tokio::test]
    async fn unreachable_endpoints_name_the_cause() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        for (endpoint, want) in [
            (format!("tcp://{addr}"), "connection refused"),
            ("tcp://sgt-no-such-host.invalid:2375".to_string(), "DNS"),
        ] {
            let c = DockerClient::new(&endpoint, None, Duration::from_secs(5)).expect("client");
            let e = c.connect().await.err().expect("must fail").to_string();
            assert!(e.contains(want), "{endpoint}: {e}");
            let c = DockerClient::new(&endpoint, None, Duration::from_secs(5)).expect("client");
            let e = c
                .raw_get("/tasks")
                .await
                .expect_err("must fail")
                .to_string();
            assert!(e.contains(want), "{endpoint}: {e}");
        }
    }

    #[tokio::test]
    async fn missing_socket_is_named() {
        let e = match DockerClient::new(
            "unix:///nonexistent/docker.sock",
            None,
            Duration::from_secs(1),
        ) {
            Ok(c) => c.connect().await.err().expect("must fail"),
            Err(e) => e,
        };
        assert!(matches!(e, DockerError::Unreachable { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("/nonexistent/docker.sock"), "{e}");
    }
}
