//! State tokens (DESIGN.md §5): which node owns a challenge session, authenticated
//! under the cluster key.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{OtpError, StateError};

/// Current State format version.
pub const STATE_VERSION: u8 = 1;
/// Length of a version-1 State token.
pub const STATE_LEN: usize = 35;
/// Bytes covered by the MAC: version, node id, session id.
const BODY_LEN: usize = 19;
/// Truncated MAC length.
const MAC_LEN: usize = 16;
/// Shortest accepted cluster key.
pub const MIN_STATE_KEY_LEN: usize = 16;

/// The cluster key that seals State tokens. `Debug` prints `***`; the bytes
/// are zeroized on drop.
#[derive(Clone)]
pub struct StateKey(Zeroizing<Vec<u8>>);

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateKey(***)")
    }
}

/// What an authentic State token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateToken {
    /// The node that holds the session.
    pub node_id: u16,
    /// The session id on that node.
    pub session_id: [u8; 16],
}

impl StateKey {
    /// A key from configured bytes; at least 16 bytes.
    pub fn new(key: &[u8]) -> Result<StateKey, OtpError> {
        if key.len() < MIN_STATE_KEY_LEN {
            return Err(OtpError::InvalidParameter(
                "state key must be at least 16 bytes",
            ));
        }
        Ok(StateKey(Zeroizing::new(key.to_vec())))
    }

    /// A new random 32-byte key from the OS CSPRNG.
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    pub fn generate() -> StateKey {
        let mut k = Zeroizing::new(vec![0u8; 32]);
        crate::rng::fill(&mut k);
        StateKey(k)
    }

    /// The raw key bytes (to store or distribute to peers).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        m.update(body);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// `version (1) | node_id (u16 BE) | session_id (16) | MAC (16)`, the MAC
    /// being the first 16 bytes of HMAC-SHA-256 over the first 19 bytes.
    pub fn seal(&self, node_id: u16, session_id: &[u8; 16]) -> [u8; STATE_LEN] {
        let mut out = [0u8; STATE_LEN];
        let (body, tag) = out.split_at_mut(BODY_LEN);
        body[0] = STATE_VERSION;
        body[1..3].copy_from_slice(&node_id.to_be_bytes());
        body[3..].copy_from_slice(session_id);
        tag.copy_from_slice(&self.mac(body));
        out
    }

    /// Checks a State received from the wire: version, length, then the MAC in
    /// constant time.
    pub fn open(&self, state: &[u8]) -> Result<StateToken, StateError> {
        let (&version, _) = state.split_first().ok_or(StateError::BadLength)?;
        if version != STATE_VERSION {
            return Err(StateError::BadVersion(version));
        }
        if state.len() != STATE_LEN {
            return Err(StateError::BadLength);
        }
        let (body, tag) = state
            .split_at_checked(BODY_LEN)
            .ok_or(StateError::BadLength)?;
        if !bool::from(self.mac(body).ct_eq(tag)) {
            return Err(StateError::BadMac);
        }
        let (node, session) = body
            .get(1..)
            .and_then(|b| b.split_first_chunk::<2>())
            .ok_or(StateError::BadLength)?;
        let session_id: [u8; 16] = session.try_into().map_err(|_| StateError::BadLength)?;
        Ok(StateToken {
            node_id: u16::from_be_bytes(*node),
            session_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StateKey {
        StateKey::new(b"cluster key of at least 16 bytes").unwrap()
    }

    #[test]
    fn round_trip() {
        let k = key();
        let sid = [0xa5u8; 16];
        let st = k.seal(0x1234, &sid);
        assert_eq!(st.len(), 35);
        assert_eq!(st[0], 1);
        assert_eq!(&st[1..3], &[0x12, 0x34]);
        assert_eq!(&st[3..19], &sid);
        assert_eq!(
            k.open(&st),
            Ok(StateToken {
                node_id: 0x1234,
                session_id: sid
            })
        );
        let g = StateKey::generate();
        assert_eq!(g.as_bytes().len(), 32);
        assert_eq!(g.open(&g.seal(7, &[1; 16])).unwrap().node_id, 7);
    }

    #[test]
    fn mac_is_truncated_hmac_sha256() {
        let k = key();
        let st = k.seal(1, &[2; 16]);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(k.as_bytes()).unwrap();
        m.update(&st[..19]);
        assert_eq!(&m.finalize().into_bytes()[..16], &st[19..]);
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let k = key();
        let st = k.seal(42, &[9; 16]);
        for byte in 0..STATE_LEN {
            for bit in 0..8 {
                let mut t = st;
                t[byte] ^= 1 << bit;
                let r = k.open(&t);
                if byte == 0 {
                    assert_eq!(r, Err(StateError::BadVersion(t[0])));
                } else {
                    assert_eq!(r, Err(StateError::BadMac), "byte {byte} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn other_key_is_rejected() {
        let st = key().seal(1, &[3; 16]);
        let other = StateKey::new(b"another cluster key 1234").unwrap();
        assert_eq!(other.open(&st), Err(StateError::BadMac));
    }

    #[test]
    fn lengths() {
        let k = key();
        let st = k.seal(1, &[3; 16]);
        for n in 0..STATE_LEN {
            assert_eq!(k.open(&st[..n]), Err(StateError::BadLength), "len {n}");
        }
        let mut long = st.to_vec();
        long.push(0);
        assert_eq!(k.open(&long), Err(StateError::BadLength));
        assert_eq!(k.open(&[2u8; 35]), Err(StateError::BadVersion(2)));
        assert_eq!(k.open(&[0u8; 3]), Err(StateError::BadVersion(0)));
    }

    #[test]
    fn key_rules() {
        assert!(matches!(
            StateKey::new(&[0; 15]),
            Err(OtpError::InvalidParameter(_))
        ));
        assert!(StateKey::new(&[0; 16]).is_ok());
        let d = format!("{:?}", key());
        assert_eq!(d, "StateKey(***)");
        let e: OtpError = StateError::BadMac.into();
        assert_eq!(e, OtpError::BadState(StateError::BadMac));
    }
}
