//! User operations: add, change, PIN, enable and disable, delete, lock and
//! unlock, password, list and show. The checks every user write shares
//! (contact fields, password length) live here too; the bulk import uses them.

use radmfa_store::{Method, User};

use super::context::Ctx;
use super::error::{user_not_found, AdminError};
use super::request::{NewUser, UserChange};
use super::results::{
    Deleted, Locked, PasswordChanged, PinMode, PinSet, Unlocked, UserAdded, UserEnabled, UserView,
};

/// Adds a user: contact fields, text, PIN and password checked first.
pub fn add(ctx: Ctx<'_>, n: NewUser) -> Result<UserAdded, AdminError> {
    let (store, cfg) = (ctx.store, ctx.config);
    if n.generate_pin {
        // `enroll.rs` generates it when it can mail it, and clears the flag.
        return Err(AdminError::Invalid(
            "a generated PIN needs the enrollment mail (send_email): the mail is the only \
             place it is told"
                .into(),
        ));
    }
    let mut u = User::new(&n.name);
    u.display_name = n.display_name;
    u.email = n.email;
    u.phone = n.phone;
    u.language = n.language;
    u.method = n.method;
    u.groups = n.groups;
    u.device_token = n.device_token;
    if !n.enabled {
        u.disable(radmfa_store::DisabledReason::Admin);
    }
    check_contact(&u)?;
    radmfa_store::check_user_text(None, &u)?;
    let pin = n.pin.map(zeroize::Zeroizing::new);
    if let Some(pin) = &pin {
        radmfa_store::validate_pin(pin.as_bytes())?;
    }
    if let Some(pw) = n.password.as_deref() {
        check_password(pw)?;
        u.password_hash = Some(radmfa_store::hash_password(
            pw.as_bytes(),
            &cfg.password_params(),
        )?);
    }
    let warnings = user_add_warnings(ctx, &u);
    store.add_user(&u)?;
    if let Some(pin) = &pin {
        store.set_pin_required(&n.name, Some(pin.as_bytes()), true)?;
    }
    let u = store.get_user(&n.name)?.unwrap_or(u);
    Ok(UserAdded {
        user: UserView::new(&u, None),
        warnings,
        enrollment_mail: None,
    })
}

/// Changes the given fields of an existing user.
pub fn set(ctx: Ctx<'_>, c: UserChange) -> Result<UserView, AdminError> {
    let store = ctx.store;
    let name = c.name.as_str();
    let mut probe = store.get_user(name)?.ok_or_else(|| user_not_found(name))?;
    let change = |u: &mut User| {
        if let Some(v) = &c.display_name {
            u.display_name.clone_from(v);
        }
        if let Some(v) = &c.email {
            u.email.clone_from(v);
        }
        if let Some(v) = &c.phone {
            u.phone.clone_from(v);
        }
        if let Some(v) = &c.language {
            u.language.clone_from(v);
        }
        if let Some(m) = c.method {
            u.method = m;
        }
        if let Some(v) = &c.device_token {
            u.device_token.clone_from(v);
        }
        if let Some(g) = &c.groups {
            u.groups.clone_from(g);
        }
    };
    change(&mut probe);
    check_contact(&probe)?;
    store.update_user(name, change)?;
    show(ctx, name)
}

/// Sets (PIN mode, a new PIN required at the portal) or clears a PIN.
pub fn pin(ctx: Ctx<'_>, name: String, pin: Option<String>) -> Result<PinSet, AdminError> {
    let pin = pin.map(zeroize::Zeroizing::new);
    ctx.store
        .set_pin_required(&name, pin.as_ref().map(|p| p.as_bytes()), true)?;
    Ok(PinSet {
        name,
        pin_mode: if pin.is_some() {
            PinMode::Pin
        } else {
            PinMode::Standard
        },
    })
}

/// The user chose a new PIN: set, no change required any more.
pub fn pin_change(ctx: Ctx<'_>, name: String, pin: String) -> Result<PinSet, AdminError> {
    let pin = zeroize::Zeroizing::new(pin);
    ctx.store
        .set_pin_required(&name, Some(pin.as_bytes()), false)?;
    Ok(PinSet {
        name,
        pin_mode: PinMode::Pin,
    })
}

/// Every user with their token.
pub fn list(ctx: Ctx<'_>) -> Result<Vec<UserView>, AdminError> {
    let users = ctx.store.list_users()?;
    let mut out = Vec::with_capacity(users.len());
    for u in &users {
        let t = ctx.store.get_token(&u.name)?;
        out.push(UserView::new(u, t.as_ref()));
    }
    Ok(out)
}

/// One user with their token.
pub fn show(ctx: Ctx<'_>, name: &str) -> Result<UserView, AdminError> {
    let u = ctx
        .store
        .get_user(name)?
        .ok_or_else(|| user_not_found(name))?;
    let t = ctx.store.get_token(name)?;
    Ok(UserView::new(&u, t.as_ref()))
}

