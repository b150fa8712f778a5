//! `retry`: send the request again when the backend could not be reached or closed the connection before
//! answering (nothing was sent to the client yet), up to `attempts` times, waiting `initialInterval`,
//! then twice as long each time (exponential backoff).
//!
//! A request body can only be sent again if it is not streamed: requests without a body, or whose body a
//! `buffering` middleware earlier in the chain read completely. A streamed body gets one attempt.
//!
//! Below this middleware the forwarder has its own, narrower retry, with or without it: a connect failure
//! (any method) or a connection lost before the status line (idempotent methods with a replayable body)
//! is sent again at once on a new connection to another server, at most 3 sends (see the proxy handler's
//! `send_with_retry`). What reaches this middleware as a failure has already been through that.

use std::sync::Arc;
use std::time::Duration;

use super::opts::Opts;
use super::{clone_request, next, Cx, Middleware, MiddlewareError, NetworkFailure, Req, Res};
use crate::http::error::ProxyError;

/// A compiled retry middleware.
#[derive(Debug)]
pub struct Retry {
    attempts: u32,
    initial: Duration,
    /// `status`: answers with these statuses are retried too (Traefik v3.6).
    status: Vec<(u16, u16)>,
    /// `timeout`: no new attempt once this long has passed since the first (0: none).
    timeout: Duration,
    /// `retryNonIdempotentMethod`: POST, PATCH and LOCK are retried as well.
    non_idempotent: bool,
    /// `disableRetryOnNetworkError`: only `status` answers are retried.
    no_network_retry: bool,
}

/// Methods Traefik does not retry unless `retryNonIdempotentMethod` is set.
fn is_idempotent(m: &http::Method) -> bool {
    !matches!(m.as_str(), "POST" | "PATCH" | "LOCK")
}

/// Whether an attempt's outcome is a network failure worth another attempt.
pub fn network_failed(r: &Res) -> bool {
    match r {
        Err(e) => matches!(e, ProxyError::Connect { .. } | ProxyError::Upstream { .. }),
        Ok(resp) => resp
            .extensions()
            .get::<NetworkFailure>()
            .is_some_and(|n| n.retryable),
    }
}

impl Retry {
    /// Reads `attempts` (required, > 0), `initialInterval` (default 100ms), `status` (ranges such as
    /// `500-599`), `timeout`, `retryNonIdempotentMethod`, `disableRetryOnNetworkError` and
    /// `maxRequestBodyBytes` (bodies are replayed only when buffered, see the module docs), as Traefik v3.6.
    pub fn build(mut o: Opts<'_>) -> Result<Retry, MiddlewareError> {
        let attempts = o.u64("attempts")?.unwrap_or(0);
        if attempts == 0 {
            return Err(o.err("attempts", "is required and must be positive"));
        }
        let initial = o
            .duration("initialInterval")?
            .unwrap_or(Duration::from_millis(100));
        let mut status = Vec::new();
        for (i, text) in o.strings("status")?.iter().enumerate() {
            status.push(super::errors::parse_range(text).ok_or_else(|| {
                o.err(
                    &format!("status[{i}]"),
                    format!("`{text}` is not a status or a range like 500-599"),
                )
            })?);
        }
        let timeout = o.duration("timeout")?.unwrap_or_default();
        let non_idempotent = o.bool("retryNonIdempotentMethod")?.unwrap_or(false);
        let no_network_retry = o.bool("disableRetryOnNetworkError")?.unwrap_or(false);
        if no_network_retry && status.is_empty() {
            return Err(o.err(
                "disableRetryOnNetworkError",
                "with network errors not retried, `status` must name what is",
            ));
        }
        let _ = o.raw("maxRequestBodyBytes");
        o.finish()?;
        Ok(Retry {
            attempts: attempts.min(100) as u32,
            initial,
            status,
            timeout,
            non_idempotent,
            no_network_retry,
        })
    }

