//! Token operations: enroll (the one time a seed leaves the server), list,
//! show, delete and HOTP resynchronisation.

use radmfa_otp::{OtpKind, OtpauthParams};
use radmfa_store::{Secret, StoreError, Token, TokenAlgorithm, TokenKind};

use super::context::Ctx;
use super::error::{user_not_found, AdminError};
use super::request::NewToken;
use super::results::{Enrolled, Resynced, TokenDeleted, TokenView};

/// How far beyond the last used counter [`super::AdminRequest::TokenResync`]
/// searches for the two codes.
pub const HOTP_RESYNC_SEARCH: u64 = radmfa_otp::MAX_HOTP_RESYNC;

/// Enrolls `user`'s token; refuses to replace one unless asked.
pub fn enroll(ctx: Ctx<'_>, t: NewToken) -> Result<Enrolled, AdminError> {
    let user = t.user.clone();
    let (store, cfg) = (ctx.store, ctx.config);
    let (kind, algorithm, digits, period) = (t.kind, t.algorithm, t.digits, t.period);
    if !(6..=8).contains(&digits) {
        return Err(AdminError::Invalid(format!(
            "digits must be 6, 7 or 8, not {digits}"
        )));
    }
    if !(10..=300).contains(&period) {
        return Err(AdminError::Invalid(format!(
            "period must be between 10 and 300 seconds, not {period}"
        )));
    }
    let seed = zeroize::Zeroizing::new(match t.secret.as_deref() {
        Some(s) => radmfa_otp::base32_decode(s).map_err(|_| {
            AdminError::Invalid("the secret is not valid base32 (RFC 4648)".to_string())
        })?,
        None => radmfa_otp::generate_secret(match algorithm {
            TokenAlgorithm::Sha1 => 20,
            TokenAlgorithm::Sha256 => 32,
            TokenAlgorithm::Sha512 => 64,
        }),
    });
    if seed.len() < 10 {
        return Err(AdminError::Invalid(
            "the secret is too short: at least 80 bits (16 base32 characters)".to_string(),
        ));
    }
    if store.get_user(&user)?.is_none() {
        return Err(user_not_found(&user));
    }
    if !t.replace {
        if let Some(old) = store.get_token(&user)? {
            return Err(AdminError::Invalid(format!(
                "user {user} already has a {} token (enrolled {}); give --replace to replace it (the old one stops working)",
                kind_name(old.kind),
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(old.created)
                )
            )));
        }
    }
    let token = Token {
        kind,
        algorithm,
        digits,
        period,
        secret: Secret::new(seed.to_vec()),
        created: ctx.now,
    };
    store.put_token(&user, &token)?;
    let uri = radmfa_otp::otpauth_uri(&OtpauthParams {
        issuer: &cfg.otp_issuer,
        account: &user,
        secret: &seed,
        algorithm: otp_algorithm(algorithm),
        digits,
        kind: match kind {
            TokenKind::Totp => OtpKind::Totp { period },
            TokenKind::Hotp => OtpKind::Hotp { counter: 0 },
        },
    });
    let secret = radmfa_otp::base32_encode(&seed);
    Ok(Enrolled { user, uri, secret })
}

/// Every enrolled token (never a seed).
pub fn list(ctx: Ctx<'_>) -> Result<Vec<TokenView>, AdminError> {
    let store = ctx.store;
    let mut out = Vec::new();
    for u in store.list_users()? {
        if let Some(t) = store.get_token(&u.name)? {
            out.push(TokenView::new(&u.name, &t, store.otp_state(&u.name)?));
        }
    }
    Ok(out)
}

/// One user's token and its replay state.
pub fn show(ctx: Ctx<'_>, user: &str) -> Result<TokenView, AdminError> {
    let t = existing(ctx, user)?;
    Ok(TokenView::new(user, &t, ctx.store.otp_state(user)?))
}

/// Deletes a user's token (the user stays).
pub fn delete(ctx: Ctx<'_>, user: String) -> Result<TokenDeleted, AdminError> {
    if ctx.store.get_user(&user)?.is_none() {
        return Err(user_not_found(&user));
    }
    ctx.store.delete_token(&user)?;
    Ok(TokenDeleted {
        user,
        token: "deleted".to_string(),
    })
}

/// Finds two consecutive codes of an HOTP token beyond its look-ahead and
/// records the second as the last used (RFC 4226 §7.4).
pub fn resync(
    ctx: Ctx<'_>,
    user: String,
    first: &str,
    second: &str,
) -> Result<Resynced, AdminError> {
    let store = ctx.store;
    let t = existing(ctx, &user)?;
    if t.kind != TokenKind::Hotp {
        return Err(AdminError::Invalid(format!(
            "user {user} has a TOTP token: only HOTP counters are resynchronised (a TOTP token follows the clock)"
        )));
    }
    let next = store.otp_state(&user)?.map_or(0, |c| c.saturating_add(1));
    let hotp = radmfa_otp::Hotp {
        algorithm: otp_algorithm(t.algorithm),
        digits: t.digits,
        look_ahead: 0,
    };
    let used = hotp
        .resync(t.secret.expose(), first, second, next, HOTP_RESYNC_SEARCH)
        .map_err(|_| {
            AdminError::Invalid(format!(
                "the two codes are not consecutive codes of {user}'s token within {HOTP_RESYNC_SEARCH} counters of the last one used; press the button twice and give both codes in order"
            ))
        })?;
    store.advance_otp_states_logged(&[(user.clone(), used)])?;
    Ok(Resynced {
        user,
        last_used: used,
    })
}

/// The token of an existing user: "user not found" or "token not found".
fn existing(ctx: Ctx<'_>, user: &str) -> Result<Token, AdminError> {
    if ctx.store.get_user(user)?.is_none() {
        return Err(user_not_found(user));
    }
    Ok(ctx
        .store
        .get_token(user)?
        .ok_or_else(|| StoreError::NotFound {
            what: "token",
            name: user.to_string(),
        })?)
}

fn kind_name(k: TokenKind) -> &'static str {
    match k {
        TokenKind::Totp => "totp",
        TokenKind::Hotp => "hotp",
    }
}

fn otp_algorithm(a: TokenAlgorithm) -> radmfa_otp::Algorithm {
    match a {
        TokenAlgorithm::Sha1 => radmfa_otp::Algorithm::Sha1,
        TokenAlgorithm::Sha256 => radmfa_otp::Algorithm::Sha256,
        TokenAlgorithm::Sha512 => radmfa_otp::Algorithm::Sha512,
    }
}
