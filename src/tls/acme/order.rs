//! One ACME order, start to finish, with instant-acme: account, new order (with ARI `replaces` when the CA
//! offers it), challenge answers published for every replica, readiness, CSR, certificate.
//!
//! Lifecycle of [`obtain`]: `newOrder` → for each pending authorization, publish the answer
//! ([`StoredChallenges`]), wait until every replica can have loaded it (`propagation`), and mark the
//! challenge ready → poll the order until `ready` (or `invalid`: the
//! challenges' errors are collected into [`OrderError::Invalid`]) → generate the certificate key, send the CSR →
//! poll until `valid` → download the chain. Answers are withdrawn on every exit path. badNonce answers are
//! retried inside instant-acme; everything else is returned, classified by [`OrderError::retry_floor`], for the
//! manager's jittered backoff.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, BytesResponse, CertificateIdentifier, ChallengeType,
    ExternalAccountKey, HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use super::challenge_store::{ChallengeError, StoredChallenges};
use super::dns::{self, Dns01, DnsError};
use super::storage::{GoBytes, Registration, StoredAccount};

/// How the CA validates control of a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    /// HTTP-01, answered on every entrypoint (Traefik names one, `httpChallenge.entryPoint`; the CA must reach
    /// port 80 of it).
    Http01 {
        /// `httpChallenge.entryPoint`.
        entry_point: String,
    },
    /// TLS-ALPN-01 (`tlsChallenge`), answered on every TLS entrypoint (the CA connects to port 443).
    TlsAlpn01,
    /// DNS-01 (`dnsChallenge`): a TXT record created through the configured provider.
    Dns01(Arc<Dns01>),
}

impl ChallengeKind {
    fn acme_type(&self) -> ChallengeType {
        match self {
            ChallengeKind::Http01 { .. } => ChallengeType::Http01,
            ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
            ChallengeKind::Dns01(_) => ChallengeType::Dns01,
        }
    }
}

/// Certificate key type (`keyType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256 (`EC256`).
    Ec256,
    /// ECDSA P-384 (`EC384`).
    Ec384,
}

impl KeyType {
    /// Parses Traefik's names. RSA types are refused: ring (our only crypto provider) cannot generate RSA keys.
    /// Empty means EC256 (Traefik's default is RSA4096; see `docs/shared-certificates.md`).
    pub fn parse(value: &str) -> Result<KeyType, String> {
        match value {
            "" | "EC256" => Ok(KeyType::Ec256),
            "EC384" => Ok(KeyType::Ec384),
            "RSA2048" | "RSA4096" | "RSA8192" => Err(format!(
                "keyType `{value}`: RSA certificate keys are not supported yet (ring cannot generate RSA keys); use EC256 or EC384"
            )),
            other => Err(format!("keyType `{other}` is unknown (EC256, EC384, RSA2048, RSA4096, RSA8192)")),
        }
    }

    fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            KeyType::Ec256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::Ec384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        }
    }
}

/// Why an order (or the account it needs) failed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The CA or the connection to it failed.
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    /// The CA offered no challenge of the configured type for a name.
    #[error("the CA offers no {kind:?} challenge for `{domain}`")]
    NoChallenge {
        /// The name.
        domain: String,
        /// The configured challenge.
        kind: ChallengeKind,
    },
    /// An authorization is in a state that cannot lead to a certificate.
    #[error("authorization for `{domain}` is {status:?}")]
    Authorization {
        /// The name.
        domain: String,
        /// Its status.
        status: AuthorizationStatus,
    },
    /// Validation failed; the CA's reasons, per name.
    #[error("validation failed: {0}")]
    Invalid(String),
    /// The certificate key or CSR could not be generated.
    #[error("certificate key/CSR: {0}")]
    Key(String),
    /// A challenge answer could not be published.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    /// An ACME request did not complete in time.
    #[error("ACME server did not answer within {0:?}")]
    Timeout(Duration),
    /// DNS-01: a record could not be created or did not propagate.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The stored account is unusable.
    #[error("account: {0}")]
    Account(String),
}

