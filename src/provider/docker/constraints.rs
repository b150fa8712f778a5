//! `providers.docker.constraints` / `providers.swarm.constraints`: which containers a provider considers.
//!
//! Traefik's grammar: ``Label(`key`, `value`)`` (exact value), ``LabelRegex(`key`, `regex`)`` (Go regex, not
//! anchored, as Traefik's `MatchString`), combined with `!`, `&&`, `||` and parentheses. Parsed once at start-up
//! ([`Constraint::parse`]); a bad expression is a start-up error naming the column. Evaluation is pure.

use std::collections::BTreeMap;

use regex::Regex;

/// Why a constraint expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("constraints `{expr}`: column {column}: {message}")]
pub struct ConstraintError {
    /// The whole expression.
    pub expr: String,
    /// 1-based column of the problem.
    pub column: usize,
    /// What was expected.
    pub message: String,
}

/// A parsed constraint expression.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// ``Label(`k`, `v`)``.
    Label(String, String),
    /// ``LabelRegex(`k`, `re`)``.
    LabelRegex(String, Regex),
    /// `!x`.
    Not(Box<Constraint>),
    /// `a && b`.
    And(Box<Constraint>, Box<Constraint>),
    /// `a || b`.
    Or(Box<Constraint>, Box<Constraint>),
}

impl Constraint {
    /// Parses an expression (see the module docs).
    pub fn parse(expr: &str) -> Result<Constraint, ConstraintError> {
        let mut p = Parser { src: expr, pos: 0 };
        let c = p.or()?;
        p.skip_ws();
        if p.pos != expr.len() {
            return Err(p.err("unexpected text after the expression"));
        }
        Ok(c)
    }

    /// Whether a container or service with `labels` satisfies the expression.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Constraint::Label(k, v) => labels.get(k).is_some_and(|x| x == v),
            Constraint::LabelRegex(k, re) => labels.get(k).is_some_and(|x| re.is_match(x)),
            Constraint::Not(c) => !c.matches(labels),
            Constraint::And(a, b) => a.matches(labels) && b.matches(labels),
            Constraint::Or(a, b) => a.matches(labels) || b.matches(labels),
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, message: &str) -> ConstraintError {
        ConstraintError {
            expr: self.src.to_string(),
            column: self.pos + 1,
            message: message.to_string(),
        }
    }

    fn skip_ws(&mut self) {
        while self.src[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.src[self.pos..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.src[self.pos..].starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Constraint, ConstraintError> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Constraint::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Constraint, ConstraintError> {
        let mut left = self.not()?;
        while self.eat("&&") {
            left = Constraint::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Constraint, ConstraintError> {
        if self.eat("!") {
            return Ok(Constraint::Not(Box::new(self.not()?)));
        }
        if self.eat("(") {
            let c = self.or()?;
            if !self.eat(")") {
                return Err(self.err("expected `)`"));
            }
            return Ok(c);
        }
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        let start = self.pos;
        self.pos += name_len;
        if !self.eat("(") {
            return Err(self.err("expected `Label(...)` or `LabelRegex(...)`"));
        }
        let key = self.string()?;
        if !self.eat(",") {
            return Err(self.err("expected `,`"));
        }
        let value = self.string()?;
        if !self.eat(")") {
            return Err(self.err("expected `)`"));
        }
        match name {
            "Label" => Ok(Constraint::Label(key, value)),
            "LabelRegex" => Regex::new(&value)
                .map(|re| Constraint::LabelRegex(key, re))
                .map_err(|e| ConstraintError {
                    expr: self.src.to_string(),
                    column: start + 1,
                    message: format!("bad regex: {e}"),
                }),
            other => Err(ConstraintError {
                expr: self.src.to_string(),
                column: start + 1,
                message: format!("unknown matcher `{other}` (Label or LabelRegex)"),
            }),
        }
    }

    fn string(&mut self) -> Result<String, ConstraintError> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let Some(q) = rest.chars().next().filter(|c| *c == '`' || *c == '"') else {
            return Err(self.err("expected a quoted string"));
        };
        let Some(end) = rest[1..].find(q) else {
            return Err(self.err("unterminated string"));
        };
        let s = rest[1..1 + end].to_string();
        self.pos += end + 2;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(l: &[(&str, &str)]) -> BTreeMap<String, String> {
        l.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn table() {
        let l = labels(&[
            ("env", "prod"),
            ("team", "web-a"),
            ("traefik.tags", "api,public"),
        ]);
        let rows: &[(&str, bool)] = &[
            ("Label(`env`, `prod`)", true),
            ("Label(`env`,`dev`)", false),
            ("Label(\"env\", \"prod\")", true),
            ("!Label(`env`, `dev`)", true),
            ("LabelRegex(`team`, `^web-`)", true),
            ("LabelRegex(`team`, `b-a`)", true),
            ("LabelRegex(`missing`, `.*`)", false),
            ("Label(`env`, `prod`) && Label(`team`, `x`)", false),
            ("Label(`env`, `prod`) && !Label(`team`, `x`)", true),
            ("Label(`env`, `dev`) || Label(`team`, `web-a`)", true),
            ("!(Label(`env`, `dev`) || Label(`team`, `x`))", true),
            (
                "Label(`a`,`1`) || Label(`env`,`prod`) && Label(`team`,`no`)",
                false,
            ),
            ("LabelRegex(`traefik.tags`, `(^|,)\\s*api\\s*(,|$)`)", true),
        ];
        for (expr, want) in rows {
            let c = Constraint::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(c.matches(&l), *want, "{expr}");
        }
    }

    #[test]
    fn errors_have_columns() {
        for (expr, col) in [
            ("Labl(`a`,`b`)", 1),
            ("Label(`a` `b`)", 11),
            ("Label(`a`,`b`) &&", 18),
            ("LabelRegex(`a`,`(`)", 1),
        ] {
            let e = Constraint::parse(expr).expect_err(expr);
            assert_eq!(e.column, col, "{expr}: {e}");
        }
    }
}
