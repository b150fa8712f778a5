//! Parking idle HTTP/1 keep-alive connections: an edge proxy holds many browser connections that send
//! nothing for seconds or minutes, and hyper keeps an 8 KiB read and an 8 KiB write buffer (and its
//! connection state) for each of them all that time. A parked connection is only its socket, waiting to
//! become readable; when the next request comes, a fresh hyper connection serves it (as nginx frees its
//! buffers between keep-alive requests).
//!
//! A connection is parked only when hyper would have kept it alive anyway — the last response was to an
//! HTTP/1.1 request with no body and no `Connection: close` or `Upgrade`, and the response did not close
//! either ([`request_reusable`], [`response_reusable`]) — so that parking can never turn a connection hyper
//! would close (a request body left unread, a `close`) into one read again. The driver
//! ([`super::deadline::drive`]) parks after [`PARK_AFTER`] of idleness; bytes hyper had already read
//! come back from `into_parts` and are replayed first.
//!
//! Plain HTTP/1 only: TLS connections keep rustls' buffers whatever hyper does, and HTTP/2 connections
//! are multiplexed (see docs/benchmarks.md for what each costs idle).

use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, StatusCode, Version};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long an HTTP/1 connection stays idle, with hyper's buffers, before it is parked. Long enough that
/// a client sending back-to-back requests never pays for a new hyper connection, short enough that an
/// idle browser connection costs its socket only within a second.
pub const PARK_AFTER: Duration = Duration::from_millis(500);

/// The HTTP/2 connection preface (RFC 9113 §3.4): what an h2c prior-knowledge client sends first.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `headers` has a `Connection` header naming `token`.
fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Whether hyper keeps an HTTP/1 connection alive after answering this request: HTTP/1.1, no body to
/// read (a body the handler leaves unread makes hyper drain or close), no `Connection: close` and no
/// `Upgrade` (hyper ends the connection for those).
///
/// The body is judged from the head alone, as HTTP/1 frames it (RFC 9112 §6.3: no `Transfer-Encoding` and no
/// `Content-Length`, or a zero one, is no body): asking the body itself (`is_end_stream`) before the
/// handler takes the request makes the compiler build the request's ~14 KB future on the stack and copy it
/// into hyper's slot on every request (benches/RESULTS.md, round 2).
pub fn request_reusable(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && head_says_no_body(headers)
        && !headers.contains_key(UPGRADE)
        && !connection_has(headers, "close")
}

/// Whether an HTTP/1 request head frames no body: no `Transfer-Encoding`, and `Content-Length` absent or 0.
fn head_says_no_body(headers: &HeaderMap) -> bool {
    !headers.contains_key(TRANSFER_ENCODING)
        && headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .all(|v| v.as_bytes().iter().all(|b| *b == b'0') && !v.is_empty())
}

/// Whether hyper keeps the connection alive after this response (to a reusable request): no
/// `Connection: close` and no protocol switch.
pub fn response_reusable(status: StatusCode, headers: &HeaderMap) -> bool {
    status != StatusCode::SWITCHING_PROTOCOLS && !connection_has(headers, "close")
}

/// Reads the start of a plain connection to tell HTTP/2 prior knowledge from HTTP/1, as hyper-util's
/// auto builder does: bytes are read while they match the preface, at most its 24 bytes. Returns whether
/// it is HTTP/2 and the bytes read (to be replayed), or `None` when the client closes or `limit` passes
/// first.
pub async fn read_preface(
    stream: &mut TcpStream,
    limit: Option<Instant>,
) -> Option<(bool, Vec<u8>)> {
    let mut buf = [0u8; 24];
    let mut n = 0;
    loop {
        let rest = buf.get_mut(n..)?;
        let read = stream.read(rest);
        let got = match limit {
            Some(l) => tokio::time::timeout_at(l, read).await.ok()?,
            None => read.await,
        };
        match got {
            Ok(0) | Err(_) => return None,
            Ok(k) => n += k,
        }
        let seen = buf.get(..n)?;
        if H2_PREFACE.get(..n) != Some(seen) {
            return Some((false, seen.to_vec()));
        }
        if n == H2_PREFACE.len() {
            return Some((true, seen.to_vec()));
        }
    }
}

