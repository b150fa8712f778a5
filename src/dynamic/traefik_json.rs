//! A dynamic configuration as Traefik writes it: Traefik's JSON names, typed values and defaults.
//!
//! Labels are text, so a configuration read from labels holds `"42"`, `"true"` and `"a, b"` where Traefik's
//! typed model holds `42`, `true` and `["a", "b"]`; middleware options are kept raw until the middleware
//! module reads them, under the label's spelling (`stsseconds`). Traefik's API and `/api/rawdata` show the
//! typed model, with the defaults its structs set (`passHostHeader: true`, `strategy: wrr`,
//! `responseForwarding.flushInterval: 100ms`, a health check's `interval: 30s`, …).
//!
//! This module turns our [`Configuration`] (or one item of it) into that form, driven by data: the schema in
//! `traefik_schema.json` lists, for every struct of Traefik's dynamic configuration, its fields' JSON names
//! and kinds, which fields `omitempty` leaves out, and the defaults its `SetDefaults` sets. The schema is
//! generated from Traefik's sources by `scripts/traefik-tables.py` (the Traefik tag and commit are recorded
//! in it). A value that does not read as its kind is left as written: the middleware module reports it.
//!
//! Control plane only (the API and the tests); never on the request path. Pure.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Configuration;
use crate::value::duration::parse_go_duration;

/// Traefik's struct for a whole configuration.
pub const CONFIGURATION: &str = "dynamic.Configuration";
/// Traefik's struct for an HTTP router.
pub const ROUTER: &str = "dynamic.Router";
/// Traefik's struct for an HTTP service.
pub const SERVICE: &str = "dynamic.Service";
/// Traefik's struct for an HTTP middleware.
pub const MIDDLEWARE: &str = "dynamic.Middleware";
/// Traefik's struct for a TCP router.
pub const TCP_ROUTER: &str = "dynamic.TCPRouter";
/// Traefik's struct for a TCP service.
pub const TCP_SERVICE: &str = "dynamic.TCPService";
/// Traefik's struct for a TCP middleware.
pub const TCP_MIDDLEWARE: &str = "dynamic.TCPMiddleware";
/// Traefik's struct for a UDP router.
pub const UDP_ROUTER: &str = "dynamic.UDPRouter";
/// Traefik's struct for a UDP service.
pub const UDP_SERVICE: &str = "dynamic.UDPService";

/// The kind of a field's value in Traefik's model.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Kind {
    /// `string`, `bool`, `int`, `float`, `duration` or `any`.
    Scalar(String),
    /// `{"list": kind}`, `{"map": kind}` or `{"struct": "pkg.Name"}`.
    Composite(BTreeMap<String, Kind>),
}

/// One struct: field kinds by JSON name, and how `omitempty` treats each (`nil` or `zero`).
#[derive(Debug, Default, Deserialize)]
struct StructSchema {
    fields: BTreeMap<String, Kind>,
    #[serde(default)]
    omit: BTreeMap<String, String>,
}

/// The generated schema file.
#[derive(Debug, Default, Deserialize)]
struct Schema {
    types: BTreeMap<String, StructSchema>,
    #[serde(default)]
    defaults: BTreeMap<String, Map<String, Value>>,
}

const SCHEMA_JSON: &str = include_str!("traefik_schema.json");

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    // The file is generated and committed; a test checks that it reads. Were it unreadable, values would be
    // shown as written rather than the API failing.
    SCHEMA.get_or_init(|| serde_json::from_str(SCHEMA_JSON).unwrap_or_default())
}

/// Whether the embedded schema knows Traefik's struct `typ` (`dynamic.Router`, …).
pub fn knows(typ: &str) -> bool {
    schema().types.contains_key(typ)
}

/// The whole configuration as Traefik's `json.Marshal` of its `dynamic.Configuration` writes it.
pub fn configuration(cfg: &Configuration) -> Value {
    let mut v = serde_json::to_value(cfg).unwrap_or_else(|_| Value::Object(Map::new()));
    shape_struct(&mut v, CONFIGURATION, schema());
    v
}

