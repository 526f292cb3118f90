//! The simulator's HTTP routes and state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use radmfa_gateway::wire::{
    ErrorBody, SmsAccepted, SmsBody, VerificationBody, VerificationCreated, VerificationStatus,
    IDEMPOTENCY_HEADER, MAX_WAIT_SECS,
};
use radmfa_gateway::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::rules::{Outcome, Rule};

/// Messages kept in memory; older ones are dropped.
const MAX_RECORDS: usize = 10_000;

/// Credentials and the default rule.
#[derive(Debug)]
pub struct SimConfig {
    /// Bearer key of the radmfa protocol and the `/sim` endpoints.
    pub api_key: Secret,
    /// Twilio account SID and auth token; `None` disables the Twilio endpoints.
    pub twilio: Option<(String, Secret)>,
    /// Rule for users without a rule of their own.
    pub default_rule: Rule,
}

/// A request the simulator received and "sent".
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Order of arrival.
    pub seq: u64,
    /// `sms`, `verification`, `twilio_sms` or `twilio_call`.
    pub kind: &'static str,
    /// Message / verification / call id given back.
    pub id: String,
    /// Recipient (phone or device token).
    pub to: Option<String>,
    /// SMS text.
    pub body: Option<String>,
    /// The request as received (JSON body, or the form fields as an object).
    pub request: Value,
}

#[derive(Debug)]
struct Verification {
    started: Instant,
    rule: Rule,
    /// The PIN of a PIN-mode verification (kept only in memory).
    pin: Option<Secret>,
}

#[derive(Debug, Default)]
struct Inner {
    records: Vec<Record>,
    verifications: HashMap<String, Verification>,
    /// Idempotency key -> (request body, status, response body).
    idempotency: HashMap<String, (Value, StatusCode, Value)>,
    rules: HashMap<String, Rule>,
}

/// Shared simulator state.
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    seq: AtomicU64,
    /// Artificial latency of the gateway and Twilio endpoints, in milliseconds.
    latency_ms: AtomicU64,
    inner: Mutex<Inner>,
}

type Shared = Arc<Sim>;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            code: code.into(),
            message: message.into(),
        }),
    )
        .into_response()
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message, "status": status.as_u16()})),
    )
        .into_response()
}

impl Sim {
    /// New state.
    pub fn new(config: SimConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            seq: AtomicU64::new(1),
            latency_ms: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits the configured artificial latency (`POST /sim/latency`).
    async fn delay(&self) {
        let ms = self.latency_ms.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|key| self.config.api_key.matches(key.as_bytes()))
    }

    fn basic_ok(&self, headers: &HeaderMap, path_sid: &str) -> bool {
        let Some((sid, token)) = &self.config.twilio else {
            return false;
        };
        let Some(decoded) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        let (user, pass) = decoded.split_at(colon);
        let pass = pass.get(1..).unwrap_or_default();
        user == sid.as_bytes() && path_sid == sid && token.matches(pass)
    }

    fn rule_for(&self, inner: &Inner, keys: &[Option<&str>]) -> Rule {
        keys.iter()
            .flatten()
            .find_map(|k| inner.rules.get(*k).cloned())
            .unwrap_or_else(|| self.config.default_rule.clone())
    }

    fn record(inner: &mut Inner, record: Record) {
        if inner.records.len() >= MAX_RECORDS {
            inner.records.remove(0);
        }
        // Bound the memory of a long-running simulator: forget old state wholesale.
        if inner.idempotency.len() >= MAX_RECORDS * 10 {
            inner.idempotency.clear();
        }
        if inner.verifications.len() >= MAX_RECORDS * 10 {
            inner.verifications.clear();
        }
        inner.records.push(record);
    }

    // An error here is the HTTP answer itself, returned at once; boxing buys nothing.
    #[allow(clippy::result_large_err)]
    /// Checks the idempotency key of a radmfa POST. `Ok(None)`: new request;
    /// `Ok(Some(response))`: replay; `Err`: error response.
    fn idempotency(
        &self,
        headers: &HeaderMap,
        id: &str,
        raw: &Value,
    ) -> Result<Option<Response>, Response> {
        let key = headers
            .get(IDEMPOTENCY_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "missing Idempotency-Key header",
                )
            })?;
        if key != id {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Idempotency-Key must equal the id field",
            ));
        }
        match self.lock().idempotency.get(key) {
            None => Ok(None),
            Some((body, status, response)) if body == raw => {
                Ok(Some((*status, Json(response.clone())).into_response()))
            }
            Some(_) => Err(error(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "this Idempotency-Key was used with a different body",
            )),
        }
    }
}

// The error is the HTTP answer itself, returned at once; boxing buys nothing.
#[allow(clippy::result_large_err)]
fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<(Value, T), Response> {
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    let typed: T = serde_json::from_value(raw.clone())
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    Ok((raw, typed))
}

