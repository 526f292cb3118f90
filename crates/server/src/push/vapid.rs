//! The cluster's VAPID key pair (RFC 8292): a P-256 key in a PKCS#8 PEM
//! file (mode 0600), created like the cluster key when missing (`radmfa
//! cluster init` writes one too); every node must hold the same file, since
//! a browser's subscription is bound to the public key it was made with.
//! Signs the JWT that identifies this server to a push service.

use std::path::Path;

use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::jwt_simple::prelude::Duration as JwtDuration;

use crate::error::ServerError;

/// How long a VAPID JWT is valid (RFC 8292 §2: at most 24 hours).
pub const JWT_VALIDITY_SECS: u64 = 12 * 3600;

/// The VAPID key pair. `Debug` shows the public key only.
pub struct VapidKey {
    key: ES256KeyPair,
    public_b64: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public_b64)
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// A new random key pair.
    pub fn generate() -> VapidKey {
        VapidKey::of(ES256KeyPair::generate())
    }

    fn of(key: ES256KeyPair) -> VapidKey {
        let public = key.public_key().public_key().to_bytes_uncompressed();
        VapidKey {
            public_b64: data_encoding::BASE64URL_NOPAD.encode(&public),
            key,
        }
    }

    /// The private key as PKCS#8 PEM (what the key file holds).
    pub fn to_pem(&self) -> Result<String, String> {
        self.key.to_pem().map_err(|e| e.to_string())
    }

    /// The public key, uncompressed point in base64url: the
    /// `applicationServerKey` browsers subscribe with, and the `k` of the
    /// Authorization header.
    pub fn public_b64(&self) -> &str {
        &self.public_b64
    }

    /// `Authorization: vapid t=<JWT>, k=<public key>` for a push resource of
    /// origin `audience` (scheme, host and port, RFC 8292 §2), valid
    /// [`JWT_VALIDITY_SECS`], with `subject` as the contact.
    pub fn authorization(&self, audience: &str, subject: &str) -> Result<String, String> {
        let claims = Claims::create(JwtDuration::from_secs(JWT_VALIDITY_SECS))
            .with_audience(audience)
            .with_subject(subject);
        let t = self.key.sign(claims).map_err(|e| e.to_string())?;
        Ok(format!("vapid t={t}, k={}", self.public_b64))
    }

    /// Reads the key file, creating a new key (mode 0600) when it does not
    /// exist. `created` says whether it did.
    pub fn load_or_create(path: &Path) -> Result<(VapidKey, bool), ServerError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |reason: String| ServerError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let key = ES256KeyPair::from_pem(pem.trim()).map_err(|e| {
                    err(format!(
                        "not a P-256 private key in PEM (PKCS#8): {e}; remove it to have a new one made, \
                         or copy the cluster's vapid.key from another node"
                    ))
                })?;
                let raw = zeroize::Zeroizing::new(key.to_bytes());
                radmfa_store::check_key_file(path, &raw).map_err(err)?;
                Ok((VapidKey::of(key), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = VapidKey::generate();
                let pem = zeroize::Zeroizing::new(key.to_pem().map_err(err)?);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| err(format!("cannot create: {e}")))?;
                f.write_all(pem.as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| err(format!("cannot write: {e}")))?;
                Ok((key, true))
            }
            Err(e) => Err(err(format!("cannot read: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.key");
        let (a, created) = VapidKey::load_or_create(&path).unwrap();
        assert!(created);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, created) = VapidKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.public_b64(), b.public_b64());
        // 65-byte uncompressed point.
        let raw = data_encoding::BASE64URL_NOPAD
            .decode(a.public_b64().as_bytes())
            .unwrap();
        assert_eq!((raw.len(), raw[0]), (65, 4));
        std::fs::write(&path, "not a key").unwrap();
        assert!(VapidKey::load_or_create(&path).is_err());
    }
}