/// One item (a router, service or middleware serialized from our model) as Traefik writes it, `typ` being
/// Traefik's struct for it ([`ROUTER`], [`SERVICE`], [`MIDDLEWARE`], …). Unknown keys are kept as they are.
pub fn item(mut v: Value, typ: &str) -> Value {
    shape_struct(&mut v, typ, schema());
    v
}

/// Go's `time.Duration.String()` (`0s`, `10s`, `3m0s`, `1.5s`, `100ms`), as Traefik prints durations.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let trim = |whole: u128, frac: u128, digits: usize, unit: &str| {
        let f = format!("{frac:0digits$}");
        let f = f.trim_end_matches('0');
        if f.is_empty() {
            format!("{whole}{unit}")
        } else {
            format!("{whole}.{f}{unit}")
        }
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return trim(ns / 1_000, ns % 1_000, 3, "µs");
    }
    if ns < 1_000_000_000 {
        return trim(ns / 1_000_000, ns % 1_000_000, 6, "ms");
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let sec = trim(s, sub, 9, "s");
    if h > 0 {
        format!("{h}h{m}m{sec}")
    } else if m > 0 {
        format!("{m}m{sec}")
    } else {
        sec
    }
}

/// Shapes an object as Traefik's struct `typ`: canonical field names (labels are case-insensitive), typed
/// values, the struct's defaults for fields not set, and `omitempty`.
fn shape_struct(v: &mut Value, typ: &str, sch: &Schema) {
    let Some(st) = sch.types.get(typ) else {
        return;
    };
    // `…compress=true` or `…tls=`: the section with its defaults.
    if matches!(v, Value::String(s) if s.is_empty() || s.eq_ignore_ascii_case("true")) {
        *v = Value::Object(Map::new());
    }
    let Value::Object(obj) = v else {
        return;
    };
    let mut out = Map::new();
    for (key, mut val) in std::mem::take(obj) {
        match st
            .fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&key))
        {
            Some((name, kind)) => {
                shape(&mut val, kind, sch);
                out.insert(name.clone(), val);
            }
            // Not a field of Traefik's struct (a swarmgate extension): shown when it says something.
            None => {
                if !is_zero(&val) {
                    out.insert(key, val);
                }
            }
        }
    }
    if let Some(defaults) = sch.defaults.get(typ) {
        for (name, val) in defaults {
            if out.get(name).is_none_or(Value::is_null) {
                let mut val = val.clone();
                if let Some(kind) = st.fields.get(name) {
                    shape(&mut val, kind, sch);
                }
                out.insert(name.clone(), val);
            }
        }
    }
    // Go writes a field without `omitempty` even when it holds its zero value (a TCP router's
    // `tls.passthrough: false`).
    for (name, kind) in &st.fields {
        if st.omit.contains_key(name) || out.contains_key(name) {
            continue;
        }
        let zero = match kind {
            Kind::Scalar(k) if k == "bool" => Value::Bool(false),
            Kind::Scalar(k) if k == "int" || k == "float" => Value::from(0),
            Kind::Scalar(k) if k == "string" => Value::String(String::new()),
            _ => continue,
        };
        out.insert(name.clone(), zero);
    }
    out.retain(|name, val| match st.omit.get(name).map(String::as_str) {
        Some("nil") => !val.is_null(),
        Some("zero") => !is_zero(val),
        _ => true,
    });
    *obj = out;
}

/// Go's zero value, as `omitempty` sees it (an empty struct included: it sets nothing).
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

