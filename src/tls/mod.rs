//! TLS termination: certificates, TLS options and the per-connection choice of server configuration.
//!
//! The certificate set and the TLS options are compiled with the routing table ([`compile`]) into a
//! [`TlsRuntime`], so a configuration change swaps certificates and options atomically with the routes,
//! without dropping connections. Session caches and ticket keys live in [`TlsShared`], created once, so
//! resumption survives rebuilds. ACME certificates arrive as a provider snapshot like any file certificate;
//! ACME challenge answers come from [`challenge`].

pub mod acme;
pub mod certs;
pub mod challenge;
mod options;

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::dynamic::{Domain, TlsConfiguration, TlsOptions};
pub use certs::{CertError, CertSet};
use challenge::{SharedChallenges, ACME_TLS_ALPN};

/// A certificate the routers want from an ACME resolver: one per router domain set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertRequest {
    /// Resolver name (`certificatesResolvers.<name>`).
    pub resolver: String,
    /// Main domain.
    pub main: String,
    /// Alternative names.
    pub sans: Vec<String>,
}

/// TLS state that outlives table rebuilds: resumption caches, ticket keys, the generated default
/// certificate, the ACME challenge answers and the one server configuration that answers TLS-ALPN-01.
#[derive(Debug, Clone)]
pub struct TlsShared {
    /// Session-ID resumption cache shared by every server configuration.
    pub sessions: Arc<dyn StoresServerSessions>,
    /// Ticket encryption (rotating keys), shared by every server configuration.
    pub ticketer: Arc<dyn rustls::server::ProducesTickets>,
    /// Served when no certificate matches and no default is configured.
    pub generated_default: Arc<CertifiedKey>,
    /// ACME challenge answers.
    pub challenges: SharedChallenges,
    /// The `acme-tls/1` responder, built once: its resolver reads the current challenge answers, so a
    /// challenge-set change needs no new configuration and a hostile stream of `acme-tls/1` hellos costs
    /// one lookup each.
    pub challenge_config: Arc<ServerConfig>,
}

impl TlsShared {
    /// Creates the shared state: generates the default certificate and ticket keys.
    pub fn new(challenges: SharedChallenges) -> Result<TlsShared, CertError> {
        let ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| CertError::Generate(format!("ticket keys: {e}")))?;
        Ok(TlsShared {
            sessions: ServerSessionMemoryCache::new(10_240),
            ticketer,
            generated_default: Arc::new(certs::generate_default()?),
            challenge_config: challenge_config(challenges.clone()),
            challenges,
        })
    }
}

/// The compiled TLS side of a routing table.
#[derive(Debug)]
pub struct TlsRuntime {
    /// Server configuration by TLS options name (qualified, `default` unqualified).
    configs: HashMap<String, Arc<ServerConfig>>,
    /// Host → options name, from the routers that use options other than `default`.
    host_options: HashMap<String, String>,
    /// The `default` options' configuration.
    default: Arc<ServerConfig>,
    /// Certificates by name.
    pub certs: Arc<CertSet>,
    challenges: SharedChallenges,
    challenge_config: Arc<ServerConfig>,
}

impl TlsRuntime {
    /// Hot path: the key authorization for a pending HTTP-01 challenge token (answered before routing). A
    /// lookup in memory only; a token that is not an RFC 8555 token is refused without one.
    pub fn http01(&self, token: &str) -> Option<String> {
        self.challenges.http01(token)
    }

    /// Request path, after [`TlsRuntime::http01`] missed: the bounded wait for the answer through an
    /// immediate resync of the Swarm stores, or `None` (the miss stands at once) without a Swarm store,
    /// for a non-token, or when the waiting slots are taken. See `challenge`'s "Read-through" section.
    pub fn http01_read_through(&self, token: &str) -> Option<challenge::ReadThroughWait<String>> {
        self.challenges.http01_read_through(token)
    }

    /// TLS handshake, before [`TlsRuntime::config_for`]: for a ClientHello offering `acme-tls/1` for a
    /// name without a pending answer, the bounded wait for the answer through an immediate resync of the
    /// Swarm stores; `None` (nothing to wait for) otherwise, and without a Swarm store. The wait's result
    /// needs no handling: the challenge responder reads the answers when rustls resolves the certificate.
    pub fn alpn_read_through(
        &self,
        hello: &ClientHello<'_>,
    ) -> Option<challenge::ReadThroughWait<Arc<CertifiedKey>>> {
        if !self.challenges.reads_through() {
            return None;
        }
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        let name = hello.server_name().filter(|_| acme)?;
        if self.challenges.tls_alpn01(name).is_some() {
            return None;
        }
        self.challenges.tls_alpn01_read_through(name)
    }

