//! The cluster CA and node certificates (`radmfa cluster ca`, `radmfa
//! cluster cert`).

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroize;

use super::tls::{node_server_name, parse_certs, verify_chain};
use super::PeerError;

/// Common name of the cluster CA.
const CA_NAME: &str = "radmfa cluster CA";
/// Validity of the CA.
const CA_DAYS: i64 = 3650;
/// Validity of a node certificate.
const NODE_DAYS: i64 = 1826;
/// Back-dating of `notBefore`, for clocks of the cluster that lag a little.
const BACKDATE: Duration = Duration::hours(1);

/// A PEM pair: a certificate and its private key.
///
/// `Debug` does not print the key; the key is zeroized on drop.
#[derive(Clone)]
pub struct Pem {
    /// The certificate, PEM.
    pub cert: String,
    /// The PKCS#8 private key, PEM.
    pub key: String,
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pem")
            .field("cert", &self.cert)
            .field("key", &"***")
            .finish()
    }
}

impl Drop for Pem {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

fn gen_err(e: rcgen::Error) -> PeerError {
    PeerError::Tls(format!("certificate generation: {e}"))
}

/// A random positive 128-bit serial number.
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7F;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// The parameters of the CA, minus validity and serial. Rebuilt when
/// signing, as rcgen (without its x509 parser) cannot read them back from
/// the PEM; [`generate_node_cert`] checks the result chains to the real CA.
fn ca_params() -> Result<CertificateParams, PeerError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Generates the cluster CA: ECDSA P-256, CN "radmfa cluster CA", valid 10
/// years, may sign end-entity certificates only.
pub fn generate_ca() -> Result<Pem, PeerError> {
    let key = KeyPair::generate().map_err(gen_err)?;
    let now = OffsetDateTime::now_utc();
    let mut params = ca_params()?;
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(CA_DAYS);
    params.serial_number = Some(serial());
    let cert = params.self_signed(&key).map_err(gen_err)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Generates the certificate of node `node_id`, signed by the cluster CA:
/// ECDSA P-256, DNS name [`node_server_name`], usable for TLS server and
/// client authentication, valid 5 years.
pub fn generate_node_cert(ca: &Pem, node_id: u16) -> Result<Pem, PeerError> {
    let ca_key =
        KeyPair::from_pem(&ca.key).map_err(|e| PeerError::Tls(format!("CA private key: {e}")))?;
    let ca_cert = ca_params()?.self_signed(&ca_key).map_err(gen_err)?;

    let key = KeyPair::generate().map_err(gen_err)?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(vec![node_server_name(node_id)]).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("radmfa node {node_id}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(NODE_DAYS);
    params.serial_number = Some(serial());
    let cert = params.signed_by(&key, &ca_cert, &ca_key).map_err(gen_err)?;

    // The CA certificate given must be the one of this key and name.
    let roots =
        parse_certs(&ca.cert).map_err(|e| PeerError::Tls(format!("CA certificate: {e}")))?;
    verify_chain(&roots, cert.der()).map_err(|e| {
        PeerError::Tls(format!(
            "the new certificate does not chain to the CA certificate (is the CA key the one of \
             this certificate?): {e}"
        ))
    })?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let ca = generate_ca().unwrap();
        let shown = format!("{ca:?}");
        assert!(shown.contains("***"));
        assert!(!shown.contains("PRIVATE KEY"));
        assert!(ca.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca.key.contains("PRIVATE KEY"));
    }

    #[test]
    fn node_cert_chains_and_names_the_node() {
        let ca = generate_ca().unwrap();
        let node = generate_node_cert(&ca, 7).unwrap();
        let roots = parse_certs(&ca.cert).unwrap();
        let chain = parse_certs(&node.cert).unwrap();
        let leaf = chain.first().unwrap();
        verify_chain(&roots, leaf).unwrap();
        let parsed = rustls::server::ParsedCertificate::try_from(leaf).unwrap();
        let name = |n: u16| rustls::pki_types::ServerName::try_from(node_server_name(n)).unwrap();
        assert!(rustls::client::verify_server_name(&parsed, &name(7)).is_ok());
        assert!(rustls::client::verify_server_name(&parsed, &name(8)).is_err());
    }

    #[test]
    fn signing_with_a_foreign_ca_key_is_refused() {
        let ca = generate_ca().unwrap();
        let other = generate_ca().unwrap();
        let mixed = Pem {
            cert: ca.cert.clone(),
            key: other.key.clone(),
        };
        assert!(matches!(
            generate_node_cert(&mixed, 1),
            Err(PeerError::Tls(_))
        ));
        let garbage = Pem {
            cert: ca.cert.clone(),
            key: "not a key".into(),
        };
        assert!(generate_node_cert(&garbage, 1).is_err());
    }
}
