//! The Go-template subset Traefik users write in `defaultRule`.
//!
//! Traefik renders `providers.docker.defaultRule` (default ``Host(`{{ normalize .Name }}`)``) with Go's
//! `text/template` plus sprig. Real stacks use a handful of forms: field references (`.Name`,
//! `.ContainerName`), `index .Labels "key"`, the `normalize` function, sprig's string helpers and pipes
//! (`{{ .Name | lower }}`). This module parses that subset once at start-up ([`Template::parse`]) and renders it
//! per container or service ([`Template::render`]). Anything outside the subset is a parse error naming the
//! action, so a provider with an unsupported template fails at start-up rather than rendering garbage. Pure.

use std::collections::BTreeMap;

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("defaultRule template: {0}")]
pub struct TemplateError(pub String);

/// What a template sees: Traefik's model for Docker containers and Swarm services.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    /// `.Name`: the service name (compose `service_project`, Swarm service name or container name).
    pub name: &'a str,
    /// `.ContainerName`: the container name without its leading `/`.
    pub container_name: &'a str,
    /// `.Labels`: every label of the container or service.
    pub labels: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Field(String),
    Literal(String),
    Func(String),
    Group(Pipeline),
}

type Command = Vec<Operand>;
type Pipeline = Vec<Command>;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action(Pipeline),
}

/// A parsed template; cheap to render many times.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

const FUNCS: &[&str] = &[
    "normalize",
    "index",
    "lower",
    "upper",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "trim",
    "default",
];

enum Value<'a> {
    Str(String),
    Labels(&'a BTreeMap<String, String>),
}

impl Template {
    /// Parses `text`. Fails on unbalanced `{{`/`}}`, unknown functions or fields, and unterminated strings.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let mut before = &rest[..open];
            let mut inner_start = open + 2;
            if rest[inner_start..].starts_with('-') {
                before = before.trim_end();
                inner_start += 1;
            }
            if !before.is_empty() {
                parts.push(Part::Text(before.to_string()));
            }
            let close = rest[inner_start..]
                .find("}}")
                .ok_or_else(|| TemplateError(format!("unclosed action in `{text}`")))?;
            let mut inner = &rest[inner_start..inner_start + close];
            let mut after = &rest[inner_start + close + 2..];
            if inner.ends_with('-') {
                inner = &inner[..inner.len() - 1];
                after = after.trim_start();
            }
            let tokens = tokenize(inner)?;
            let mut pos = 0;
            let pipeline = parse_pipeline(&tokens, &mut pos)?;
            if let Some(extra) = tokens.get(pos) {
                return Err(TemplateError(format!(
                    "unexpected `{extra}` in `{{{{{inner}}}}}`"
                )));
            }
            if pipeline.is_empty() {
                return Err(TemplateError(format!("empty action in `{text}`")));
            }
            parts.push(Part::Action(pipeline));
            rest = after;
        }
        if rest.contains("}}") {
            return Err(TemplateError(format!("unexpected `}}}}` in `{text}`")));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Traefik's default rule, ``Host(`{{ normalize .Name }}`)``, built without parsing.
    pub fn traefik_default() -> Template {
        Template {
            parts: vec![
                Part::Text("Host(`".into()),
                Part::Action(vec![vec![
                    Operand::Func("normalize".into()),
                    Operand::Field("Name".into()),
                ]]),
                Part::Text("`)".into()),
            ],
        }
    }

    /// Renders the template for one container or service.
    pub fn render(&self, model: &Model<'_>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Action(pl) => match eval_pipeline(pl, model)? {
                    Value::Str(s) => out.push_str(&s),
                    Value::Labels(l) => out.push_str(&format!("map{:?}", l)),
                },
            }
        }
        Ok(out)
    }
}

/// Traefik's `normalize`: runs of characters that are neither letters nor digits become one `-`, and leading
/// or trailing runs are dropped (`stack_web` → `stack-web`, `/a__b/` → `a-b`).
pub fn normalize(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

fn tokenize(s: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
        } else if c == '|' || c == '(' || c == ')' {
            out.push(c.to_string());
            i += 1;
        } else if c == '"' || c == '`' {
            let mut j = i + 1;
            let mut lit = String::new();
            loop {
                let Some(&d) = chars.get(j) else {
                    return Err(TemplateError(format!("unterminated string in `{s}`")));
                };
                if d == c {
                    break;
                }
                if d == '\\' && c == '"' {
                    j += 1;
                    match chars.get(j) {
                        Some('n') => lit.push('\n'),
                        Some('t') => lit.push('\t'),
                        Some(&e) => lit.push(e),
                        None => return Err(TemplateError(format!("unterminated string in `{s}`"))),
                    }
                } else {
                    lit.push(d);
                }
                j += 1;
            }
            out.push(format!("\"{lit}"));
            i = j + 1;
        } else {
            let word: String = chars
                .iter()
                .skip(i)
                .take_while(|c| !c.is_whitespace() && !matches!(c, '|' | '(' | ')' | '"' | '`'))
                .collect();
            i += word.chars().count();
            out.push(word);
        }
    }
    Ok(out)
}

