//! Traefik's TLS options (`tls.options.<name>`) → a rustls `ServerConfig`.
//!
//! Go's names are accepted: `VersionTLS12`, `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`, `CurveP256`, `X25519`,
//! `RequireAndVerifyClientCert`. What rustls does not implement (TLS 1.0/1.1, CBC suites) is reported as a
//! warning and left out, never silently enabled.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::TlsShared;
use crate::dynamic::TlsOptions;

fn version(name: &str) -> Result<Option<u8>, String> {
    // 2 = TLS 1.2, 3 = TLS 1.3; None = below what rustls supports.
    match name {
        "VersionTLS10" | "VersionTLS11" => Ok(None),
        "VersionTLS12" => Ok(Some(2)),
        "VersionTLS13" => Ok(Some(3)),
        other => Err(format!(
            "`{other}` is not VersionTLS10, VersionTLS11, VersionTLS12 or VersionTLS13"
        )),
    }
}

/// Builds the server configuration; returns it with warnings about settings that were left out.
pub fn server_config(
    o: &TlsOptions,
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
    shared: &TlsShared,
) -> Result<(ServerConfig, Vec<String>), String> {
    let mut warnings = Vec::new();
    let mut provider: CryptoProvider = rustls::crypto::ring::default_provider();
    let min = match o.min_version.as_deref().filter(|s| !s.is_empty()) {
        None => 2,
        Some(v) => version(v)?.unwrap_or_else(|| {
            warnings.push(format!("minVersion {v} is below TLS 1.2, which swarmgate (rustls) does not offer; TLS 1.2 is the minimum"));
            2
        }),
    };
    let max = match o.max_version.as_deref().filter(|s| !s.is_empty()) {
        None => 3,
        Some(v) => version(v)?.ok_or_else(|| {
            format!("maxVersion {v} is below TLS 1.2, which swarmgate does not offer")
        })?,
    };
    if min > max {
        return Err("minVersion is above maxVersion".into());
    }
    let versions: Vec<&'static SupportedProtocolVersion> =
        [(2u8, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();

    if !o.cipher_suites.is_empty() {
        let mut keep = Vec::new();
        for name in &o.cipher_suites {
            let found = provider
                .cipher_suites
                .iter()
                .find(|s| s.suite().as_str() == Some(name.as_str()));
            match found {
                Some(s) => keep.push(*s),
                None if name.starts_with("TLS_") => warnings.push(format!(
                    "cipher suite {name} is not supported by rustls and is left out"
                )),
                None => return Err(format!("`{name}` is not a cipher suite name")),
            }
        }
        // TLS 1.3 suites are not configurable in Go either: keep them all.
        keep.extend(
            provider
                .cipher_suites
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied(),
        );
        if !keep.iter().any(|s| s.version() == &rustls::version::TLS12) && min == 2 {
            warnings.push("no TLS 1.2 cipher suite left: only TLS 1.3 clients can connect".into());
        }
        keep.dedup_by_key(|s| s.suite());
        provider.cipher_suites = keep;
    }
    if !o.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for c in &o.curve_preferences {
            let want = match c.as_str() {
                "CurveP256" | "secp256r1" | "P256" => "secp256r1",
                "CurveP384" | "secp384r1" | "P384" => "secp384r1",
                "X25519" | "x25519" => "X25519",
                "CurveP521" | "secp521r1" => {
                    warnings.push(format!(
                        "curve {c} is not supported by rustls and is left out"
                    ));
                    continue;
                }
                other => {
                    return Err(format!(
                        "`{other}` is not a curve name (CurveP256, CurveP384, X25519)"
                    ))
                }
            };
            if let Some(g) = provider
                .kx_groups
                .iter()
                .find(|g| format!("{:?}", g.name()) == want)
            {
                groups.push(*g);
            }
        }
        if groups.is_empty() {
            return Err("curvePreferences leaves no usable curve".into());
        }
        provider.kx_groups = groups;
    }

    let builder = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match &o.client_auth {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let kind = ca.client_auth_type.as_deref().unwrap_or("NoClientCert");
            let roots = || -> Result<RootCertStore, String> {
                let mut roots = RootCertStore::empty();
                for f in &ca.ca_files {
                    let pem = super::certs::pem_bytes(f, "clientAuth.caFiles")
                        .map_err(|e| e.to_string())?;
                    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                        roots
                            .add(c.map_err(|e| format!("clientAuth.caFiles {f}: {e}"))?)
                            .map_err(|e| e.to_string())?;
                    }
                }
                if roots.is_empty() {
                    return Err(format!("clientAuthType {kind} needs clientAuth.caFiles"));
                }
                Ok(roots)
            };
            match kind {
                "NoClientCert" | "" => builder.with_no_client_auth(),
                "VerifyClientCertIfGiven" | "RequestClientCert" => {
                    let v = WebPkiClientVerifier::builder(Arc::new(roots()?)).allow_unauthenticated().build().map_err(|e| e.to_string())?;
                    builder.with_client_cert_verifier(v)
                }
                "RequireAndVerifyClientCert" | "RequireAnyClientCert" => {
                    if kind == "RequireAnyClientCert" {
                        warnings.push("RequireAnyClientCert is enforced as RequireAndVerifyClientCert (client certificates are verified)".into());
                    }
                    let v = WebPkiClientVerifier::builder(Arc::new(roots()?)).build().map_err(|e| e.to_string())?;
                    builder.with_client_cert_verifier(v)
                }
                other => return Err(format!("clientAuthType `{other}` is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert")),
            }
        }
    };
    let mut cfg = builder.with_cert_resolver(resolver);
    cfg.alpn_protocols = if o.alpn_protocols.is_empty() {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        o.alpn_protocols
            .iter()
            .filter(|p| p.as_str() != "acme-tls/1")
            .map(|p| p.as_bytes().to_vec())
            .collect()
    };
    cfg.session_storage = shared.sessions.clone();
    if !o.disable_session_tickets {
        cfg.ticketer = shared.ticketer.clone();
    }
    Ok((cfg, warnings))
}
