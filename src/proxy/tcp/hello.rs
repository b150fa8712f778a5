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
    let mut chunk = [0u8; 4096];
    loop {
        if hello.bytes.len() >= MAX_HELLO {
            return Ok(hello);
        }
        let n = io.read(&mut chunk).await?;
        let got = chunk.get(..n).unwrap_or_default();
        if got.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hello.bytes.extend_from_slice(got);
        let mut rd: &[u8] = got;
        while !rd.is_empty() {
            if acceptor.read_tls(&mut rd).is_err() {
                return Ok(hello);
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
