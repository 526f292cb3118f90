//! The user self-service portal (the seed's "User Portal"): users sign in
//! with their first and second factor, set up an authenticator app, set and
//! verify their phone number, choose their method, change their PIN, see
//! their recent sign-ins and report one that was not theirs.
//!
//! Served over HTTPS by every node. Sessions are stateless sealed cookies
//! (see [`session`]), so a balancer without stickiness works. Plain HTML
//! forms, no JavaScript. Every write goes through
//! [`crate::control::dispatch`], like any other admin request.

mod codes;
pub mod config;
mod html;
mod i18n;
mod pin;
mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use governor::{Quota, RateLimiter};
use radmfa_otp::Clock;
use radmfa_store::{Method, TokenAlgorithm, TokenKind};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::admin::{AdminError, AdminRequest};
use crate::hot::CachedUser;
use crate::limits::LockKind;
use crate::pipeline::{Node, PortalFirstFactor};

pub use crate::https::load_tls;
pub use config::{PortalSection, PortalSettings};
pub use session::CookieKeys;

use crate::https::Peer;
use codes::{CodeAttempts, Verdict};
use html::{alert, csrf_field, esc, notice, page, Chrome};
use i18n::{Lang, Msg};
use session::{SentCode, Session, Stage};

/// How long the second-factor step may take after the first factor.
const SECOND_FACTOR_SECS: u64 = 5 * 60;
/// TOTP period of tokens set up in the portal.
const PERIOD: u64 = 30;
/// Largest request body (forms are small).
const MAX_BODY: usize = 16 * 1024;
/// How long after confirming the current second factor the user may
/// replace their authenticator app or phone number.
const CONFIRM_SECS: u64 = 10 * 60;

type Keyed<K> = RateLimiter<
    K,
    governor::state::keyed::DefaultKeyedStateStore<K>,
    governor::clock::DefaultClock,
>;

/// Constant-time equality of two byte strings (lengths may differ).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Everything the handlers share.
struct Portal {
    node: Arc<Node>,
    settings: PortalSettings,
    keys: CookieKeys,
    per_ip: Keyed<IpAddr>,
    per_user: Keyed<String>,
    /// Answers to the codes sent by text message, counted on this node.
    codes: CodeAttempts,
    /// The node's clock: session, code and confirmation expiries.
    clock: Arc<dyn Clock>,
}

/// Checks the TLS files `[portal]` names (`radmfa check-config`).
pub fn check(settings: &PortalSettings) -> Result<(), String> {
    load_tls(&settings.cert, &settings.key)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// How the portal is served ([`crate::https::serve`]): browsers keep a few
/// connections open each.
const HTTPS: crate::https::HttpsOptions = crate::https::HttpsOptions {
    service: "portal",
    max_connections: 1024,
    drain: std::time::Duration::from_secs(10),
};

/// Serves the portal on an already-bound listener until `shutdown`, then lets
/// requests in flight finish (at most 10 seconds).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    node: Arc<Node>,
    keys: CookieKeys,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    let Some(settings) = node.config().portal.clone() else {
        return;
    };
    let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
    let portal = Arc::new(Portal {
        per_ip: RateLimiter::keyed(quota(settings.signin_per_minute_per_ip)),
        per_user: RateLimiter::keyed(quota(settings.signin_per_minute_per_user)),
        codes: CodeAttempts::new(node.limits().settings().max_tracked_keys),
        settings,
        keys,
        node,
        clock,
    });
    let local = listener.local_addr().ok();
    info!(listen = ?local, "portal listening (https)");
    let cleaner = {
        let p = portal.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                }
                p.per_ip.retain_recent();
                p.per_user.retain_recent();
                p.per_ip.shrink_to_fit();
                p.per_user.shrink_to_fit();
                p.codes.prune(p.clock.now_unix());
            }
        })
    };
    crate::https::serve(listener, tls, router(portal), HTTPS, shutdown).await;
    cleaner.abort();
}

fn router(portal: Arc<Portal>) -> Router {
    Router::new()
        .route("/", get(|| async { redirect("/home", None) }))
        .route("/portal.css", get(css))
        .route("/signin", get(signin_page).post(signin))
        .route("/verify", get(verify_page).post(verify))
        .route("/confirm", get(confirm_page).post(confirm))
        .route("/home", get(home))
        .route("/enroll", get(enroll_page).post(enroll))
        .route("/phone", get(phone_page).post(phone_send))
        .route("/phone/verify", post(phone_verify))
        .route("/method", get(method_page).post(method_set))
        .route("/pin", get(pin_page).post(pin_set))
        .route("/not-me", post(not_me))
        .route("/signout", post(signout))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Also on what axum answers by itself (405, 413, 415).
        .layer(axum::middleware::map_response(|r: Response| async move {
            secure(r, None)
        }))
        .with_state(portal)
}

// ---------------------------------------------------------------- responses

/// Headers every portal response carries.
fn secure(mut r: Response, cookie: Option<String>) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not "no-referrer": Chromium then sends `Origin: null` with form posts.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.append(header::SET_COOKIE, c);
    }
    r
}

