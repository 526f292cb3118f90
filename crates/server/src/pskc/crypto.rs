//! PSKC encryption (RFC 6030 section 6): the key a container's values are
//! encrypted with (a pre-shared key, or one derived from a password with
//! PBKDF2), the MAC over each encrypted value, and the decryption itself.
//! Only RustCrypto primitives; no I/O. Separate from the XML walk so the
//! cryptographic rules can be read (and tested) on their own.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::PskcError;

/// What the importer was given to open an encrypted container.
#[derive(Clone, Default)]
pub enum PskcKey {
    /// Nothing: only plaintext containers import.
    #[default]
    None,
    /// The pre-shared key (RFC 6030 §6.1), 16, 24 or 32 bytes.
    PreShared(Zeroizing<Vec<u8>>),
    /// The password of a PBKDF2-derived key (RFC 6030 §6.2).
    Password(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for PskcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PskcKey::None => "None",
            PskcKey::PreShared(_) => "PreShared(***)",
            PskcKey::Password(_) => "Password(***)",
        })
    }
}

/// Value encryption algorithms (XML Encryption URIs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// `xmlenc#aes128-cbc`, `aes192-cbc`, `aes256-cbc`: IV then ciphertext,
    /// PKCS#7 padding; needs a MAC.
    AesCbc(usize),
    /// `xmlenc#kw-aes128`, `kw-aes192`, `kw-aes256` (RFC 3394): carries
    /// its own integrity check.
    AesKw(usize),
}

impl Cipher {
    /// The algorithm of an `EncryptionMethod` URI.
    pub fn from_uri(uri: &str) -> Result<Cipher, PskcError> {
        let frag = uri.rsplit('#').next().unwrap_or(uri);
        Ok(match frag {
            "aes128-cbc" => Cipher::AesCbc(16),
            "aes192-cbc" => Cipher::AesCbc(24),
            "aes256-cbc" => Cipher::AesCbc(32),
            "kw-aes128" => Cipher::AesKw(16),
            "kw-aes192" => Cipher::AesKw(24),
            "kw-aes256" => Cipher::AesKw(32),
            _ => {
                return Err(PskcError::Unsupported(format!(
                    "encryption algorithm {uri} (supported: aes128/192/256-cbc, kw-aes128/192/256)"
                )))
            }
        })
    }

    /// Decrypts `data` (for CBC: IV followed by the ciphertext) with `key`.
    pub fn decrypt(self, key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, PskcError> {
        let (Cipher::AesCbc(n) | Cipher::AesKw(n)) = self;
        if key.len() != n {
            return Err(PskcError::Decrypt(format!(
                "the key is {} bytes, the algorithm needs {n}",
                key.len()
            )));
        }
        let bad = || PskcError::Decrypt("wrong key or damaged value".into());
        match self {
            Cipher::AesCbc(_) => {
                if data.len() < 32 || data.len() % 16 != 0 {
                    return Err(bad());
                }
                let (iv, ct) = data.split_at(16);
                let out = match n {
                    16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
                        .map_err(|_| bad())?
                        .decrypt_padded_vec_mut::<Pkcs7>(ct),
                    24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
                        .map_err(|_| bad())?
                        .decrypt_padded_vec_mut::<Pkcs7>(ct),
                    _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
                        .map_err(|_| bad())?
                        .decrypt_padded_vec_mut::<Pkcs7>(ct),
                };
                out.map(Zeroizing::new).map_err(|_| bad())
            }
            Cipher::AesKw(_) => {
                if data.len() < 24 || data.len() % 8 != 0 {
                    return Err(bad());
                }
                let mut out = Zeroizing::new(vec![0u8; data.len() - 8]);
                let r = match n {
                    16 => aes_kw::KekAes128::try_from(key)
                        .map_err(|_| bad())?
                        .unwrap(data, &mut out),
                    24 => aes_kw::KekAes192::try_from(key)
                        .map_err(|_| bad())?
                        .unwrap(data, &mut out),
                    _ => aes_kw::KekAes256::try_from(key)
                        .map_err(|_| bad())?
                        .unwrap(data, &mut out),
                };
                r.map_err(|_| bad())?;
                Ok(out)
            }
        }
    }
}

/// MAC algorithms (`MACMethod`, XML Signature URIs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAlg {
    /// `xmldsig#hmac-sha1`.
    Sha1,
    /// `xmldsig-more#hmac-sha256`.
    Sha256,
}

