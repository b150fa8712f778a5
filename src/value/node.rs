//! The configuration tree every source is read into before it is typed.
//!
//! Traefik reads flags, environment variables, files and Docker labels through one mechanism ("paerser"):
//! each source becomes a tree of nodes, and the tree is then decoded into the typed configuration with
//! case-insensitive keys. We do the same so that `--entryPoints.web.address`, `TRAEFIK_ENTRYPOINTS_WEB_ADDRESS`,
//! `entryPoints: {web: {address: ...}}` in YAML and `traefik.http.routers.r.rule` labels all decode identically.
//!
//! This module owns the tree ([`Node`]), where each value came from ([`Source`]), and a serde `Deserializer`
//! over the tree that:
//! - matches struct fields case-insensitively against the names serde hands it, and reports an unknown key with
//!   its full path, its source (flag, env var, file:line:column, label) and the nearest known key;
//! - decodes scalars the way Traefik does: `"true"` for booleans, numbers from strings, comma-separated lists,
//!   and `true` for a section with defaults (`--providers.docker`, `sticky.cookie=true`).
//!
//! It does no I/O: sources are parsed by their own modules and handed here as trees.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// Where a configuration value came from, so that every error can point the user at the exact input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag, as written (`--entrypoints.web.address=:80`).
    Flag(String),
    /// An environment variable, by name (`TRAEFIK_ENTRYPOINTS_WEB_ADDRESS`).
    Env(String),
    /// A position in a configuration file (1-based line and column).
    File {
        /// The file's path as given.
        path: Arc<str>,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A Docker label on a container or service.
    Label {
        /// The container or service name.
        owner: Arc<str>,
        /// The full label key.
        key: String,
    },
    /// Built in code (defaults, translated legacy forms).
    Internal,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag `{flag}`"),
            Source::Env(var) => write!(f, "environment variable `{var}`"),
            Source::File { path, line, column } => write!(f, "{path}:{line}:{column}"),
            Source::Label { owner, key } => write!(f, "label `{key}` on `{owner}`"),
            Source::Internal => write!(f, "built-in value"),
        }
    }
}

/// One node of the tree: a scalar, a map or a list, with the source of its first definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where it was written.
    pub source: Source,
}

/// The three shapes a configuration value can take.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A leaf, always kept as text: typing happens when decoding.
    Scalar(String),
    /// A mapping, keys as written and in input order (lookups ignore ASCII case).
    Map(Vec<(String, Node)>),
    /// A sequence.
    List(Vec<Node>),
}

impl Node {
    /// An empty map node.
    pub fn map(source: Source) -> Node {
        Node {
            kind: NodeKind::Map(Vec::new()),
            source,
        }
    }

    /// A scalar node.
    pub fn scalar(value: impl Into<String>, source: Source) -> Node {
        Node {
            kind: NodeKind::Scalar(value.into()),
            source,
        }
    }