/// Deepest `(` nesting accepted in an action, so that parsing and rendering cannot overflow the stack.
const MAX_GROUP_DEPTH: usize = 32;

fn parse_pipeline(tokens: &[String], pos: &mut usize) -> Result<Pipeline, TemplateError> {
    parse_pipeline_at(tokens, pos, 0)
}

fn parse_pipeline_at(
    tokens: &[String],
    pos: &mut usize,
    depth: usize,
) -> Result<Pipeline, TemplateError> {
    let mut pipeline = Vec::new();
    let mut cmd: Command = Vec::new();
    while let Some(t) = tokens.get(*pos) {
        match t.as_str() {
            ")" => break,
            "|" => {
                if cmd.is_empty() {
                    return Err(TemplateError("empty command before `|`".into()));
                }
                pipeline.push(std::mem::take(&mut cmd));
                *pos += 1;
            }
            "(" => {
                if depth >= MAX_GROUP_DEPTH {
                    return Err(TemplateError(format!(
                        "`(` nested deeper than {MAX_GROUP_DEPTH}"
                    )));
                }
                *pos += 1;
                let inner = parse_pipeline_at(tokens, pos, depth + 1)?;
                if tokens.get(*pos).map(String::as_str) != Some(")") {
                    return Err(TemplateError("unclosed `(`".into()));
                }
                *pos += 1;
                cmd.push(Operand::Group(inner));
            }
            _ => {
                let op = if let Some(lit) = t.strip_prefix('"') {
                    Operand::Literal(lit.to_string())
                } else if let Some(field) = t.strip_prefix('.') {
                    match field {
                        "Name" | "ContainerName" | "Labels" => Operand::Field(field.to_string()),
                        other => {
                            return Err(TemplateError(format!(
                                "unknown field `.{other}` (known: .Name, .ContainerName, .Labels)"
                            )))
                        }
                    }
                } else if FUNCS.contains(&t.as_str()) {
                    Operand::Func(t.clone())
                } else {
                    return Err(TemplateError(format!(
                        "unknown function `{t}` (supported: {})",
                        FUNCS.join(", ")
                    )));
                };
                cmd.push(op);
                *pos += 1;
            }
        }
    }
    if !cmd.is_empty() {
        pipeline.push(cmd);
    } else if !pipeline.is_empty() {
        return Err(TemplateError("empty command after `|`".into()));
    }
    Ok(pipeline)
}

fn eval_pipeline<'a>(pl: &Pipeline, m: &Model<'a>) -> Result<Value<'a>, TemplateError> {
    let mut prev: Option<Value<'a>> = None;
    for cmd in pl {
        prev = Some(eval_command(cmd, prev, m)?);
    }
    prev.ok_or_else(|| TemplateError("empty pipeline".into()))
}

fn eval_operand<'a>(op: &Operand, m: &Model<'a>) -> Result<Value<'a>, TemplateError> {
    Ok(match op {
        Operand::Field(f) if f == "Name" => Value::Str(m.name.to_string()),
        Operand::Field(f) if f == "ContainerName" => Value::Str(m.container_name.to_string()),
        Operand::Field(_) => Value::Labels(m.labels),
        Operand::Literal(s) => Value::Str(s.clone()),
        Operand::Group(pl) => eval_pipeline(pl, m)?,
        Operand::Func(f) => return Err(TemplateError(format!("function `{f}` used as a value"))),
    })
}

fn text(v: Value<'_>) -> Result<String, TemplateError> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Labels(_) => Err(TemplateError(
            "`.Labels` is a map; use `index .Labels \"key\"`".into(),
        )),
    }
}

/// The arguments of a function as a fixed-size array, so each one is named instead of indexed.
fn exact<const N: usize>(args: Vec<String>) -> Result<[String; N], TemplateError> {
    args.try_into().map_err(|a: Vec<String>| {
        TemplateError(format!("expected {N} argument(s), got {}", a.len()))
    })
}

