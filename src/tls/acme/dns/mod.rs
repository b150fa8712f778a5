//! DNS-01 (`acme.dnsChallenge`): the TXT record `_acme-challenge.<name>` = base64url(SHA-256(keyAuthorization)),
//! created through a provider, checked on the zone's authoritative servers (or the configured resolvers)
//! before the CA is asked to validate, and removed after the order whatever its outcome.
//!
//! Providers are small modules behind [`DnsProvider`], configured from the environment exactly as lego names
//! the variables (each also read from `<NAME>_FILE`, as lego and Docker secrets do): [`rfc2136`], [`exec`],
//! [`httpreq`], [`cloudflare`], [`route53`]. Another provider is one more module and one line in
//! [`provider`]. Secrets are never logged nor put into error messages.
//!
//! Lifecycle in an order (see [`super::order`]): compute every record → `present` each → wait
//! `delayBeforeChecks`, then poll [`query::propagated`] (bounded by the provider's propagation timeout) →
//! tell the CA each challenge is ready → … → `cleanup` each record ([`Published`], also on error and on
//! cancellation).

pub mod cloudflare;
#[allow(clippy::disallowed_methods)] // control plane: runs the configured program
pub mod exec;
mod http;
pub mod httpreq;
pub mod query;
pub mod rfc2136;
pub mod route53;
pub mod sigv4;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::value::duration::parse_go_duration;
use query::Lookup;

/// A boxed future, so providers stay object-safe behind one trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The providers swarmgate implements, as Traefik/lego name them (in error messages).
pub const SUPPORTED: &[&str] = &["cloudflare", "exec", "httpreq", "rfc2136", "route53"];

/// One TXT record of a DNS-01 challenge, with what lego's `RAW` modes pass on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The name being validated, without `*.` (lego's `domain`).
    pub domain: String,
    /// Where the record goes: `_acme-challenge.<domain>.`, after CNAME following (lego's `EffectiveFQDN`).
    pub fqdn: String,
    /// The TXT value: base64url(SHA-256(keyAuthorization)).
    pub value: String,
    /// The challenge token (RAW modes).
    pub token: String,
    /// The key authorization (RAW modes).
    pub key_auth: String,
}

/// Propagation timing of a provider (lego's `<PREFIX>_PROPAGATION_TIMEOUT` / `_POLLING_INTERVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Longest wait for the record to be visible.
    pub timeout: Duration,
    /// Pause between checks.
    pub interval: Duration,
}

/// A DNS provider: creates and removes challenge TXT records. `lookup` finds zones (SOA walk) for providers
/// that need the zone name.
pub trait DnsProvider: Send + Sync + 'static {
    /// The provider name (`dnsChallenge.provider`).
    fn name(&self) -> &'static str;
    /// Propagation timing.
    fn timing(&self) -> Timing;
    /// Creates the TXT record (adding to, never replacing, other values of the same name).
    fn present<'a>(
        &'a self,
        r: &'a Record,
        lookup: &'a Lookup,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// Removes the TXT value created by [`DnsProvider::present`].
    fn cleanup<'a>(
        &'a self,
        r: &'a Record,
        lookup: &'a Lookup,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Why DNS-01 failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The provider refused or failed to create a record.
    #[error("DNS-01 {provider}: presenting the TXT record for `{domain}` failed: {reason}")]
    Present {
        /// Provider name.
        provider: &'static str,
        /// The name.
        domain: String,
        /// Why (never a secret).
        reason: String,
    },
    /// The record did not become visible in time.
    #[error("DNS-01: the TXT record {fqdn} did not propagate within {timeout:?}: {reason}")]
    Propagation {
        /// The record name.
        fqdn: String,
        /// The bound.
        timeout: Duration,
        /// The last check's finding.
        reason: String,
    },
}

/// Propagation settings (`dnsChallenge.propagation.*`, and v2's `delayBeforeCheck` /
/// `disablePropagationCheck`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Propagation {
    /// Wait before the first check.
    pub delay: Duration,
    /// No check at all (the CA is asked after `delay`).
    pub disable_checks: bool,
    /// No check on the authoritative servers.
    pub disable_ans_checks: bool,
    /// The record must be visible on every configured resolver.
    pub require_all_rns: bool,
    /// The port the authoritative servers are queried on (53; `SWARMGATE_DNS01_NS_PORT` for tests and
    /// split setups).
    pub ns_port: u16,
}

