//! Secret newtypes: `Debug` prints `***`, memory is zeroized on drop.

use std::fmt;

use zeroize::Zeroizing;

/// A RADIUS shared secret.
#[derive(Clone)]
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> SharedSecret {
        SharedSecret(Zeroizing::new(bytes))
    }

    /// The bytes, for the codec.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let s = SharedSecret::new(b"testing123".to_vec());
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), b"testing123");
    }
}
