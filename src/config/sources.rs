//! Readers that turn each kind of input (flags, environment, YAML, TOML) into a [`Node`] tree.
//!
//! Each reader is pure: it takes text or key/value pairs and returns a tree whose every value remembers its
//! [`Source`], or an error that says where the input is malformed (file, line, column). Typing and unknown-key
//! checks happen later, in [`crate::value::node::decode`], the same way for every source.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::value::node::{Node, NodeKind, Source};

/// A source that could not be read at all (syntax error), with its location.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// A command-line flag that is not `--key`, `--key=value`.
    #[error("flag `{flag}`: {reason}")]
    Flag {
        /// The flag as written.
        flag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment variable whose name cannot be mapped to a key.
    #[error("environment variable `{var}`: {reason}")]
    Env {
        /// The variable's name.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file that does not parse.
    #[error("{path}:{line}:{column}: {reason}")]
    Syntax {
        /// The file path as given.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        reason: String,
    },
    /// A document larger than [`MAX_DOCUMENT_BYTES`].
    #[error("{path}: the document is {size} bytes, more than the {limit} MiB a configuration may be", limit = MAX_DOCUMENT_BYTES >> 20)]
    TooLarge {
        /// The file path as given.
        path: String,
        /// Its size in bytes.
        size: u64,
    },
}

/// Builds a tree from `--dotted.key[=value]` flags. A flag without `=` means `true` (Traefik's behaviour).
///
/// Keys keep their case here; decoding matches them case-insensitively.
pub fn from_flags<S: AsRef<str>>(flags: &[S]) -> Result<Node, SourceError> {
    let mut root = Node::map(Source::Internal);
    for raw in flags {
        let raw = raw.as_ref();
        let body = raw
            .strip_prefix("--")
            .or_else(|| raw.strip_prefix('-'))
            .ok_or_else(|| SourceError::Flag {
                flag: raw.to_string(),
                reason: "expected `--key=value` or `--key`".into(),
            })?;
        let (key, value) = match body.split_once('=') {
            Some((k, v)) => (k, v),
            None => (body, "true"),
        };
        let segments: Vec<&str> = key.split('.').collect();
        root.insert_path(
            &segments,
            Node::scalar(value, Source::Flag(raw.to_string())),
        )
        .map_err(|reason| SourceError::Flag {
            flag: raw.to_string(),
            reason,
        })?;
    }
    Ok(root)
}

/// Builds a tree from environment variables starting with `prefix` (`TRAEFIK_`); others are ignored.
///
/// `TRAEFIK_ENTRYPOINTS_WEB_ADDRESS=:80` becomes `entrypoints.web.address`. Every `_` separates keys, as in
/// Traefik; names are lowercased (decoding is case-insensitive anyway).
pub fn from_env<I, K, V>(vars: I, prefix: &str) -> Result<Node, SourceError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut root = Node::map(Source::Internal);
    for (name, value) in vars {
        let name = name.as_ref();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let segments: Vec<&str> = lower.split('_').collect();
        root.insert_path(
            &segments,
            Node::scalar(value.as_ref(), Source::Env(name.to_string())),
        )
        .map_err(|reason| SourceError::Env {
            var: name.to_string(),
            reason,
        })?;
    }
    Ok(root)
}

/// Largest configuration document read (YAML or TOML), in bytes.
///
/// A 42,000-router dynamic file is about 4 MiB; four times that leaves room for real configurations while a
/// file that would take the process's memory is refused before it is parsed.
pub const MAX_DOCUMENT_BYTES: usize = 16 << 20;

/// Deepest nesting of maps and lists accepted in a configuration document.
///
/// Traefik's deepest real keys are about ten levels; the trees are walked recursively (decoding, cloning,
/// dropping), so an unbounded depth could overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// go-yaml's bound on alias expansion (`allowedAliasRatio` in yaml.v3's decoder): up to this many nodes, 99 %
/// of a document's nodes may come from aliases...
const ALIAS_RATIO_RANGE_LOW: usize = 400_000;
/// ...and from this many on, only 10 %; in between the allowed share falls linearly. Past the low end this
/// caps alias-made nodes at about 400,000 (plus a tenth of the document's own nodes), whatever the anchors.
const ALIAS_RATIO_RANGE_HIGH: usize = 4_000_000;

