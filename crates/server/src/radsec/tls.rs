//! TLS for RADIUS/TLS: the server configuration (TLS 1.2 and 1.3, client
//! certificate required) and the mapping of client certificates to
//! `[[radsec.client]]` entries, which runs inside the handshake so that an
//! unmapped certificate is refused with a TLS alert.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::clients::ClientEntry;
use crate::config::{RadsecClient, RadsecSettings};
use crate::counters::{bump, Counters};
use crate::secret::SharedSecret;
pub use crate::tls_util::TlsFileError;
use crate::tls_util::{provider, TlsMaterial};

/// The shared secret of every RADIUS/TLS client (RFC 6614 §2.3).
pub const RADSEC_SECRET: &[u8] = b"radsec";

/// What a client certificate says about itself, as far as matching goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject, for logs (`CN=..., O=...`).
    pub subject: String,
    /// Common names of the subject.
    pub common_names: Vec<String>,
    /// DNS names of the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// SHA-256 of the DER certificate.
    pub sha256: [u8; 32],
}

impl CertIdentity {
    /// Parses a DER certificate.
    pub fn parse(der: &[u8]) -> Result<CertIdentity, String> {
        let sha256: [u8; 32] = Sha256::digest(der).into();
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("unparseable certificate: {e}"))?;
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_string)
            .collect();
        let dns_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(format!("bad subjectAltName: {e}")),
        };
        Ok(CertIdentity {
            subject: cert.subject().to_string(),
            common_names,
            dns_names,
            sha256,
        })
    }

    /// The fingerprint as lowercase hex, for logs and `cert_sha256`.
    pub fn sha256_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.sha256)
    }

    fn matches(&self, c: &RadsecClient) -> bool {
        let any = |names: &[String], want: &str| names.iter().any(|n| n.eq_ignore_ascii_case(want));
        c.cert_cn
            .as_deref()
            .is_none_or(|cn| any(&self.common_names, cn))
            && c.cert_san_dns
                .as_deref()
                .is_none_or(|dns| any(&self.dns_names, dns))
            && c.cert_sha256.is_none_or(|fp| fp == self.sha256)
    }
}

/// The configured RadSec clients, each with the [`ClientEntry`] the
/// pipeline runs its requests under.
#[derive(Debug)]
pub struct ClientMap {
    clients: Vec<(RadsecClient, Arc<ClientEntry>)>,
}

impl ClientMap {
    /// Builds the entries (shared secret "radsec") of `clients`.
    pub fn new(clients: &[RadsecClient]) -> ClientMap {
        ClientMap {
            clients: clients
                .iter()
                .map(|c| {
                    let entry = ClientEntry {
                        name: c.name.clone(),
                        secret: SharedSecret::new(RADSEC_SECRET.to_vec()),
                        policy: c.policy.clone(),
                        require_message_authenticator: c.require_message_authenticator,
                        cert_sha256: None,
                    };
                    (c.clone(), Arc::new(entry))
                })
                .collect(),
        }
    }

    /// The first client whose matchers all match `id`.
    pub fn find(&self, id: &CertIdentity) -> Option<Arc<ClientEntry>> {
        self.clients
            .iter()
            .find(|(c, _)| id.matches(c))
            .map(|(_, e)| e.clone())
    }
}

/// Verifies a client certificate against the CA, then requires that it maps
/// to a configured client. Counts and logs every refusal (subject and
/// fingerprint, nothing secret).
struct MappingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    map: Arc<ClientMap>,
    counters: Arc<Counters>,
}

impl fmt::Debug for MappingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappingVerifier").finish_non_exhaustive()
    }
}

