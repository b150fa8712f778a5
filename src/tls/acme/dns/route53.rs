//! `route53`: Amazon Route 53's REST API (2013-04-01), signed with SigV4 ([`super::sigv4`]).
//!
//! Zone: `AWS_HOSTED_ZONE_ID`, else `GET /2013-04-01/hostedzonesbyname?dnsname=<zone>` (the zone found by SOA
//! walk; public zones, or private ones with `AWS_PRIVATE_ZONE=true`). Records: `POST
//! /2013-04-01/hostedzone/<id>/rrset/` with a `ChangeResourceRecordSetsRequest` — the TXT set is read first
//! (`GET /2013-04-01/hostedzone/<id>/rrset?name=<fqdn>&type=TXT&maxitems=1`), then `UPSERT` with the value
//! added or removed (other values, e.g. the bare name's next to the wildcard's, survive), or `DELETE` when it
//! was the last — then `GET /2013-04-01/change/<id>` until `INSYNC` (unless
//! `AWS_WAIT_FOR_RECORD_SETS_CHANGED=false`).
//!
//! Environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (also `_FILE`),
//! `AWS_HOSTED_ZONE_ID`, `AWS_PRIVATE_ZONE`, `AWS_TTL` (10), `AWS_PROPAGATION_TIMEOUT` (120 s),
//! `AWS_POLLING_INTERVAL` (4 s). The endpoint is `https://route53.amazonaws.com`, overridden by the AWS SDKs'
//! `AWS_ENDPOINT_URL_ROUTE_53` / `AWS_ENDPOINT_URL`; requests are signed for `us-east-1` (Route 53 is
//! global). Not read: `AWS_PROFILE`, shared credentials files, instance roles, `AWS_ASSUME_ROLE_ARN`.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::http::Http;
use super::query::Lookup;
use super::sigv4::{self, Credentials};
use super::{BoxFuture, DnsProvider, Env, Record, Timing};

/// The public endpoint.
pub const ENDPOINT: &str = "https://route53.amazonaws.com";
const API: &str = "/2013-04-01";
const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// The route53 provider.
pub struct Route53 {
    endpoint: String,
    host: String,
    creds: Credentials,
    zone_id: Option<String>,
    private_zone: bool,
    wait_insync: bool,
    ttl: u32,
    http: Http,
    timing: Timing,
}

