//! The gateway client.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::breaker::CircuitBreaker;
use crate::config::{GatewayConfig, Provider};
use crate::error::GatewayError;
use crate::metrics::{Counters, GatewayMetrics, Operation};
use crate::twilio::{twiml_for_call, TwilioResource};
use crate::types::{
    check_id, check_phone, MessageId, PinMode, SmsRequest, UserFields, Verdict, VerificationId,
    VerificationMode, VerificationRequest,
};
use crate::wire::{
    SmsAccepted, SmsBody, VerificationBody, VerificationCreated, VerificationStatus,
    IDEMPOTENCY_HEADER, MAX_WAIT_SECS,
};

/// Largest response body read from the gateway.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest SMS body accepted (10 concatenated segments).
const MAX_SMS_BYTES: usize = 1600;

/// A client for one gateway. Cheap to share (`Arc<Gateway>`); all methods take `&self`.
#[derive(Debug)]
pub struct Gateway {
    http: reqwest::Client,
    cfg: GatewayConfig,
    /// Base URL without trailing slash.
    base: String,
    breaker: CircuitBreaker,
    counters: Counters,
    /// `cfg.max_in_flight` permits (long polls take none).
    in_flight: tokio::sync::Semaphore,
}

fn check_https(url: &str, what: &str) -> Result<String, GatewayError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| GatewayError::Config(format!("{what} {url:?} is not a URL: {e}")))?;
    if parsed.scheme() != "https" {
        return Err(GatewayError::Config(format!("{what} must use https")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(GatewayError::Config(format!(
            "{what} must not carry credentials"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn transport_error(e: reqwest::Error) -> GatewayError {
    if e.is_timeout() {
        return GatewayError::Timeout;
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    GatewayError::Transport(msg)
}

fn truncated(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Builds the error for a non-2xx answer from its status and (JSON) body.
fn status_error(status: StatusCode, body: &[u8]) -> GatewayError {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| -> String {
        match json.as_ref().and_then(|v| v.get(name)) {
            Some(serde_json::Value::String(s)) => truncated(s, 200),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    };
    let code = status.as_u16();
    match code {
        401 | 403 => GatewayError::Auth { status: code },
        429 | 500..=599 => GatewayError::Upstream {
            status: code,
            code: field("code"),
            message: field("message"),
        },
        400..=499 => GatewayError::Rejected {
            status: code,
            code: field("code"),
            message: field("message"),
        },
        _ => GatewayError::Protocol(format!("unexpected HTTP status {code}")),
    }
}

async fn read_limited(mut resp: Response) -> Result<Vec<u8>, GatewayError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if out.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
            return Err(GatewayError::Protocol("response body too large".into()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn ip_string(ip: Option<std::net::IpAddr>) -> Option<String> {
    ip.map(|ip| ip.to_string())
}

impl Gateway {
    /// Validates the configuration and builds the HTTPS client (rustls; the system's
    /// web PKI roots plus `extra_ca_pem`). Binds nothing, sends nothing.
    pub fn new(cfg: GatewayConfig) -> Result<Gateway, GatewayError> {
        let base = match &cfg.provider {
            Provider::Radmfa { base_url, api_key } => {
                if api_key.is_empty() {
                    return Err(GatewayError::Config("api_key is empty".into()));
                }
                check_https(base_url, "base_url")?
            }
            Provider::Twilio {
                base_url,
                account_sid,
                auth_token,
                from_number,
            } => {
                if account_sid.is_empty() || !account_sid.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(GatewayError::Config(
                        "account_sid must be non-empty and alphanumeric".into(),
                    ));
                }
                if auth_token.is_empty() {
                    return Err(GatewayError::Config("auth_token is empty".into()));
                }
                check_phone(Some(from_number))
                    .map_err(|_| GatewayError::Config("from_number is not E.164".into()))?;
                check_https(base_url, "base_url")?
            }
        };
        if cfg.timeout.is_zero() {
            return Err(GatewayError::Config("timeout must be positive".into()));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("radmfa-gateway/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &cfg.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| GatewayError::Config(format!("extra_ca_pem: {e}")))?;
            if certs.is_empty() {
                return Err(GatewayError::Config(
                    "extra_ca_pem holds no certificate".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| GatewayError::Config(format!("HTTPS client: {e}")))?;
        Ok(Gateway {
            http,
            base,
            breaker: CircuitBreaker::new(cfg.breaker),
            counters: Counters::default(),
            in_flight: tokio::sync::Semaphore::new(cfg.max_in_flight.max(1)),
            cfg,
        })
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> GatewayMetrics {
        GatewayMetrics {
            send_sms: self.counters.send_sms.snapshot(),
            start_verification: self.counters.start_verification.snapshot(),
            poll_verdict: self.counters.poll_verdict.snapshot(),
            breaker_opened: self.counters.breaker_opened.load(Ordering::Relaxed),
            breaker_state: self.breaker.state(Instant::now()),
        }
    }

    /// Sends a one-way SMS to `req.user.phone`.
    ///
    /// With the radmfa provider the POST carries `Idempotency-Key: req.id` and is
    /// retried on transient failures; Twilio's Messages resource is not idempotent, so
    /// it is tried once.
    pub async fn send_sms(&self, req: &SmsRequest) -> Result<MessageId, GatewayError> {
        check_id(&req.id)?;
        let to = check_phone(req.user.phone.as_deref())?;
        if req.body.is_empty() || req.body.len() > MAX_SMS_BYTES {
            return Err(GatewayError::InvalidRequest(format!(
                "SMS body must be 1 to {MAX_SMS_BYTES} bytes"
            )));
        }
        match &self.cfg.provider {
            Provider::Radmfa { api_key, .. } => {
                let (first_name, last_name, email) = self.optional_fields(&req.user);
                let body = SmsBody {
                    id: req.id.clone(),
                    to: to.to_owned(),
                    body: req.body.clone(),
                    unique_id: req.user.unique_id.clone(),
                    server_name: req.server_name.clone(),
                    server_ip: ip_string(req.server_ip),
                    client_ip: ip_string(req.client_ip),
                    first_name,
                    last_name,
                    email,
                };
                let json = serde_json::to_vec(&body)
                    .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
                let url = format!("{}/v1/sms", self.base);
                let accepted: SmsAccepted = self
                    .call(Operation::SendSms, true, self.cfg.timeout, || {
                        self.http
                            .post(&url)
                            .bearer_auth(api_key.expose())
                            .header(IDEMPOTENCY_HEADER, req.id.as_str())
                            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                            .body(json.clone())
                    })
                    .await?;
                Ok(MessageId(accepted.message_id))
            }
            Provider::Twilio {
                account_sid,
                auth_token,
                from_number,
                ..
            } => {
                let url = format!(
                    "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                    self.base
                );
                let from = match &req.from_number {
                    Some(f) => check_phone(Some(f))?,
                    None => from_number.as_str(),
                };
                let form = [("To", to), ("From", from), ("Body", req.body.as_str())];
                let res: TwilioResource = self
                    .call(Operation::SendSms, false, self.cfg.timeout, || {
                        self.http
                            .post(&url)
                            .basic_auth(account_sid, Some(auth_token.expose()))
                            .form(&form)
                    })
                    .await?;
                Ok(MessageId(res.sid))
            }
        }
    }

    /// Starts an out-of-band verification; wait for its outcome with
    /// [`Gateway::wait_verdict`].
    ///
    /// Twilio places a call (inline TwiML whose `<Gather>` posts to
    /// `req.callbacks`, plus a `StatusCallback` for the call's end) or sends the
    /// two-way SMS `req.message`; it cannot push. The PIN is never sent to
    /// Twilio (the radmfa server checks the keys, [`crate::read_keys`]).
    pub async fn start_verification(
        &self,
        req: &VerificationRequest,
    ) -> Result<VerificationId, GatewayError> {
        check_id(&req.id)?;
        let phone = match req.mode {
            VerificationMode::TwoWaySms | VerificationMode::Call => {
                Some(check_phone(req.user.phone.as_deref())?.to_owned())
            }
            VerificationMode::Push => None,
        };
        let device_token = match req.mode {
            VerificationMode::Push => match req.user.device_token.as_deref() {
                Some(t) if !t.is_empty() => Some(t.to_owned()),
                _ => {
                    return Err(GatewayError::InvalidRequest(
                        "push needs the user's device token".into(),
                    ))
                }
            },
            _ => None,
        };
        match &self.cfg.provider {
            Provider::Radmfa { api_key, .. } => {
                let (first_name, last_name, email) = self.optional_fields(&req.user);
                let (pin_mode, pin) = match &req.pin_mode {
                    PinMode::Standard => ("standard", None),
                    PinMode::Pin(pin) => ("pin", Some(pin.expose().to_owned())),
                };
                let mut body = VerificationBody {
                    id: req.id.clone(),
                    mode: req.mode.as_str().to_owned(),
                    unique_id: req.user.unique_id.clone(),
                    phone,
                    device_token,
                    server_name: req.server_name.clone(),
                    server_ip: ip_string(req.server_ip),
                    client_ip: ip_string(req.client_ip),
                    pin_mode: pin_mode.to_owned(),
                    pin,
                    first_name,
                    last_name,
                    email,
                };
                let json = zeroize::Zeroizing::new(
                    serde_json::to_vec(&body)
                        .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?,
                );
                if let Some(pin) = body.pin.as_mut() {
                    zeroize::Zeroize::zeroize(pin);
                }
                let url = format!("{}/v1/verifications", self.base);
                let created: VerificationCreated = self
                    .call(Operation::StartVerification, true, self.cfg.timeout, || {
                        self.http
                            .post(&url)
                            .bearer_auth(api_key.expose())
                            .header(IDEMPOTENCY_HEADER, req.id.as_str())
                            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                            .body(json.to_vec())
                    })
                    .await?;
                Ok(VerificationId(created.verification_id))
            }
            Provider::Twilio {
                account_sid,
                auth_token,
                from_number,
                ..
            } => {
                let to = phone.ok_or(GatewayError::Unsupported(
                    "push needs the radmfa gateway provider",
                ))?;
                let from = match &req.from_number {
                    Some(f) => check_phone(Some(f))?,
                    None => from_number.as_str(),
                };
                let (resource, form) = match req.mode {
                    VerificationMode::Call => {
                        let cb = req.callbacks.as_ref().ok_or_else(|| {
                            GatewayError::InvalidRequest(
                                "a Twilio call needs callback URLs (its keys reach radmfa only there)"
                                    .into(),
                            )
                        })?;
                        let speech = req.speech.as_ref().ok_or_else(|| {
                            GatewayError::InvalidRequest(
                                "a Twilio call needs the words it says".into(),
                            )
                        })?;
                        let pin = matches!(req.pin_mode, PinMode::Pin(_));
                        let twiml = twiml_for_call(pin, &cb.gather, speech);
                        let mut form = vec![
                            ("To", to),
                            ("From", from.to_owned()),
                            ("Twiml", twiml),
                            ("StatusCallback", cb.status.clone()),
                            ("StatusCallbackMethod", "POST".to_owned()),
                            ("StatusCallbackEvent", "completed".to_owned()),
                        ];
                        if let Some(ext) = &req.user.extension {
                            form.push(("SendDigits", ext.clone()));
                        }
                        ("Calls", form)
                    }
                    _ => {
                        let body = req.message.clone().ok_or_else(|| {
                            GatewayError::InvalidRequest("a two-way SMS needs its text".into())
                        })?;
                        if body.is_empty() || body.len() > MAX_SMS_BYTES {
                            return Err(GatewayError::InvalidRequest(format!(
                                "SMS body must be 1 to {MAX_SMS_BYTES} bytes"
                            )));
                        }
                        (
                            "Messages",
                            vec![("To", to), ("From", from.to_owned()), ("Body", body)],
                        )
                    }
                };
                let url = format!(
                    "{}/2010-04-01/Accounts/{account_sid}/{resource}.json",
                    self.base
                );
                let res: TwilioResource = self
                    .call(
                        Operation::StartVerification,
                        false,
                        self.cfg.timeout,
                        || {
                            self.http
                                .post(&url)
                                .basic_auth(account_sid, Some(auth_token.expose()))
                                .form(&form)
                        },
                    )
                    .await?;
                Ok(VerificationId(res.sid))
            }
        }
    }

    /// Whether this provider reports verdicts to callbacks the radmfa server
    /// serves (Twilio) rather than through [`Gateway::wait_verdict`].
    pub fn reports_to_callbacks(&self) -> bool {
        matches!(self.cfg.provider, Provider::Twilio { .. })
    }

    /// Waits until the verification has a verdict or `deadline` passes (then
    /// [`Verdict::TimedOut`]): the radmfa provider long-polls, each poll retried
    /// on transient failures. Twilio has no verdict to poll
    /// ([`Gateway::reports_to_callbacks`]): `Unsupported`.
    pub async fn wait_verdict(
        &self,
        id: &VerificationId,
        deadline: Instant,
    ) -> Result<Verdict, GatewayError> {
        check_id(&id.0)?;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(Verdict::TimedOut);
            }
            let started = Instant::now();
            let (verdict, waited) = match &self.cfg.provider {
                Provider::Radmfa { api_key, .. } => {
                    let wait = remaining
                        .min(self.cfg.long_poll)
                        .min(Duration::from_secs(MAX_WAIT_SECS));
                    let wait_secs = wait.as_secs();
                    let url = format!("{}/v1/verifications/{}?wait={wait_secs}", self.base, id);
                    let status: VerificationStatus = self
                        .call(
                            Operation::PollVerdict,
                            true,
                            self.cfg
                                .timeout
                                .saturating_add(Duration::from_secs(wait_secs)),
                            || self.http.get(&url).bearer_auth(api_key.expose()),
                        )
                        .await?;
                    let verdict = match status.status.as_str() {
                        "pending" => None,
                        "approved" => Some(Verdict::Approved),
                        "denied" => Some(Verdict::Denied),
                        "timed_out" => Some(Verdict::TimedOut),
                        "fraud" => Some(Verdict::FraudReported),
                        other => {
                            return Err(GatewayError::Protocol(format!(
                                "unknown verification status {:?}",
                                truncated(other, 40)
                            )))
                        }
                    };
                    // A long poll that lasted its full wait needs no pause before the next.
                    let long_polled =
                        wait_secs > 0 && started.elapsed() >= Duration::from_secs(wait_secs);
                    (verdict, long_polled)
                }
                Provider::Twilio { .. } => {
                    return Err(GatewayError::Unsupported(
                        "Twilio reports verdicts to the radmfa callbacks, not to a poll",
                    ))
                }
            };
            if let Some(v) = verdict {
                return Ok(v);
            }
            if !waited {
                let pause = self
                    .cfg
                    .poll_interval
                    .min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Checks that the gateway answers and accepts the credentials: radmfa
    /// `GET /v1/health` (bearer key), Twilio `GET /2010-04-01/Accounts/{sid}.json`
    /// (the account resource, basic auth). One attempt, outside the circuit
    /// breaker and the counters: for `radmfa check-config --connect` and the
    /// start-up checks.
    pub async fn health(&self) -> Result<(), GatewayError> {
        let req = match &self.cfg.provider {
            Provider::Radmfa { api_key, .. } => self
                .http
                .get(format!("{}/v1/health", self.base))
                .bearer_auth(api_key.expose()),
            Provider::Twilio {
                account_sid,
                auth_token,
                ..
            } => self
                .http
                .get(format!(
                    "{}/2010-04-01/Accounts/{account_sid}.json",
                    self.base
                ))
                .basic_auth(account_sid, Some(auth_token.expose())),
        };
        let _: serde::de::IgnoredAny = self.attempt(req.timeout(self.cfg.timeout)).await?;
        Ok(())
    }

    fn optional_fields(
        &self,
        user: &UserFields,
    ) -> (Option<String>, Option<String>, Option<String>) {
        let (first, last) = if self.cfg.send_names {
            (user.first_name.clone(), user.last_name.clone())
        } else {
            (None, None)
        };
        let email = if self.cfg.send_email {
            user.email.clone()
        } else {
            None
        };
        (first, last, email)
    }

    /// Runs one operation: breaker check, attempts with timeout, retries with backoff
    /// (idempotent operations only, transient failures only), metrics.
    async fn call<T: DeserializeOwned>(
        &self,
        op: Operation,
        idempotent: bool,
        timeout: Duration,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<T, GatewayError> {
        let counters = self.counters.op(op);
        let attempts = if idempotent {
            self.cfg.retries.saturating_add(1)
        } else {
            1
        };
        let mut attempt: u32 = 0;
        loop {
            if !self.breaker.try_acquire(Instant::now()) {
                counters.breaker_open();
                tracing::debug!(?op, "gateway call refused: circuit breaker open");
                return Err(GatewayError::Unavailable);
            }
            counters.request();
            let started = Instant::now();
            // A turn among the requests in flight (long polls excepted),
            // waited for within this attempt's timeout.
            let permit = if op == Operation::PollVerdict {
                None
            } else {
                match tokio::time::timeout(timeout, self.in_flight.acquire()).await {
                    Ok(Ok(p)) => Some(p),
                    _ => {
                        counters.error(true);
                        return Err(GatewayError::Timeout);
                    }
                }
            };
            let result = self.attempt::<T>(make().timeout(timeout)).await;
            drop(permit);
            counters.latency(started.elapsed());
            let err = match result {
                Ok(v) => {
                    self.breaker.on_success();
                    return Ok(v);
                }
                Err(e) => e,
            };
            counters.error(matches!(err, GatewayError::Timeout));
            let transient = err.is_transient();
            if transient {
                if self.breaker.on_failure(Instant::now()) {
                    self.counters.breaker_opened.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(?op, error = %err, "gateway circuit breaker opened");
                }
            } else {
                // The gateway answered: it is up, even if it refused this request.
                self.breaker.on_success();
            }
            attempt = attempt.saturating_add(1);
            if !(transient && attempt < attempts) {
                tracing::debug!(?op, attempt, error = %err, "gateway call failed");
                return Err(err);
            }
            counters.retry();
            tracing::debug!(?op, attempt, error = %err, "gateway call failed, retrying");
            tokio::time::sleep(self.cfg.backoff.delay(attempt - 1)).await;
        }
    }

    async fn attempt<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T, GatewayError> {
        let resp = rb.send().await.map_err(transport_error)?;
        let status = resp.status();
        let body = read_limited(resp).await?;
        if status.is_success() {
            serde_json::from_slice(&body)
                .map_err(|e| GatewayError::Protocol(format!("bad response body: {e}")))
        } else {
            Err(status_error(status, &body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn radmfa(url: &str) -> GatewayConfig {
        GatewayConfig::new(Provider::Radmfa {
            base_url: url.into(),
            api_key: Secret::new("k"),
        })
    }

    #[test]
    fn config_validation() {
        assert!(Gateway::new(radmfa("https://gw.example/")).is_ok());
        assert!(matches!(
            Gateway::new(radmfa("http://gw.example")),
            Err(GatewayError::Config(_))
        ));
        assert!(matches!(
            Gateway::new(radmfa("https://u:p@gw.example")),
            Err(GatewayError::Config(_))
        ));
        let mut c = radmfa("https://gw.example");
        c.extra_ca_pem = Some("not a pem".into());
        assert!(matches!(Gateway::new(c), Err(GatewayError::Config(_))));
        let twilio = |from: &str| {
            GatewayConfig::new(Provider::Twilio {
                base_url: crate::DEFAULT_TWILIO_BASE_URL.into(),
                account_sid: "AC123".into(),
                auth_token: Secret::new("t"),
                from_number: from.into(),
            })
        };
        assert!(Gateway::new(twilio("+15005550006")).is_ok());
        assert!(Gateway::new(twilio("555")).is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let g = Gateway::new(radmfa("https://gw.example")).unwrap();
        let mut c = radmfa("https://gw.example");
        c.provider = Provider::Radmfa {
            base_url: "https://gw.example".into(),
            api_key: Secret::new("super-secret-key"),
        };
        assert!(!format!("{c:?}").contains("super-secret-key"));
        assert!(!format!("{g:?}").contains("super-secret-key"));
    }

    #[test]
    fn status_errors() {
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, b""),
            GatewayError::Auth { status: 401 }
        ));
        match status_error(
            StatusCode::BAD_REQUEST,
            br#"{"code":"invalid_request","message":"bad"}"#,
        ) {
            GatewayError::Rejected { code, message, .. } => {
                assert_eq!(
                    (code.as_str(), message.as_str()),
                    ("invalid_request", "bad")
                );
            }
            other => panic!("{other:?}"),
        }
        match status_error(StatusCode::SERVICE_UNAVAILABLE, br#"{"code":20500}"#) {
            e @ GatewayError::Upstream { .. } => assert!(e.is_transient()),
            other => panic!("{other:?}"),
        }
        assert!(status_error(StatusCode::TOO_MANY_REQUESTS, b"garbage").is_transient());
    }

    #[tokio::test]
    async fn invalid_requests_send_nothing() {
        let g = Gateway::new(radmfa("https://gw.example")).unwrap();
        let req = SmsRequest {
            id: "id1".into(),
            user: UserFields::default(),
            body: "x".into(),
            server_name: "s".into(),
            server_ip: None,
            client_ip: None,
            from_number: None,
        };
        assert!(matches!(
            g.send_sms(&req).await,
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            g.wait_verdict(&VerificationId("../x".into()), Instant::now())
                .await,
            Err(GatewayError::InvalidRequest(_))
        ));
        assert_eq!(g.metrics().send_sms.requests, 0);
    }

    /// Retries and the breaker against an address that refuses connections, with
    /// paused time so the backoff costs nothing.
    #[tokio::test(start_paused = true)]
    async fn retries_then_breaker_opens_and_fails_fast() {
        let mut c = radmfa("https://127.0.0.1:1");
        c.retries = 2;
        c.breaker.failure_threshold = 3;
        c.connect_timeout = Duration::from_secs(1);
        let g = Gateway::new(c).unwrap();
        let err = g
            .wait_verdict(
                &VerificationId("v1".into()),
                Instant::now() + Duration::from_secs(60),
            )
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        let m = g.metrics();
        assert_eq!(m.poll_verdict.requests, 3);
        assert_eq!(m.poll_verdict.retries, 2);
        assert_eq!(m.poll_verdict.errors, 3);
        assert_eq!(m.breaker_opened, 1);
        let err = g
            .wait_verdict(
                &VerificationId("v1".into()),
                Instant::now() + Duration::from_secs(60),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::Unavailable));
        assert_eq!(g.metrics().poll_verdict.breaker_open, 1);
        assert_eq!(g.metrics().poll_verdict.requests, 3);
    }
}