fn html_response(status: StatusCode, body: String, cookie: Option<String>) -> Response {
    let r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    secure(r, cookie)
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response {
    let r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    secure(r, cookie)
}

async fn css() -> Response {
    let r = (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        html::CSS,
    )
        .into_response();
    secure(r, None)
}

async fn not_found(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let lang = p.lang_of(&headers, None);
    let body = page(
        &Chrome {
            lang,
            signed_in_csrf: None,
            lang_switch: None,
        },
        Msg::NotFound,
        "<p><a href=\"/home\">/home</a></p>",
    );
    html_response(StatusCode::NOT_FOUND, body, None)
}

// ---------------------------------------------------------------- sessions

/// A signed-in request: the session and the user as the store has them now.
struct SignedIn {
    s: Session,
    user: Arc<CachedUser>,
}

impl SignedIn {
    fn name(&self) -> &str {
        &self.user.user.name
    }
    fn lang(&self) -> Lang {
        Lang::parse(&self.s.lang).unwrap_or(Lang::En)
    }
}

impl Portal {
    fn session(&self, headers: &HeaderMap, now: u64) -> Option<Session> {
        let h = headers.get(header::COOKIE)?.to_str().ok()?;
        self.keys.open(session::cookie_value(h)?, now)
    }

    fn cookie(&self, s: &Session, now: u64) -> Option<String> {
        Some(session::set_cookie(
            &self.keys.seal(s),
            s.exp.saturating_sub(now),
        ))
    }

    fn lang_of(&self, headers: &HeaderMap, s: Option<&Session>) -> Lang {
        s.and_then(|s| Lang::parse(&s.lang))
            .or_else(|| {
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Lang::from_accept)
            })
            .unwrap_or(Lang::En)
    }

    /// Back to the sign-in page with a one-shot notice.
    fn to_signin(&self, lang: Lang, msg: Msg, now: u64) -> Response {
        let mut s = Session::anonymous(now, lang.code());
        s.notice = Some(msg.id().to_string());
        redirect("/signin", self.cookie(&s, now))
    }

    /// The signed-in session and its user, or the response that sends the
    /// visitor elsewhere (sign-in page; PIN page when a PIN change is due
    /// and `pin_page` is false).
    fn signed_in(
        &self,
        headers: &HeaderMap,
        now: u64,
        pin_page: bool,
    ) -> Result<SignedIn, Box<Response>> {
        let Some(s) = self.session(headers, now) else {
            return Err(Box::new(redirect("/signin", None)));
        };
        let lang = self.lang_of(headers, Some(&s));
        let Some(name) = s.signed_in().map(str::to_string) else {
            return Err(Box::new(redirect("/signin", None)));
        };
        let user = match self.node.portal_user(&name) {
            Ok(Some(u)) => u,
            Ok(None) => return Err(Box::new(self.to_signin(lang, Msg::SessionEnded, now))),
            Err(_) => {
                return Err(Box::new(message_page(
                    lang,
                    Msg::TryAgain,
                    StatusCode::SERVICE_UNAVAILABLE,
                )))
            }
        };
        if !user.user.enabled {
            return Err(Box::new(self.to_signin(lang, Msg::AccountDisabled, now)));
        }
        if let Some(k) = self.node.portal_lock(&name) {
            return Err(Box::new(self.to_signin(lang, lock_msg(k), now)));
        }
        if !pin_page && user.user.pin_change_required && user.user.pin.is_some() {
            return Err(Box::new(redirect("/pin", None)));
        }
        Ok(SignedIn { s, user })
    }

    /// [`Portal::signed_in`] for a form post, whose Origin and CSRF token
    /// must check out as well ([`Portal::post_ok`]; 403 otherwise).
    fn signed_in_post(
        &self,
        headers: &HeaderMap,
        now: u64,
        pin_page: bool,
        form: &HashMap<String, String>,
    ) -> Result<SignedIn, Box<Response>> {
        let si = self.signed_in(headers, now, pin_page)?;
        if !self.post_ok(headers, &si.s, form) {
            return Err(Box::new(forbidden(si.lang())));
        }
        Ok(si)
    }

    /// Runs an admin write for `user` through [`crate::control::dispatch`];
    /// false (logged as "portal: cannot {what}") when it fails.
    async fn write(&self, user: &str, what: &str, req: AdminRequest) -> bool {
        match crate::control::dispatch(&self.node, req).await {
            Ok(_) => true,
            Err(e) => {
                warn!(user = %crate::text::Escaped(user), error = %e, "portal: cannot {what}");
                false
            }
        }
    }

    /// To the home page, which shows `msg` once.
    fn home_with(&self, mut s: Session, msg: Msg, now: u64) -> Response {
        s.notice = Some(msg.id().to_string());
        redirect("/home", self.cookie(&s, now))
    }

    /// A POST's CSRF token and Origin: the form must come from this portal.
    fn post_ok(&self, headers: &HeaderMap, s: &Session, form: &HashMap<String, String>) -> bool {
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let same_host = !host.is_empty() && origin == format!("https://{host}");
            let public = self
                .settings
                .public_url
                .as_deref()
                .is_some_and(|u| origin == origin_of(u));
            if !same_host && !public {
                return false;
            }
        }
        s.csrf_ok(form.get("csrf").map(String::as_str).unwrap_or(""))
    }

    /// Counts an attempt for `ip` and (when given) `user`; false when either
    /// is over its rate.
    fn allow(&self, ip: IpAddr, user: Option<&str>) -> bool {
        let ip_ok = self.per_ip.check_key(&ip).is_ok();
        let user_ok = user.is_none_or(|u| self.per_user.check_key(&u.to_lowercase()).is_ok());
        ip_ok && user_ok
    }

    /// A new code to send by text message to `phone`, valid from `now`.
    fn new_code(&self, phone: &str, now: u64) -> SentCode {
        let sms = &self.node.config().sms;
        SentCode {
            id: session::new_token(),
            phone: phone.to_string(),
            code: radmfa_otp::random_code(sms.code_length, &sms.alphabet),
            until: now + sms.lifetime_secs,
            max_attempts: sms.max_attempts,
        }
    }

    /// Checks `given` against a code sent by text message (and `also_ok`,
    /// e.g. the PIN), counting the answer on the server ([`codes`]).
    fn answer_code(&self, sent: &SentCode, given: &str, also_ok: bool, now: u64) -> Verdict {
        let right = radmfa_otp::codes_match(&sent.code, given) && also_ok;
        self.codes
            .answer(&sent.id, sent.until, sent.max_attempts, now, right)
    }

    /// A second factor typed at the portal (`outcome` of the code, and
    /// whether the PIN was right), counted towards the lockout as RADIUS
    /// counts it: `Ok(None)` when it passed, `Ok(Some(reason))` when it
    /// failed, `Err` with the message for the sign-in page when this
    /// failure locked the user (audited).
    async fn second_factor_outcome(
        &self,
        name: &str,
        mode: &str,
        ip: std::net::IpAddr,
        outcome: &Result<(), String>,
        pin_ok: bool,
    ) -> Result<Option<String>, Msg> {
        let reason = match (outcome, pin_ok) {
            (Ok(()), true) => None,
            (Err(r), _) => Some(r.clone()),
            (Ok(()), false) => Some("wrong_pin".to_string()),
        };
        let locked = self
            .node
            .portal_second_factor_outcome(name, reason.is_none(), reason.as_deref().unwrap_or("ok"))
            .await;
        if let Some(o) = locked {
            self.node.portal_audit(name, mode, "reject", &o.reason, ip);
            return Err(self.lock_refusal(name));
        }
        Ok(reason)
    }

    /// The refusal shown to a locked user.
    fn lock_refusal(&self, name: &str) -> Msg {
        self.node
            .portal_lock(name)
            .map_or(Msg::LockedTimed, lock_msg)
    }

    fn chrome<'a>(&self, si: &'a SignedIn) -> Chrome<'a> {
        Chrome {
            lang: si.lang(),
            signed_in_csrf: Some(&si.s.csrf),
            lang_switch: None,
        }
    }
}

/// What a locked user is told (the portal's words for [`LockKind`]).
fn lock_msg(k: LockKind) -> Msg {
    match k {
        LockKind::Timed => Msg::LockedTimed,
        LockKind::Admin => Msg::LockedAdmin,
        LockKind::Fraud => Msg::LockedFraud,
    }
}

/// `https://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let end = rest
        .find('/')
        .map_or(url.len(), |i| url.len() - rest.len() + i);
    &url[..end]
}

fn message_page(lang: Lang, msg: Msg, status: StatusCode) -> Response {
    let body = page(
        &Chrome {
            lang,
            signed_in_csrf: None,
            lang_switch: None,
        },
        Msg::PortalName,
        &format!(
            "{}<p><a href=\"/signin\">{}</a></p>",
            alert(msg.text(lang)),
            esc(Msg::SignIn.text(lang))
        ),
    );
    html_response(status, body, None)
}

/// The answer to a POST whose CSRF token or Origin is wrong.
fn forbidden(lang: Lang) -> Response {
    message_page(lang, Msg::FormExpired, StatusCode::FORBIDDEN)
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or("").trim()
}

fn take_notice(s: &mut Session, lang: Lang) -> String {
    s.notice
        .take()
        .and_then(|id| Msg::from_id(&id))
        .map(|m| notice(m.text(lang)))
        .unwrap_or_default()
}

// ---------------------------------------------------------------- sign-in

#[derive(Debug, Deserialize)]
struct LangQuery {
    #[serde(default)]
    lang: Option<String>,
}

fn signin_form(lang: Lang, csrf: &str, user: &str, message: &str) -> String {
    let t = |m: Msg| esc(m.text(lang));
    format!(
        "{message}<form method=\"post\" action=\"/signin\">{csrf}\
<label for=\"user\">{lu}</label><input id=\"user\" name=\"user\" type=\"text\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required value=\"{user}\">\
<label for=\"password\">{lp}</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">{go}</button></form>",
        csrf = csrf_field(csrf),
        lu = t(Msg::UserName),
        lp = t(Msg::Password),
        user = esc(user),
        go = t(Msg::SignIn),
    )
}

