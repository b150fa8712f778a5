//! Reading one middleware's options from the raw JSON value the dynamic-configuration decoder produced.
//!
//! The configuration tree keeps every scalar as text (labels are text), so a number may arrive as `"100"` or
//! `100`, a list as `["/a", "/b"]` or as Traefik's comma-separated `"/a,/b"`. Option names are matched
//! case-insensitively (labels are often lowercase), and [`Opts::finish`] reports any option that no reader
//! took, by its Traefik name, with the nearest known one. Every error names the full option path.

use std::time::Duration;

use serde_json::Value;

use super::MiddlewareError;

/// The options of one middleware (or one nested section), consumed reader by reader.
pub struct Opts<'a> {
    path: String,
    entries: Vec<(&'a str, &'a Value, bool)>,
    known: Vec<&'static str>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl<'a> Opts<'a> {
    /// Options at `path` (`basicAuth`, `headers`, `rateLimit.sourceCriterion`). An empty string or null
    /// means "no options" (a label such as `…compress=true` gives `"true"`, also accepted as empty).
    pub fn new(path: &str, v: &'a Value) -> Result<Opts<'a>, MiddlewareError> {
        let entries = match v {
            Value::Object(m) => m.iter().map(|(k, v)| (k.as_str(), v, false)).collect(),
            Value::Null => Vec::new(),
            Value::String(s) if s.is_empty() || s.eq_ignore_ascii_case("true") => Vec::new(),
            _ => {
                return Err(MiddlewareError::new(
                    path,
                    "expected a section of options".to_string(),
                ))
            }
        };
        Ok(Opts {
            path: path.to_string(),
            entries,
            known: Vec::new(),
        })
    }

    /// The full path of option `name`, for messages.
    pub fn path(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// An error about option `name`.
    pub fn err(&self, name: &str, message: impl Into<String>) -> MiddlewareError {
        MiddlewareError::new(&self.path(name), message.into())
    }

    /// The raw value of `name` (case-insensitive), marking it used.
    pub fn raw(&mut self, name: &'static str) -> Option<&'a Value> {
        self.known.push(name);
        let e = self
            .entries
            .iter_mut()
            .find(|(k, _, _)| k.eq_ignore_ascii_case(name))?;
        e.2 = true;
        Some(e.1)
    }

    /// Whether `name` is present (without consuming it).
    pub fn has(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|(k, _, _)| k.eq_ignore_ascii_case(name))
    }

    /// A text option.
    pub fn string(&mut self, name: &'static str) -> Result<Option<String>, MiddlewareError> {
        match self.raw(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => text(v)
                .map(Some)
                .ok_or_else(|| self.err(name, "expected a text value")),
        }
    }

    /// A boolean option (`true`/`false`, any case; an empty value means true, as Traefik's labels).
    pub fn bool(&mut self, name: &'static str) -> Result<Option<bool>, MiddlewareError> {
        match self.raw(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.is_empty() || s.eq_ignore_ascii_case("true") => {
                Ok(Some(true))
            }
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(self.err(name, format!("expected true or false, found `{}`", show(v)))),
        }
    }

    /// A floating-point option.
    pub fn f64(&mut self, name: &'static str) -> Result<Option<f64>, MiddlewareError> {
        match self.raw(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => text(v)
                .and_then(|t| t.trim().parse::<f64>().ok())
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| self.err(name, format!("expected a number, found `{}`", show(v)))),
        }
    }

    /// A non-negative integer option.
    pub fn u64(&mut self, name: &'static str) -> Result<Option<u64>, MiddlewareError> {
        match self.raw(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => text(v)
                .and_then(|t| t.trim().parse::<u64>().ok())
                .map(Some)
                .ok_or_else(|| {
                    self.err(
                        name,
                        format!("expected a non-negative integer, found `{}`", show(v)),
                    )
                }),
        }
    }

    /// A duration: Go syntax (`100ms`, `1m30s`) or a bare number of seconds, as Traefik reads them.
    pub fn duration(&mut self, name: &'static str) -> Result<Option<Duration>, MiddlewareError> {
        match self.string(name)? {
            None => Ok(None),
            Some(t) => crate::config::types::parse_go_duration(&t)
                .map(Some)
                .map_err(|e| self.err(name, e)),
        }
    }

    /// A list of texts: a sequence, or one comma-separated text (labels). Empty items are dropped.
    pub fn strings(&mut self, name: &'static str) -> Result<Vec<String>, MiddlewareError> {
        let out: Vec<String> = match self.raw(name) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, it) in items.iter().enumerate() {
                    match text(it) {
                        Some(t) => out.push(t),
                        None => {
                            return Err(self.err(&format!("{name}[{i}]"), "expected a text value"))
                        }
                    }
                }
                out
            }
            // A map with numeric keys is how indexed labels (`users[0]`) may arrive.
            Some(Value::Object(m)) => m.values().filter_map(text).collect(),
            Some(v) => match text(v) {
                Some(t) => t.split(',').map(|s| s.trim().to_string()).collect(),
                None => return Err(self.err(name, "expected a list")),
            },
        };
        Ok(out.into_iter().filter(|s| !s.trim().is_empty()).collect())
    }

    /// A map of texts (header name → value). Values may be empty (meaning "remove" for headers).
    pub fn map(&mut self, name: &'static str) -> Result<Vec<(String, String)>, MiddlewareError> {
        match self.raw(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
            Some(Value::Object(m)) => {
                let mut out = Vec::with_capacity(m.len());
                for (k, v) in m {
                    match v {
                        Value::Null => out.push((k.clone(), String::new())),
                        other => match text(other) {
                            Some(t) => out.push((k.clone(), t)),
                            None => {
                                return Err(
                                    self.err(&format!("{name}.{k}"), "expected a text value")
                                )
                            }
                        },
                    }
                }
                Ok(out)
            }
            Some(_) => Err(self.err(name, "expected a mapping of names to values")),
        }
    }

    /// A nested section, if present.
    pub fn section(&mut self, name: &'static str) -> Result<Option<Opts<'a>>, MiddlewareError> {
        let path = self.path(name);
        match self.raw(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Opts::new(&path, v).map(Some),
        }
    }

    /// Fails on any option no reader asked for, naming it and the nearest known option.
    pub fn finish(self) -> Result<(), MiddlewareError> {
        if let Some((k, _, _)) = self.entries.iter().find(|(_, _, used)| !used) {
            let mut message = "unknown option".to_string();
            if let Some(near) = crate::config::node::nearest(k, &self.known) {
                message.push_str(&format!("; did you mean `{}`?", near));
            }
            return Err(MiddlewareError::new(&format!("{}.{k}", self.path), message));
        }
        Ok(())
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_typed_values_case_insensitively() {
        let v = json!({"Prefixes": "/a,/b", "forceslash": "false", "n": "12", "d": "1m", "x": 3});
        let mut o = Opts::new("stripPrefix", &v).expect("opts");
        assert_eq!(o.strings("prefixes").expect("p"), vec!["/a", "/b"]);
        assert_eq!(o.bool("forceSlash").expect("b"), Some(false));
        assert_eq!(o.u64("n").expect("n"), Some(12));
        assert_eq!(o.duration("d").expect("d"), Some(Duration::from_secs(60)));
        assert_eq!(o.f64("x").expect("x"), Some(3.0));
        o.finish().expect("all used");
    }

    #[test]
    fn unknown_and_bad_options_are_named() {
        let v = json!({"prefixs": ["/a"]});
        let mut o = Opts::new("stripPrefix", &v).expect("opts");
        let _ = o.strings("prefixes");
        let e = o.finish().expect_err("unknown");
        assert_eq!(e.option, "stripPrefix.prefixs");
        assert!(e.message.contains("prefixes"), "{e}");
        let v = json!({"burst": "lots"});
        let mut o = Opts::new("rateLimit", &v).expect("opts");
        let e = o.u64("burst").expect_err("bad");
        assert_eq!(e.option, "rateLimit.burst");
    }
}
