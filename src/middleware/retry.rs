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
    /// Reads `attempts` (required, > 0) and `initialInterval` (default 100ms).
    pub fn build(mut o: Opts<'_>) -> Result<Retry, MiddlewareError> {
        let attempts = o.u64("attempts")?.unwrap_or(0);
        if attempts == 0 {
            return Err(o.err("attempts", "is required and must be positive"));
        }
        let initial = o
            .duration("initialInterval")?
            .unwrap_or(Duration::from_millis(100));
        o.finish()?;
        Ok(Retry {
            attempts: attempts.min(100) as u32,
            initial,
        })
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
        loop {
            let r = next(rest, req, cx).await;
            if attempt >= self.attempts || !network_failed(&r) {
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
}
