//! `rfc2136`: dynamic updates (RFC 2136) signed with TSIG (RFC 8945) — BIND, Knot, PowerDNS, …
//!
//! Environment, as lego names it: `RFC2136_NAMESERVER` (`host` or `host:port`), `RFC2136_TSIG_KEY`,
//! `RFC2136_TSIG_SECRET`, `RFC2136_TSIG_ALGORITHM` (hmac-sha256 when unset; hmac-sha384 and hmac-sha512 too),
//! or `RFC2136_TSIG_FILE` (a `tsig-keygen` key file); `RFC2136_TTL` (120), `RFC2136_DNS_TIMEOUT` (10 s),
//! `RFC2136_PROPAGATION_TIMEOUT` (60 s), `RFC2136_POLLING_INTERVAL` (2 s). Without key and secret, updates
//! are unsigned; signed updates require a signed answer (its TSIG is verified). The zone is found by SOA walk through the resolvers, else on the nameserver itself.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_proto::dnssec::tsig::TSigner;
use hickory_proto::op::{update_message, Message, MessageVerifier, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, RecordSet, RecordType};

use super::query::{exchange_bytes, fqdn_name, Lookup};
use super::{BoxFuture, DnsProvider, Env, Record, Timing};

/// The rfc2136 provider.
pub struct Rfc2136 {
    nameserver: String,
    signer: Option<TSigner>,
    ttl: u32,
    timeout: Duration,
    timing: Timing,
}

/// The TSIG algorithms hickory can compute, by their DNS names (trailing dot and case ignored).
fn algorithm(name: &str) -> Result<TsigAlgorithm, String> {
    match name.trim().trim_end_matches('.').to_ascii_lowercase().as_str() {
        "" | "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        other => Err(format!(
            "RFC2136_TSIG_ALGORITHM `{other}` is not supported (hmac-sha256, hmac-sha384, hmac-sha512)"
        )),
    }
}

/// A BIND key file (`tsig-keygen` output): name, algorithm, secret.
pub fn parse_key_file(text: &str) -> Result<(String, String, String), String> {
    let quoted = |after: &str| -> Option<String> {
        let i = text.find(after)? + after.len();
        let rest = text.get(i..)?;
        let start = rest.find('"')? + 1;
        let end = start + rest.get(start..)?.find('"')?;
        rest.get(start..end).map(str::to_string)
    };
    let name = quoted("key").ok_or("RFC2136_TSIG_FILE: no `key \"name\"`")?;
    let secret = quoted("secret").ok_or("RFC2136_TSIG_FILE: no `secret \"…\"`")?;
    let alg = text
        .find("algorithm")
        .and_then(|i| text.get(i + "algorithm".len()..))
        .and_then(|r| r.split(';').next())
        .map(|a| a.trim().to_string())
        .ok_or("RFC2136_TSIG_FILE: no `algorithm`")?;
    Ok((name, alg, secret))
}

#[allow(clippy::disallowed_methods)] // control plane: the key file is read once at setup
fn read_key_file(env: &Env<'_>) -> Result<Option<(String, String, String)>, String> {
    match env.first(&["RFC2136_TSIG_FILE"])? {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("RFC2136_TSIG_FILE: cannot read {path}: {e}"))?;
            parse_key_file(&text).map(Some)
        }
        None => Ok(None),
    }
}

impl Rfc2136 {
    /// Reads lego's `RFC2136_*` variables.
    pub fn from_env(env: &Env<'_>) -> Result<Rfc2136, String> {
        let nameserver = env.required(&["RFC2136_NAMESERVER"])?;
        let (key, alg, secret) = match read_key_file(env)? {
            Some((k, a, s)) => (Some(k), a, Some(s)),
            None => (
                env.get("RFC2136_TSIG_KEY")?,
                env.get("RFC2136_TSIG_ALGORITHM")?.unwrap_or_default(),
                env.get("RFC2136_TSIG_SECRET")?,
            ),
        };
        let signer = match (key, secret) {
            (Some(k), Some(s)) => {
                let secret = STANDARD
                    .decode(s.trim())
                    .map_err(|_| "RFC2136_TSIG_SECRET is not base64".to_string())?;
                let name =
                    Name::from_ascii(k.trim()).map_err(|e| format!("RFC2136_TSIG_KEY: {e}"))?;
                Some(
                    TSigner::new(secret, algorithm(&alg)?, name, 300)
                        .map_err(|e| format!("TSIG: {e}"))?,
                )
            }
            _ => None,
        };
        Ok(Rfc2136 {
            nameserver,
            signer,
            ttl: env.number(&["RFC2136_TTL"], 120)?,
            timeout: env.secs(&["RFC2136_DNS_TIMEOUT"], Duration::from_secs(10))?,
            timing: env.timing(
                &["RFC2136"],
                Timing {
                    timeout: Duration::from_secs(60),
                    interval: Duration::from_secs(2),
                },
            )?,
        })
    }