impl OrderError {
    /// A lower bound for the next attempt: rate limits wait at least 15 minutes (RFC 8555 `rateLimited`);
    /// other failures use the manager's backoff alone.
    pub fn retry_floor(&self) -> Duration {
        let rate_limited = match self {
            OrderError::Acme(instant_acme::Error::Api(p)) => {
                p.r#type.as_deref() == Some("urn:ietf:params:acme:error:rateLimited")
            }
            _ => false,
        };
        if rate_limited {
            Duration::from_secs(900)
        } else {
            Duration::ZERO
        }
    }
}

/// instant-acme's transport: hyper + rustls (ring) trusting the resolver's roots, every request bounded by a
/// timeout (Traefik's `clientTimeout`).
#[derive(Clone)]
pub struct AcmeHttp {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    timeout: Duration,
}

impl AcmeHttp {
    /// A client trusting `roots`; `server_name` overrides the name verified in the CA's certificate
    /// (`caServerName`).
    pub fn new(
        roots: rustls::RootCertStore,
        server_name: Option<String>,
        timeout: Duration,
    ) -> Result<AcmeHttp, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let b = match server_name {
            Some(n) => {
                let name = rustls::pki_types::ServerName::try_from(n.clone())
                    .map_err(|e| format!("caServerName `{n}`: {e}"))?;
                b.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => b,
        };
        let connector = b.enable_http1().enable_http2().build();
        Ok(AcmeHttp {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>>
    {
        let fut = self.client.request(req);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(Ok(rsp)) => Ok(BytesResponse::from(rsp)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(connect_error(&e).into())),
                Err(_) => Err(instant_acme::Error::Other(
                    format!("no answer within {timeout:?}").into(),
                )),
            }
        })
    }
}

/// Loads PEM CA files into a root store (`caCertificates`, `LEGO_CA_CERTIFICATES`); with none, or with
/// `system`, the bundled Mozilla roots are added.
#[allow(clippy::disallowed_methods)] // ACME client setup: reads the CA bundle files once
pub fn root_store(files: &[PathBuf], system: bool) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for f in files {
        let pem = std::fs::read(f).map_err(|e| format!("CA certificates {}: {e}", f.display()))?;
        let mut n = 0;
        for c in CertificateDer::pem_slice_iter(&pem) {
            let c = c.map_err(|e| format!("CA certificates {}: {e}", f.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("CA certificates {}: {e}", f.display()))?;
            n += 1;
        }
        if n == 0 {
            return Err(format!(
                "CA certificates {}: no PEM certificate found",
                f.display()
            ));
        }
    }
    if files.is_empty() || system {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(roots)
}

/// lego's `hmacEncoded` decoding: base64url without padding (padding and the standard alphabet tolerated).
pub fn decode_hmac(encoded: &str) -> Result<Vec<u8>, String> {
    let trimmed = encoded.trim().trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD.decode(encoded.trim()))
        .map_err(|e| format!("eab.hmacEncoded is not base64url: {e}"))
}

/// Account settings of a resolver.
pub struct AccountSettings<'a> {
    /// Directory URL.
    pub directory: &'a str,
    /// `email`.
    pub email: &'a str,
    /// `eab.kid` and decoded `eab.hmacEncoded`.
    pub eab: Option<(&'a str, &'a [u8])>,
}

fn same_host(a: &str, b: &str) -> bool {
    let host = |u: &str| {
        u.parse::<http::Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.to_string()))
    };
    host(a).is_some() && host(a) == host(b)
}

