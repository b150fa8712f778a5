//! When to renew: pure functions of a certificate's own validity, the CA's ARI window and `now`.
//!
//! A certificate is renewed when one third of its validity remains (a 90-day certificate at day 60, a 6-day
//! one at day 4), so shorter Let's Encrypt lifetimes need no setting. When the CA publishes ARI (RFC 9773
//! `renewalInfo`), renewal happens at a random point of its suggested window if that comes earlier (the CA
//! may pull the window forward, e.g. before a mass revocation). Failed attempts are retried with the shared
//! jittered backoff ([`crate::backoff`]); `certificatesDuration` keeps Traefik's meaning of an upper bound on
//! how long the manager sleeps between two checks.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// What the manager needs to know about a stored certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// DNS names in the subjectAltName extension (lowercase).
    pub names: Vec<String>,
    /// ARI certificate id (`base64url(AKI).base64url(serial)`), when the certificate has an AKI.
    pub ari_id: Option<String>,
}

/// Why a stored certificate could not be understood (it is then renewed, as Traefik does).
#[derive(Debug, thiserror::Error)]
pub enum CertInfoError {
    /// No certificate in the PEM.
    #[error("no certificate in the PEM data")]
    NoCertificate,
    /// The leaf could not be parsed.
    #[error("invalid certificate: {0}")]
    Parse(String),
}

fn to_system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Reads the leaf of a PEM chain.
pub fn cert_info(chain_pem: &[u8]) -> Result<CertInfo, CertInfoError> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem)
        .next()
        .ok_or(CertInfoError::NoCertificate)?
        .map_err(|e| CertInfoError::Parse(e.to_string()))?;
    let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| CertInfoError::Parse(e.to_string()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    let ari_id = instant_acme::CertificateIdentifier::try_from(&leaf)
        .ok()
        .map(|id| id.to_string());
    Ok(CertInfo {
        not_before: to_system_time(x.validity().not_before.timestamp()),
        not_after: to_system_time(x.validity().not_after.timestamp()),
        names,
        ari_id,
    })
}

/// When one third of the validity remains.
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_after - lifetime / 3
}

/// A point in the ARI window `[start, end]` chosen by `unit` in `[0, 1]` (RFC 9773 §4.2: uniformly random).
pub fn ari_point(start: SystemTime, end: SystemTime, unit: f64) -> SystemTime {
    let width = end.duration_since(start).unwrap_or(Duration::ZERO);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    start + width.mul_f64(unit)
}

/// The renewal time: the one-third rule, or the ARI point when that is earlier.
pub fn renewal_time(info: &CertInfo, ari: Option<SystemTime>) -> SystemTime {
    let third = renew_at(info.not_before, info.not_after);
    match ari {
        Some(a) if a < third => a,
        _ => third,
    }
}

/// Traefik's renew-check interval for a `certificatesDuration` in hours (`getCertificateRenewDurations`): the
/// longest the manager sleeps without re-checking.
pub fn check_interval(certificates_duration_hours: u64) -> Duration {
    let h = certificates_duration_hours;
    match h {
        _ if h >= 365 * 24 => Duration::from_secs(7 * 24 * 3600),
        _ if h >= 90 * 24 => Duration::from_secs(24 * 3600),
        _ if h >= 30 * 24 => Duration::from_secs(12 * 3600),
        _ if h >= 6 * 24 => Duration::from_secs(2 * 3600),
        _ if h >= 24 => Duration::from_secs(600),
        _ => Duration::from_secs(60),
    }
}

/// RFC 3339 (UTC, seconds) for logs, without a date library.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn one_third_of_the_lifetime_remains() {
        let day = 86_400;
        assert_eq!(renew_at(t(0), t(90 * day)), t(60 * day));
        assert_eq!(renew_at(t(0), t(45 * day)), t(30 * day));
        assert_eq!(renew_at(t(100), t(160)), t(140));
        assert_eq!(renew_at(t(10), t(5)), t(5), "broken validity: renew now");
    }

    #[test]
    fn ari_window_wins_only_when_earlier() {
        let info = CertInfo {
            not_before: t(0),
            not_after: t(90),
            names: vec![],
            ari_id: None,
        };
        assert_eq!(renewal_time(&info, None), t(60));
        assert_eq!(
            renewal_time(&info, Some(ari_point(t(10), t(20), 0.5))),
            t(15)
        );
        assert_eq!(renewal_time(&info, Some(t(70))), t(60));
        assert_eq!(ari_point(t(10), t(20), f64::NAN), t(10));
        assert_eq!(ari_point(t(20), t(10), 1.0), t(20));
    }

    #[test]
    fn traefik_check_intervals() {
        assert_eq!(check_interval(2160), Duration::from_secs(86_400));
        assert_eq!(check_interval(24), Duration::from_secs(600));
        assert_eq!(check_interval(1), Duration::from_secs(60));
    }

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(t(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(t(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(t(1_795_000_000)), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn reads_validity_and_names() {
        let mut p =
            rcgen::CertificateParams::new(vec!["A.example".to_string(), "b.example".to_string()])
                .expect("params");
        p.not_before = rcgen::date_time_ymd(2030, 1, 1);
        p.not_after = rcgen::date_time_ymd(2030, 4, 1);
        let k = rcgen::KeyPair::generate().expect("key");
        let c = p.self_signed(&k).expect("cert");
        let info = cert_info(c.pem().as_bytes()).expect("info");
        assert_eq!(rfc3339(info.not_before), "2030-01-01T00:00:00Z");
        assert_eq!(rfc3339(info.not_after), "2030-04-01T00:00:00Z");
        assert_eq!(info.names, ["a.example", "b.example"]);
        assert!(cert_info(b"junk").is_err());
    }
}