/// A resolver's DNS-01 settings: provider, resolvers, propagation.
#[derive(Clone)]
pub struct Dns01 {
    /// The provider.
    pub provider: Arc<dyn DnsProvider>,
    /// Resolvers for SOA/NS/CNAME lookups and the `requireAllRNS` check.
    pub lookup: Lookup,
    /// Propagation settings.
    pub propagation: Propagation,
    /// Follow CNAMEs of `_acme-challenge.<name>` (lego's default; `LEGO_DISABLE_CNAME_SUPPORT=true` turns it off).
    pub follow_cname: bool,
}

impl fmt::Debug for Dns01 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dns01")
            .field("provider", &self.provider.name())
            .field("resolvers", &self.lookup.resolvers)
            .field("propagation", &self.propagation)
            .finish()
    }
}

impl PartialEq for Dns01 {
    fn eq(&self, other: &Dns01) -> bool {
        self.provider.name() == other.provider.name()
            && self.lookup.resolvers == other.lookup.resolvers
            && self.propagation == other.propagation
    }
}

impl Eq for Dns01 {}

/// The TXT value for a key authorization: base64url(SHA-256(keyAuthorization)), no padding (RFC 8555 §8.4).
pub fn txt_value(key_auth: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(key_auth.as_bytes()))
}

/// `_acme-challenge.<name>.`, a wildcard's `*.` stripped.
pub fn challenge_fqdn(domain: &str) -> String {
    let d = domain
        .strip_prefix("*.")
        .unwrap_or(domain)
        .trim_end_matches('.');
    format!("_acme-challenge.{d}.")
}

/// The environment as lego reads it: `NAME`, else the trimmed content of the file `NAME_FILE`.
pub struct Env<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    /// Wraps a variable getter.
    pub fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Env<'a> {
        Env { get }
    }

    /// `name`, else `name_FILE`'s content; empty values count as unset.
    #[allow(clippy::disallowed_methods)] // control plane: provider setup reads secret files once
    pub fn get(&self, name: &str) -> Result<Option<String>, String> {
        if let Some(v) = (self.get)(name).filter(|v| !v.is_empty()) {
            return Ok(Some(v));
        }
        let file_var = format!("{name}_FILE");
        match (self.get)(&file_var).filter(|v| !v.is_empty()) {
            Some(path) => std::fs::read_to_string(&path)
                .map(|s| Some(s.trim().to_string()).filter(|s| !s.is_empty()))
                .map_err(|e| format!("{file_var}: cannot read {path}: {e}")),
            None => Ok(None),
        }
    }

    /// The first set variable of `names` (lego's fallbacks, e.g. `CF_DNS_API_TOKEN` / `CLOUDFLARE_DNS_API_TOKEN`).
    pub fn first(&self, names: &[&str]) -> Result<Option<String>, String> {
        for n in names {
            if let Some(v) = self.get(n)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// A required variable: the error names it (never its value).
    pub fn required(&self, names: &[&str]) -> Result<String, String> {
        self.first(names)?
            .ok_or_else(|| format!("{} is not set", names.join(" or ")))
    }

    /// Seconds (lego's `env.ParseSecond`; a Go duration such as `90s` is accepted too).
    pub fn secs(&self, names: &[&str], default: Duration) -> Result<Duration, String> {
        match self.first(names)? {
            Some(v) => parse_secs(&v).map_err(|e| format!("{}: {e}", names.join("/"))),
            None => Ok(default),
        }
    }

    /// A positive integer (TTL).
    pub fn number(&self, names: &[&str], default: u32) -> Result<u32, String> {
        match self.first(names)? {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("{}: `{v}` is not a number", names.join("/"))),
            None => Ok(default),
        }
    }

    /// lego's boolean spelling (strconv.ParseBool).
    pub fn flag(&self, name: &str) -> bool {
        matches!(
            (self.get)(name).as_deref(),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }

    /// The propagation timing of a provider, `<PREFIX>_PROPAGATION_TIMEOUT` / `<PREFIX>_POLLING_INTERVAL`.
    pub fn timing(&self, prefixes: &[&str], default: Timing) -> Result<Timing, String> {
        let names = |suffix: &str| -> Vec<String> {
            prefixes.iter().map(|p| format!("{p}_{suffix}")).collect()
        };
        let t = names("PROPAGATION_TIMEOUT");
        let i = names("POLLING_INTERVAL");
        let t: Vec<&str> = t.iter().map(String::as_str).collect();
        let i: Vec<&str> = i.iter().map(String::as_str).collect();
        Ok(Timing {
            timeout: self.secs(&t, default.timeout)?,
            interval: self.secs(&i, default.interval)?,
        })
    }
}

fn parse_secs(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    match v.parse::<u64>() {
        Ok(n) => Ok(Duration::from_secs(n)),
        Err(_) => parse_go_duration(v),
    }
}

/// Builds the named provider from the environment; an unknown name is an error naming the supported ones.
pub fn provider(name: &str, env: &Env<'_>) -> Result<Arc<dyn DnsProvider>, String> {
    let p: Arc<dyn DnsProvider> = match name {
        "rfc2136" => Arc::new(rfc2136::Rfc2136::from_env(env)?),
        "exec" => Arc::new(exec::Exec::from_env(env)?),
        "httpreq" => Arc::new(httpreq::HttpReq::from_env(env)?),
        "cloudflare" => Arc::new(cloudflare::Cloudflare::from_env(env)?),
        "route53" => Arc::new(route53::Route53::from_env(env)?),
        "" => {
            return Err(format!(
                "provider is not set (supported: {})",
                SUPPORTED.join(", ")
            ))
        }
        other => {
            return Err(format!(
                "provider `{other}` is not supported (supported: {})",
                SUPPORTED.join(", ")
            ))
        }
    };
    Ok(p)
}

/// A key of a JSON object, case-insensitively (flags and environment variables arrive lowercased).
fn key<'v>(v: &'v serde_json::Value, name: &str) -> Option<&'v serde_json::Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn as_bool(v: Option<&serde_json::Value>, what: &str) -> Result<bool, String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(serde_json::Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "" | "true" | "1" | "t" => Ok(!s.is_empty()),
            "false" | "0" | "f" => Ok(false),
            _ => Err(format!("{what}: `{s}` is not a boolean")),
        },
        Some(other) => Err(format!("{what}: `{other}` is not a boolean")),
    }
}

