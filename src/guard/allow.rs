//! The socket guard's allow-list: a pure function from (method, raw path) to a verdict, so the whole policy
//! is one table that unit tests read top to bottom.
//!
//! The path is judged as it arrived, before any decoding, and only a path in one plain spelling passes:
//! segments of `[A-Za-z0-9_.:@-]` (no `%`, so nothing decodes into something else), none empty (`//`), none
//! `.` or `..`, an optional API version prefix `/v1.NN`. What Docker would clean, decode or redirect is
//! refused here instead. The query string is not part of the decision (the engine routes on the path only).

/// What the guard does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it to the engine.
    Allow,
    /// Refuse with 403: the endpoint is not one swarmgate uses (or a write without the flag).
    Deny(&'static str),
}

/// Which writes the guard lets through besides the reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--allow-config-writes`: create, update and remove Swarm configs (the Swarm certificate store).
    pub config_writes: bool,
}

/// The verdict for `method` on `path` (the path part of the request target, without the query).
pub fn check(policy: Policy, method: &http::Method, path: &str) -> Verdict {
    let Some(segments) = segments(path) else {
        return Verdict::Deny(
            "the path is not in plain form (empty, `.`, `..`, `%` or an unusual character)",
        );
    };
    let segs: Vec<&str> = strip_version(segments);
    let read = method == http::Method::GET;
    let head = method == http::Method::HEAD;
    match (segs.as_slice(), read || head) {
        (["_ping"], true) => Verdict::Allow,
        (_, true) if head => Verdict::Deny("HEAD is allowed on /_ping only"),
        (["version" | "info" | "events"], true) => Verdict::Allow,
        (["services" | "tasks" | "nodes" | "networks" | "configs"], true) => Verdict::Allow,
        (["services" | "tasks" | "nodes" | "networks" | "configs", _id], true) => Verdict::Allow,
        (["containers", "json"], true) => Verdict::Allow,
        (["containers", _id, "json"], true) => Verdict::Allow,
        (["images", name @ .., "json"], true) if !name.is_empty() => Verdict::Allow,
        (["configs", "create"], false) | (["configs", _, "update"], false)
            if method == http::Method::POST =>
        {
            config_write(policy)
        }
        (["configs", _id], false) if method == http::Method::DELETE => config_write(policy),
        (_, true) => Verdict::Deny("not an endpoint swarmgate reads"),
        _ => Verdict::Deny("only reads are allowed (and config writes with --allow-config-writes)"),
    }
}

fn config_write(policy: Policy) -> Verdict {
    if policy.config_writes {
        Verdict::Allow
    } else {
        Verdict::Deny("config writes need --allow-config-writes")
    }
}

/// The path's segments when every one is plain; `None` when the path could mean something else once
/// decoded or cleaned.
fn segments(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() || path.len() > 1024 {
        return None;
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let plain = |s: &&str| {
        !s.is_empty()
            && *s != "."
            && *s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':' | b'@'))
    };
    segs.iter().all(plain).then_some(segs)
}

/// Drops a leading `v1.NN` segment (the API version prefix every client sends).
fn strip_version(segs: Vec<&str>) -> Vec<&str> {
    match segs.split_first() {
        Some((first, rest)) if is_version(first) && !rest.is_empty() => rest.to_vec(),
        _ => segs,
    }
}

