//! `compress`: gzip, Brotli or zstd response compression, chosen from `Accept-Encoding` (q-values honoured,
//! ties broken by the `encodings` order: zstd, br, gzip by default, as Traefik v3).
//!
//! Streaming: each upstream frame goes through the encoder as it arrives, and the encoder is flushed whenever
//! the backend pauses, so long-lived responses keep flowing; a whole response is never buffered. Only up to
//! `minResponseBodyBytes` are read ahead when the backend sent no `Content-Length`, to decide whether the
//! response is worth compressing. Never recompresses (a response with `Content-Encoding` passes untouched),
//! and skips `text/event-stream`, gRPC, 1xx/204/304, partial content and excluded types.

use std::collections::VecDeque;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;

use super::opts::Opts;
use super::{next, Cx, Middleware, MiddlewareError, Req, Res};
use crate::http::body::{BoxError, ProxyBody};

/// A supported encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `gzip`.
    Gzip,
    /// `br`.
    Br,
    /// `zstd`.
    Zstd,
}

impl Encoding {
    fn parse(s: &str) -> Option<Encoding> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gzip" => Some(Encoding::Gzip),
            "br" => Some(Encoding::Br),
            "zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
        }
    }
}

/// A compiled compress middleware.
#[derive(Debug)]
pub struct Compress {
    min_bytes: u64,
    excluded: Vec<String>,
    included: Vec<String>,
    encodings: Vec<Encoding>,
    default_encoding: Option<Encoding>,
}

/// Content types never compressed unless explicitly included: streams that must not be held back, and gRPC.
const ALWAYS_EXCLUDED: &[&str] = &["text/event-stream", "application/grpc"];

fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl Compress {
    /// Reads `minResponseBodyBytes` (default 1024), `excludedContentTypes`, `includedContentTypes` (not
    /// both), `encodings`, `defaultEncoding`.
    pub fn build(mut o: Opts<'_>) -> Result<Compress, MiddlewareError> {
        let min_bytes = o.u64("minResponseBodyBytes")?.unwrap_or(1024);
        let excluded: Vec<String> = o
            .strings("excludedContentTypes")?
            .iter()
            .map(|s| media_type(s))
            .collect();
        let included: Vec<String> = o
            .strings("includedContentTypes")?
            .iter()
            .map(|s| media_type(s))
            .collect();
        if !excluded.is_empty() && !included.is_empty() {
            return Err(o.err(
                "includedContentTypes",
                "excludedContentTypes and includedContentTypes are mutually exclusive",
            ));
        }
        let mut encodings = Vec::new();
        for (i, e) in o.strings("encodings")?.iter().enumerate() {
            encodings.push(Encoding::parse(e).ok_or_else(|| {
                o.err(
                    &format!("encodings[{i}]"),
                    format!("`{e}` is not gzip, br or zstd"),
                )
            })?);
        }
        if encodings.is_empty() {
            encodings = vec![Encoding::Zstd, Encoding::Br, Encoding::Gzip];
        }
        let default_encoding = match o.string("defaultEncoding")?.filter(|s| !s.is_empty()) {
            Some(e) => Some(Encoding::parse(&e).ok_or_else(|| {
                o.err("defaultEncoding", format!("`{e}` is not gzip, br or zstd"))
            })?),
            None => None,
        };
        o.finish()?;
        Ok(Compress {
            min_bytes,
            excluded,
            included,
            encodings,
            default_encoding,
        })
    }

    /// The encoding to use for a request's `Accept-Encoding` (None = send as is).
    pub fn choose(&self, accept: Option<&str>) -> Option<Encoding> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return self.default_encoding;
        };
        let mut best: Option<(f32, usize, Encoding)> = None;
        let mut wildcard_q = None;
        let mut identity_q: Option<f32> = None;
        let mut listed = Vec::new();
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            for p in parts {
                if let Some(v) = p.trim().strip_prefix("q=") {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            if token == "*" {
                wildcard_q = Some(q);
                continue;
            }
            if token == "identity" {
                identity_q = Some(q);
                continue;
            }
            let Some(enc) = Encoding::parse(&token) else {
                continue;
            };
            listed.push(enc);
            let Some(rank) = self.encodings.iter().position(|e| *e == enc) else {
                continue;
            };
            if q <= 0.0 {
                continue;
            }
            if best.is_none_or(|(bq, br, _)| q > bq || (q == bq && rank < br)) {
                best = Some((q, rank, enc));
            }
        }
        if let Some(q) = wildcard_q.filter(|q| *q > 0.0) {
            let enc = self
                .default_encoding
                .filter(|e| !listed.contains(e))
                .or_else(|| self.encodings.iter().copied().find(|e| !listed.contains(e)));
            if let Some(enc) = enc {
                let rank = self
                    .encodings
                    .iter()
                    .position(|e| *e == enc)
                    .unwrap_or(usize::MAX);
                if best.is_none_or(|(bq, br, _)| q > bq || (q == bq && rank < br)) {
                    best = Some((q, rank, enc));
                }
            }
        }
        match (best, identity_q) {
            (Some((q, _, _)), Some(iq)) if iq > q => None,
            (b, _) => b.map(|(_, _, e)| e),
        }
    }

    /// Whether a response with these headers and status may be compressed.
    pub fn compressible(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::PARTIAL_CONTENT
            || headers.contains_key(header::CONTENT_ENCODING)
            || headers.contains_key(header::CONTENT_RANGE)
        {
            return false;
        }
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(media_type)
            .unwrap_or_default();
        if !self.included.is_empty() {
            return self.included.contains(&ct);
        }
        if ALWAYS_EXCLUDED.iter().any(|t| ct.starts_with(t)) {
            return false;
        }
        !self.excluded.contains(&ct)
    }

    /// Wraps the rest of the chain.
    pub async fn wrap(&self, req: Req, cx: &Cx<'_>, rest: &[Arc<Middleware>]) -> Res {
        let enc = self.choose(
            req.headers()
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok()),
        );
        let head = req.method() == http::Method::HEAD;
        let resp = next(rest, req, cx).await?;
        let Some(enc) = enc else { return Ok(resp) };
        if head || !self.compressible(resp.status(), resp.headers()) {
            return Ok(resp);
        }
        let length = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (mut parts, mut body) = resp.into_parts();
        let mut ahead = VecDeque::new();
        match length {
            Some(n) if n < self.min_bytes => return Ok(Response::from_parts(parts, body)),
            Some(_) => {}
            None => {
                // Read ahead up to the threshold to decide; what was read is replayed.
                let mut seen = 0u64;
                let mut ended = false;
                while seen < self.min_bytes {
                    match body.frame().await {
                        Some(Ok(f)) => match f.into_data() {
                            Ok(d) => {
                                seen += d.len() as u64;
                                ahead.push_back(d);
                            }
                            Err(_) => continue,
                        },
                        Some(Err(_)) | None => {
                            ended = true;
                            break;
                        }
                    }
                }
                if ended && seen < self.min_bytes {
                    let mut buf = Vec::with_capacity(seen as usize);
                    for d in ahead {
                        buf.extend_from_slice(&d);
                    }
                    return Ok(Response::from_parts(parts, ProxyBody::full(buf)));
                }
            }
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::ACCEPT_RANGES);
        parts.headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(enc.token()),
        );
        add_vary(&mut parts.headers);
        let body = CompressBody::new(enc, body, ahead);
        Ok(Response::from_parts(parts, ProxyBody::boxed(body)))
    }
}

