//! `replacePath` and `replacePathRegex`: replace the path before forwarding, keeping the original in
//! `X-Replaced-Path` (as Traefik does).

use http::HeaderValue;
use regex::Regex;

use super::opts::Opts;
use super::{set_path, Flow, MiddlewareError, Req};

/// `X-Replaced-Path`.
pub const REPLACED_PATH: &str = "x-replaced-path";

#[derive(Debug)]
enum Kind {
    Path(String),
    Regex(Regex, String),
}

/// A compiled replace-path middleware.
#[derive(Debug)]
pub struct ReplacePath {
    kind: Kind,
}

impl ReplacePath {
    /// `replacePath`: `path`.
    pub fn path(mut o: Opts<'_>) -> Result<ReplacePath, MiddlewareError> {
        let path = o.string("path")?.unwrap_or_default();
        o.finish()?;
        Ok(ReplacePath {
            kind: Kind::Path(path),
        })
    }

    /// `replacePathRegex`: `regex`, `replacement` (`$1`, `${name}`).
    pub fn regex(mut o: Opts<'_>) -> Result<ReplacePath, MiddlewareError> {
        let pattern = o.string("regex")?.unwrap_or_default();
        let re = Regex::new(pattern.trim()).map_err(|e| {
            o.err(
                "regex",
                format!("`{pattern}` is not a valid regular expression: {e}"),
            )
        })?;
        let replacement = o.string("replacement")?.unwrap_or_default();
        o.finish()?;
        Ok(ReplacePath {
            kind: Kind::Regex(re, replacement.trim().to_string()),
        })
    }

    /// The new path, or None when the regex does not match.
    pub fn apply(&self, path: &str) -> Option<String> {
        match &self.kind {
            Kind::Path(p) => Some(p.clone()),
            Kind::Regex(re, rep) => re
                .is_match(path)
                .then(|| re.replace_all(path, rep.as_str()).into_owned()),
        }
    }

    /// Request step.
    pub fn on_request(&self, req: &mut Req) -> Flow {
        let old = req.uri().path().to_string();
        if let Some(new) = self.apply(&old) {
            let new = if new.is_empty() { "/".to_string() } else { new };
            if set_path(req, &new) {
                if let Ok(v) = HeaderValue::from_str(&old) {
                    req.headers_mut().insert(REPLACED_PATH, v);
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
    fn replaces() {
        let r = ReplacePath::path(Opts::new("replacePath", &json!({"path": "/foo"})).expect("o"))
            .expect("b");
        assert_eq!(r.apply("/anything").as_deref(), Some("/foo"));
        let r = ReplacePath::regex(
            Opts::new(
                "replacePathRegex",
                &json!({"regex": "^/foo/(.*)", "replacement": "/bar/$1"}),
            )
            .expect("o"),
        )
        .expect("b");
        let cases = [
            ("/foo/a/b", Some("/bar/a/b")),
            ("/other", None),
            ("/foo/", Some("/bar/")),
        ];
        for (p, want) in cases {
            assert_eq!(r.apply(p).as_deref(), want, "{p}");
        }
        assert!(ReplacePath::regex(
            Opts::new("replacePathRegex", &json!({"regex": "("})).expect("o")
        )
        .is_err());
    }

    #[test]
    fn keeps_original_in_header() {
        let r = ReplacePath::path(Opts::new("replacePath", &json!({"path": "/new"})).expect("o"))
            .expect("b");
        let mut req = crate::middleware::testing::req("GET", "/old/p?q=1", &[]);
        r.on_request(&mut req);
        assert_eq!(
            req.uri().path_and_query().map(|p| p.as_str()),
            Some("/new?q=1")
        );
        assert_eq!(req.headers()[REPLACED_PATH], "/old/p");
    }
}
