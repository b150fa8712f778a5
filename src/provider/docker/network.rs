//! Which network a container or task is reached on. Pure.
//!
//! Rules (Traefik's, plus one improvement): the network named by `traefik.<ns>.network` or the provider's
//! `network` (by name or ID; for stacks also `<stack>_<name>`, as Traefik does); never the Swarm `ingress`
//! network; without a choice, the only network; with several, the one shared with swarmgate itself
//! (Traefik picks an arbitrary one), else the first by name with a warning naming them all.

use std::collections::BTreeSet;

/// A network a workload is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Network name.
    pub name: String,
    /// Network ID.
    pub id: String,
    /// The Swarm routing-mesh network.
    pub ingress: bool,
}

/// The chosen network's index in `attached`, and a warning when the choice was a guess; `Err` when nothing
/// suitable is attached (the message names what was looked for and what exists).
pub fn choose(
    attached: &[Attachment],
    wanted: Option<&str>,
    stack: Option<&str>,
    ours: &BTreeSet<String>,
) -> Result<(usize, Option<String>), String> {
    let names = || {
        attached
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(w) = wanted.filter(|w| !w.is_empty()) {
        let prefixed = stack.map(|s| format!("{s}_{w}"));
        let found = attached
            .iter()
            .position(|a| a.name == w || a.id == w || (w.len() >= 12 && a.id.starts_with(w)))
            .or_else(|| {
                prefixed
                    .as_deref()
                    .and_then(|p| attached.iter().position(|a| a.name == p))
            });
        return match found.and_then(|i| Some((i, attached.get(i)?))) {
            Some((_, a)) if a.ingress => Err(format!(
                "network `{w}` is the Swarm ingress network, which cannot reach tasks"
            )),
            Some((i, _)) => Ok((i, None)),
            None => Err(format!(
                "network `{w}` is not attached (attached: {})",
                names()
            )),
        };
    }
    let mut candidates: Vec<(usize, &Attachment)> = attached
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.ingress)
        .collect();
    candidates.sort_by(|(_, a), (_, b)| a.name.cmp(&b.name));
    match candidates.as_slice() {
        [] => Err(format!(
            "no usable network (attached: {})",
            if attached.is_empty() {
                "none".into()
            } else {
                names()
            }
        )),
        [(only, _)] => Ok((*only, None)),
        [(first, first_net), ..] => {
            if let Some((i, _)) = candidates
                .iter()
                .find(|(_, a)| ours.contains(&a.name) || ours.contains(&a.id))
            {
                return Ok((*i, None));
            }
            let list = candidates
                .iter()
                .map(|(_, a)| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            Ok((
                *first,
                Some(format!("attached to several networks ({list}) and none is shared with swarmgate; using `{}` (set traefik.docker.network or the provider's network)", first_net.name)),
            ))
        }
    }
}

/// The error for an index [`choose`] returned that is not in its list (never expected: `choose` only returns
/// positions it found there).
#[must_use]
pub fn not_attached() -> String {
    "the chosen network is not attached".to_string()
}

/// Strips a CIDR suffix (`10.0.1.5/24` → `10.0.1.5`).
pub fn strip_prefix_len(addr: &str) -> &str {
    addr.split('/').next().unwrap_or(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &str, ingress: bool) -> Attachment {
        Attachment {
            name: name.into(),
            id: format!("id-{name}-0123456789"),
            ingress,
        }
    }

    #[test]
    fn rules() {
        let none = BTreeSet::new();
        let nets = [
            a("ingress", true),
            a("stack_back", false),
            a("traefik-net", false),
        ];
        assert_eq!(
            choose(&nets, Some("traefik-net"), None, &none),
            Ok((2, None))
        );
        assert_eq!(
            choose(&nets, Some("back"), Some("stack"), &none),
            Ok((1, None))
        );
        assert_eq!(
            choose(&nets, Some("id-stack_back-0123456789"), None, &none),
            Ok((1, None))
        );
        assert!(choose(&nets, Some("ingress"), None, &none)
            .unwrap_err()
            .contains("ingress"));
        assert!(choose(&nets, Some("nope"), None, &none)
            .unwrap_err()
            .contains("stack_back"));
        let ours: BTreeSet<String> = ["traefik-net".to_string()].into();
        assert_eq!(choose(&nets, None, None, &ours), Ok((2, None)));
        let (i, warn) = choose(&nets, None, None, &none).expect("guess");
        assert_eq!(i, 1);
        assert!(warn.is_some_and(|w| w.contains("stack_back, traefik-net")));
        assert_eq!(
            choose(&[a("ingress", true), a("x", false)], None, None, &none),
            Ok((1, None))
        );
        assert!(choose(&[a("ingress", true)], None, None, &none).is_err());
        assert_eq!(strip_prefix_len("10.0.1.5/24"), "10.0.1.5");
    }
}