    /// Child of a map by key, ignoring ASCII case.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The scalar text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Removes and returns a child of a map by key (ignoring case).
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        match &mut self.kind {
            NodeKind::Map(entries) => {
                let idx = entries
                    .iter()
                    .position(|(k, _)| k.eq_ignore_ascii_case(key))?;
                Some(entries.remove(idx).1)
            }
            _ => None,
        }
    }

    /// True for an empty map (a source that set nothing).
    pub fn is_empty_map(&self) -> bool {
        matches!(&self.kind, NodeKind::Map(e) if e.is_empty())
    }

    /// Inserts `value` at a dotted path of segments, creating maps on the way.
    ///
    /// A segment `name[3]` addresses element 3 of a list (Traefik's indexed label syntax). Fails, naming the
    /// path, when the path crosses a scalar that is already set (e.g. `--api=true` then `--api.insecure`
    /// is fine: a `true` scalar is widened into a section; but `a.b=1` then `a.b.c=2` is a conflict).
    pub fn insert_path(&mut self, segments: &[&str], value: Node) -> Result<(), String> {
        let Some((first, rest)) = segments.split_first() else {
            return Err("empty key".to_string());
        };
        let (name, index) = split_index(first)?;
        if name.is_empty() {
            return Err(format!("empty segment in key near `{first}`"));
        }
        // A scalar "true" means "section with defaults": widen it into a map when children arrive. A
        // section set to "false" stays off and its options are ignored, as Traefik's decoder leaves the
        // section's pointer nil (`sticky=false` beside `sticky.cookie.name=x`: no stickiness).
        if let NodeKind::Scalar(s) = &self.kind {
            if s.eq_ignore_ascii_case("true") {
                self.kind = NodeKind::Map(Vec::new());
            } else if s.eq_ignore_ascii_case("false") {
                return Ok(());
            } else {
                return Err(format!(
                    "`{name}` is nested under a value that is already set to `{s}`"
                ));
            }
        }
        let NodeKind::Map(entries) = &mut self.kind else {
            return Err(format!("`{name}` is nested under a list"));
        };
        let source = value.source.clone();
        let pos = match entries
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(p) => p,
            None => {
                let fresh = if index.is_some() {
                    Node {
                        kind: NodeKind::List(Vec::new()),
                        source: source.clone(),
                    }
                } else if rest.is_empty() {
                    entries.push((name.to_string(), value));
                    return Ok(());
                } else {
                    Node::map(source.clone())
                };
                entries.push((name.to_string(), fresh));
                entries.len() - 1
            }
        };
        // `pos` is the index just found or just pushed.
        let Some((_, slot)) = entries.get_mut(pos) else {
            return Err(format!("`{name}` could not be inserted"));
        };
        let target = match index {
            None => slot,
            Some(i) => {
                if i > 10_000 {
                    return Err(format!("list index {i} in `{first}` is too large"));
                }
                if let NodeKind::Scalar(_) = slot.kind {
                    slot.kind = NodeKind::List(Vec::new());
                }
                let NodeKind::List(items) = &mut slot.kind else {
                    return Err(format!("`{name}` is used both as a list and as a section"));
                };
                while items.len() <= i {
                    items.push(Node::map(source.clone()));
                }
                let Some(item) = items.get_mut(i) else {
                    return Err(format!("`{name}[{i}]` could not be inserted"));
                };
                item
            }
        };
        if rest.is_empty() {
            // Later definitions of the same leaf win (the last flag, as in every CLI).
            *target = value;
            return Ok(());
        }
        target.insert_path(rest, value)
    }
}

/// Removes, at any depth, the map entries named like one of `sections` (ASCII case ignored) whose value is
/// `false`: Traefik's decoder reads `sticky=false` or a router's `tls=false` as "no such section" (a nil
/// pointer), where a typed decoder would expect a section. Only the listed names: a boolean option written
/// `false` keeps its value.
pub fn drop_false_sections(node: &mut Node, sections: &[&str]) {
    match &mut node.kind {
        NodeKind::Map(entries) => {
            entries.retain(|(k, v)| {
                !(sections.iter().any(|s| s.eq_ignore_ascii_case(k))
                    && v.as_str()
                        .is_some_and(|s| s.trim().eq_ignore_ascii_case("false")))
            });
            for (_, v) in entries.iter_mut() {
                drop_false_sections(v, sections);
            }
        }
        NodeKind::List(items) => {
            for v in items.iter_mut() {
                drop_false_sections(v, sections);
            }
        }
        NodeKind::Scalar(_) => {}
    }
}

/// Splits `name[3]` into (`name`, Some(3)).
fn split_index(segment: &str) -> Result<(&str, Option<usize>), String> {
    match segment.find('[') {
        None => Ok((segment, None)),
        Some(open) => {
            let close = segment
                .strip_suffix(']')
                .ok_or_else(|| format!("`{segment}`: expected `]` at the end of the index"))?;
            let idx = &close[open + 1..];
            let idx: usize = idx
                .parse()
                .map_err(|_| format!("`{segment}`: list index `{idx}` is not a number"))?;
            Ok((&segment[..open], Some(idx)))
        }
    }
}

/// A configuration error: the full key, where it came from, and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message} (from {origin})")]
pub struct DecodeError {
    /// The full dotted key, as canonical as known (`entryPoints.web.address`).
    pub key: String,
    /// The source of the offending value.
    pub origin: Source,
    /// What is wrong and what was expected.
    pub message: String,
}

/// The message of a key no struct field accepts; [`DecodeError::is_unknown_key`] recognises it.
const UNKNOWN_KEY: &str = "unknown key";

