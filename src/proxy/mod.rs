//! The hot path: accepting connections, routing, picking and forwarding requests.
//!
//! Nothing here decides anything the table builder could have decided: the handler reads the current
//! [`crate::table::RoutingTable`], never changes it, takes no lock and does not log per request.

pub mod body;
pub mod deadline;
pub mod error;
pub mod forward;
pub mod handler;
pub mod health_check;
pub mod listener;
pub mod pool;
pub mod workers;
