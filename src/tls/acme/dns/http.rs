//! The HTTP client of the API providers (httpreq, cloudflare, route53): hyper + rustls with the bundled
//! Mozilla roots, `http://` allowed (local endpoints), every request bounded by a timeout.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Largest response body read.
const MAX_BODY: usize = 1 << 20;

/// A small HTTP(S) client.
#[derive(Clone)]
pub struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// A response: status and body.
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Body (at most 1 MiB).
    pub body: Bytes,
}

impl Http {
    /// A client whose requests (headers and body) end within `timeout`.
    pub fn new(timeout: Duration) -> Result<Http, String> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Http {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// Sends one request. Errors name the method and URL, never a header.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Response, String> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(url)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{method} {url}: {e}"))?;
        *req.headers_mut() = headers;
        let fut = async {
            let rsp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{method} {url}: {e}"))?;
            let status = rsp.status();
            let body = http_body_util::Limited::new(rsp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("{method} {url}: body: {e}"))?
                .to_bytes();
            Ok(Response { status, body })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| format!("{method} {url}: no answer within {:?}", self.timeout))?
    }
}
