//! The configuration vocabulary shared by the static (`config`) and the dynamic (`dynamic`)
//! configuration: the tree every source is read into ([`node`]), its serde decoder,
//! and the value types both models use ([`duration`]).
//!
//! It sits below both so that imports point one way: `config` and `dynamic` name `value`, never the other
//! way round, and `config` may name `dynamic` (entrypoint TLS domains) without a cycle. It does no I/O.

pub mod duration;
pub mod node;

pub use duration::{parse_go_duration, GoDuration};