impl ClientCertVerifier for MappingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let id = CertIdentity::parse(end_entity);
        let (subject, sha256) = match &id {
            Ok(id) => (id.subject.clone(), id.sha256_hex()),
            Err(e) => (e.clone(), String::new()),
        };
        if let Err(e) = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            bump(&self.counters.radsec_rejected_certs);
            warn!(%subject, %sha256, error = %e, "RadSec client certificate refused: not valid under radsec.ca");
            return Err(e);
        }
        match id.ok().and_then(|id| self.map.find(&id)) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => {
                bump(&self.counters.radsec_rejected_certs);
                warn!(%subject, %sha256, "RadSec client certificate refused: no [[radsec.client]] matches it");
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The server's TLS set-up for RADIUS/TLS.
#[derive(Clone)]
pub struct RadsecTls {
    config: Arc<ServerConfig>,
    map: Arc<ClientMap>,
}

impl fmt::Debug for RadsecTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RadsecTls").finish_non_exhaustive()
    }
}

impl RadsecTls {
    /// Reads the CA, certificate and key files of `settings` and builds the
    /// server configuration; refusals are counted in `counters`. Errors name
    /// the file and the reason.
    pub fn load(
        settings: &RadsecSettings,
        counters: Arc<Counters>,
    ) -> Result<RadsecTls, TlsFileError> {
        let TlsMaterial {
            chain,
            key: key_der,
            client_ca,
        } = TlsMaterial::load(&settings.cert, &settings.key, Some(&settings.ca))?;
        check_validity(chain.first()).map_err(|e| file_err(&settings.cert, e))?;
        let roots = client_ca
            .map(|ca| ca.roots)
            .ok_or_else(|| file_err(&settings.ca, "no CA certificate".into()))?;
        let provider = provider();
        let inner = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| file_err(&settings.ca, e.to_string()))?;
        let map = Arc::new(ClientMap::new(&settings.clients));
        let verifier = Arc::new(MappingVerifier {
            inner,
            map: map.clone(),
            counters,
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| file_err(&settings.cert, e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key_der)
            .map_err(|e| file_err(&settings.key, e.to_string()))?;
        // Every connection is verified against the current mapping: no
        // resumption of sessions authenticated earlier.
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(RadsecTls {
            config: Arc::new(config),
            map,
        })
    }

    /// The rustls server configuration.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// The client a verified peer certificate maps to, marked with the
    /// certificate's fingerprint (a challenge issued on this connection is
    /// answered only under the same certificate).
    pub fn client_for(&self, cert: &CertificateDer<'_>) -> Option<Arc<ClientEntry>> {
        let id = CertIdentity::parse(cert).ok()?;
        let entry = self.map.find(&id)?;
        Some(Arc::new(ClientEntry {
            name: entry.name.clone(),
            secret: entry.secret.clone(),
            policy: entry.policy.clone(),
            require_message_authenticator: entry.require_message_authenticator,
            cert_sha256: Some(id.sha256),
        }))
    }
}

fn file_err(path: &Path, reason: String) -> TlsFileError {
    TlsFileError::new(path, reason)
}

/// The server certificate must be valid now: an expired one would fail every
/// handshake with a reason only the clients see.
fn check_validity(leaf: Option<&CertificateDer<'_>>) -> Result<(), String> {
    let leaf = leaf.ok_or("no certificate found")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("unparseable certificate: {e}"))?;
    let v = cert.validity();
    if v.is_valid() {
        Ok(())
    } else {
        Err(format!(
            "the certificate is not valid now (valid from {} to {})",
            v.not_before, v.not_after
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tls_util::parse_certs;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };

    /// A test CA that signs leaf certificates.
    pub(crate) struct TestCa {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    impl TestCa {
        pub(crate) fn new(name: &str) -> TestCa {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).unwrap();
            TestCa { cert, key }
        }

        pub(crate) fn pem(&self) -> String {
            self.cert.pem()
        }

        /// (certificate PEM, key PEM) for CN `cn` and subjectAltNames `sans`.
        pub(crate) fn leaf(&self, cn: &str, sans: &[&str]) -> (String, String) {
            let key = KeyPair::generate().unwrap();
            let mut params =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
            (cert.pem(), key.serialize_pem())
        }
    }

    fn client(name: &str) -> RadsecClient {
        RadsecClient {
            name: name.into(),
            cert_cn: None,
            cert_san_dns: None,
            cert_sha256: None,
            policy: "default".into(),
            require_message_authenticator: true,
        }
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        parse_certs(pem).unwrap().remove(0)
    }

    #[test]
    fn identity_and_matching() {
        let ca = TestCa::new("test CA");
        let (cert, _) = ca.leaf(
            "Proxy.Example.com",
            &["proxy.example.com", "alt.example.com"],
        );
        let id = CertIdentity::parse(&der(&cert)).unwrap();
        assert_eq!(id.common_names, vec!["Proxy.Example.com"]);
        assert_eq!(id.dns_names, vec!["proxy.example.com", "alt.example.com"]);
        assert!(
            id.subject.contains("CN=Proxy.Example.com"),
            "{}",
            id.subject
        );

        let by_cn = RadsecClient {
            cert_cn: Some("proxy.example.com".into()),
            ..client("cn")
        };
        let by_dns = RadsecClient {
            cert_san_dns: Some("ALT.example.com".into()),
            ..client("dns")
        };
        let by_fp = RadsecClient {
            cert_sha256: Some(id.sha256),
            ..client("fp")
        };
        // Every matcher set must match.
        let both_wrong = RadsecClient {
            cert_cn: Some("proxy.example.com".into()),
            cert_san_dns: Some("other.example.com".into()),
            ..client("both")
        };
        let wildcard = RadsecClient {
            cert_san_dns: Some("*.example.com".into()),
            ..client("wild")
        };
        for (c, want) in [
            (&by_cn, true),
            (&by_dns, true),
            (&by_fp, true),
            (&both_wrong, false),
            (&wildcard, false),
        ] {
            assert_eq!(id.matches(c), want, "{}", c.name);
        }
        // First match in configuration order wins.
        let map = ClientMap::new(&[both_wrong.clone(), by_dns.clone(), by_cn.clone()]);
        let entry = map.find(&id).unwrap();
        assert_eq!(entry.name, "dns");
        assert_eq!(entry.secret.expose(), b"radsec");
        assert!(ClientMap::new(&[both_wrong]).find(&id).is_none());
        assert!(CertIdentity::parse(b"not a certificate").is_err());
    }

    fn settings(
        dir: &Path,
        ca: &str,
        cert: &(String, String),
        clients: Vec<RadsecClient>,
    ) -> RadsecSettings {
        std::fs::write(dir.join("ca.pem"), ca).unwrap();
        std::fs::write(dir.join("server.pem"), &cert.0).unwrap();
        std::fs::write(dir.join("server.key"), &cert.1).unwrap();
        RadsecSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            ca: dir.join("ca.pem"),
            idle_timeout: std::time::Duration::from_secs(60),
            max_connections: 4,
            clients,
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("test CA");
        let server = ca.leaf("server", &["localhost"]);
        let s = settings(dir.path(), &ca.pem(), &server, vec![client("c")]);
        let counters = Arc::new(Counters::default());
        assert!(RadsecTls::load(&s, counters.clone()).is_ok());

        std::fs::write(&s.key, "nothing").unwrap();
        let e = RadsecTls::load(&s, counters.clone()).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            (s.key.to_str().unwrap(), "no private key found")
        );

        // A key that is not the certificate's.
        std::fs::write(&s.key, ca.leaf("other", &[]).1).unwrap();
        let e = RadsecTls::load(&s, counters.clone()).unwrap_err();
        assert_eq!(e.path, s.key.display().to_string(), "{e}");

        std::fs::write(&s.key, &server.1).unwrap();
        std::fs::write(&s.ca, "junk").unwrap();
        let e = RadsecTls::load(&s, counters.clone()).unwrap_err();
        assert_eq!(e.path, s.ca.display().to_string(), "{e}");

        std::fs::remove_file(&s.cert).unwrap();
        let e = RadsecTls::load(&s, counters).unwrap_err();
        assert_eq!(e.path, s.cert.display().to_string(), "{e}");
    }
}