fn as_duration(v: Option<&serde_json::Value>, what: &str) -> Result<Duration, String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(Duration::ZERO),
        Some(serde_json::Value::Number(n)) => Ok(Duration::from_secs(n.as_u64().unwrap_or(0))),
        Some(serde_json::Value::String(s)) => parse_secs(s).map_err(|e| format!("{what}: {e}")),
        Some(other) => Err(format!("{what}: `{other}` is not a duration")),
    }
}

fn as_strings(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str())
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Some(serde_json::Value::String(s)) => s
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// A resolver address: `ip`, `ip:port` or `[v6]:port` (53 when no port is given, as lego does).
pub fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("resolver `{s}` is not an IP address with an optional port"))
}

/// The propagation options: v3's `propagation.*` over v2's `delayBeforeCheck` / `disablePropagationCheck`.
fn propagation(v: &serde_json::Value, env: &Env<'_>) -> Result<Propagation, String> {
    let p = key(v, "propagation");
    let inner = |name: &str| p.and_then(|p| key(p, name));
    let mut delay = as_duration(key(v, "delayBeforeCheck"), "delayBeforeCheck")?;
    let v3_delay = as_duration(inner("delayBeforeChecks"), "propagation.delayBeforeChecks")?;
    if !v3_delay.is_zero() {
        delay = v3_delay;
    }
    let ns_port = match env.get("SWARMGATE_DNS01_NS_PORT")? {
        Some(p) => p
            .parse()
            .map_err(|_| format!("SWARMGATE_DNS01_NS_PORT: `{p}` is not a port"))?,
        None => 53,
    };
    Ok(Propagation {
        delay,
        disable_checks: as_bool(inner("disableChecks"), "propagation.disableChecks")?
            || as_bool(key(v, "disablePropagationCheck"), "disablePropagationCheck")?,
        disable_ans_checks: as_bool(inner("disableANSChecks"), "propagation.disableANSChecks")?,
        require_all_rns: as_bool(inner("requireAllRNS"), "propagation.requireAllRNS")?,
        ns_port,
    })
}

