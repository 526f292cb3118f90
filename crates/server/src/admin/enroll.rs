//! The enrollment mail for users an admin adds (`radmfa user add
//! --send-email`, `radmfa user import --send-email`, the API's
//! `send_email`), as a directory sync sends it to the users it adds, and
//! the initial PIN of PIN mode that only this mail tells.
//!
//! Apart from `users.rs` and `import.rs` because it wraps them: it decides
//! before the write whether a mail can go out at all (a `[mail]` section
//! and an address), generates the PIN only then, lets the operation write
//! the user, and sends the mail (async, SMTP) after it succeeded. So a
//! replica's refusal (read-only) comes before any mail and the primary, to
//! which the request is forwarded as it was asked, generates and mails.
//!
//! What happens when no mail can be sent: the user is still created, the
//! answer carries a warning per user saying why. A PIN is generated only
//! when its mail can be sent; if sending then fails, the generated PIN is
//! cleared again (the user is left in standard mode, as without a PIN), so
//! no user holds a PIN nobody was told; the admin sets one with `radmfa
//! user pin`. The PIN is never in an answer, a log line or the audit log.

use std::future::Future;

use radmfa_store::Store;
use serde_json::Value;

use super::error::AdminError;
use super::request::{AdminRequest, NewUser};
use super::results::{EnrollmentMail, ImportMail, UserAdded};
use crate::config::RuntimeConfig;
use crate::mail::{Enrollment, MailMethod, Mailer};
use crate::portal::pin_policy::{generate_pin, pin_min_length};

/// Whether `req` sends enrollment mail (the CLI then runs it with an async
/// runtime, [`execute_mailing`]).
pub fn sends_mail(req: &AdminRequest) -> bool {
    matches!(
        req,
        AdminRequest::UserAdd(NewUser {
            send_email: true,
            ..
        }) | AdminRequest::UserImport {
            send_email: true,
            ..
        }
    )
}

/// Runs `req` on the store directly (the CLI while no server runs): as
/// [`super::execute`], and the enrollment mail of a `send_email` request.
pub async fn execute_mailing(
    store: &Store,
    cfg: &RuntimeConfig,
    req: AdminRequest,
) -> Result<Value, AdminError> {
    let run = |req| async move { super::execute(store, cfg, req) };
    match req {
        AdminRequest::UserAdd(n) if n.send_email => add_with_mail(store, cfg, n, run).await,
        req @ AdminRequest::UserImport {
            send_email: true, ..
        } => import_with_mail(store, cfg, req, run).await,
        req => super::execute(store, cfg, req),
    }
}

/// Why no mail can go to `email`, if so.
fn no_mail(cfg: &RuntimeConfig, email: &str) -> Option<&'static str> {
    if cfg.mail.is_none() {
        Some("no [mail] section in the configuration")
    } else if email.trim().is_empty() {
        Some("the user has no email address")
    } else {
        None
    }
}

/// The mailer of `cfg` (checked at start-up, so an error here is rare).
fn mailer(cfg: &RuntimeConfig) -> Result<Mailer, String> {
    let mc = cfg
        .mail
        .clone()
        .ok_or("no [mail] section in the configuration")?;
    Mailer::new(mc).map_err(|e| e.to_string())
}

