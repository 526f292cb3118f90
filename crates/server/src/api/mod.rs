//! The admin HTTP API (the seed's Web Service SDK) over HTTPS: users,
//! clients, audit reports, stats, policies and cluster status under
//! `/api/v1`, plus `/healthz`, `/readyz` and Prometheus `/metrics`.
//!
//! * Every `/api/v1` request carries `Authorization: Bearer <token>`; a
//!   token (created with `radmfa token-admin create`) holds scopes, checked
//!   per route ([`auth::SCOPES`]). Missing or unknown token: 401; known token
//!   without the scope: 403.
//! * Every operation is an [`AdminRequest`] run through
//!   [`crate::control::dispatch`], the one entry point of admin work on a
//!   running node. Every write is logged with the token's name.
//! * Errors are `{"error":{"code":..,"message":..}}` with a stable code:
//!   `invalid_request` 400, `unauthorized` 401, `forbidden` 403,
//!   `not_found` 404, `conflict` 409, `read_only` 503, `internal` 500.
//! * `/metrics` needs `Authorization: Bearer <api.metrics_token>` when that
//!   is configured; without it, it is closed (403) unless
//!   `api.metrics_loopback = true` lets loopback clients scrape without a
//!   token (any local user can then read it).
//! * Every response, errors axum answers by itself included, carries the
//!   security headers ([`security_headers`]).
//! * User views never show a user's push device token (write-only).
//! * The routes and methods are listed in `docs/openapi.yaml`; a test keeps
//!   the two equal.

pub mod auth;
mod csv;
mod error;
mod headers;
mod import;
pub mod metrics;
pub mod tls;
mod when;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tracing::info;

pub use crate::config::ApiSettings;
pub use crate::https::Peer;
pub use auth::SCOPES;

use crate::https::HttpsOptions;

use crate::admin::{AdminError, AdminRequest, NewToken, UserChange, UserView};
use crate::pipeline::Node;
pub use error::{classify, ApiError};
use headers::security_headers;
use radmfa_store::{Method, TokenAlgorithm, TokenKind};

/// Largest page of users or audit records.
const MAX_PAGE: usize = 10_000;
/// How long the store sizes shown by `/metrics` are reused.
const SIZES_TTL: Duration = Duration::from_secs(60);

/// Shared state of the API handlers.
#[derive(Debug)]
pub struct ApiState {
    node: Arc<Node>,
    metrics_token: Option<crate::secret::SharedSecret>,
    metrics_loopback: bool,
    sizes: Mutex<Option<(Instant, metrics::StoreSizes)>>,
}

type St = Arc<ApiState>;

type ApiResult = Result<Response, ApiError>;

/// The token a request presented, once checked.
#[derive(Debug)]
struct Caller {
    name: String,
}

/// Checks the bearer token and its scope.
async fn authorize(st: &St, headers: &HeaderMap, scope: &str) -> Result<Caller, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| auth::bearer(v.as_bytes()))
        .ok_or_else(|| unauthorized("missing bearer token (Authorization: Bearer <token>)"))?
        .to_vec();
    let token = zeroize::Zeroizing::new(token);
    let store = st.node.store().clone();
    let found = tokio::task::spawn_blocking(move || store.authenticate_admin_token(&token))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| classify(&AdminError::Store(e)))?
        .ok_or_else(|| unauthorized("unknown or revoked token"))?;
    if !auth::grants(&found.scopes, scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("token {:?} lacks the scope {scope}", found.name),
        ));
    }
    Ok(Caller { name: found.name })
}

/// Runs a read through the admin service.
async fn read(st: &St, req: AdminRequest) -> Result<Value, ApiError> {
    crate::control::dispatch(&st.node, req)
        .await
        .map_err(|e| classify(&e))
}

/// Runs a read and takes its answer as the operation's result type.
async fn read_as<T: serde::de::DeserializeOwned>(
    st: &St,
    req: AdminRequest,
) -> Result<T, ApiError> {
    serde_json::from_value(read(st, req).await?)
        .map_err(|e| classify(&AdminError::Invalid(format!("unexpected answer: {e}"))))
}

