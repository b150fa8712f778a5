//! Picking the server for a request: sticky cookie first, then weighted round robin, following weighted
//! services down to a load balancer. Pure over the compiled services and the current time: atomics only, no
//! lock, no allocation (the `Set-Cookie` values to send are noted in a fixed array).

use http::header::{HeaderMap, HeaderValue};

use super::service::{LoadBalancerRuntime, ServiceKind, ServiceRuntime};
use super::sticky::find_cookie;
use crate::http::error::ProxyError;

/// Deepest nesting of weighted services followed at pick time (cycles are rejected at build time).
pub const MAX_SERVICE_DEPTH: usize = 8;

/// Set-Cookie values chosen while picking (a weighted service and its child may each set one).
#[derive(Default)]
pub struct Cookies<'t> {
    values: [Option<&'t HeaderValue>; MAX_SERVICE_DEPTH + 1],
    len: usize,
}

impl<'t> Cookies<'t> {
    /// The values noted, in pick order (a weighted service's before its child's).
    pub fn iter(&self) -> impl Iterator<Item = &'t HeaderValue> + '_ {
        self.values.iter().take(self.len).flatten().copied()
    }

    /// Notes a `Set-Cookie` value to add to the response.
    pub fn push(&mut self, v: &'t HeaderValue) {
        if let Some(slot) = self.values.get_mut(self.len) {
            *slot = Some(v);
            self.len += 1;
        }
    }
}

/// Whether any server of a service is up (for picking children of weighted services).
pub fn service_up(services: &[ServiceRuntime], svc: usize, now: u64, depth: usize) -> bool {
    if depth > MAX_SERVICE_DEPTH {
        return false;
    }
    match services.get(svc).map(|s| &s.kind) {
        Some(ServiceKind::LoadBalancer(lb)) => lb.servers.iter().any(|s| s.health.is_up(now)),
        Some(ServiceKind::Weighted(w)) => w
            .children
            .iter()
            .any(|&c| service_up(services, c, now, depth + 1)),
        Some(ServiceKind::Internal(_)) | None => false,
    }
}

/// Picks a server: sticky cookie first (if it points at a server that is up), else weighted round robin.
/// Passive "down" marks are ignored when every server carries one, so that a brief outage does not turn
/// into 503s for the whole window.
pub fn pick<'t>(
    services: &'t [ServiceRuntime],
    svc: usize,
    headers: &HeaderMap,
    now: u64,
    cookies: &mut Cookies<'t>,
    depth: usize,
) -> Result<(&'t LoadBalancerRuntime, usize), ProxyError> {
    if depth > MAX_SERVICE_DEPTH {
        return Err(ProxyError::NoHealthyServer);
    }
    match services.get(svc).map(|s| &s.kind) {
        Some(ServiceKind::LoadBalancer(lb)) => {
            if let Some(st) = &lb.sticky {
                if let Some((i, rewrite)) =
                    find_cookie(headers, &st.spec.name).and_then(|v| st.table.lookup(v))
                {
                    if lb.servers.get(i).is_some_and(|s| s.health.is_up(now)) {
                        if rewrite {
                            push_cookie(cookies, &st.set_cookie, i);
                        }
                        return Ok((lb, i));
                    }
                }
            }
            let i = lb
                .wrr
                .pick(|i| lb.servers.get(i).is_some_and(|s| s.health.is_up(now)))
                .or_else(|| {
                    lb.wrr
                        .pick(|i| lb.servers.get(i).is_some_and(|s| s.health.active_up()))
                })
                .ok_or(ProxyError::NoHealthyServer)?;
            if let Some(st) = &lb.sticky {
                push_cookie(cookies, &st.set_cookie, i);
            }
            Ok((lb, i))
        }
        Some(ServiceKind::Weighted(w)) => {
            if let Some(st) = &w.sticky {
                if let Some((i, rewrite)) =
                    find_cookie(headers, &st.spec.name).and_then(|v| st.table.lookup(v))
                {
                    if let Some(&child) = w.children.get(i) {
                        if service_up(services, child, now, depth + 1) {
                            if rewrite {
                                push_cookie(cookies, &st.set_cookie, i);
                            }
                            return pick(services, child, headers, now, cookies, depth + 1);
                        }
                    }
                }
            }
            let (i, child) = w
                .wrr
                .pick(|i| {
                    w.children
                        .get(i)
                        .is_some_and(|&c| service_up(services, c, now, depth + 1))
                })
                .and_then(|i| w.children.get(i).map(|&c| (i, c)))
                .ok_or(ProxyError::NoHealthyServer)?;
            if let Some(st) = &w.sticky {
                push_cookie(cookies, &st.set_cookie, i);
            }
            pick(services, child, headers, now, cookies, depth + 1)
        }
        // Internal services are not balanced (a weighted service cannot point at one).
        Some(ServiceKind::Internal(_)) | None => Err(ProxyError::NoHealthyServer),
    }
}

/// Notes the `Set-Cookie` value of server or child `i`. The values are built with one per server (or child)
/// at compile time, so `i` is always in range; an out-of-range index sends no cookie rather than panicking.
fn push_cookie<'t>(cookies: &mut Cookies<'t>, set_cookie: &'t [HeaderValue], i: usize) {
    if let Some(v) = set_cookie.get(i) {
        cookies.push(v);
    }
}