fn eval_command<'a>(
    cmd: &Command,
    piped: Option<Value<'a>>,
    m: &Model<'a>,
) -> Result<Value<'a>, TemplateError> {
    let Some((head, rest)) = cmd.split_first() else {
        return Err(TemplateError("empty command".into()));
    };
    let Operand::Func(f) = head else {
        if !rest.is_empty() || piped.is_some() {
            return Err(TemplateError("a value cannot take arguments".into()));
        }
        return eval_operand(head, m);
    };
    let mut args = rest
        .iter()
        .map(|a| eval_operand(a, m))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(p) = piped {
        args.push(p);
    }
    let given = args.len();
    let mut strs = |n: usize| -> Result<Vec<String>, TemplateError> {
        if given != n {
            return Err(TemplateError(format!(
                "`{f}` takes {n} argument(s), got {given}"
            )));
        }
        std::mem::take(&mut args).into_iter().map(text).collect()
    };
    Ok(Value::Str(match f.as_str() {
        "normalize" => {
            let [a] = exact(strs(1)?)?;
            normalize(&a)
        }
        "lower" => {
            let [a] = exact(strs(1)?)?;
            a.to_lowercase()
        }
        "upper" => {
            let [a] = exact(strs(1)?)?;
            a.to_uppercase()
        }
        "trim" => {
            let [a] = exact(strs(1)?)?;
            a.trim().to_string()
        }
        "trimPrefix" => {
            let [prefix, s] = exact(strs(2)?)?;
            s.strip_prefix(prefix.as_str()).unwrap_or(&s).to_string()
        }
        "trimSuffix" => {
            let [suffix, s] = exact(strs(2)?)?;
            s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_string()
        }
        "replace" => {
            let [old, new, s] = exact(strs(3)?)?;
            s.replace(old.as_str(), &new)
        }
        "default" => {
            let [fallback, s] = exact(strs(2)?)?;
            if s.is_empty() {
                fallback
            } else {
                s
            }
        }
        _ => {
            // index
            if args.len() != 2 {
                return Err(TemplateError(format!(
                    "`index` takes 2 arguments, got {}",
                    args.len()
                )));
            }
            let key = text(args.pop().unwrap_or(Value::Str(String::new())))?;
            match args.pop() {
                Some(Value::Labels(l)) => l.get(&key).cloned().unwrap_or_default(),
                _ => {
                    return Err(TemplateError(
                        "`index` expects `.Labels` as its first argument".into(),
                    ))
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, name: &str, labels: &[(&str, &str)]) -> Result<String, TemplateError> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Template::parse(t)?.render(&Model {
            name,
            container_name: "c_1",
            labels: &labels,
        })
    }

    #[test]
    fn traefik_default_and_common_forms() {
        let rows: &[(&str, &str, &str)] = &[
            (
                "Host(`{{ normalize .Name }}`)",
                "stack_web",
                "Host(`stack-web`)",
            ),
            (
                "Host(`{{ normalize .Name }}.example.com`)",
                "/a__b/",
                "Host(`a-b.example.com`)",
            ),
            (
                "Host(`{{ .Name }}.{{ index .Labels \"domain\" }}`)",
                "web",
                "Host(`web.ex.org`)",
            ),
            (
                "Host(`{{ .Name | normalize | lower }}.x`)",
                "My_App",
                "Host(`my-app.x`)",
            ),
            (
                "Host(`{{ trimPrefix \"stack_\" .Name }}.x`)",
                "stack_api",
                "Host(`api.x`)",
            ),
            ("Host(`{{- .ContainerName -}}`)", "n", "Host(`c_1`)"),
            (
                "Host(`{{ (index .Labels \"missing\") | default \"d\" }}`)",
                "n",
                "Host(`d`)",
            ),
            ("PathPrefix(`/`)", "n", "PathPrefix(`/`)"),
        ];
        for (tpl, name, want) in rows {
            assert_eq!(
                render(tpl, name, &[("domain", "ex.org")]).as_deref(),
                Ok(*want),
                "{tpl}"
            );
        }
    }

    #[test]
    fn built_in_default_equals_parsed_default() {
        assert_eq!(
            Template::traefik_default(),
            Template::parse("Host(`{{ normalize .Name }}`)").expect("parse")
        );
    }

    #[test]
    fn errors_name_the_problem() {
        for (tpl, needle) in [
            ("Host(`{{ .Nmae }}`)", ".Nmae"),
            ("Host(`{{ sha256 .Name }}`)", "sha256"),
            ("Host(`{{ .Name `)", "unclosed"),
            ("Host(`{{ index .Labels }}`)", "2 arguments"),
            ("{{ \"x }}", "unterminated"),
        ] {
            let e = render(tpl, "n", &[]).expect_err(tpl);
            assert!(e.0.contains(needle), "{tpl}: {e}");
        }
    }

    #[test]
    fn normalize_matches_traefik() {
        assert_eq!(normalize("stack_web"), "stack-web");
        assert_eq!(normalize("my.app-1"), "my-app-1");
        assert_eq!(normalize("__x__"), "x");
        assert_eq!(normalize("héllo wörld"), "héllo-wörld");
    }

    #[test]
    fn deeply_nested_groups_are_refused_not_recursed() {
        // Found by the `default_rule` fuzz target: thousands of `(` overflowed the stack.
        let deep = format!("{{{{ {}.Name{} }}}}", "(".repeat(5000), ")".repeat(5000));
        assert!(Template::parse(&deep).is_err());
        let ok = format!("{{{{ {}.Name{} }}}}", "(".repeat(3), ")".repeat(3));
        assert!(Template::parse(&ok).is_ok());
    }
}
