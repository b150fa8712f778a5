//! Lexer and recursive-descent parser shared by HTTP and TCP rules: text → [`Expr`] tree of
//! calls joined by `&&`, `||` and `!`.
//!
//! Traefik hands rules to `vulcand/predicate`, which runs Go's own expression parser
//! (`go/parser.ParseExpr`), so the grammar is a slice of Go's:
//!
//! * operators `||` (loosest), `&&`, then prefix `!` (tightest); parentheses group;
//! * a matcher is `Name(arg, ...)`, each argument a Go string literal: a raw string in
//!   backticks (no escapes; carriage returns dropped, as Go does) or an interpreted string in
//!   double quotes with Go's escapes (`\n`, `\t`, `\\`, `\"`, `\x41`, `\101`, `\u00e9`, ...);
//!   a trailing comma before `)` is allowed, as in Go.
//!
//! Deliberate differences, all more lenient than Traefik and none changing the meaning of a
//! rule Traefik accepts: a newline is plain whitespace (Go would insert a semicolon after `)`
//! at a line end and reject the rule), and Go comments are not supported (nobody writes them).
//!
//! Nesting of `(` and `!` is capped at [`MAX_DEPTH`] so that hostile input cannot overflow the
//! stack; everything after parsing (lowering, matching) recurses no deeper than this.

use super::names::{Arity, Spec, Vocabulary};
use super::RuleError;

/// Deepest nesting of parentheses and `!` accepted. Real rules use a handful.
pub(crate) const MAX_DEPTH: usize = 100;

/// One argument: the decoded string and the column of its opening quote.
#[derive(Debug, Clone)]
pub(crate) struct Arg {
    pub value: String,
    pub col: usize,
}

/// A matcher call, its name already resolved against the vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub spec: &'static Spec,
    /// Column of the matcher name.
    pub col: usize,
    pub args: Vec<Arg>,
}

/// A parsed rule, before lowering to matchers. `And`/`Or` are flattened (n-ary).
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Call(Call),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Word(&'a str),
    Str(String),
    LParen,
    RParen,
    Comma,
    AndAnd,
    OrOr,
    Bang,
    Eof,
}

#[derive(Debug, Clone)]
struct Token<'a> {
    tok: Tok<'a>,
    col: usize,
}

fn err(col: usize, message: impl Into<String>) -> RuleError {
    RuleError {
        column: col,
        message: message.into(),
    }
}

fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Str(_) => "a string".to_owned(),
        Tok::LParen => "`(`".to_owned(),
        Tok::RParen => "`)`".to_owned(),
        Tok::Comma => "`,`".to_owned(),
        Tok::AndAnd => "`&&`".to_owned(),
        Tok::OrOr => "`||`".to_owned(),
        Tok::Bang => "`!`".to_owned(),
        Tok::Eof => "the end of the rule".to_owned(),
    }
}

struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next unread char.
    pos: usize,
    /// 1-based column (in chars) of the next unread char.
    col: usize,
}

