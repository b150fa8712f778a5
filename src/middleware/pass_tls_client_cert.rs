//! `passTLSClientCert`: hand the client's TLS certificate (mutual TLS, `tls.options.*.clientAuth`) to the
//! backend in `X-Forwarded-Tls-Client-Cert` (the certificates, base64 DER as in a PEM body) and
//! `X-Forwarded-Tls-Client-Cert-Info` (chosen fields, URL-escaped), in Traefik's format
//! (`pkg/middlewares/passtlsclientcert`).
//!
//! Both headers are removed from requests of untrusted peers before any middleware runs (the forwarded
//! header set), so a client cannot forge them; on a connection without a client certificate they are left
//! unset. Runs per request only on routers that use it; the certificates are parsed then.

use base64::Engine as _;
use http::HeaderValue;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{Oid, OID_DOMAIN_COMPONENT, OID_X509_SERIALNUMBER};
use x509_parser::x509::X509Name;

use super::opts::Opts;
use super::{Cx, Flow, MiddlewareError, Req};

const CERT_HEADER: &str = "x-forwarded-tls-client-cert";
const INFO_HEADER: &str = "x-forwarded-tls-client-cert-info";

/// Which distinguished-name parts go into `Subject="…"` or `Issuer="…"` (Traefik's order: DC, C, ST, L, O,
/// OU, SN, CN).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct DnParts {
    domain_component: bool,
    country: bool,
    province: bool,
    locality: bool,
    organization: bool,
    organizational_unit: bool,
    serial_number: bool,
    common_name: bool,
}

/// `info`: which certificate fields go into the info header.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct InfoParts {
    subject: Option<DnParts>,
    issuer: Option<DnParts>,
    serial_number: bool,
    not_before: bool,
    not_after: bool,
    sans: bool,
}

/// A compiled `passTLSClientCert` middleware.
#[derive(Debug)]
pub struct PassTlsClientCert {
    pem: bool,
    info: Option<InfoParts>,
}

fn dn_parts(o: &mut Opts<'_>, issuer: bool) -> Result<DnParts, MiddlewareError> {
    let mut flag = |name: &'static str| o.bool(name).map(|b| b.unwrap_or(false));
    Ok(DnParts {
        domain_component: flag("domainComponent")?,
        country: flag("country")?,
        province: flag("province")?,
        locality: flag("locality")?,
        organization: flag("organization")?,
        // The issuer has no `organizationalUnit` option in Traefik.
        organizational_unit: !issuer && flag("organizationalUnit")?,
        serial_number: flag("serialNumber")?,
        common_name: flag("commonName")?,
    })
}

impl PassTlsClientCert {
    /// Reads `pem` and `info` (`notAfter`, `notBefore`, `sans`, `serialNumber`, `subject.*`, `issuer.*`).
    pub fn build(mut o: Opts<'_>) -> Result<PassTlsClientCert, MiddlewareError> {
        let pem = o.bool("pem")?.unwrap_or(false);
        let info = match o.section("info")? {
            None => None,
            Some(mut i) => {
                let mut parts = InfoParts {
                    serial_number: i.bool("serialNumber")?.unwrap_or(false),
                    not_before: i.bool("notBefore")?.unwrap_or(false),
                    not_after: i.bool("notAfter")?.unwrap_or(false),
                    sans: i.bool("sans")?.unwrap_or(false),
                    ..Default::default()
                };
                if let Some(mut s) = i.section("subject")? {
                    parts.subject = Some(dn_parts(&mut s, false)?);
                    s.finish()?;
                }
                if let Some(mut s) = i.section("issuer")? {
                    parts.issuer = Some(dn_parts(&mut s, true)?);
                    s.finish()?;
                }
                i.finish()?;
                Some(parts)
            }
        };
        o.finish()?;
        Ok(PassTlsClientCert { pem, info })
    }

    /// Request step: sets the headers from the connection's client certificates, if it has any.
    pub fn on_request(&self, req: &mut Req, cx: &Cx<'_>) -> Flow {
        let Some(certs) = cx.conn.client_certs.as_deref().filter(|c| !c.is_empty()) else {
            return Flow::Next;
        };
        let ders: Vec<&[u8]> = certs.iter().map(|c| c.as_ref()).collect();
        if self.pem {
            if let Ok(v) = HeaderValue::from_str(&pem_value(&ders)) {
                req.headers_mut().insert(CERT_HEADER, v);
            }
        }
        if let Some(info) = &self.info {
            if let Ok(v) = HeaderValue::from_str(&query_escape(&info_value(info, &ders))) {
                req.headers_mut().insert(INFO_HEADER, v);
            }
        }
        Flow::Next
    }
}

/// The certificates as PEM bodies without the armour lines and line breaks, comma-separated.
fn pem_value(ders: &[&[u8]]) -> String {
    ders.iter()
        .map(|d| base64::engine::general_purpose::STANDARD.encode(d))
        .collect::<Vec<_>>()
        .join(",")
}

