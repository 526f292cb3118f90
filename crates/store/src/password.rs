//! argon2id password hashing for the `local` first factor.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::StoreError;

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
    fn default() -> PasswordParams {
        PasswordParams {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes `password` with argon2id (v1.3) and a random 16-byte salt; returns the
/// PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
pub fn hash_password(password: &[u8], params: &PasswordParams) -> Result<String, StoreError> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| StoreError::Invalid(format!("argon2 parameters: {e}")))?;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::Invalid(format!("argon2 salt: {e}")))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("argon2 hashing failed: {e}")))
}

/// Checks `password` against a PHC string made by [`hash_password`] (the cost
/// parameters are read from the string; the comparison is constant time).
/// A malformed hash yields `false`.
pub fn verify_password(phc: &str, password: &[u8]) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default().verify_password(password, &hash).is_ok(),
        Err(_) => false,
    }
}

/// True when `phc` is not an argon2id v1.3 hash with exactly `params` (or
/// does not parse): verifying it costs something else than a verification
/// under the configured parameters, so it should be replaced by a hash
/// made with them at the next successful sign-in.
pub fn needs_rehash(phc: &str, params: &PasswordParams) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    let Ok(stored) = Params::try_from(&hash) else {
        return true;
    };
    hash.algorithm != Algorithm::Argon2id.ident()
        || hash.version != Some(Version::V0x13.into())
        || stored.m_cost() != params.memory_kib
        || stored.t_cost() != params.iterations
        || stored.p_cost() != params.parallelism
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordParams {
        PasswordParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn hash_and_verify() {
        let phc = hash_password(b"correct horse", &cheap()).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify_password(&phc, b"correct horse"));
        assert!(!verify_password(&phc, b"correct horsE"));
        assert!(!verify_password(&phc, b""));
        // Random salt: two hashes of the same password differ.
        assert_ne!(phc, hash_password(b"correct horse", &cheap()).unwrap());
    }

    #[test]
    fn default_params_are_owasp() {
        let p = PasswordParams::default();
        assert_eq!((p.memory_kib, p.iterations, p.parallelism), (19456, 2, 1));
        let phc = hash_password(b"pw", &p).unwrap();
        assert!(phc.contains("m=19456,t=2,p=1"), "{phc}");
        assert!(verify_password(&phc, b"pw"));
    }

    #[test]
    fn needs_rehash_compares_the_stored_parameters() {
        let phc = hash_password(b"pw", &cheap()).unwrap();
        assert!(!needs_rehash(&phc, &cheap()));
        let more = PasswordParams {
            memory_kib: 128,
            ..cheap()
        };
        assert!(needs_rehash(&phc, &more));
        let passes = PasswordParams {
            iterations: 2,
            ..cheap()
        };
        assert!(needs_rehash(&phc, &passes));
        // Written by hand, as another implementation would store it.
        assert!(!needs_rehash(
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            &cheap()
        ));
        assert!(needs_rehash(
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            &cheap()
        ));
        assert!(needs_rehash("not a hash", &cheap()));
    }

    #[test]
    fn malformed_hash_is_false() {
        assert!(!verify_password("", b"pw"));
        assert!(!verify_password("not a hash", b"pw"));
        assert!(!verify_password("$argon2id$v=19$m=64,t=1,p=1$", b"pw"));
        let phc = hash_password(b"pw", &cheap()).unwrap();
        assert!(!verify_password(&phc[..phc.len() - 4], b"pw"));
    }

    #[test]
    fn bad_params_are_invalid() {
        let bad = PasswordParams {
            memory_kib: 1,
            iterations: 0,
            parallelism: 0,
        };
        assert!(matches!(
            hash_password(b"pw", &bad),
            Err(StoreError::Invalid(_))
        ));
    }
}