fn is_e164(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

async fn post_sms(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    sim.delay().await;
    if !sim.bearer_ok(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "bad API key");
    }
    let (raw, sms) = match parse_json::<SmsBody>(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match sim.idempotency(&headers, &sms.id, &raw) {
        Ok(Some(replay)) => return replay,
        Ok(None) => {}
        Err(r) => return r,
    }
    if !is_e164(&sms.to) || sms.body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "to must be E.164 and body non-empty",
        );
    }
    let message_id = format!("msg-{}", sim.next());
    let response = serde_json::to_value(SmsAccepted {
        message_id: message_id.clone(),
    })
    .unwrap_or_default();
    let mut inner = sim.lock();
    let seq = sim.next();
    Sim::record(
        &mut inner,
        Record {
            seq,
            kind: "sms",
            id: message_id,
            to: Some(sms.to),
            body: Some(sms.body),
            request: raw.clone(),
        },
    );
    inner
        .idempotency
        .insert(sms.id, (raw, StatusCode::ACCEPTED, response.clone()));
    (StatusCode::ACCEPTED, Json(response)).into_response()
}

async fn post_verification(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    sim.delay().await;
    if !sim.bearer_ok(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "bad API key");
    }
    let (raw, v) = match parse_json::<VerificationBody>(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match sim.idempotency(&headers, &v.id, &raw) {
        Ok(Some(replay)) => return replay,
        Ok(None) => {}
        Err(r) => return r,
    }
    let to = match v.mode.as_str() {
        "two_way_sms" | "call" => v.phone.clone().filter(|p| is_e164(p)),
        "push" => v.device_token.clone().filter(|t| !t.is_empty()),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "mode must be two_way_sms, call or push",
            )
        }
    };
    let Some(to) = to else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "phone (E.164) or device_token missing for this mode",
        );
    };
    if !matches!(v.pin_mode.as_str(), "standard" | "pin")
        || (v.pin_mode == "pin") != v.pin.is_some()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "pin_mode must be standard, or pin with a pin",
        );
    }
    let verification_id = format!("ver-{}", sim.next());
    let response = serde_json::to_value(VerificationCreated {
        verification_id: verification_id.clone(),
    })
    .unwrap_or_default();
    let mut inner = sim.lock();
    let rule = sim.rule_for(
        &inner,
        &[
            v.phone.as_deref(),
            v.device_token.as_deref(),
            Some(v.unique_id.as_str()),
        ],
    );
    inner.verifications.insert(
        verification_id.clone(),
        Verification {
            started: Instant::now(),
            rule,
            pin: v.pin.clone().map(Secret::new),
        },
    );
    // The PIN is not kept in the record.
    let mut recorded = raw.clone();
    if let Some(obj) = recorded.as_object_mut() {
        if obj.contains_key("pin") {
            obj.insert("pin".into(), Value::String("***".into()));
        }
    }
    let seq = sim.next();
    Sim::record(
        &mut inner,
        Record {
            seq,
            kind: "verification",
            id: verification_id,
            to: Some(to),
            body: None,
            request: recorded,
        },
    );
    inner
        .idempotency
        .insert(v.id, (raw, StatusCode::CREATED, response.clone()));
    (StatusCode::CREATED, Json(response)).into_response()
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    #[serde(default)]
    wait: Option<u64>,
}

impl Sim {
    fn outcome(&self, id: &str) -> Option<Outcome> {
        self.lock().verifications.get(id).map(|v| {
            v.rule.outcome(
                v.started.elapsed(),
                v.pin.as_ref().map(|p| p.expose().as_bytes()),
            )
        })
    }
}

async fn get_verification(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
) -> Response {
    sim.delay().await;
    if !sim.bearer_ok(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "bad API key");
    }
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let until = Instant::now() + wait;
    loop {
        let Some(outcome) = sim.outcome(&id) else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such verification");
        };
        if outcome != Outcome::Pending || Instant::now() >= until {
            return Json(VerificationStatus {
                verification_id: id,
                status: outcome.as_str().into(),
            })
            .into_response();
        }
        tokio::time::sleep(
            Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}

fn parse_form(body: &Bytes) -> Option<HashMap<String, String>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    Some(pairs.into_iter().collect())
}

fn form_value(form: &HashMap<String, String>) -> Value {
    Value::Object(
        form.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

async fn twilio_messages(
    State(sim): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.delay().await;
    if !sim.basic_ok(&headers, &sid) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let Some(form) = parse_form(&body) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21600, "Malformed form body");
    };
    let (Some(to), Some(from), Some(text)) = (form.get("To"), form.get("From"), form.get("Body"))
    else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "To, From and Body are required",
        );
    };
    if !is_e164(to) {
        return twilio_error(StatusCode::BAD_REQUEST, 21211, "Invalid 'To' Phone Number");
    }
    let msid = format!("SM{:032x}", sim.next());
    let response = json!({
        "sid": msid, "account_sid": sid, "to": to, "from": from, "body": text,
        "status": "queued", "direction": "outbound-api",
    });
    let record = Record {
        seq: sim.next(),
        kind: "twilio_sms",
        id: msid,
        to: Some(to.clone()),
        body: Some(text.clone()),
        request: form_value(&form),
    };
    Sim::record(&mut sim.lock(), record);
    (StatusCode::CREATED, Json(response)).into_response()
}

