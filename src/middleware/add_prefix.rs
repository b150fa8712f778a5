//! `addPrefix`: prepend a prefix to the path before forwarding.

use super::opts::Opts;
use super::{ensure_leading_slash, set_path, Flow, MiddlewareError, Req};

/// A compiled add-prefix middleware.
#[derive(Debug)]
pub struct AddPrefix {
    prefix: String,
}

impl AddPrefix {
    /// `addPrefix`: `prefix` (required, as Traefik: "prefix cannot be empty").
    pub fn build(mut o: Opts<'_>) -> Result<AddPrefix, MiddlewareError> {
        let prefix = o
            .string("prefix")?
            .filter(|p| !p.is_empty())
            .ok_or_else(|| o.err("prefix", "is required and cannot be empty"))?;
        o.finish()?;
        Ok(AddPrefix { prefix })
    }

    /// The new path.
    pub fn apply(&self, path: &str) -> String {
        ensure_leading_slash(&format!("{}{}", self.prefix, path))
    }

    /// Request step.
    pub fn on_request(&self, req: &mut Req) -> Flow {
        let path = self.apply(req.uri().path());
        set_path(req, &path);
        Flow::Next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prefixes() {
        let a = AddPrefix::build(Opts::new("addPrefix", &json!({"prefix": "/foo"})).expect("o"))
            .expect("b");
        assert_eq!(a.apply("/bar"), "/foo/bar");
        let a = AddPrefix::build(Opts::new("addPrefix", &json!({"prefix": "v1"})).expect("o"))
            .expect("b");
        assert_eq!(a.apply("/x"), "/v1/x");
        assert!(
            AddPrefix::build(Opts::new("addPrefix", &json!({"prefix": ""})).expect("o")).is_err()
        );
    }
}
