//! The one place that touches the operating system's CSPRNG.

use rand::rngs::OsRng;
use rand::TryRngCore;

/// Fills `buf` from the OS CSPRNG, reporting a failure as an error.
pub(crate) fn try_fill(buf: &mut [u8]) -> Result<(), crate::OtpError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|_| crate::OtpError::RandomUnavailable)
}

/// Fills `buf` from the OS CSPRNG.
///
/// # Panics
/// If the operating system cannot provide random bytes. Continuing with weak
/// secrets would be worse than stopping.
pub(crate) fn fill(buf: &mut [u8]) {
    if let Err(e) = OsRng.try_fill_bytes(buf) {
        panic!("operating system random number generator failed: {e}");
    }
}
