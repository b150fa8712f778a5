//! `inFlightReq`: at most `amount` requests in flight per source; more get 429. A slot is held until the
//! response body is finished or dropped (the chain attaches it to the body), as Traefik holds it until the
//! handler returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use http::{Response, StatusCode};

use super::opts::Opts;
use super::source_criterion::SourceCriterion;
use super::{text_response, Cx, MiddlewareError, Req};
use crate::http::body::ProxyBody;

type Counters = DashMap<String, Arc<AtomicU64>>;

/// A compiled in-flight limiter.
#[derive(Debug)]
pub struct InFlight {
    amount: u64,
    source: SourceCriterion,
    counters: Arc<Counters>,
}

/// One request's slot; released on drop.
#[derive(Debug)]
pub struct Slot {
    counter: Arc<AtomicU64>,
    key: String,
    counters: Arc<Counters>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.counter.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.counters
                .remove_if(&self.key, |_, c| c.load(Ordering::Acquire) == 0);
        }
    }
}

impl InFlight {
    /// Reads `amount` (required, > 0) and `sourceCriterion`.
    pub fn build(mut o: Opts<'_>) -> Result<InFlight, MiddlewareError> {
        let amount = o.u64("amount")?.unwrap_or(0);
        if amount == 0 {
            return Err(o.err("amount", "is required and must be positive"));
        }
        let source = SourceCriterion::from_parent(&mut o)?;
        o.finish()?;
        Ok(InFlight {
            amount,
            source,
            counters: Arc::new(DashMap::new()),
        })
    }

    /// Takes a slot for `key`, or None when `amount` are in flight.
    pub fn try_acquire(&self, key: String) -> Option<Slot> {
        let counter = self
            .counters
            .entry(key.clone())
            .or_insert_with(|| Arc::new(AtomicU64::new(0)))
            .clone();
        let mut cur = counter.load(Ordering::Acquire);
        loop {
            if cur >= self.amount {
                return None;
            }
            match counter.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    return Some(Slot {
                        counter,
                        key,
                        counters: self.counters.clone(),
                    })
                }
                Err(a) => cur = a,
            }
        }
    }

    /// Request step: a slot, or None when the source is at its limit.
    pub fn acquire(&self, req: &Req, cx: &Cx<'_>) -> Option<Slot> {
        self.try_acquire(self.source.key(req, cx))
    }

    /// The answer when no slot is free.
    pub fn rejection() -> Response<ProxyBody> {
        text_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slots_are_counted_and_released() {
        let f = InFlight::build(Opts::new("inFlightReq", &json!({"amount": 2})).expect("o"))
            .expect("b");
        let a = f.try_acquire("k".into()).expect("1");
        let b = f.try_acquire("k".into()).expect("2");
        assert!(f.try_acquire("k".into()).is_none());
        assert!(f.try_acquire("other".into()).is_some());
        drop(a);
        let c = f.try_acquire("k".into()).expect("again");
        drop((b, c));
        assert!(!f.counters.contains_key("k"), "idle sources are forgotten");
        assert!(InFlight::build(Opts::new("inFlightReq", &json!({})).expect("o")).is_err());
    }
}