impl DecodeError {
    /// True when the error is a key the typed configuration does not know (as opposed to a bad value), so
    /// that the static loader can ask whether Traefik knows it (`config::known`).
    pub fn is_unknown_key(&self) -> bool {
        self.message.starts_with(UNKNOWN_KEY)
    }
}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError {
            key: String::new(),
            origin: Source::Internal,
            message: msg.to_string(),
        }
    }
}

/// Decodes a typed value from a tree; `root` names the path prefix used in error messages (may be empty).
pub fn decode<T: de::DeserializeOwned>(node: &Node, root: &str) -> Result<T, DecodeError> {
    T::deserialize(NodeDe {
        node,
        path: root.to_string(),
    })
}

/// The serde deserializer over one node; `path` is the canonical dotted path of the node.
struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl NodeDe<'_> {
    fn err(&self, message: impl Into<String>) -> DecodeError {
        DecodeError {
            key: self.path.clone(),
            origin: self.node.source.clone(),
            message: message.into(),
        }
    }

    /// Fills in the key and source of an error raised by a nested visitor (serde's own messages).
    fn locate(&self, mut e: DecodeError) -> DecodeError {
        if e.key.is_empty() {
            e.key = self.path.clone();
            e.origin = self.node.source.clone();
        }
        e
    }

    fn scalar(&self, expected: &str) -> Result<&str, DecodeError> {
        match &self.node.kind {
            NodeKind::Scalar(s) => Ok(s.trim()),
            NodeKind::Map(_) => Err(self.err(format!("expected {expected}, found a section"))),
            NodeKind::List(_) => Err(self.err(format!("expected {expected}, found a list"))),
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }
}

