//! `radmfa-radius`: the RADIUS wire format for radmfa (RFC 2865, 2866, 2869,
//! 3579, 5176, 5997): packet decode/encode, attributes including
//! Vendor-Specific, User-Password hiding, Request/Response Authenticators and
//! Message-Authenticator.
//!
//! The crate is pure: it does no I/O, reads no clock and starts no task. It
//! turns bytes into values and values into bytes; the server crate owns the
//! sockets. Malformed input is an [`Error`], never a panic (the decoder is
//! fuzzed, see `fuzz/`).
//!
//! Server side: [`Packet::decode`] a datagram,
//! [`check_request_message_authenticator`] (BlastRADIUS, CVE-2024-3596),
//! [`unhide_password`], then answer with [`encode_reply_into`], which puts a
//! Message-Authenticator first in every reply. Client side:
//! [`encode_request_into`] and [`verify_response`].

mod attribute;
mod auth;
mod error;
mod mppe;
mod packet;
mod types;

#[cfg(test)]
mod interop_tests;

pub use attribute::{reply_messages, Attribute, VendorAttr, MAX_VALUE_LEN, MAX_VENDOR_VALUE_LEN};
pub use auth::{
    check_request_message_authenticator, encode_reply, encode_reply_into, encode_request,
    encode_request_into, hide_password, unhide_password, verify_accounting_request,
    verify_response, MessageAuthenticator,
};
pub use error::Error;
pub use mppe::{mppe_decrypt, mppe_encrypt, MS_MPPE_RECV_KEY, MS_MPPE_SEND_KEY, VENDOR_MICROSOFT};
pub use packet::{Packet, HEADER_LEN, MAX_PACKET_LEN};
pub use types::{AttrType, Code};
