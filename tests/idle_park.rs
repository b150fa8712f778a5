//! Idle HTTP/1 keep-alive connections are parked (hyper's connection and buffers dropped, the socket kept,
//! see src/proxy/park.rs) and served again when their next request comes: what a client sees must not
//! change — the same socket answers, pipelined requests are all answered, a closing request still closes.

// Test code: a failed unwrap, expect or index is the test failing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

use std::time::{Duration, Instant};

use support::{catch_all_config, Backend, Gate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longer than the idle time after which a connection is parked (500 ms).
const PARKED: Duration = Duration::from_millis(900);

/// Reads until `count` answers from backend `name` have arrived (or 5 s pass); returns what was read.
async fn read_answers(s: &mut TcpStream, name: &str, count: usize) -> String {
    let needle = format!("Name: {name}");
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while String::from_utf8_lossy(&got).matches(&needle).count() < count {
        let Some(left) = Duration::from_secs(5).checked_sub(t0.elapsed()) else {
            break;
        };
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the server closes `s` within `max`.
async fn closed_within(s: &mut TcpStream, max: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let t0 = Instant::now();
    loop {
        let Some(left) = max.checked_sub(t0.elapsed()) else {
            return false;
        };
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A swarmgate routing everything to `b`, and a connection to it that made one request (`GET path`) and has
/// been idle long enough to be parked.
async fn parked(b: &Backend, path: &str) -> (Gate, TcpStream) {
    let gate = Gate::with_dynamic(&catch_all_config(&b.url), &[]);
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let first = read_answers(&mut s, "a", 1).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first:?}");
    tokio::time::sleep(PARKED).await;
    (gate, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_answers_its_next_requests_on_the_same_socket() {
    let b = Backend::start("a").await;
    let gate = Gate::with_dynamic(&catch_all_config(&b.url), &[]);
    let mut s = TcpStream::connect(gate.web()).await.expect("connect");
    for round in 0..3 {
        s.write_all(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let answer = read_answers(&mut s, "a", 1).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "round {round}: {answer:?}"
        );
        tokio::time::sleep(PARKED).await;
    }
    // A head that arrives in pieces across the wake-up is still one request.
    s.write_all(b"GET /split HT").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"TP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = read_answers(&mut s, "a", 1).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_to_a_parked_connection_are_all_answered_in_order() {
    let b = Backend::start("a").await;
    let (_gate, mut s) = parked(&b, "/first").await;
    s.write_all(
        b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\nGET /p3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .expect("write");
    let answers = read_answers(&mut s, "a", 3).await;
    assert_eq!(answers.matches("HTTP/1.1 200").count(), 3, "{answers:?}");
    let (p1, p2, p3) = (
        answers.find("GET /p1").expect("p1"),
        answers.find("GET /p2").expect("p2"),
        answers.find("GET /p3").expect("p3"),
    );
    assert!(p1 < p2 && p2 < p3, "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_request_after_a_park_still_closes_the_connection() {
    let b = Backend::start("a").await;
    let (_gate, mut s) = parked(&b, "/").await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = read_answers(&mut s, "a", 1).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_body_is_served_after_a_park_and_its_body_never_read_as_a_request() {
    let b = Backend::start("a").await;
    let (_gate, mut s) = parked(&b, "/").await;
    // A body that looks like a request: it must reach the backend as a body, never be routed.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let post = format!(
        "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    s.write_all(post.as_bytes()).await.expect("write");
    let answer = read_answers(&mut s, "a", 1).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    tokio::time::sleep(PARKED).await;
    s.write_all(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = read_answers(&mut s, "a", 1).await;
    assert!(answer.contains("GET /after"), "{answer:?}");
    assert!(!answer.contains("GET /smuggled"), "{answer:?}");
}
