//! DNS queries for DNS-01: one exchange over UDP (TCP when truncated), the zone of a name by SOA walk, CNAME
//! following, and the propagation check (TXT on every authoritative server, and on every configured resolver
//! with `requireAllRNS`). Built on hickory-proto's message types; the transport is ours (a few lines, bounded
//! by timeouts, no background task).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Propagation, Record};

/// Bound on one UDP or TCP exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(3);

/// The recursive resolvers used for lookups (`dnsChallenge.resolvers`, else the system's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// Resolver addresses, tried in order.
    pub resolvers: Vec<SocketAddr>,
}

/// The nameservers of `/etc/resolv.conf`, else Google's (lego's fallback).
#[allow(clippy::disallowed_methods)] // control plane: read once when the resolver is configured
pub fn system_resolvers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let found: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if found.is_empty() {
        vec![
            SocketAddr::from(([8, 8, 8, 8], 53)),
            SocketAddr::from(([8, 8, 4, 4], 53)),
        ]
    } else {
        found
    }
}

/// A query message for `name`/`rtype`, recursion desired.
pub fn query_message(name: &Name, rtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(fastrand::u16(..))
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), rtype));
    m
}

/// Sends `msg` to `server` (UDP; TCP when the answer is truncated or `tcp`) and returns the answer.
pub async fn exchange(server: SocketAddr, msg: &Message, tcp: bool) -> Result<Message, String> {
    let raw = exchange_bytes(server, msg, tcp).await?;
    Message::from_vec(&raw).map_err(|e| format!("{server}: bad answer: {e}"))
}

/// [`exchange`], returning the answer's bytes (a TSIG verifier needs them).
pub async fn exchange_bytes(
    server: SocketAddr,
    msg: &Message,
    tcp: bool,
) -> Result<Vec<u8>, String> {
    let wire = msg.to_vec().map_err(|e| format!("encoding: {e}"))?;
    let fut = async {
        if !tcp {
            let answer = udp(server, &wire, msg.id()).await?;
            // TC is bit 1 of the third header byte.
            let truncated = answer.get(2).is_some_and(|b| b & 0x02 != 0);
            if !truncated {
                return Ok(answer);
            }
        }
        tcp_exchange(server, &wire).await
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, fut)
        .await
        .map_err(|_| format!("{server}: no answer within {EXCHANGE_TIMEOUT:?}"))?
}

async fn udp(server: SocketAddr, wire: &[u8], id: u16) -> Result<Vec<u8>, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("udp: {e}"))?;
    sock.connect(server)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    sock.send(wire)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .await
            .map_err(|e| format!("{server}: {e}"))?;
        let answer = buf.get(..n).unwrap_or_default();
        if answer.get(..2) == Some(&id.to_be_bytes()[..]) && n >= 12 {
            return Ok(answer.to_vec());
        }
    }
}

async fn tcp_exchange(server: SocketAddr, wire: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let len = u16::try_from(wire.len()).map_err(|_| "message too large".to_string())?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(wire);
    s.write_all(&out)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let n = s.read_u16().await.map_err(|e| format!("{server}: {e}"))?;
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    Ok(buf)
}

/// `name` as an absolute DNS name.
pub fn fqdn_name(name: &str) -> Result<Name, String> {
    let mut n = Name::from_ascii(name).map_err(|e| format!("`{name}`: {e}"))?;
    n.set_fqdn(true);
    Ok(n)
}

