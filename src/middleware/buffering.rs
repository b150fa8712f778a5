//! `buffering`: read the whole request body before forwarding (rejecting bodies over `maxRequestBodyBytes`
//! with 413), optionally the whole response (over `maxResponseBodyBytes` → 500), and send the request again
//! while `retryExpression` holds.
//!
//! Differences from Traefik: bodies are kept in memory up to the maximum (Traefik spools what exceeds
//! `memRequestBodyBytes` to a temporary file); the `mem*` options are accepted and validated.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{header, Response, StatusCode};
use http_body_util::BodyExt;

use super::circuit_breaker::{Expr, Vocabulary};
use super::opts::Opts;
use super::retry::network_failed;
use super::{clone_request, next, text_response, Cx, Middleware, MiddlewareError, Req, Res};
use crate::http::body::{ClientBody, ProxyBody};
use crate::http::error::ProxyError;

/// A compiled buffering middleware.
#[derive(Debug)]
pub struct Buffering {
    max_request: u64,
    max_response: u64,
    retry: Option<Expr>,
}

impl Buffering {
    /// Reads `maxRequestBodyBytes`, `memRequestBodyBytes`, `maxResponseBodyBytes`, `memResponseBodyBytes`,
    /// `retryExpression` (`IsNetworkError()`, `Attempts()`, `ResponseCode()`, `&&`, `||`, `!`).
    pub fn build(mut o: Opts<'_>) -> Result<Buffering, MiddlewareError> {
        let max_request = o.u64("maxRequestBodyBytes")?.unwrap_or(0);
        let _mem_req = o.u64("memRequestBodyBytes")?;
        let max_response = o.u64("maxResponseBodyBytes")?.unwrap_or(0);
        let _mem_resp = o.u64("memResponseBodyBytes")?;
        let retry = match o
            .string("retryExpression")?
            .filter(|s| !s.trim().is_empty())
        {
            Some(e) => Some(
                Expr::parse(&e, Vocabulary::Retry)
                    .map_err(|m| o.err("retryExpression", format!("`{e}`: {m}")))?,
            ),
            None => None,
        };
        o.finish()?;
        Ok(Buffering {
            max_request,
            max_response,
            retry,
        })
    }

    async fn read_request(&self, req: Req) -> Result<Req, ProxyError> {
        let (parts, body) = req.into_parts();
        let bytes = match body {
            ClientBody::Buffered(b) => b,
            ClientBody::Incoming(mut b) => {
                if self.max_request > 0 {
                    let declared = parts
                        .headers
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    if declared.is_some_and(|n| n > self.max_request) {
                        return Err(ProxyError::PayloadTooLarge);
                    }
                }
                let mut buf = BytesMut::new();
                while let Some(frame) = b.frame().await {
                    let frame = frame.map_err(ProxyError::from_body)?;
                    if let Ok(d) = frame.into_data() {
                        buf.extend_from_slice(&d);
                        if self.max_request > 0 && buf.len() as u64 > self.max_request {
                            return Err(ProxyError::PayloadTooLarge);
                        }
                    }
                }
                buf.freeze()
            }
        };
        Ok(Req::from_parts(parts, ClientBody::Buffered(bytes)))
    }

    async fn read_response(&self, resp: Response<ProxyBody>) -> Res {
        let (parts, mut body) = resp.into_parts();
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Ok(text_response(StatusCode::BAD_GATEWAY, "Bad Gateway\n"));
            };
            if let Ok(d) = frame.into_data() {
                buf.extend_from_slice(&d);
                if buf.len() as u64 > self.max_response {
                    return Ok(text_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error\n",
                    ));
                }
            }
        }
        let body: Bytes = buf.freeze();
        Ok(Response::from_parts(parts, ProxyBody::full(body)))
    }

    /// Wraps the rest of the chain.
    pub async fn wrap(&self, req: Req, cx: &Cx<'_>, rest: &[Arc<Middleware>]) -> Res {
        let req = self.read_request(req).await?;
        let mut attempt = 1u64;
        let resp = loop {
            let Some(attempt_req) = clone_request(&req) else {
                break next(rest, req, cx).await;
            };
            let r = next(rest, attempt_req, cx).await;
            let again = self.retry.as_ref().is_some_and(|e| {
                let code = match &r {
                    Ok(resp) => resp.status().as_u16(),
                    Err(e) => e.status().as_u16(),
                };
                e.eval_retry(attempt, code, network_failed(&r))
            });
            if !again || attempt >= 100 {
                break r;
            }
            attempt += 1;
        };
        match resp {
            Ok(r) if self.max_response > 0 => self.read_response(r).await,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options() {
        let b = Buffering::build(
            Opts::new("buffering", &json!({"maxRequestBodyBytes": 10, "retryExpression": "IsNetworkError() && Attempts() < 2"}))
                .expect("o"),
        )
        .expect("b");
        let e = b.retry.as_ref().expect("expr");
        assert!(e.eval_retry(1, 502, true));
        assert!(!e.eval_retry(2, 502, true));
        assert!(!e.eval_retry(1, 200, false));
        let err = Buffering::build(
            Opts::new("buffering", &json!({"retryExpression": "Foo()"})).expect("o"),
        )
        .expect_err("bad");
        assert_eq!(err.option, "buffering.retryExpression");
    }
}