async fn twilio_calls(
    State(sim): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.delay().await;
    if !sim.basic_ok(&headers, &sid) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let Some(form) = parse_form(&body) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21600, "Malformed form body");
    };
    let (Some(to), Some(from)) = (form.get("To"), form.get("From")) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21201, "To and From are required");
    };
    if !form.contains_key("Twiml") && !form.contains_key("Url") {
        return twilio_error(StatusCode::BAD_REQUEST, 21205, "Twiml or Url is required");
    }
    if !is_e164(to) {
        return twilio_error(StatusCode::BAD_REQUEST, 21211, "Invalid 'To' Phone Number");
    }
    let csid = format!("CA{:032x}", sim.next());
    let response = json!({
        "sid": csid, "account_sid": sid, "to": to, "from": from, "status": "queued",
    });
    let mut inner = sim.lock();
    let rule = sim.rule_for(&inner, &[Some(to.as_str())]);
    inner.verifications.insert(
        csid.clone(),
        Verification {
            started: Instant::now(),
            rule,
            // Twilio never sees the PIN: the call's <Gather> result is judged
            // by the rule alone.
            pin: None,
        },
    );
    let seq = sim.next();
    Sim::record(
        &mut inner,
        Record {
            seq,
            kind: "twilio_call",
            id: csid,
            to: Some(to.clone()),
            body: None,
            request: form_value(&form),
        },
    );
    (StatusCode::CREATED, Json(response)).into_response()
}

async fn twilio_call_status(
    State(sim): State<Shared>,
    Path((sid, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    sim.delay().await;
    if !sim.basic_ok(&headers, &sid) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let Some(outcome) = file
        .strip_suffix(".json")
        .and_then(|csid| sim.outcome(csid))
    else {
        return twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    };
    let csid = file.trim_end_matches(".json");
    let (status, verdict) = match outcome {
        Outcome::Pending => ("in-progress", None),
        Outcome::TimedOut => ("no-answer", None),
        Outcome::Approved => ("completed", Some("approved")),
        Outcome::Denied => ("completed", Some("denied")),
        Outcome::Fraud => ("completed", Some("fraud")),
    };
    let mut body = json!({"sid": csid, "account_sid": sid, "status": status});
    if let (Some(v), Some(obj)) = (verdict, body.as_object_mut()) {
        obj.insert("radmfa_verdict".into(), Value::String(v.into()));
    }
    Json(body).into_response()
}

#[derive(Debug, Deserialize)]
struct MessagesQuery {
    #[serde(default)]
    to: Option<String>,
}

async fn sim_messages(
    State(sim): State<Shared>,
    Query(q): Query<MessagesQuery>,
    headers: HeaderMap,
) -> Response {
    if !sim.bearer_ok(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "bad API key");
    }
    let records: Vec<Record> = sim
        .lock()
        .records
        .iter()
        .filter(|r| q.to.is_none() || r.to == q.to)
        .cloned()
        .collect();
    Json(records).into_response()
}

#[derive(Debug, Deserialize)]
struct RuleBody {
    key: String,
    rule: String,
}

async fn sim_rules(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !sim.bearer_ok(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "bad API key");
    }
    let (_, r) = match parse_json::<RuleBody>(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let rule: Rule = match r.rule.parse() {
        Ok(rule) => rule,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    sim.lock().rules.insert(r.key, rule);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct LatencyBody {
    ms: u64,
}

async fn sim_latency(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !sim.bearer_ok(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "bad API key");
    }
    match parse_json::<LatencyBody>(&body) {
        Ok((_, l)) => {
            sim.latency_ms.store(l.ms.min(120_000), Ordering::Relaxed);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

/// `GET /v1/health`: the gateway is up and the key is right.
async fn health(State(sim): State<Shared>, headers: HeaderMap) -> Response {
    sim.delay().await;
    if !sim.bearer_ok(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "bad API key");
    }
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Twilio's account resource: `GET /2010-04-01/Accounts/{sid}.json`.
async fn twilio_account(
    State(sim): State<Shared>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    sim.delay().await;
    let sid = file.strip_suffix(".json").unwrap_or_default();
    if !sim.basic_ok(&headers, sid) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    Json(serde_json::json!({"sid": sid, "status": "active"})).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The router of the simulator.
pub fn router(sim: Shared) -> Router {
    Router::new()
        .route("/v1/sms", post(post_sms))
        .route("/v1/verifications", post(post_verification))
        .route("/v1/verifications/{id}", get(get_verification))
        .route("/v1/health", get(health))
        .route("/2010-04-01/Accounts/{file}", get(twilio_account))
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(twilio_messages),
        )
        .route("/2010-04-01/Accounts/{sid}/Calls.json", post(twilio_calls))
        .route(
            "/2010-04-01/Accounts/{sid}/Calls/{file}",
            get(twilio_call_status),
        )
        .route("/sim/messages", get(sim_messages))
        .route("/sim/rules", post(sim_rules))
        .route("/sim/latency", post(sim_latency))
        .route("/sim/health", get(|| async { "ok" }))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(sim)
}