/// The share of a document's `total` nodes that may come from alias expansion (go-yaml's curve).
fn allowed_alias_ratio(total: usize) -> f64 {
    if total <= ALIAS_RATIO_RANGE_LOW {
        0.99
    } else if total >= ALIAS_RATIO_RANGE_HIGH {
        0.10
    } else {
        let range = (ALIAS_RATIO_RANGE_HIGH - ALIAS_RATIO_RANGE_LOW) as f64;
        0.99 - 0.89 * ((total - ALIAS_RATIO_RANGE_LOW) as f64 / range)
    }
}

/// True when `alias` of `total` nodes made from aliases is more than a document may expand (go-yaml's test:
/// small documents are never refused).
fn excessive_aliasing(alias: usize, total: usize) -> bool {
    alias > 100 && total > 1000 && alias as f64 / total as f64 > allowed_alias_ratio(total)
}

/// Refuses a document larger than [`MAX_DOCUMENT_BYTES`].
fn check_size(text: &str, path: &str) -> Result<(), SourceError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(SourceError::TooLarge {
            path: path.to_string(),
            size: text.len() as u64,
        });
    }
    Ok(())
}

/// Reads a configuration file's text, refusing (without reading it all) one larger than
/// [`MAX_DOCUMENT_BYTES`] with an `InvalidData` error that says so. Used by every file reader (static file,
/// file provider, `swarmgate check`) so that no file can make the process allocate its size.
pub fn read_text(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the file is larger than {} MiB, the most a configuration document may be",
                MAX_DOCUMENT_BYTES >> 20
            ),
        ));
    }
    Ok(text)
}

/// Parses YAML text into a tree whose values carry `path:line:column` sources.
///
/// Anchors and aliases are resolved (compose files use them); tags are ignored. An empty document is an empty
/// map; only the first document of a stream is read. Hostile input is refused with a located error instead of
/// exhausting the process: a document over [`MAX_DOCUMENT_BYTES`], nesting deeper than [`MAX_DEPTH`], or
/// aliases expanding to more nodes than go-yaml allows ("excessive aliasing"). The event stream is walked
/// iteratively, never recursively, and stops at the first error.
pub fn from_yaml(text: &str, path: &str) -> Result<Node, SourceError> {
    check_size(text, path)?;
    let path: Arc<str> = Arc::from(path);
    let syntax = |marker: Marker, reason: String| SourceError::Syntax {
        path: path.to_string(),
        line: marker.line(),
        column: marker.col() + 1,
        reason,
    };
    let mut builder = YamlBuilder {
        path: path.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        error: None,
        total_nodes: 0,
        alias_nodes: 0,
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        let (ev, mark) = parser
            .next_token()
            .map_err(|e| syntax(*e.marker(), e.info().to_string()))?;
        if matches!(ev, Event::StreamEnd | Event::DocumentEnd) {
            break;
        }
        builder.on_event(ev, mark);
        if let Some((marker, reason)) = builder.error.take() {
            return Err(syntax(marker, reason));
        }
    }
    Ok(builder.root.unwrap_or_else(|| {
        Node::map(Source::File {
            path,
            line: 1,
            column: 1,
        })
    }))
}

/// A mapping being built, with its keys indexed so that duplicate and merge checks cost O(1) per key.
struct MapFrame {
    node: Node,
    anchor: usize,
    /// Nodes in this subtree so far (the map itself included).
    count: usize,
    /// The pending key, once read.
    key: Option<String>,
    /// Keys written explicitly (exact spelling): a second one is a duplicate.
    explicit: HashSet<String>,
    /// Lowercased key → (entry index, came from a `<<` merge).
    index: HashMap<String, (usize, bool)>,
}

enum Frame {
    Map(Box<MapFrame>),
    Seq {
        node: Node,
        anchor: usize,
        count: usize,
    },
}

struct YamlBuilder {
    path: Arc<str>,
    stack: Vec<Frame>,
    /// Anchor id → (node, its node count).
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    error: Option<(Marker, String)>,
    /// Every node produced, alias expansions included.
    total_nodes: usize,
    /// Nodes produced by alias expansion.
    alias_nodes: usize,
}

impl YamlBuilder {
    fn source(&self, mark: Marker) -> Source {
        Source::File {
            path: self.path.clone(),
            line: mark.line(),
            column: mark.col() + 1,
        }
    }

    fn fail(&mut self, mark: Marker, reason: String) {
        self.error.get_or_insert((mark, reason));
    }

