//! Go regular expressions (RE2 syntax, Go's `regexp` package) rewritten for the `regex` crate,
//! so that a pattern means what it means in Traefik.
//!
//! The two dialects agree on most syntax, but not all of it, and the differences show up in
//! real rules:
//!
//! * Go treats a `{` that does not start a valid repetition (`{2}`, `{2,}`, `{2,5}`) as a
//!   literal; the `regex` crate rejects it. Traefik's own tests rely on this
//!   (`HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)` compiles and matches the literal
//!   text `http{secure:s}`), and v2-style templates pasted into v3 rules depend on it.
//! * Go's `\d`, `\w`, `\s` and `\b` are ASCII-only; the `regex` crate's are Unicode-aware.
//! * Inside a class, Go treats `[`, `&&`, `--` and `~~` literally; the `regex` crate reads
//!   them as nested classes and set operations.
//! * Go has `\Q...\E`, octal escapes (`\123`), `\C`; the `regex` crate does not. The `regex`
//!   crate has `\<`, `\>` and `\b{start}`, which in Go are the literals `<`, `>` and `{start}`.
//!
//! [`translate`] parses the Go pattern (the same grammar as Go's `regexp/syntax` in Perl mode)
//! and emits an equivalent pattern, writing every class member as a `\x{..}` escape so nothing
//! can be misread. Errors name the problem the way Go would refuse the pattern.

use regex::bytes::{Regex, RegexBuilder};

/// Compiles a Go-syntax pattern into a byte regex with Go's semantics.
///
/// Patterns are matched unanchored (like Go's `MatchString`) unless they anchor themselves.
pub(crate) fn compile(go_pattern: &str) -> Result<Regex, String> {
    compile_rust(&translate(go_pattern)?)
}

/// Compiles a pattern that is already in `regex`-crate syntax (built from translated parts).
pub(crate) fn compile_rust(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(1 << 22)
        .dfa_size_limit(1 << 22)
        .build()
        .map_err(|e| describe_error(&e))
}

/// The one-line reason from a `regex` error (its Display spans several lines).
fn describe_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or("invalid syntax")
            .to_owned(),
        regex::Error::CompiledTooBig(_) => "regular expression is too large".to_owned(),
        _ => "invalid regular expression".to_owned(),
    }
}

/// Go's limit on counted repetitions (`regexp/syntax`: "invalid repeat count").
const MAX_REPEAT: u32 = 1000;

const POSIX_CLASSES: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

struct Translator<'a> {
    chars: Vec<char>,
    i: usize,
    out: String,
    src: &'a str,
}

fn hex(out: &mut String, c: char) {
    out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
}

/// Perl class `\d \s \w` (and negations) as an ASCII class body, Go's definitions.
fn perl_class_body(c: char) -> Option<(&'static str, bool)> {
    match c {
        'd' => Some(("0-9", false)),
        'D' => Some(("0-9", true)),
        's' => Some(("\\t\\n\\x0C\\r ", false)),
        'S' => Some(("\\t\\n\\x0C\\r ", true)),
        'w' => Some(("0-9A-Za-z_", false)),
        'W' => Some(("0-9A-Za-z_", true)),
        _ => None,
    }
}

