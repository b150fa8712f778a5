//! The PROXY protocol (HAProxy's `proxy-protocol.txt`), versions 1 (text) and 2 (binary): encoding the header
//! swarmgate sends to TCP backends (`proxyProtocol.version`), and decoding the header a trusted L4 balancer in
//! front sends to an entrypoint (`entryPoints.<n>.proxyProtocol`).
//!
//! Pure and allocation-light: [`decode`] reads from a byte slice that may hold only the start of a header and
//! says how many bytes the header took, so the caller decides how to read (peek, bounded time) and what to do
//! with the bytes after it. Names nothing else in the crate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Signature that starts every version-2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Start of every version-1 header.
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest version-1 header, CRLF included (the specification's bound).
pub const V1_MAX: usize = 107;
/// Longest version-2 header accepted (16-byte fixed part plus addresses and TLVs). The protocol allows
/// 64 KiB; real balancers (HAProxy, AWS NLB, Envoy) send a few hundred bytes at most.
pub const V2_MAX: usize = 4096;

/// A PROXY protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The text format.
    V1,
    /// The binary format.
    V2,
}

impl Version {
    /// `1` or `2` as configured (`proxyProtocol.version`); anything else is not a version.
    pub fn from_number(n: i64) -> Option<Version> {
        match n {
            1 => Some(Version::V1),
            2 => Some(Version::V2),
            _ => None,
        }
    }
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Which version it was written in.
    pub version: Version,
    /// The connection's original (source, destination), or `None` for `UNKNOWN` (v1) and `LOCAL` or
    /// unspecified-family (v2) headers, which carry no address to use.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// What the start of a stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// No PROXY header: the bytes are the client's own.
    NotProxy,
    /// The bytes so far are the start of a header; more are needed.
    Incomplete,
    /// A whole header, `len` bytes long.
    Header {
        /// The header.
        header: Header,
        /// Its length in bytes (the client's data starts after it).
        len: usize,
    },
}

/// A header that starts like a PROXY header but is not a valid one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid PROXY protocol header: {0}")]
pub struct InvalidHeader(pub &'static str);

/// Reads a PROXY header from the start of `buf`.
pub fn decode(buf: &[u8]) -> Result<Decoded, InvalidHeader> {
    if starts_like(buf, &V2_SIGNATURE) {
        return if buf.len() < V2_SIGNATURE.len() {
            Ok(Decoded::Incomplete)
        } else {
            decode_v2(buf)
        };
    }
    if starts_like(buf, V1_PREFIX) {
        return if buf.len() < V1_PREFIX.len() {
            Ok(Decoded::Incomplete)
        } else {
            decode_v1(buf)
        };
    }
    Ok(Decoded::NotProxy)
}

/// True when `buf` and `sig` agree on their common length (and `buf` is not empty).
fn starts_like(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    n > 0 && buf.get(..n) == sig.get(..n)
}

fn decode_v1(buf: &[u8]) -> Result<Decoded, InvalidHeader> {
    let window = buf.get(..buf.len().min(V1_MAX)).unwrap_or(buf);
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(InvalidHeader("v1 header without CRLF within 107 bytes"))
        } else {
            Ok(Decoded::Incomplete)
        };
    };
    let line = window
        .get(V1_PREFIX.len()..end)
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or(InvalidHeader("v1 header is not ASCII"))?;
    let mut fields = line.split(' ');
    let proto = fields.next().unwrap_or("");
    let addresses = match proto {
        "UNKNOWN" => None,
        "TCP4" | "TCP6" => {
            let mut next = || {
                fields
                    .next()
                    .ok_or(InvalidHeader("v1 header: missing field"))
            };
            let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
            let src: IpAddr = parse_ip(src, proto)?;
            let dst: IpAddr = parse_ip(dst, proto)?;
            let sport = parse_port(sport)?;
            let dport = parse_port(dport)?;
            if fields.next().is_some() {
                return Err(InvalidHeader("v1 header: extra fields"));
            }
            Some((SocketAddr::new(src, sport), SocketAddr::new(dst, dport)))
        }
        _ => {
            return Err(InvalidHeader(
                "v1 header: protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    Ok(Decoded::Header {
        header: Header {
            version: Version::V1,
            addresses,
        },
        len: end + 2,
    })
}

fn parse_ip(s: &str, proto: &str) -> Result<IpAddr, InvalidHeader> {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| InvalidHeader("v1 header: bad address"))?;
    match (proto, ip) {
        ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(InvalidHeader("v1 header: address family does not match")),
    }
}

