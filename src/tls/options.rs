//! Traefik's TLS options (`tls.options.<name>`) → a rustls `ServerConfig`.
//!
//! Go's names are accepted: `VersionTLS12`, `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`, `CurveP256`, `X25519`,
//! `RequireAndVerifyClientCert`. What rustls does not implement (TLS 1.0/1.1, CBC suites) is reported as a
//! warning and left out, never silently enabled.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::SupportedKxGroup;
use rustls::pki_types::pem::PemObject;
use rustls::server::WantsServerCert;
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ConfigBuilder, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
    WantsVerifier,
};

use super::TlsShared;
use crate::dynamic::{ClientAuth, TlsOptions};

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
    let (min, versions) = protocol_versions(o, &mut warnings)?;
    if !o.cipher_suites.is_empty() {
        provider.cipher_suites = cipher_suites(o, &provider, min, &mut warnings)?;
    }
    if !o.curve_preferences.is_empty() {
        provider.kx_groups = kx_groups(o, &provider, &mut warnings)?;
    }
    let builder = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match &o.client_auth {
        None => builder.with_no_client_auth(),
        Some(ca) => with_client_auth(builder, ca, &mut warnings)?,
    };
    let mut cfg = builder.with_cert_resolver(resolver);
    cfg.alpn_protocols = alpn_protocols(o);
    cfg.session_storage = shared.sessions.clone();
    if !o.disable_session_tickets {
        cfg.ticketer = shared.ticketer.clone();
    }
    Ok((cfg, warnings))
}

/// `minVersion`/`maxVersion` → the lowest version offered (2 = TLS 1.2, 3 = TLS 1.3) and rustls' versions.
fn protocol_versions(
    o: &TlsOptions,
    warnings: &mut Vec<String>,
) -> Result<(u8, Vec<&'static SupportedProtocolVersion>), String> {
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
    let versions = [(2u8, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, p)| p)
        .collect();
    Ok((min, versions))
}

/// `cipherSuites` (Go names) → the provider's TLS 1.2 suites named, plus every TLS 1.3 suite.
fn cipher_suites(
    o: &TlsOptions,
    provider: &CryptoProvider,
    min: u8,
    warnings: &mut Vec<String>,
) -> Result<Vec<SupportedCipherSuite>, String> {
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
    Ok(keep)
}

/// `curvePreferences` (Go names) → the provider's key-exchange groups, in the order given.
fn kx_groups(
    o: &TlsOptions,
    provider: &CryptoProvider,
    warnings: &mut Vec<String>,
) -> Result<Vec<&'static dyn SupportedKxGroup>, String> {
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
    Ok(groups)
}

/// `clientAuth` → the client-certificate verifier its `clientAuthType` asks for.
fn with_client_auth(
    builder: ConfigBuilder<ServerConfig, WantsVerifier>,
    ca: &ClientAuth,
    warnings: &mut Vec<String>,
) -> Result<ConfigBuilder<ServerConfig, WantsServerCert>, String> {
    let kind = ca.client_auth_type.as_deref().unwrap_or("NoClientCert");
    Ok(match kind {
        "NoClientCert" | "" => builder.with_no_client_auth(),
        "VerifyClientCertIfGiven" | "RequestClientCert" => {
            let v = WebPkiClientVerifier::builder(Arc::new(client_roots(ca, kind)?))
                .allow_unauthenticated()
                .build()
                .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(v)
        }
        "RequireAndVerifyClientCert" | "RequireAnyClientCert" => {
            if kind == "RequireAnyClientCert" {
                warnings.push("RequireAnyClientCert is enforced as RequireAndVerifyClientCert (client certificates are verified)".into());
            }
            let v = WebPkiClientVerifier::builder(Arc::new(client_roots(ca, kind)?))
                .build()
                .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(v)
        }
        other => return Err(format!("clientAuthType `{other}` is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert")),
    })
}

/// The CAs of `clientAuth.caFiles`; a verifying `clientAuthType` without any is an error.
fn client_roots(ca: &ClientAuth, kind: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for f in &ca.ca_files {
        let pem = super::certs::pem_bytes(f, "clientAuth.caFiles").map_err(|e| e.to_string())?;
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
}

/// `alpnProtocols` (h2 and http/1.1 by default); `acme-tls/1` is never offered to ordinary clients.
fn alpn_protocols(o: &TlsOptions) -> Vec<Vec<u8>> {
    if o.alpn_protocols.is_empty() {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        o.alpn_protocols
            .iter()
            .filter(|p| p.as_str() != "acme-tls/1")
            .map(|p| p.as_bytes().to_vec())
            .collect()
    }
}