impl MacAlg {
    /// The algorithm of a `MACMethod` URI.
    pub fn from_uri(uri: &str) -> Result<MacAlg, PskcError> {
        match uri.rsplit('#').next().unwrap_or(uri) {
            "hmac-sha1" => Ok(MacAlg::Sha1),
            "hmac-sha256" => Ok(MacAlg::Sha256),
            _ => Err(PskcError::Unsupported(format!(
                "MAC algorithm {uri} (supported: hmac-sha1, hmac-sha256)"
            ))),
        }
    }

    /// Checks `mac` over `data` under `key` in constant time.
    pub fn verify(self, key: &[u8], data: &[u8], mac: &[u8]) -> Result<(), PskcError> {
        let want = match self {
            MacAlg::Sha1 => hmac_of::<Hmac<sha1::Sha1>>(key, data),
            MacAlg::Sha256 => hmac_of::<Hmac<sha2::Sha256>>(key, data),
        };
        if want.len() == mac.len() && bool::from(want.ct_eq(mac)) {
            Ok(())
        } else {
            Err(PskcError::Mac)
        }
    }
}

fn hmac_of<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// PBKDF2 parameters of a `DerivedKey` (RFC 6030 §6.2, PKCS #5).
#[derive(Clone, Debug)]
pub struct Pbkdf2Params {
    /// The salt.
    pub salt: Vec<u8>,
    /// Iterations.
    pub iterations: u32,
    /// Key length in bytes.
    pub key_len: usize,
    /// The PRF: HMAC-SHA-1 unless the document names HMAC-SHA-256.
    pub prf: MacAlg,
}

/// Most PBKDF2 iterations accepted: a file cannot make the importer spin.
const MAX_ITERATIONS: u32 = 10_000_000;

impl Pbkdf2Params {
    /// The key derived from `password`.
    pub fn derive(&self, password: &[u8]) -> Result<Zeroizing<Vec<u8>>, PskcError> {
        if !(1..=MAX_ITERATIONS).contains(&self.iterations) {
            return Err(PskcError::Invalid(format!(
                "PBKDF2 IterationCount {} is not between 1 and {MAX_ITERATIONS}",
                self.iterations
            )));
        }
        if !matches!(self.key_len, 16 | 24 | 32) {
            return Err(PskcError::Invalid(format!(
                "PBKDF2 KeyLength {} is not 16, 24 or 32",
                self.key_len
            )));
        }
        let mut out = Zeroizing::new(vec![0u8; self.key_len]);
        match self.prf {
            MacAlg::Sha1 => {
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, &self.salt, self.iterations, &mut out)
            }
            MacAlg::Sha256 => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &self.salt, self.iterations, &mut out)
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6030 figure 7: password "qwerty", salt Ej7/PEpyEpw=, 1000
    /// iterations, 16 bytes: the key the RFC states.
    #[test]
    fn pbkdf2_gives_the_rfc_6030_figure_7_key() {
        use base64::Engine;
        let p = Pbkdf2Params {
            salt: base64::engine::general_purpose::STANDARD
                .decode("Ej7/PEpyEpw=")
                .unwrap(),
            iterations: 1000,
            key_len: 16,
            prf: MacAlg::Sha1,
        };
        let key = p.derive(b"qwerty").unwrap();
        assert_eq!(
            data_encoding::HEXLOWER.encode(&key),
            "651e63cd57008476af1ff6422cd02e41"
        );
    }
}