fn add_vary(h: &mut HeaderMap) {
    let has = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("accept-encoding") || t.trim() == "*");
    if !has {
        h.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::Gzip(_) => "gzip",
            Encoder::Br(_) => "br",
            Encoder::Zstd(_) => "zstd",
        })
    }
}

impl Encoder {
    fn new(enc: Encoding) -> std::io::Result<Encoder> {
        Ok(match enc {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            // Quality 5 / 4 MiB window: Brotli's default (11) is far too slow for on-the-fly use.
            Encoding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                5,
                22,
            ))),
            Encoding::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        })
    }

    fn write(&mut self, d: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(d),
            Encoder::Br(e) => e.write_all(d),
            Encoder::Zstd(e) => e.write_all(d),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Br(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }

    fn take(&mut self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => std::mem::take(e.get_mut()),
            Encoder::Br(e) => std::mem::take(e.get_mut()),
            Encoder::Zstd(e) => std::mem::take(e.get_mut()),
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Br(e) => Ok(e.into_inner()),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

/// A response body compressed frame by frame.
#[derive(Debug)]
pub struct CompressBody {
    inner: ProxyBody,
    ahead: VecDeque<Bytes>,
    encoder: Option<Encoder>,
    unflushed: bool,
    init_error: Option<std::io::Error>,
}

impl CompressBody {
    fn new(enc: Encoding, inner: ProxyBody, ahead: VecDeque<Bytes>) -> CompressBody {
        let (encoder, init_error) = match Encoder::new(enc) {
            Ok(e) => (Some(e), None),
            Err(e) => (None, Some(e)),
        };
        CompressBody {
            inner,
            ahead,
            encoder,
            unflushed: false,
            init_error,
        }
    }

    /// True once everything was emitted.
    pub fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.init_error.is_none()
    }

    fn emit(&mut self, d: &[u8]) -> Result<Option<Bytes>, BoxError> {
        let Some(enc) = self.encoder.as_mut() else {
            return Ok(None);
        };
        enc.write(d)?;
        self.unflushed = true;
        let out = enc.take();
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }
}

impl Body for CompressBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(e) = this.init_error.take() {
            return Poll::Ready(Some(Err(e.into())));
        }
        loop {
            if this.encoder.is_none() {
                return Poll::Ready(None);
            }
            if let Some(d) = this.ahead.pop_front() {
                match this.emit(&d) {
                    Ok(Some(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Ok(None) => continue,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(d) = frame.into_data() else { continue }; // trailers are dropped
                    match this.emit(&d) {
                        Ok(Some(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Ok(None) => continue,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    let Some(enc) = this.encoder.take() else {
                        return Poll::Ready(None);
                    };
                    return match enc.finish() {
                        Ok(out) if out.is_empty() => Poll::Ready(None),
                        Ok(out) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => Poll::Ready(Some(Err(e.into()))),
                    };
                }
                Poll::Pending => {
                    // The backend paused: push out what the encoder holds so the client is not kept waiting.
                    if this.unflushed {
                        this.unflushed = false;
                        if let Some(enc) = this.encoder.as_mut() {
                            if let Err(e) = enc.flush() {
                                return Poll::Ready(Some(Err(e.into())));
                            }
                            let out = enc.take();
                            if !out.is_empty() {
                                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                            }
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Read;

    fn c(v: serde_json::Value) -> Compress {
        Compress::build(Opts::new("compress", &v).expect("o")).expect("b")
    }

    #[test]
    fn accept_encoding_negotiation() {
        let d = c(json!({}));
        let cases = [
            (None, None),
            (Some("gzip"), Some(Encoding::Gzip)),
            (Some("gzip, br"), Some(Encoding::Br)),
            (Some("gzip, br, zstd"), Some(Encoding::Zstd)),
            (Some("gzip;q=1.0, br;q=0.5"), Some(Encoding::Gzip)),
            (Some("br;q=0, gzip;q=0.1"), Some(Encoding::Gzip)),
            (Some("deflate"), None),
            (Some("*"), Some(Encoding::Zstd)),
            (Some("gzip;q=0.5, identity"), None),
            (Some("zstd;q=0"), None),
        ];
        for (accept, want) in cases {
            assert_eq!(d.choose(accept), want, "{accept:?}");
        }
        let g = c(json!({"encodings": "gzip,br", "defaultEncoding": "gzip"}));
        assert_eq!(g.choose(Some("zstd")), None);
        assert_eq!(g.choose(None), Some(Encoding::Gzip));
        assert!(
            Compress::build(Opts::new("compress", &json!({"encodings": "lzma"})).expect("o"))
                .is_err()
        );
    }

    #[test]
    fn content_types() {
        let d = c(json!({"excludedContentTypes": ["image/png"]}));
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        assert!(d.compressible(StatusCode::OK, &h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        assert!(!d.compressible(StatusCode::OK, &h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        assert!(!d.compressible(StatusCode::OK, &h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(!d.compressible(StatusCode::OK, &h), "never recompress");
        let i = c(json!({"includedContentTypes": "application/json"}));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!i.compressible(StatusCode::OK, &h));
        assert!(Compress::build(
            Opts::new(
                "compress",
                &json!({"includedContentTypes": "a/b", "excludedContentTypes": "c/d"})
            )
            .expect("o")
        )
        .is_err());
    }

    #[tokio::test]
    async fn body_round_trips_for_every_encoding() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for enc in [Encoding::Gzip, Encoding::Br, Encoding::Zstd] {
            let mut ahead = VecDeque::new();
            for chunk in text.chunks(7000) {
                ahead.push_back(Bytes::copy_from_slice(chunk));
            }
            let body = CompressBody::new(enc, ProxyBody::empty(), ahead);
            let out = body.collect().await.expect("collect").to_bytes();
            assert!(out.len() < text.len() / 3, "{enc:?} compresses");
            let mut dec = Vec::new();
            match enc {
                Encoding::Gzip => flate2::read::GzDecoder::new(&out[..])
                    .read_to_end(&mut dec)
                    .map(|_| ()),
                Encoding::Br => brotli::Decompressor::new(&out[..], 4096)
                    .read_to_end(&mut dec)
                    .map(|_| ()),
                Encoding::Zstd => zstd::stream::read::Decoder::new(&out[..])
                    .and_then(|mut d| d.read_to_end(&mut dec))
                    .map(|_| ()),
            }
            .expect("decode");
            assert_eq!(dec, text, "{enc:?}");
        }
    }
}