/// The TXT strings of an answer, each record's strings concatenated.
fn txt_values(m: &Message) -> Vec<String> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::TXT(t) => Some(
                t.txt_data()
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

impl Lookup {
    /// Lookups through `resolvers`.
    pub fn new(resolvers: Vec<SocketAddr>) -> Lookup {
        Lookup { resolvers }
    }

    /// The first resolver's answer (the next one on a transport error).
    pub async fn query(&self, name: &Name, rtype: RecordType) -> Result<Message, String> {
        let msg = query_message(name, rtype);
        let mut last = "no resolver configured".to_string();
        for r in &self.resolvers {
            match exchange(*r, &msg, false).await {
                Ok(m) => return Ok(m),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The zone holding `fqdn`: the closest enclosing name with an SOA record (lego's `FindZoneByFqdn`).
    pub async fn find_zone(&self, fqdn: &str) -> Result<String, String> {
        let mut name = fqdn_name(fqdn)?;
        loop {
            let m = self.query(&name, RecordType::SOA).await?;
            if m.response_code() == ResponseCode::NoError {
                let soa = m
                    .answers()
                    .iter()
                    .find(|r| matches!(r.data(), RData::SOA(_)) && r.name() == &name);
                if let Some(r) = soa {
                    return Ok(r.name().to_ascii());
                }
            }
            if name.num_labels() <= 1 {
                return Err(format!("no SOA found for {fqdn}"));
            }
            name = name.base_name();
        }
    }

    /// Follows CNAMEs from `fqdn` (at most 10), as lego does; `fqdn` itself when none is set or the lookup
    /// fails.
    pub async fn follow_cname(&self, fqdn: &str) -> String {
        let mut current = fqdn.to_string();
        for _ in 0..10 {
            let Ok(name) = fqdn_name(&current) else { break };
            let Ok(m) = self.query(&name, RecordType::CNAME).await else {
                break;
            };
            let next = m.answers().iter().find_map(|r| match r.data() {
                RData::CNAME(c) if r.name() == &name => Some(c.0.to_ascii()),
                _ => None,
            });
            match next {
                Some(n) if n != current => current = n,
                _ => break,
            }
        }
        current
    }

    /// The addresses of `host` (A then AAAA), through the resolvers.
    async fn addresses(&self, host: &Name) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for t in [RecordType::A, RecordType::AAAA] {
            if let Ok(m) = self.query(host, t).await {
                out.extend(m.answers().iter().filter_map(|r| match r.data() {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                }));
            }
        }
        out
    }

    /// The zone's authoritative servers (`NS` of the zone, each resolved), on `port`.
    pub async fn authoritative(&self, zone: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let m = self.query(&fqdn_name(zone)?, RecordType::NS).await?;
        let hosts: Vec<Name> = m
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::NS(ns) => Some(ns.0.clone()),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for h in &hosts {
            let ips = self.addresses(h).await;
            if ips.is_empty() {
                return Err(format!("nameserver {h} of {zone} has no address"));
            }
            out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port)));
        }
        if out.is_empty() {
            return Err(format!("no NS record for zone {zone}"));
        }
        Ok(out)
    }
}

/// Does `server` answer `value` among the TXT records of `fqdn`? (No recursion asked of authoritative servers.)
pub async fn has_txt(server: SocketAddr, fqdn: &str, value: &str) -> Result<bool, String> {
    let name = fqdn_name(fqdn)?;
    let mut msg = query_message(&name, RecordType::TXT);
    msg.set_recursion_desired(false);
    let m = exchange(server, &msg, false).await?;
    Ok(txt_values(&m).iter().any(|v| v == value))
}

/// One propagation check (lego's precheck): every configured resolver when `requireAllRNS`, then every
/// authoritative server of the zone (unless `disableANSChecks`). `Err` says what is not there yet.
pub async fn propagated(lookup: &Lookup, p: &Propagation, r: &Record) -> Result<(), String> {
    if p.require_all_rns {
        for s in &lookup.resolvers {
            let name = fqdn_name(&r.fqdn)?;
            let m = exchange(*s, &query_message(&name, RecordType::TXT), false).await?;
            if !txt_values(&m).contains(&r.value) {
                return Err(format!("resolver {s} does not answer the value yet"));
            }
        }
    }
    if p.disable_ans_checks {
        return Ok(());
    }
    let zone = lookup.find_zone(&r.fqdn).await?;
    for s in lookup.authoritative(&zone, p.ns_port).await? {
        if !has_txt(s, &r.fqdn, &r.value).await? {
            return Err(format!(
                "authoritative server {s} does not answer the value yet"
            ));
        }
    }
    Ok(())
}