/// Adds the user `n` describes through `run` (the store write: the admin
/// service's blocking call, or [`super::execute`]) and sends their
/// enrollment mail, with a generated initial PIN when `n.generate_pin`.
pub async fn add_with_mail<F, Fut>(
    store: &Store,
    cfg: &RuntimeConfig,
    mut n: NewUser,
    run: F,
) -> Result<Value, AdminError>
where
    F: FnOnce(AdminRequest) -> Fut,
    Fut: Future<Output = Result<Value, AdminError>>,
{
    let generate = n.generate_pin;
    if generate && n.pin.is_some() {
        return Err(AdminError::Invalid(
            "give a PIN or have one generated, not both".into(),
        ));
    }
    // Generated here or not at all: the store write sees a PIN or none.
    n.generate_pin = false;
    let name = n.name.clone();
    let blocked = no_mail(cfg, &n.email);
    let mut warnings = Vec::new();
    let mut pin = None;
    if generate {
        match blocked {
            None => {
                let p = generate_pin(pin_min_length(cfg), &n.phone);
                n.pin = Some(p.as_str().to_owned());
                pin = Some(p);
            }
            Some(why) => warnings.push(format!(
                "no PIN generated for {name} ({why}): the user is in standard mode until you set \
                 one with `radmfa user pin {name} --pin-stdin`"
            )),
        }
    }
    let answer = run(AdminRequest::UserAdd(n)).await?;
    let mut added: UserAdded = serde_json::from_value(answer)
        .map_err(|e| AdminError::Invalid(format!("unexpected answer: {e}")))?;
    let user = store.get_user(&name)?;
    let template = user
        .as_ref()
        .map(|u| MailMethod::for_user(u).as_str().to_owned());
    let sent = match (blocked, &user) {
        (Some(why), _) => Err(why.to_owned()),
        (None, None) => Err("the user is gone".to_owned()),
        (None, Some(u)) => match mailer(cfg) {
            Ok(m) => {
                let e = Enrollment::of_user(u, pin.as_deref().map(String::as_str));
                m.send_enrollment(&e).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        },
    };
    let mut pin_generated = pin.is_some();
    if let Err(why) = &sent {
        warnings.push(format!("no enrollment mail sent to {name}: {why}"));
        if pin_generated {
            // Nobody was told this PIN: take it away again.
            store.set_pin_required(&name, None, false)?;
            pin_generated = false;
            warnings.push(format!(
                "the generated PIN was not delivered and is cleared: {name} is in standard mode \
                 until you set one with `radmfa user pin {name} --pin-stdin`"
            ));
            added.user.pin_mode = super::results::PinMode::Standard;
            added.user.pin_change_required = false;
        }
    }
    added.warnings.extend(warnings);
    added.enrollment_mail = Some(EnrollmentMail {
        sent: sent.is_ok(),
        template: template.filter(|_| !added.user.email.is_empty()),
        pin_generated,
    });
    serde_json::to_value(added).map_err(|e| AdminError::Invalid(e.to_string()))
}

/// Runs the import `req` (a [`AdminRequest::UserImport`]) through `run`
/// and, once it succeeded, sends the enrollment mail to each user it added
/// (not to those it updated, nor to rows `continue_on_error` left out;
/// nothing on a dry run). No PIN is generated here: a PIN an import sets is
/// one the user knows.
pub async fn import_with_mail<F, Fut>(
    store: &Store,
    cfg: &RuntimeConfig,
    req: AdminRequest,
    run: F,
) -> Result<Value, AdminError>
where
    F: FnOnce(AdminRequest) -> Fut,
    Fut: Future<Output = Result<Value, AdminError>>,
{
    let AdminRequest::UserImport {
        rows,
        dry_run,
        continue_on_error,
        source,
        rejected,
        send_email: _,
    } = req
    else {
        return run(req).await;
    };
    let mut new = Vec::new();
    for r in &rows {
        if store.get_user(&r.name)?.is_none() && !new.contains(&r.name) {
            new.push(r.name.clone());
        }
    }
    let answer = run(AdminRequest::UserImport {
        rows,
        dry_run,
        continue_on_error,
        source,
        rejected,
        send_email: false,
    })
    .await?;
    if dry_run {
        return Ok(answer);
    }
    let mut answer = answer;
    let mut report = ImportMail::default();
    let mailer = match mailer(cfg) {
        Ok(m) => Some(m),
        Err(why) => {
            if !new.is_empty() {
                report
                    .warnings
                    .push(format!("no enrollment mail sent: {why}"));
            }
            None
        }
    };
    for name in new.iter().filter(|_| mailer.is_some()) {
        let Some(u) = store.get_user(name)? else {
            continue;
        };
        if let Some(why) = no_mail(cfg, &u.email) {
            report
                .warnings
                .push(format!("no enrollment mail sent to {name}: {why}"));
            continue;
        }
        let Some(m) = &mailer else { continue };
        match m.send_enrollment(&Enrollment::of_user(&u, None)).await {
            Ok(()) => report.sent += 1,
            Err(e) => report
                .warnings
                .push(format!("no enrollment mail sent to {name}: {e}")),
        }
    }
    if let Value::Object(obj) = &mut answer {
        let v = serde_json::to_value(report).map_err(|e| AdminError::Invalid(e.to_string()))?;
        obj.insert("enrollment_mail".into(), v);
    }
    Ok(answer)
}
