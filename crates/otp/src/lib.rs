//! One-time passwords and challenge plumbing for radmfa.
//!
//! - [`hotp`], [`Hotp`], [`Totp`]: RFC 4226 / RFC 6238 generation and verification
//!   with drift window, look-ahead and single use of each step.
//! - [`generate_secret`], [`base32_encode`], [`base32_decode`], [`otpauth_uri`]: seeds
//!   and enrollment URIs.
//! - [`random_code`], [`codes_match`]: codes sent by SMS or voice.
//! - [`Sessions`]: in-memory, single-use, bounded challenge sessions.
//! - [`StateKey`]: authenticated State tokens naming the node that owns a session.
//!
//! No I/O and no clock reads: every function takes `now` / `unix_time`; callers get it
//! from a [`Clock`] ([`SystemClock`] in production, [`ManualClock`] in tests).

mod clock;
mod code;
mod error;
mod otp;
mod rng;
mod secret;
mod sessions;
mod state;

pub use clock::{Clock, ManualClock, SystemClock};
pub use code::{codes_match, random_code, DIGITS};
pub use error::{OtpError, StateError};
pub use otp::{
    hotp, Algorithm, Hotp, Totp, DIGITS_RANGE, MAX_HOTP_LOOK_AHEAD, MAX_HOTP_RESYNC,
    MAX_TOTP_WINDOW,
};
pub use secret::{
    base32_decode, base32_encode, generate_secret, otpauth_uri, OtpKind, OtpauthParams,
};
pub use sessions::{SessionId, Sessions, Take};
pub use state::{StateKey, StateToken, MIN_STATE_KEY_LEN, STATE_LEN, STATE_VERSION};