    /// Opens a map or list, refusing nesting deeper than [`MAX_DEPTH`].
    fn open(&mut self, frame: Frame, mark: Marker) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(
                mark,
                format!(
                    "nesting is deeper than {MAX_DEPTH} levels, the most a configuration may have"
                ),
            );
            return;
        }
        self.total_nodes += 1;
        self.stack.push(frame);
    }

    /// Attaches a finished value of `count` nodes to its parent (or makes it the root).
    fn push_value(&mut self, value: Node, count: usize, mark: Marker) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { node, count: c, .. }) => {
                *c += count;
                if let NodeKind::List(items) = &mut node.kind {
                    items.push(value);
                }
            }
            Some(Frame::Map(m)) => {
                m.count += count;
                let Some(k) = m.key.take() else {
                    match value.kind {
                        NodeKind::Scalar(s) => m.key = Some(s),
                        _ => self.fail(mark, "mapping keys must be plain scalars".into()),
                    }
                    return;
                };
                let NodeKind::Map(entries) = &mut m.node.kind else {
                    return;
                };
                if k == "<<" {
                    // Merge key: copy the entries that are not set (explicit keys win, in any order).
                    if let NodeKind::Map(merged) = value.kind {
                        for (mk, mv) in merged {
                            let lower = mk.to_ascii_lowercase();
                            if let std::collections::hash_map::Entry::Vacant(slot) =
                                m.index.entry(lower)
                            {
                                slot.insert((entries.len(), true));
                                entries.push((mk, mv));
                            }
                        }
                    }
                } else if !m.explicit.insert(k.clone()) {
                    self.error
                        .get_or_insert((mark, format!("duplicate key `{k}`")));
                } else {
                    match m.index.get_mut(&k.to_ascii_lowercase()) {
                        // An explicit key replaces what a merge brought in.
                        Some((i, merged @ true)) => {
                            *merged = false;
                            // `i` was `entries.len()` when the merged entry was pushed; entries only grow.
                            match entries.get_mut(*i) {
                                Some(slot) => *slot = (k, value),
                                None => entries.push((k, value)),
                            }
                        }
                        Some(_) => entries.push((k, value)),
                        None => {
                            m.index
                                .insert(k.to_ascii_lowercase(), (entries.len(), false));
                            entries.push((k, value));
                        }
                    }
                }
            }
        }
    }
}

impl MarkedEventReceiver for YamlBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                // A plain `~` or `null` is an absent value: represented as an empty scalar.
                let text = if style == yaml_rust2::scanner::TScalarStyle::Plain
                    && (text == "~" || text == "null")
                {
                    String::new()
                } else {
                    text
                };
                self.total_nodes += 1;
                let node = Node::scalar(text, self.source(mark));
                if anchor > 0 {
                    self.anchors.insert(anchor, (node.clone(), 1));
                }
                self.push_value(node, 1, mark);
            }
            Event::MappingStart(anchor, _) => {
                let frame = Frame::Map(Box::new(MapFrame {
                    node: Node::map(self.source(mark)),
                    anchor,
                    count: 1,
                    key: None,
                    explicit: HashSet::new(),
                    index: HashMap::new(),
                }));
                self.open(frame, mark);
            }
            Event::SequenceStart(anchor, _) => {
                let frame = Frame::Seq {
                    node: Node {
                        kind: NodeKind::List(Vec::new()),
                        source: self.source(mark),
                    },
                    anchor,
                    count: 1,
                };
                self.open(frame, mark);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (node, anchor, count) = match self.stack.pop() {
                    Some(Frame::Map(m)) => (m.node, m.anchor, m.count),
                    Some(Frame::Seq {
                        node,
                        anchor,
                        count,
                    }) => (node, anchor, count),
                    None => return,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, (node.clone(), count));
                }
                self.push_value(node, count, mark);
            }
            Event::Alias(id) => {
                let Some((node, count)) = self.anchors.get(&id) else {
                    self.fail(mark, format!("unknown alias #{id}"));
                    return;
                };
                let count = *count;
                // Counted before the copy is made: a refused expansion allocates nothing.
                self.alias_nodes = self.alias_nodes.saturating_add(count);
                self.total_nodes = self.total_nodes.saturating_add(count);
                if excessive_aliasing(self.alias_nodes, self.total_nodes) {
                    self.fail(
                        mark,
                        format!(
                            "document contains excessive aliasing: aliases expand to {} of its {} nodes \
                             (anchors referenced too often, as in a \"billion laughs\" document)",
                            self.alias_nodes, self.total_nodes
                        ),
                    );
                    return;
                }
                let node = node.clone();
                self.push_value(node, count, mark);
            }
            _ => {}
        }
    }
}

