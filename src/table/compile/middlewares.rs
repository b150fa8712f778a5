//! Step "middlewares": builds every middleware once for the table (shared by `Arc` across the routes that
//! use it), checks that chains resolve, and lists the middlewares providers dropped. A middleware with an
//! invalid option is dropped (one line naming it and the option); the routers that use it are disabled
//! rather than served without it (it could be an auth middleware), as in Traefik.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::super::{ItemStatus, Status, TableStatus};
use super::services::Services;
use super::{BuildInput, Report};
use crate::dynamic;
use crate::middleware::{self, StatefulMiddlewares};

/// What building a middleware gave, for expanding router chains.
pub(super) enum MwState {
    Ready(Arc<middleware::Middleware>),
    Chain(Vec<String>),
    Broken(String),
}

/// Qualified middleware name → what it became in this build.
pub(super) type MwStates = HashMap<String, MwState>;

/// Deepest `chain` nesting followed (cycles are reported before this matters).
const MAX_CHAIN_DEPTH: usize = 16;

/// Builds every middleware of `items`, reusing the stateful ones of the previous build (`carried`) whose
/// name and configuration did not change; records them in `next`. Statuses and issues go to `report`.
pub(super) fn compile(
    items: &BTreeMap<String, (&str, &dynamic::Middleware)>,
    services: &Services<'_>,
    carried: &StatefulMiddlewares,
    next: &mut StatefulMiddlewares,
    report: &mut Report,
) -> MwStates {
    let mut states = MwStates::with_capacity(items.len());
    let service_index = |q: &str| services.usable(q);
    for (name, (provider, m)) in items {
        let cx = middleware::BuildCx {
            name,
            provider,
            service_index: &service_index,
        };
        let (state, st) = match carried.build(m, &cx, next) {
            Ok(middleware::Built::Ready(mw, warnings)) => {
                for w in &warnings {
                    report.issues.push(format!("middleware `{name}`: {w}"));
                }
                let st = if warnings.is_empty() {
                    Status::Enabled
                } else {
                    Status::Warning
                };
                (
                    MwState::Ready(mw),
                    ItemStatus::new(st, provider).with_errors(warnings),
                )
            }
            Ok(middleware::Built::Chain(names)) => (
                MwState::Chain(names),
                ItemStatus::new(Status::Enabled, provider),
            ),
            Err(e) => {
                let msg = e.to_string();
                report
                    .issues
                    .push(format!("middleware `{name}` disabled: {msg}"));
                let st = ItemStatus::new(Status::Disabled, provider).with_errors(vec![msg.clone()]);
                (MwState::Broken(msg), st)
            }
        };
        states.insert(name.clone(), state);
        report.status.middlewares.insert(name.clone(), st);
    }
    check_chains(&states, report);
    states
}

/// Chains are valid when every member (recursively) is; an invalid one is listed as disabled.
fn check_chains(states: &MwStates, report: &mut Report) {
    for (name, st) in report.status.middlewares.iter_mut() {
        if matches!(states.get(name), Some(MwState::Chain(_))) {
            if let Err(e) = expand(name, states, &mut Vec::new(), &mut Vec::new()) {
                report
                    .issues
                    .push(format!("middleware `{name}` disabled: {e}"));
                st.status = Status::Disabled;
                st.errors = vec![e];
            }
        }
    }
}

/// Items their provider dropped (invalid explicit configuration): listed as disabled with the provider's
/// error, never served; a dropped middleware is broken for the routers that use it. A valid item of the same
/// name (another workload's) wins.
pub(super) fn list_dropped(input: &BuildInput, status: &mut TableStatus, states: &mut MwStates) {
    for (provider, cfg) in &input.providers {
        for d in &cfg.dropped {
            let qualified = dynamic::qualify(&d.name, provider);
            if d.kind == dynamic::ItemKind::Middleware {
                states
                    .entry(qualified.clone())
                    .or_insert_with(|| MwState::Broken(d.error.clone()));
            }
            let map = match d.kind {
                dynamic::ItemKind::Router => &mut status.routers,
                dynamic::ItemKind::Service => &mut status.services,
                dynamic::ItemKind::Middleware => &mut status.middlewares,
                _ => continue,
            };
            let st = map
                .entry(qualified)
                .or_insert_with(|| ItemStatus::new(Status::Disabled, provider));
            if st.status == Status::Disabled && !st.errors.contains(&d.error) {
                st.errors.push(d.error.clone());
            }
        }
    }
}

/// Appends the steps of middleware `name` (qualified) to `out`, expanding chains; Err names what is wrong.
pub(super) fn expand(
    name: &str,
    states: &MwStates,
    stack: &mut Vec<String>,
    out: &mut Vec<Arc<middleware::Middleware>>,
) -> Result<(), String> {
    match states.get(name) {
        None => Err(format!("middleware `{name}` does not exist")),
        Some(MwState::Broken(e)) => Err(format!("middleware `{name}` is disabled: {e}")),
        Some(MwState::Ready(m)) => {
            out.push(m.clone());
            Ok(())
        }
        Some(MwState::Chain(members)) => {
            if stack.iter().any(|s| s == name) || stack.len() > MAX_CHAIN_DEPTH {
                return Err(format!(
                    "chain `{name}` refers to itself ({} → {name})",
                    stack.join(" → ")
                ));
            }
            stack.push(name.to_string());
            for m in members {
                if let Err(e) = expand(m, states, stack, out) {
                    stack.pop();
                    return Err(format!("chain `{name}`: {e}"));
                }
            }
            stack.pop();
            Ok(())
        }
    }
}
