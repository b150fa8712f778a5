//! Traefik v2 templates: the gorilla/mux syntax `/{name}` / `{name:regexp}` used by v2
//! `Host­Regexp`, `Path`, `PathPrefix`, `Query` and TCP `HostSNIRegexp`.
//!
//! Semantics follow traefik's fork of gorilla/mux (`containous/mux`, `regexp.go`,
//! `newRouteRegexp`): text outside braces is literal (quoted), `{name}` matches the default
//! pattern (`[^.]+` for hosts, `[^/]+` for paths, `.*` for query values), `{name:re}` matches
//! `re`; the whole template is anchored at both ends except for path prefixes; host templates
//! match case-insensitively; a query template with an empty value matches any value. Braces
//! nest (`{id:[0-9]{3}}`) and must balance; name and pattern must not be empty.
//!
//! A template without braces compiles to [`Template::Literal`] so that the common case
//! (`PathPrefix(`/api`)`) is a string comparison, not a regex.

use super::goregex;
use regex::bytes::Regex;

/// What a template is matched against; decides the default pattern and anchoring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Host,
    Path,
    PathPrefix,
    /// `key=value` as one string (mux matches the template against `key=firstvalue`).
    Query,
}

/// A compiled template.
#[derive(Debug, Clone)]
pub(crate) enum Template {
    /// No variables: the template text itself.
    Literal(String),
    /// Variables: a regex over the whole subject (anchored as mux anchors it).
    Regex(Regex),
}

/// Byte ranges `[start, end)` of the top-level `{...}` groups, as mux `braceIndices` finds them.
fn brace_spans(tpl: &str) -> Result<Vec<(usize, usize)>, String> {
    let mut level = 0usize;
    let mut start = 0usize;
    let mut spans = Vec::new();
    for (i, b) in tpl.bytes().enumerate() {
        match b {
            b'{' => {
                level += 1;
                if level == 1 {
                    start = i;
                }
            }
            b'}' => {
                if level == 0 {
                    return Err(format!("unbalanced braces in `{tpl}`"));
                }
                level -= 1;
                if level == 0 {
                    spans.push((start, i + 1));
                }
            }
            _ => {}
        }
    }
    if level != 0 {
        return Err(format!("unbalanced braces in `{tpl}`"));
    }
    Ok(spans)
}

/// Compiles a v2 template.
pub(crate) fn compile(tpl: &str, kind: Kind) -> Result<Template, String> {
    let spans = brace_spans(tpl)?;
    if spans.is_empty() {
        return Ok(Template::Literal(tpl.to_owned()));
    }
    let default = match kind {
        Kind::Host => "[^.]+",
        Kind::Path | Kind::PathPrefix => "[^/]+",
        Kind::Query => ".*",
    };
    let mut pattern = String::with_capacity(tpl.len() * 2);
    if kind == Kind::Host {
        pattern.push_str("(?i)");
    }
    pattern.push('^');
    let mut end = 0;
    for &(s, e) in &spans {
        pattern.push_str(&regex::escape(&tpl[end..s]));
        end = e;
        let inner = &tpl[s + 1..e - 1];
        let (name, patt) = match inner.split_once(':') {
            Some((n, p)) => (n, p),
            None => (inner, default),
        };
        if name.is_empty() || patt.is_empty() {
            return Err(format!("missing name or pattern in `{}`", &tpl[s..e]));
        }
        let translated = if patt == default {
            default.to_owned()
        } else {
            goregex::translate(patt)?
        };
        // mux also compiles each variable's pattern on its own (`^patt$`), which refuses
        // patterns that only parse inside the surrounding group, such as `a)(b`.
        goregex::compile_rust(&format!("^{translated}$"))?;
        pattern.push_str("(?:");
        pattern.push_str(&translated);
        pattern.push(')');
    }
    pattern.push_str(&regex::escape(&tpl[end..]));
    if kind == Kind::Query && tpl.split_once('=').is_some_and(|(_, v)| v.is_empty()) {
        pattern.push_str(default);
    }
    if kind != Kind::PathPrefix {
        pattern.push('$');
    }
    Ok(Template::Regex(goregex::compile_rust(&pattern)?))
}