macro_rules! parse_number {
    ($name:ident, $ty:ty, $visit:ident, $what:expr) => {
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            let s = self.scalar($what)?;
            let v: $ty = s
                .parse()
                .map_err(|_| self.err(format!("expected {}, found `{s}`", $what)))?;
            visitor.$visit(v).map_err(|e| self.locate(e))
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match &self.node.kind {
            NodeKind::Scalar(s) => visitor.visit_str(s).map_err(|e| self.locate(e)),
            NodeKind::Map(_) => self.deserialize_map(visitor),
            NodeKind::List(_) => self.deserialize_seq(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let s = self.scalar("true or false")?;
        let b = if s.eq_ignore_ascii_case("true") || s.is_empty() {
            true
        } else if s.eq_ignore_ascii_case("false") {
            false
        } else {
            return Err(self.err(format!("expected true or false, found `{s}`")));
        };
        visitor.visit_bool(b).map_err(|e| self.locate(e))
    }

    parse_number!(deserialize_i8, i8, visit_i8, "an integer");
    parse_number!(deserialize_i16, i16, visit_i16, "an integer");
    parse_number!(deserialize_i32, i32, visit_i32, "an integer");
    parse_number!(deserialize_i64, i64, visit_i64, "an integer");
    parse_number!(deserialize_u8, u8, visit_u8, "a non-negative integer");
    parse_number!(deserialize_u16, u16, visit_u16, "a non-negative integer");
    parse_number!(deserialize_u32, u32, visit_u32, "a non-negative integer");
    parse_number!(deserialize_u64, u64, visit_u64, "a non-negative integer");
    parse_number!(deserialize_f32, f32, visit_f32, "a number");
    parse_number!(deserialize_f64, f64, visit_f64, "a number");

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match &self.node.kind {
            // Strings keep their exact text (no trim): header values and regexes may need it.
            NodeKind::Scalar(s) => visitor.visit_str(s).map_err(|e| self.locate(e)),
            _ => Err(self.err("expected a text value, found a section or list")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match &self.node.kind {
            NodeKind::List(items) => {
                let seq = ListAccess {
                    items: items.iter(),
                    path: &self.path,
                    index: 0,
                };
                visitor.visit_seq(seq).map_err(|e| self.locate(e))
            }
            NodeKind::Scalar(s) => {
                // Traefik's comma-separated lists (`entryPoints=web,websecure`). An empty value is an empty list.
                let parts: Vec<Node> = s
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| Node::scalar(p, self.node.source.clone()))
                    .collect();
                let seq = ListAccess {
                    items: parts.iter(),
                    path: &self.path,
                    index: 0,
                };
                visitor.visit_seq(seq).map_err(|e| self.locate(e))
            }
            NodeKind::Map(entries) if entries.is_empty() => {
                let seq = ListAccess {
                    items: [].iter(),
                    path: &self.path,
                    index: 0,
                };
                visitor.visit_seq(seq).map_err(|e| self.locate(e))
            }
            NodeKind::Map(_) => Err(self.err("expected a list, found a section")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match &self.node.kind {
            NodeKind::Map(entries) => visitor
                .visit_map(EntriesAccess {
                    entries: entries.iter(),
                    fields: None,
                    parent: &self.path,
                    pending: None,
                })
                .map_err(|e| self.locate(e)),
            NodeKind::Scalar(s) if s.trim().is_empty() || s.trim().eq_ignore_ascii_case("true") => {
                visitor
                    .visit_map(EntriesAccess {
                        entries: [].iter(),
                        fields: None,
                        parent: &self.path,
                        pending: None,
                    })
                    .map_err(|e| self.locate(e))
            }
            NodeKind::Scalar(s) => Err(self.err(format!("expected a section, found `{s}`"))),
            NodeKind::List(_) => Err(self.err("expected a section, found a list")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let entries: &[(String, Node)] = match &self.node.kind {
            NodeKind::Map(entries) => entries,
            // `--providers.docker`, `sticky.cookie=true`, `tls=true`: a section with its defaults.
            NodeKind::Scalar(s) if s.trim().is_empty() || s.trim().eq_ignore_ascii_case("true") => {
                &[]
            }
            NodeKind::Scalar(s) => {
                return Err(self.err(format!("expected a section (or `true`), found `{s}`")))
            }
            NodeKind::List(_) => return Err(self.err("expected a section, found a list")),
        };
        // Reject unknown keys up front, naming the nearest known one.
        for (key, node) in entries {
            if !fields.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                let mut message = UNKNOWN_KEY.to_string();
                if let Some(near) = nearest(key, fields) {
                    message.push_str(&format!("; did you mean `{}`?", self.child_path(near)));
                }
                return Err(DecodeError {
                    key: self.child_path(key),
                    origin: node.source.clone(),
                    message,
                });
            }
        }
        visitor
            .visit_map(EntriesAccess {
                entries: entries.iter(),
                fields: Some(fields),
                parent: &self.path,
                pending: None,
            })
            .map_err(|e| self.locate(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let s = self.scalar("one of the listed values")?;
        match variants.iter().find(|v| v.eq_ignore_ascii_case(s)) {
            Some(v) => visitor
                .visit_enum((*v).into_deserializer())
                .map_err(|e: DecodeError| self.locate(e)),
            None => Err(self.err(format!("`{s}` is not one of: {}", variants.join(", ")))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
}

/// Nearest field name by edit distance, if it is close enough to be a plausible typo.
pub fn nearest<'f>(key: &str, fields: &[&'f str]) -> Option<&'f str> {
    let key = key.to_ascii_lowercase();
    fields
        .iter()
        .map(|f| (strsim::levenshtein(&key, &f.to_ascii_lowercase()), *f))
        .filter(|(d, f)| *d <= 3.max(f.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f)
}

struct ListAccess<'a, I: Iterator<Item = &'a Node>> {
    items: I,
    path: &'a str,
    index: usize,
}

impl<'de, 'a, I: Iterator<Item = &'a Node>> SeqAccess<'de> for ListAccess<'a, I> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe { node, path }).map(Some)
    }
}

struct EntriesAccess<'a, I: Iterator<Item = &'a (String, Node)>> {
    entries: I,
    fields: Option<&'static [&'static str]>,
    parent: &'a str,
    pending: Option<(String, &'a Node)>,
}

impl<'de, 'a, I: Iterator<Item = &'a (String, Node)>> MapAccess<'de> for EntriesAccess<'a, I> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        // Struct fields are handed to serde in their canonical spelling; map keys stay as written.
        let canonical: &str = match self.fields {
            Some(fields) => fields
                .iter()
                .find(|f| f.eq_ignore_ascii_case(key))
                .copied()
                .unwrap_or(key.as_str()),
            None => key.as_str(),
        };
        let path = if self.parent.is_empty() {
            canonical.to_string()
        } else {
            format!("{}.{}", self.parent, canonical)
        };
        self.pending = Some((path, node));
        let key_de: de::value::StrDeserializer<'_, DecodeError> = canonical.into_deserializer();
        seed.deserialize(key_de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let Some((path, node)) = self.pending.take() else {
            return Err(de::Error::custom("value requested before key"));
        };
        seed.deserialize(NodeDe { node, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(default)]
    struct Ep {
        address: String,
        #[serde(rename = "asDefault")]
        as_default: bool,
    }

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(default)]
    struct Root {
        #[serde(rename = "entryPoints")]
        entry_points: BTreeMap<String, Ep>,
        api: Option<Api>,
        list: Vec<String>,
        n: u32,
    }

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(default)]
    struct Api {
        insecure: bool,
    }

    fn flag_tree(flags: &[(&str, &str)]) -> Node {
        let mut root = Node::map(Source::Internal);
        for (k, v) in flags {
            let segs: Vec<&str> = k.split('.').collect();
            root.insert_path(&segs, Node::scalar(*v, Source::Flag(format!("--{k}={v}"))))
                .expect("insert");
        }
        root
    }

    #[test]
    fn keys_are_case_insensitive_and_sections_accept_true() {
        let t = flag_tree(&[
            ("ENTRYPOINTS.web.Address", ":80"),
            ("entrypoints.web.asdefault", "true"),
            ("api", "true"),
            ("list", "a, b,c"),
            ("n", "7"),
        ]);
        let r: Root = decode(&t, "").expect("decode");
        assert_eq!(r.entry_points["web"].address, ":80");
        assert!(r.entry_points["web"].as_default);
        assert_eq!(r.api, Some(Api { insecure: false }));
        assert_eq!(r.list, vec!["a", "b", "c"]);
        assert_eq!(r.n, 7);
    }

    #[test]
    fn true_section_is_widened_by_children() {
        let t = flag_tree(&[("api", "true"), ("api.insecure", "true")]);
        let r: Root = decode(&t, "").expect("decode");
        assert_eq!(r.api, Some(Api { insecure: true }));
    }

    #[test]
    fn unknown_key_names_path_source_and_suggestion() {
        let t = flag_tree(&[("entrypoints.web.adress", ":80")]);
        let e = decode::<Root>(&t, "").expect_err("must fail");
        assert_eq!(e.key, "entryPoints.web.adress");
        assert_eq!(
            e.origin,
            Source::Flag("--entrypoints.web.adress=:80".into())
        );
        assert!(
            e.message.contains("did you mean `entryPoints.web.address`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_scalar_names_key() {
        let t = flag_tree(&[("n", "seven")]);
        let e = decode::<Root>(&t, "").expect_err("must fail");
        assert_eq!(e.key, "n");
        assert!(e.message.contains("seven"));
    }

    #[test]
    fn indexed_segments_build_lists() {
        let mut root = Node::map(Source::Internal);
        root.insert_path(&["d[1]", "main"], Node::scalar("b", Source::Internal))
            .expect("insert");
        root.insert_path(&["d[0]", "main"], Node::scalar("a", Source::Internal))
            .expect("insert");
        #[derive(Deserialize)]
        struct D {
            main: String,
        }
        #[derive(Deserialize)]
        struct R {
            d: Vec<D>,
        }
        let r: R = decode(&root, "").expect("decode");
        assert_eq!(
            r.d.iter().map(|d| d.main.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn conflicting_paths_are_rejected() {
        let mut root = Node::map(Source::Internal);
        root.insert_path(&["a", "b"], Node::scalar("1", Source::Internal))
            .expect("insert");
        assert!(root
            .insert_path(&["a", "b", "c"], Node::scalar("2", Source::Internal))
            .is_err());
        assert!(root
            .insert_path(&["x[zz]"], Node::scalar("2", Source::Internal))
            .is_err());
    }

    #[test]
    fn enums_match_case_insensitively() {
        #[derive(Deserialize, Debug, PartialEq)]
        enum Level {
            #[serde(rename = "DEBUG")]
            Debug,
            #[serde(rename = "INFO")]
            Info,
        }
        #[derive(Deserialize)]
        struct R {
            level: Level,
        }
        let t = flag_tree(&[("level", "debug")]);
        assert_eq!(decode::<R>(&t, "").expect("decode").level, Level::Debug);
        let t = flag_tree(&[("level", "loud")]);
        assert!(decode::<R>(&t, "").is_err());
    }
}
