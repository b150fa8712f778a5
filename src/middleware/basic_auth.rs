//! `basicAuth`: HTTP Basic authentication against htpasswd entries (`users`, `usersFile`).
//!
//! Hashes as Traefik accepts them: bcrypt (`$2y$`, `$2b$`, `$2a$`), Apache MD5 (`$apr1$`), MD5-crypt (`$1$`)
//! and SHA-1 (`{SHA}`). A hash in any other format is rejected when the middleware is built (naming the
//! user), never at request time. bcrypt checks run on the blocking pool so a slow hash does not stall the
//! worker threads. Failures get 401 with `WWW-Authenticate: Basic realm="…"`.

use base64::Engine;
use http::{header, HeaderName, HeaderValue, StatusCode};
use md5::{Digest, Md5};
use sha1::Sha1;

use super::opts::Opts;
use super::{text_response, Flow, MiddlewareError, Req};

/// A verified htpasswd hash.
#[derive(Debug, Clone, PartialEq)]
pub enum Hash {
    /// bcrypt, as written.
    Bcrypt(String),
    /// `$apr1$` or `$1$` (magic, salt, full hash).
    Md5Crypt {
        /// `$apr1$` or `$1$`.
        magic: &'static str,
        /// Up to 8 salt characters.
        salt: String,
        /// The whole hash as written.
        full: String,
    },
    /// `{SHA}`: SHA-1 digest.
    Sha1([u8; 20]),
}

impl Hash {
    /// Parses an htpasswd hash; Err names the problem.
    pub fn parse(h: &str) -> Result<Hash, String> {
        let h = h.trim();
        if let Some(b64) = h.strip_prefix("{SHA}") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| "`{SHA}` hash is not valid base64".to_string())?;
            let arr: [u8; 20] = raw
                .try_into()
                .map_err(|_| "`{SHA}` hash is not 20 bytes".to_string())?;
            return Ok(Hash::Sha1(arr));
        }
        for magic in ["$apr1$", "$1$"] {
            if let Some(rest) = h.strip_prefix(magic) {
                let (salt, digest) = rest
                    .split_once('$')
                    .ok_or_else(|| format!("`{magic}` hash has no salt separator"))?;
                if salt.len() > 8 || digest.len() != 22 {
                    return Err(format!("`{magic}` hash is malformed"));
                }
                return Ok(Hash::Md5Crypt {
                    magic,
                    salt: salt.to_string(),
                    full: h.to_string(),
                });
            }
        }
        if ["$2y$", "$2b$", "$2a$", "$2x$"]
            .iter()
            .any(|p| h.starts_with(p))
        {
            if h.len() != 60 {
                return Err("bcrypt hash must be 60 characters".into());
            }
            return Ok(Hash::Bcrypt(h.to_string()));
        }
        Err(
            "unsupported hash format (use bcrypt, $apr1$, $1$ or {SHA}, e.g. from `htpasswd -nb`)"
                .into(),
        )
    }

    /// Whether `password` matches. bcrypt is slow by design: call it off the async workers.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Sha1(d) => constant_eq(&Sha1::digest(password)[..], d),
            Hash::Md5Crypt { magic, salt, full } => constant_eq(
                md5_crypt(password, salt.as_bytes(), magic).as_bytes(),
                full.as_bytes(),
            ),
            Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// MD5-crypt (`$1$`) and its Apache variant (`$apr1$`), as htpasswd computes them.
pub fn md5_crypt(pw: &[u8], salt: &[u8], magic: &str) -> String {
    let salt = salt.get(..8).unwrap_or(salt);
    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let alt = alt.finalize();
    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(magic.as_bytes());
    ctx.update(salt);
    let mut n = pw.len();
    while n > 0 {
        ctx.update(alt.get(..n.min(16)).unwrap_or_default());
        n = n.saturating_sub(16);
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(pw.get(..1).unwrap_or_default());
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(pw);
        }
        if i & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    let mut out = String::with_capacity(40);
    out.push_str(magic);
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(
                ITOA64
                    .get((v & 0x3f) as usize)
                    .map_or('.', |c| char::from(*c)),
            );
            v >>= 6;
        }
    };
    let fin: [u8; 16] = fin.into();
    let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15] = fin;
    for (a, b, c) in [
        (f0, f6, f12),
        (f1, f7, f13),
        (f2, f8, f14),
        (f3, f9, f15),
        (f4, f10, f5),
    ] {
        to64((u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c), 4);
    }
    to64(u32::from(f11), 2);
    out
}

/// Reads `user:hash` lines (`users` entries and `usersFile` contents); the file's entries win.
pub fn parse_users(
    o: &Opts<'_>,
    opt: &str,
    lines: &[String],
    out: &mut Vec<(String, Hash)>,
) -> Result<(), MiddlewareError> {
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line.split_once(':').ok_or_else(|| {
            o.err(
                &format!("{opt}[{i}]"),
                "expected `user:hash` (as `htpasswd -nb` prints)",
            )
        })?;
        let hash = Hash::parse(hash)
            .map_err(|e| o.err(&format!("{opt}[{i}]"), format!("user `{user}`: {e}")))?;
        out.retain(|(u, _)| u != user);
        out.push((user.to_string(), hash));
    }
    Ok(())
}

/// Reads a users file's lines.
#[allow(clippy::disallowed_methods)] // table-build time, not per request: reads `usersFile` once
pub fn read_users_file(o: &Opts<'_>, path: &str) -> Result<Vec<String>, MiddlewareError> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().map(str::to_string).collect())
        .map_err(|e| o.err("usersFile", format!("cannot read `{path}`: {e}")))
}