/// Restores the stored account when it belongs to this CA (same host, as Traefik's
/// `isAccountMatchingCaServer`), else registers a new one. Returns the account and, when it is new, what to
/// store.
pub async fn account(
    http: &AcmeHttp,
    stored: Option<&StoredAccount>,
    s: &AccountSettings<'_>,
) -> Result<(Account, Option<StoredAccount>), OrderError> {
    if let Some(st) = stored {
        let uri = st
            .registration
            .as_ref()
            .map(|r| r.uri.as_str())
            .unwrap_or("");
        if st.key_type == "P256" && !uri.is_empty() && same_host(uri, s.directory) {
            let key = PrivatePkcs8KeyDer::from(st.private_key.0.clone());
            let acct = Account::builder_with_http(Box::new(http.clone()))
                .from_parts(uri.to_string(), key, s.directory.to_string())
                .await?;
            return Ok((acct, None));
        }
        tracing::info!(
            "ACME account does not match the CA server {}; registering a new one",
            s.directory
        );
    }
    let contact = format!("mailto:{}", s.email);
    let contacts: Vec<&str> = if s.email.is_empty() {
        Vec::new()
    } else {
        vec![contact.as_str()]
    };
    let eab = s
        .eab
        .map(|(kid, hmac)| ExternalAccountKey::new(kid.to_string(), hmac));
    let (acct, creds) = Account::builder_with_http(Box::new(http.clone()))
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            s.directory.to_string(),
            eab.as_ref(),
        )
        .await?;
    tracing::info!(account = %acct.id(), "ACME account registered with {}", s.directory);
    let stored = StoredAccount {
        email: s.email.to_string(),
        registration: Some(Registration {
            body: serde_json::json!({ "status": "valid", "contact": contacts }),
            uri: acct.id().to_string(),
        }),
        private_key: GoBytes(creds.private_key().secret_pkcs8_der().to_vec()),
        key_type: "P256".into(),
    };
    Ok((acct, Some(stored)))
}

/// What to order.
pub struct OrderRequest<'a> {
    /// Names; the first is the main name (CN unless `disable_common_name`).
    pub names: &'a [String],
    /// Challenge type.
    pub kind: &'a ChallengeKind,
    /// Certificate key type.
    pub key_type: KeyType,
    /// Where answers are published.
    pub challenges: &'a StoredChallenges,
    /// How long other replicas may take to load a published answer: waited before the CA validates.
    pub propagation: Duration,
    /// The storage directory (answers for the other replicas).
    pub storage_dir: &'a Path,
    /// ARI: the certificate this order replaces.
    pub replaces: Option<CertificateIdentifier<'static>>,
    /// `disableCommonName`.
    pub disable_common_name: bool,
    /// `profile`.
    pub profile: Option<&'a str>,
    /// Bound on waiting for validation and issuance (Traefik's `certificateTimeout`, at least 30 s).
    pub timeout: Duration,
}

/// An issued certificate.
#[derive(Clone, Debug)]
pub struct Issued {
    /// PEM chain, leaf first.
    pub chain_pem: String,
    /// PEM (PKCS#8) private key.
    pub key_pem: String,
}

/// Withdraws published answers on every exit path.
struct Published<'a> {
    challenges: &'a StoredChallenges,
    dir: &'a Path,
    http01: Vec<String>,
    alpn: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for t in &self.http01 {
            self.challenges.remove_http01(self.dir, t);
        }
        for d in &self.alpn {
            self.challenges.remove_tls_alpn01(self.dir, d);
        }
    }
}

/// Places one order and returns the certificate (see the module doc).
pub async fn obtain(account: &Account, req: &OrderRequest<'_>) -> Result<Issued, OrderError> {
    let mut order = place_order(account, req).await?;
    tracing::debug!(order = %order.url(), names = ?req.names, "ACME order placed");

    let mut published = Published {
        challenges: req.challenges,
        dir: req.storage_dir,
        http01: Vec::new(),
        alpn: Vec::new(),
    };
    if let ChallengeKind::Dns01(d) = req.kind {
        // TXT records are removed whatever the outcome (and by a task if this future is dropped).
        let mut records = dns::Published::new(d.clone());
        let result = match answer_dns(&mut order, d, &mut records).await {
            Ok(()) => finish(&mut order, req).await,
            Err(e) => Err(e),
        };
        records.cleanup().await;
        return result;
    }
    answer_challenges(&mut order, req, &mut published).await?;
    let issued = finish(&mut order, req).await;
    drop(published);
    issued
}