fn signin_response(
    p: &Portal,
    s: &Session,
    lang: Lang,
    user: &str,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let body = page(
        &Chrome {
            lang,
            signed_in_csrf: None,
            lang_switch: Some("/signin"),
        },
        Msg::SignInTitle,
        &signin_form(lang, &s.csrf, user, message),
    );
    html_response(status, body, p.cookie(s, now))
}

async fn signin_page(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let now = p.clock.now_unix();
    let existing = p.session(&headers, now);
    if existing.as_ref().and_then(Session::signed_in).is_some() {
        return redirect("/home", None);
    }
    let mut lang = p.lang_of(&headers, existing.as_ref());
    if let Some(l) = q.lang.as_deref().and_then(Lang::parse) {
        lang = l;
    }
    let mut s = match existing {
        Some(s) if s.stage == Stage::Anonymous => s,
        _ => Session::anonymous(now, lang.code()),
    };
    s.lang = lang.code().to_string();
    let message = take_notice(&mut s, lang);
    signin_response(&p, &s, lang, "", &message, StatusCode::OK, now)
}

/// The user-facing message for a failed first factor.
fn first_factor_message(reason: &str) -> Msg {
    match reason {
        "wrong_password" | "unknown_user" => Msg::WrongCredentials,
        "store_error" | "no_directory" | "directory_unreachable" | "unreachable" => Msg::TryAgain,
        r if r.contains("unreachable") || r.contains("error") => Msg::TryAgain,
        _ => Msg::AccountCannotSignIn,
    }
}

async fn signin(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(mut form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let ip = peer.0.ip();
    let Some(s) = p.session(&headers, now) else {
        return forbidden(p.lang_of(&headers, None));
    };
    let lang = p.lang_of(&headers, Some(&s));
    if !p.post_ok(&headers, &s, &form) {
        return forbidden(lang);
    }
    let password = Zeroizing::new(form.remove("password").unwrap_or_default());
    let name = field(&form, "user").to_string();
    let fail = |msg: Msg, status: StatusCode| {
        let s = Session::anonymous(now, lang.code());
        signin_response(&p, &s, lang, &name, &alert(msg.text(lang)), status, now)
    };
    if name.is_empty() || password.is_empty() || name.len() > 253 {
        return fail(Msg::WrongCredentials, StatusCode::UNAUTHORIZED);
    }
    if name.chars().any(radmfa_store::is_unsafe_char) {
        // No user can have such a name (the store refuses it).
        info!(user = %crate::text::Escaped(&name), reason = "invalid_user_name", "portal sign-in refused");
        return fail(Msg::WrongCredentials, StatusCode::UNAUTHORIZED);
    }
    if !p.allow(ip, Some(&name)) {
        info!(user = %crate::text::Escaped(&name), peer = %ip, "portal sign-in rate limited");
        return fail(Msg::TooMany, StatusCode::TOO_MANY_REQUESTS);
    }
    // A locked user is refused before any factor is checked, as at RADIUS.
    if let Some(k) = p.node.portal_lock(&name) {
        p.node
            .portal_audit(&name, "portal", "reject", "locked_out", ip);
        return fail(lock_msg(k), StatusCode::FORBIDDEN);
    }
    let policy = p.node.config().policy(&p.settings.policy).clone();
    let (login, cached) = match p
        .node
        .portal_first_factor(&name, password.as_bytes(), &policy)
        .await
    {
        PortalFirstFactor::Passed(login, cached) => (login, cached),
        PortalFirstFactor::Failed(reason) => {
            p.node.portal_audit(&name, "portal", "reject", reason, ip);
            info!(user = %crate::text::Escaped(&name), reason, "portal sign-in refused");
            return fail(first_factor_message(reason), StatusCode::UNAUTHORIZED);
        }
    };
    drop(password);
    // Again under the canonical name the directory may have mapped to.
    if let Some(k) = p.node.portal_lock(&login) {
        p.node
            .portal_audit(&login, "portal", "reject", "locked_out", ip);
        return fail(lock_msg(k), StatusCode::FORBIDDEN);
    }
    let Some(cached) = cached else {
        p.node
            .portal_audit(&login, "portal", "reject", "not_enrolled", ip);
        return fail(Msg::NotSetUp, StatusCode::FORBIDDEN);
    };
    let user = &cached.user;
    if !user.enabled {
        let reason = crate::pipeline::disabled_audit_reason(user);
        p.node.portal_audit(&login, "portal", "reject", reason, ip);
        return fail(Msg::AccountDisabled, StatusCode::FORBIDDEN);
    }
    let lang = Lang::parse(&user.language).unwrap_or(lang);
    let mut next = Session::anonymous(now, lang.code());
    if cached.token.is_some() {
        next.exp = now + SECOND_FACTOR_SECS;
        next.stage = Stage::SecondFactor {
            user: login,
            sms: None,
        };
        return redirect("/verify", p.cookie(&next, now));
    }
    if !user.phone.is_empty() {
        // One-way SMS code to the phone on file.
        let sms = &p.node.config().sms;
        let sent = p.new_code(&user.phone, now);
        let body = sms.message.replace("{code}", &sent.code);
        if p.node
            .portal_send_sms(user, &user.phone, body, Some(ip))
            .await
            .is_err()
        {
            p.node
                .portal_audit(&login, "portal+sms", "reject", "gateway_unreachable", ip);
            return fail(Msg::SmsFailed, StatusCode::SERVICE_UNAVAILABLE);
        }
        next.exp = now + SECOND_FACTOR_SECS.max(sms.lifetime_secs);
        next.stage = Stage::SecondFactor {
            user: login,
            sms: Some(sent),
        };
        return redirect("/verify", p.cookie(&next, now));
    }
    // No second factor yet: signed in on the first factor, to enroll one.
    p.node.portal_audit(
        &login,
        "portal",
        "accept",
        "first_factor_only_not_enrolled",
        ip,
    );
    info!(user = %crate::text::Escaped(&login), "portal sign-in without a second factor (enrollment)");
    next.exp = now + p.settings.session_minutes * 60;
    next.stage = Stage::SignedIn { user: login };
    redirect("/home", p.cookie(&next, now))
}

// ---------------------------------------------------------------- second factor

/// The form that asks for the second factor, posted to `action` with the
/// hidden fields `hidden` (HTML).
fn verify_form(
    lang: Lang,
    csrf: &str,
    sms: Option<&SentCode>,
    with_pin: bool,
    message: &str,
    action: &str,
    hidden: &str,
) -> String {
    let t = |m: Msg| esc(m.text(lang));
    let intro = match sms {
        Some(sent) => {
            let digits: Vec<char> = sent.phone.chars().filter(char::is_ascii_digit).collect();
            let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
            esc(&Msg::CodeSentTo.text(lang).replace("{tail}", &tail))
        }
        None => t(Msg::CodeFromApp),
    };
    let pin = if with_pin {
        format!(
            "<p class=\"hint\">{}</p><label for=\"pin\">{}</label><input id=\"pin\" name=\"pin\" type=\"password\" inputmode=\"numeric\" autocomplete=\"off\" required>",
            t(Msg::PinWithCode),
            t(Msg::Pin)
        )
    } else {
        String::new()
    };
    format!(
        "{message}<p>{intro}</p><form method=\"post\" action=\"{action}\">{csrf}{hidden}{pin}\
<label for=\"code\">{lc}</label><input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
<button type=\"submit\">{go}</button></form>",
        csrf = csrf_field(csrf),
        lc = t(Msg::Code),
        go = t(Msg::Verify),
    )
}

fn verify_response(
    p: &Portal,
    s: &Session,
    user: &CachedUser,
    lang: Lang,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let sms = match &s.stage {
        Stage::SecondFactor { sms, .. } => sms.as_ref(),
        _ => None,
    };
    let body = page(
        &Chrome {
            lang,
            signed_in_csrf: None,
            lang_switch: None,
        },
        Msg::VerifyTitle,
        &verify_form(
            lang,
            &s.csrf,
            sms,
            user.user.pin.is_some(),
            message,
            "/verify",
            "",
        ),
    );
    html_response(status, body, p.cookie(s, now))
}

/// The session's user at the second-factor step.
fn second_factor_user(
    p: &Portal,
    s: &Session,
    lang: Lang,
    now: u64,
) -> Result<Arc<CachedUser>, Box<Response>> {
    let Stage::SecondFactor { user, .. } = &s.stage else {
        return Err(Box::new(redirect("/signin", None)));
    };
    match p.node.portal_user(user) {
        Ok(Some(u)) if u.user.enabled => Ok(u),
        Ok(Some(_)) => Err(Box::new(p.to_signin(lang, Msg::AccountDisabled, now))),
        Ok(None) => Err(Box::new(p.to_signin(lang, Msg::SessionEnded, now))),
        Err(_) => Err(Box::new(message_page(
            lang,
            Msg::TryAgain,
            StatusCode::SERVICE_UNAVAILABLE,
        ))),
    }
}

async fn verify_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let now = p.clock.now_unix();
    let Some(s) = p.session(&headers, now) else {
        return redirect("/signin", None);
    };
    let lang = p.lang_of(&headers, Some(&s));
    match second_factor_user(&p, &s, lang, now) {
        Ok(user) => verify_response(&p, &s, &user, lang, "", StatusCode::OK, now),
        Err(r) => *r,
    }
}

