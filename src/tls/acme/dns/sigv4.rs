//! AWS Signature Version 4 (header form) for the route53 provider: canonical request → string to sign →
//! HMAC-SHA256 key chain (`AWS4<secret>` → date → region → service → `aws4_request`) → `Authorization`.
//! Tested against AWS's published vectors (the SigV4 test suite's `get-vanilla*`, the S3 `GetObject`
//! example). The secret never leaves this module except as a signature.

use std::time::SystemTime;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Static credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
#[derive(Clone)]
pub struct Credentials {
    /// Access key id (not secret; appears in the `Authorization` header).
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Session token, sent as `X-Amz-Security-Token` and signed.
    pub session_token: Option<String>,
}

/// What is signed.
pub struct Request<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// `Host` header value.
    pub host: &'a str,
    /// Path, unencoded (`/2013-04-01/hostedzone/Z1/rrset/`).
    pub path: &'a str,
    /// Query string as sent (`a=b&c=d`), possibly empty.
    pub query: &'a str,
    /// Other headers to sign (name, value).
    pub headers: &'a [(&'a str, &'a str)],
    /// Body.
    pub payload: &'a [u8],
    /// Signing region.
    pub region: &'a str,
    /// Service (`route53`).
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
}

/// `YYYYMMDDTHHMMSSZ` for `t`.
pub fn amz_date(t: SystemTime) -> String {
    super::super::renewal::rfc3339(t).replace(['-', ':'], "")
}

/// RFC 3986 encoding of everything but unreserved characters (and `/` when `keep_slash`).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(k, false), uri_encode(v, false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; the error branch cannot happen.
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The headers to send: `X-Amz-Date`, `X-Amz-Security-Token` when a session token is set, and
/// `Authorization`.
pub fn sign(c: &Credentials, r: &Request<'_>) -> Vec<(&'static str, String)> {
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), r.host.trim().to_string()),
        ("x-amz-date".into(), r.amz_date.to_string()),
    ];
    if let Some(t) = &c.session_token {
        headers.push(("x-amz-security-token".into(), t.clone()));
    }
    for (k, v) in r.headers {
        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
        headers.push((k.to_ascii_lowercase(), v));
    }
    headers.sort();
    let signed: String = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let path = if r.path.is_empty() { "/" } else { r.path };
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed}\n{}",
        r.method,
        uri_encode(path, true),
        canonical_query(r.query),
        hex::encode(Sha256::digest(r.payload))
    );
    let date = r.amz_date.get(..8).unwrap_or(r.amz_date);
    let scope = format!("{date}/{}/{}/aws4_request", r.region, r.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        r.amz_date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", c.secret_key).as_bytes(), date.as_bytes());
    for part in [r.region, r.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    let mut out = vec![("X-Amz-Date", r.amz_date.to_string())];
    if let Some(t) = &c.session_token {
        out.push(("X-Amz-Security-Token", t.clone()));
    }
    out.push((
        "Authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            c.access_key
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> Credentials {
        Credentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn authorization(c: &Credentials, r: &Request<'_>) -> String {
        sign(c, r)
            .into_iter()
            .find(|(k, _)| *k == "Authorization")
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    fn vanilla<'a>(query: &'a str) -> Request<'a> {
        Request {
            method: "GET",
            host: "example.amazonaws.com",
            path: "/",
            query,
            headers: &[],
            payload: b"",
            region: "us-east-1",
            service: "service",
            amz_date: "20150830T123600Z",
        }
    }

    #[test]
    fn aws_test_suite_get_vanilla() {
        assert_eq!(
            authorization(&suite(), &vanilla("")),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn aws_test_suite_get_vanilla_query_order_key_case() {
        assert!(
            authorization(&suite(), &vanilla("Param2=value2&Param1=value1")).ends_with(
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
    }

    #[test]
    fn aws_s3_get_object_example() {
        // "Example: GET Object" of AWS's SigV4 header-signing documentation.
        let c = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: "",
            headers: &[("Range", "bytes=0-9"), ("x-amz-content-sha256", empty)],
            payload: b"",
            region: "us-east-1",
            service: "s3",
            amz_date: "20130524T000000Z",
        };
        assert_eq!(
            authorization(&c, &r),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn session_token_is_sent_and_signed() {
        let mut c = suite();
        c.session_token = Some("tok".into());
        let h = sign(&c, &vanilla(""));
        assert!(h
            .iter()
            .any(|(k, v)| *k == "X-Amz-Security-Token" && v == "tok"));
        assert!(authorization(&c, &vanilla(""))
            .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
    }

    #[test]
    fn dates_and_encoding() {
        assert_eq!(
            amz_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160)),
            "20150830T123600Z"
        );
        assert_eq!(uri_encode("a b/c~", true), "a%20b/c~");
        assert_eq!(canonical_query("b=2 3&a=x/y"), "a=x%2Fy&b=2%203");
    }
}