/// Readiness, CSR, certificate: the part of an order after the challenges are answered.
async fn finish(
    order: &mut instant_acme::Order,
    req: &OrderRequest<'_>,
) -> Result<Issued, OrderError> {
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(req.timeout);
    let status = order
        .poll_ready(&retry)
        .await
        .map_err(|e| timeout_or_acme(e, req.timeout))?;
    if status != OrderStatus::Ready {
        return Err(OrderError::Invalid(invalid_reasons(order, status).await));
    }

    let (key, csr) = certificate_request(req)?;
    order.finalize_csr(&csr).await?;
    let chain_pem = order
        .poll_certificate(&retry)
        .await
        .map_err(|e| timeout_or_acme(e, req.timeout))?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// `newOrder`, with ARI `replaces` when renewing; a CA without ARI gets the same order without it.
async fn place_order(
    account: &Account,
    req: &OrderRequest<'_>,
) -> Result<instant_acme::Order, OrderError> {
    let ids: Vec<Identifier> = req
        .names
        .iter()
        .map(|n| Identifier::Dns(n.clone()))
        .collect();
    let plain = || {
        let new = NewOrder::new(&ids);
        match req.profile.filter(|p| !p.is_empty()) {
            Some(p) => new.profile(p),
            None => new,
        }
    };
    Ok(match &req.replaces {
        Some(r) => match account.new_order(&plain().replaces(r.clone())).await {
            Err(instant_acme::Error::Unsupported(_)) => account.new_order(&plain()).await?,
            other => other?,
        },
        None => account.new_order(&plain()).await?,
    })
}

/// For each pending authorization: publish the answer (recorded in `published` so it is withdrawn on every
/// exit path), wait for the replicas to load it, and tell the CA it is ready.
async fn answer_challenges(
    order: &mut instant_acme::Order,
    req: &OrderRequest<'_>,
    published: &mut Published<'_>,
) -> Result<(), OrderError> {
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a?;
        let domain = a.identifier().to_string();
        match a.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            status => return Err(OrderError::Authorization { domain, status }),
        }
        let Some(mut ch) = a.challenge(req.kind.acme_type()) else {
            return Err(OrderError::NoChallenge {
                domain,
                kind: req.kind.clone(),
            });
        };
        let ka = ch.key_authorization();
        match req.kind {
            ChallengeKind::Http01 { .. } => {
                let token = ch.token.clone();
                published.http01.push(token.clone());
                req.challenges
                    .add_http01(req.storage_dir, &token, ka.as_str())?;
            }
            ChallengeKind::TlsAlpn01 => {
                published.alpn.push(domain.clone());
                req.challenges
                    .add_tls_alpn01(req.storage_dir, &domain, ka.as_str())?;
            }
            ChallengeKind::Dns01(_) => {
                return Err(OrderError::NoChallenge {
                    domain,
                    kind: req.kind.clone(),
                })
            }
        }
        // Other replicas load the answer at their next poll of the shared directory; the CA may
        // reach any of them as soon as it is told.
        tokio::time::sleep(req.propagation).await;
        ch.set_ready().await?;
    }
    Ok(())
}

/// DNS-01: creates every pending authorization's TXT record, waits until each is visible (see
/// [`Dns01::wait_propagation`]), then tells the CA the challenges are ready.
async fn answer_dns(
    order: &mut instant_acme::Order,
    dns: &Dns01,
    records: &mut dns::Published,
) -> Result<(), OrderError> {
    let mut pending = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a?;
        let id = a.identifier();
        let domain = match id.identifier {
            Identifier::Dns(n) => n.clone(),
            other => format!("{other:?}"),
        };
        match a.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            status => return Err(OrderError::Authorization { domain, status }),
        }
        let Some(ch) = a.challenge(ChallengeType::Dns01) else {
            return Err(OrderError::NoChallenge {
                domain,
                kind: ChallengeKind::Dns01(Arc::new(dns.clone())),
            });
        };
        let ka = ch.key_authorization();
        let record = dns.record(&domain, &ch.token, ka.as_str()).await;
        records.present(record.clone()).await?;
        pending.push((domain, record));
    }
    for (_, r) in &pending {
        dns.wait_propagation(r).await?;
    }
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a?;
        if a.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut ch) = a.challenge(ChallengeType::Dns01) {
            ch.set_ready().await?;
        }
    }
    Ok(())
}

