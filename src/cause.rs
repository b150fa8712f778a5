//! Why a connection failed, in words a newcomer can act on: the error's source chain (hyper-util's client
//! error → `std::io::Error` → a rustls error) walked down to the first cause that means something — DNS,
//! refused, timed out, reset, missing socket, permission, TLS (with the unknown-issuer case named) — instead
//! of the top layer's `client error (Connect)`.
//!
//! Names nothing in the crate: the Docker client and the ACME client both use it, each adding its own hint.

use std::error::Error;
use std::fmt;
use std::io;

/// The cause of a failed connection, as found in an error chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The host name does not resolve.
    Dns(String),
    /// Nothing listens there (`ECONNREFUSED`).
    Refused,
    /// The connection or answer took too long.
    Timeout,
    /// The peer closed or reset the connection.
    Reset,
    /// A unix socket path that does not exist.
    NoSocket,
    /// Not allowed to open it (a socket's file permissions).
    Permission,
    /// The server's certificate chains to a CA this client does not trust.
    TlsUnknownIssuer,
    /// Another TLS failure (name mismatch, expired, handshake).
    Tls(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Dns(m) => write!(f, "DNS: the host name does not resolve ({m})"),
            Cause::Refused => f.write_str("connection refused: nothing listens on that address"),
            Cause::Timeout => f.write_str("timed out"),
            Cause::Reset => f.write_str("the connection was closed or reset by the peer"),
            Cause::NoSocket => f.write_str("no such socket file"),
            Cause::Permission => f.write_str("permission denied"),
            Cause::TlsUnknownIssuer => {
                f.write_str("TLS: the server's certificate is signed by an unknown issuer")
            }
            Cause::Tls(m) => write!(f, "TLS: {m}"),
        }
    }
}

/// The first meaningful cause in `err`'s source chain (itself included), if any.
pub fn classify(err: &(dyn Error + 'static)) -> Option<Cause> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(c) = one(e) {
            return Some(c);
        }
        // `io::Error::source` skips the error it wraps: look inside it too.
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            if let Some(c) = classify(inner) {
                return Some(c);
            }
        }
        cur = e.source();
    }
    None
}

/// `err` with its cause named: `context: cause` when a cause is found, else the whole chain joined by `: `.
pub fn describe(err: &(dyn Error + 'static)) -> String {
    match classify(err) {
        Some(c) => format!("{err}: {c}"),
        None => chain(err),
    }
}

/// Every message of the source chain, joined by `: ` (repeats skipped).
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let m = e.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = e.source();
    }
    out
}

fn one(e: &(dyn Error + 'static)) -> Option<Cause> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(tls(t));
    }
    if let Some(io) = e.downcast_ref::<io::Error>() {
        return io_cause(io);
    }
    if e.downcast_ref::<tokio::time::error::Elapsed>().is_some() {
        return Some(Cause::Timeout);
    }
    None
}

fn tls(t: &rustls::Error) -> Cause {
    match t {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            Cause::TlsUnknownIssuer
        }
        other => Cause::Tls(other.to_string()),
    }
}

fn io_cause(e: &io::Error) -> Option<Cause> {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Some(Cause::Refused),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Some(Cause::Timeout),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Some(Cause::Reset),
        io::ErrorKind::NotFound => Some(Cause::NoSocket),
        io::ErrorKind::PermissionDenied => Some(Cause::Permission),
        _ => {
            // getaddrinfo failures reach us as io::Error of kind Other/Uncategorized with this text
            // (tokio's and hyper-util's resolvers both word it so).
            let m = e.to_string();
            if m.contains("failed to lookup address")
                || m.contains("Name or service not known")
                || m.contains("name resolution")
            {
                Some(Cause::Dns(m))
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error wrapping another, as hyper-util's client error wraps the connector's.
    #[derive(Debug)]
    struct Wrap(&'static str, Box<dyn Error + Send + Sync>);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.1)
        }
    }

    fn wrapped(inner: io::Error) -> Wrap {
        Wrap("client error (Connect)", Box::new(inner))
    }

    #[test]
    fn causes_from_the_chain() {
        let cases: Vec<(Wrap, Cause)> = vec![
            (
                wrapped(io::Error::from(io::ErrorKind::ConnectionRefused)),
                Cause::Refused,
            ),
            (
                wrapped(io::Error::from(io::ErrorKind::TimedOut)),
                Cause::Timeout,
            ),
            (
                wrapped(io::Error::from(io::ErrorKind::ConnectionReset)),
                Cause::Reset,
            ),
            (
                wrapped(io::Error::from(io::ErrorKind::NotFound)),
                Cause::NoSocket,
            ),
            (
                wrapped(io::Error::from(io::ErrorKind::PermissionDenied)),
                Cause::Permission,
            ),
            (
                wrapped(io::Error::other(
                    "failed to lookup address information: Name or service not known",
                )),
                Cause::Dns(
                    "failed to lookup address information: Name or service not known".into(),
                ),
            ),
            (
                wrapped(io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                )),
                Cause::TlsUnknownIssuer,
            ),
            (
                wrapped(io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
                )),
                Cause::Tls(
                    rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
                        .to_string(),
                ),
            ),
        ];
        for (err, want) in cases {
            assert_eq!(classify(&err), Some(want.clone()), "{err:?}");
            let text = describe(&err);
            assert!(text.starts_with("client error (Connect): "), "{text}");
            assert!(text.contains(&want.to_string()), "{text}");
        }
        let plain = Wrap("outer", Box::new(io::Error::other("something odd")));
        assert_eq!(classify(&plain), None);
        assert_eq!(describe(&plain), "outer: something odd");
    }

    #[tokio::test]
    async fn real_connection_failures_are_classified() {
        // Refused: a port just closed.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let e = tokio::net::TcpStream::connect(addr)
            .await
            .expect_err("refused");
        assert_eq!(classify(&e), Some(Cause::Refused));
        // A unix socket that is not there.
        let e = tokio::net::UnixStream::connect("/nonexistent/sgt.sock")
            .await
            .expect_err("missing");
        assert_eq!(classify(&e), Some(Cause::NoSocket));
        // DNS: `.invalid` never resolves (RFC 6761).
        let Err(e) = tokio::net::lookup_host("sgt-no-such-host.invalid:80").await else {
            panic!("a .invalid name resolved");
        };
        assert!(matches!(classify(&e), Some(Cause::Dns(_))), "{e}");
    }
}