/// Parses TOML text into a tree whose values carry `path:line:column` sources.
///
/// A document over [`MAX_DOCUMENT_BYTES`] or nesting deeper than [`MAX_DEPTH`] is refused with a located error
/// (toml_edit bounds its own recursion too).
pub fn from_toml(text: &str, path: &str) -> Result<Node, SourceError> {
    check_size(text, path)?;
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        SourceError::Syntax {
            path: path.to_string(),
            line,
            column,
            reason: e.message().to_string(),
        }
    })?;
    let path: Arc<str> = Arc::from(path);
    let line_starts = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let ctx = TomlCtx {
        text,
        path,
        line_starts,
    };
    ctx.table(doc.as_table(), Some(0), 1)
}

struct TomlCtx<'t> {
    text: &'t str,
    path: Arc<str>,
    /// Byte offset of every line's start: positions are found by binary search, so locating every value of
    /// a large file stays linear overall.
    line_starts: Vec<usize>,
}

impl TomlCtx<'_> {
    /// 1-based line and column (in chars) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        (line, col)
    }

    fn source(&self, span: Option<std::ops::Range<usize>>) -> Source {
        let (line, column) = span.map(|s| self.line_col(s.start)).unwrap_or((1, 1));
        Source::File {
            path: self.path.clone(),
            line,
            column,
        }
    }

    /// Refuses a map or list at `depth` beyond [`MAX_DEPTH`], located at `span`.
    fn deeper(
        &self,
        depth: usize,
        span: Option<std::ops::Range<usize>>,
    ) -> Result<(), SourceError> {
        if depth <= MAX_DEPTH {
            return Ok(());
        }
        let (line, column) = span.map(|s| self.line_col(s.start)).unwrap_or((1, 1));
        Err(SourceError::Syntax {
            path: self.path.to_string(),
            line,
            column,
            reason: format!(
                "nesting is deeper than {MAX_DEPTH} levels, the most a configuration may have"
            ),
        })
    }

    fn table(
        &self,
        table: &toml_edit::Table,
        at: Option<usize>,
        depth: usize,
    ) -> Result<Node, SourceError> {
        let span = table.span().or(at.map(|a| a..a));
        self.deeper(depth, span.clone())?;
        let mut entries = Vec::new();
        for (key, item) in table.iter() {
            let key_span = table.key(key).and_then(|k| k.span());
            entries.push((key.to_string(), self.item(item, key_span, depth + 1)?));
        }
        Ok(Node {
            kind: NodeKind::Map(entries),
            source: self.source(span),
        })
    }

    fn item(
        &self,
        item: &toml_edit::Item,
        key_span: Option<std::ops::Range<usize>>,
        depth: usize,
    ) -> Result<Node, SourceError> {
        Ok(match item {
            toml_edit::Item::None => Node::scalar("", self.source(key_span)),
            toml_edit::Item::Table(t) => {
                let mut n = self.table(t, None, depth)?;
                if let Some(span) = key_span.or(t.span()) {
                    n.source = self.source(Some(span));
                }
                n
            }
            toml_edit::Item::ArrayOfTables(a) => {
                let span = key_span.or(a.span());
                self.deeper(depth, span.clone())?;
                let items = a
                    .iter()
                    .map(|t| self.table(t, None, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Node {
                    kind: NodeKind::List(items),
                    source: self.source(span),
                }
            }
            toml_edit::Item::Value(v) => self.value(v, key_span, depth)?,
        })
    }

    fn value(
        &self,
        v: &toml_edit::Value,
        key_span: Option<std::ops::Range<usize>>,
        depth: usize,
    ) -> Result<Node, SourceError> {
        let span = key_span.or(v.span());
        let source = self.source(span.clone());
        Ok(match v {
            toml_edit::Value::String(s) => Node::scalar(s.value().clone(), source),
            toml_edit::Value::Integer(i) => Node::scalar(i.value().to_string(), source),
            toml_edit::Value::Float(f) => Node::scalar(f.value().to_string(), source),
            toml_edit::Value::Boolean(b) => Node::scalar(b.value().to_string(), source),
            toml_edit::Value::Datetime(d) => Node::scalar(d.value().to_string(), source),
            toml_edit::Value::Array(a) => {
                self.deeper(depth, span)?;
                let items = a
                    .iter()
                    .map(|v| self.value(v, None, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Node {
                    kind: NodeKind::List(items),
                    source,
                }
            }
            toml_edit::Value::InlineTable(t) => {
                self.deeper(depth, span)?;
                let mut entries = Vec::new();
                for (k, v) in t.iter() {
                    let ks = t.key(k).and_then(|k| k.span());
                    entries.push((k.to_string(), self.value(v, ks, depth + 1)?));
                }
                Node {
                    kind: NodeKind::Map(entries),
                    source,
                }
            }
        })
    }
}

/// 1-based line and column (in chars) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Parses a file's text by its extension (`.toml` → TOML, anything else → YAML, as Traefik accepts `.yml`/`.yaml`).
pub fn from_file_text(text: &str, path: &str) -> Result<Node, SourceError> {
    if path.to_ascii_lowercase().ends_with(".toml") {
        from_toml(text, path)
    } else {
        from_yaml(text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_without_value_are_true() {
        let n = from_flags(&["--api", "--entrypoints.web.address=:80"]).expect("flags");
        assert_eq!(n.get("api").and_then(Node::as_str), Some("true"));
        assert_eq!(
            n.get("entryPoints")
                .and_then(|e| e.get("web"))
                .and_then(|w| w.get("address"))
                .and_then(Node::as_str),
            Some(":80")
        );
    }

    #[test]
    fn bad_flag_is_reported() {
        let e = from_flags(&["entrypoints"]).expect_err("no dashes");
        assert!(matches!(e, SourceError::Flag { .. }));
    }

    #[test]
    fn env_maps_to_keys() {
        let n = from_env(
            vec![
                ("TRAEFIK_ENTRYPOINTS_WEB_ADDRESS", ":80"),
                ("HOME", "/root"),
            ],
            "TRAEFIK_",
        )
        .expect("env");
        let addr = n
            .get("entrypoints")
            .and_then(|e| e.get("web"))
            .and_then(|w| w.get("address"))
            .expect("address");
        assert_eq!(addr.as_str(), Some(":80"));
        assert_eq!(
            addr.source,
            Source::Env("TRAEFIK_ENTRYPOINTS_WEB_ADDRESS".into())
        );
        assert!(n.get("home").is_none());
    }

    #[test]
    fn yaml_values_carry_line_and_column() {
        let text = "entryPoints:\n  web:\n    address: \":80\"\n";
        let n = from_yaml(text, "t.yml").expect("yaml");
        let addr = n
            .get("entryPoints")
            .and_then(|e| e.get("web"))
            .and_then(|w| w.get("address"))
            .expect("address");
        assert_eq!(addr.as_str(), Some(":80"));
        match &addr.source {
            Source::File { line, .. } => assert_eq!(*line, 3),
            other => panic!("unexpected source {other:?}"),
        }
    }

    #[test]
    fn yaml_syntax_error_has_position() {
        let e = from_yaml("a:\n  b: [1, 2\n", "bad.yml").expect_err("broken");
        match e {
            SourceError::Syntax { path, line, .. } => {
                assert_eq!(path, "bad.yml");
                assert!(line >= 2);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn yaml_anchors_and_merge_keys() {
        let text = "base: &b\n  x: 1\nother:\n  <<: *b\n  y: 2\n";
        let n = from_yaml(text, "t.yml").expect("yaml");
        let other = n.get("other").expect("other");
        assert_eq!(other.get("x").and_then(Node::as_str), Some("1"));
        assert_eq!(other.get("y").and_then(Node::as_str), Some("2"));
    }

    #[test]
    fn yaml_duplicate_key_is_an_error() {
        assert!(from_yaml("a: 1\na: 2\n", "d.yml").is_err());
    }

    #[test]
    fn toml_values_carry_line() {
        let text = "[entryPoints.web]\naddress = \":80\"\n[[x]]\ny = 1\n";
        let n = from_toml(text, "t.toml").expect("toml");
        let addr = n
            .get("entryPoints")
            .and_then(|e| e.get("web"))
            .and_then(|w| w.get("address"))
            .expect("address");
        assert_eq!(addr.as_str(), Some(":80"));
        match &addr.source {
            Source::File { line, .. } => assert_eq!(*line, 2),
            other => panic!("unexpected source {other:?}"),
        }
        assert!(matches!(
            n.get("x").map(|x| &x.kind),
            Some(NodeKind::List(_))
        ));
    }

    /// The "billion laughs" document of the issue: 9 levels of 9 aliases each (9^9 leaves if expanded).
    fn alias_bomb() -> String {
        let mut text = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..=9 {
            let refs = vec![format!("*a{}", i - 1); 9].join(",");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        text
    }

    #[test]
    fn yaml_alias_bomb_is_refused_naming_the_file() {
        let e = from_yaml(&alias_bomb(), "bomb.yml").expect_err("must be refused");
        let msg = e.to_string();
        assert!(msg.starts_with("bomb.yml:"), "{msg}");
        assert!(msg.contains("excessive aliasing"), "{msg}");
    }

    #[test]
    fn yaml_moderate_aliasing_is_accepted() {
        // Compose-style reuse: one anchor merged into 200 services.
        let mut text =
            String::from("x-common: &common\n  image: whoami\n  restart: always\nservices:\n");
        for i in 0..200 {
            text.push_str(&format!("  s{i}:\n    <<: *common\n    hostname: h{i}\n"));
        }
        let n = from_yaml(&text, "c.yml").expect("accepted");
        let s7 = n.get("services").and_then(|s| s.get("s7")).expect("s7");
        assert_eq!(s7.get("image").and_then(Node::as_str), Some("whoami"));
    }

    #[test]
    fn yaml_deep_nesting_is_refused_without_overflowing() {
        for text in ["- ".repeat(200_000) + "x\n", "[".repeat(250)] {
            let e = from_yaml(&text, "deep.yml").expect_err("too deep");
            let msg = e.to_string();
            assert!(msg.starts_with("deep.yml:"), "{msg}");
        }
        let e = from_yaml(&("- ".repeat(MAX_DEPTH + 1) + "x\n"), "deep.yml").expect_err("too deep");
        assert!(e.to_string().contains("deeper than"), "{e}");
        assert!(from_yaml(&("- ".repeat(MAX_DEPTH - 1) + "x\n"), "ok.yml").is_ok());
    }

    #[test]
    fn oversized_documents_are_refused() {
        let big = "#".repeat(MAX_DOCUMENT_BYTES + 1);
        assert!(matches!(
            from_yaml(&big, "big.yml"),
            Err(SourceError::TooLarge { .. })
        ));
        assert!(matches!(
            from_toml(&big, "big.toml"),
            Err(SourceError::TooLarge { .. })
        ));
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("big.yml");
        std::fs::write(&f, &big).expect("write");
        let e = read_text(&f).expect_err("too large");
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[test]
    fn toml_deep_nesting_is_refused() {
        let text = format!("a = {}1{}\n", "[".repeat(70), "]".repeat(70));
        let e = from_toml(&text, "deep.toml").expect_err("too deep");
        assert!(e.to_string().contains("deeper than"), "{e}");
        let text = format!("a = {}1{}\n", "[".repeat(500), "]".repeat(500));
        assert!(from_toml(&text, "deep.toml").is_err());
    }

    #[test]
    fn yaml_explicit_keys_override_merged_ones_in_any_order() {
        let text = "base: &b\n  x: 1\n  y: 1\nother:\n  <<: *b\n  x: 2\n";
        let n = from_yaml(text, "t.yml").expect("yaml");
        let other = n.get("other").expect("other");
        assert_eq!(other.get("x").and_then(Node::as_str), Some("2"));
        assert_eq!(other.get("y").and_then(Node::as_str), Some("1"));
        assert!(from_yaml("a:\n  k: 1\n  j: 2\n  k: 3\n", "d.yml").is_err());
    }

    #[test]
    fn toml_positions_match_line_col() {
        let text = "[a]\nb = 1\n\n[c]\n  d = \"é\"\n";
        let n = from_toml(text, "t.toml").expect("toml");
        let d = n.get("c").and_then(|c| c.get("d")).expect("d");
        assert_eq!(
            d.source,
            Source::File {
                path: Arc::from("t.toml"),
                line: 5,
                column: 3
            }
        );
    }

    #[test]
    fn toml_syntax_error_has_position() {
        let e = from_toml("a = \n", "bad.toml").expect_err("broken");
        assert!(matches!(e, SourceError::Syntax { line: 1, .. }));
    }
}