/// Why an order did not become ready: the challenges' errors, or the order status when the CA gave none.
async fn invalid_reasons(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut reasons = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let Ok(mut a) = a else { continue };
        let _ = a.refresh().await;
        let domain = a.identifier().to_string();
        for c in &a.challenges {
            if let Some(p) = &c.error {
                reasons.push(format!("{domain}: {p}"));
            }
        }
    }
    if reasons.is_empty() {
        reasons.push(format!("order is {status:?}"));
    }
    reasons.join("; ")
}

/// A fresh certificate key and the DER CSR for the order's names (first name as CN unless disabled).
fn certificate_request(req: &OrderRequest<'_>) -> Result<(KeyPair, Vec<u8>), OrderError> {
    let key = req
        .key_type
        .generate()
        .map_err(|e| OrderError::Key(e.to_string()))?;
    let mut params =
        CertificateParams::new(req.names.to_vec()).map_err(|e| OrderError::Key(e.to_string()))?;
    params.distinguished_name = DistinguishedName::new();
    if !req.disable_common_name {
        if let Some(main) = req.names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, main.clone());
        }
    }
    let csr = params
        .serialize_request(&key)
        .map_err(|e| OrderError::Key(e.to_string()))?;
    Ok((key, csr.der().to_vec()))
}

/// instant-acme's polling timeout is ours (with the configured duration); anything else stays an ACME error.
/// A transport error with its cause named (DNS, refused, timeout, TLS), instead of hyper-util's bare
/// `client error (Connect)`; an untrusted CA certificate says how to trust it.
fn connect_error(e: &(dyn std::error::Error + 'static)) -> String {
    let text = crate::cause::describe(e);
    if crate::cause::classify(e) == Some(crate::cause::Cause::TlsUnknownIssuer) {
        format!("{text} (set LEGO_CA_CERTIFICATES, or the resolver's acme.caCertificates, to the CA's PEM file)")
    } else {
        text
    }
}

fn timeout_or_acme(e: instant_acme::Error, timeout: Duration) -> OrderError {
    match e {
        instant_acme::Error::Timeout(_) => OrderError::Timeout(timeout),
        e => OrderError::Acme(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_as_traefik_names_them() {
        assert_eq!(KeyType::parse(""), Ok(KeyType::Ec256));
        assert_eq!(KeyType::parse("EC384"), Ok(KeyType::Ec384));
        assert!(KeyType::parse("RSA4096")
            .expect_err("rsa")
            .contains("not supported yet"));
        assert!(KeyType::parse("EC512")
            .expect_err("bad")
            .contains("unknown"));
    }

    #[test]
    fn hmac_decodes_like_lego() {
        assert_eq!(decode_hmac("AQID").expect("b64"), [1, 2, 3]);
        assert_eq!(decode_hmac("_-8").expect("b64url"), [0xff, 0xef]);
        assert_eq!(decode_hmac("_-8=").expect("padded"), [0xff, 0xef]);
        assert!(decode_hmac("!!").is_err());
    }

    #[test]
    fn account_matches_by_host() {
        assert!(same_host(
            "https://ca.example:14000/my-account/1",
            "https://ca.example:14000/dir"
        ));
        assert!(!same_host(
            "https://acme-v02.api.letsencrypt.org/acme/acct/1",
            "https://ca.example/dir"
        ));
    }
}