/// The text of each `<tag>…</tag>` in `xml`, in order (Route 53's answers are flat enough for this).
pub fn tags<'x>(xml: &'x str, tag: &str) -> Vec<&'x str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = rest.get(i + open.len()..).unwrap_or("");
        let Some(j) = after.find(&close) else { break };
        out.push(after.get(..j).unwrap_or(""));
        rest = after.get(j + close.len()..).unwrap_or("");
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `ChangeResourceRecordSetsRequest` body for `action` on the TXT set `fqdn` = `values`.
pub fn change_body(action: &str, fqdn: &str, ttl: u32, values: &BTreeSet<String>) -> String {
    let records: String = values
        .iter()
        .map(|v| {
            format!(
                "<ResourceRecord><Value>\"{}\"</Value></ResourceRecord>",
                xml_escape(v)
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ChangeResourceRecordSetsRequest xmlns=\"{XMLNS}\"><ChangeBatch><Comment>Managed by swarmgate</Comment><Changes><Change><Action>{action}</Action><ResourceRecordSet><Name>{}</Name><Type>TXT</Type><TTL>{ttl}</TTL><ResourceRecords>{records}</ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>",
        xml_escape(fqdn)
    )
}

fn endpoint_from_env(env: &Env<'_>) -> Result<(String, String), String> {
    let endpoint = env
        .first(&["AWS_ENDPOINT_URL_ROUTE_53", "AWS_ENDPOINT_URL"])?
        .unwrap_or_else(|| ENDPOINT.to_string());
    let host = endpoint
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .ok_or_else(|| format!("AWS_ENDPOINT_URL_ROUTE_53 `{endpoint}` is not a URL"))?;
    Ok((endpoint.trim_end_matches('/').to_string(), host))
}

impl Route53 {
    /// Reads the `AWS_*` variables.
    pub fn from_env(env: &Env<'_>) -> Result<Route53, String> {
        let creds = Credentials {
            access_key: env.required(&["AWS_ACCESS_KEY_ID"])?,
            secret_key: env.required(&["AWS_SECRET_ACCESS_KEY"])?,
            session_token: env.get("AWS_SESSION_TOKEN")?,
        };
        let (endpoint, host) = endpoint_from_env(env)?;
        Ok(Route53 {
            endpoint,
            host,
            creds,
            zone_id: env.get("AWS_HOSTED_ZONE_ID")?,
            private_zone: env.flag("AWS_PRIVATE_ZONE"),
            wait_insync: !matches!(
                env.get("AWS_WAIT_FOR_RECORD_SETS_CHANGED")?.as_deref(),
                Some("false" | "0" | "f" | "F" | "FALSE" | "False")
            ),
            ttl: env.number(&["AWS_TTL"], 10)?,
            http: Http::new(Duration::from_secs(30))?,
            timing: env.timing(
                &["AWS"],
                Timing {
                    timeout: Duration::from_secs(120),
                    interval: Duration::from_secs(4),
                },
            )?,
        })
    }

    /// One signed call; the body of a 2xx answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: String,
    ) -> Result<String, String> {
        let amz_date = sigv4::amz_date(SystemTime::now());
        let ctype = "text/xml";
        let with_body = !body.is_empty();
        let extra: Vec<(&str, &str)> = if with_body {
            vec![("content-type", ctype)]
        } else {
            Vec::new()
        };
        let signed = sigv4::sign(
            &self.creds,
            &sigv4::Request {
                method: method.as_str(),
                host: &self.host,
                path,
                query,
                headers: &extra,
                payload: body.as_bytes(),
                region: "us-east-1",
                service: "route53",
                amz_date: &amz_date,
            },
        );
        let mut h = HeaderMap::new();
        h.insert(
            HOST,
            HeaderValue::from_str(&self.host).map_err(|e| e.to_string())?,
        );
        if with_body {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        }
        for (k, v) in signed {
            let mut v =
                HeaderValue::from_str(&v).map_err(|_| format!("{k}: not valid in a header"))?;
            v.set_sensitive(k != "X-Amz-Date");
            h.insert(HeaderName::from_static(static_lower(k)), v);
        }
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let rsp = self
            .http
            .send(method.clone(), &url, h, body.into_bytes())
            .await?;
        let text = String::from_utf8_lossy(&rsp.body).into_owned();
        if rsp.status.is_success() {
            Ok(text)
        } else {
            let msg = tags(&text, "Message")
                .first()
                .copied()
                .unwrap_or("")
                .to_string();
            Err(format!("{method} {url}: {} {msg}", rsp.status))
        }
    }

    async fn zone_id(&self, fqdn: &str, lookup: &Lookup) -> Result<String, String> {
        if let Some(z) = &self.zone_id {
            return Ok(z.trim_start_matches("/hostedzone/").to_string());
        }
        let zone = lookup.find_zone(fqdn).await?;
        let query = format!(
            "dnsname={}",
            sigv4::uri_encode(zone.trim_end_matches('.'), false)
        );
        let xml = self
            .call(
                Method::GET,
                &format!("{API}/hostedzonesbyname"),
                &query,
                String::new(),
            )
            .await?;
        let want_private = if self.private_zone { "true" } else { "false" };
        tags(&xml, "HostedZone")
            .into_iter()
            .find(|z| {
                tags(z, "Name").first().map(|n| n.trim_end_matches('.'))
                    == Some(zone.trim_end_matches('.'))
                    && tags(z, "PrivateZone").first().copied().unwrap_or("false") == want_private
            })
            .and_then(|z| {
                tags(z, "Id")
                    .first()
                    .map(|id| id.trim_start_matches("/hostedzone/").to_string())
            })
            .ok_or_else(|| format!("no hosted zone {zone} found"))
    }

    /// The values of the TXT set at `fqdn` now (`ListResourceRecordSets`), so other values survive.
    async fn existing(&self, zone: &str, fqdn: &str) -> Result<BTreeSet<String>, String> {
        let query = format!(
            "name={}&type=TXT&maxitems=1",
            sigv4::uri_encode(fqdn, false)
        );
        let xml = self
            .call(
                Method::GET,
                &format!("{API}/hostedzone/{zone}/rrset"),
                &query,
                String::new(),
            )
            .await?;
        let same = |n: &str| {
            n.trim_end_matches('.')
                .eq_ignore_ascii_case(fqdn.trim_end_matches('.'))
        };
        Ok(tags(&xml, "ResourceRecordSet")
            .into_iter()
            .find(|set| {
                tags(set, "Name").first().is_some_and(|n| same(n))
                    && tags(set, "Type").first() == Some(&"TXT")
            })
            .map(|set| {
                tags(set, "Value")
                    .iter()
                    .map(|v| v.trim_matches('"').to_string())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// lego's way: read the set, then `UPSERT` it with the value added (or removed), or `DELETE` it when the
    /// value was its last one.
    async fn change(&self, r: &Record, lookup: &Lookup, add: bool) -> Result<(), String> {
        let zone = self.zone_id(&r.fqdn, lookup).await?;
        let mut values = self.existing(&zone, &r.fqdn).await?;
        let action = if add {
            if !values.insert(r.value.clone()) {
                return Ok(());
            }
            "UPSERT"
        } else if !values.contains(&r.value) {
            return Ok(());
        } else if values.len() == 1 {
            "DELETE"
        } else {
            values.remove(&r.value);
            "UPSERT"
        };
        let body = change_body(action, &r.fqdn, self.ttl, &values);
        let xml = self
            .call(
                Method::POST,
                &format!("{API}/hostedzone/{zone}/rrset/"),
                "",
                body,
            )
            .await?;
        let id = tags(&xml, "Id")
            .first()
            .map(|s| s.trim_start_matches("/change/").to_string());
        match id {
            Some(id) if self.wait_insync && add => self.wait(&id).await,
            _ => Ok(()),
        }
    }

    /// Polls the change until `INSYNC`, bounded by the propagation timeout.
    async fn wait(&self, id: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.timing.timeout;
        loop {
            let xml = self
                .call(
                    Method::GET,
                    &format!("{API}/change/{id}"),
                    "",
                    String::new(),
                )
                .await?;
            if tags(&xml, "Status").first() == Some(&"INSYNC") {
                return Ok(());
            }
            if tokio::time::Instant::now() + self.timing.interval > deadline {
                return Err(format!(
                    "change {id} not INSYNC within {:?}",
                    self.timing.timeout
                ));
            }
            tokio::time::sleep(self.timing.interval).await;
        }
    }
}

fn static_lower(k: &'static str) -> &'static str {
    match k {
        "X-Amz-Date" => "x-amz-date",
        "X-Amz-Security-Token" => "x-amz-security-token",
        _ => "authorization",
    }
}

impl DnsProvider for Route53 {
    fn name(&self) -> &'static str {
        "route53"
    }

    fn timing(&self) -> Timing {
        self.timing
    }

    fn present<'a>(
        &'a self,
        r: &'a Record,
        lookup: &'a Lookup,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.change(r, lookup, true))
    }

    fn cleanup<'a>(
        &'a self,
        r: &'a Record,
        lookup: &'a Lookup,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.change(r, lookup, false))
    }
}