impl Translator<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn run(mut self) -> Result<String, String> {
        while let Some(c) = self.bump() {
            match c {
                '\\' => self.escape_outside()?,
                '[' => self.class()?,
                '{' => self.brace()?,
                '(' => self.group()?,
                // Everything else has the same meaning in both dialects (`.`, `^`, `$`, `|`,
                // `)`, `*`, `+`, `?`, literal `]` and `}`, plain characters).
                c => self.out.push(c),
            }
        }
        Ok(self.out)
    }

    /// `{` starts a repetition only in the exact forms `{n}`, `{n,}`, `{n,m}`; otherwise Go
    /// reads it as a literal brace. Counts above Go's limit are refused as Go refuses them.
    fn brace(&mut self) -> Result<(), String> {
        let rest: String = self.chars.iter().skip(self.i).take(24).collect();
        let Some(len) = repeat_len(&rest) else {
            self.out.push_str("\\{");
            return Ok(());
        };
        let body = &rest[..len - 1];
        for n in body.split(',') {
            if !n.is_empty() && n.parse::<u32>().map_or(true, |n| n > MAX_REPEAT) {
                return Err(format!("invalid repeat count `{{{body}}}`"));
            }
        }
        self.out.push('{');
        self.out.push_str(&rest[..len]);
        self.i += len;
        Ok(())
    }

    fn group(&mut self) -> Result<(), String> {
        if self.peek() != Some('?') {
            self.out.push('(');
            return Ok(());
        }
        // Named group: (?P<name>re) or (?<name>re).
        let named = match (self.peek_at(1), self.peek_at(2)) {
            (Some('P'), Some('<')) => Some(3),
            (Some('<'), _) => Some(2),
            _ => None,
        };
        if let Some(skip) = named {
            let mut name = String::new();
            let mut k = self.i + skip;
            loop {
                match self.chars.get(k) {
                    Some('>') => break,
                    Some(&c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                    _ => return Err(format!("invalid named capture in `{}`", self.src)),
                }
                k += 1;
            }
            if name.is_empty() {
                return Err("invalid named capture: empty name".to_owned());
            }
            self.i = k + 1;
            self.out.push_str("(?P<");
            self.out.push_str(&name);
            self.out.push('>');
            return Ok(());
        }
        // Flags: (?flags) or (?flags:re), flags from Go's set only.
        let mut k = self.i + 1;
        let mut flags = String::new();
        loop {
            match self.chars.get(k) {
                Some(&c @ ('i' | 'm' | 's' | 'U' | '-')) => flags.push(c),
                Some(&c @ (')' | ':')) => {
                    if flags.is_empty() && c == ')' || flags.ends_with('-') {
                        return Err("missing flags in `(?` group".to_owned());
                    }
                    self.out.push_str("(?");
                    self.out.push_str(&flags);
                    self.out.push(c);
                    self.i = k + 1;
                    return Ok(());
                }
                _ => {
                    return Err(
                        "invalid or unsupported Perl syntax after `(?` (Go accepts the flags i, m, s, U and named groups)"
                            .to_owned(),
                    )
                }
            }
            k += 1;
        }
    }

    /// An escape outside a class (the backslash is consumed).
    fn escape_outside(&mut self) -> Result<(), String> {
        let Some(c) = self.peek() else {
            return Err("trailing backslash at end of expression".to_owned());
        };
        match c {
            'A' | 'z' => {
                self.bump();
                self.out.push('\\');
                self.out.push(c);
            }
            'b' | 'B' => {
                // Go's word boundary is ASCII.
                self.bump();
                self.out
                    .push_str(if c == 'b' { "(?-u:\\b)" } else { "(?-u:\\B)" });
            }
            'C' => {
                self.bump();
                self.out.push_str("(?s-u:.)");
            }
            'Q' => {
                self.bump();
                while let Some(c) = self.bump() {
                    if c == '\\' && self.peek() == Some('E') {
                        self.bump();
                        break;
                    }
                    hex(&mut self.out, c);
                }
            }
            'p' | 'P' => {
                let body = self.unicode_class()?;
                self.out.push_str(&body);
            }
            c if perl_class_body(c).is_some() => {
                self.bump();
                if let Some((body, negated)) = perl_class_body(c) {
                    self.out.push('[');
                    if negated {
                        self.out.push('^');
                    }
                    self.out.push_str(body);
                    self.out.push(']');
                }
            }
            _ => {
                let lit = self.escaped_char()?;
                hex(&mut self.out, lit);
            }
        }
        Ok(())
    }

    /// `\pL`, `\p{Greek}`, `\P{^Greek}`: the backslash is consumed, `self.peek()` is p/P.
    fn unicode_class(&mut self) -> Result<String, String> {
        let Some(kind) = self.bump() else {
            return Err("invalid Unicode class".to_owned());
        };
        let mut negated = kind == 'P';
        let name = match self.bump() {
            Some('{') => {
                let mut name = String::new();
                loop {
                    match self.bump() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err("unclosed Unicode class `\\p{`".to_owned()),
                    }
                }
                if let Some(stripped) = name.strip_prefix('^') {
                    negated = !negated;
                    name = stripped.to_owned();
                }
                name
            }
            Some(c) => c.to_string(),
            None => return Err("invalid Unicode class".to_owned()),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid Unicode class `{name}`"));
        }
        Ok(format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }))
    }

    /// A single escaped character (the backslash is consumed): octal, hex, control and
    /// punctuation escapes, as Go's `parseEscape` accepts them.
    fn escaped_char(&mut self) -> Result<char, String> {
        let Some(c) = self.bump() else {
            return Err("trailing backslash at end of expression".to_owned());
        };
        let octal = |c: Option<char>| c.filter(|c| ('0'..='7').contains(c));
        match c {
            '1'..='7' if octal(self.peek()).is_none() => Err(format!(
                "invalid escape sequence `\\{c}` (backreferences are not supported)"
            )),
            '0'..='7' => {
                let mut v = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match octal(self.peek()) {
                        Some(d) => {
                            self.bump();
                            v = v * 8 + d.to_digit(8).unwrap_or(0);
                        }
                        None => break,
                    }
                }
                char::from_u32(v).ok_or_else(|| "invalid octal escape".to_owned())
            }
            'x' => {
                let mut v: u32 = 0;
                if self.peek() == Some('{') {
                    self.bump();
                    let mut n = 0;
                    loop {
                        match self.bump() {
                            Some('}') if n > 0 => break,
                            Some(d) if d.is_ascii_hexdigit() && v <= 0x10FFFF => {
                                v = v * 16 + d.to_digit(16).unwrap_or(0);
                                n += 1;
                            }
                            _ => return Err("invalid escape sequence `\\x{...}`".to_owned()),
                        }
                    }
                } else {
                    for _ in 0..2 {
                        match self.bump().and_then(|d| d.to_digit(16)) {
                            Some(d) => v = v * 16 + d,
                            None => return Err("invalid escape sequence `\\x`".to_owned()),
                        }
                    }
                }
                char::from_u32(v).ok_or_else(|| "invalid escape sequence `\\x`".to_owned())
            }
            'a' => Ok('\u{7}'),
            'f' => Ok('\u{c}'),
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'v' => Ok('\u{b}'),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c),
            c => Err(format!("invalid escape sequence `\\{c}`")),
        }
    }

    /// A bracketed class (the `[` is consumed), re-emitted member by member.
    fn class(&mut self) -> Result<(), String> {
        self.out.push('[');
        if self.peek() == Some('^') {
            self.bump();
            self.out.push('^');
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err("missing closing ] in character class".to_owned());
            };
            if c == ']' && !first {
                self.bump();
                self.out.push(']');
                return Ok(());
            }
            first = false;
            // POSIX class [:name:] or [:^name:].
            if c == '[' && self.peek_at(1) == Some(':') {
                let rest: String = self.chars.iter().skip(self.i + 2).collect();
                if let Some(end) = rest.find(":]") {
                    let name = &rest[..end];
                    let bare = name.strip_prefix('^').unwrap_or(name);
                    if !POSIX_CLASSES.contains(&bare) {
                        return Err(format!("invalid character class range `[:{name}:]`"));
                    }
                    self.out.push_str("[:");
                    self.out.push_str(name);
                    self.out.push_str(":]");
                    self.i += 2 + name.chars().count() + 2;
                    continue;
                }
            }
            if c == '\\' {
                match self.peek_at(1) {
                    Some('p' | 'P') => {
                        self.bump();
                        let body = self.unicode_class()?;
                        self.out.push_str(&body);
                        continue;
                    }
                    Some(p) => {
                        if let Some((body, negated)) = perl_class_body(p) {
                            self.i += 2;
                            if negated {
                                // A nested negated class inside the union.
                                self.out.push_str("[^");
                                self.out.push_str(body);
                                self.out.push(']');
                            } else {
                                self.out.push_str(body);
                            }
                            continue;
                        }
                    }
                    None => {}
                }
            }
            let lo = self.class_char()?;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.bump();
                let hi = self.class_char()?;
                if hi < lo {
                    return Err(format!(
                        "invalid character class range `{}-{}`",
                        lo.escape_debug(),
                        hi.escape_debug()
                    ));
                }
                hex(&mut self.out, lo);
                self.out.push('-');
                hex(&mut self.out, hi);
            } else {
                hex(&mut self.out, lo);
            }
        }
    }

    fn class_char(&mut self) -> Result<char, String> {
        match self.bump() {
            Some('\\') => self.escaped_char(),
            Some(c) => Ok(c),
            None => Err("missing closing ] in character class".to_owned()),
        }
    }
}

/// Length of a valid Go repetition body after `{` (`n}`, `n,}`, `n,m}`), if `rest` starts with
/// one.
fn repeat_len(rest: &str) -> Option<usize> {
    let b = rest.as_bytes();
    let digits = |from: usize| {
        b.iter()
            .skip(from)
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let n = digits(0);
    if n == 0 {
        return None;
    }
    let mut k = n;
    if b.get(k) == Some(&b',') {
        k += 1;
        k += digits(k);
    }
    (b.get(k) == Some(&b'}')).then_some(k + 1)
}

/// Rewrites a Go regular expression into `regex`-crate syntax with the same meaning.
///
/// Returns Go-style reasons for patterns Go would reject (the `regex` crate then reports
/// anything this scanner passes through unchanged, such as unbalanced parentheses).
pub(crate) fn translate(go_pattern: &str) -> Result<String, String> {
    let t = Translator {
        chars: go_pattern.chars().collect(),
        i: 0,
        out: String::with_capacity(go_pattern.len() + 8),
        src: go_pattern,
    };
    t.run()
}