async fn verify(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(mut form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let ip = peer.0.ip();
    let Some(s) = p.session(&headers, now) else {
        return p.to_signin(p.lang_of(&headers, None), Msg::SessionEnded, now);
    };
    let lang = p.lang_of(&headers, Some(&s));
    if !p.post_ok(&headers, &s, &form) {
        return forbidden(lang);
    }
    let cached = match second_factor_user(&p, &s, lang, now) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let user = &cached.user;
    let name = user.name.clone();
    if !p.allow(ip, Some(&name)) {
        return verify_response(
            &p,
            &s,
            &cached,
            lang,
            &alert(Msg::TooMany.text(lang)),
            StatusCode::TOO_MANY_REQUESTS,
            now,
        );
    }
    let Stage::SecondFactor { sms, .. } = &s.stage else {
        return redirect("/signin", None);
    };
    let mode = match (sms, cached.token.as_ref().map(|t| t.kind)) {
        (Some(_), _) => "portal+sms",
        (None, Some(TokenKind::Totp)) => "portal+totp",
        (None, Some(TokenKind::Hotp)) => "portal+hotp",
        (None, None) => return p.to_signin(lang, Msg::SessionEnded, now),
    };
    // Locked meanwhile (at RADIUS, in the portal, by an admin): no code is checked.
    if let Some(k) = p.node.portal_lock(&name) {
        p.node.portal_audit(&name, mode, "reject", "locked_out", ip);
        return p.to_signin(lang, lock_msg(k), now);
    }
    let given_pin = Zeroizing::new(form.remove("pin").unwrap_or_default());
    let code = Zeroizing::new(field(&form, "code").to_string());
    let pin_ok = match p.node.portal_pin(user) {
        Ok(Some(pin)) => ct_eq(pin.expose(), given_pin.trim().as_bytes()),
        Ok(None) => true,
        Err(_) => return message_page(lang, Msg::TryAgain, StatusCode::SERVICE_UNAVAILABLE),
    };
    // Both parts are always checked: the answer does not say which was wrong.
    let (outcome, sms_left) = match sms {
        Some(sent) => {
            if now >= sent.until {
                p.node
                    .portal_audit(&name, mode, "reject", "sms_code_expired", ip);
                return p.to_signin(lang, Msg::CodeExpired, now);
            }
            let code_ok = radmfa_otp::codes_match(&sent.code, &code);
            match p.answer_code(sent, &code, pin_ok, now) {
                Verdict::Spent => {
                    p.node
                        .portal_audit(&name, mode, "reject", "sms_code_spent", ip);
                    return p.to_signin(lang, Msg::CodeExpired, now);
                }
                Verdict::Accepted => (Ok(()), None),
                Verdict::Wrong { left } => (
                    if code_ok {
                        Ok(())
                    } else {
                        Err("sms_code_wrong".to_string())
                    },
                    Some(left),
                ),
            }
        }
        None => match cached.token.as_ref() {
            Some(token) => (p.node.portal_check_code(user, token, &code), None),
            None => return p.to_signin(lang, Msg::SessionEnded, now),
        },
    };
    let reason = match p
        .second_factor_outcome(&name, mode, ip, &outcome, pin_ok)
        .await
    {
        Ok(reason) => reason,
        Err(locked) => return p.to_signin(lang, locked, now),
    };
    let Some(reason) = reason else {
        p.node.portal_audit(&name, mode, "accept", "ok", ip);
        info!(user = %crate::text::Escaped(&name), mode, "portal sign-in");
        let mut next = Session::anonymous(now, lang.code());
        next.exp = now + p.settings.session_minutes * 60;
        next.stage = Stage::SignedIn { user: name };
        return redirect("/home", p.cookie(&next, now));
    };
    p.node.portal_audit(&name, mode, "reject", &reason, ip);
    if sms_left == Some(0) {
        return p.to_signin(lang, Msg::CodeExpired, now);
    }
    let msg = code_refusal(user.pin.is_some(), &reason);
    verify_response(
        &p,
        &s,
        &cached,
        lang,
        &alert(msg.text(lang)),
        StatusCode::UNAUTHORIZED,
        now,
    )
}

/// What the user is told when a second factor is refused for `reason`.
fn code_refusal(with_pin: bool, reason: &str) -> Msg {
    if with_pin {
        Msg::PinOrCodeWrong
    } else if reason == "otp_replayed" {
        Msg::CodeReused
    } else if reason == "store_error" {
        Msg::TryAgain
    } else {
        Msg::WrongCode
    }
}

// ---------------------------------------------------------------- confirm

/// A change of second factor, made once the user has confirmed the current
/// one (`/confirm`): a signed-in session alone is not enough to replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A new authenticator app (`/enroll`).
    App,
    /// A new phone number (`/phone`).
    Phone,
}

impl Change {
    fn parse(s: &str) -> Option<Change> {
        match s {
            "enroll" => Some(Change::App),
            "phone" => Some(Change::Phone),
            _ => None,
        }
    }

    /// The `next` parameter.
    fn key(self) -> &'static str {
        match self {
            Change::App => "enroll",
            Change::Phone => "phone",
        }
    }

    /// The page that makes the change.
    fn page(self) -> &'static str {
        match self {
            Change::App => "/enroll",
            Change::Phone => "/phone",
        }
    }

    /// The confirmation page that leads to it.
    fn confirm_url(self) -> &'static str {
        match self {
            Change::App => "/confirm?next=enroll",
            Change::Phone => "/confirm?next=phone",
        }
    }
}