    /// Hot path: the server configuration for a ClientHello: the ACME challenge responder (built once) for
    /// `acme-tls/1`, else the TLS options the routers chose for this host, else `default`. A hello offering
    /// `acme-tls/1` for a name without a pending challenge fails its handshake (no certificate), as in
    /// Traefik, at the cost of one lookup.
    pub fn config_for(&self, hello: &ClientHello<'_>) -> Arc<ServerConfig> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            return self.challenge_config.clone();
        }
        hello
            .server_name()
            .and_then(|sni| self.host_options.get(&sni.to_ascii_lowercase()))
            .and_then(|name| self.configs.get(name))
            .unwrap_or(&self.default)
            .clone()
    }
}

/// Resolves certificates by SNI from an immutable set, falling back to the default unless `sniStrict`.
#[derive(Debug)]
struct SniResolver {
    certs: Arc<CertSet>,
    default: Arc<CertifiedKey>,
    strict: bool,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(sni) = hello.server_name() {
            let sni = sni.to_ascii_lowercase();
            if let Some(c) = self.certs.resolve(sni.trim_end_matches('.')) {
                return Some(c.clone());
            }
        }
        (!self.strict).then(|| self.default.clone())
    }
}

/// Answers TLS-ALPN-01 validation handshakes with the challenge certificate for the SNI name.
#[derive(Debug)]
struct ChallengeResolver(SharedChallenges);

impl ResolvesServerCert for ChallengeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.tls_alpn01(hello.server_name()?)
    }
}

fn challenge_config(challenges: SharedChallenges) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    {
        Ok(b) => {
            let mut cfg = b
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(ChallengeResolver(challenges)));
            cfg.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
            Arc::new(cfg)
        }
        // Unreachable with the ring provider; a refused handshake is the safe answer.
        Err(_) => Arc::new(empty_config()),
    }
}

fn empty_config() -> ServerConfig {
    #[derive(Debug)]
    struct Nothing;
    impl ResolvesServerCert for Nothing {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            None
        }
    }
    ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Nothing))
}

/// Routers' TLS wishes, collected by the table compiler: which hosts use which options.
#[derive(Debug, Default)]
pub struct TlsUsage {
    /// (host, qualified options name, router) for routers with non-default options.
    pub host_options: Vec<(String, String, String)>,
}

/// Compiles the merged `tls` sections (certificates, options, stores) into a runtime. Bad certificates and
/// options are left out and reported; the `default` options always exist.
pub fn compile(
    tls: &[(String, &TlsConfiguration)],
    usage: &TlsUsage,
    shared: &TlsShared,
) -> (TlsRuntime, Vec<String>) {
    let mut issues = Vec::new();
    let (set, default_cert) = load_certificates(tls, shared, &mut issues);
    let certs = Arc::new(set);
    let build = OptionsBuild {
        certs: &certs,
        default_cert: &default_cert,
        shared,
    };
    let (configs, default) = build.all(tls, &mut issues);
    let host_options = host_options(usage, &configs, &mut issues);
    (
        TlsRuntime {
            configs,
            host_options,
            default,
            certs,
            challenges: shared.challenges.clone(),
            challenge_config: shared.challenge_config.clone(),
        },
        issues,
    )
}

/// Every provider's `tls.certificates`, and the default certificate (`tls.stores.default`, else the
/// generated one); other stores are reported as ignored.
fn load_certificates(
    tls: &[(String, &TlsConfiguration)],
    shared: &TlsShared,
    issues: &mut Vec<String>,
) -> (CertSet, Arc<CertifiedKey>) {
    let mut set = CertSet::default();
    let mut default_cert = shared.generated_default.clone();
    for (provider, t) in tls {
        for (i, c) in t.certificates.iter().enumerate() {
            let what = format!("tls.certificates[{i}]@{provider}");
            match load(&c.cert_file, &c.key_file, &what) {
                Ok(ck) => set.insert(Arc::new(ck)),
                Err(e) => issues.push(format!("certificate {what} skipped: {e}")),
            }
        }
        for (name, store) in &t.stores {
            if name != "default" {
                issues.push(format!("TLS store `{name}@{provider}` ignored: only the `default` store exists (as in Traefik)"));
                continue;
            }
            if let Some(d) = &store.default_certificate {
                match load(
                    &d.cert_file,
                    &d.key_file,
                    &format!("tls.stores.default.defaultCertificate@{provider}"),
                ) {
                    Ok(ck) => default_cert = Arc::new(ck),
                    Err(e) => issues.push(format!("default certificate skipped: {e}")),
                }
            }
        }
    }
    (set, default_cert)
}

