//! Pebble fixture: a real ACME CA validating for real (no `PEBBLE_VA_ALWAYS_VALID`).
//!
//! `pebble-challtestsrv` is only the DNS server (every name → 127.0.0.1, its own challenge listeners off);
//! `pebble` resolves through it and validates HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port` — the
//! ports of the swarmgate entrypoints under test. Pebble's API runs on a certificate signed by a CA generated
//! here ([`Pebble::api_ca_file`], to trust through `caCertificates` or `LEGO_CA_CERTIFICATES`). The root that
//! signs issued certificates is fetched from the management API ([`Pebble::issuing_root`]). Ports are free
//! loopback ports; both processes are killed on drop.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port, reserved for this test run (see `support::free_port`).
pub fn free_port() -> u16 {
    crate::support::free_port()
}

/// Options of a Pebble run.
#[derive(Clone, Debug, Default)]
pub struct PebbleOptions {
    /// Port Pebble's VA uses for HTTP-01.
    pub http_port: u16,
    /// Port Pebble's VA uses for TLS-ALPN-01.
    pub tls_port: u16,
    /// Validity of issued certificates, seconds (Pebble's default, 5 years, when None).
    pub validity_secs: Option<u64>,
}

/// Running Pebble + challtestsrv.
pub struct Pebble {
    pebble: Option<Child>,
    challtestsrv: Option<Child>,
    /// `https://127.0.0.1:<port>/dir`.
    pub directory: String,
    /// The ACME API address.
    pub api: SocketAddr,
    /// The management API address.
    pub management: SocketAddr,
    /// PEM file of the CA that signed the API certificate.
    pub api_ca_file: PathBuf,
    /// The API CA, PEM.
    pub api_ca_pem: String,
    dir: tempfile::TempDir,
    options: PebbleOptions,
    dns: SocketAddr,
}

fn wait_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

impl Pebble {
    /// Starts both processes and waits until the ACME API accepts connections.
    pub fn start(options: PebbleOptions) -> Pebble {
        Pebble::start_with_dns(options, None)
    }

    /// [`Pebble::start`], resolving (and validating DNS-01) through `dns` instead of challtestsrv when given.
    pub fn start_with_dns(options: PebbleOptions, dns: Option<SocketAddr>) -> Pebble {
        let dir = tempfile::tempdir().expect("tmp");
        // CA → leaf for the API (webpki refuses a self-signed end-entity certificate).
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "swarmgate test Pebble API CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf");
        let cert_file = dir.path().join("api.pem");
        let key_file = dir.path().join("api.key");
        let api_ca_file = dir.path().join("api-ca.pem");
        std::fs::write(&cert_file, leaf.pem()).expect("write");
        std::fs::write(&key_file, leaf_key.serialize_pem()).expect("write");
        std::fs::write(&api_ca_file, ca.pem()).expect("write");
        let mut p = Pebble {
            pebble: None,
            challtestsrv: None,
            directory: String::new(),
            api: SocketAddr::from(([127, 0, 0, 1], free_port())),
            management: SocketAddr::from(([127, 0, 0, 1], free_port())),
            api_ca_file,
            api_ca_pem: ca.pem(),
            dns: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir,
            options,
        };
        p.directory = format!("https://{}/dir", p.api);
        match dns {
            Some(d) => p.dns = d,
            None => p.start_challtestsrv(),
        }
        p.start_pebble();
        p
    }

    fn start_challtestsrv(&mut self) {
        let mgmt = free_port();
        let child = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &self.dns.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{mgmt}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pebble-challtestsrv (apt-get install pebble)");
        self.challtestsrv = Some(child);
        assert!(
            wait_port(
                SocketAddr::from(([127, 0, 0, 1], mgmt)),
                Duration::from_secs(10)
            ),
            "challtestsrv did not start"
        );
    }

    fn start_pebble(&mut self) {
        let mut cfg = serde_json::json!({
            "pebble": {
                "listenAddress": self.api.to_string(),
                "managementListenAddress": self.management.to_string(),
                "certificate": self.dir.path().join("api.pem"),
                "privateKey": self.dir.path().join("api.key"),
                "httpPort": self.options.http_port,
                "tlsPort": self.options.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(v) = self.options.validity_secs {
            cfg["pebble"]["certificateValidityPeriod"] = v.into();
        }
        let cfg_file = self.dir.path().join("pebble.json");
        std::fs::write(&cfg_file, cfg.to_string()).expect("write config");
        let log = std::fs::File::create(self.dir.path().join("pebble.log")).expect("log");
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&cfg_file)
            .args(["-dnsserver", &self.dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", "0")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn pebble (apt-get install pebble)");
        self.pebble = Some(child);
        assert!(
            wait_port(self.api, Duration::from_secs(15)),
            "pebble did not start:\n{}",
            self.log()
        );
        assert!(
            wait_port(self.management, Duration::from_secs(15)),
            "pebble management did not start"
        );
    }

    /// Pebble's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// Stops Pebble (the CA goes away; challtestsrv stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.pebble.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The root that signs issued certificates (PEM), from the management API.
    pub async fn issuing_root(&self) -> String {
        self.management_get("/roots/0").await
    }

    async fn management_get(&self, path: &str) -> String {
        use http_body_util::BodyExt;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(self.api_ca_pem.as_bytes()) {
            roots.add(c.expect("pem")).expect("root");
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let uri = format!("https://{}{path}", self.management);
        let rsp = tokio::time::timeout(
            Duration::from_secs(10),
            client.get(uri.parse().expect("uri")),
        )
        .await
        .expect("management timed out")
        .expect("management request");
        let body = rsp.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }
}

use rustls::pki_types::pem::PemObject;

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in [self.pebble.take(), self.challtestsrv.take()]
            .into_iter()
            .flatten()
        {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
