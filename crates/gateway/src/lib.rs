//! Client for the cloud gateway that delivers the out-of-band second factors of radmfa.
//!
//! The gateway sends one-way SMS, starts out-of-band verifications (two-way SMS, phone
//! call, app push) and reports their verdict. Two providers are supported:
//!
//! * [`Provider::Radmfa`]: the radmfa gateway protocol, JSON over HTTPS with a bearer API
//!   key, documented in `docs/gateway-protocol.md`;
//! * [`Provider::Twilio`]: Twilio's REST API (Messages and Calls resources, basic auth);
//!   Twilio reports answers only to callbacks the radmfa server serves, so its
//!   verdicts never come through [`Gateway::wait_verdict`] (see [`twiml_for_call`],
//!   [`read_keys`], [`call_end`], [`twilio_signature_matches`]).
//!
//! Every call has a timeout; idempotent calls are retried with exponential backoff; a
//! circuit breaker fails calls fast while the gateway is down; [`Gateway::metrics`]
//! returns counters for each operation. The crate binds no socket: it only makes
//! outgoing HTTPS requests (reqwest + rustls, no OpenSSL).

mod backoff;
mod breaker;
mod client;
mod config;
mod error;
mod metrics;
mod secret;
mod twilio;
mod types;
pub mod wire;

pub use backoff::Backoff;
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use client::Gateway;
pub use config::{GatewayConfig, Provider, DEFAULT_TWILIO_BASE_URL};
pub use error::GatewayError;
pub use metrics::{GatewayMetrics, OpMetrics, Operation, LATENCY_BUCKETS_MS};
pub use secret::Secret;
pub use twilio::{
    call_end, read_keys, signature as twilio_signature,
    signature_matches as twilio_signature_matches, twiml_for_call, valid_fraud_key, CallEnd, Keys,
};
pub use types::{
    Callbacks, MessageId, PinMode, SmsRequest, Speech, UserFields, Verdict, VerificationId,
    VerificationMode, VerificationRequest,
};
