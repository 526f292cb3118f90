//! Twilio's callbacks, served on the portal listener (the one HTTPS service
//! meant to be published through a reverse proxy in the DMZ):
//!
//! | path | Twilio sends it as | carries |
//! | --- | --- | --- |
//! | `POST /callback/twilio/voice/{id}` | the call's `<Gather action>` | `Digits` |
//! | `POST /callback/twilio/status/{id}` | the call's `StatusCallback` | `CallStatus` |
//! | `POST /callback/twilio/sms` | the number's inbound-message webhook | `From`, `Body` |
//!
//! Every request must carry a valid `X-Twilio-Signature` over the public URL
//! (`[gateway] callback_url` + the path) and the form parameters, keyed by
//! the auth token; one without is answered 403, counted
//! (`radmfa_callbacks_total{result="bad_signature"}`) and said at WARN at
//! most once a minute with the remedy. A signed callback for an unknown,
//! expired or already decided verification changes nothing and is answered
//! 200 with TwiML that says so: a 4xx would make Twilio play "an application
//! error has occurred" to the caller and log an error on the account.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tracing::{info, warn};

use super::deliver::{deliver, Answer, Delivered};
use super::texts::{read_reply, CALLBACK_PREFIX};
use crate::counters::bump;
use crate::i18n::{Key, Lang};
use crate::pipeline::Node;
use crate::verifications::Outcome;

/// Largest callback body (Twilio's are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

/// What the handlers share.
struct Callbacks {
    node: Arc<Node>,
    auth_token: radmfa_gateway::Secret,
    /// The public base URL the signatures are computed over.
    base: String,
    /// When the last bad-signature WARN was said (Unix seconds), and how
    /// many were refused since.
    refused: crate::throttle::Throttle,
}

/// The callback routes, when the gateway is Twilio and a public callback
/// URL is known; merged into the portal's router.
pub fn router(node: Arc<Node>) -> Option<Router> {
    let cfg = node.config();
    let base = cfg.oob.callback_url.clone()?;
    let Some(radmfa_gateway::Provider::Twilio { auth_token, .. }) =
        cfg.gateway.as_ref().map(|g| &g.provider)
    else {
        return None;
    };
    let state = Arc::new(Callbacks {
        auth_token: auth_token.clone(),
        base: base.clone(),
        node: node.clone(),
        refused: crate::throttle::Throttle::default(),
    });
    info!(
        voice = %format!("{base}{CALLBACK_PREFIX}/voice/{{id}}"),
        sms = %super::texts::sms_webhook(&base),
        "Twilio callbacks served on the portal listener"
    );
    Some(
        Router::new()
            .route(&format!("{CALLBACK_PREFIX}/sms"), post(sms))
            // voice/{id} and status/{id}
            .route(&format!("{CALLBACK_PREFIX}/{{kind}}/{{id}}"), post(call))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(state),
    )
}

impl Callbacks {
    /// The form parameters of a correctly signed request, or the 403.
    fn verified(
        &self,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, Box<Response>> {
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let url = format!("{}{path}", self.base);
        let presented = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok());
        let ok = presented.is_some_and(|sig| {
            radmfa_gateway::twilio_signature_matches(&url, &params, &self.auth_token, sig)
        });
        if ok {
            return Ok(params);
        }
        let counters = self.node.counters();
        bump(&counters.callbacks_bad_signature);
        self.warn_refused(&url, presented.is_none());
        Err(Box::new(
            (StatusCode::FORBIDDEN, "bad or missing X-Twilio-Signature\n").into_response(),
        ))
    }

    /// One WARN a minute at most about refused callbacks, with the remedy.
    fn warn_refused(&self, url: &str, unsigned: bool) {
        let now = self.node.clock().now_unix();
        let Some(refused) = self.refused.due(now) else {
            return;
        };
        warn!(
            url = %crate::text::escape(url),
            refused,
            unsigned,
            "refused Twilio callback(s) without a valid X-Twilio-Signature ({refused} since the last warning); \
             if these come from Twilio, [gateway] callback_url must be exactly the base of the URL Twilio \
             requests (scheme, host, port and path prefix as the reverse proxy publishes them) and \
             api_key_file must hold the account's current auth token"
        );
    }