/// What every TLS options' server configuration shares: the certificates and session state.
struct OptionsBuild<'a> {
    certs: &'a Arc<CertSet>,
    default_cert: &'a Arc<CertifiedKey>,
    shared: &'a TlsShared,
}

impl OptionsBuild<'_> {
    /// Every provider's options by qualified name, and the `default` configuration (built from the
    /// defaults when no provider defines it, refusing every handshake if even that fails).
    fn all(
        &self,
        tls: &[(String, &TlsConfiguration)],
        issues: &mut Vec<String>,
    ) -> (HashMap<String, Arc<ServerConfig>>, Arc<ServerConfig>) {
        let mut configs = HashMap::new();
        let mut default_opts = TlsOptions::default();
        for (provider, t) in tls {
            for (name, opts) in &t.options {
                let qualified = if name == "default" {
                    name.clone()
                } else {
                    crate::dynamic::qualify(name, provider)
                };
                if qualified == "default" {
                    default_opts = opts.clone();
                }
                if let Some(cfg) = self.config(opts, &qualified, issues) {
                    configs.insert(qualified, cfg);
                }
            }
        }
        let default = match configs.get("default") {
            Some(c) => c.clone(),
            None => match self.config(&default_opts, "default", issues) {
                Some(c) => c,
                None => Arc::new(empty_config()),
            },
        };
        (configs, default)
    }

    /// One options' server configuration; its warnings and errors become issues naming it.
    fn config(
        &self,
        opts: &TlsOptions,
        name: &str,
        issues: &mut Vec<String>,
    ) -> Option<Arc<ServerConfig>> {
        let resolver = Arc::new(SniResolver {
            certs: self.certs.clone(),
            default: self.default_cert.clone(),
            strict: opts.sni_strict,
        });
        match options::server_config(opts, resolver, self.shared) {
            Ok((cfg, warnings)) => {
                issues.extend(
                    warnings
                        .into_iter()
                        .map(|w| format!("TLS options `{name}`: {w}")),
                );
                Some(Arc::new(cfg))
            }
            Err(e) => {
                issues.push(format!("TLS options `{name}` disabled: {e}"));
                None
            }
        }
    }
}

/// Which options each host's handshakes use. Routers on the same host must agree on their options, else
/// the host gets `default` (as Traefik); options that do not exist mean `default` too.
fn host_options(
    usage: &TlsUsage,
    configs: &HashMap<String, Arc<ServerConfig>>,
    issues: &mut Vec<String>,
) -> HashMap<String, String> {
    let mut host_options: HashMap<String, String> = HashMap::new();
    let mut conflicted: Vec<String> = Vec::new();
    for (host, opts, router) in &usage.host_options {
        if !configs.contains_key(opts) {
            issues.push(format!(
                "router `{router}`: TLS options `{opts}` do not exist; `default` is used"
            ));
            continue;
        }
        match host_options.get(host) {
            Some(prev) if prev != opts => conflicted.push(host.clone()),
            _ => {
                host_options.insert(host.clone(), opts.clone());
            }
        }
    }
    for h in conflicted {
        issues.push(format!(
            "host `{h}`: routers use different TLS options; `default` is used"
        ));
        host_options.remove(&h);
    }
    host_options
}

fn load(cert: &str, key: &str, what: &str) -> Result<CertifiedKey, CertError> {
    let c = certs::pem_bytes(cert, &format!("{what}.certFile"))?;
    let k = certs::pem_bytes(key, &format!("{what}.keyFile"))?;
    certs::certified_key(&c, &k, what)
}

/// Certificate requests for an ACME resolver: explicit domains, else the rule's hosts as one set.
pub fn cert_requests(
    resolver: &str,
    domains: &[Domain],
    rule_domains: Vec<String>,
) -> Vec<CertRequest> {
    if !domains.is_empty() {
        return domains
            .iter()
            .filter(|d| !d.main.is_empty())
            .map(|d| CertRequest {
                resolver: resolver.to_string(),
                main: d.main.to_ascii_lowercase(),
                sans: d.sans.iter().map(|s| s.to_ascii_lowercase()).collect(),
            })
            .collect();
    }
    let mut names = rule_domains.into_iter();
    match names.next() {
        Some(main) => vec![CertRequest {
            resolver: resolver.to_string(),
            main,
            sans: names.collect(),
        }],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
