//! The pooled client that talks to backends: per-worker keep-alive pools ([`pool`]) and the transport
//! settings they are built from ([`transport`]).
//!
//! Below the proxy and the middlewares: the handler forwards through it and `forwardAuth` asks its auth
//! server through it, so neither reaches into the other. It speaks the request path's vocabulary
//! ([`crate::http`]) and knows servers by their compiled form ([`crate::balance::ServerRuntime`]).

pub mod pool;
pub mod transport;