    /// The nameserver's address (port 53 when none is given; a host name is resolved).
    async fn server(&self) -> Result<SocketAddr, String> {
        if let Ok(a) = super::parse_resolver(&self.nameserver) {
            return Ok(a);
        }
        let target = if self.nameserver.contains(':') {
            self.nameserver.clone()
        } else {
            format!("{}:53", self.nameserver)
        };
        let found = tokio::net::lookup_host(target.as_str())
            .await
            .map_err(|e| format!("RFC2136_NAMESERVER {target}: {e}"))?
            .next();
        found.ok_or_else(|| format!("RFC2136_NAMESERVER {target}: no address"))
    }

    /// The zone of `fqdn`: through the resolvers, else asking the nameserver itself.
    async fn zone(&self, fqdn: &str, lookup: &Lookup, server: SocketAddr) -> Result<Name, String> {
        let zone = match lookup.find_zone(fqdn).await {
            Ok(z) => z,
            Err(_) => Lookup::new(vec![server]).find_zone(fqdn).await?,
        };
        fqdn_name(&zone)
    }

    async fn update(&self, r: &Record, lookup: &Lookup, add: bool) -> Result<(), String> {
        let server = self.server().await?;
        let name = fqdn_name(&r.fqdn)?;
        let zone = self.zone(&r.fqdn, lookup, server).await?;
        if !zone.zone_of(&name) {
            return Err(format!("{} is not inside zone {zone}", r.fqdn));
        }
        let mut rrset = RecordSet::with_ttl(name, RecordType::TXT, self.ttl);
        rrset.add_rdata(RData::TXT(TXT::new(vec![r.value.clone()])));
        let mut msg = if add {
            update_message::append(rrset, zone, false, false)
        } else {
            update_message::delete_by_rdata(rrset, zone, false)
        };
        let verifier = self.sign(&mut msg)?;
        let raw = tokio::time::timeout(self.timeout, exchange_bytes(server, &msg, false))
            .await
            .map_err(|_| format!("{server}: no answer within {:?}", self.timeout))??;
        let answer = Message::from_vec(&raw).map_err(|e| format!("{server}: bad answer: {e}"))?;
        match answer.response_code() {
            ResponseCode::NoError => {}
            code => return Err(format!("{server} refused the update: {code}")),
        }
        // A signed update expects a signed answer: an unsigned or forged "NOERROR" is not success.
        match verifier {
            Some(mut verify) => verify(&raw)
                .map(|_| ())
                .map_err(|e| format!("{server}: the answer's TSIG signature did not verify: {e}")),
            None => Ok(()),
        }
    }

    /// Signs `msg` with the TSIG key, returning the verifier of the answer (none without a key).
    fn sign(&self, msg: &mut Message) -> Result<Option<MessageVerifier>, String> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        msg.finalize(signer, u32::try_from(now).unwrap_or(u32::MAX))
            .map_err(|e| format!("TSIG signing: {e}"))
    }
}

impl DnsProvider for Rfc2136 {
    fn name(&self) -> &'static str {
        "rfc2136"
    }

    fn timing(&self) -> Timing {
        self.timing
    }

    fn present<'a>(
        &'a self,
        r: &'a Record,
        lookup: &'a Lookup,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.update(r, lookup, true))
    }

    fn cleanup<'a>(
        &'a self,
        r: &'a Record,
        lookup: &'a Lookup,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.update(r, lookup, false))
    }
}