impl<'a> Lexer<'a> {
    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        self.col += 1;
        Some(c)
    }

    fn next_token(&mut self) -> Result<Token<'a>, RuleError> {
        while let Some(c) = self.peek_char() {
            if matches!(c, ' ' | '\t' | '\n' | '\r') {
                self.bump();
            } else {
                break;
            }
        }
        let col = self.col;
        let Some(c) = self.peek_char() else {
            return Ok(Token { tok: Tok::Eof, col });
        };
        let tok = match c {
            '(' => {
                self.bump();
                Tok::LParen
            }
            ')' => {
                self.bump();
                Tok::RParen
            }
            ',' => {
                self.bump();
                Tok::Comma
            }
            '!' => {
                self.bump();
                if self.peek_char() == Some('=') {
                    return Err(err(col, "`!=` is not supported: rules only combine matchers with `&&`, `||` and `!`"));
                }
                Tok::Bang
            }
            '&' => {
                self.bump();
                if self.peek_char() == Some('&') {
                    self.bump();
                    Tok::AndAnd
                } else {
                    return Err(err(col, "found `&`: the AND operator is `&&`"));
                }
            }
            '|' => {
                self.bump();
                if self.peek_char() == Some('|') {
                    self.bump();
                    Tok::OrOr
                } else {
                    return Err(err(col, "found `|`: the OR operator is `||`"));
                }
            }
            '`' => Tok::Str(self.raw_string(col)?),
            '"' => Tok::Str(self.interpreted_string(col)?),
            '\'' => {
                return Err(err(
                    col,
                    "single quotes do not delimit strings in rules: use backticks (`...`) or double quotes (\"...\")",
                ))
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = self.pos;
                while let Some(c) = self.peek_char() {
                    if c.is_alphanumeric() || c == '_' {
                        self.bump();
                    } else {
                        break;
                    }
                }
                Tok::Word(&self.src[start..self.pos])
            }
            other => {
                return Err(err(
                    col,
                    format!("unexpected character `{}`", other.escape_debug()),
                ))
            }
        };
        Ok(Token { tok, col })
    }

    /// A Go raw string: everything up to the next backtick, carriage returns removed.
    ///
    /// Every rule has a few of these (hosts, paths), so the closing backtick is found with one search and
    /// the body copied at once; only a body with a carriage return is copied char by char.
    fn raw_string(&mut self, col: usize) -> Result<String, RuleError> {
        self.bump();
        let rest = self.src.get(self.pos..).unwrap_or_default();
        let Some(body) = rest.find('`').and_then(|end| rest.get(..end)) else {
            self.pos = self.src.len();
            self.col += rest.chars().count();
            return Err(err(
                col,
                "unterminated string: the backtick opened here is never closed",
            ));
        };
        self.pos += body.len() + 1;
        self.col += body.chars().count() + 1;
        Ok(if body.contains('\r') {
            body.chars().filter(|&c| c != '\r').collect()
        } else {
            body.to_owned()
        })
    }

    /// A Go interpreted string literal with Go's escape sequences.
    fn interpreted_string(&mut self, col: usize) -> Result<String, RuleError> {
        self.bump();
        let mut out: Vec<u8> = Vec::new();
        loop {
            let here = self.col;
            match self.bump() {
                None | Some('\n') => {
                    return Err(err(
                        col,
                        "unterminated string: the double quote opened here is never closed",
                    ))
                }
                Some('"') => break,
                Some('\\') => self.escape(here, &mut out)?,
                Some(c) => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        String::from_utf8(out).map_err(|_| {
            err(
                col,
                "string is not valid UTF-8 once its escape sequences are decoded",
            )
        })
    }

    fn hex_digits(&mut self, n: usize, at: usize) -> Result<u32, RuleError> {
        let mut v: u32 = 0;
        for _ in 0..n {
            match self.peek_char().and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    self.bump();
                    v = v * 16 + d;
                }
                None => {
                    return Err(err(
                        at,
                        format!("invalid escape sequence: expected {n} hexadecimal digits"),
                    ))
                }
            }
        }
        Ok(v)
    }

    fn escape(&mut self, at: usize, out: &mut Vec<u8>) -> Result<(), RuleError> {
        let Some(c) = self.bump() else {
            return Err(err(
                at,
                "unterminated string: backslash at the end of the rule",
            ));
        };
        let byte = match c {
            'a' => 0x07,
            'b' => 0x08,
            'f' => 0x0c,
            'n' => b'\n',
            'r' => b'\r',
            't' => b'\t',
            'v' => 0x0b,
            '\\' => b'\\',
            '"' => b'"',
            '0'..='7' => {
                let mut v = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek_char().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            self.bump();
                            v = v * 8 + d;
                        }
                        None => {
                            return Err(err(
                                at,
                                "invalid escape sequence: an octal escape needs exactly 3 digits",
                            ))
                        }
                    }
                }
                u8::try_from(v).map_err(|_| {
                    err(at, "invalid escape sequence: octal value is above 255")
                })?
            }
            'x' => {
                let v = self.hex_digits(2, at)?;
                u8::try_from(v).unwrap_or(u8::MAX)
            }
            'u' | 'U' => {
                let n = if c == 'u' { 4 } else { 8 };
                let v = self.hex_digits(n, at)?;
                let ch = char::from_u32(v).ok_or_else(|| {
                    err(
                        at,
                        "invalid escape sequence: not a Unicode scalar value",
                    )
                })?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            other => {
                return Err(err(
                    at,
                    format!(
                        "invalid escape sequence `\\{}` in a double-quoted string (use a backtick string to write backslashes literally)",
                        other.escape_debug()
                    ),
                ))
            }
        };
        out.push(byte);
        Ok(())
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    vocab: &'static Vocabulary,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&Token<'a>, RuleError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        match &self.peeked {
            Some(t) => Ok(t),
            // Unreachable: filled just above. Report rather than panic.
            None => Err(err(self.lexer.col, "internal parser error")),
        }
    }

    fn next(&mut self) -> Result<Token<'a>, RuleError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next_token(),
        }
    }

    fn or_expr(&mut self, depth: usize) -> Result<Expr, RuleError> {
        let first = self.and_expr(depth)?;
        // Most rules have no `||` (and most operands no `&&`): no list for a lone operand.
        if self.peek()?.tok != Tok::OrOr {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.peek()?.tok == Tok::OrOr {
            self.next()?;
            items.push(self.and_expr(depth)?);
        }
        Ok(join(items, false))
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, RuleError> {
        let first = self.unary(depth)?;
        if self.peek()?.tok != Tok::AndAnd {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.peek()?.tok == Tok::AndAnd {
            self.next()?;
            items.push(self.unary(depth)?);
        }
        Ok(join(items, true))
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, RuleError> {
        let t = self.next()?;
        if depth >= MAX_DEPTH {
            return Err(err(
                t.col,
                format!("rule nests parentheses and `!` more than {MAX_DEPTH} levels deep"),
            ));
        }
        match t.tok {
            Tok::Bang => Ok(match self.unary(depth + 1)? {
                // `!!x` is `x`; keeps trees shallow for machine-generated rules.
                Expr::Not(inner) => *inner,
                e => Expr::Not(Box::new(e)),
            }),
            Tok::LParen => {
                let e = self.or_expr(depth + 1)?;
                let close = self.next()?;
                match close.tok {
                    Tok::RParen => Ok(e),
                    Tok::Word(_) | Tok::Str(_) | Tok::LParen | Tok::Bang => Err(err(
                        close.col,
                        format!(
                            "expected `&&`, `||` or `)` (closing the `(` at column {}), found {}",
                            t.col,
                            describe(&close.tok)
                        ),
                    )),
                    other => Err(err(
                        close.col,
                        format!(
                            "expected `)` to close the `(` at column {}, found {}",
                            t.col,
                            describe(&other)
                        ),
                    )),
                }
            }
            Tok::Word(name) => self.call(name, t.col),
            Tok::Str(_) => Err(err(
                t.col,
                "unexpected string: a value must be the argument of a matcher, e.g. Host(`example.com`)",
            )),
            Tok::Eof => Err(err(
                t.col,
                "unexpected end of rule: expected a matcher such as Host(`example.com`), `!` or `(`",
            )),
            other => Err(err(
                t.col,
                format!(
                    "expected a matcher such as Host(`example.com`), `!` or `(`, found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn call(&mut self, name: &'a str, col: usize) -> Result<Expr, RuleError> {
        if name.starts_with(|c: char| c.is_numeric()) {
            return Err(err(
                col,
                format!("expected a matcher name, found the number `{name}`"),
            ));
        }
        let Some(spec) = self.vocab.resolve(name) else {
            return Err(err(col, self.vocab.unknown(name)));
        };
        let open = self.next()?;
        if open.tok != Tok::LParen {
            return Err(err(
                open.col,
                format!(
                    "expected `(` after the matcher name `{name}`, found {}",
                    describe(&open.tok)
                ),
            ));
        }
        let mut args: Vec<Arg> = Vec::new();
        let close_col;
        loop {
            let t = self.next()?;
            match t.tok {
                Tok::RParen => {
                    close_col = t.col;
                    break;
                }
                Tok::Str(value) => args.push(Arg { value, col: t.col }),
                Tok::Word(w) => {
                    return Err(err(
                        t.col,
                        format!(
                            "expected a quoted string as argument {} of {}, found `{w}` (quote it: {}(`{w}`))",
                            args.len() + 1,
                            spec.name,
                            spec.name
                        ),
                    ))
                }
                other => {
                    return Err(err(
                        t.col,
                        format!(
                            "expected a quoted string (`...` or \"...\") as argument {} of {}, found {}",
                            args.len() + 1,
                            spec.name,
                            describe(&other)
                        ),
                    ))
                }
            }
            let sep = self.next()?;
            match sep.tok {
                Tok::Comma => {
                    if self.peek()?.tok == Tok::RParen {
                        close_col = self.next()?.col;
                        break;
                    }
                }
                Tok::RParen => {
                    close_col = sep.col;
                    break;
                }
                other => {
                    let message = if spec.arity == Arity::Exactly(1) {
                        format!(
                            "expected `)` after the argument of {}, found {}",
                            spec.name,
                            describe(&other)
                        )
                    } else {
                        format!(
                            "expected `,` or `)` after argument {} of {}, found {}",
                            args.len(),
                            spec.name,
                            describe(&other)
                        )
                    };
                    return Err(err(sep.col, message));
                }
            }
        }
        check_args(spec, &args, close_col)?;
        Ok(Expr::Call(Call { spec, col, args }))
    }
}

/// Argument checks common to every matcher: none empty (Traefik `rules.CheckRule`), and a count
/// the matcher accepts (Traefik `expectNParameters`).
fn check_args(spec: &Spec, args: &[Arg], close_col: usize) -> Result<(), RuleError> {
    let name = spec.name;
    if args.is_empty() {
        return Err(err(
            close_col,
            format!("{name} needs {}, got no argument", spec.args_doc),
        ));
    }
    if let Some(a) = args.iter().find(|a| a.value.is_empty()) {
        return Err(err(a.col, format!("empty argument for {name}")));
    }
    let (min, max) = match spec.arity {
        Arity::Exactly(n) => (n, n),
        Arity::OneOrTwo => (1, 2),
        Arity::AtLeastOne => (1, usize::MAX),
    };
    if args.len() < min {
        return Err(err(
            close_col,
            format!(
                "{name} needs {} ({min} arguments), got {}",
                spec.args_doc,
                args.len()
            ),
        ));
    }
    if let Some(extra) = args.get(max) {
        let hint = if max == 1 {
            format!(
                "; v3 matchers take one value, combine several with `||`: {name}(`a`) || {name}(`b`)"
            )
        } else {
            String::new()
        };
        return Err(err(
            extra.col,
            format!(
                "{name} takes {} argument{}, got {}{hint}",
                if min == max {
                    format!("exactly {max}")
                } else {
                    format!("{min} or {max}")
                },
                if max == 1 { "" } else { "s" },
                args.len()
            ),
        ));
    }
    Ok(())
}

/// Builds an n-ary node, flattening children that are the same operator.
fn join(items: Vec<Expr>, and: bool) -> Expr {
    if items.len() == 1 {
        if let Some(only) = items.into_iter().next() {
            return only;
        }
        return Expr::And(Vec::new());
    }
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match (item, and) {
            (Expr::And(children), true) | (Expr::Or(children), false) => flat.extend(children),
            (other, _) => flat.push(other),
        }
    }
    if and {
        Expr::And(flat)
    } else {
        Expr::Or(flat)
    }
}

/// Parses `src` with the matcher names of `vocab`.
///
/// Errors carry the 1-based column (in chars) of the offending token.
pub(crate) fn parse(src: &str, vocab: &'static Vocabulary) -> Result<Expr, RuleError> {
    let mut p = Parser {
        lexer: Lexer {
            src,
            pos: 0,
            col: 1,
        },
        peeked: None,
        vocab,
    };
    if p.peek()?.tok == Tok::Eof {
        return Err(err(
            1,
            "empty rule: expected a matcher such as Host(`example.com`)",
        ));
    }
    let e = p.or_expr(0)?;
    let t = p.next()?;
    match t.tok {
        Tok::Eof => Ok(e),
        Tok::RParen => Err(err(t.col, "unexpected `)`: no `(` is open here")),
        Tok::Word(w) if w.eq_ignore_ascii_case("and") => {
            Err(err(t.col, format!("found `{w}`: the AND operator is `&&`")))
        }
        Tok::Word(w) if w.eq_ignore_ascii_case("or") => {
            Err(err(t.col, format!("found `{w}`: the OR operator is `||`")))
        }
        other => Err(err(
            t.col,
            format!(
                "expected `&&`, `||` or the end of the rule, found {}",
                describe(&other)
            ),
        )),
    }
}
