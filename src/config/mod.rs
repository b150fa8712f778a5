//! Static configuration: where it is read from, and the validated form the rest of the program uses.
//!
//! Source selection follows Traefik exactly, so that an existing deployment behaves the same: a configuration
//! file (`--configfile`, or `traefik.{yml,yaml,toml}` in `/etc/traefik/`, `$XDG_CONFIG_HOME/`, `$HOME/.config/`
//! or the working directory) wins and other flags are ignored (with a warning listing them); otherwise flags;
//! otherwise `TRAEFIK_*` environment variables. Errors name the full key, its source and the nearest known key.

pub mod known;
pub mod legacy;
pub mod sources;
pub mod types;

/// The configuration tree and its decoder live in [`crate::value::node`] (shared with `dynamic`); re-exported
/// under the old path for the readers of static configuration.
pub use crate::value::node;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

pub use types::StaticConfig;

use crate::value::node::{decode, DecodeError, Node};
use sources::SourceError;

/// Why the static configuration could not be loaded. Every variant names the offending input.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be parsed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A key or value is wrong.
    #[error("static configuration: {0}")]
    Decode(#[from] DecodeError),
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A value decoded but makes no sense (bad address, unknown entrypoint reference, …).
    #[error("static configuration: {key}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// The loaded configuration and what the user should be told about how it was loaded.
#[derive(Debug)]
pub struct Loaded {
    /// The typed configuration.
    pub config: StaticConfig,
    /// Where it came from (`file /etc/traefik/traefik.yml`, `flags`, `environment`, `defaults`).
    pub origin: String,
    /// Warnings to log once logging is up (ignored flags, accepted-but-unsupported sections).
    pub warnings: Vec<String>,
}

const DEFAULT_FILE_NAMES: &[&str] = &["traefik.yml", "traefik.yaml", "traefik.toml"];

/// Loads the static configuration from flags (without the program name), the environment and files.
///
/// Pure apart from reading the chosen file and probing the default locations.
pub fn load(flags: &[String], env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    // Traefik v1 flags (`--docker`, `--entryPoints='Name:http Address::80'`, …) → their v2/v3 spelling.
    let translated = legacy::translate(flags);
    warnings.extend(translated.deprecations);
    let mut flag_tree = sources::from_flags(&translated.flags)?;
    let configfile = flag_tree
        .remove("configfile")
        .and_then(|n| n.as_str().map(str::to_string));
    let env_lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let file = match configfile {
        Some(path) => Some(PathBuf::from(path)),
        None => default_file(&env_lookup),
    };
    let (tree, origin) = if let Some(path) = file {
        let text = sources::read_text(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        if !flag_tree.is_empty_map() {
            warnings.push(format!(
                "the configuration file {} is used, so the other command-line flags are ignored (as Traefik does)",
                path.display()
            ));
        }
        let display = path.display().to_string();
        (
            sources::from_file_text(&text, &display)?,
            format!("file {display}"),
        )
    } else if !flag_tree.is_empty_map() {
        (flag_tree, "flags".to_string())
    } else {
        let env_tree = sources::from_env(env.iter().map(|(k, v)| (k, v)), "TRAEFIK_")?;
        if env_tree.is_empty_map() {
            (env_tree, "defaults".to_string())
        } else {
            (env_tree, "environment".to_string())
        }
    };
    let config = decode_static(tree, &mut warnings)?;
    warnings.extend(unsupported_warnings(&config));
    validate(&config)?;
    Ok(Loaded {
        config,
        origin,
        warnings,
    })
}

/// Decodes the tree, dropping each key Traefik knows but swarmgate does not implement (one warning each, see
/// [`known`]); a key nobody knows, or one whose value cannot safely be ignored, stops start-up.
fn decode_static(mut tree: Node, warnings: &mut Vec<String>) -> Result<StaticConfig, ConfigError> {
    loop {
        let e = match decode::<StaticConfig>(&tree, "") {
            Ok(config) => return Ok(config),
            Err(e) if e.is_unknown_key() => e,
            Err(e) => return Err(e.into()),
        };
        let verdict = match known::remove_path(&mut tree, &e.key) {
            Some(node) => known::judge(&e.key, &node),
            // Not found again in the tree: never loop, report the decoder's error.
            None => return Err(e.into()),
        };
        match verdict {
            known::Verdict::Ignore { versions } => warnings.push(format!(
                "`{}` (from {}) is a Traefik {versions} option swarmgate does not implement; it is ignored",
                e.key, e.origin
            )),
            known::Verdict::Refuse { reason } => {
                return Err(ConfigError::Invalid {
                    key: e.key,
                    reason: format!(
                        "a Traefik option swarmgate does not implement, and it cannot be ignored safely: {reason}"
                    ),
                })
            }
            known::Verdict::Unknown { path } if path.eq_ignore_ascii_case(&e.key) => {
                return Err(e.into())
            }
            known::Verdict::Unknown { path } => {
                return Err(ConfigError::Invalid {
                    key: path,
                    // The decoder's message names the nearest key where one is close.
                    reason: format!(
                        "{} (neither swarmgate nor Traefik has it; from {})",
                        e.message, e.origin
                    ),
                })
            }
        }
    }
}

fn default_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let mut dirs = vec![PathBuf::from("/etc/traefik")];
    if let Some(x) = env("XDG_CONFIG_HOME") {
        dirs.push(PathBuf::from(x));
    }
    if let Some(h) = env("HOME") {
        dirs.push(Path::new(&h).join(".config"));
    }
    dirs.push(PathBuf::from("."));
    dirs.iter()
        .flat_map(|d| DEFAULT_FILE_NAMES.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

fn unsupported_warnings(c: &StaticConfig) -> Vec<String> {
    let mut w = Vec::new();
    let mut note = |present: bool, what: &str| {
        if present {
            w.push(format!(
                "`{what}` is accepted for compatibility but not supported; it has no effect"
            ));
        }
    };
    note(c.tracing.is_some(), "tracing");
    note(c.experimental.is_some(), "experimental");
    note(c.providers.rest.is_some(), "providers.rest");
    note(c.providers.http.is_some(), "providers.http");
    note(c.providers.plugin.is_some(), "providers.plugin");
    w
}

fn validate(c: &StaticConfig) -> Result<(), ConfigError> {
    for (name, ep) in &c.entry_points {
        parse_address(&ep.address).map_err(|reason| ConfigError::Invalid {
            key: format!("entryPoints.{name}.address"),
            reason,
        })?;
        if let Some(redir) = ep
            .http
            .redirections
            .as_ref()
            .and_then(|r| r.entry_point.as_ref())
        {
            let to = redir.to.trim_start_matches(':');
            if redir.to.is_empty()
                || !(c.entry_points.contains_key(&redir.to) || to.parse::<u16>().is_ok())
            {
                return Err(ConfigError::Invalid {
                    key: format!("entryPoints.{name}.http.redirections.entryPoint.to"),
                    reason: format!(
                        "`{}` is neither an entrypoint ({}) nor `:port`",
                        redir.to,
                        c.entry_points
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
    }
    for (name, ep) in &c.entry_points {
        if let Some(s) = &ep.http.underscore_headers_strategy {
            s.parse::<crate::http::underscore::UnderscoreHeaders>()
                .map_err(|reason| ConfigError::Invalid {
                    key: format!("entryPoints.{name}.http.underscoreHeadersStrategy"),
                    reason,
                })?;
        }
    }
    if let Some(syntax) = &c.core.default_rule_syntax {
        syntax
            .parse::<crate::rule::Syntax>()
            .map_err(|_| ConfigError::Invalid {
                key: "core.defaultRuleSyntax".into(),
                reason: format!("`{syntax}` is not v2 or v3"),
            })?;
    }
    Ok(())
}

/// The transport an entrypoint listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TCP (HTTP, TLS).
    Tcp,
    /// UDP (served by `proxy::udp`).
    Udp,
}

/// Parses Traefik's entrypoint address: `:80`, `0.0.0.0:80`, `[::1]:443`, `:53/udp`.
///
/// An empty host means every interface (IPv4 here; use `[::]:80` for IPv6).
pub fn parse_address(address: &str) -> Result<(SocketAddr, Protocol), String> {
    let (addr, proto) = match address.rsplit_once('/') {
        Some((a, p)) if p.eq_ignore_ascii_case("tcp") => (a, Protocol::Tcp),
        Some((a, p)) if p.eq_ignore_ascii_case("udp") => (a, Protocol::Udp),
        Some((_, p)) => {
            return Err(format!(
                "unknown protocol `{p}` in `{address}` (tcp or udp)"
            ))
        }
        None => (address, Protocol::Tcp),
    };
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{address}` has no port (expected `[host]:port`)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` in `{address}` is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host.is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        host.parse::<IpAddr>().map_err(|_| {
            format!("`{host}` in `{address}` is not an IP address (host names are not resolved)")
        })?
    };
    Ok((SocketAddr::new(ip, port), proto))
}

/// Parses a rule-syntax setting, defaulting to v3.
pub fn default_rule_syntax(c: &StaticConfig) -> crate::rule::Syntax {
    c.core
        .default_rule_syntax
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default()
}

/// Re-export for callers that build trees by hand (tests, the Docker provider).
pub type ConfigNode = Node;

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_build_entrypoints_and_file_provider() {
        let l = load(
            &flags(&[
                "--entrypoints.web.address=:8080",
                "--providers.file.filename=config/demo.yml",
                "--providers.file.watch=true",
                "--entryPoints.web.transport.lifeCycle.graceTimeOut=3s",
            ]),
            &[],
        )
        .expect("load");
        assert_eq!(l.origin, "flags");
        let ep = &l.config.entry_points["web"];
        assert_eq!(ep.address, ":8080");
        assert_eq!(ep.transport.life_cycle.grace_time_out.0.as_secs(), 3);
        let file = l.config.providers.file.as_ref().expect("file");
        assert!(file.watch);
    }

    #[test]
    fn env_is_used_without_flags() {
        let env = vec![(
            "TRAEFIK_ENTRYPOINTS_WEB_ADDRESS".to_string(),
            ":81".to_string(),
        )];
        let l = load(&[], &env).expect("load");
        assert_eq!(l.origin, "environment");
        assert_eq!(l.config.entry_points["web"].address, ":81");
    }

    #[test]
    fn unknown_flag_is_named_with_suggestion() {
        let e = load(&flags(&["--entrypoints.web.adress=:80"]), &[]).expect_err("unknown");
        let msg = e.to_string();
        assert!(msg.contains("entryPoints.web.adress"), "{msg}");
        assert!(msg.contains("--entrypoints.web.adress=:80"), "{msg}");
        assert!(msg.contains("entryPoints.web.address"), "{msg}");
    }

    #[test]
    fn config_file_wins_and_reports_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("traefik.yml");
        std::fs::write(
            &p,
            "entryPoints:\n  web:\n    address: \":80\"\n    adress: x\n",
        )
        .expect("write");
        let e =
            load(&flags(&[&format!("--configfile={}", p.display())]), &[]).expect_err("bad key");
        let msg = e.to_string();
        assert!(msg.contains(":4:"), "{msg}");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address(":80").map(|a| a.0.port()), Ok(80));
        assert_eq!(
            parse_address("[::1]:443").map(|a| a.0.ip()),
            Ok("::1".parse::<IpAddr>().expect("ip"))
        );
        assert_eq!(parse_address(":53/udp").map(|a| a.1), Ok(Protocol::Udp));
        assert!(parse_address("80").is_err());
        assert!(parse_address("example.com:80").is_err());
        assert!(parse_address(":http").is_err());
    }

    #[test]
    fn bad_redirect_target_is_rejected() {
        let e = load(
            &flags(&[
                "--entrypoints.web.address=:80",
                "--entrypoints.web.http.redirections.entrypoint.to=websecure",
            ]),
            &[],
        )
        .expect_err("missing target");
        assert!(e.to_string().contains("websecure"));
    }
}
