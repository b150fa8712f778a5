//! `circuitBreaker`: stop sending requests to a failing service for a while.
//!
//! The `expression` (`NetworkErrorRatio() > 0.5`, `ResponseCodeRatio(500, 600, 0, 600) > 0.25`,
//! `LatencyAtQuantileMS(50.0) > 100`, combined with `&&`, `||`, `!` and parentheses) is evaluated every
//! `checkPeriod` over the last 10 seconds of outcomes. When it holds, the breaker trips: every request gets
//! `responseCode` (503) for `fallbackDuration`; then it recovers, letting a growing share of requests through
//! over `recoveryDuration`, tripping again if the expression holds, as Traefik's (oxy's) breaker does.
//!
//! The same small expression language (with `IsNetworkError()`, `Attempts()`, `ResponseCode()`) serves
//! `buffering.retryExpression`. Outcomes are recorded under a short mutex: this middleware is opt-in and its
//! state is per service, not global.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;

use super::opts::Opts;
use super::retry::network_failed;
use super::{next, text_response, Cx, Middleware, MiddlewareError, Req, Res};

/// Which functions an expression may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    /// `NetworkErrorRatio()`, `ResponseCodeRatio(a, b, c, d)`, `LatencyAtQuantileMS(q)`.
    CircuitBreaker,
    /// `IsNetworkError()`, `Attempts()`, `ResponseCode()`.
    Retry,
}

