//! What every portal handler shares ([`Portal`]): the node, the settings,
//! the cookie keys, the sign-in rate limits, the text-message codes and the
//! clock; and the steps every page runs (who is signed in, CSRF and Origin
//! checks, admin writes, second-factor outcomes counted like RADIUS).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use governor::RateLimiter;
use radmfa_otp::Clock;
use tracing::warn;

use crate::admin::AdminRequest;
use crate::hot::CachedUser;
use crate::pipeline::decision::Reason;
use crate::pipeline::Node;

use super::codes::{CodeAttempts, Verdict};
use super::html::Chrome;
use super::i18n::{Lang, Msg};
use super::respond::{forbidden, lock_msg, message_page, origin_of, redirect};
use super::session::{self, CookieKeys, SentCode, Session};
use crate::config::PortalSettings;

pub(super) type Keyed<K> = RateLimiter<
    K,
    governor::state::keyed::DefaultKeyedStateStore<K>,
    governor::clock::DefaultClock,
>;

/// Everything the handlers share.
pub(super) struct Portal {
    pub(super) node: Arc<Node>,
    pub(super) settings: PortalSettings,
    pub(super) keys: CookieKeys,
    pub(super) per_ip: Keyed<IpAddr>,
    pub(super) per_user: Keyed<String>,
    /// Answers to the codes sent by text message, counted on this node.
    pub(super) codes: CodeAttempts,
    /// The node's clock: session, code and confirmation expiries.
    pub(super) clock: Arc<dyn Clock>,
}

// ---------------------------------------------------------------- sessions

/// A signed-in request: the session and the user as the store has them now.
pub(super) struct SignedIn {
    pub(super) s: Session,
    pub(super) user: Arc<CachedUser>,
}

impl SignedIn {
    pub(super) fn name(&self) -> &str {
        &self.user.user.name
    }
    pub(super) fn lang(&self) -> Lang {
        Lang::parse(&self.s.lang).unwrap_or(Lang::En)
    }
}

impl Portal {
    pub(super) fn session(&self, headers: &HeaderMap, now: u64) -> Option<Session> {
        let h = headers.get(header::COOKIE)?.to_str().ok()?;
        self.keys.open(session::cookie_value(h)?, now)
    }

    pub(super) fn cookie(&self, s: &Session, now: u64) -> Option<String> {
        Some(session::set_cookie(
            &self.keys.seal(s),
            s.exp.saturating_sub(now),
        ))
    }

    pub(super) fn lang_of(&self, headers: &HeaderMap, s: Option<&Session>) -> Lang {
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
    pub(super) fn to_signin(&self, lang: Lang, msg: Msg, now: u64) -> Response {
        let mut s = Session::anonymous(now, lang.code());
        s.notice = Some(msg.id().to_string());
        redirect("/signin", self.cookie(&s, now))
    }

    /// The signed-in session and its user, or the response that sends the
    /// visitor elsewhere (sign-in page; PIN page when a PIN change is due
    /// and `pin_page` is false).
    pub(super) fn signed_in(
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
    pub(super) fn signed_in_post(
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
    pub(super) async fn write(&self, user: &str, what: &str, req: AdminRequest) -> bool {
        let actor = crate::admin::Actor::Portal {
            user: user.to_string(),
        };
        match crate::control::dispatch_as(&self.node, actor, req).await {
            Ok(_) => true,
            Err(e) => {
                warn!(user = %crate::text::Escaped(user), error = %e, "portal: cannot {what}");
                false
            }
        }
    }

    /// To the home page, which shows `msg` once.
    pub(super) fn home_with(&self, mut s: Session, msg: Msg, now: u64) -> Response {
        s.notice = Some(msg.id().to_string());
        redirect("/home", self.cookie(&s, now))
    }

    /// To `to`, which shows `msg` once.
    pub(super) fn with_notice(
        &self,
        mut s: Session,
        to: &'static str,
        msg: Msg,
        now: u64,
    ) -> Response {
        s.notice = Some(msg.id().to_string());
        redirect(to, self.cookie(&s, now))
    }

    /// A POST's Origin, when the browser sent one: this portal's (the
    /// Host it was reached at, or `[portal] public_url`).
    pub(super) fn origin_ok(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
            return true;
        };
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
        same_host || public
    }

    /// A POST's CSRF token and Origin: the form must come from this portal.
    pub(super) fn post_ok(
        &self,
        headers: &HeaderMap,
        s: &Session,
        form: &HashMap<String, String>,
    ) -> bool {
        if !self.origin_ok(headers) {
            return false;
        }
        s.csrf_ok(form.get("csrf").map(String::as_str).unwrap_or(""))
    }

    /// Counts an attempt for `ip` and (when given) `user`; false when either
    /// is over its rate.
    pub(super) fn allow(&self, ip: IpAddr, user: Option<&str>) -> bool {
        let ip_ok = self.per_ip.check_key(&ip).is_ok();
        let user_ok = user.is_none_or(|u| self.per_user.check_key(&u.to_lowercase()).is_ok());
        ip_ok && user_ok
    }

    /// A new code to send by text message to `phone`, valid from `now`.
    pub(super) fn new_code(&self, phone: &str, now: u64) -> SentCode {
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
    pub(super) fn answer_code(
        &self,
        sent: &SentCode,
        given: &str,
        also_ok: bool,
        now: u64,
    ) -> Verdict {
        let right = radmfa_otp::codes_match(&sent.code, given) && also_ok;
        self.codes
            .answer(&sent.id, sent.until, sent.max_attempts, now, right)
    }

    /// A second factor typed at the portal (`outcome` of the code, and
    /// whether the PIN was right), counted towards the lockout as RADIUS
    /// counts it: `Ok(None)` when it passed, `Ok(Some(reason))` when it
    /// failed, `Err` with the message for the sign-in page when this
    /// failure locked the user (audited).
    pub(super) async fn second_factor_outcome(
        &self,
        name: &str,
        mode: &str,
        ip: std::net::IpAddr,
        outcome: &Result<(), Reason>,
        pin_ok: bool,
    ) -> Result<Option<Reason>, Msg> {
        let reason = match (outcome, pin_ok) {
            (Ok(()), true) => None,
            (Err(r), _) => Some(*r),
            (Ok(()), false) => Some(Reason::WrongPin),
        };
        let locked = self
            .node
            .portal_second_factor_outcome(name, reason.map_or(Ok(()), Err))
            .await;
        if let Some(o) = locked {
            self.node.portal_audit(name, mode, "reject", &o.reason, ip);
            return Err(self.lock_refusal(name));
        }
        Ok(reason)
    }

    /// The refusal shown to a locked user.
    pub(super) fn lock_refusal(&self, name: &str) -> Msg {
        self.node
            .portal_lock(name)
            .map_or(Msg::LockedTimed, lock_msg)
    }

    pub(super) fn chrome<'a>(&self, si: &'a SignedIn) -> Chrome<'a> {
        Chrome {
            lang: si.lang(),
            signed_in_csrf: Some(&si.s.csrf),
            lang_switch: None,
        }
    }
}