/// Runs a write and logs it with the token's name (never the token).
async fn write(
    st: &St,
    caller: &Caller,
    op: &'static str,
    target: &str,
    req: AdminRequest,
) -> Result<Value, ApiError> {
    let actor = crate::admin::Actor::Api {
        token: caller.name.clone(),
    };
    let res = crate::control::dispatch_as(&st.node, actor, req).await;
    match &res {
        Ok(_) => info!(token = %caller.name, op, target, "admin api write done"),
        Err(e) => info!(token = %caller.name, op, target, error = %e, "admin api write refused"),
    }
    res.map_err(|e| classify(&e))
}

/// Authorizes `scope`, takes the name from the path, builds the request
/// for it (a body, if any, is read there, after the path) and runs it as
/// the write `op` on that name; 200 with the result.
async fn write_named(
    st: &St,
    headers: &HeaderMap,
    scope: &str,
    op: &'static str,
    name: Result<Path<String>, PathRejection>,
    req: impl FnOnce(String) -> Result<AdminRequest, ApiError>,
) -> ApiResult {
    let caller = authorize(st, headers, scope).await?;
    let name = path(name)?;
    let req = req(name.clone())?;
    ok(write(st, &caller, op, &name, req).await?)
}

/// Authorizes `scope`, reads the body and runs the request `req` makes of
/// it as the write `op` on the name `req` returns with it; 201 with the
/// result.
async fn create<T>(
    st: &St,
    headers: &HeaderMap,
    scope: &str,
    op: &'static str,
    b: Result<Json<T>, JsonRejection>,
    req: impl FnOnce(T) -> (String, AdminRequest),
) -> ApiResult {
    let caller = authorize(st, headers, scope).await?;
    let (name, req) = req(body(b)?);
    created(write(st, &caller, op, &name, req).await?)
}

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

fn created(v: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::invalid(format!("request body: {}", e.body_text())))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::invalid(format!("query: {}", e.body_text())))
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::invalid(format!("path: {}", e.body_text())))
}

// ---- users ------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn users_list(
    State(st): State<St>,
    headers: HeaderMap,
    q: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    authorize(&st, &headers, "users:read").await?;
    let q = query(q)?;
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let all: Vec<UserView> = read_as(&st, AdminRequest::UserList).await?;
    let total = all.len();
    let items: Vec<UserView> = all.into_iter().skip(offset).take(limit).collect();
    ok(json!({"items": items, "total": total, "offset": offset, "limit": limit}))
}