/// A value an expression compares.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Share of network errors.
    NetworkErrorRatio,
    /// Responses with a code in [a, b) over responses with a code in [c, d).
    ResponseCodeRatio(u16, u16, u16, u16),
    /// Latency at quantile q (percent), in milliseconds.
    LatencyAtQuantileMs(f64),
    /// Attempts made so far.
    Attempts,
    /// The last response's status.
    ResponseCode,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a || b`
    Or(Box<Expr>, Box<Expr>),
    /// `a && b`
    And(Box<Expr>, Box<Expr>),
    /// `!a`
    Not(Box<Expr>),
    /// `Metric() op number`
    Cmp(Metric, Op, f64),
    /// `IsNetworkError()`
    IsNetworkError,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    LParen,
    RParen,
    Comma,
    And,
    Or,
    Not,
    Op(Op),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while let Some(&byte) = b.get(i) {
        let c = byte as char;
        let two = s.get(i..i + 2).unwrap_or("");
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '(' => (out.push(Tok::LParen), i += 1).1,
            ')' => (out.push(Tok::RParen), i += 1).1,
            ',' => (out.push(Tok::Comma), i += 1).1,
            _ if two == "&&" => (out.push(Tok::And), i += 2).1,
            _ if two == "||" => (out.push(Tok::Or), i += 2).1,
            _ if two == "==" => (out.push(Tok::Op(Op::Eq)), i += 2).1,
            _ if two == "!=" => (out.push(Tok::Op(Op::Ne)), i += 2).1,
            _ if two == "<=" => (out.push(Tok::Op(Op::Le)), i += 2).1,
            _ if two == ">=" => (out.push(Tok::Op(Op::Ge)), i += 2).1,
            '<' => (out.push(Tok::Op(Op::Lt)), i += 1).1,
            '>' => (out.push(Tok::Op(Op::Gt)), i += 1).1,
            '!' => (out.push(Tok::Not), i += 1).1,
            _ if c.is_ascii_digit() || c == '.' || c == '-' => {
                let start = i;
                i += 1;
                while b.get(i).is_some_and(|d| d.is_ascii_digit() || *d == b'.') {
                    i += 1;
                }
                let n = s[start..i]
                    .parse()
                    .map_err(|_| format!("`{}` is not a number", &s[start..i]))?;
                out.push(Tok::Num(n));
            }
            _ if c.is_ascii_alphabetic() => {
                let start = i;
                while b
                    .get(i)
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == b'_')
                {
                    i += 1;
                }
                out.push(Tok::Ident(s[start..i].to_string()));
            }
            _ => return Err(format!("unexpected `{c}` at column {}", i + 1)),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    vocab: Vocabulary,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: Tok, what: &str) -> Result<(), String> {
        match self.bump() {
            Some(x) if x == t => Ok(()),
            _ => Err(format!("expected {what}")),
        }
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.bump();
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.bump();
            l = Expr::And(Box::new(l), Box::new(self.unary()?));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Tok::Not) => {
                self.bump();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::LParen) => {
                self.bump();
                let e = self.or()?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(e)
            }
            _ => self.atom(),
        }
    }
    fn num(&mut self) -> Result<f64, String> {
        match self.bump() {
            Some(Tok::Num(n)) => Ok(n),
            _ => Err("expected a number".into()),
        }
    }
    fn atom(&mut self) -> Result<Expr, String> {
        let Some(Tok::Ident(name)) = self.bump() else {
            return Err("expected a function such as NetworkErrorRatio()".into());
        };
        self.expect(Tok::LParen, &format!("`(` after {name}"))?;
        let cb = self.vocab == Vocabulary::CircuitBreaker;
        let metric = match name.as_str() {
            "NetworkErrorRatio" if cb => Metric::NetworkErrorRatio,
            "ResponseCodeRatio" if cb => {
                let mut v = [0u16; 4];
                for (i, slot) in v.iter_mut().enumerate() {
                    if i > 0 {
                        self.expect(Tok::Comma, "`,` between ResponseCodeRatio arguments")?;
                    }
                    let n = self.num()?;
                    if !(0.0..=1000.0).contains(&n) {
                        return Err(format!("{n} is not a status code bound"));
                    }
                    *slot = n as u16;
                }
                Metric::ResponseCodeRatio(v[0], v[1], v[2], v[3])
            }
            "LatencyAtQuantileMS" if cb => {
                let q = self.num()?;
                if !(0.0..=100.0).contains(&q) {
                    return Err(format!("quantile {q} is not between 0 and 100"));
                }
                Metric::LatencyAtQuantileMs(q)
            }
            "IsNetworkError" if !cb => {
                self.expect(Tok::RParen, "`)`")?;
                return Ok(Expr::IsNetworkError);
            }
            "Attempts" if !cb => Metric::Attempts,
            "ResponseCode" if !cb => Metric::ResponseCode,
            other => return Err(format!("unknown function `{other}()`")),
        };
        self.expect(Tok::RParen, "`)`")?;
        let op = match self.bump() {
            Some(Tok::Op(op)) => op,
            _ => return Err(format!("expected a comparison after {name}()")),
        };
        Ok(Expr::Cmp(metric, op, self.num()?))
    }
}

fn cmp(v: f64, op: Op, n: f64) -> bool {
    match op {
        Op::Eq => v == n,
        Op::Ne => v != n,
        Op::Lt => v < n,
        Op::Le => v <= n,
        Op::Gt => v > n,
        Op::Ge => v >= n,
    }
}

impl Expr {
    /// Parses `s` with the functions of `vocab`; Err says what is wrong.
    pub fn parse(s: &str, vocab: Vocabulary) -> Result<Expr, String> {
        let mut p = Parser {
            toks: lex(s)?,
            pos: 0,
            vocab,
        };
        let e = p.or()?;
        if p.pos < p.toks.len() {
            return Err("unexpected text after the expression".into());
        }
        Ok(e)
    }

    fn eval(&self, f: &dyn Fn(&Metric) -> f64, network_error: bool) -> bool {
        match self {
            Expr::Or(a, b) => a.eval(f, network_error) || b.eval(f, network_error),
            Expr::And(a, b) => a.eval(f, network_error) && b.eval(f, network_error),
            Expr::Not(a) => !a.eval(f, network_error),
            Expr::Cmp(m, op, n) => cmp(f(m), *op, *n),
            Expr::IsNetworkError => network_error,
        }
    }

    /// Evaluates a retry expression.
    pub fn eval_retry(&self, attempts: u64, code: u16, network_error: bool) -> bool {
        self.eval(
            &|m| match m {
                Metric::Attempts => attempts as f64,
                Metric::ResponseCode => f64::from(code),
                _ => 0.0,
            },
            network_error,
        )
    }
}

/// One recorded outcome.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    at: Instant,
    /// Status, or 0 for a network error.
    code: u16,
    latency_ms: f64,
}

/// Outcomes of the last [`WINDOW`].
#[derive(Debug, Default)]
pub struct Window {
    outcomes: VecDeque<Outcome>,
}

/// How far back the ratios look (oxy: 10 one-second buckets).
const WINDOW: Duration = Duration::from_secs(10);
/// Outcomes kept at most (the oldest are dropped first under heavy load).
const MAX_OUTCOMES: usize = 100_000;

impl Window {
    fn record(&mut self, o: Outcome) {
        if self.outcomes.len() >= MAX_OUTCOMES {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(o);
    }

    fn trim(&mut self, now: Instant) {
        while self
            .outcomes
            .front()
            .is_some_and(|o| now.duration_since(o.at) > WINDOW)
        {
            self.outcomes.pop_front();
        }
    }

    /// The value of a metric over the window.
    pub fn metric(&self, m: &Metric) -> f64 {
        let n = self.outcomes.len();
        match m {
            Metric::NetworkErrorRatio => {
                if n == 0 {
                    return 0.0;
                }
                self.outcomes.iter().filter(|o| o.code == 0).count() as f64 / n as f64
            }
            Metric::ResponseCodeRatio(a, b, c, d) => {
                let num = self
                    .outcomes
                    .iter()
                    .filter(|o| o.code != 0 && (*a..*b).contains(&o.code))
                    .count();
                let den = self
                    .outcomes
                    .iter()
                    .filter(|o| o.code != 0 && (*c..*d).contains(&o.code))
                    .count();
                if den == 0 {
                    0.0
                } else {
                    num as f64 / den as f64
                }
            }
            Metric::LatencyAtQuantileMs(q) => {
                if n == 0 {
                    return 0.0;
                }
                let mut l: Vec<f64> = self.outcomes.iter().map(|o| o.latency_ms).collect();
                l.sort_by(|a, b| a.total_cmp(b));
                let idx = ((q / 100.0) * (n as f64 - 1.0)).round() as usize;
                l.get(idx.min(n - 1)).copied().unwrap_or(0.0)
            }
            Metric::Attempts | Metric::ResponseCode => 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Standby,
    Tripped { until: Instant },
    Recovering { since: Instant },
}

#[derive(Debug)]
struct State {
    mode: Mode,
    last_check: Instant,
    window: Window,
}

/// A compiled circuit breaker with its state.
#[derive(Debug)]
pub struct CircuitBreaker {
    expr: Expr,
    check_period: Duration,
    fallback: Duration,
    recovery: Duration,
    response_code: StatusCode,
    state: Mutex<State>,
}

/// What the breaker lets happen to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Forward it.
    Pass,
    /// Answer with the fallback status.
    Reject,
}

impl CircuitBreaker {
    /// Reads `expression` (required), `checkPeriod` (100ms), `fallbackDuration` (10s),
    /// `recoveryDuration` (10s), `responseCode` (503).
    pub fn build(mut o: Opts<'_>) -> Result<CircuitBreaker, MiddlewareError> {
        let text = o
            .string("expression")?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| o.err("expression", "is required"))?;
        let expr = Expr::parse(&text, Vocabulary::CircuitBreaker)
            .map_err(|m| o.err("expression", format!("`{text}`: {m}")))?;
        let check_period = o
            .duration("checkPeriod")?
            .unwrap_or(Duration::from_millis(100));
        let fallback = o
            .duration("fallbackDuration")?
            .unwrap_or(Duration::from_secs(10));
        let recovery = o
            .duration("recoveryDuration")?
            .unwrap_or(Duration::from_secs(10));
        let response_code = match o.u64("responseCode")? {
            None | Some(0) => StatusCode::SERVICE_UNAVAILABLE,
            Some(c) => u16::try_from(c)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| o.err("responseCode", format!("{c} is not an HTTP status")))?,
        };
        o.finish()?;
        Ok(CircuitBreaker {
            expr,
            check_period,
            fallback,
            recovery,
            response_code,
            state: Mutex::new(State {
                mode: Mode::Standby,
                last_check: Instant::now(),
                window: Window::default(),
            }),
        })
    }

    /// Decides for a request at `now`; `roll` in [0, 1) decides during recovery.
    pub fn admit(&self, now: Instant, roll: f64) -> Admit {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(st.last_check) >= self.check_period {
            st.last_check = now;
            st.window.trim(now);
            if !matches!(st.mode, Mode::Tripped { .. }) {
                let w = &st.window;
                if self.expr.eval(&|m| w.metric(m), false) {
                    st.mode = Mode::Tripped {
                        until: now + self.fallback,
                    };
                    st.window = Window::default();
                }
            }
        }
        match st.mode {
            Mode::Standby => Admit::Pass,
            Mode::Tripped { until } if now < until => Admit::Reject,
            Mode::Tripped { .. } => {
                st.mode = Mode::Recovering { since: now };
                if self.recovery.is_zero() {
                    st.mode = Mode::Standby;
                    return Admit::Pass;
                }
                Admit::Reject
            }
            Mode::Recovering { since } => {
                let done =
                    now.duration_since(since).as_secs_f64() / self.recovery.as_secs_f64().max(1e-9);
                if done >= 1.0 {
                    st.mode = Mode::Standby;
                    Admit::Pass
                } else if roll < done {
                    Admit::Pass
                } else {
                    Admit::Reject
                }
            }
        }
    }

    /// Records the outcome of a forwarded request (status 0 = network error).
    pub fn record(&self, at: Instant, code: u16, latency: Duration) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.window.record(Outcome {
            at,
            code,
            latency_ms: latency.as_secs_f64() * 1000.0,
        });
    }

    /// Wraps the rest of the chain.
    pub async fn wrap(&self, req: Req, cx: &Cx<'_>, rest: &[Arc<Middleware>]) -> Res {
        let start = Instant::now();
        if self.admit(start, fastrand::f64()) == Admit::Reject {
            let mut r = text_response(self.response_code, "Service Unavailable\n");
            *r.status_mut() = self.response_code;
            return Ok(r);
        }
        let r = next(rest, req, cx).await;
        let code = if network_failed(&r) {
            0
        } else {
            match &r {
                Ok(resp) => resp.status().as_u16(),
                Err(e) => e.status().as_u16(),
            }
        };
        self.record(start, code, start.elapsed());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expressions_parse_as_traefik_writes_them() {
        let ok = [
            "NetworkErrorRatio() > 0.5",
            "ResponseCodeRatio(500, 600, 0, 600) > 0.25",
            "LatencyAtQuantileMS(50.0) > 100",
            "NetworkErrorRatio() > 0.30 || ResponseCodeRatio(500, 600, 0, 600) > 0.25",
            "!(LatencyAtQuantileMS(99) <= 10) && NetworkErrorRatio() >= 0.1",
        ];
        for s in ok {
            Expr::parse(s, Vocabulary::CircuitBreaker).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        for bad in [
            "NetworkErrorRatio > 0.5",
            "Foo() > 1",
            "NetworkErrorRatio() >",
            "IsNetworkError()",
            "LatencyAtQuantileMS(150) > 1",
        ] {
            assert!(
                Expr::parse(bad, Vocabulary::CircuitBreaker).is_err(),
                "{bad}"
            );
        }
        assert!(Expr::parse("IsNetworkError() && Attempts() <= 2", Vocabulary::Retry).is_ok());
    }

    #[test]
    fn metrics_over_the_window() {
        let mut w = Window::default();
        let now = Instant::now();
        for (code, ms) in [(200, 10), (500, 20), (0, 30), (502, 40)] {
            w.record(Outcome {
                at: now,
                code,
                latency_ms: ms as f64,
            });
        }
        assert_eq!(w.metric(&Metric::NetworkErrorRatio), 0.25);
        assert!((w.metric(&Metric::ResponseCodeRatio(500, 600, 0, 600)) - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(w.metric(&Metric::LatencyAtQuantileMs(100.0)), 40.0);
        assert_eq!(w.metric(&Metric::LatencyAtQuantileMs(0.0)), 10.0);
    }

    #[test]
    fn trips_falls_back_and_recovers() {
        let cb = CircuitBreaker::build(
            Opts::new(
                "circuitBreaker",
                &json!({"expression": "NetworkErrorRatio() > 0.5", "checkPeriod": "1s", "fallbackDuration": "10s", "recoveryDuration": "10s"}),
            )
            .expect("o"),
        )
        .expect("b");
        let t0 = Instant::now();
        for _ in 0..10 {
            cb.record(t0, 0, Duration::from_millis(1));
        }
        assert_eq!(
            cb.admit(t0 + Duration::from_secs(1), 0.0),
            Admit::Reject,
            "tripped"
        );
        assert_eq!(cb.admit(t0 + Duration::from_secs(5), 0.0), Admit::Reject);
        // Fallback over: recovery starts, half-way lets about half through.
        assert_eq!(cb.admit(t0 + Duration::from_secs(12), 0.99), Admit::Reject);
        assert_eq!(cb.admit(t0 + Duration::from_secs(17), 0.4), Admit::Pass);
        assert_eq!(cb.admit(t0 + Duration::from_secs(17), 0.6), Admit::Reject);
        assert_eq!(
            cb.admit(t0 + Duration::from_secs(23), 0.99),
            Admit::Pass,
            "standby again"
        );
    }
}
