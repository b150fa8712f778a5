//! `digestAuth`: HTTP Digest authentication (RFC 2617, MD5, `qop=auth`) against `user:realm:HA1` entries
//! (`users`, `usersFile`, as `htdigest` writes them).
//!
//! Nonces are stateless: a timestamp signed with a per-process key, valid for five minutes, so no per-client
//! state is kept (Traefik's library keeps a nonce table instead). Failures get 401 with a fresh challenge.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, HeaderName, HeaderValue, StatusCode};
use md5::{Digest, Md5};
use sha2::Sha256;

use super::basic_auth::read_users_file;
use super::opts::Opts;
use super::{text_response, Flow, MiddlewareError, Req};

/// How long a nonce is accepted.
const NONCE_TTL: Duration = Duration::from_secs(300);

/// A compiled digest-auth middleware.
#[derive(Debug)]
pub struct DigestAuth {
    users: Vec<(String, String, String)>,
    realm: String,
    remove_header: bool,
    header_field: Option<HeaderName>,
    key: [u8; 32],
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// Parses the parameters of a `Digest` Authorization value.
pub fn parse_params(v: &str) -> Option<Vec<(String, String)>> {
    let rest = v.trim();
    let (scheme, mut rest) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let (k, after) = rest.split_once('=')?;
        let k = k.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((k, val));
        rest = next;
    }
    Some(out)
}

impl DigestAuth {
    /// Reads `users`, `usersFile`, `realm` (default `traefik`), `removeHeader`, `headerField`.
    pub fn build(mut o: Opts<'_>) -> Result<DigestAuth, MiddlewareError> {
        let mut lines = o.strings("users")?;
        if let Some(path) = o.string("usersFile")?.filter(|p| !p.is_empty()) {
            lines.extend(read_users_file(&o, &path)?);
        }
        let mut users = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut it = l.splitn(3, ':');
            match (it.next(), it.next(), it.next()) {
                (Some(u), Some(r), Some(h))
                    if h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    users.retain(|(uu, rr, _): &(String, String, String)| !(uu == u && rr == r));
                    users.push((u.to_string(), r.to_string(), h.to_ascii_lowercase()));
                }
                _ => {
                    return Err(o.err(
                        &format!("users[{i}]"),
                        "expected `user:realm:md5hex` (as `htdigest` writes)",
                    ))
                }
            }
        }
        if users.is_empty() {
            return Err(o.err("users", "no user is configured (users or usersFile)"));
        }
        let realm = o
            .string("realm")?
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "traefik".into());
        let remove_header = o.bool("removeHeader")?.unwrap_or(false);
        let header_field = match o.string("headerField")?.filter(|h| !h.is_empty()) {
            Some(h) => Some(
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| o.err("headerField", format!("`{h}` is not a header name")))?,
            ),
            None => None,
        };
        o.finish()?;
        let mut key = [0u8; 32];
        for b in key.iter_mut() {
            *b = fastrand::u8(..);
        }
        Ok(DigestAuth {
            users,
            realm,
            remove_header,
            header_field,
            key,
        })
    }

    fn sign(&self, ts: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(ts.to_be_bytes());
        // The first 12 bytes (of 32) sign the timestamp.
        let mac: Vec<u8> = h.finalize().iter().take(12).copied().collect();
        format!("{ts:x}.{}", hex::encode(mac))
    }

    /// A fresh nonce for time `now` (seconds since the epoch).
    pub fn nonce(&self, now: u64) -> String {
        self.sign(now)
    }

    fn nonce_ok(&self, nonce: &str, now: u64) -> bool {
        let Some((ts, _)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(ts) = u64::from_str_radix(ts, 16) else {
            return false;
        };
        self.sign(ts) == nonce && now.saturating_sub(ts) <= NONCE_TTL.as_secs() && ts <= now + 5
    }

    /// Checks an Authorization value for `method` and request target `uri` at `now`; returns the user.
    pub fn check(&self, auth: &str, method: &str, uri: &str, now: u64) -> Option<String> {
        let p = parse_params(auth)?;
        let get = |k: &str| p.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
        let (user, realm, nonce, duri, response) = (
            get("username")?,
            get("realm")?,
            get("nonce")?,
            get("uri")?,
            get("response")?,
        );
        if realm != self.realm || duri != uri || !self.nonce_ok(nonce, now) {
            return None;
        }
        let (_, _, ha1) = self
            .users
            .iter()
            .find(|(u, r, _)| u == user && r == realm)?;
        let ha2 = md5_hex(&[method.as_bytes(), duri.as_bytes()]);
        let expected = match get("qop") {
            Some(qop) => md5_hex(&[
                ha1.as_bytes(),
                nonce.as_bytes(),
                get("nc")?.as_bytes(),
                get("cnonce")?.as_bytes(),
                qop.as_bytes(),
                ha2.as_bytes(),
            ]),
            None => md5_hex(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
        };
        (expected.eq_ignore_ascii_case(response)).then(|| user.to_string())
    }

    /// Request step.
    pub fn on_request(&self, req: &mut Req) -> Flow {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let uri = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let user = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| self.check(v, req.method().as_str(), uri, now));
        let Some(user) = user else {
            let mut r = text_response(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
            let challenge = format!(
                "Digest realm=\"{}\", nonce=\"{}\", opaque=\"{}\", algorithm=MD5, qop=\"auth\"",
                self.realm,
                self.nonce(now),
                hex::encode(&self.key[..8])
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return Flow::Respond(r);
        };
        super::basic_auth::authenticated(
            req,
            self.remove_header,
            self.header_field.as_ref(),
            &user,
        );
        Flow::Next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc2617_style_exchange() {
        // htdigest: test:traefik:md5("test:traefik:test")
        let ha1 = md5_hex(&[b"test", b"traefik", b"test"]);
        let d = DigestAuth::build(
            Opts::new(
                "digestAuth",
                &json!({"users": [format!("test:traefik:{ha1}")]}),
            )
            .expect("o"),
        )
        .expect("b");
        let now = 1_700_000_000;
        let nonce = d.nonce(now);
        let ha2 = md5_hex(&[b"GET", b"/dir/index.html"]);
        let resp = md5_hex(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            b"00000001",
            b"0a4f113b",
            b"auth",
            ha2.as_bytes(),
        ]);
        let auth = format!(
            "Digest username=\"test\", realm=\"traefik\", nonce=\"{nonce}\", uri=\"/dir/index.html\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"{resp}\""
        );
        assert_eq!(
            d.check(&auth, "GET", "/dir/index.html", now + 10)
                .as_deref(),
            Some("test")
        );
        assert_eq!(
            d.check(&auth, "POST", "/dir/index.html", now + 10),
            None,
            "method is covered"
        );
        assert_eq!(
            d.check(&auth, "GET", "/other", now + 10),
            None,
            "uri must match"
        );
        assert_eq!(
            d.check(&auth, "GET", "/dir/index.html", now + 1000),
            None,
            "nonce expired"
        );
        assert!(
            DigestAuth::build(Opts::new("digestAuth", &json!({"users": "bad"})).expect("o"))
                .is_err()
        );
    }
}
