//! Open newtypes for protocol numbers: packet codes and attribute types.
//!
//! Unknown values are kept as they are, so a packet with a code or attribute
//! this crate has never heard of survives a decode/encode round trip.

use std::fmt;

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $unknown:literal {
            $( $(#[$cmeta:meta])* $konst:ident = $value:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u8);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: $name = $name($value); )*

            /// The registered name (as in the RADIUS dictionaries), if known.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($text), )*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, concat!($unknown, "({})"), self.0),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                $name(v)
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                v.0
            }
        }
    };
}

open_enum! {
    /// RADIUS packet Code (RFC 2865 §3, RFC 2866, RFC 5176, RFC 5997).
    Code, "Code" {
        /// Access-Request (RFC 2865).
        ACCESS_REQUEST = 1 => "Access-Request",
        /// Access-Accept (RFC 2865).
        ACCESS_ACCEPT = 2 => "Access-Accept",
        /// Access-Reject (RFC 2865).
        ACCESS_REJECT = 3 => "Access-Reject",
        /// Accounting-Request (RFC 2866).
        ACCOUNTING_REQUEST = 4 => "Accounting-Request",
        /// Accounting-Response (RFC 2866).
        ACCOUNTING_RESPONSE = 5 => "Accounting-Response",
        /// Access-Challenge (RFC 2865).
        ACCESS_CHALLENGE = 11 => "Access-Challenge",
        /// Status-Server (RFC 5997).
        STATUS_SERVER = 12 => "Status-Server",
        /// Status-Client (RFC 5997).
        STATUS_CLIENT = 13 => "Status-Client",
        /// Disconnect-Request (RFC 5176).
        DISCONNECT_REQUEST = 40 => "Disconnect-Request",
        /// Disconnect-ACK (RFC 5176).
        DISCONNECT_ACK = 41 => "Disconnect-ACK",
        /// Disconnect-NAK (RFC 5176).
        DISCONNECT_NAK = 42 => "Disconnect-NAK",
        /// CoA-Request (RFC 5176).
        COA_REQUEST = 43 => "CoA-Request",
        /// CoA-ACK (RFC 5176).
        COA_ACK = 44 => "CoA-ACK",
        /// CoA-NAK (RFC 5176).
        COA_NAK = 45 => "CoA-NAK",
    }
}

impl Code {
    /// Requests whose Request Authenticator is an MD5 over the packet with a
    /// zeroed authenticator field (RFC 2866 §3, RFC 5176 §2.3), and whose
    /// Message-Authenticator is computed with that field zeroed.
    pub const fn has_computed_request_authenticator(self) -> bool {
        matches!(self.0, 4 | 40 | 43)
    }
}