/// Whether replacing the second factor must wait for a confirmation of the
/// current one: the user has one (an app or a phone) and has not confirmed
/// it in this session within [`CONFIRM_SECS`]. A user without any (first
/// enrollment) goes ahead on the signed-in session alone.
fn needs_confirm(si: &SignedIn, now: u64) -> bool {
    let has_one = si.user.token.is_some() || !si.user.user.phone.is_empty();
    has_one && si.s.confirmed_until.is_none_or(|t| t <= now)
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

fn confirm_response(
    p: &Portal,
    si: &SignedIn,
    change: Change,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let hidden = format!(
        "<input type=\"hidden\" name=\"next\" value=\"{}\">",
        change.key()
    );
    let with_pin = si.user.user.pin.is_some();
    let form = if si.user.token.is_some() || si.s.confirm_sms.is_some() {
        verify_form(
            lang,
            &si.s.csrf,
            si.s.confirm_sms
                .as_ref()
                .filter(|_| si.user.token.is_none()),
            with_pin,
            message,
            "/confirm",
            &hidden,
        )
    } else {
        let digits: Vec<char> = si
            .user
            .user
            .phone
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
        format!(
            "{message}<p>{intro}</p><form method=\"post\" action=\"/confirm\">{csrf}{hidden}\
<input type=\"hidden\" name=\"send\" value=\"1\"><button type=\"submit\">{go}</button></form>",
            intro = esc(&Msg::ConfirmSendTo.text(lang).replace("{tail}", &tail)),
            csrf = csrf_field(&si.s.csrf),
            go = t(Msg::SendCode),
        )
    };
    let body = format!("<p>{}</p>{form}", t(Msg::ConfirmIntro));
    let html = page(&p.chrome(si), Msg::ConfirmTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

async fn confirm_page(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in(&headers, now, false) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let Some(change) = q.next.as_deref().and_then(Change::parse) else {
        return redirect("/home", None);
    };
    if !needs_confirm(&si, now) {
        return redirect(change.page(), None);
    }
    let lang = si.lang();
    let message = take_notice(&mut si.s, lang);
    confirm_response(&p, &si, change, &message, StatusCode::OK, now)
}

/// Confirms the current second factor: a code of the user's token, or of a
/// text message sent to their phone on file (with the PIN in PIN mode),
/// checked and counted exactly as at sign-in (replay state, lockout,
/// answers counted on the server).
async fn confirm(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(mut form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let ip = peer.0.ip();
    let mut si = match p.signed_in_post(&headers, now, false, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let Some(change) = Change::parse(field(&form, "next")) else {
        return redirect("/home", None);
    };
    if !needs_confirm(&si, now) {
        return redirect(change.page(), None);
    }
    let lang = si.lang();
    let name = si.name().to_string();
    let refuse = |si: &SignedIn, msg: Msg, status: StatusCode| {
        confirm_response(&p, si, change, &alert(msg.text(lang)), status, now)
    };
    if !p.allow(ip, Some(&name)) {
        return refuse(&si, Msg::TooMany, StatusCode::TOO_MANY_REQUESTS);
    }
    let cached = si.user.clone();
    let user = &cached.user;
    let given_pin = Zeroizing::new(form.remove("pin").unwrap_or_default());
    let code = Zeroizing::new(field(&form, "code").to_string());
    let pin_ok = match p.node.portal_pin(user) {
        Ok(Some(pin)) => ct_eq(pin.expose(), given_pin.trim().as_bytes()),
        Ok(None) => true,
        Err(_) => return refuse(&si, Msg::TryAgain, StatusCode::SERVICE_UNAVAILABLE),
    };
    let (mode, outcome, sms_left) = if let Some(token) = cached.token.as_ref() {
        let mode = match token.kind {
            TokenKind::Totp => "portal+totp",
            TokenKind::Hotp => "portal+hotp",
        };
        (mode, p.node.portal_check_code(user, token, &code), None)
    } else {
        let mode = "portal+sms";
        let pending = si.s.confirm_sms.take();
        let Some(sent) = pending.filter(|_| field(&form, "send") != "1") else {
            // Send a code to the phone on file.
            if !p.node.portal_can_send_sms() {
                return refuse(&si, Msg::NoGateway, StatusCode::SERVICE_UNAVAILABLE);
            }
            let sent = p.new_code(&user.phone, now);
            let body = p.node.config().sms.message.replace("{code}", &sent.code);
            if p.node
                .portal_send_sms(user, &user.phone, body, Some(ip))
                .await
                .is_err()
            {
                return refuse(&si, Msg::SmsFailed, StatusCode::SERVICE_UNAVAILABLE);
            }
            si.s.confirm_sms = Some(sent);
            return confirm_response(&p, &si, change, "", StatusCode::OK, now);
        };
        let code_ok = radmfa_otp::codes_match(&sent.code, &code);
        match p.answer_code(&sent, &code, pin_ok, now) {
            Verdict::Spent => {
                p.node
                    .portal_audit(&name, mode, "reject", "sms_code_spent", ip);
                return refuse(&si, Msg::CodeExpired, StatusCode::UNPROCESSABLE_ENTITY);
            }
            Verdict::Accepted => (mode, Ok(()), None),
            Verdict::Wrong { left } => {
                if left > 0 {
                    si.s.confirm_sms = Some(sent);
                }
                let outcome = if code_ok {
                    Ok(())
                } else {
                    Err("sms_code_wrong".to_string())
                };
                (mode, outcome, Some(left))
            }
        }
    };
    let reason = match p
        .second_factor_outcome(&name, mode, ip, &outcome, pin_ok)
        .await
    {
        Ok(reason) => reason,
        Err(locked) => return p.to_signin(lang, locked, now),
    };
    let Some(reason) = reason else {
        p.node
            .portal_audit(&name, mode, "accept", "second_factor_confirmed", ip);
        info!(user = %crate::text::Escaped(&name), mode, "current second factor confirmed in the portal");
        si.s.confirmed_until = Some(now + CONFIRM_SECS);
        si.s.confirm_sms = None;
        return redirect(change.page(), p.cookie(&si.s, now));
    };
    p.node.portal_audit(&name, mode, "reject", &reason, ip);
    let msg = if sms_left == Some(0) {
        Msg::CodeExpired
    } else {
        code_refusal(user.pin.is_some(), &reason)
    };
    refuse(&si, msg, StatusCode::UNAUTHORIZED)
}

// ---------------------------------------------------------------- home

fn method_msg(m: Method) -> Msg {
    match m {
        Method::Totp => Msg::MethodTotp,
        Method::Hotp => Msg::MethodHotp,
        Method::Sms => Msg::MethodSms,
        Method::SmsTwoWay => Msg::MethodSmsTwoWay,
        Method::Call => Msg::MethodCall,
        Method::Push => Msg::MethodPush,
        Method::None => Msg::MethodNone,
    }
}

async fn home(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in(&headers, now, false) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let u = &si.user.user;
    let store = p.node.store().clone();
    let filter = radmfa_store::AuditFilter {
        user: Some(u.name.clone()),
        limit: Some(10),
        ..Default::default()
    };
    let records = tokio::task::spawn_blocking(move || store.query_audit(&filter))
        .await
        .ok()
        .and_then(|r| r.map_err(|e| warn!(error = %e, "audit read failed")).ok());
    let mut body = take_notice(&mut si.s, lang);
    if si.user.token.is_none() && u.phone.is_empty() {
        body.push_str(&format!(
            "<div class=\"alert\" id=\"no-second-factor\">{} <a href=\"/enroll\">{}</a> · <a href=\"/phone\">{}</a></div>",
            t(Msg::NoSecondFactor),
            t(Msg::NavApp),
            t(Msg::NavPhone)
        ));
    }
    let who = if u.display_name.is_empty() {
        esc(&u.name)
    } else {
        format!("{} ({})", esc(&u.display_name), esc(&u.name))
    };
    body.push_str(&format!(
        "<dl><dt>{la}</dt><dd id=\"account\">{who}</dd><dt>{lm}</dt><dd id=\"method\">{m}</dd>\
<dt>{lp}</dt><dd id=\"phone\">{ph}</dd><dt>{lapp}</dt><dd id=\"app\">{app}</dd><dt>{lpin}</dt><dd id=\"pin-mode\">{pin}</dd></dl>",
        la = t(Msg::Account),
        lm = t(Msg::MethodLabel),
        m = t(method_msg(u.method)),
        lp = t(Msg::PhoneLabel),
        ph = if u.phone.is_empty() { t(Msg::NoPhone) } else { esc(&html::mask_phone(&u.phone)) },
        lapp = t(Msg::AppLabel),
        app = if si.user.token.is_some() { t(Msg::Enrolled) } else { t(Msg::NotEnrolled) },
        lpin = t(Msg::PinModeLabel),
        pin = if u.pin.is_some() { t(Msg::PinOn) } else { t(Msg::PinOff) },
    ));
    body.push_str(&format!("<h2>{}</h2>", t(Msg::RecentSignIns)));
    match records {
        None => body.push_str(&alert(Msg::TryAgain.text(lang))),
        Some(r) if r.is_empty() => body.push_str(&format!("<p>{}</p>", t(Msg::NoSignIns))),
        Some(r) => {
            body.push_str(&format!(
                "<table id=\"signins\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
                t(Msg::When),
                t(Msg::Outcome),
                t(Msg::How),
                t(Msg::Where),
                t(Msg::Report)
            ));
            for rec in r.iter().rev() {
                let when = html::utc(rec.time_ms);
                let result = match rec.result.as_str() {
                    "accept" => t(Msg::ResultAccept),
                    "reject" => t(Msg::ResultReject),
                    "challenge" => t(Msg::ResultChallenge),
                    other => esc(other),
                };
                let from = if rec.calling_station.is_empty() {
                    format!("{} ({})", esc(&rec.client_name), esc(&rec.client_ip))
                } else {
                    format!("{} ({})", esc(&rec.client_name), esc(&rec.calling_station))
                };
                body.push_str(&format!(
                    "<tr><td>{when}</td><td>{result}</td><td>{mode}</td><td>{from}</td><td><form method=\"post\" action=\"/not-me\">{csrf}<input type=\"hidden\" name=\"t\" value=\"{ms}\"><button type=\"submit\" aria-label=\"{notme}: {when}\">{notme}</button></form></td></tr>",
                    mode = esc(&rec.mode),
                    csrf = csrf_field(&si.s.csrf),
                    ms = rec.time_ms,
                    notme = t(Msg::NotMe),
                ));
            }
            body.push_str("</tbody></table>");
        }
    }
    let html = page(&p.chrome(&si), Msg::HomeTitle, &body);
    html_response(StatusCode::OK, html, p.cookie(&si.s, now))
}

// ---------------------------------------------------------------- authenticator app

fn totp_params(p: &Portal) -> radmfa_otp::Totp {
    radmfa_otp::Totp {
        algorithm: radmfa_otp::Algorithm::Sha1,
        digits: p.node.config().otp_digits,
        period: PERIOD,
        t0: 0,
        window: p.node.config().otp_window,
    }
}

fn enroll_response(
    p: &Portal,
    si: &mut SignedIn,
    secret_b32: &str,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let seed = Zeroizing::new(radmfa_otp::base32_decode(secret_b32).unwrap_or_default());
    let cfg = p.node.config();
    let uri = Zeroizing::new(radmfa_otp::otpauth_uri(&radmfa_otp::OtpauthParams {
        issuer: &cfg.otp_issuer,
        account: si.name(),
        secret: &seed,
        algorithm: radmfa_otp::Algorithm::Sha1,
        digits: cfg.otp_digits,
        kind: radmfa_otp::OtpKind::Totp { period: PERIOD },
    }));
    let qr = html::qr_svg(&uri, Msg::QrLabel.text(lang)).unwrap_or_default();
    let replaces = if si.user.token.is_some() {
        format!("<p class=\"hint\">{}</p>", t(Msg::ReplacesApp))
    } else {
        String::new()
    };
    let body = format!(
        "{message}{replaces}<p>{scan}</p>{qr}<p>{manual} <code class=\"secret\" id=\"secret\">{secret}</code></p>\
<p>{confirm}</p><form method=\"post\" action=\"/enroll\">{csrf}\
<label for=\"code\">{lc}</label><input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
<button type=\"submit\">{go}</button></form>",
        scan = t(Msg::ScanQr),
        manual = t(Msg::ManualEntry),
        secret = esc(secret_b32),
        confirm = t(Msg::EnrollConfirm),
        csrf = csrf_field(&si.s.csrf),
        lc = t(Msg::Code),
        go = t(Msg::Confirm),
    );
    si.s.enroll = Some(secret_b32.to_string());
    let html = page(&p.chrome(si), Msg::EnrollTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

async fn enroll_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in(&headers, now, false) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    if needs_confirm(&si, now) {
        return redirect(Change::App.confirm_url(), None);
    }
    let seed = Zeroizing::new(radmfa_otp::generate_secret(20));
    let secret = Zeroizing::new(radmfa_otp::base32_encode(&seed));
    let lang = si.lang();
    let message = take_notice(&mut si.s, lang);
    enroll_response(&p, &mut si, &secret, &message, StatusCode::OK, now)
}

async fn enroll(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in_post(&headers, now, false, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    if needs_confirm(&si, now) {
        return redirect(Change::App.confirm_url(), None);
    }
    let lang = si.lang();
    let Some(secret) = si.s.enroll.clone().map(Zeroizing::new) else {
        return redirect("/enroll", None);
    };
    if !p.allow(peer.0.ip(), Some(si.name())) {
        return enroll_response(
            &p,
            &mut si,
            &secret,
            &alert(Msg::TooMany.text(lang)),
            StatusCode::TOO_MANY_REQUESTS,
            now,
        );
    }
    let seed = Zeroizing::new(radmfa_otp::base32_decode(&secret).unwrap_or_default());
    let step = match totp_params(&p).verify(&seed, field(&form, "code"), now, None) {
        Ok(step) => step,
        Err(_) => {
            return enroll_response(
                &p,
                &mut si,
                &secret,
                &alert(Msg::WrongCode.text(lang)),
                StatusCode::UNPROCESSABLE_ENTITY,
                now,
            );
        }
    };
    let name = si.name().to_string();
    let req = AdminRequest::TokenEnroll {
        user: name.clone(),
        secret: Some(secret.to_string()),
        kind: TokenKind::Totp,
        algorithm: TokenAlgorithm::Sha1,
        digits: p.node.config().otp_digits,
        period: PERIOD,
        replace: true,
    };
    if !p.write(&name, "enroll the token", req).await {
        return enroll_response(
            &p,
            &mut si,
            &secret,
            &alert(Msg::TryAgain.text(lang)),
            StatusCode::SERVICE_UNAVAILABLE,
            now,
        );
    }
    // The confirmation code cannot be used again for a sign-in.
    p.node.portal_mark_step_used(&name, step);
    info!(user = %crate::text::Escaped(&name), "authenticator app enrolled in the portal");
    si.s.enroll = None;
    // The code just typed proved the (new) current second factor.
    si.s.confirmed_until.get_or_insert(now + CONFIRM_SECS);
    p.home_with(si.s, Msg::AppEnrolled, now)
}

// ---------------------------------------------------------------- phone

/// An E.164 number: `+` and 8 to 15 digits (spaces and dashes dropped).
fn normalize_phone(s: &str) -> Option<String> {
    let compact: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let digits = compact.strip_prefix('+')?;
    ((8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(compact)
}

fn phone_response(
    p: &Portal,
    si: &SignedIn,
    value: &str,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let mut body = format!(
        "{message}<form method=\"post\" action=\"/phone\">{csrf}\
<label for=\"phone\">{lp}</label><input id=\"phone\" name=\"phone\" type=\"tel\" autocomplete=\"tel\" required value=\"{value}\" aria-describedby=\"phone-hint\">\
<p class=\"hint\" id=\"phone-hint\">{hint}</p><button type=\"submit\">{go}</button></form>",
        csrf = csrf_field(&si.s.csrf),
        lp = t(Msg::Phone),
        value = esc(value),
        hint = t(Msg::PhoneHint),
        go = t(Msg::SendCode),
    );
    if let Some(sent) = &si.s.phone {
        let digits: Vec<char> = sent.phone.chars().filter(char::is_ascii_digit).collect();
        let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
        body.push_str(&format!(
            "<p>{intro}</p><form method=\"post\" action=\"/phone/verify\">{csrf}\
<label for=\"phone-code\">{lc}</label><input id=\"phone-code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
<button type=\"submit\">{go}</button></form>",
            intro = esc(&Msg::CodeSentTo.text(lang).replace("{tail}", &tail)),
            csrf = csrf_field(&si.s.csrf),
            lc = t(Msg::Code),
            go = t(Msg::Confirm),
        ));
    }
    let html = page(&p.chrome(si), Msg::PhoneTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

async fn phone_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in(&headers, now, false) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    if needs_confirm(&si, now) {
        return redirect(Change::Phone.confirm_url(), None);
    }
    let lang = si.lang();
    let mut message = take_notice(&mut si.s, lang);
    if !p.node.portal_can_send_sms() {
        message.push_str(&alert(Msg::NoGateway.text(lang)));
    }
    let value =
        si.s.phone
            .as_ref()
            .map_or_else(|| si.user.user.phone.clone(), |s| s.phone.clone());
    phone_response(&p, &si, &value, &message, StatusCode::OK, now)
}

async fn phone_send(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in_post(&headers, now, false, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    if needs_confirm(&si, now) {
        return redirect(Change::Phone.confirm_url(), None);
    }
    let lang = si.lang();
    let typed = field(&form, "phone").to_string();
    let Some(phone) = normalize_phone(&typed) else {
        si.s.phone = None;
        return phone_response(
            &p,
            &si,
            &typed,
            &alert(Msg::PhoneInvalid.text(lang)),
            StatusCode::UNPROCESSABLE_ENTITY,
            now,
        );
    };
    if !p.node.portal_can_send_sms() {
        return phone_response(
            &p,
            &si,
            &typed,
            &alert(Msg::NoGateway.text(lang)),
            StatusCode::SERVICE_UNAVAILABLE,
            now,
        );
    }
    // Every text message costs money: the per-user rate covers sends too.
    if !p.allow(peer.0.ip(), Some(si.name())) {
        return phone_response(
            &p,
            &si,
            &typed,
            &alert(Msg::TooMany.text(lang)),
            StatusCode::TOO_MANY_REQUESTS,
            now,
        );
    }
    let sent = p.new_code(&phone, now);
    let body = p.node.config().sms.message.replace("{code}", &sent.code);
    if p.node
        .portal_send_sms(&si.user.user, &phone, body, Some(peer.0.ip()))
        .await
        .is_err()
    {
        return phone_response(
            &p,
            &si,
            &typed,
            &alert(Msg::SmsFailed.text(lang)),
            StatusCode::SERVICE_UNAVAILABLE,
            now,
        );
    }
    si.s.phone = Some(sent);
    phone_response(&p, &si, &phone, "", StatusCode::OK, now)
}

async fn phone_verify(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in_post(&headers, now, false, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    if needs_confirm(&si, now) {
        return redirect(Change::Phone.confirm_url(), None);
    }
    let lang = si.lang();
    let Some(sent) = si.s.phone.take() else {
        return redirect("/phone", None);
    };
    if !p.allow(peer.0.ip(), Some(si.name())) {
        let value = sent.phone.clone();
        si.s.phone = Some(sent);
        return phone_response(
            &p,
            &si,
            &value,
            &alert(Msg::TooMany.text(lang)),
            StatusCode::TOO_MANY_REQUESTS,
            now,
        );
    }
    if now >= sent.until {
        return phone_response(
            &p,
            &si,
            &sent.phone,
            &alert(Msg::CodeExpired.text(lang)),
            StatusCode::UNPROCESSABLE_ENTITY,
            now,
        );
    }
    // Counted on the server: a copy of the cookie does not get more tries.
    let verdict = p.answer_code(&sent, field(&form, "code"), true, now);
    if verdict != Verdict::Accepted {
        let value = sent.phone.clone();
        let msg = match verdict {
            Verdict::Wrong { left } if left > 0 => {
                si.s.phone = Some(sent);
                Msg::WrongCode
            }
            _ => Msg::CodeExpired,
        };
        return phone_response(
            &p,
            &si,
            &value,
            &alert(msg.text(lang)),
            StatusCode::UNPROCESSABLE_ENTITY,
            now,
        );
    }
    let name = si.name().to_string();
    let req = AdminRequest::UserSet {
        name: name.clone(),
        display_name: None,
        email: None,
        phone: Some(sent.phone.clone()),
        method: None,
        device_token: None,
        groups: None,
    };
    if !p.write(&name, "save the phone number", req).await {
        let value = sent.phone.clone();
        return phone_response(
            &p,
            &si,
            &value,
            &alert(Msg::TryAgain.text(lang)),
            StatusCode::SERVICE_UNAVAILABLE,
            now,
        );
    }
    info!(user = %crate::text::Escaped(&name), "phone number verified and saved in the portal");
    // The code just typed proved the (new) current second factor.
    si.s.confirmed_until.get_or_insert(now + CONFIRM_SECS);
    p.home_with(si.s, Msg::PhoneSaved, now)
}

// ---------------------------------------------------------------- method

/// A form page of the signed-in user with the pending notice on top, drawn
/// by `render` (see [`Portal::signed_in`] for `pin_page`).
fn notice_page(
    p: &Portal,
    headers: &HeaderMap,
    pin_page: bool,
    render: fn(&Portal, &SignedIn, &str, StatusCode, u64) -> Response,
) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in(headers, now, pin_page) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let message = take_notice(&mut si.s, lang);
    render(p, &si, &message, StatusCode::OK, now)
}

/// The methods this user can choose now.
fn available_methods(p: &Portal, user: &CachedUser) -> Vec<Method> {
    let mut out = Vec::new();
    match user.token.as_ref().map(|t| t.kind) {
        Some(TokenKind::Totp) => out.push(Method::Totp),
        Some(TokenKind::Hotp) => out.push(Method::Hotp),
        None => {}
    }
    if !user.user.phone.is_empty() && p.node.portal_can_send_sms() {
        out.extend([Method::Sms, Method::SmsTwoWay, Method::Call]);
    }
    if !user.user.device_token.is_empty() && p.node.portal_can_send_sms() {
        out.push(Method::Push);
    }
    out
}

fn method_response(
    p: &Portal,
    si: &SignedIn,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let current = si.user.user.method;
    let mut radios = String::new();
    for m in available_methods(p, &si.user) {
        radios.push_str(&format!(
            "<label><input type=\"radio\" name=\"method\" value=\"{v}\"{checked}> {text}</label>",
            v = m.as_str(),
            checked = if m == current { " checked" } else { "" },
            text = t(method_msg(m)),
        ));
    }
    let body = if radios.is_empty() {
        format!("{message}{}", alert(Msg::MethodUnavailable.text(lang)))
    } else {
        format!(
            "{message}<form method=\"post\" action=\"/method\">{csrf}<fieldset><legend>{hint}</legend>{radios}</fieldset><button type=\"submit\">{go}</button></form>",
            csrf = csrf_field(&si.s.csrf),
            hint = t(Msg::MethodHint),
            go = t(Msg::Save),
        )
    };
    let html = page(&p.chrome(si), Msg::MethodTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

async fn method_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    notice_page(&p, &headers, false, method_response)
}

async fn method_set(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let si = match p.signed_in_post(&headers, now, false, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let chosen = field(&form, "method").parse::<Method>().ok();
    let Some(method) = chosen.filter(|m| available_methods(&p, &si.user).contains(m)) else {
        return method_response(
            &p,
            &si,
            &alert(Msg::MethodUnavailable.text(lang)),
            StatusCode::UNPROCESSABLE_ENTITY,
            now,
        );
    };
    let name = si.name().to_string();
    let req = AdminRequest::UserSet {
        name: name.clone(),
        display_name: None,
        email: None,
        phone: None,
        method: Some(method),
        device_token: None,
        groups: None,
    };
    if !p.write(&name, "change the method", req).await {
        return method_response(
            &p,
            &si,
            &alert(Msg::TryAgain.text(lang)),
            StatusCode::SERVICE_UNAVAILABLE,
            now,
        );
    }
    info!(user = %crate::text::Escaped(&name), method = %method, "method changed in the portal");
    p.home_with(si.s, Msg::MethodSaved, now)
}

// ---------------------------------------------------------------- PIN

fn pin_response(
    p: &Portal,
    si: &SignedIn,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let u = &si.user.user;
    let body = if u.pin.is_none() {
        format!("{message}<p>{}</p>", t(Msg::NoPinMode))
    } else {
        let hint = esc(&Msg::PinHint
            .text(lang)
            .replace("{min}", &p.settings.pin_min_length.to_string()));
        let required = if u.pin_change_required {
            format!(
                "<div class=\"alert\" id=\"pin-required\" role=\"status\">{}</div>",
                t(Msg::PinChangeRequired)
            )
        } else {
            String::new()
        };
        format!(
            "{message}{required}<form method=\"post\" action=\"/pin\">{csrf}\
<p class=\"hint\" id=\"pin-hint\">{hint}</p>\
<label for=\"pin\">{l1}</label><input id=\"pin\" name=\"pin\" type=\"password\" inputmode=\"numeric\" autocomplete=\"new-password\" required aria-describedby=\"pin-hint\">\
<label for=\"pin2\">{l2}</label><input id=\"pin2\" name=\"pin2\" type=\"password\" inputmode=\"numeric\" autocomplete=\"new-password\" required>\
<button type=\"submit\">{go}</button></form>",
            csrf = csrf_field(&si.s.csrf),
            l1 = t(Msg::NewPin),
            l2 = t(Msg::NewPinAgain),
            go = t(Msg::SavePin),
        )
    };
    let html = page(&p.chrome(si), Msg::PinTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

async fn pin_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    notice_page(&p, &headers, true, pin_response)
}

async fn pin_set(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(mut form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let si = match p.signed_in_post(&headers, now, true, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let u = &si.user.user;
    if u.pin.is_none() {
        return pin_response(&p, &si, "", StatusCode::UNPROCESSABLE_ENTITY, now);
    }
    let new = Zeroizing::new(form.remove("pin").unwrap_or_default().trim().to_string());
    let again = Zeroizing::new(form.remove("pin2").unwrap_or_default().trim().to_string());
    let current = match p.node.portal_pin(u) {
        Ok(c) => c,
        Err(_) => {
            return pin_response(
                &p,
                &si,
                &alert(Msg::TryAgain.text(lang)),
                StatusCode::SERVICE_UNAVAILABLE,
                now,
            )
        }
    };
    let checked = pin::check_pin(
        &new,
        &again,
        p.settings.pin_min_length,
        &u.phone,
        current.as_ref().map(|c| c.expose()),
    );
    if let Err(problem) = checked {
        use pin::PinProblem as P;
        let msg = match problem {
            P::Format => Msg::PinFormat,
            P::Repeated => Msg::PinRepeated,
            P::Sequence => Msg::PinSequence,
            P::PhoneDigits => Msg::PinPhone,
            P::Mismatch => Msg::PinMismatch,
            P::Unchanged => Msg::PinUnchanged,
        };
        let text = msg
            .text(lang)
            .replace("{min}", &p.settings.pin_min_length.to_string());
        return pin_response(
            &p,
            &si,
            &alert(&text),
            StatusCode::UNPROCESSABLE_ENTITY,
            now,
        );
    }
    let name = si.name().to_string();
    let req = AdminRequest::UserPinChange {
        name: name.clone(),
        pin: new.to_string(),
    };
    if !p.write(&name, "change the PIN", req).await {
        return pin_response(
            &p,
            &si,
            &alert(Msg::TryAgain.text(lang)),
            StatusCode::SERVICE_UNAVAILABLE,
            now,
        );
    }
    info!(user = %crate::text::Escaped(&name), "PIN changed in the portal");
    p.home_with(si.s, Msg::PinChanged, now)
}

// ---------------------------------------------------------------- report, sign-out

/// "This was not me": records `fraud_reported_by_user` in the audit log and
/// disables the account, so whoever used it is locked out. The one place to
/// change when a proper lockout replaces the disabling.
pub(crate) async fn report_not_me(
    node: &Arc<Node>,
    user: &str,
    reported_ms: u64,
    source: IpAddr,
) -> Result<(), AdminError> {
    node.portal_audit(user, "portal", "report", "fraud_reported_by_user", source);
    warn!(
        user,
        reported_sign_in_ms = reported_ms,
        "a user reported a sign-in as not theirs; disabling the account"
    );
    crate::control::dispatch(
        node,
        AdminRequest::UserDisableFraud {
            name: user.to_string(),
        },
    )
    .await
    .map(|_| ())
}

async fn not_me(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let si = match p.signed_in_post(&headers, now, true, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let reported = field(&form, "t").parse::<u64>().unwrap_or(0);
    if let Err(e) = report_not_me(&p.node, si.name(), reported, peer.0.ip()).await {
        warn!(user = %crate::text::Escaped(si.name()), error = %e, "portal: cannot disable the account after a report");
        return message_page(lang, Msg::TryAgain, StatusCode::SERVICE_UNAVAILABLE);
    }
    let body = page(
        &Chrome {
            lang,
            signed_in_csrf: None,
            lang_switch: None,
        },
        Msg::ReportedTitle,
        &notice(Msg::ReportedText.text(lang)),
    );
    html_response(StatusCode::OK, body, Some(session::clear_cookie()))
}

async fn signout(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let Some(s) = p.session(&headers, now) else {
        return redirect("/signin", Some(session::clear_cookie()));
    };
    let lang = p.lang_of(&headers, Some(&s));
    if !p.post_ok(&headers, &s, &form) {
        return forbidden(lang);
    }
    p.to_signin(lang, Msg::SignedOut, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers() {
        assert_eq!(
            normalize_phone("+31 6 1234-5678").as_deref(),
            Some("+31612345678")
        );
        assert_eq!(normalize_phone("0612345678"), None);
        assert_eq!(normalize_phone("+1234"), None);
        assert_eq!(normalize_phone("+3161234567x"), None);
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://mfa.example.com/portal"),
            "https://mfa.example.com"
        );
        assert_eq!(
            origin_of("https://mfa.example.com:8444"),
            "https://mfa.example.com:8444"
        );
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"1234", b"1234"));
        assert!(!ct_eq(b"1234", b"1235"));
        assert!(!ct_eq(b"1234", b"12345"));
    }
}