impl Dns01 {
    /// Reads `dnsChallenge` (the provider's settings come from `env`). `resolvers` default to the system's
    /// (`/etc/resolv.conf`), else Google's, as lego does.
    pub fn from_config(v: &serde_json::Value, env: &Env<'_>) -> Result<Dns01, String> {
        let name = key(v, "provider")
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let provider = provider(&name, env)?;
        let mut resolvers = as_strings(key(v, "resolvers"))
            .iter()
            .map(|s| parse_resolver(s))
            .collect::<Result<Vec<_>, _>>()?;
        if resolvers.is_empty() {
            resolvers = query::system_resolvers();
        }
        Ok(Dns01 {
            provider,
            lookup: Lookup::new(resolvers),
            propagation: propagation(v, env)?,
            follow_cname: !env.flag("LEGO_DISABLE_CNAME_SUPPORT"),
        })
    }

    /// The record for one authorization: `_acme-challenge.<domain>.`, its CNAME target when one is set.
    pub async fn record(&self, domain: &str, token: &str, key_auth: &str) -> Record {
        let domain = domain.strip_prefix("*.").unwrap_or(domain).to_string();
        let mut fqdn = challenge_fqdn(&domain);
        if self.follow_cname {
            fqdn = self.lookup.follow_cname(&fqdn).await;
        }
        Record {
            domain,
            fqdn,
            value: txt_value(key_auth),
            token: token.to_string(),
            key_auth: key_auth.to_string(),
        }
    }

    /// Waits `delayBeforeChecks`, then until the record is visible (unless checks are disabled), bounded by
    /// the provider's propagation timeout.
    pub async fn wait_propagation(&self, r: &Record) -> Result<(), DnsError> {
        tokio::time::sleep(self.propagation.delay).await;
        if self.propagation.disable_checks {
            return Ok(());
        }
        let timing = self.provider.timing();
        let deadline = tokio::time::Instant::now() + timing.timeout;
        loop {
            let reason = match query::propagated(&self.lookup, &self.propagation, r).await {
                Ok(()) => return Ok(()),
                Err(reason) => reason,
            };
            if tokio::time::Instant::now() + timing.interval > deadline {
                return Err(DnsError::Propagation {
                    fqdn: r.fqdn.clone(),
                    timeout: timing.timeout,
                    reason,
                });
            }
            tracing::debug!(fqdn = %r.fqdn, "DNS-01 record not visible yet: {reason}");
            tokio::time::sleep(timing.interval).await;
        }
    }
}

/// Records created for an order: removed by [`Published::cleanup`], or, if the order future is dropped
/// first (shutdown), by a task spawned on drop.
pub struct Published {
    dns: Arc<Dns01>,
    records: Vec<Record>,
}

impl Published {
    /// Nothing published yet.
    pub fn new(dns: Arc<Dns01>) -> Published {
        Published {
            dns,
            records: Vec::new(),
        }
    }

    /// Creates the record; it is removed at cleanup even when creation failed half-way.
    pub async fn present(&mut self, r: Record) -> Result<(), DnsError> {
        self.records.push(r.clone());
        let provider = self.dns.provider.name();
        tracing::debug!(provider, fqdn = %r.fqdn, "DNS-01: presenting TXT record");
        self.dns
            .provider
            .present(&r, &self.dns.lookup)
            .await
            .map_err(|reason| DnsError::Present {
                provider,
                domain: r.domain.clone(),
                reason,
            })
    }

    /// Removes every record (failures are logged: the order's outcome stands).
    pub async fn cleanup(mut self) {
        let records = std::mem::take(&mut self.records);
        cleanup_records(&self.dns, &records).await;
    }
}

async fn cleanup_records(dns: &Dns01, records: &[Record]) {
    for r in records {
        if let Err(e) = dns.provider.cleanup(r, &dns.lookup).await {
            tracing::warn!(provider = dns.provider.name(), fqdn = %r.fqdn, "DNS-01: removing the TXT record failed: {e}");
        }
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        if self.records.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.records);
        let dns = self.dns.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { cleanup_records(&dns, &records).await });
        }
    }
}

#[cfg(test)]
mod tests;