fn is_version(s: &str) -> bool {
    let Some(v) = s.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = v.split_once('.') else {
        return false;
    };
    let digits = |d: &str| !d.is_empty() && d.len() <= 3 && d.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    const RO: Policy = Policy {
        config_writes: false,
    };
    const RW: Policy = Policy {
        config_writes: true,
    };

    /// (method, path, allowed read-only, allowed with --allow-config-writes)
    const TABLE: &[(&str, &str, bool, bool)] = &[
        // Every call swarmgate's Docker provider makes.
        ("GET", "/_ping", true, true),
        ("HEAD", "/_ping", true, true),
        ("GET", "/version", true, true),
        ("GET", "/v1.41/version", true, true),
        ("GET", "/v1.47/info", true, true),
        ("GET", "/v1.47/events", true, true),
        ("GET", "/v1.47/services", true, true),
        ("GET", "/v1.47/services/abc123", true, true),
        ("GET", "/v1.47/tasks", true, true),
        ("GET", "/v1.47/nodes", true, true),
        ("GET", "/v1.47/networks", true, true),
        ("GET", "/v1.47/networks/public", true, true),
        ("GET", "/v1.47/containers/json", true, true),
        ("GET", "/v1.47/containers/3f2a9c/json", true, true),
        ("GET", "/v1.47/images/sha256:abcd/json", true, true),
        ("GET", "/v1.47/images/library/nginx:1.27/json", true, true),
        ("GET", "/v1.47/configs", true, true),
        ("GET", "/v1.47/configs/sg-cert-1", true, true),
        // Config writes: only with the flag.
        ("POST", "/v1.47/configs/create", false, true),
        ("POST", "/v1.47/configs/abc/update", false, true),
        ("DELETE", "/v1.47/configs/abc", false, true),
        ("PUT", "/v1.47/configs/abc", false, false),
        ("DELETE", "/v1.47/configs", false, false),
        ("POST", "/v1.47/configs/abc", false, false),
        // What an attacker wants.
        ("POST", "/v1.47/containers/create", false, false),
        ("POST", "/containers/create", false, false),
        ("POST", "/v1.47/containers/abc/exec", false, false),
        ("POST", "/v1.47/exec/abc/start", false, false),
        ("POST", "/v1.47/containers/abc/start", false, false),
        ("DELETE", "/v1.47/containers/abc", false, false),
        ("GET", "/v1.47/secrets", false, false),
        ("GET", "/v1.47/secrets/abc", false, false),
        ("POST", "/v1.47/secrets/create", false, false),
        ("GET", "/v1.47/swarm", false, false),
        ("GET", "/v1.47/containers/abc/archive", false, false),
        ("GET", "/v1.47/containers/abc/logs", false, false),
        ("GET", "/v1.47/containers/abc/export", false, false),
        ("GET", "/v1.47/services/abc/logs", false, false),
        ("GET", "/v1.47/tasks/abc/logs", false, false),
        ("GET", "/v1.47/images/json", false, false),
        ("GET", "/v1.47/images/abc/get", false, false),
        ("POST", "/v1.47/images/create", false, false),
        ("POST", "/v1.47/services/create", false, false),
        ("POST", "/v1.47/services/abc/update", false, false),
        ("POST", "/v1.47/build", false, false),
        ("GET", "/v1.47/plugins", false, false),
        ("POST", "/v1.47/swarm/leave", false, false),
        ("GET", "/v1.47/session", false, false),
        ("HEAD", "/v1.47/containers/json", false, false),
        ("OPTIONS", "/v1.47/version", false, false),
        ("PATCH", "/v1.47/configs/abc", false, false),
        // Path tricks: never decoded, never cleaned, refused.
        ("POST", "/v1.41/../containers/create", false, false),
        ("GET", "/v1.41/../containers/json", false, false),
        ("GET", "/v1.41/./version", false, false),
        ("GET", "//version", false, false),
        ("GET", "/v1.41//version", false, false),
        ("GET", "/version/", false, false),
        ("GET", "/%76ersion", false, false),
        (
            "GET",
            "/v1.41/containers/..%2f..%2fsecrets/json",
            false,
            false,
        ),
        ("GET", "/v1.41/containers/%2e%2e/json", false, false),
        ("GET", "/v1.41/secrets%2fabc", false, false),
        ("GET", "/v1.41/configs/a b", false, false),
        ("GET", "/v1.41/configs/a\\b", false, false),
        ("GET", "/v1.41/containers/x;/json", false, false),
        ("GET", "", false, false),
        ("GET", "/", false, false),
        ("GET", "*", false, false),
        ("GET", "version", false, false),
        ("GET", "/v1.41", false, false),
        ("GET", "/v1.41/v1.41/version", false, false),
        ("GET", "/V1.41/version", false, false),
        ("GET", "/v1.41.1/version", false, false),
        (
            "POST",
            "/v1.41/configs/create/../../containers/create",
            false,
            false,
        ),
    ];

    #[test]
    fn the_allow_list() {
        for &(m, path, ro, rw) in TABLE {
            let method = Method::from_bytes(m.as_bytes()).expect("method");
            for (policy, want) in [(RO, ro), (RW, rw)] {
                let got = check(policy, &method, path);
                assert_eq!(
                    got == Verdict::Allow,
                    want,
                    "{m} {path:?} with {policy:?}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn refusals_say_why() {
        let Verdict::Deny(why) = check(RO, &Method::POST, "/v1.47/configs/create") else {
            panic!("allowed");
        };
        assert!(why.contains("--allow-config-writes"), "{why}");
        let Verdict::Deny(why) = check(RO, &Method::GET, "/v1.41/../x") else {
            panic!("allowed");
        };
        assert!(why.contains("plain"), "{why}");
    }
}