/// Enables or disables (by an admin) a user.
pub fn set_enabled(ctx: Ctx<'_>, name: String, enabled: bool) -> Result<UserEnabled, AdminError> {
    ctx.store.set_user_enabled(&name, enabled)?;
    Ok(UserEnabled {
        name,
        enabled,
        disabled_reason: None,
    })
}

/// Disables a user who reported a sign-in as not theirs.
pub fn disable_fraud(ctx: Ctx<'_>, name: String) -> Result<UserEnabled, AdminError> {
    let reason = radmfa_store::DisabledReason::Fraud;
    ctx.store.disable_user(&name, reason)?;
    Ok(UserEnabled {
        name,
        enabled: false,
        disabled_reason: Some(reason.as_str().to_string()),
    })
}

/// Deletes a user and their token.
pub fn delete(ctx: Ctx<'_>, name: String) -> Result<Deleted, AdminError> {
    ctx.store.delete_user(&name)?;
    Ok(Deleted { deleted: name })
}

/// Lifts the lock recorded in a user's record.
pub fn unlock(ctx: Ctx<'_>, name: String) -> Result<Unlocked, AdminError> {
    let was = ctx
        .store
        .get_user(&name)?
        .ok_or_else(|| user_not_found(&name))?;
    crate::limits::persist_lock(ctx.store, &name, 0, "")?;
    Ok(Unlocked {
        name,
        was_locked_until: was.locked_until,
        was_lock_reason: was.lock_reason,
    })
}

/// Writes a lock into a user's record.
pub fn lock(ctx: Ctx<'_>, name: String, until: u64, reason: String) -> Result<Locked, AdminError> {
    crate::limits::persist_lock(ctx.store, &name, until, &reason)?;
    Ok(Locked {
        name,
        locked_until: until,
        lock_reason: reason,
    })
}

/// Sets a user's password.
pub fn passwd(ctx: Ctx<'_>, name: String, password: String) -> Result<PasswordChanged, AdminError> {
    check_password(&password)?;
    ctx.store
        .set_password(&name, password.as_bytes(), &ctx.config.password_params())?;
    Ok(PasswordChanged {
        name,
        password: "changed".to_string(),
    })
}

/// Why a new user cannot log in yet, in words an admin acts on: a method
/// that needs a phone without one, or no password while a policy in use
/// checks a local password. The login's audit reason says the same.
fn user_add_warnings(ctx: Ctx<'_>, u: &User) -> Vec<String> {
    let (store, cfg) = (ctx.store, ctx.config);
    let mut out = Vec::new();
    if matches!(u.method, Method::Sms | Method::SmsTwoWay | Method::Call) && u.phone.is_empty() {
        out.push(format!(
            "user {} has method {} but no phone number: logins are rejected (audit reason phone_missing) until `radmfa user set {} --phone +E164`",
            u.name, u.method, u.name
        ));
    }
    if u.password_hash.is_none() {
        let mut used: Vec<String> = cfg.clients.iter().map(|c| c.policy.clone()).collect();
        used.extend(
            store
                .list_clients()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.policy),
        );
        if let Some(r) = &cfg.radsec {
            used.extend(r.clients.iter().map(|c| c.policy.clone()));
        }
        if used.is_empty() {
            used.push("default".to_string());
        }
        used.sort();
        used.dedup();
        let local: Vec<String> = used
            .into_iter()
            .filter(|p| cfg.policy(p).first_factor == crate::config::FirstFactor::Local)
            .map(|p| format!("{p:?}"))
            .collect();
        if !local.is_empty() {
            out.push(format!(
                "user {} has no password, and policy {} checks a local password (first_factor = \"local\"): those logins are rejected (audit reason no_password) until `radmfa user passwd {} --password-stdin`",
                u.name,
                local.join(", "),
                u.name
            ));
        }
    }
    out
}

/// Checks the contact fields a user's method needs, when they are given: an
/// E.164 phone number (`+` and 8 to 15 digits), a language radmfa speaks
/// (en, nl, de, fr, with a region or not), a printable device token.
/// Missing ones are allowed (the user is told at login), wrong ones are not.
pub fn check_contact(u: &User) -> Result<(), AdminError> {
    if !u.phone.is_empty() {
        let digits = u.phone.strip_prefix('+').unwrap_or("");
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AdminError::Invalid(format!(
                "phone {:?} is not an E.164 number (+ and 8 to 15 digits, e.g. +31612345678)",
                u.phone
            )));
        }
    }
    crate::i18n::check_language_tag(&u.language).map_err(AdminError::Invalid)?;
    if u.device_token.len() > 4096 || u.device_token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(AdminError::Invalid(
            "device token must be at most 4096 printable characters without spaces".to_string(),
        ));
    }
    Ok(())
}

/// A password RADIUS can carry with an inline code.
pub fn check_password(pw: &str) -> Result<(), AdminError> {
    if pw.is_empty() || pw.len() > 120 {
        return Err(AdminError::Invalid(
            "a password must have 1 to 120 characters (RADIUS carries at most 128 bytes, and the inline code needs room)".to_string(),
        ));
    }
    Ok(())
}
