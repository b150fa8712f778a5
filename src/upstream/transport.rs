//! How upstream connections are made: `serversTransport` settings and the client TLS configuration built
//! from them (webpki roots, `rootCAs`, `insecureSkipVerify`).

use std::time::Duration;

/// Settings of the upstream pools (from `serversTransport`).
#[derive(Clone, Debug, Default)]
pub struct PoolSettings {
    /// TCP connect timeout (`dialTimeout`).
    pub dial_timeout: Option<Duration>,
    /// Idle pooled connection lifetime (`idleConnTimeout`).
    pub idle_timeout: Option<Duration>,
    /// Idle connections kept per backend (`maxIdleConnsPerHost`).
    pub max_idle_per_host: usize,
    /// Skip verification of HTTPS backends' certificates (`insecureSkipVerify`).
    pub insecure_skip_verify: bool,
    /// Extra trusted CAs for HTTPS backends (`rootCAs`), DER.
    pub root_cas: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// Why the upstream TLS settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The TLS library refused the settings.
    #[error("TLS client settings: {0}")]
    Tls(#[from] rustls::Error),
    /// A `rootCAs` entry is neither a readable PEM file nor inline PEM.
    #[error("rootCAs entry `{entry}`: {reason}")]
    RootCa {
        /// The entry (path or the start of inline PEM).
        entry: String,
        /// What failed.
        reason: String,
    },
}

/// Reads `rootCAs` entries: file paths or inline PEM, as Traefik accepts both.
#[allow(clippy::disallowed_methods)] // table-build time, not per request: reads the CA files once
pub fn load_root_cas(
    entries: &[String],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TransportError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut out = Vec::new();
    for e in entries {
        let pem = if e.contains("-----BEGIN") {
            e.clone().into_bytes()
        } else {
            std::fs::read(e).map_err(|err| TransportError::RootCa {
                entry: e.clone(),
                reason: err.to_string(),
            })?
        };
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|err| TransportError::RootCa {
                entry: e.chars().take(40).collect(),
                reason: err.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TransportError::RootCa {
                entry: e.chars().take(40).collect(),
                reason: "no certificate found".into(),
            });
        }
        out.extend(certs);
    }
    Ok(out)
}

/// Client TLS configuration for HTTPS backends: webpki roots plus `rootCAs`.
pub(crate) fn upstream_tls(s: &PoolSettings) -> Result<rustls::ClientConfig, TransportError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let cfg = if s.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for ca in &s.root_cas {
            let _ = roots.add(ca.clone());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // ALPN (h2, http/1.1) is set by the pool, which decides the protocol from it.
    Ok(cfg)
}

/// `insecureSkipVerify`: accepts any backend certificate, still checks handshake signatures.
#[derive(Debug)]
struct NoVerify(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