fn shape(v: &mut Value, kind: &Kind, sch: &Schema) {
    match kind {
        Kind::Scalar(k) => scalar(v, k),
        Kind::Composite(c) => {
            if let Some(Kind::Scalar(name)) = c.get("struct") {
                shape_struct(v, name, sch);
            } else if let Some(inner) = c.get("list") {
                if let Value::String(s) = v {
                    // Traefik's label and flag lists: comma-separated.
                    *v = Value::Array(
                        s.split(',')
                            .map(str::trim)
                            .filter(|x| !x.is_empty())
                            .map(|x| Value::String(x.to_string()))
                            .collect(),
                    );
                }
                if let Value::Array(items) = v {
                    for x in items {
                        shape(x, inner, sch);
                    }
                }
            } else if let Some(inner) = c.get("map") {
                if let Value::Object(m) = v {
                    for x in m.values_mut() {
                        shape(x, inner, sch);
                    }
                }
            }
        }
    }
}

fn scalar(v: &mut Value, kind: &str) {
    let typed = match (kind, &*v) {
        ("int", Value::String(s)) => s.trim().parse::<i64>().ok().map(Value::from),
        ("float", Value::String(s)) => s.trim().parse::<f64>().ok().map(Value::from),
        ("bool", Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "1" => Some(Value::Bool(true)),
            "false" | "f" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        ("duration", Value::String(s)) => parse_go_duration(s)
            .ok()
            .map(|d| Value::String(go_duration(d))),
        ("duration", Value::Number(n)) => n
            .as_u64()
            .map(|secs| Value::String(go_duration(Duration::from_secs(secs)))),
        ("string", Value::Number(n)) => Some(Value::String(n.to_string())),
        ("string", Value::Bool(b)) => Some(Value::String(b.to_string())),
        _ => None,
    };
    if let Some(t) = typed {
        *v = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_schema_reads_and_knows_the_items() {
        for typ in [
            CONFIGURATION,
            ROUTER,
            SERVICE,
            MIDDLEWARE,
            TCP_ROUTER,
            TCP_SERVICE,
            TCP_MIDDLEWARE,
            UDP_ROUTER,
            UDP_SERVICE,
        ] {
            assert!(knows(typ), "{typ}");
        }
        assert!(!schema().defaults.is_empty());
    }

    #[test]
    fn label_text_becomes_typed_values_under_traefiks_names() {
        let m = item(
            json!({"headers": {"stsseconds": "42", "framedeny": "true",
                   "accesscontrolallowmethods": "GET, PUT", "customrequestheaders": {"X-A": "1"}}}),
            MIDDLEWARE,
        );
        assert_eq!(
            m,
            json!({"headers": {"stsSeconds": 42, "frameDeny": true,
                   "accessControlAllowMethods": ["GET", "PUT"], "customRequestHeaders": {"X-A": "1"}}})
        );
        // A value that does not read as its kind is shown as written.
        let m = item(json!({"headers": {"stsSeconds": "soon"}}), MIDDLEWARE);
        assert_eq!(m, json!({"headers": {"stsSeconds": "soon"}}));
    }

    #[test]
    fn defaults_and_omitempty_as_traefik() {
        let s = item(
            json!({"loadBalancer": {"servers": [{"url": "http://a:80"}],
                   "healthCheck": {"path": "/h", "interval": "0.5s"}}}),
            SERVICE,
        );
        assert_eq!(
            s,
            json!({"loadBalancer": {"servers": [{"url": "http://a:80"}], "strategy": "wrr",
                   "passHostHeader": true, "responseForwarding": {"flushInterval": "100ms"},
                   "healthCheck": {"path": "/h", "interval": "500ms", "timeout": "5s", "mode": "http",
                                   "followRedirects": true}}})
        );
        // An explicit `passHostHeader: false` stays (a pointer in Traefik's model).
        let s = item(json!({"loadBalancer": {"passHostHeader": false}}), SERVICE);
        assert_eq!(s["loadBalancer"]["passHostHeader"], json!(false));
        // `compress=true`: the section with its defaults.
        let m = item(json!({"compress": "true"}), MIDDLEWARE);
        assert_eq!(
            m,
            json!({"compress": {"encodings": ["gzip", "br", "zstd"]}})
        );
    }

    #[test]
    fn durations_print_as_go() {
        assert_eq!(go_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
        let mut v = json!("42");
        scalar(&mut v, "duration");
        assert_eq!(v, json!("42s"));
    }
}