/// A compiled basic-auth middleware.
#[derive(Debug)]
pub struct BasicAuth {
    users: Vec<(String, Hash)>,
    challenge: HeaderValue,
    remove_header: bool,
    header_field: Option<HeaderName>,
}

impl BasicAuth {
    /// Reads `users`, `usersFile`, `realm` (default `traefik`), `removeHeader`, `headerField`.
    pub fn build(mut o: Opts<'_>) -> Result<BasicAuth, MiddlewareError> {
        let mut users = Vec::new();
        let list = o.strings("users")?;
        parse_users(&o, "users", &list, &mut users)?;
        if let Some(path) = o.string("usersFile")?.filter(|p| !p.is_empty()) {
            let lines = read_users_file(&o, &path)?;
            parse_users(&o, "usersFile", &lines, &mut users)?;
        }
        if users.is_empty() {
            return Err(o.err("users", "no user is configured (users or usersFile)"));
        }
        let realm = o
            .string("realm")?
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "traefik".into());
        let challenge =
            HeaderValue::from_str(&format!("Basic realm=\"{}\"", realm.replace('"', "")))
                .map_err(|_| o.err("realm", "not a valid header value"))?;
        let remove_header = o.bool("removeHeader")?.unwrap_or(false);
        let header_field = match o.string("headerField")?.filter(|h| !h.is_empty()) {
            Some(h) => Some(
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| o.err("headerField", format!("`{h}` is not a header name")))?,
            ),
            None => None,
        };
        o.finish()?;
        Ok(BasicAuth {
            users,
            challenge,
            remove_header,
            header_field,
        })
    }

    /// The user and password of a `Basic` Authorization value.
    pub fn credentials(value: &[u8]) -> Option<(String, Vec<u8>)> {
        let v = std::str::from_utf8(value).ok()?.trim();
        let (scheme, b64) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let mut parts = raw.splitn(2, |b| *b == b':');
        let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
        Some((user, parts.next()?.to_vec()))
    }

    /// Request step.
    pub async fn on_request(&self, req: &mut Req) -> Flow {
        let creds = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| Self::credentials(v.as_bytes()));
        let ok_user = match creds {
            Some((user, pw)) => match self.users.iter().find(|(u, _)| *u == user) {
                Some((_, Hash::Bcrypt(h))) => {
                    let h = h.clone();
                    let ok = tokio::task::spawn_blocking(move || {
                        bcrypt::verify(&pw, &h).unwrap_or(false)
                    })
                    .await
                    .unwrap_or(false);
                    ok.then_some(user)
                }
                Some((_, hash)) => hash.verify(&pw).then_some(user),
                None => None,
            },
            None => None,
        };
        let Some(user) = ok_user else {
            let mut r = text_response(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, self.challenge.clone());
            return Flow::Respond(r);
        };
        authenticated(req, self.remove_header, self.header_field.as_ref(), &user);
        Flow::Next
    }
}

/// What basicAuth and digestAuth do once a user is authenticated: drop `Authorization` when
/// `removeHeader` is set, and pass the user name in `headerField` when one is configured.
pub(crate) fn authenticated(
    req: &mut Req,
    remove_header: bool,
    header_field: Option<&HeaderName>,
    user: &str,
) {
    if remove_header {
        req.headers_mut().remove(header::AUTHORIZATION);
    }
    if let Some(h) = header_field {
        if let Ok(v) = HeaderValue::from_str(user) {
            req.headers_mut().insert(h.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_verify_as_htpasswd() {
        // From `openssl passwd -apr1 -salt …` / `openssl passwd -1 -salt …`.
        let cases: Vec<(&str, &str, bool)> = vec![
            ("$apr1$r31....$ngBPjzVkLtPf/sLj.RKiN/", "test", true),
            ("$apr1$r31....$ngBPjzVkLtPf/sLj.RKiN/", "tesT", false),
            ("$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1", "password", true),
            ("$1$saltsalt$9xy1btjgzLYfb7hivXtC//", "secret", true),
            // {SHA} of "password".
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "password", true),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "passwore", false),
        ];
        for (h, pw, ok) in cases {
            assert_eq!(
                Hash::parse(h).expect(h).verify(pw.as_bytes()),
                ok,
                "{h} {pw}"
            );
        }
        let b = bcrypt::hash("s3cret", 4).expect("hash");
        let h = Hash::parse(&b).expect("bcrypt");
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"nope"));
        for bad in ["plain", "$apr1$x", "{SHA}notb64!", "$2y$10$short"] {
            assert!(Hash::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_and_credentials() {
        let a = BasicAuth::build(
            Opts::new(
                "basicAuth",
                &json!({"users": "test:$apr1$r31....$ngBPjzVkLtPf/sLj.RKiN/", "realm": "admin", "headerField": "X-WebAuth-User"}),
            )
            .expect("o"),
        )
        .expect("b");
        assert_eq!(a.challenge, "Basic realm=\"admin\"");
        assert_eq!(
            BasicAuth::credentials(b"Basic dGVzdDp0ZXN0"),
            Some(("test".to_string(), b"test".to_vec()))
        );
        assert_eq!(BasicAuth::credentials(b"Bearer x"), None);
        let e = BasicAuth::build(
            Opts::new(
                "basicAuth",
                &json!({"users": ["ok:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "bob:plain"]}),
            )
            .expect("o"),
        )
        .expect_err("bad hash");
        assert_eq!(e.option, "basicAuth.users[1]");
        assert!(e.message.contains("bob"), "{e}");
    }
}
