//! Matcher names per grammar: which names exist, how many arguments each takes, and the
//! "did you mean" help for names that do not exist.
//!
//! Traefik registers every matcher under four spellings (`pkg/rules/parser.go`, `NewParser`):
//! as declared (`PathPrefix`), lower case (`pathprefix`), upper case (`PATHPREFIX`) and title
//! case of the lower-cased name (`Pathprefix`). Any other spelling (`pathPrefix`) is unknown to
//! Traefik, so it is unknown here too — but the error says which spelling to use.

use super::Syntax;

/// How many arguments a matcher accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arity {
    /// Exactly this many (v3 matchers: Traefik `expectNParameters`).
    Exactly(usize),
    /// One or two (v3 `Query` / `QueryRegexp`).
    OneOrTwo,
    /// One or more (every v2 matcher).
    AtLeastOne,
}

/// One matcher a grammar knows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    /// The declared spelling; lowering matches on it.
    pub name: &'static str,
    /// Accepted argument counts.
    pub arity: Arity,
    /// What the arguments are, for "needs N arguments" errors.
    pub args_doc: &'static str,
}

/// A name that is not a matcher of this grammar but is one elsewhere, with the advice to give.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Elsewhere {
    pub name: &'static str,
    pub advice: &'static str,
}

/// The matcher names of one grammar (HTTP or TCP, v2 or v3).
#[derive(Debug)]
pub(crate) struct Vocabulary {
    /// Shown in errors: "v3 HTTP", "v2 TCP", ...
    pub label: &'static str,
    pub specs: &'static [Spec],
    pub elsewhere: &'static [Elsewhere],
}

const fn spec(name: &'static str, arity: Arity, args_doc: &'static str) -> Spec {
    Spec {
        name,
        arity,
        args_doc,
    }
}

const ONE: Arity = Arity::Exactly(1);
const TWO: Arity = Arity::Exactly(2);
const MANY: Arity = Arity::AtLeastOne;

/// v3 HTTP matchers (traefik `pkg/muxer/http/matcher.go`, `httpFuncs`).
pub(crate) static HTTP_V3: Vocabulary = Vocabulary {
    label: "v3 HTTP",
    specs: &[
        spec("ClientIP", ONE, "an IP address or CIDR range"),
        spec("Method", ONE, "an HTTP method"),
        spec("Host", ONE, "a host name"),
        spec("HostRegexp", ONE, "a regular expression"),
        spec("Path", ONE, "a path"),
        spec("PathRegexp", ONE, "a regular expression"),
        spec("PathPrefix", ONE, "a path prefix"),
        spec("Header", TWO, "a header name and a value"),
        spec("HeaderRegexp", TWO, "a header name and a regular expression"),
        spec("Query", Arity::OneOrTwo, "a parameter name and optionally a value"),
        spec(
            "QueryRegexp",
            Arity::OneOrTwo,
            "a parameter name and optionally a regular expression",
        ),
    ],
    elsewhere: &[
        Elsewhere {
            name: "Headers",
            advice: "`Headers` is the v2 spelling: use Header(`name`, `value`), or set the router's ruleSyntax to v2",
        },
        Elsewhere {
            name: "HeadersRegexp",
            advice: "`HeadersRegexp` is the v2 spelling: use HeaderRegexp(`name`, `regexp`), or set the router's ruleSyntax to v2",
        },
        Elsewhere {
            name: "HostHeader",
            advice: "`HostHeader` exists only in v2 syntax: use Host(`example.com`)",
        },
        Elsewhere {
            name: "HostSNI",
            advice: "`HostSNI` is a TCP matcher: HTTP routers use Host(`example.com`)",
        },
        Elsewhere {
            name: "HostSNIRegexp",
            advice: "`HostSNIRegexp` is a TCP matcher: HTTP routers use HostRegexp",
        },
        Elsewhere {
            name: "ALPN",
            advice: "`ALPN` is a TCP matcher and cannot be used in an HTTP rule",
        },
    ],
};

