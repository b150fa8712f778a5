//! The boolean skeleton HTTP and TCP matchers share: constants, `&&`, `||` and `!` over leaves.
//!
//! Both matcher enums carry the same five non-leaf variants; this module folds constants and flattens
//! same-operator children once, for any matcher that exposes those variants through [`Logic`], and lowers
//! a parsed expression with a per-protocol function for the leaves. A further protocol's matcher (UDP
//! has no rules; a future one would) implements [`Logic`] and reuses all of it.

use super::parser::{Arg, Call, Expr};
use super::{ip, RuleError};

/// A matcher seen through its boolean structure.
pub(crate) enum Shape<M> {
    /// Matches everything.
    Always,
    /// Matches nothing.
    Never,
    /// All children match.
    And(Box<[M]>),
    /// Some child matches.
    Or(Box<[M]>),
    /// The child does not match.
    Not(Box<M>),
    /// A protocol-specific matcher.
    Leaf(M),
}

/// A matcher with the five boolean variants; `from_shape(m.into_shape())` is `m`.
pub(crate) trait Logic: Sized {
    /// Splits off the boolean variant (a leaf stays whole).
    fn into_shape(self) -> Shape<Self>;
    /// Builds the variant back (a leaf is returned as it is).
    fn from_shape(shape: Shape<Self>) -> Self;
}

/// Combines children with folding of constants and flattening of nested `&&`.
pub(crate) fn and_of<M: Logic>(children: Vec<M>) -> M {
    let mut out = Vec::with_capacity(children.len());
    for c in children {
        match c.into_shape() {
            Shape::Always => {}
            Shape::Never => return M::from_shape(Shape::Never),
            Shape::And(inner) => out.extend(inner.into_vec()),
            other => out.push(M::from_shape(other)),
        }
    }
    match out.pop() {
        None => M::from_shape(Shape::Always),
        Some(only) if out.is_empty() => only,
        Some(last) => {
            out.push(last);
            M::from_shape(Shape::And(out.into_boxed_slice()))
        }
    }
}

/// See [`and_of`].
pub(crate) fn or_of<M: Logic>(children: Vec<M>) -> M {
    let mut out = Vec::with_capacity(children.len());
    for c in children {
        match c.into_shape() {
            Shape::Never => {}
            Shape::Always => return M::from_shape(Shape::Always),
            Shape::Or(inner) => out.extend(inner.into_vec()),
            other => out.push(M::from_shape(other)),
        }
    }
    match out.pop() {
        None => M::from_shape(Shape::Never),
        Some(only) if out.is_empty() => only,
        Some(last) => {
            out.push(last);
            M::from_shape(Shape::Or(out.into_boxed_slice()))
        }
    }
}

/// Negation with constants folded and double negation removed.
pub(crate) fn not_of<M: Logic>(m: M) -> M {
    match m.into_shape() {
        Shape::Always => M::from_shape(Shape::Never),
        Shape::Never => M::from_shape(Shape::Always),
        Shape::Not(inner) => *inner,
        other => M::from_shape(Shape::Not(Box::new(M::from_shape(other)))),
    }
}

/// Lowers a parsed expression: the boolean structure here, each call by `leaf` (the protocol's matchers).
pub(crate) fn lower<M: Logic>(
    expr: &Expr,
    leaf: &mut dyn FnMut(&Call) -> Result<M, RuleError>,
) -> Result<M, RuleError> {
    Ok(match expr {
        Expr::And(items) => and_of(
            items
                .iter()
                .map(|e| lower(e, leaf))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Or(items) => or_of(
            items
                .iter()
                .map(|e| lower(e, leaf))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Not(inner) => not_of(lower(inner, leaf)?),
        Expr::Call(call) => leaf(call)?,
    })
}

/// A rule error at a column.
pub(crate) fn error(col: usize, message: impl Into<String>) -> RuleError {
    RuleError {
        column: col,
        message: message.into(),
    }
}

/// `ClientIP` arguments as ranges; a bad one is reported at its column, `expected` saying what is accepted.
pub(crate) fn client_ip_nets(
    name: &str,
    args: &[Arg],
    expected: &str,
) -> Result<Box<[ipnet::IpNet]>, RuleError> {
    args.iter()
        .map(|a| {
            ip::parse_net(&a.value).ok_or_else(|| {
                error(
                    a.col,
                    format!("invalid value `{}` for {name}: {expected}", a.value),
                )
            })
        })
        .collect()
}
