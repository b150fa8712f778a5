//! `cloudflare`: Cloudflare's v4 API, as lego calls it. The zone (SOA walk through the resolvers) is looked
//! up with `GET /zones?name=<zone>`, the record created with `POST /zones/<id>/dns_records` (`{"type": "TXT",
//! "name", "content": "\"<value>\"", "ttl"}`) and removed with `DELETE /zones/<id>/dns_records/<record id>`.
//!
//! Environment, as lego names it: `CF_DNS_API_TOKEN` (and optionally `CF_ZONE_API_TOKEN` for zone lookups)
//! sent as `Authorization: Bearer`, or `CF_API_EMAIL` + `CF_API_KEY` sent as `X-Auth-Email`/`X-Auth-Key`;
//! each also `CLOUDFLARE_*` (`CLOUDFLARE_EMAIL`, `CLOUDFLARE_API_KEY`, `CLOUDFLARE_DNS_API_TOKEN`,
//! `CLOUDFLARE_ZONE_API_TOKEN`) and `_FILE`. `CLOUDFLARE_BASE_URL` (default
//! `https://api.cloudflare.com/client/v4`), `CLOUDFLARE_TTL` (120, the minimum), `CLOUDFLARE_HTTP_TIMEOUT`
//! (30 s), `CLOUDFLARE_PROPAGATION_TIMEOUT` (120 s), `CLOUDFLARE_POLLING_INTERVAL` (2 s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::http::Http;
use super::query::Lookup;
use super::{BoxFuture, DnsProvider, Env, Record, Timing};

/// Default API base.
pub const BASE_URL: &str = "https://api.cloudflare.com/client/v4";

#[derive(Clone)]
enum Auth {
    Token(HeaderValue),
    Key {
        email: HeaderValue,
        key: HeaderValue,
    },
}

impl Auth {
    fn apply(&self, h: &mut HeaderMap) {
        match self {
            Auth::Token(t) => {
                h.insert(AUTHORIZATION, t.clone());
            }
            Auth::Key { email, key } => {
                h.insert(HeaderName::from_static("x-auth-email"), email.clone());
                h.insert(HeaderName::from_static("x-auth-key"), key.clone());
            }
        }
    }
}

fn sensitive(v: &str, what: &str) -> Result<HeaderValue, String> {
    let mut h = HeaderValue::from_str(v).map_err(|_| format!("{what}: not valid in a header"))?;
    h.set_sensitive(true);
    Ok(h)
}

/// The cloudflare provider.
pub struct Cloudflare {
    base: String,
    dns_auth: Auth,
    zone_auth: Auth,
    ttl: u32,
    http: Http,
    timing: Timing,
    /// (fqdn, value) → (zone id, record id), for cleanup.
    records: Mutex<HashMap<(String, String), (String, String)>>,
}

fn auth_from_env(env: &Env<'_>) -> Result<(Auth, Auth), String> {
    let token = env.first(&["CF_DNS_API_TOKEN", "CLOUDFLARE_DNS_API_TOKEN"])?;
    if let Some(t) = token {
        let dns = Auth::Token(sensitive(&format!("Bearer {t}"), "CF_DNS_API_TOKEN")?);
        let zone = match env.first(&["CF_ZONE_API_TOKEN", "CLOUDFLARE_ZONE_API_TOKEN"])? {
            Some(z) => Auth::Token(sensitive(&format!("Bearer {z}"), "CF_ZONE_API_TOKEN")?),
            None => dns.clone(),
        };
        return Ok((dns, zone));
    }
    let email = env.first(&["CF_API_EMAIL", "CLOUDFLARE_EMAIL"])?;
    let key = env.first(&["CF_API_KEY", "CLOUDFLARE_API_KEY"])?;
    match (email, key) {
        (Some(e), Some(k)) => {
            let a = Auth::Key {
                email: sensitive(&e, "CF_API_EMAIL")?,
                key: sensitive(&k, "CF_API_KEY")?,
            };
            Ok((a.clone(), a))
        }
        _ => Err(
            "set CF_DNS_API_TOKEN (optionally CF_ZONE_API_TOKEN), or CF_API_EMAIL and CF_API_KEY"
                .into(),
        ),
    }
}