async fn user_get(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    authorize(&st, &headers, "users:read").await?;
    let name = path(name)?;
    ok(read(&st, AdminRequest::UserShow { name }).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
    language: Option<String>,
    #[serde(default = "default_method")]
    method: Method,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    device_token: String,
    #[serde(default)]
    pin: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    send_email: bool,
    #[serde(default)]
    generate_pin: bool,
}

fn default_method() -> Method {
    Method::Totp
}

fn yes() -> bool {
    true
}

async fn user_create(
    State(st): State<St>,
    headers: HeaderMap,
    b: Result<Json<NewUser>, JsonRejection>,
) -> ApiResult {
    create(
        &st,
        &headers,
        "users:write",
        "user_create",
        b,
        NewUser::into_request,
    )
    .await
}

impl NewUser {
    /// The name to log and the request that creates it.
    fn into_request(self) -> (String, AdminRequest) {
        let req = AdminRequest::UserAdd(crate::admin::NewUser {
            name: self.name.clone(),
            display_name: self.display_name,
            email: self.email,
            phone: self.phone,
            language: self.language.unwrap_or_default(),
            method: self.method,
            groups: self.groups,
            password: self.password,
            device_token: self.device_token,
            pin: self.pin,
            enabled: self.enabled,
            send_email: self.send_email,
            generate_pin: self.generate_pin,
        });
        (self.name, req)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    language: Option<String>,
    #[serde(default)]
    method: Option<Method>,
    #[serde(default)]
    device_token: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
}

async fn user_patch(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    b: Result<Json<UserPatch>, JsonRejection>,
) -> ApiResult {
    write_named(&st, &headers, "users:write", "user_update", name, |name| {
        let p = body(b)?;
        Ok(AdminRequest::UserSet(UserChange {
            name,
            display_name: p.display_name,
            email: p.email,
            phone: p.phone,
            language: p.language,
            method: p.method,
            device_token: p.device_token,
            groups: p.groups,
        }))
    })
    .await
}

async fn user_delete(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    write_named(&st, &headers, "users:write", "user_delete", name, |name| {
        Ok(AdminRequest::UserDelete { name })
    })
    .await
}

/// Enable and disable read the path before the token (as they always have),
/// so the name comes here already taken from it.
async fn set_enabled(st: St, headers: HeaderMap, name: String, enabled: bool) -> ApiResult {
    let op = if enabled {
        "user_enable"
    } else {
        "user_disable"
    };
    write_named(&st, &headers, "users:write", op, Ok(Path(name)), |name| {
        Ok(AdminRequest::UserSetEnabled { name, enabled })
    })
    .await
}

async fn user_enable(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    set_enabled(st, headers, path(name)?, true).await
}

async fn user_disable(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    set_enabled(st, headers, path(name)?, false).await
}

async fn user_unlock(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    write_named(&st, &headers, "users:write", "user_unlock", name, |name| {
        Ok(AdminRequest::UserUnlock { name })
    })
    .await
}

async fn user_devices(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    authorize(&st, &headers, "users:read").await?;
    let name = path(name)?;
    ok(read(&st, AdminRequest::UserDevices { name }).await?)
}

async fn user_device_delete(
    State(st): State<St>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let caller = authorize(&st, &headers, "users:write").await?;
    let (name, id) = path(p)?;
    let req = AdminRequest::UserDeviceRemove {
        name: name.clone(),
        id,
    };
    ok(write(&st, &caller, "user_device_remove", &name, req).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

async fn user_password(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    b: Result<Json<PasswordBody>, JsonRejection>,
) -> ApiResult {
    write_named(
        &st,
        &headers,
        "users:write",
        "user_password",
        name,
        |name| {
            let password = body(b)?.password;
            Ok(AdminRequest::UserPasswd { name, password })
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    pin: String,
}

async fn user_pin_set(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    b: Result<Json<PinBody>, JsonRejection>,
) -> ApiResult {
    write_named(&st, &headers, "users:write", "user_pin_set", name, |name| {
        let pin = Some(body(b)?.pin);
        Ok(AdminRequest::UserPin { name, pin })
    })
    .await
}

async fn user_pin_clear(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    write_named(
        &st,
        &headers,
        "users:write",
        "user_pin_clear",
        name,
        |name| Ok(AdminRequest::UserPin { name, pin: None }),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    #[serde(default = "default_kind", rename = "type")]
    kind: TokenKind,
    #[serde(default = "default_algorithm")]
    algorithm: TokenAlgorithm,
    #[serde(default)]
    digits: Option<u8>,
    #[serde(default = "default_period")]
    period: u64,
    #[serde(default)]
    secret: Option<String>,
}

fn default_kind() -> TokenKind {
    TokenKind::Totp
}

fn default_algorithm() -> TokenAlgorithm {
    TokenAlgorithm::Sha1
}

fn default_period() -> u64 {
    30
}

async fn user_enroll(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    b: Result<Json<EnrollBody>, JsonRejection>,
) -> ApiResult {
    let caller = authorize(&st, &headers, "users:write").await?;
    let name = path(name)?;
    let e = body(b)?;
    // Enrolling replaces a token; a missing user is a 404, not a new token.
    read(&st, AdminRequest::UserShow { name: name.clone() }).await?;
    let req = AdminRequest::TokenEnroll(NewToken {
        user: name.clone(),
        secret: e.secret,
        kind: e.kind,
        algorithm: e.algorithm,
        digits: e.digits.unwrap_or(st.node.config().otp_digits),
        period: e.period,
        replace: true,
    });
    created(write(&st, &caller, "token_enroll", &name, req).await?)
}

// ---- migration imports (bodies in import.rs) ----------------------------

async fn users_import(
    State(st): State<St>,
    headers: HeaderMap,
    q: Result<Query<import::ImportQuery>, QueryRejection>,
    csv: axum::body::Bytes,
) -> ApiResult {
    let caller = authorize(&st, &headers, "users:write").await?;
    let req = import::csv_request(&csv, query(q)?)?;
    ok(write(&st, &caller, "user_import", "csv", req).await?)
}

async fn tokens_import(
    State(st): State<St>,
    headers: HeaderMap,
    b: Result<Json<import::PskcBody>, JsonRejection>,
) -> ApiResult {
    let caller = authorize(&st, &headers, "users:write").await?;
    let b = body(b)?;
    let req = tokio::task::spawn_blocking(move || import::pskc_request(b))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    ok(write(&st, &caller, "token_import", "pskc", req).await?)
}

async fn tokens_list(
    State(st): State<St>,
    headers: HeaderMap,
    q: Result<Query<import::PoolQuery>, QueryRejection>,
) -> ApiResult {
    authorize(&st, &headers, "users:read").await?;
    let unassigned = query(q)?.unassigned;
    let items = read(&st, AdminRequest::TokenPoolList { unassigned }).await?;
    ok(json!({ "items": items }))
}

async fn token_assign(
    State(st): State<St>,
    headers: HeaderMap,
    serial: Result<Path<String>, PathRejection>,
    b: Result<Json<import::AssignBody>, JsonRejection>,
) -> ApiResult {
    write_named(
        &st,
        &headers,
        "users:write",
        "token_assign",
        serial,
        |serial| {
            let user = body(b)?.user;
            Ok(AdminRequest::TokenAssign { serial, user })
        },
    )
    .await
}

async fn token_revoke(
    State(st): State<St>,
    headers: HeaderMap,
    serial: Result<Path<String>, PathRejection>,
) -> ApiResult {
    write_named(
        &st,
        &headers,
        "users:write",
        "token_revoke",
        serial,
        |serial| Ok(AdminRequest::TokenRevoke { serial }),
    )
    .await
}

// ---- clients ----------------------------------------------------------

async fn clients_list(State(st): State<St>, headers: HeaderMap) -> ApiResult {
    authorize(&st, &headers, "clients:read").await?;
    let list = read(&st, AdminRequest::ClientList).await?;
    ok(json!({"items": list}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    name: String,
    address: String,
    secret: String,
    #[serde(default = "default_policy")]
    policy: String,
    #[serde(default = "yes")]
    require_message_authenticator: bool,
}

fn default_policy() -> String {
    "default".to_string()
}

async fn client_create(
    State(st): State<St>,
    headers: HeaderMap,
    b: Result<Json<NewClient>, JsonRejection>,
) -> ApiResult {
    create(
        &st,
        &headers,
        "clients:write",
        "client_create",
        b,
        NewClient::into_request,
    )
    .await
}

impl NewClient {
    /// The name to log and the request that creates it.
    fn into_request(self) -> (String, AdminRequest) {
        let req = AdminRequest::ClientAdd(crate::admin::NewClient {
            name: self.name.clone(),
            address: self.address,
            secret: self.secret,
            policy: self.policy,
            require_message_authenticator: self.require_message_authenticator,
            force: false,
        });
        (self.name, req)
    }
}

async fn client_delete(
    State(st): State<St>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    write_named(
        &st,
        &headers,
        "clients:write",
        "client_delete",
        name,
        |name| Ok(AdminRequest::ClientDelete { name }),
    )
    .await
}

// ---- reports, stats, policies, cluster ------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    format: Option<String>,
}

pub use when::parse_time;

pub use crate::admin::REPORT_FIELDS;
pub use csv::{records_csv, rows_csv, summary_csv};

async fn reports(
    State(st): State<St>,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult {
    authorize(&st, &headers, "reports:read").await?;
    let q = query(q)?;
    let (since_ms, until_ms) = time_range(q.from.as_deref(), q.to.as_deref())?;
    if let Some(r) = q.result.as_deref() {
        // `ok` and `failed`: admin actions.
        if !["accept", "reject", "challenge", "ok", "failed"].contains(&r) {
            return Err(ApiError::invalid(
                "result must be accept, reject, challenge, ok or failed",
            ));
        }
    }
    let (limit, csv) = page_and_format(q.limit, q.format.as_deref())?;
    let report: crate::admin::AuditReport = read_as(
        &st,
        AdminRequest::Report {
            user: q.user,
            result: q.result,
            since_ms,
            limit: Some(limit),
            until_ms,
            method: q.method,
            client: q.client,
            sign_ins_only: false,
        },
    )
    .await?;
    let note = report.note.clone().unwrap_or_default();
    if csv {
        let recs: Vec<Value> = report
            .records
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect();
        return Ok(csv_response(records_csv(&recs), report.complete, &note));
    }
    ok(json!({
        "count": report.records.len(),
        "items": report.records,
        "complete": report.complete,
        "answered_by": report.answered_by,
        "note": report.note,
    }))
}

/// The `from` and `to` parameters in unix ms.
fn time_range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<u64>, Option<u64>), ApiError> {
    let parse = |name, v: Option<&str>| v.map(|s| parse_time(name, s)).transpose();
    Ok((
        parse("from", from).map_err(ApiError::invalid)?,
        parse("to", to).map_err(ApiError::invalid)?,
    ))
}

/// The `format` parameter: true for CSV.
fn csv_format(format: Option<&str>) -> Result<bool, ApiError> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "format must be json or csv, not {other:?}"
        ))),
    }
}

/// A CSV body; when the report is incomplete the header
/// `X-Radmfa-Incomplete` says why.
fn csv_response(body: String, complete: bool, note: &str) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
    if !complete {
        if let Ok(v) = header::HeaderValue::from_str(note) {
            resp.headers_mut().insert("x-radmfa-incomplete", v);
        }
    }
    resp
}

#[derive(Deserialize)]
struct SummaryQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    top: Option<usize>,
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/v1/reports/summary`: the aggregated report.
async fn reports_summary(
    State(st): State<St>,
    headers: HeaderMap,
    q: Result<Query<SummaryQuery>, QueryRejection>,
) -> ApiResult {
    use crate::admin::summary::{AuditSummary, Bucket};
    authorize(&st, &headers, "reports:read").await?;
    let q = query(q)?;
    let (since_ms, until_ms) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let bucket = match q.bucket.as_deref() {
        None | Some("day") => Bucket::Day,
        Some("hour") => Bucket::Hour,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "bucket must be hour or day, not {other:?}"
            )))
        }
    };
    let top = q.top.unwrap_or(10);
    if !(1..=MAX_PAGE).contains(&top) {
        return Err(ApiError::invalid(format!(
            "top must be between 1 and {MAX_PAGE}"
        )));
    }
    let csv = csv_format(q.format.as_deref())?;
    let summary: AuditSummary = read_as(
        &st,
        AdminRequest::ReportSummary {
            since_ms,
            until_ms,
            bucket,
            top: Some(top),
        },
    )
    .await?;
    if csv {
        let note = summary.note.clone().unwrap_or_default();
        return Ok(csv_response(summary_csv(&summary), summary.complete, &note));
    }
    ok(serde_json::to_value(summary).unwrap_or_default())
}

/// A report's `limit` (default 1000, at most [`MAX_PAGE`]) and whether
/// `format` asks for CSV.
fn page_and_format(limit: Option<usize>, format: Option<&str>) -> Result<(usize, bool), ApiError> {
    let limit = limit.unwrap_or(1000);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let csv = match format {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format must be json or csv, not {other:?}"
            )))
        }
    };
    Ok((limit, csv))
}

/// `GET /api/v1/reports/accounting`: the stored Accounting-Requests, with
/// the filters of `/api/v1/reports` that apply (user, from, to, client,
/// limit, format).
async fn accounting_report(
    State(st): State<St>,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult {
    authorize(&st, &headers, "reports:read").await?;
    let q = query(q)?;
    if q.result.is_some() || q.method.is_some() {
        return Err(ApiError::invalid(
            "result and method do not apply to accounting records",
        ));
    }
    let time = |name: &str, v: Option<&str>| v.map(|s| parse_time(name, s)).transpose();
    let since_ms = time("from", q.from.as_deref()).map_err(ApiError::invalid)?;
    let until_ms = time("to", q.to.as_deref()).map_err(ApiError::invalid)?;
    let (limit, csv) = page_and_format(q.limit, q.format.as_deref())?;
    let rows: Vec<Value> = read_as(
        &st,
        AdminRequest::AccountingReport {
            user: q.user,
            since_ms,
            until_ms,
            limit: Some(limit),
            client: q.client,
        },
    )
    .await?;
    if csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            rows_csv(crate::admin::ACCOUNTING_FIELDS, &rows),
        )
            .into_response());
    }
    ok(json!({"count": rows.len(), "items": rows}))
}
async fn stats(State(st): State<St>, headers: HeaderMap) -> ApiResult {
    authorize(&st, &headers, "cluster:read").await?;
    ok(read(&st, AdminRequest::Stats).await?)
}

fn policy_view(p: &crate::config::Policy) -> Value {
    use crate::config::{FailMode, FirstFactor, OtpMode, Unenrolled};
    json!({
        "name": p.name,
        "first_factor": match p.first_factor {
            FirstFactor::Local => "local",
            FirstFactor::None => "none",
            FirstFactor::Radius => "radius",
            FirstFactor::Ldap => "ldap",
        },
        "otp_mode": match p.otp_mode {
            OtpMode::Inline => "inline",
            OtpMode::Challenge => "challenge",
            OtpMode::Auto => "auto",
        },
        "unenrolled": match p.unenrolled {
            Unenrolled::Reject => "reject",
            Unenrolled::Accept => "accept",
        },
        "fail_mode": match p.fail_mode {
            FailMode::Closed => "closed",
            FailMode::TotpOnly => "totp_only",
            FailMode::Open => "open",
        },
        "challenge_prompt": p.challenge_prompt,
        "upstream": p.upstream,
        "mfa_bypass_groups": p.mfa_bypass_groups,
        "mfa_groups": p.mfa_groups,
    })
}

async fn policies(State(st): State<St>, headers: HeaderMap) -> ApiResult {
    authorize(&st, &headers, "clients:read").await?;
    let cfg = st.node.config();
    let mut list: Vec<&crate::config::Policy> = cfg.policies.values().collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    ok(json!({"items": list.into_iter().map(policy_view).collect::<Vec<_>>()}))
}

async fn cluster(State(st): State<St>, headers: HeaderMap) -> ApiResult {
    authorize(&st, &headers, "cluster:read").await?;
    let stats = read(&st, AdminRequest::Stats).await?;
    let replication = read(&st, AdminRequest::ReplStatus).await?;
    let config = read(&st, AdminRequest::ConfigStatus).await?;
    let cfg = st.node.config();
    let (role, epoch) = st.node.store().repl_state();
    let role = match role {
        radmfa_store::repl::Role::Primary => "primary",
        _ => "replica",
    };
    ok(json!({
        "node": {"name": cfg.node_name, "id": cfg.node_id},
        "role": role,
        "epoch": epoch,
        "peers": cfg.cluster.as_ref().map_or(Vec::new(), |c| {
            c.peers.iter().map(|(id, addr)| json!({"id": id, "address": addr.to_string()})).collect()
        }),
        "replication": replication,
        "config": config,
        "stats": stats,
    }))
}

// ---- health and metrics --------------------------------------------------

async fn healthz() -> ApiResult {
    ok(json!({"status": "ok"}))
}

async fn readyz(State(st): State<St>) -> ApiResult {
    let store = st.node.store().clone();
    let res = tokio::task::spawn_blocking(move || store.list_admin_tokens().map(|_| ())).await;
    match res {
        Ok(Ok(())) => ok(json!({"status": "ready"})),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("store: {e}"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            e.to_string(),
        )),
    }
}

async fn metrics_handler(
    State(st): State<St>,
    headers: HeaderMap,
    peer: Option<Extension<Peer>>,
) -> ApiResult {
    match &st.metrics_token {
        Some(expected) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| auth::bearer(v.as_bytes()))
                .unwrap_or(b"");
            if !bool::from(presented.ct_eq(expected.expose())) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "/metrics needs Authorization: Bearer <api.metrics_token>",
                ));
            }
        }
        None => {
            let loopback = peer.is_some_and(|Extension(Peer(a))| a.ip().is_loopback());
            if !(st.metrics_loopback && loopback) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "/metrics is closed: set api.metrics_token (or api.metrics_loopback = true to let loopback clients scrape without a token)",
                ));
            }
        }
    }
    let sizes = store_sizes(&st).await;
    let text = metrics::render(&st.node, sizes);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn store_sizes(st: &St) -> metrics::StoreSizes {
    let cached = *st.sizes.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, sizes)) = cached {
        if at.elapsed() < SIZES_TTL {
            return sizes;
        }
    }
    let store = st.node.store().clone();
    let sizes = tokio::task::spawn_blocking(move || metrics::StoreSizes {
        users: store.user_count() as u64,
        tokens: store.token_count() as u64,
        admin_tokens: store.list_admin_tokens().map_or(0, |l| l.len() as u64),
    })
    .await
    .unwrap_or_default();
    *st.sizes.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), sizes));
    sizes
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

// ---- router ------------------------------------------------------------

/// Builds the router while recording each (method, path), so that a test can
/// compare it with `docs/openapi.yaml`.
struct Routes {
    router: Router<St>,
    table: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn add<H, T>(mut self, method: &'static str, path: &'static str, h: H) -> Routes
    where
        H: Handler<T, St>,
        T: 'static,
    {
        let filter = match method {
            "get" => MethodFilter::GET,
            "post" => MethodFilter::POST,
            "put" => MethodFilter::PUT,
            "patch" => MethodFilter::PATCH,
            _ => MethodFilter::DELETE,
        };
        self.router = self.router.route(path, on(filter, h));
        self.table.push((method, path));
        self
    }
}

fn routes() -> Routes {
    Routes {
        router: Router::new(),
        table: Vec::new(),
    }
    .add("get", "/healthz", healthz)
    .add("get", "/readyz", readyz)
    .add("get", "/metrics", metrics_handler)
    .add("get", "/api/v1/users", users_list)
    .add("post", "/api/v1/users", user_create)
    .add("post", "/api/v1/users/import", users_import)
    .add("get", "/api/v1/users/{name}", user_get)
    .add("patch", "/api/v1/users/{name}", user_patch)
    .add("delete", "/api/v1/users/{name}", user_delete)
    .add("post", "/api/v1/users/{name}/enable", user_enable)
    .add("post", "/api/v1/users/{name}/disable", user_disable)
    .add("post", "/api/v1/users/{name}/unlock", user_unlock)
    .add("put", "/api/v1/users/{name}/password", user_password)
    .add("put", "/api/v1/users/{name}/pin", user_pin_set)
    .add("delete", "/api/v1/users/{name}/pin", user_pin_clear)
    .add("post", "/api/v1/users/{name}/token", user_enroll)
    .add("get", "/api/v1/users/{name}/devices", user_devices)
    .add(
        "delete",
        "/api/v1/users/{name}/devices/{id}",
        user_device_delete,
    )
    .add("get", "/api/v1/tokens", tokens_list)
    .add("post", "/api/v1/tokens/import", tokens_import)
    .add("post", "/api/v1/tokens/{serial}/assign", token_assign)
    .add("delete", "/api/v1/tokens/{serial}", token_revoke)
    .add("get", "/api/v1/clients", clients_list)
    .add("post", "/api/v1/clients", client_create)
    .add("delete", "/api/v1/clients/{name}", client_delete)
    .add("get", "/api/v1/reports", reports)
    .add("get", "/api/v1/reports/accounting", accounting_report)
    .add("get", "/api/v1/reports/summary", reports_summary)
    .add("get", "/api/v1/stats", stats)
    .add("get", "/api/v1/policies", policies)
    .add("get", "/api/v1/cluster", cluster)
}

/// The API router over `node`.
pub fn router(node: Arc<Node>, settings: &ApiSettings) -> Router {
    let state = Arc::new(ApiState {
        node,
        metrics_token: settings.metrics_token.clone(),
        metrics_loopback: settings.metrics_loopback,
        sizes: Mutex::new(None),
    });
    routes()
        .router
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// How the API is served ([`crate::https::serve`]).
pub const HTTPS: HttpsOptions = HttpsOptions {
    service: "admin api",
    max_connections: 256,
    drain: Duration::from_secs(5),
};

#[cfg(test)]
mod tests;
