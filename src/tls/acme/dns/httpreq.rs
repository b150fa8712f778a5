//! `httpreq`: lego's generic HTTP provider. `POST <HTTPREQ_ENDPOINT>/present` and `/cleanup` with JSON
//! `{"fqdn": "_acme-challenge.<name>.", "value": "…"}`, or with `HTTPREQ_MODE=RAW` `{"domain", "token",
//! "keyAuth"}`; Basic authentication when both `HTTPREQ_USERNAME` and `HTTPREQ_PASSWORD` are set; any
//! non-2xx answer fails. `HTTPREQ_HTTP_TIMEOUT` (30 s), `HTTPREQ_PROPAGATION_TIMEOUT` (60 s),
//! `HTTPREQ_POLLING_INTERVAL` (2 s).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method};

use super::http::Http;
use super::query::Lookup;
use super::{BoxFuture, DnsProvider, Env, Record, Timing};

/// The httpreq provider.
pub struct HttpReq {
    endpoint: String,
    raw: bool,
    basic: Option<HeaderValue>,
    http: Http,
    timing: Timing,
}

impl HttpReq {
    /// Reads lego's `HTTPREQ_*` variables.
    pub fn from_env(env: &Env<'_>) -> Result<HttpReq, String> {
        let endpoint = env.required(&["HTTPREQ_ENDPOINT"])?;
        endpoint
            .parse::<http::Uri>()
            .ok()
            .filter(|u| u.scheme().is_some() && u.host().is_some())
            .ok_or_else(|| format!("HTTPREQ_ENDPOINT `{endpoint}` is not a URL"))?;
        let basic = match (env.get("HTTPREQ_USERNAME")?, env.get("HTTPREQ_PASSWORD")?) {
            (Some(u), Some(p)) => {
                let mut v = HeaderValue::from_str(&format!(
                    "Basic {}",
                    STANDARD.encode(format!("{u}:{p}"))
                ))
                .map_err(|_| {
                    "HTTPREQ_USERNAME/HTTPREQ_PASSWORD: not valid in a header".to_string()
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            _ => None,
        };
        Ok(HttpReq {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            raw: env.get("HTTPREQ_MODE")?.as_deref() == Some("RAW"),
            basic,
            http: Http::new(env.secs(&["HTTPREQ_HTTP_TIMEOUT"], Duration::from_secs(30))?)?,
            timing: env.timing(
                &["HTTPREQ"],
                Timing {
                    timeout: Duration::from_secs(60),
                    interval: Duration::from_secs(2),
                },
            )?,
        })
    }

    /// The JSON body lego sends.
    pub fn body(&self, r: &Record) -> serde_json::Value {
        if self.raw {
            serde_json::json!({"domain": r.domain, "token": r.token, "keyAuth": r.key_auth})
        } else {
            serde_json::json!({"fqdn": r.fqdn, "value": r.value})
        }
    }

    async fn post(&self, path: &str, r: &Record) -> Result<(), String> {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(b) = &self.basic {
            h.insert(AUTHORIZATION, b.clone());
        }
        let url = format!("{}{path}", self.endpoint);
        let rsp = self
            .http
            .send(Method::POST, &url, h, self.body(r).to_string().into_bytes())
            .await?;
        if rsp.status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {url}: {}", rsp.status))
        }
    }
}

impl DnsProvider for HttpReq {
    fn name(&self) -> &'static str {
        "httpreq"
    }

    fn timing(&self) -> Timing {
        self.timing
    }

    fn present<'a>(&'a self, r: &'a Record, _: &'a Lookup) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.post("/present", r))
    }

    fn cleanup<'a>(&'a self, r: &'a Record, _: &'a Lookup) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.post("/cleanup", r))
    }
}
