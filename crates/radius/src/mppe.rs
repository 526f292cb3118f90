//! MS-MPPE-Send-Key / MS-MPPE-Recv-Key (RFC 2548 §2.4.2-2.4.3): the key,
//! prefixed with its length and padded to 16-byte blocks, is XORed with the
//! chain MD5(secret + Request Authenticator + salt), MD5(secret + c1), ...
//! A proxy decrypts them with its upstream's secret and re-encrypts them for
//! the NAS with the NAS's secret and Request Authenticator.

use md5::{Digest, Md5};

use crate::Error;

/// Microsoft's vendor id.
pub const VENDOR_MICROSOFT: u32 = 311;
/// MS-MPPE-Send-Key vendor type.
pub const MS_MPPE_SEND_KEY: u8 = 16;
/// MS-MPPE-Recv-Key vendor type.
pub const MS_MPPE_RECV_KEY: u8 = 17;

fn check_secret(secret: &[u8]) -> Result<(), Error> {
    if secret.is_empty() {
        Err(Error::EmptySecret)
    } else {
        Ok(())
    }
}

/// Encrypts `key` (at most 239 bytes) with a salt whose high bit is forced on.
pub fn mppe_encrypt(
    key: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
    salt: [u8; 2],
) -> Result<Vec<u8>, Error> {
    check_secret(secret)?;
    let len = u8::try_from(key.len())
        .ok()
        .filter(|l| *l <= 239)
        .ok_or(Error::BadPasswordLength)?;
    let salt = [salt[0] | 0x80, salt[1]];
    let mut plain = Vec::with_capacity(key.len() + 16);
    plain.push(len);
    plain.extend_from_slice(key);
    while plain.len() % 16 != 0 {
        plain.push(0);
    }
    let mut out = Vec::with_capacity(2 + plain.len());
    out.extend_from_slice(&salt);
    let mut prev: Vec<u8> = [request_authenticator.as_slice(), &salt].concat();
    for block in plain.chunks_exact(16) {
        let pad = Md5::new()
            .chain_update(secret)
            .chain_update(&prev)
            .finalize();
        let c: Vec<u8> = block.iter().zip(pad).map(|(p, k)| p ^ k).collect();
        out.extend_from_slice(&c);
        prev = c;
    }
    Ok(out)
}

/// Decrypts an encrypted key value (salt + blocks); the result is the key
/// without its length byte and padding. Malformed input is an error.
pub fn mppe_decrypt(
    value: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, Error> {
    check_secret(secret)?;
    let (salt, blocks) = value.split_at_checked(2).ok_or(Error::TooShort)?;
    if blocks.is_empty() || blocks.len() % 16 != 0 || salt.first().is_none_or(|s| s & 0x80 == 0) {
        return Err(Error::BadPasswordLength);
    }
    let mut plain = Vec::with_capacity(blocks.len());
    let mut prev: Vec<u8> = [request_authenticator.as_slice(), salt].concat();
    for block in blocks.chunks_exact(16) {
        let pad = Md5::new()
            .chain_update(secret)
            .chain_update(&prev)
            .finalize();
        plain.extend(block.iter().zip(pad).map(|(c, k)| c ^ k));
        prev = block.to_vec();
    }
    let (len, rest) = plain.split_first().ok_or(Error::TooShort)?;
    rest.get(..usize::from(*len))
        .map(<[u8]>::to_vec)
        .ok_or(Error::BadPasswordLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rekey() {
        let key: Vec<u8> = (0u8..32).collect();
        let auth_a = [1u8; 16];
        let auth_b = [2u8; 16];
        let up = mppe_encrypt(&key, b"upstream", &auth_a, [0x12, 0x34]).unwrap();
        assert_eq!(up.len(), 2 + 48);
        assert_eq!(up[0], 0x92, "salt high bit set");
        let clear = mppe_decrypt(&up, b"upstream", &auth_a).unwrap();
        assert_eq!(clear, key);
        let nas = mppe_encrypt(&clear, b"nas", &auth_b, [0, 1]).unwrap();
        assert_eq!(mppe_decrypt(&nas, b"nas", &auth_b).unwrap(), key);
        // Wrong secret: garbage length byte or wrong bytes, never the key.
        assert_ne!(mppe_decrypt(&nas, b"other", &auth_b).ok(), Some(key));
    }

    #[test]
    fn malformed_values_are_errors() {
        let a = [0u8; 16];
        assert!(mppe_decrypt(&[0x80], b"s", &a).is_err());
        assert!(mppe_decrypt(&[0x80, 0, 1, 2], b"s", &a).is_err());
        assert!(mppe_decrypt(
            &[0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            b"s",
            &a
        )
        .is_err());
        assert!(mppe_encrypt(&[0; 240], b"s", &a, [0, 0]).is_err());
        assert!(mppe_encrypt(&[1], b"", &a, [0, 0]).is_err());
        for n in 0..80 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37) as u8 | 0x80).collect();
            let _ = mppe_decrypt(&junk, b"s", &a);
        }
    }
}
