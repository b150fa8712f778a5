//! Durations as Traefik writes them (Go's `time.Duration` text or a bare number of seconds).
//!
//! Shared by the static and the dynamic configuration, so it lives below both.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration as Traefik writes it: a Go duration string (`10s`, `1m30s`, `250ms`, `1h`) or a bare integer
/// meaning seconds. Zero means "disabled" wherever Traefik says so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// Seconds as a convenience constructor for defaults.
    pub const fn secs(s: u64) -> GoDuration {
        GoDuration(Duration::from_secs(s))
    }

    /// `None` when zero (Traefik's "no timeout"), the duration otherwise.
    pub fn non_zero(self) -> Option<Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }
}

/// The longest duration Go's `time.Duration` holds (2^63 - 1 ns, about 292 years), in whole seconds:
/// anything longer is refused, whichever way it is written, so a value that is read is also one that
/// Traefik could hold and that reads back after being written out.
const MAX_GO_DURATION_SECS: u64 = 9_223_372_036;

/// A bare number of seconds, refused beyond Go's range.
fn go_duration_secs(secs: u64, text: &dyn fmt::Display) -> Result<Duration, String> {
    if secs > MAX_GO_DURATION_SECS {
        return Err(format!("`{text}`: duration out of range"));
    }
    Ok(Duration::from_secs(secs))
}

/// Parses `10s`, `1m30s`, `1.5h`, `100ms`, `2us`, `3ns`, or a bare number of seconds; beyond Go's
/// `time.Duration` range is an error.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return go_duration_secs(secs, &text);
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}`: missing unit (use s, ms, m, h)"))?;
        let (num, tail) = rest.split_at(num_end);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("`{text}`: `{num}` is not a number"))?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}` (use ns, us, ms, s, m, h)"
                ))
            }
        };
        total += value * scale;
        rest = next;
    }
    if !total.is_finite() || total > MAX_GO_DURATION_SECS as f64 {
        return Err(format!("`{text}`: duration out of range"));
    }
    Ok(Duration::from_secs_f64(total))
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `10s`, `500ms` or a number of seconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<GoDuration, E> {
                parse_go_duration(v).map(GoDuration).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<GoDuration, E> {
                go_duration_secs(v, &v).map(GoDuration).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", self.0.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("42"), Ok(Duration::from_secs(42)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("10").is_ok());
        assert!(parse_go_duration("ten").is_err());
        // Go's range (2^63 - 1 ns) bounds every spelling; the fuzzer found a bare number that read but
        // did not read back once written as `<secs>s`.
        assert!(parse_go_duration("9223372036").is_ok());
        assert!(parse_go_duration("9223372037").is_err());
        assert!(parse_go_duration("0007173733806442603406").is_err());
        assert!(parse_go_duration("2562048h").is_err());
        let max = parse_go_duration("9223372036").expect("max");
        let written = format!("{}s", max.as_secs_f64());
        assert_eq!(parse_go_duration(&written), Ok(max));
        assert!(parse_go_duration("10x").is_err());
        assert!(parse_go_duration("").is_err());
    }
}
