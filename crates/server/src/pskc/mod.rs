//! PSKC (RFC 6030), the format token vendors ship seeds in: parsing a
//! key container into the OTP tokens it holds, decrypting them with a
//! pre-shared key or a password. Pure (text and key in, tokens out), used
//! by the CLI (which reads the file) and the admin API alike.

mod crypto;
mod parse;
mod types;

pub use crypto::{Cipher, MacAlg, Pbkdf2Params, PskcKey};
pub use parse::parse;
pub use types::{PskcError, PskcFile, PskcToken};