/// v2 HTTP matchers (traefik `pkg/muxer/http/matcher_v2.go`, `httpFuncsV2`).
pub(crate) static HTTP_V2: Vocabulary = Vocabulary {
    label: "v2 HTTP",
    specs: &[
        spec("Host", MANY, "host names"),
        spec("HostHeader", MANY, "host names"),
        spec("HostRegexp", MANY, "host templates"),
        spec("ClientIP", MANY, "IP addresses or CIDR ranges"),
        spec("Path", MANY, "path templates"),
        spec("PathPrefix", MANY, "path templates"),
        spec("Method", MANY, "HTTP methods"),
        spec("Headers", MANY, "header name and value pairs"),
        spec(
            "HeadersRegexp",
            MANY,
            "header name and regular expression pairs",
        ),
        spec("Query", MANY, "`key=value` pairs"),
    ],
    elsewhere: &[
        Elsewhere {
            name: "Header",
            advice: "`Header` is the v3 spelling: in v2 syntax write Headers(`name`, `value`)",
        },
        Elsewhere {
            name: "HeaderRegexp",
            advice: "`HeaderRegexp` is the v3 spelling: in v2 syntax write HeadersRegexp(`name`, `regexp`)",
        },
        Elsewhere {
            name: "PathRegexp",
            advice: "`PathRegexp` exists only in v3 syntax: in v2 use a template such as Path(`/{id:[0-9]+}`)",
        },
        Elsewhere {
            name: "QueryRegexp",
            advice: "`QueryRegexp` exists only in v3 syntax: in v2 use a template such as Query(`id={id:[0-9]+}`)",
        },
        Elsewhere {
            name: "HostSNI",
            advice: "`HostSNI` is a TCP matcher: HTTP routers use Host(`example.com`)",
        },
        Elsewhere {
            name: "HostSNIRegexp",
            advice: "`HostSNIRegexp` is a TCP matcher: HTTP routers use HostRegexp",
        },
        Elsewhere {
            name: "ALPN",
            advice: "`ALPN` is a TCP matcher and cannot be used in an HTTP rule",
        },
    ],
};

const HTTP_ONLY_IN_TCP: &[Elsewhere] = &[
    Elsewhere {
        name: "Host",
        advice: "`Host` is an HTTP matcher: TCP routers match the TLS server name with HostSNI(`example.com`)",
    },
    Elsewhere {
        name: "HostRegexp",
        advice: "`HostRegexp` is an HTTP matcher: TCP routers use HostSNIRegexp",
    },
    Elsewhere {
        name: "Path",
        advice: "`Path` is an HTTP matcher: a TCP router cannot see paths",
    },
    Elsewhere {
        name: "PathPrefix",
        advice: "`PathPrefix` is an HTTP matcher: a TCP router cannot see paths",
    },
];

/// v3 TCP matchers (traefik `pkg/muxer/tcp/matcher.go`, `tcpFuncs`).
pub(crate) static TCP_V3: Vocabulary = Vocabulary {
    label: "v3 TCP",
    specs: &[
        spec("ALPN", ONE, "an ALPN protocol"),
        spec("ClientIP", ONE, "an IP address or CIDR range"),
        spec("HostSNI", ONE, "a server name"),
        spec("HostSNIRegexp", ONE, "a regular expression"),
    ],
    elsewhere: HTTP_ONLY_IN_TCP,
};

/// v2 TCP matchers (traefik `pkg/muxer/tcp/matcher_v2.go`, `tcpFuncsV2`).
pub(crate) static TCP_V2: Vocabulary = Vocabulary {
    label: "v2 TCP",
    specs: &[
        spec("ALPN", MANY, "ALPN protocols"),
        spec("ClientIP", MANY, "IP addresses or CIDR ranges"),
        spec("HostSNI", MANY, "server names"),
        spec("HostSNIRegexp", MANY, "server name templates"),
    ],
    elsewhere: HTTP_ONLY_IN_TCP,
};

/// The vocabulary for HTTP rules of `syntax`.
pub(crate) fn http(syntax: Syntax) -> &'static Vocabulary {
    match syntax {
        Syntax::V2 => &HTTP_V2,
        Syntax::V3 => &HTTP_V3,
    }
}

/// The vocabulary for TCP rules of `syntax`.
pub(crate) fn tcp(syntax: Syntax) -> &'static Vocabulary {
    match syntax {
        Syntax::V2 => &TCP_V2,
        Syntax::V3 => &TCP_V3,
    }
}

