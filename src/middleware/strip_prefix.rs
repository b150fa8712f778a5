//! `stripPrefix` and `stripPrefixRegex`: remove a leading part of the path before forwarding and tell the
//! backend what was removed in `X-Forwarded-Prefix` (as Traefik does).
//!
//! Works on the raw (percent-encoded) path, so what the backend receives is what the client sent minus the
//! prefix.

use http::HeaderValue;
use regex::Regex;

use super::opts::Opts;
use super::{ensure_leading_slash, set_path, Flow, MiddlewareError, Req};

/// `X-Forwarded-Prefix`.
pub const FORWARDED_PREFIX: &str = "x-forwarded-prefix";

/// What to strip.
#[derive(Debug)]
enum Kind {
    Prefixes {
        prefixes: Vec<String>,
        force_slash: bool,
    },
    Regex(Vec<Regex>),
}

/// A compiled strip-prefix middleware.
#[derive(Debug)]
pub struct StripPrefix {
    kind: Kind,
}

impl StripPrefix {
    /// `stripPrefix`: `prefixes`, `forceSlash` (default true, deprecated in Traefik v3 but still honoured).
    pub fn prefixes(mut o: Opts<'_>) -> Result<StripPrefix, MiddlewareError> {
        let prefixes: Vec<String> = o
            .strings("prefixes")?
            .into_iter()
            .map(|p| p.trim().to_string())
            .collect();
        let force_slash = o.bool("forceSlash")?.unwrap_or(true);
        o.finish()?;
        Ok(StripPrefix {
            kind: Kind::Prefixes {
                prefixes,
                force_slash,
            },
        })
    }

    /// `stripPrefixRegex`: `regex` (each anchored at the start of the path, as Traefik compiles `^` + regex).
    pub fn regex(mut o: Opts<'_>) -> Result<StripPrefix, MiddlewareError> {
        let mut res = Vec::new();
        for (i, r) in o.strings("regex")?.into_iter().enumerate() {
            let re = Regex::new(&format!("^{}", r.trim())).map_err(|e| {
                o.err(
                    &format!("regex[{i}]"),
                    format!("`{r}` is not a valid regular expression: {e}"),
                )
            })?;
            res.push(re);
        }
        o.finish()?;
        Ok(StripPrefix {
            kind: Kind::Regex(res),
        })
    }

    /// The new path and the stripped prefix, or None when nothing matches.
    pub fn strip(&self, path: &str) -> Option<(String, String)> {
        match &self.kind {
            Kind::Prefixes {
                prefixes,
                force_slash,
            } => {
                let p = prefixes.iter().find(|p| path.starts_with(p.as_str()))?;
                let rest = &path[p.len()..];
                let new = if *force_slash {
                    format!("/{}", rest.trim_start_matches('/'))
                } else {
                    ensure_leading_slash(rest)
                };
                Some((new, p.clone()))
            }
            Kind::Regex(res) => res.iter().find_map(|re| {
                let m = re.find(path)?;
                if m.as_str().is_empty() {
                    return None;
                }
                let prefix = m.as_str().to_string();
                Some((ensure_leading_slash(&path[m.end()..]), prefix))
            }),
        }
    }

    /// Request step.
    pub fn on_request(&self, req: &mut Req) -> Flow {
        if let Some((path, prefix)) = self.strip(req.uri().path()) {
            let path = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            if set_path(req, &path) {
                if let Ok(v) = HeaderValue::from_str(&prefix) {
                    req.headers_mut().append(FORWARDED_PREFIX, v);
                }
            }
        }
        Flow::Next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prefixes_as_traefik() {
        let s = |v| StripPrefix::prefixes(Opts::new("stripPrefix", &v).expect("o")).expect("b");
        let cases = [
            (
                json!({"prefixes": ["/api"]}),
                "/api/users",
                Some(("/users", "/api")),
            ),
            (json!({"prefixes": "/api"}), "/api", Some(("/", "/api"))),
            (
                json!({"prefixes": "/api/"}),
                "/api/x",
                Some(("/x", "/api/")),
            ),
            (
                json!({"prefixes": "/api", "forceSlash": false}),
                "/api",
                Some(("", "/api")),
            ),
            (json!({"prefixes": "/api,/b"}), "/b/c", Some(("/c", "/b"))),
            (json!({"prefixes": ["/api"]}), "/other", None),
        ];
        for (cfg, path, want) in cases {
            let got = s(cfg.clone()).strip(path);
            assert_eq!(
                got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                want,
                "{cfg} {path}"
            );
        }
    }

    #[test]
    fn regex_as_traefik() {
        let s = StripPrefix::regex(
            Opts::new(
                "stripPrefixRegex",
                &json!({"regex": ["/foo/[a-z0-9]+/[0-9]+/"]}),
            )
            .expect("o"),
        )
        .expect("b");
        assert_eq!(
            s.strip("/foo/abc/12/bar"),
            Some(("/bar".to_string(), "/foo/abc/12/".to_string()))
        );
        assert_eq!(s.strip("/x/foo/abc/12/bar"), None, "anchored at the start");
        let e = StripPrefix::regex(
            Opts::new("stripPrefixRegex", &json!({"regex": ["(", "a"]})).expect("o"),
        )
        .expect_err("bad");
        assert_eq!(e.option, "stripPrefixRegex.regex[0]");
    }
}
