//! Reading a TLS ClientHello without answering it: the bytes are kept (to replay them to the TLS acceptor
//! or, for passthrough, to the backend) and the server name and ALPN protocols are read from them with
//! rustls' own parser. Bounded in size and, by the caller, in time.

use tokio::io::AsyncReadExt;

/// Most bytes read while looking for a whole ClientHello (a hello spans at most a few records).
pub const MAX_HELLO: usize = 64 * 1024;

/// A ClientHello as read from the client.
#[derive(Debug, Default)]
pub struct Hello {
    /// Every byte read, to replay.
    pub bytes: Vec<u8>,
    /// The server name, lower-case, without a trailing dot.
    pub sni: Option<String>,
    /// The ALPN protocols offered (those that are UTF-8).
    pub alpn: Vec<String>,
}

/// Reads from `io` until a whole ClientHello is in: its server name and ALPN are returned with the bytes.
/// A hello rustls cannot parse, or larger than [`MAX_HELLO`], gives no name (the TLS path then fails it as
/// a handshake would); a connection closed before is an error.
pub async fn read<I: tokio::io::AsyncRead + Unpin>(io: &mut I) -> std::io::Result<Hello> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut hello = Hello {
        bytes: Vec::with_capacity(1024),
        ..Hello::default()
    };
    loop {
        if hello.bytes.len() >= MAX_HELLO {
            return Ok(hello);
        }
        // Read straight into the kept bytes (no buffer of its own in the connection's future).
        let start = hello.bytes.len();
        hello.bytes.reserve(4096);
        if io.read_buf(&mut hello.bytes).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut rd: &[u8] = hello.bytes.get(start..).unwrap_or_default();
        while !rd.is_empty() {
            match acceptor.read_tls(&mut rd) {
                Ok(n) if n > 0 => {}
                _ => return Ok(hello),
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let ch = accepted.client_hello();
                hello.sni = ch
                    .server_name()
                    .map(|s| s.trim_end_matches('.').to_ascii_lowercase());
                hello.alpn = ch
                    .alpn()
                    .map(|it| {
                        it.filter_map(|p| std::str::from_utf8(p).ok().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(hello);
            }
            Ok(None) => continue,
            Err(_) => return Ok(hello),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A real client's first flight: its ClientHello for `sni` offering `alpn`.
    fn client_hello(sni: &str, alpn: &[&str]) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let mut c = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
        let mut out = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut out).unwrap();
        }
        out
    }

    #[tokio::test]
    async fn name_and_alpn_are_read_and_every_byte_is_kept() {
        let flight = client_hello("Db.Example.", &["postgresql", "h2"]);
        // Delivered in small pieces, as a slow client would.
        let (mut tx, mut rx) = tokio::io::duplex(16);
        let f = flight.clone();
        tokio::spawn(async move {
            tokio::io::AsyncWriteExt::write_all(&mut tx, &f)
                .await
                .unwrap();
            std::future::pending::<()>().await;
        });
        let h = read(&mut rx).await.unwrap();
        assert_eq!(h.sni.as_deref(), Some("db.example"));
        assert_eq!(h.alpn, ["postgresql", "h2"]);
        assert_eq!(h.bytes, flight);
    }

    #[tokio::test]
    async fn garbage_gives_no_name_and_eof_is_an_error() {
        let mut junk: &[u8] = &[0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5, 6, 7];
        let h = read(&mut junk).await.unwrap();
        assert_eq!(h.sni, None);
        let mut short: &[u8] = &[0x16, 3, 1];
        assert!(read(&mut short).await.is_err());
    }
}