fn parse_port(s: &str) -> Result<u16, InvalidHeader> {
    // Decimal without sign or leading zeros, as the specification writes them.
    if s.is_empty()
        || s.len() > 5
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(InvalidHeader("v1 header: bad port"));
    }
    s.parse().map_err(|_| InvalidHeader("v1 header: bad port"))
}

fn decode_v2(buf: &[u8]) -> Result<Decoded, InvalidHeader> {
    let Some(fixed) = buf.get(..16) else {
        return Ok(Decoded::Incomplete);
    };
    let (ver_cmd, fam) = (
        fixed.get(12).copied().unwrap_or(0),
        fixed.get(13).copied().unwrap_or(0),
    );
    let len = u16::from_be_bytes([
        fixed.get(14).copied().unwrap_or(0),
        fixed.get(15).copied().unwrap_or(0),
    ]) as usize;
    if ver_cmd >> 4 != 2 {
        return Err(InvalidHeader("v2 header: version is not 2"));
    }
    let total = 16 + len;
    if total > V2_MAX {
        return Err(InvalidHeader("v2 header longer than 4096 bytes"));
    }
    let Some(body) = buf.get(16..total) else {
        return Ok(Decoded::Incomplete);
    };
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(InvalidHeader("v2 header: command is not LOCAL or PROXY")),
    };
    let addresses = match fam >> 4 {
        _ if local => None,
        0 => None,
        1 => {
            let b = body
                .get(..12)
                .ok_or(InvalidHeader("v2 header: short IPv4 addresses"))?;
            let ip = |o: usize| Ipv4Addr::new(at(b, o), at(b, o + 1), at(b, o + 2), at(b, o + 3));
            Some((
                SocketAddr::new(IpAddr::V4(ip(0)), port_at(b, 8)),
                SocketAddr::new(IpAddr::V4(ip(4)), port_at(b, 10)),
            ))
        }
        2 => {
            let b = body
                .get(..36)
                .ok_or(InvalidHeader("v2 header: short IPv6 addresses"))?;
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                for (i, x) in a.iter_mut().enumerate() {
                    *x = at(b, o + i);
                }
                Ipv6Addr::from(a)
            };
            Some((
                SocketAddr::new(IpAddr::V6(ip(0)), port_at(b, 32)),
                SocketAddr::new(IpAddr::V6(ip(16)), port_at(b, 34)),
            ))
        }
        // AF_UNIX: no IP address to use.
        3 => None,
        _ => return Err(InvalidHeader("v2 header: unknown address family")),
    };
    Ok(Decoded::Header {
        header: Header {
            version: Version::V2,
            addresses,
        },
        len: total,
    })
}

fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn port_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([at(b, i), at(b, i + 1)])
}