impl Cloudflare {
    /// Reads lego's `CF_*` / `CLOUDFLARE_*` variables.
    pub fn from_env(env: &Env<'_>) -> Result<Cloudflare, String> {
        let (dns_auth, zone_auth) = auth_from_env(env)?;
        let ttl = env.number(&["CLOUDFLARE_TTL", "CF_TTL"], 120)?;
        if ttl < 120 {
            return Err(format!(
                "CLOUDFLARE_TTL {ttl} is below Cloudflare's minimum (120)"
            ));
        }
        let base = env
            .first(&["CLOUDFLARE_BASE_URL", "CF_BASE_URL"])?
            .unwrap_or_else(|| BASE_URL.to_string());
        Ok(Cloudflare {
            base: base.trim_end_matches('/').to_string(),
            dns_auth,
            zone_auth,
            ttl,
            http: Http::new(env.secs(
                &["CLOUDFLARE_HTTP_TIMEOUT", "CF_HTTP_TIMEOUT"],
                Duration::from_secs(30),
            )?)?,
            timing: env.timing(
                &["CLOUDFLARE", "CF"],
                Timing {
                    timeout: Duration::from_secs(120),
                    interval: Duration::from_secs(2),
                },
            )?,
            records: Mutex::new(HashMap::new()),
        })
    }

    /// One API call; the `result` of a `success: true` answer.
    async fn call(
        &self,
        auth: &Auth,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if body.is_some() {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        auth.apply(&mut h);
        let url = format!("{}{path}", self.base);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let rsp = self.http.send(method.clone(), &url, h, bytes).await?;
        let v: serde_json::Value = serde_json::from_slice(&rsp.body)
            .map_err(|_| format!("{method} {url}: {} with a non-JSON body", rsp.status))?;
        let field = |k: &str| v.get(k).cloned().unwrap_or_default();
        if rsp.status.is_success() && field("success") == serde_json::Value::Bool(true) {
            Ok(field("result"))
        } else {
            Err(format!(
                "{method} {url}: {}: {}",
                rsp.status,
                field("errors")
            ))
        }
    }

    async fn zone_id(&self, fqdn: &str, lookup: &Lookup) -> Result<String, String> {
        let zone = lookup.find_zone(fqdn).await?;
        let name = zone.trim_end_matches('.');
        let path = format!("/zones?name={}", super::sigv4::uri_encode(name, false));
        let result = self.call(&self.zone_auth, Method::GET, &path, None).await?;
        result
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|z| z.get("name").and_then(|n| n.as_str()) == Some(name))
            })
            .and_then(|z| z.get("id")?.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("zone {name} not found in the Cloudflare account"))
    }

    async fn present(&self, r: &Record, lookup: &Lookup) -> Result<(), String> {
        let zone = self.zone_id(&r.fqdn, lookup).await?;
        let body = serde_json::json!({
            "type": "TXT",
            "name": r.fqdn.trim_end_matches('.'),
            "content": format!("\"{}\"", r.value),
            "ttl": self.ttl,
        });
        let result = self
            .call(
                &self.dns_auth,
                Method::POST,
                &format!("/zones/{zone}/dns_records"),
                Some(body),
            )
            .await?;
        let id = result
            .get("id")
            .and_then(|i| i.as_str())
            .ok_or("record created without an id")?
            .to_string();
        if let Ok(mut m) = self.records.lock() {
            m.insert((r.fqdn.clone(), r.value.clone()), (zone, id));
        }
        Ok(())
    }

    async fn cleanup(&self, r: &Record) -> Result<(), String> {
        let key = (r.fqdn.clone(), r.value.clone());
        let found = self.records.lock().ok().and_then(|mut m| m.remove(&key));
        let Some((zone, id)) = found else {
            return Err(format!("no record of ours for {} to remove", r.fqdn));
        };
        self.call(
            &self.dns_auth,
            Method::DELETE,
            &format!("/zones/{zone}/dns_records/{id}"),
            None,
        )
        .await
        .map(|_| ())
    }
}

impl DnsProvider for Cloudflare {
    fn name(&self) -> &'static str {
        "cloudflare"
    }

    fn timing(&self) -> Timing {
        self.timing
    }

    fn present<'a>(
        &'a self,
        r: &'a Record,
        lookup: &'a Lookup,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(Cloudflare::present(self, r, lookup))
    }

    fn cleanup<'a>(&'a self, r: &'a Record, _: &'a Lookup) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(Cloudflare::cleanup(self, r))
    }
}
