//! TLS of the admin API: a server certificate chain and key from PEM files,
//! TLS 1.2 and 1.3, no client certificate, HTTP/1.1 over ALPN; loaded by the
//! loader every HTTPS listener shares.

pub use crate::https::load_tls as load;