/// Waits, holding no buffer, until a parked connection has bytes to read (the next request) or the client
/// closes, `idle` passes or `stop` fires. `true`: serve it again. The wait is a one-byte peek, not
/// `readable()`, which may wake without data (tokio documents false positives); a spurious wake would
/// rebuild hyper's connection and its buffers for nothing.
pub async fn wait(
    stream: &TcpStream,
    idle: Option<Instant>,
    stop: &tokio_util::sync::CancellationToken,
) -> bool {
    let mut one = [0u8; 1];
    let peeked = async {
        match idle {
            Some(d) => tokio::time::timeout_at(d, stream.peek(&mut one))
                .await
                .is_ok_and(|r| r.is_ok()),
            None => stream.peek(&mut one).await.is_ok(),
        }
    };
    tokio::select! {
        r = peeked => r,
        _ = stop.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_requests_hyper_keeps_alive_after_are_reusable() {
        let plain = headers(&[("host", "a"), ("connection", "keep-alive")]);
        assert!(request_reusable(Version::HTTP_11, &plain));
        assert!(!request_reusable(Version::HTTP_10, &plain));
        let empty = headers(&[("host", "a"), ("content-length", "0")]);
        assert!(request_reusable(Version::HTTP_11, &empty));
        for body in [
            headers(&[("host", "a"), ("content-length", "5")]),
            headers(&[("host", "a"), ("content-length", "")]),
            headers(&[("host", "a"), ("transfer-encoding", "chunked")]),
        ] {
            assert!(!request_reusable(Version::HTTP_11, &body), "{body:?}");
        }
        let close = headers(&[("connection", "keep-alive, Close")]);
        assert!(!request_reusable(Version::HTTP_11, &close));
        let two = headers(&[("connection", "keep-alive"), ("connection", "close")]);
        assert!(!request_reusable(Version::HTTP_11, &two));
        let ws = headers(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        assert!(!request_reusable(Version::HTTP_11, &ws));
    }

    #[test]
    fn closing_and_switching_responses_are_not_reusable() {
        assert!(response_reusable(StatusCode::OK, &HeaderMap::new()));
        let close = headers(&[("connection", "close")]);
        assert!(!response_reusable(StatusCode::OK, &close));
        assert!(!response_reusable(
            StatusCode::SWITCHING_PROTOCOLS,
            &HeaderMap::new()
        ));
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let c = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (s, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
        (c, s)
    }

    #[tokio::test]
    async fn the_preface_is_told_from_http1_even_when_it_arrives_in_pieces() {
        use tokio::io::AsyncWriteExt;
        let (mut c, mut s) = pair().await;
        c.write_all(b"GET / HTTP/1.1\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (h2, seen) = read_preface(&mut s, None)
            .await
            .unwrap_or_else(|| panic!("no answer"));
        assert!(!h2);
        assert!(b"GET / HTTP/1.1\r\n".starts_with(&seen) && !seen.is_empty());

        let (mut c, mut s) = pair().await;
        let task = tokio::spawn(async move {
            for part in [&H2_PREFACE[..3], &H2_PREFACE[3..20], &H2_PREFACE[20..]] {
                c.write_all(part).await.unwrap_or_else(|e| panic!("{e}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            c
        });
        let (h2, seen) = read_preface(&mut s, None)
            .await
            .unwrap_or_else(|| panic!("no answer"));
        assert!(h2);
        assert_eq!(seen, H2_PREFACE);
        drop(task.await);
    }

    #[tokio::test]
    async fn a_parked_connection_wakes_on_bytes_and_gives_up_at_its_idle_deadline() {
        use tokio::io::AsyncWriteExt;
        let stop = tokio_util::sync::CancellationToken::new();
        let (mut c, s) = pair().await;
        let soon = Some(Instant::now() + Duration::from_millis(50));
        assert!(!wait(&s, soon, &stop).await, "nothing came: idle deadline");
        c.write_all(b"G").await.unwrap_or_else(|e| panic!("{e}"));
        let later = Some(Instant::now() + Duration::from_secs(5));
        assert!(wait(&s, later, &stop).await);
        // The byte is still there for hyper; a client closing wakes the wait too (hyper then reads EOF).
        let mut b = [0u8; 1];
        assert_eq!(s.peek(&mut b).await.unwrap_or_else(|e| panic!("{e}")), 1);
        let (c2, s2) = pair().await;
        drop(c2);
        assert!(wait(&s2, later, &stop).await);
        stop.cancel();
        let (_c, s) = pair().await;
        assert!(!wait(&s, None, &stop).await, "stopped");
    }
}
