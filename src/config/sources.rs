//! Readers that turn each kind of input (flags, environment, YAML, TOML) into a [`Node`] tree.
//!
//! Each reader is pure: it takes text or key/value pairs and returns a tree whose every value remembers its
//! [`Source`], or an error that says where the input is malformed (file, line, column). Typing and unknown-key
//! checks happen later, in [`super::node::decode`], the same way for every source.

use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::node::{Node, NodeKind, Source};

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

/// Parses YAML text into a tree whose values carry `path:line:column` sources.
///
/// Anchors and aliases are resolved (compose files use them); tags are ignored. An empty document is an empty map.
pub fn from_yaml(text: &str, path: &str) -> Result<Node, SourceError> {
    let path: Arc<str> = Arc::from(path);
    let mut builder = YamlBuilder {
        path: path.clone(),
        stack: Vec::new(),
        anchors: Vec::new(),
        root: None,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|e| SourceError::Syntax {
            path: path.to_string(),
            line: e.marker().line(),
            column: e.marker().col() + 1,
            reason: e.info().to_string(),
        })?;
    if let Some((marker, reason)) = builder.error {
        return Err(SourceError::Syntax {
            path: path.to_string(),
            line: marker.line(),
            column: marker.col() + 1,
            reason,
        });
    }
    Ok(builder.root.unwrap_or_else(|| {
        Node::map(Source::File {
            path,
            line: 1,
            column: 1,
        })
    }))
}

enum Frame {
    Map {
        node: Node,
        anchor: usize,
        key: Option<String>,
    },
    Seq {
        node: Node,
        anchor: usize,
    },
}

struct YamlBuilder {
    path: Arc<str>,
    stack: Vec<Frame>,
    anchors: Vec<(usize, Node)>,
    root: Option<Node>,
    error: Option<(Marker, String)>,
}

impl YamlBuilder {
    fn source(&self, mark: Marker) -> Source {
        Source::File {
            path: self.path.clone(),
            line: mark.line(),
            column: mark.col() + 1,
        }
    }

    /// Attaches a finished value to its parent (or makes it the root).
    fn push_value(&mut self, value: Node, mark: Marker) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { node, .. }) => {
                if let NodeKind::List(items) = &mut node.kind {
                    items.push(value);
                }
            }
            Some(Frame::Map { node, key, .. }) => match key.take() {
                None => match value.kind {
                    NodeKind::Scalar(s) => *key = Some(s),
                    _ => {
                        self.error
                            .get_or_insert((mark, "mapping keys must be plain scalars".into()));
                    }
                },
                Some(k) => {
                    if let NodeKind::Map(entries) = &mut node.kind {
                        if k == "<<" {
                            // Merge key: copy entries that are not set explicitly.
                            if let NodeKind::Map(merged) = value.kind {
                                for (mk, mv) in merged {
                                    if !entries.iter().any(|(ek, _)| ek.eq_ignore_ascii_case(&mk)) {
                                        entries.push((mk, mv));
                                    }
                                }
                            }
                        } else if entries.iter().any(|(ek, _)| ek == &k) {
                            self.error
                                .get_or_insert((mark, format!("duplicate key `{k}`")));
                        } else {
                            entries.push((k, value));
                        }
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for YamlBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
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
                let node = Node::scalar(text, self.source(mark));
                if anchor > 0 {
                    self.anchors.push((anchor, node.clone()));
                }
                self.push_value(node, mark);
            }
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                node: Node::map(self.source(mark)),
                anchor,
                key: None,
            }),
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                node: Node {
                    kind: NodeKind::List(Vec::new()),
                    source: self.source(mark),
                },
                anchor,
            }),
            Event::MappingEnd | Event::SequenceEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Map { node, anchor, .. }) | Some(Frame::Seq { node, anchor }) => {
                        (node, anchor)
                    }
                    None => return,
                };
                if anchor > 0 {
                    self.anchors.push((anchor, node.clone()));
                }
                self.push_value(node, mark);
            }
            Event::Alias(id) => match self.anchors.iter().rev().find(|(a, _)| *a == id) {
                Some((_, node)) => {
                    let node = node.clone();
                    self.push_value(node, mark);
                }
                None => {
                    self.error
                        .get_or_insert((mark, format!("unknown alias #{id}")));
                }
            },
            _ => {}
        }
    }
}

/// Parses TOML text into a tree whose values carry `path:line:column` sources.
pub fn from_toml(text: &str, path: &str) -> Result<Node, SourceError> {
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
    let ctx = TomlCtx { text, path };
    Ok(ctx.table(doc.as_table(), Some(0)))
}

struct TomlCtx<'t> {
    text: &'t str,
    path: Arc<str>,
}

impl TomlCtx<'_> {
    fn source(&self, span: Option<std::ops::Range<usize>>) -> Source {
        let (line, column) = span.map(|s| line_col(self.text, s.start)).unwrap_or((1, 1));
        Source::File {
            path: self.path.clone(),
            line,
            column,
        }
    }

    fn table(&self, table: &toml_edit::Table, at: Option<usize>) -> Node {
        let mut entries = Vec::new();
        for (key, item) in table.iter() {
            let key_span = table.key(key).and_then(|k| k.span());
            entries.push((key.to_string(), self.item(item, key_span)));
        }
        Node {
            kind: NodeKind::Map(entries),
            source: self.source(table.span().or(at.map(|a| a..a))),
        }
    }

    fn item(&self, item: &toml_edit::Item, key_span: Option<std::ops::Range<usize>>) -> Node {
        match item {
            toml_edit::Item::None => Node::scalar("", self.source(key_span)),
            toml_edit::Item::Table(t) => {
                let mut n = self.table(t, None);
                if let Some(span) = key_span.or(t.span()) {
                    n.source = self.source(Some(span));
                }
                n
            }
            toml_edit::Item::ArrayOfTables(a) => Node {
                kind: NodeKind::List(a.iter().map(|t| self.table(t, None)).collect()),
                source: self.source(key_span.or(a.span())),
            },
            toml_edit::Item::Value(v) => self.value(v, key_span),
        }
    }

    fn value(&self, v: &toml_edit::Value, key_span: Option<std::ops::Range<usize>>) -> Node {
        let source = self.source(key_span.clone().or(v.span()));
        match v {
            toml_edit::Value::String(s) => Node::scalar(s.value().clone(), source),
            toml_edit::Value::Integer(i) => Node::scalar(i.value().to_string(), source),
            toml_edit::Value::Float(f) => Node::scalar(f.value().to_string(), source),
            toml_edit::Value::Boolean(b) => Node::scalar(b.value().to_string(), source),
            toml_edit::Value::Datetime(d) => Node::scalar(d.value().to_string(), source),
            toml_edit::Value::Array(a) => Node {
                kind: NodeKind::List(a.iter().map(|v| self.value(v, None)).collect()),
                source,
            },
            toml_edit::Value::InlineTable(t) => {
                let mut entries = Vec::new();
                for (k, v) in t.iter() {
                    let ks = t.key(k).and_then(|k| k.span());
                    entries.push((k.to_string(), self.value(v, ks)));
                }
                Node {
                    kind: NodeKind::Map(entries),
                    source,
                }
            }
        }
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

    #[test]
    fn toml_syntax_error_has_position() {
        let e = from_toml("a = \n", "bad.toml").expect_err("broken");
        assert!(matches!(e, SourceError::Syntax { line: 1, .. }));
    }
}