/// The info header's text before escaping: one `;`-separated field list per certificate, `,` between.
fn info_value(info: &InfoParts, ders: &[&[u8]]) -> String {
    ders.iter()
        .map(|d| match x509_parser::parse_x509_certificate(d) {
            Ok((_, x)) => cert_info(info, &x),
            Err(_) => String::new(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn cert_info(info: &InfoParts, x: &X509Certificate<'_>) -> String {
    let mut fields = Vec::new();
    if let Some(s) = info.subject.map(|p| dn(&p, x.subject())) {
        if !s.is_empty() {
            fields.push(format!("Subject=\"{s}\""));
        }
    }
    if let Some(s) = info.issuer.map(|p| dn(&p, x.issuer())) {
        if !s.is_empty() {
            fields.push(format!("Issuer=\"{s}\""));
        }
    }
    if info.serial_number {
        fields.push(format!("SerialNumber=\"{}\"", x.tbs_certificate.serial));
    }
    if info.not_before {
        fields.push(format!(
            "NB=\"{}\"",
            x.validity().not_before.timestamp().max(0)
        ));
    }
    if info.not_after {
        fields.push(format!(
            "NA=\"{}\"",
            x.validity().not_after.timestamp().max(0)
        ));
    }
    if info.sans {
        let sans = sans(x);
        if !sans.is_empty() {
            fields.push(format!("SAN=\"{}\"", sans.join(",")));
        }
    }
    fields.join(";")
}

/// Values of one attribute, in certificate order.
fn values(name: &X509Name<'_>, oid: &Oid<'_>) -> Vec<String> {
    name.iter_by_oid(oid)
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .filter(|v| !v.is_empty())
        .collect()
}

fn dn(p: &DnParts, name: &X509Name<'_>) -> String {
    use x509_parser::oid_registry::{
        OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_LOCALITY_NAME,
        OID_X509_ORGANIZATIONAL_UNIT, OID_X509_ORGANIZATION_NAME, OID_X509_STATE_OR_PROVINCE_NAME,
    };
    let mut parts = Vec::new();
    let mut all = |on: bool, oid: &Oid<'_>, key: &str| {
        if on {
            parts.extend(values(name, oid).into_iter().map(|v| format!("{key}={v}")));
        }
    };
    all(p.domain_component, &OID_DOMAIN_COMPONENT, "DC");
    all(p.country, &OID_X509_COUNTRY_NAME, "C");
    all(p.province, &OID_X509_STATE_OR_PROVINCE_NAME, "ST");
    all(p.locality, &OID_X509_LOCALITY_NAME, "L");
    all(p.organization, &OID_X509_ORGANIZATION_NAME, "O");
    all(p.organizational_unit, &OID_X509_ORGANIZATIONAL_UNIT, "OU");
    // Go keeps one serial number and one common name: the last one written.
    let mut last = |on: bool, oid: &Oid<'_>, key: &str| {
        if let Some(v) = values(name, oid).pop().filter(|_| on) {
            parts.push(format!("{key}={v}"));
        }
    };
    last(p.serial_number, &OID_X509_SERIALNUMBER, "SN");
    last(p.common_name, &OID_X509_COMMON_NAME, "CN");
    parts.join(",")
}

/// DNS names, e-mail addresses, IP addresses, then URIs, as Go groups them.
fn sans(x: &X509Certificate<'_>) -> Vec<String> {
    let names: Vec<&GeneralName<'_>> = match x.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for n in &names {
        if let GeneralName::DNSName(d) = n {
            out.push(d.to_string());
        }
    }
    for n in &names {
        if let GeneralName::RFC822Name(e) = n {
            out.push(e.to_string());
        }
    }
    for n in &names {
        if let GeneralName::IPAddress(ip) = n {
            match ip.len() {
                4 => out.extend(
                    <[u8; 4]>::try_from(*ip)
                        .ok()
                        .map(|b| std::net::Ipv4Addr::from(b).to_string()),
                ),
                16 => out.extend(
                    <[u8; 16]>::try_from(*ip)
                        .ok()
                        .map(|b| std::net::Ipv6Addr::from(b).to_string()),
                ),
                _ => {}
            }
        }
    }
    for n in &names {
        if let GeneralName::URI(u) = n {
            out.push(u.to_string());
        }
    }
    out
}

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`, everything else `%XX`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cert() -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(vec!["client.test".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "FR");
        dn.push(rcgen::DnType::OrganizationName, "Cheese");
        dn.push(rcgen::DnType::OrganizationalUnitName, "Cheese Section");
        dn.push(rcgen::DnType::CommonName, "client one");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn options_follow_traefik() {
        let m = PassTlsClientCert::build(
            Opts::new(
                "passTLSClientCert",
                &json!({"pem": "true", "info": {"notAfter": true, "sans": "true",
                    "subject": {"commonName": true, "organizationalUnit": true}, "issuer": {"country": true}}}),
            )
            .expect("o"),
        )
        .expect("b");
        assert!(m.pem);
        let info = m.info.expect("info");
        assert!(info.not_after && info.sans && !info.not_before);
        assert!(info
            .subject
            .is_some_and(|s| s.common_name && s.organizational_unit));
        assert!(info.issuer.is_some_and(|s| s.country && !s.common_name));
        for bad in [
            json!({"pem": "maybe"}),
            json!({"info": {"subject": {"commonNam": true}}}),
        ] {
            assert!(
                PassTlsClientCert::build(Opts::new("passTLSClientCert", &bad).expect("o")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn headers_are_written_in_traefiks_format() {
        let der = cert();
        let ders = [der.as_slice(), der.as_slice()];
        let pem = pem_value(&ders);
        let one = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(pem, format!("{one},{one}"));
        let info = InfoParts {
            subject: Some(DnParts {
                country: true,
                organization: true,
                organizational_unit: true,
                common_name: true,
                ..Default::default()
            }),
            issuer: Some(DnParts {
                common_name: true,
                ..Default::default()
            }),
            sans: true,
            ..Default::default()
        };
        let text = info_value(&info, &ders[..1]);
        assert_eq!(
            text,
            "Subject=\"C=FR,O=Cheese,OU=Cheese Section,CN=client one\";Issuer=\"CN=client one\";SAN=\"client.test,127.0.0.1\""
        );
        assert_eq!(
            query_escape("Subject=\"C=FR,CN=a b\""),
            "Subject%3D%22C%3DFR%2CCN%3Da+b%22"
        );
    }
}
