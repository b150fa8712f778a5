//! `entryPoints.<name>.http.underscoreHeadersStrategy` (Traefik v3.6): what an entrypoint does with request
//! headers whose name contains `_`.
//!
//! Backends behind CGI-style gateways (PHP-FPM, WSGI, nginx's `underscores_in_headers`) turn `-` into `_`, so
//! `X_Forwarded_For` can pass a proxy's filter for `X-Forwarded-For` and then be read as it: removing or
//! refusing such headers at the edge closes that door. Pure; called on the request path once per request
//! only when the entrypoint asks for it (the default, `keep`, is one comparison).

use http::HeaderMap;

/// The strategy, as Traefik names its values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnderscoreHeaders {
    /// Forward such headers as they are (Traefik's default).
    #[default]
    Keep,
    /// Remove such headers before routing.
    Delete,
    /// Answer 400 to a request carrying one.
    Reject,
}

impl std::str::FromStr for UnderscoreHeaders {
    type Err = String;

    /// `keep`, `delete` or `reject` (any case); an empty value is `keep`, as in Traefik.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "keep" => Ok(UnderscoreHeaders::Keep),
            "delete" => Ok(UnderscoreHeaders::Delete),
            "reject" => Ok(UnderscoreHeaders::Reject),
            other => Err(format!("`{other}` is not one of keep, delete, reject")),
        }
    }
}

/// A request refused by the `reject` strategy (the edge answers 400).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("header name with an underscore")]
pub struct Rejected;

impl UnderscoreHeaders {
    /// Applies the strategy to request headers: `Err(Rejected)` when the request must be refused (400).
    pub fn apply(self, headers: &mut HeaderMap) -> Result<(), Rejected> {
        if self == UnderscoreHeaders::Keep {
            return Ok(());
        }
        let has = |h: &HeaderMap| h.keys().any(|k| k.as_str().contains('_'));
        if !has(headers) {
            return Ok(());
        }
        if self == UnderscoreHeaders::Reject {
            return Err(Rejected);
        }
        let names: Vec<_> = headers
            .keys()
            .filter(|k| k.as_str().contains('_'))
            .cloned()
            .collect();
        for name in names {
            headers.remove(&name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for n in names {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                http::HeaderValue::from_static("v"),
            );
        }
        h
    }

    #[test]
    fn strategies_keep_delete_or_reject_underscore_headers() {
        let mut h = headers(&["x_forwarded_for", "x-real-ip", "a_b", "a_b"]);
        assert_eq!(UnderscoreHeaders::Keep.apply(&mut h), Ok(()));
        assert_eq!(h.len(), 4);
        assert_eq!(
            UnderscoreHeaders::Reject.apply(&mut h.clone()),
            Err(Rejected)
        );
        assert_eq!(UnderscoreHeaders::Delete.apply(&mut h), Ok(()));
        assert_eq!(
            h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["x-real-ip"]
        );
        // Nothing to do: no refusal.
        assert_eq!(UnderscoreHeaders::Reject.apply(&mut h), Ok(()));
    }

    #[test]
    fn values_parse_as_traefik_spells_them() {
        for (text, want) in [
            ("keep", Ok(UnderscoreHeaders::Keep)),
            ("", Ok(UnderscoreHeaders::Keep)),
            ("Delete", Ok(UnderscoreHeaders::Delete)),
            ("reject", Ok(UnderscoreHeaders::Reject)),
        ] {
            assert_eq!(text.parse::<UnderscoreHeaders>(), want, "{text}");
        }
        assert!("drop".parse::<UnderscoreHeaders>().is_err());
    }
}