open_enum! {
    /// RADIUS attribute Type (RFC 2865 §5 and later RFCs).
    AttrType, "Attr" {
        /// User-Name (1), text.
        USER_NAME = 1 => "User-Name",
        /// User-Password (2), hidden (RFC 2865 §5.2).
        USER_PASSWORD = 2 => "User-Password",
        /// CHAP-Password (3).
        CHAP_PASSWORD = 3 => "CHAP-Password",
        /// NAS-IP-Address (4), IPv4 address.
        NAS_IP_ADDRESS = 4 => "NAS-IP-Address",
        /// NAS-Port (5), integer.
        NAS_PORT = 5 => "NAS-Port",
        /// Service-Type (6), integer.
        SERVICE_TYPE = 6 => "Service-Type",
        /// Framed-Protocol (7), integer.
        FRAMED_PROTOCOL = 7 => "Framed-Protocol",
        /// Framed-IP-Address (8), IPv4 address.
        FRAMED_IP_ADDRESS = 8 => "Framed-IP-Address",
        /// Framed-IP-Netmask (9), IPv4 address.
        FRAMED_IP_NETMASK = 9 => "Framed-IP-Netmask",
        /// Framed-Routing (10), integer.
        FRAMED_ROUTING = 10 => "Framed-Routing",
        /// Filter-Id (11), text.
        FILTER_ID = 11 => "Filter-Id",
        /// Framed-MTU (12), integer.
        FRAMED_MTU = 12 => "Framed-MTU",
        /// Framed-Compression (13), integer.
        FRAMED_COMPRESSION = 13 => "Framed-Compression",
        /// Login-IP-Host (14), IPv4 address.
        LOGIN_IP_HOST = 14 => "Login-IP-Host",
        /// Login-Service (15), integer.
        LOGIN_SERVICE = 15 => "Login-Service",
        /// Reply-Message (18), text.
        REPLY_MESSAGE = 18 => "Reply-Message",
        /// State (24), opaque.
        STATE = 24 => "State",
        /// Class (25), opaque.
        CLASS = 25 => "Class",
        /// Vendor-Specific (26), RFC 2865 §5.26.
        VENDOR_SPECIFIC = 26 => "Vendor-Specific",
        /// Session-Timeout (27), integer.
        SESSION_TIMEOUT = 27 => "Session-Timeout",
        /// Idle-Timeout (28), integer.
        IDLE_TIMEOUT = 28 => "Idle-Timeout",
        /// Termination-Action (29), integer.
        TERMINATION_ACTION = 29 => "Termination-Action",
        /// Called-Station-Id (30), text.
        CALLED_STATION_ID = 30 => "Called-Station-Id",
        /// Calling-Station-Id (31), text.
        CALLING_STATION_ID = 31 => "Calling-Station-Id",
        /// NAS-Identifier (32), text.
        NAS_IDENTIFIER = 32 => "NAS-Identifier",
        /// Proxy-State (33), opaque; relayed unchanged by proxies.
        PROXY_STATE = 33 => "Proxy-State",
        /// Acct-Status-Type (40), integer (RFC 2866).
        ACCT_STATUS_TYPE = 40 => "Acct-Status-Type",
        /// Acct-Delay-Time (41), integer (RFC 2866).
        ACCT_DELAY_TIME = 41 => "Acct-Delay-Time",
        /// Acct-Input-Octets (42), integer (RFC 2866).
        ACCT_INPUT_OCTETS = 42 => "Acct-Input-Octets",
        /// Acct-Output-Octets (43), integer (RFC 2866).
        ACCT_OUTPUT_OCTETS = 43 => "Acct-Output-Octets",
        /// Acct-Session-Id (44), text (RFC 2866).
        ACCT_SESSION_ID = 44 => "Acct-Session-Id",
        /// Acct-Authentic (45), integer (RFC 2866).
        ACCT_AUTHENTIC = 45 => "Acct-Authentic",
        /// Acct-Session-Time (46), integer (RFC 2866).
        ACCT_SESSION_TIME = 46 => "Acct-Session-Time",
        /// Acct-Terminate-Cause (49), integer (RFC 2866).
        ACCT_TERMINATE_CAUSE = 49 => "Acct-Terminate-Cause",
        /// Acct-Input-Gigawords (52), integer: times Acct-Input-Octets
        /// wrapped around 2^32 (RFC 2869 §5.1).
        ACCT_INPUT_GIGAWORDS = 52 => "Acct-Input-Gigawords",
        /// Acct-Output-Gigawords (53), integer (RFC 2869 §5.2).
        ACCT_OUTPUT_GIGAWORDS = 53 => "Acct-Output-Gigawords",
        /// Event-Timestamp (55), integer seconds since 1970 (RFC 2869).
        EVENT_TIMESTAMP = 55 => "Event-Timestamp",
        /// CHAP-Challenge (60), opaque.
        CHAP_CHALLENGE = 60 => "CHAP-Challenge",
        /// NAS-Port-Type (61), integer.
        NAS_PORT_TYPE = 61 => "NAS-Port-Type",
        /// EAP-Message (79), RFC 3579.
        EAP_MESSAGE = 79 => "EAP-Message",
        /// Message-Authenticator (80), HMAC-MD5, RFC 3579 §3.2.
        MESSAGE_AUTHENTICATOR = 80 => "Message-Authenticator",
        /// NAS-Port-Id (87), text (RFC 2869).
        NAS_PORT_ID = 87 => "NAS-Port-Id",
        /// NAS-IPv6-Address (95), IPv6 address (RFC 3162).
        NAS_IPV6_ADDRESS = 95 => "NAS-IPv6-Address",
        /// Error-Cause (101), integer (RFC 5176).
        ERROR_CAUSE = 101 => "Error-Cause",
    }
}

impl AttrType {
    /// Attributes whose value must never be printed (logs, Debug output).
    pub const fn is_sensitive(self) -> bool {
        matches!(self.0, 2 | 3 | 80)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_unknown_values() {
        assert_eq!(Code::ACCESS_REQUEST.to_string(), "Access-Request");
        assert_eq!(format!("{:?}", Code::COA_NAK), "CoA-NAK");
        assert_eq!(Code(99).to_string(), "Code(99)");
        assert_eq!(Code(99).name(), None);
        assert_eq!(
            AttrType::MESSAGE_AUTHENTICATOR.to_string(),
            "Message-Authenticator"
        );
        assert_eq!(format!("{:?}", AttrType(200)), "Attr(200)");
        assert_eq!(u8::from(AttrType::from(7)), 7);
    }

    #[test]
    fn every_named_value_maps_back_to_itself() {
        for v in 0..=255u8 {
            if let Some(n) = Code(v).name() {
                assert!(!n.is_empty());
            }
            assert_eq!(Code::from(v).0, v);
            assert_eq!(AttrType::from(v).0, v);
        }
        assert_eq!(Code::STATUS_SERVER, Code(12));
        assert_eq!(AttrType::NAS_IPV6_ADDRESS, AttrType(95));
        assert!(Code::ACCOUNTING_REQUEST.has_computed_request_authenticator());
        assert!(Code::COA_REQUEST.has_computed_request_authenticator());
        assert!(!Code::ACCESS_REQUEST.has_computed_request_authenticator());
        assert!(AttrType::USER_PASSWORD.is_sensitive());
        assert!(!AttrType::USER_NAME.is_sensitive());
    }
}
