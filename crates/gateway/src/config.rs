//! Gateway configuration.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::breaker::BreakerConfig;
use crate::secret::Secret;

/// Twilio's API base URL.
pub const DEFAULT_TWILIO_BASE_URL: &str = "https://api.twilio.com";

/// Which gateway to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// The radmfa gateway protocol (`docs/gateway-protocol.md`).
    Radmfa {
        /// Base URL, `https://...`; the paths `/v1/...` are appended.
        base_url: String,
        /// Bearer API key.
        api_key: Secret,
    },
    /// Twilio's REST API: SMS (Messages) and voice calls (Calls).
    Twilio {
        /// Base URL, normally [`DEFAULT_TWILIO_BASE_URL`].
        base_url: String,
        /// Account SID (basic-auth user and part of the path).
        account_sid: String,
        /// Auth token (basic-auth password).
        auth_token: Secret,
        /// Sender number (E.164) for SMS and calls, unless a request names its own.
        from_number: String,
    },
}

/// Everything the client needs. Build with [`GatewayConfig::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The provider and its credentials.
    pub provider: Provider,
    /// Timeout of one HTTP attempt (a long poll gets its wait time added).
    pub timeout: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Retries after the first attempt, for idempotent calls only.
    pub retries: u32,
    /// Delay between retries.
    pub backoff: Backoff,
    /// Circuit breaker thresholds.
    pub breaker: BreakerConfig,
    /// Longest long-poll wait asked of the radmfa gateway (capped at 30 s by the protocol).
    pub long_poll: Duration,
    /// Pause between verdict polls when a long poll returned early.
    pub poll_interval: Duration,
    /// Send first and last name.
    pub send_names: bool,
    /// Send the email address.
    pub send_email: bool,
    /// Extra trusted CA certificate(s), PEM (e.g. the simulator's self-signed cert).
    pub extra_ca_pem: Option<String>,
    /// Requests (SMS, starting a verification, health) sent to the gateway
    /// at the same time; more wait their turn (within their timeout) rather
    /// than open a connection each: a burst of ten thousand out-of-band
    /// logins becomes a queue, not ten thousand TLS handshakes that time
    /// out together. Long polls for a verdict are not counted.
    pub max_in_flight: usize,
}

impl GatewayConfig {
    /// A configuration with the defaults: 10 s timeout, 2 retries, 200 ms backoff
    /// doubling to 5 s, breaker opening after 5 failures for 30 s, names and email off.
    pub fn new(provider: Provider) -> Self {
        Self {
            provider,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Backoff::default(),
            breaker: BreakerConfig::default(),
            long_poll: Duration::from_secs(25),
            poll_interval: Duration::from_secs(1),
            send_names: false,
            send_email: false,
            extra_ca_pem: None,
            max_in_flight: 64,
        }
    }
}