    /// Checks the signature, reads the answer the form carries (`read`:
    /// `None` when it holds none), delivers and counts it. `Ok(None)`: a
    /// signed callback without a readable answer (counted as unmatched).
    async fn receive(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        read: impl FnOnce(&[(String, String)]) -> Option<Answer>,
    ) -> Result<Option<Delivered>, Box<Response>> {
        let params = self.verified(uri, headers, body)?;
        let Some(answer) = read(&params) else {
            self.count(&Delivered::Unknown);
            return Ok(None);
        };
        let delivered = deliver(&self.node, answer).await;
        self.count(&delivered);
        Ok(Some(delivered))
    }

    /// Counts what became of a signed callback.
    fn count(&self, d: &Delivered) {
        let c = self.node.counters();
        bump(match d {
            Delivered::Done { .. } => &c.callbacks_decided,
            Delivered::Ignored => &c.callbacks_ignored,
            _ => &c.callbacks_unmatched,
        });
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

fn twiml(body: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{body}</Response>"),
    )
        .into_response()
}

/// A call's callbacks: `voice` (the `<Gather action>`: the keys pressed;
/// the TwiML answer is what the caller hears before the call ends) and
/// `status` (the `StatusCallback`: a busy line, no answer, a failed or
/// cancelled call ends the wait at once).
async fn call(
    State(cb): State<Arc<Callbacks>>,
    Path((kind, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let voice = match kind.as_str() {
        "voice" => true,
        "status" => false,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let read = |p: &[(String, String)]| {
        Some(if voice {
            let digits = param(p, "Digits").to_string();
            Answer::Keys { id, digits }
        } else {
            let status = param(p, "CallStatus").to_string();
            Answer::CallEnded { id, status }
        })
    };
    let delivered = match cb.receive(&uri, &headers, &body, read).await {
        Err(r) => return *r,
        Ok(_) if !voice => return twiml(""),
        Ok(d) => d,
    };
    // The language the call spoke (the action URL's `lang`, signed with it).
    let lang = uri
        .query()
        .and_then(|q| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .ok()?
                .into_iter()
                .find(|(k, _)| k == "lang")
        })
        .and_then(|(_, v)| Lang::parse(&v))
        .unwrap_or(Lang::En);
    let said = match delivered {
        Some(Delivered::Done { outcome, .. }) => match outcome {
            Outcome::Approved => Key::CallApproved,
            Outcome::WrongPin => Key::CallWrongPin,
            Outcome::Fraud => Key::CallFraudLocked,
            Outcome::NoInput => Key::CallNoKeyDenied,
            _ => Key::CallDenied,
        },
        Some(Delivered::OwnerUnreachable) => Key::CallNotRecorded,
        _ => Key::CallNoLongerValid,
    };
    twiml(&format!(
        "<Say language=\"{}\" voice=\"alice\">{} {}</Say><Hangup/>",
        lang.voice_tag(),
        crate::text::escape(said.text(lang)),
        crate::text::escape(Key::CallGoodbye.text(lang)),
    ))
}

/// The inbound-message webhook: a reply to a two-way SMS, matched by the
/// sender's number (and the reference, when given); the TwiML answer is an
/// SMS back to the user saying what happened.
async fn sms(
    State(cb): State<Arc<Callbacks>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = |p: &[(String, String)]| {
        let reply = read_reply(param(p, "Body"))?;
        Some(Answer::SmsReply {
            from: param(p, "From").to_string(),
            approve: reply.approve,
            reference: reply.reference,
        })
    };
    let delivered = match cb.receive(&uri, &headers, &body, reply).await {
        Err(r) => return *r,
        Ok(d) => d,
    };
    // The user's language when a verification was decided (the owner says
    // which); English when nothing was matched (no user known).
    let lang = match &delivered {
        Some(Delivered::Done { lang, .. }) => lang.as_deref().and_then(Lang::parse),
        _ => None,
    }
    .unwrap_or(Lang::En);
    let said = match delivered {
        None => Key::SmsReplyHelp,
        Some(Delivered::Done {
            outcome: Outcome::Approved,
            ..
        }) => Key::SmsReplyApproved,
        Some(Delivered::Done { .. }) => Key::SmsReplyDenied,
        Some(Delivered::Ambiguous) => Key::SmsReplyAmbiguous,
        Some(Delivered::OwnerUnreachable) => Key::SmsReplyNotRecorded,
        Some(_) => Key::SmsReplyNothingWaiting,
    };
    let said = crate::text::escape(said.text(lang));
    twiml(&format!("<Message>{said}</Message>"))
}
