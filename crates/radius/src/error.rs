//! The crate's one error type.

use crate::types::AttrType;

/// Everything that can go wrong while decoding, encoding or authenticating a
/// RADIUS packet.
///
/// Structural variants (`TooShort` .. `AttributeOverrun`) mean the datagram is
/// not a well-formed RADIUS packet: RFC 2865 §3 says such packets are silently
/// discarded. Authentication variants (`BadAuthenticator`,
/// `BadMessageAuthenticator`, `MissingMessageAuthenticator`) mean the packet is
/// well formed but was not produced with the shared secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer than the 20 bytes of a RADIUS header.
    #[error("datagram shorter than the 20-byte RADIUS header")]
    TooShort,
    /// The header's Length field is below 20, above 4096, or larger than the
    /// datagram that carried it.
    #[error("RADIUS Length field {length} is invalid for a datagram of {received} bytes (must be 20..=4096 and fit)")]
    BadLength {
        /// Value of the Length field.
        length: u16,
        /// Bytes actually received.
        received: usize,
    },
    /// An attribute's Length field is below 2.
    #[error("attribute at offset {offset} has length {length}, minimum is 2")]
    AttributeTooShort {
        /// Offset of the attribute from the start of the packet.
        offset: usize,
        /// Its Length field.
        length: u8,
    },
    /// An attribute runs past the end of the packet (including a lone type
    /// byte with no length byte).
    #[error("attribute at offset {offset} needs {length} bytes but only {remaining} remain")]
    AttributeOverrun {
        /// Offset of the attribute from the start of the packet.
        offset: usize,
        /// Bytes the attribute claims (2 when the length byte itself is missing).
        length: usize,
        /// Bytes left in the packet from `offset`.
        remaining: usize,
    },
    /// An attribute value longer than the 253 bytes one attribute can carry.
    #[error("{typ} value is {len} bytes, maximum is 253")]
    ValueTooLong {
        /// Type of the offending attribute.
        typ: AttrType,
        /// Length of its value.
        len: usize,
    },
    /// The encoded packet would exceed 4096 bytes.
    #[error("encoded packet would exceed 4096 bytes")]
    PacketTooLong,
    /// A User-Password is empty or longer than 128 bytes, or a hidden one is
    /// not a multiple of 16 within 16..=128.
    #[error("bad User-Password length")]
    BadPasswordLength,
    /// A Vendor-Specific attribute does not follow the RFC 2865 §5.26 layout,
    /// or a vendor attribute cannot be built (vendor id above 24 bits, value
    /// too long).
    #[error("malformed Vendor-Specific attribute")]
    BadVendorSpecific,
    /// The Request or Response Authenticator does not match.
    #[error("bad Request/Response Authenticator")]
    BadAuthenticator,
    /// The Message-Authenticator does not match, has the wrong length or
    /// appears more than once.
    #[error("bad Message-Authenticator")]
    BadMessageAuthenticator,
    /// A Message-Authenticator was required but is absent.
    #[error("missing Message-Authenticator")]
    MissingMessageAuthenticator,
    /// A text attribute is not valid UTF-8.
    #[error("attribute value is not valid UTF-8")]
    NotUtf8,
    /// An integer attribute is not exactly 4 bytes.
    #[error("integer attribute value is not 4 bytes")]
    BadIntegerLength,
    /// An address attribute is not 4 (IPv4) or 16 (IPv6) bytes.
    #[error("address attribute value has the wrong length")]
    BadAddressLength,
    /// The shared secret is empty (RFC 2865 §3: it must not be).
    #[error("shared secret is empty")]
    EmptySecret,
    /// `encode_request` was asked for a code that is not a request it knows
    /// how to authenticate.
    #[error("cannot build a request with code {0}")]
    NotARequest(crate::types::Code),
}