/// True when `written` is one of the four spellings Traefik registers for `declared`.
fn spelled_as(written: &str, declared: &str) -> bool {
    if written == declared {
        return true;
    }
    // Compared byte by byte, without building the spellings: this runs for every matcher of every rule
    // at table-build time. `to_ascii_*` on a `str` maps each byte alone, so this equals comparing with
    // `declared.to_ascii_lowercase()`, `to_ascii_uppercase()` and the title case of the lower case.
    if written.len() != declared.len() {
        return false;
    }
    let pairs = || written.bytes().zip(declared.bytes());
    if pairs().all(|(w, d)| w == d.to_ascii_lowercase())
        || pairs().all(|(w, d)| w == d.to_ascii_uppercase())
    {
        return true;
    }
    // Title case of the lower-cased name: first letter upper, the rest lower.
    pairs().enumerate().all(|(i, (w, d))| {
        w == if i == 0 {
            d.to_ascii_uppercase()
        } else {
            d.to_ascii_lowercase()
        }
    })
}

impl Vocabulary {
    /// The matcher `written` names, if it is one of the accepted spellings.
    pub(crate) fn resolve(&self, written: &str) -> Option<&'static Spec> {
        self.specs.iter().find(|s| spelled_as(written, s.name))
    }

    /// Explains why `written` is not a matcher here, naming the closest real one.
    pub(crate) fn unknown(&self, written: &str) -> String {
        if let Some(s) = self
            .specs
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(written))
        {
            let lower = s.name.to_ascii_lowercase();
            return format!(
                "unknown matcher `{written}`: matcher names are case-sensitive, write `{}` (or `{}`, `{}`)",
                s.name,
                lower,
                s.name.to_ascii_uppercase()
            );
        }
        if let Some(e) = self
            .elsewhere
            .iter()
            .find(|e| spelled_as(written, e.name) || e.name.eq_ignore_ascii_case(written))
        {
            return format!(
                "unknown matcher `{written}` in a {} rule: {}",
                self.label, e.advice
            );
        }
        let folded = written.to_lowercase();
        let best = self
            .specs
            .iter()
            .map(|s| (edit_distance(&folded, &s.name.to_ascii_lowercase()), s.name))
            .min_by_key(|(d, _)| *d);
        match best {
            Some((d, name)) if d <= 2 || d * 3 <= written.chars().count() => {
                format!("unknown matcher `{written}` (did you mean `{name}`?)")
            }
            _ => {
                let all: Vec<&str> = self.specs.iter().map(|s| s.name).collect();
                format!(
                    "unknown matcher `{written}` (the {} matchers are {})",
                    self.label,
                    all.join(", ")
                )
            }
        }
    }
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbours each cost 1, so `Hots` is one edit from `Host`. Used only for error messages.
// In bounds: i ranges over 1..=a.len() and j over 1..=b.len(), so a[i-1], a[i-2] (i > 1), b[j-1], b[j-2]
// (j > 1) index inside `a` and `b`, and every row has b.len() + 1 entries for indices 0..=b.len().
#[allow(clippy::indexing_slicing)]
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the classic dynamic-programming table.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::spelled_as;

    /// The spellings Traefik accepts, built the obvious (allocating) way.
    fn reference(written: &str, declared: &str) -> bool {
        let lower = declared.to_ascii_lowercase();
        let mut title = String::new();
        let mut chars = lower.chars();
        if let Some(first) = chars.next() {
            title.push(first.to_ascii_uppercase());
            title.extend(chars);
        }
        written == declared
            || written == lower
            || written == declared.to_ascii_uppercase()
            || written == title
    }

    #[test]
    fn byte_comparison_accepts_exactly_the_four_spellings() {
        let declared = [
            "PathPrefix",
            "Host",
            "HostSNI",
            "ClientIP",
            "Query",
            "Header",
        ];
        let written = [
            "PathPrefix",
            "pathprefix",
            "PATHPREFIX",
            "Pathprefix",
            "pathPrefix",
            "PathPrefiX",
            "Path",
            "Host",
            "host",
            "HOST",
            "hOst",
            "HostSNI",
            "hostsni",
            "HOSTSNI",
            "Hostsni",
            "HostSni",
            "ClientIP",
            "clientip",
            "Clientip",
            "CLIENTIP",
            "ClientIp",
            "",
            "Hóst",
            "Qu\u{e9}ry",
        ];
        for d in declared {
            for w in written {
                assert_eq!(spelled_as(w, d), reference(w, d), "`{w}` as `{d}`");
            }
        }
    }
}