    /// Whether an attempt's outcome calls for another one (the attempt count and the timeout aside).
    fn wants_retry(&self, r: &Res, method: &http::Method) -> bool {
        let allowed = self.non_idempotent || is_idempotent(method);
        if !self.no_network_retry && network_failed(r) {
            // A connect failure never reached the server: safe for any method.
            let never_sent = matches!(r, Err(ProxyError::Connect { .. }));
            return allowed || never_sent;
        }
        match r {
            Ok(resp) if allowed => {
                let code = resp.status().as_u16();
                self.status.iter().any(|(a, b)| (*a..=*b).contains(&code))
            }
            _ => false,
        }
    }

    /// The wait before attempt `n + 1` (n ≥ 1): `initialInterval × 2^(n-1)`, at most 30 s.
    pub fn backoff(&self, n: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(Duration::from_secs(30))
    }

    /// Wraps the rest of the chain.
    pub async fn wrap(&self, req: Req, cx: &Cx<'_>, rest: &[Arc<Middleware>]) -> Res {
        let Some(template) = clone_request(&req) else {
            return next(rest, req, cx).await;
        };
        let mut req = req;
        let mut attempt = 1;
        let start = tokio::time::Instant::now();
        loop {
            let r = next(rest, req, cx).await;
            let timed_out = !self.timeout.is_zero() && start.elapsed() >= self.timeout;
            if attempt >= self.attempts || timed_out || !self.wants_retry(&r, template.method()) {
                return r;
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
            req = match clone_request(&template) {
                Some(r) => r,
                None => return r,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_doubles() {
        let r = Retry::build(
            Opts::new("retry", &json!({"attempts": 4, "initialInterval": "50ms"})).expect("o"),
        )
        .expect("b");
        assert_eq!(r.backoff(1), Duration::from_millis(50));
        assert_eq!(r.backoff(2), Duration::from_millis(100));
        assert_eq!(r.backoff(3), Duration::from_millis(200));
        assert_eq!(r.backoff(40), Duration::from_secs(30));
        assert!(Retry::build(Opts::new("retry", &json!({})).expect("o")).is_err());
    }

    fn retry(v: serde_json::Value) -> Result<Retry, MiddlewareError> {
        Retry::build(Opts::new("retry", &v).expect("o"))
    }

    fn answer(code: u16) -> Res {
        let mut r = http::Response::new(crate::http::ProxyBody::empty());
        *r.status_mut() = http::StatusCode::from_u16(code).expect("code");
        Ok(r)
    }

    #[test]
    fn traefik_v36_options_decide_what_is_retried() {
        use http::Method;
        let r = retry(json!({"attempts": 3, "status": ["500-502", "504"], "timeout": "2s"}))
            .expect("b");
        assert_eq!(r.timeout, Duration::from_secs(2));
        assert!(r.wants_retry(&answer(502), &Method::GET));
        assert!(r.wants_retry(&answer(504), &Method::GET));
        assert!(!r.wants_retry(&answer(503), &Method::GET));
        assert!(!r.wants_retry(&answer(200), &Method::GET));
        // POST is not retried on a status unless asked.
        assert!(!r.wants_retry(&answer(502), &Method::POST));
        let r =
            retry(json!({"attempts": 3, "status": "500-599", "retryNonIdempotentMethod": true}))
                .expect("b");
        assert!(r.wants_retry(&answer(502), &Method::POST));
        // Network errors only when not disabled; a status list is then required.
        let lost = || -> Res {
            Err(ProxyError::Connect {
                server: "http://10.0.0.9:80".into(),
                cause: crate::http::error::ConnectCause::Refused,
            })
        };
        let plain = retry(json!({"attempts": 2})).expect("b");
        assert!(plain.wants_retry(&lost(), &Method::GET));
        // A refused connect never reached the server: any method goes again.
        assert!(plain.wants_retry(&lost(), &Method::POST));
        let lost = lost();
        let r = retry(json!({"attempts": 2, "status": "503", "disableRetryOnNetworkError": true}))
            .expect("b");
        assert!(!r.wants_retry(&lost, &Method::GET));
        assert!(retry(json!({"attempts": 2, "disableRetryOnNetworkError": true})).is_err());
        assert!(retry(json!({"attempts": 2, "status": ["5xx"]})).is_err());
        assert!(retry(json!({"attempts": 2, "maxRequestBodyBytes": 1024})).is_ok());
    }
}
