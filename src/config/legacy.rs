//! Traefik v1 command-line flags, rewritten into their v2/v3 spelling before the flags are parsed.
//!
//! Old Swarm tutorials and stacks start Traefik v1 with `--docker --docker.swarmMode --docker.domain=traefik
//! --docker.watch --api` and `--entryPoints='Name:http Address::80'`. [`translate`] turns each such flag into
//! the modern flags (one v1 flag may become several), and returns one deprecation line per translated flag,
//! giving the modern spelling, for `config::load` to log. Flags that are already v2/v3 pass through untouched.
//!
//! `--api` means different things in v1 (serve the API and dashboard on entrypoint `traefik`, :8080) and v2
//! (enable the API, reachable through a router), so it is read as v1 only when another v1-only flag is
//! present. v1's defaults are applied in v1 mode: entrypoint `http` on :80 when no `--entryPoints` is
//! given, and `http` as the default entrypoint when no `--defaultEntryPoints` is. Pure.

/// Flags rewritten into v2/v3, and one deprecation line per v1 flag.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Translated {
    /// The flags to parse.
    pub flags: Vec<String>,
    /// `flag `--docker.domain=x` is Traefik v1; read as `--providers.docker.domain=x``, …
    pub deprecations: Vec<String>,
}

fn split(flag: &str) -> Option<(String, Option<String>)> {
    let body = flag.strip_prefix("--").or_else(|| flag.strip_prefix('-'))?;
    let (k, v) = match body.split_once('=') {
        Some((k, v)) => (k, Some(unquote(v).to_string())),
        None => (body, None),
    };
    Some((k.to_string(), v))
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['\'', '"'] {
        if let Some(inner) = v.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

fn is_v1_only(key: &str, value: Option<&str>) -> bool {
    let k = key.to_ascii_lowercase();
    k == "docker"
        || k.starts_with("docker.")
        || k == "defaultentrypoints"
        || k == "loglevel"
        || k == "constraints"
        || k == "web"
        || k == "accesslogsfile"
        || (k == "entrypoints" && value.is_some_and(|v| v.contains("Name:") || v.contains("name:")))
}

/// A v1 tag constraint (`tag==api`, `tag!=us-*`) as a v2 constraint expression on the `traefik.tags` label.
pub fn tag_constraint(c: &str) -> Result<String, String> {
    let c = unquote(c);
    let (neg, tag) = if let Some(t) = c.strip_prefix("tag==") {
        (false, t)
    } else if let Some(t) = c.strip_prefix("tag!=") {
        (true, t)
    } else {
        return Err(format!("`{c}`: expected `tag==value` or `tag!=value`"));
    };
    let glob = regex::escape(tag.trim())
        .replace("\\*", ".*")
        .replace("\\?", ".");
    let expr = format!("LabelRegex(`traefik.tags`, `(^|,)\\s*{glob}\\s*(,|$)`)");
    Ok(if neg { format!("!{expr}") } else { expr })
}

/// Rewrites v1 flags (see the module docs). Unknown `--entryPoints` fields are reported in the deprecation
/// line and ignored rather than failing start-up, as v1 tolerated them.
pub fn translate(flags: &[String]) -> Translated {
    let parsed: Vec<Option<(String, Option<String>)>> = flags.iter().map(|f| split(f)).collect();
    let v1 = parsed
        .iter()
        .flatten()
        .any(|(k, v)| is_v1_only(k, v.as_deref()));
    let mut out = Translated::default();
    if !v1 {
        out.flags = flags.to_vec();
        return out;
    }
    let mut seen = Seen::default();
    for (raw, p) in flags.iter().zip(parsed) {
        let Some((key, value)) = p else {
            out.flags.push(raw.clone());
            continue;
        };
        match translate_flag(raw, &key, value, &mut seen, &mut out.deprecations) {
            Flag::Keep => out.flags.push(raw.clone()),
            Flag::Handled => {}
            Flag::Modern(modern) => {
                out.deprecations.push(format!(
                    "flag `{raw}` is Traefik v1; read as `{}`",
                    if modern.is_empty() {
                        "(nothing)".to_string()
                    } else {
                        modern.join(" ")
                    }
                ));
                out.flags.extend(modern);
            }
        }
    }
    add_constraints(&seen.constraints, &mut out);
    add_v1_defaults(flags, &seen, &mut out);
    out
}

/// What the v1 flags seen so far imply for the defaults added after them.
#[derive(Default)]
struct Seen {
    entry_points: bool,
    default_entry_points: bool,
    api: bool,
    /// `--constraints` and `--docker.constraints` values, joined into one flag at the end.
    constraints: Vec<String>,
}

/// What became of one flag.
enum Flag {
    /// Not v1: passed through as written.
    Keep,
    /// Consumed; any deprecation line is already written.
    Handled,
    /// Replaced by these modern flags (a deprecation line names them).
    Modern(Vec<String>),
}

/// Translates one `--key[=value]` flag.
fn translate_flag(
    raw: &str,
    key: &str,
    value: Option<String>,
    seen: &mut Seen,
    deprecations: &mut Vec<String>,
) -> Flag {
    let k = key.to_ascii_lowercase();
    let bool_value = || value.clone().unwrap_or_else(|| "true".into());
    let list = || value.clone().unwrap_or_default();
    let mut modern: Vec<String> = Vec::new();
    if k == "docker" {
        if bool_value().eq_ignore_ascii_case("true") {
            modern.push("--providers.docker=true".into());
        }
    } else if let Some(rest) = key
        .strip_prefix("docker.")
        .or_else(|| key.strip_prefix("Docker."))
    {
        if rest.eq_ignore_ascii_case("constraints") {
            seen.constraints
                .extend(list().split(',').map(str::to_string));
        } else {
            modern.push(format!("--providers.docker.{rest}={}", bool_value()));
        }
    } else if k == "api" || k == "web" {
        if bool_value().eq_ignore_ascii_case("true") {
            seen.api = true;
            modern.push("--api.insecure=true".into());
            modern.push("--api.dashboard=true".into());
        }
    } else if k.starts_with("api.") || k.starts_with("web.") {
        let rest = key.get(4..).unwrap_or_default();
        if rest.eq_ignore_ascii_case("entrypoint") {
            seen.api = true;
            deprecations.push(format!(
                "flag `{raw}`: the API is served on entrypoint `traefik`"
            ));
            // Saw the API: the `traefik` entrypoint is added with the defaults at the end.
            return Flag::Handled;
        }
        modern.push(format!("--api.{rest}={}", bool_value()));
    } else if k == "entrypoints"
        && value
            .as_deref()
            .is_some_and(|v| v.contains("Name:") || v.contains("name:"))
    {
        seen.entry_points = true;
        return entry_points_flag(raw, value.as_deref().unwrap_or(""), deprecations);
    } else if k == "defaultentrypoints" {
        seen.default_entry_points = true;
        for ep in list().split(',').map(str::trim).filter(|e| !e.is_empty()) {
            modern.push(format!("--entrypoints.{ep}.asDefault=true"));
        }
    } else if k == "loglevel" {
        modern.push(format!("--log.level={}", list()));
    } else if k == "debug" {
        modern.push("--log.level=DEBUG".into());
    } else if k == "accesslogsfile" {
        modern.push(format!("--accesslog.filepath={}", list()));
    } else if k == "constraints" {
        seen.constraints
            .extend(list().split(',').map(str::to_string));
        return Flag::Handled;
    } else if k == "checknewversion" || k == "sendanonymoususage" {
        modern.push(format!("--global.{key}={}", bool_value()));
    } else {
        return Flag::Keep;
    }
    Flag::Modern(modern)
}

/// `--entryPoints='Name:http Address::80 …'`: the entrypoint's modern flags; settings v1 had and we do not
/// are reported, and an entrypoint that does not translate is reported and left out.
fn entry_points_flag(raw: &str, value: &str, deprecations: &mut Vec<String>) -> Flag {
    match entry_point(value) {
        Ok((flags, ignored)) => {
            if !ignored.is_empty() {
                deprecations.push(format!(
                    "flag `{raw}`: ignored v1 entrypoint settings: {}",
                    ignored.join(" ")
                ));
            }
            Flag::Modern(flags)
        }
        Err(e) => {
            deprecations.push(format!("flag `{raw}`: {e}; ignored"));
            Flag::Handled
        }
    }
}

/// v1 tag constraints, joined into one `--providers.docker.constraints` expression; a constraint that does
/// not translate is reported and left out.
fn add_constraints(constraints: &[String], out: &mut Translated) {
    let constraints: Vec<String> = constraints
        .iter()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    if constraints.is_empty() {
        return;
    }
    let mut exprs = Vec::new();
    for c in &constraints {
        match tag_constraint(c) {
            Ok(e) => exprs.push(e),
            Err(e) => out.deprecations.push(format!("constraint {e}; ignored")),
        }
    }
    if !exprs.is_empty() {
        let joined = exprs.join(" && ");
        out.deprecations.push(format!(
            "v1 constraints `{}` read as `--providers.docker.constraints={joined}`",
            constraints.join(",")
        ));
        out.flags
            .push(format!("--providers.docker.constraints={joined}"));
    }
}

/// v1's defaults: entrypoint `http` on :80 (and as the default entrypoint) unless entrypoints were given,
/// and entrypoint `traefik` on :8080 for the API.
fn add_v1_defaults(flags: &[String], seen: &Seen, out: &mut Translated) {
    if !seen.entry_points {
        out.flags.push("--entrypoints.http.address=:80".into());
        out.deprecations
            .push("Traefik v1 default: entrypoint `http` on :80".into());
    }
    if !seen.default_entry_points
        && out
            .flags
            .iter()
            .any(|f| f.starts_with("--entrypoints.http.address="))
    {
        out.flags.push("--entrypoints.http.asDefault=true".into());
    }
    if seen.api
        && !flags.iter().any(|f| {
            f.to_ascii_lowercase()
                .contains("entrypoints.traefik.address")
                || f.contains("Name:traefik")
        })
    {
        out.flags.push("--entrypoints.traefik.address=:8080".into());
    }
}

/// `Name:http Address::80 TLS Redirect.EntryPoint:https` → v2 flags, and the fields that were ignored.
fn entry_point(v: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let mut name = None;
    let mut address = None;
    let mut tls = false;
    let mut redirect = None;
    let mut ignored = Vec::new();
    for field in v.split_whitespace() {
        let (k, val) = field.split_once(':').unwrap_or((field, ""));
        match k.to_ascii_lowercase().as_str() {
            "name" => name = Some(val.to_string()),
            "address" => address = Some(val.to_string()),
            "tls" => {
                tls = true;
                if !val.is_empty() {
                    ignored.push(field.to_string());
                }
            }
            "redirect.entrypoint" => redirect = Some(val.to_string()),
            _ => ignored.push(field.to_string()),
        }
    }
    let name = name.filter(|n| !n.is_empty()).ok_or("no `Name:`")?;
    let address = address.filter(|a| !a.is_empty()).ok_or("no `Address:`")?;
    let mut flags = vec![format!("--entrypoints.{name}.address={address}")];
    if tls {
        flags.push(format!("--entrypoints.{name}.http.tls=true"));
    }
    if let Some(to) = redirect {
        flags.push(format!(
            "--entrypoints.{name}.http.redirections.entrypoint.to={to}"
        ));
        flags.push(format!(
            "--entrypoints.{name}.http.redirections.entrypoint.scheme=https"
        ));
    }
    Ok((flags, ignored))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(f: &[&str]) -> Translated {
        translate(&f.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_tutorial_flags() {
        let r = t(&[
            "--docker",
            "--docker.swarmMode",
            "--docker.domain=traefik",
            "--docker.watch",
            "--api",
        ]);
        assert_eq!(
            r.flags,
            [
                "--providers.docker=true",
                "--providers.docker.swarmMode=true",
                "--providers.docker.domain=traefik",
                "--providers.docker.watch=true",
                "--api.insecure=true",
                "--api.dashboard=true",
                "--entrypoints.http.address=:80",
                "--entrypoints.http.asDefault=true",
                "--entrypoints.traefik.address=:8080",
            ]
        );
        assert!(r
            .deprecations
            .iter()
            .any(|d| d.contains("`--docker.domain=traefik`")
                && d.contains("--providers.docker.domain=traefik")));
    }

    #[test]
    fn entry_points_defaults_log_constraints() {
        let r = t(&[
            "--docker",
            "--entryPoints='Name:http Address::80 Redirect.EntryPoint:https'",
            "--entryPoints=Name:https Address::443 TLS",
            "--defaultEntryPoints=http,https",
            "--logLevel=DEBUG",
            "--accessLog",
            "--constraints=tag==api",
        ]);
        for want in [
            "--entrypoints.http.address=:80",
            "--entrypoints.http.http.redirections.entrypoint.to=https",
            "--entrypoints.https.address=:443",
            "--entrypoints.https.http.tls=true",
            "--entrypoints.http.asDefault=true",
            "--entrypoints.https.asDefault=true",
            "--log.level=DEBUG",
            "--accessLog",
        ] {
            assert!(
                r.flags.iter().any(|f| f == want),
                "{want} missing from {:?}",
                r.flags
            );
        }
        assert!(
            !r.flags.iter().any(|f| f.contains("traefik.address")),
            "no --api, no traefik entrypoint"
        );
        let c = r
            .flags
            .iter()
            .find(|f| f.starts_with("--providers.docker.constraints="))
            .expect("constraints");
        let expr = c.trim_start_matches("--providers.docker.constraints=");
        let parsed = crate::provider::docker::constraints::Constraint::parse(expr).expect("parses");
        let labels = |v: &str| {
            [("traefik.tags".to_string(), v.to_string())]
                .into_iter()
                .collect()
        };
        assert!(parsed.matches(&labels("web, api")));
        assert!(!parsed.matches(&labels("apis")));
    }

    #[test]
    fn modern_flags_pass_through_and_v2_api_is_not_v1() {
        let f = [
            "--api",
            "--providers.docker=true",
            "--entrypoints.web.address=:80",
        ];
        let r = t(&f);
        assert_eq!(r.flags, f);
        assert!(r.deprecations.is_empty());
    }

    #[test]
    fn negative_and_glob_tags() {
        assert_eq!(
            tag_constraint("tag!=us-*").expect("ok"),
            "!LabelRegex(`traefik.tags`, `(^|,)\\s*us\\-.*\\s*(,|$)`)"
        );
        assert!(tag_constraint("name==x").is_err());
    }

    #[test]
    fn loads_into_static_config() {
        let flags: Vec<String> = [
            "--docker",
            "--docker.swarmMode",
            "--docker.domain=traefik",
            "--docker.watch",
            "--api",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let l = crate::config::load(&flags, &[]).expect("load");
        let d = l.config.providers.docker.as_ref().expect("docker");
        assert!(d.swarm_mode && d.watch);
        assert_eq!(d.domain.as_deref(), Some("traefik"));
        assert_eq!(l.config.entry_points["http"].address, ":80");
        assert!(l.config.entry_points["http"].as_default);
        assert_eq!(l.config.entry_points["traefik"].address, ":8080");
        assert!(l.warnings.iter().any(|w| w.contains("Traefik v1")));
    }
}