/// The header announcing a connection from `src` to `dst` in `version`. Mixed families are written as IPv6
/// (IPv4 addresses mapped), as Go's `go-proxyproto` (Traefik's) does.
pub fn encode(version: Version, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(src, dst);
    match version {
        Version::V1 => {
            let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {proto} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            )
            .into_bytes()
        }
        Version::V2 => {
            let mut out = Vec::with_capacity(52);
            out.extend_from_slice(&V2_SIGNATURE);
            out.push(0x21); // version 2, PROXY
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11); // AF_INET, STREAM
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.push(0x21); // AF_INET6, STREAM
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&v6(s).octets());
                    out.extend_from_slice(&v6(d).octets());
                }
            }
            out.extend_from_slice(&src.port().to_be_bytes());
            out.extend_from_slice(&dst.port().to_be_bytes());
            out
        }
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let src = SocketAddr::new(src.ip().to_canonical(), src.port());
    let dst = SocketAddr::new(dst.ip().to_canonical(), dst.port());
    if src.is_ipv4() == dst.is_ipv4() {
        return (src, dst);
    }
    (
        SocketAddr::new(IpAddr::V6(v6(src.ip())), src.port()),
        SocketAddr::new(IpAddr::V6(v6(dst.ip())), dst.port()),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_round_trip_and_exact_text() {
        let h = encode(Version::V1, sa("192.0.2.1:56324"), sa("198.51.100.7:443"));
        assert_eq!(h, b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n");
        let mut stream = h.clone();
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            decode(&stream).unwrap(),
            Decoded::Header {
                header: Header {
                    version: Version::V1,
                    addresses: Some((sa("192.0.2.1:56324"), sa("198.51.100.7:443")))
                },
                len: h.len()
            }
        );
        let h6 = encode(Version::V1, sa("[2001:db8::1]:1"), sa("[::1]:2"));
        assert_eq!(h6, b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n");
        assert!(matches!(decode(&h6).unwrap(), Decoded::Header { .. }));
    }

    #[test]
    fn v2_round_trip_v4_v6_and_mixed() {
        for (s, d) in [
            ("10.1.2.3:4000", "10.0.0.1:80"),
            ("[2001:db8::5]:4000", "[2001:db8::1]:80"),
            ("10.1.2.3:4000", "[2001:db8::1]:80"),
        ] {
            let h = encode(Version::V2, sa(s), sa(d));
            let Decoded::Header { header, len } = decode(&h).unwrap() else {
                panic!("not decoded");
            };
            assert_eq!(len, h.len());
            assert_eq!(header.version, Version::V2);
            let (src, dst) = header.addresses.unwrap();
            assert_eq!(src.ip().to_canonical(), sa(s).ip());
            assert_eq!((src.port(), dst.port()), (sa(s).port(), sa(d).port()));
            assert_eq!(dst.ip().to_canonical(), sa(d).ip());
        }
        let h = encode(Version::V2, sa("1.2.3.4:5"), sa("6.7.8.9:10"));
        assert_eq!(h.len(), 28);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
    }

    #[test]
    fn every_prefix_is_incomplete_and_other_bytes_are_not_proxy() {
        for h in [
            encode(Version::V1, sa("1.2.3.4:5"), sa("6.7.8.9:10")),
            encode(Version::V2, sa("1.2.3.4:5"), sa("6.7.8.9:10")),
        ] {
            for n in 1..h.len() {
                assert_eq!(decode(&h[..n]).unwrap(), Decoded::Incomplete, "prefix {n}");
            }
        }
        assert_eq!(decode(b"").unwrap(), Decoded::NotProxy);
        assert_eq!(decode(b"GET / HTTP/1.1\r\n").unwrap(), Decoded::NotProxy);
        assert_eq!(decode(&[0x16, 3, 1]).unwrap(), Decoded::NotProxy);
        assert_eq!(decode(b"PROXX").unwrap(), Decoded::NotProxy);
    }

    #[test]
    fn unknown_and_local_carry_no_address() {
        let Decoded::Header { header, len } = decode(b"PROXY UNKNOWN\r\nxyz").unwrap() else {
            panic!()
        };
        assert_eq!((header.addresses, len), (None, 15));
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        let Decoded::Header { header, len } = decode(&local).unwrap() else {
            panic!()
        };
        assert_eq!((header.addresses, len), (None, 16));
    }

    #[test]
    fn malformed_headers_are_errors() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n"[..],
            b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(decode(&[b'P', b'R', b'O', b'X', b'Y', b' ', b'A'].repeat(20)).is_err());
        let mut v = V2_SIGNATURE.to_vec();
        v.extend_from_slice(&[0x11, 0x11, 0, 0]);
        assert!(decode(&v).is_err(), "version 1 in a v2 signature");
        let mut v = V2_SIGNATURE.to_vec();
        v.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(decode(&v).is_err(), "short address block");
        let mut v = V2_SIGNATURE.to_vec();
        v.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(decode(&v).is_err(), "longer than accepted");
    }

    #[test]
    fn v2_tlvs_are_skipped() {
        let mut h = encode(Version::V2, sa("1.2.3.4:5"), sa("6.7.8.9:10"));
        h[15] += 7;
        h.extend_from_slice(&[0x04, 0, 4, b'a', b'b', b'c', b'd']);
        let Decoded::Header { header, len } = decode(&h).unwrap() else {
            panic!()
        };
        assert_eq!(len, h.len());
        assert_eq!(header.addresses.unwrap().0, sa("1.2.3.4:5"));
    }

    #[test]
    fn random_mutations_keep_the_fuzz_invariants() {
        let seeds = [
            encode(Version::V1, sa("192.0.2.1:1"), sa("198.51.100.7:443")),
            encode(Version::V1, sa("[2001:db8::1]:1"), sa("[::1]:2")),
            encode(Version::V2, sa("1.2.3.4:5"), sa("6.7.8.9:10")),
            encode(
                Version::V2,
                sa("[2001:db8::5]:4000"),
                sa("[2001:db8::1]:80"),
            ),
        ];
        let mut rng = fastrand::Rng::with_seed(17);
        for _ in 0..20_000 {
            let mut d = seeds[rng.usize(..seeds.len())].clone();
            for _ in 0..rng.usize(1..4) {
                match rng.u8(..3) {
                    0 if !d.is_empty() => {
                        let i = rng.usize(..d.len());
                        d[i] = rng.u8(..);
                    }
                    1 if !d.is_empty() => {
                        d.truncate(rng.usize(..d.len()));
                    }
                    _ => d.push(rng.u8(..)),
                }
            }
            crate::fuzzing::proxy_protocol(&d);
        }
    }
}
