//! The bulk user import: every row checked before anything is written
//! (each refusal names its line and column), passwords hashed on every
//! core, then written in batches. All or nothing unless the caller asks
//! to import the good rows and list the bad; a dry run reports per row
//! what would change, never a secret.

use radmfa_store::{Secret, StoreError, Token, TokenAlgorithm, TokenKind, User};

use super::context::Ctx;
use super::error::AdminError;
use super::import_csv::RowError;
use super::request::ImportRow;
use super::results::Imported;
use super::users::{check_contact, check_password};

/// How an import runs ([`super::AdminRequest::UserImport`]'s flags).
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Write nothing; report.
    pub dry_run: bool,
    /// Import the good rows, list the bad.
    pub continue_on_error: bool,
    /// The file name, for messages.
    pub source: String,
    /// Rows the caller could not parse (already rendered).
    pub rejected: Vec<String>,
}

/// One checked row, ready to write.
struct Checked {
    user: User,
    token: Option<(Token, Option<u64>)>,
    change: String,
}

/// Adds or updates users from `rows`.
pub fn import(
    ctx: Ctx<'_>,
    rows: Vec<ImportRow>,
    opts: ImportOptions,
) -> Result<Imported, AdminError> {
    let store = ctx.store;
    let mut failed = opts.rejected.clone();
    let mut checked = Vec::with_capacity(rows.len());
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        let res = if seen.insert(r.name.as_str()) {
            check_row(ctx, r)
        } else {
            Err(at(
                r,
                Some("name"),
                format!("user {:?} appears on an earlier line", r.name),
            ))
        };
        match res {
            Ok(c) => checked.push((r, c)),
            Err(e) => failed.push(e.render(&opts.source)),
        }
    }
    if !failed.is_empty() && !opts.continue_on_error {
        return Err(AdminError::Invalid(refusal(
            &failed,
            rows.len() + opts.rejected.len(),
        )));
    }
    let hashes = hash_passwords(ctx, &checked.iter().map(|(r, _)| *r).collect::<Vec<_>>())?;
    let mut items = Vec::with_capacity(checked.len());
    let mut changes = Vec::with_capacity(checked.len());
    let mut added = 0u64;
    for ((r, mut c), hash) in checked.into_iter().zip(hashes) {
        if let Some(h) = hash {
            c.user.password_hash = Some(h);
        }
        if store.get_user(&r.name)?.is_none() {
            added += 1;
        }
        changes.push(c.change);
        items.push((c.user, c.token));
    }
    let total = items.len() as u64;
    if !opts.dry_run {
        // Every row was validated above. Written in transactions of
        // IMPORT_BATCH rows (one huge sled transaction would hold the whole
        // import in memory several times over); a storage failure midway
        // keeps the batches before it and says how far it got.
        const IMPORT_BATCH: usize = 10_000;
        for (i, batch) in items.chunks(IMPORT_BATCH).enumerate() {
            store.put_users_with_state(batch).map_err(|e| {
                AdminError::Invalid(format!(
                    "import stopped after {} of {} rows: {e}",
                    i * IMPORT_BATCH,
                    items.len()
                ))
            })?;
        }
    }
    Ok(Imported {
        added,
        updated: total - added,
        dry_run: opts.dry_run,
        // Row by row only for a dry run: a migration of 100,000 users
        // answers with its counts (and its bad rows), not 100,000 lines.
        changes: if opts.dry_run { changes } else { Vec::new() },
        failed,
    })
}

/// The error of an all-or-nothing import: every bad row (up to 100).
fn refusal(failed: &[String], rows: usize) -> String {
    const SHOWN: usize = 100;
    let mut msg = format!(
        "nothing imported: {} of {} rows have errors (fix them, or give --continue-on-error to import the others):",
        failed.len(),
        rows
    );
    for f in failed.iter().take(SHOWN) {
        msg.push_str("\n  ");
        msg.push_str(f);
    }
    if failed.len() > SHOWN {
        msg.push_str(&format!("\n  ... and {} more", failed.len() - SHOWN));
    }
    msg
}

fn at(r: &ImportRow, column: Option<&str>, message: impl Into<String>) -> RowError {
    RowError {
        line: r.line,
        column: column.map(String::from),
        message: message.into(),
    }
}

/// Checks one row against the stored user and builds the new record.
fn check_row(ctx: Ctx<'_>, r: &ImportRow) -> Result<Checked, RowError> {
    let col = |c: &'static str| move |e: String| at(r, Some(c), e);
    if let Some(pw) = r.password.as_deref() {
        check_password(pw).map_err(|e| col("password")(e.to_string()))?;
    }
    radmfa_store::check_language(&r.language).map_err(|e| col("language")(plain(e)))?;
    check_extension(&r.extension).map_err(col("extension"))?;
    let old = ctx
        .store
        .get_user(&r.name)
        .map_err(|e| at(r, None, e.to_string()))?;
    let mut u = old.clone().unwrap_or_else(|| User::new(&r.name));
    let mut changed: Vec<String> = Vec::new();
    let mut set = |field: &str, cur: &mut String, new: &str| {
        if !new.is_empty() && cur != new {
            *cur = new.to_string();
            changed.push(format!("{field}={new}"));
        }
    };
    set("display_name", &mut u.display_name, &r.display_name);
    set("email", &mut u.email, &r.email);
    set("phone", &mut u.phone, &r.phone);
    set("extension", &mut u.extension, &r.extension);
    set("language", &mut u.language, &r.language);
    if !r.device_token.is_empty() && u.device_token != r.device_token {
        u.device_token = r.device_token.clone();
        changed.push("device_token".into());
    }
    if let Some(m) = r.method.filter(|m| *m != u.method) {
        u.method = m;
        changed.push(format!("method={m}"));
    }
    if let Some(g) = r.groups.as_ref().filter(|g| **g != u.groups) {
        u.groups = g.clone();
        changed.push(format!("groups={}", g.join(";")));
    }
    match r.enabled {
        Some(true) if !u.enabled => {
            u.enable();
            changed.push("enabled".into());
        }
        Some(false) if u.enabled => {
            u.disable(radmfa_store::DisabledReason::Admin);
            changed.push("disabled".into());
        }
        _ => {}
    }
    radmfa_store::check_user_text(old.as_ref(), &u).map_err(|e| at(r, None, plain(e)))?;
    check_contact(&u).map_err(|e| col("phone")(e.to_string()))?;
    if let Some(pin) = r.pin.as_deref() {
        u.pin = Some(
            ctx.store
                .seal_pin(&r.name, pin.as_bytes())
                .map_err(|e| col("pin")(plain(e)))?,
        );
        u.pin_change_required = true;
        changed.push("pin (to be changed by the user)".into());
    }
    if r.password.is_some() {
        changed.push("password".into());
    }
    let token = token(ctx, r)?;
    if let Some((t, _)) = &token {
        changed.push(format!(
            "{} token ({}, {} digits{})",
            t.kind,
            t.algorithm,
            t.digits,
            match t.kind {
                TokenKind::Totp => format!(", {} s", t.period),
                TokenKind::Hotp => format!(", counter {}", r.counter.unwrap_or(0)),
            }
        ));
    }
    let verb = if old.is_some() { "update" } else { "add" };
    let what = if changed.is_empty() {
        "no change".to_string()
    } else {
        changed.join(", ")
    };
    Ok(Checked {
        user: u,
        token,
        change: format!("line {}: {verb} {}: {what}", r.line, r.name),
    })
}

/// A store error's message without its kind's prefix.
fn plain(e: StoreError) -> String {
    match e {
        StoreError::Invalid(m) => m,
        e => e.to_string(),
    }
}

/// The row's token: the seed and its parameters, checked. Token fields
/// without a seed are an error (they would be silently ignored).
fn token(ctx: Ctx<'_>, r: &ImportRow) -> Result<Option<(Token, Option<u64>)>, RowError> {
    let Some(seed) = r.totp_secret.as_deref() else {
        let given = [
            ("token_type", r.token_type.is_some()),
            ("algorithm", r.algorithm.is_some()),
            ("digits", r.digits.is_some()),
            ("period", r.period.is_some()),
            ("counter", r.counter.is_some()),
        ];
        if let Some((c, _)) = given.iter().find(|(_, g)| *g) {
            return Err(at(
                r,
                Some(c),
                "a token field without a seed (column \"totp_secret\")",
            ));
        }
        return Ok(None);
    };
    let seed = radmfa_otp::base32_decode(seed)
        .map_err(|_| at(r, Some("totp_secret"), "not base32 (RFC 4648)"))?;
    if seed.len() < 10 {
        return Err(at(
            r,
            Some("totp_secret"),
            "too short: at least 80 bits (16 base32 characters)",
        ));
    }
    let kind = r.token_type.unwrap_or(TokenKind::Totp);
    let digits = r.digits.unwrap_or(ctx.config.otp_digits);
    if !(6..=8).contains(&digits) {
        return Err(at(r, Some("digits"), format!("{digits} is not 6, 7 or 8")));
    }
    let period = r.period.unwrap_or(30);
    if !(10..=300).contains(&period) {
        return Err(at(
            r,
            Some("period"),
            format!("{period} is not between 10 and 300 seconds"),
        ));
    }
    if kind == TokenKind::Totp && r.counter.is_some() {
        return Err(at(
            r,
            Some("counter"),
            "a counter is for token_type hotp only",
        ));
    }
    if kind == TokenKind::Hotp && r.period.is_some() {
        return Err(at(
            r,
            Some("period"),
            "a period is for token_type totp only",
        ));
    }
    let state = r.counter.filter(|c| *c > 0).map(|c| c - 1);
    Ok(Some((
        Token {
            kind,
            algorithm: r.algorithm.unwrap_or(TokenAlgorithm::Sha1),
            digits,
            period,
            secret: Secret::new(seed),
            created: ctx.now,
        },
        state,
    )))
}

/// A phone extension: up to 32 of `0-9 * # w` (`w`: a half-second pause,
/// as Twilio's `sendDigits` takes it).
fn check_extension(ext: &str) -> Result<(), String> {
    if ext.len() > 32
        || !ext
            .bytes()
            .all(|b| b.is_ascii_digit() || b"*#w".contains(&b))
    {
        return Err(format!(
            "{ext:?} is not an extension (up to 32 of 0-9, *, # and w for a pause)"
        ));
    }
    Ok(())
}

/// argon2 is the slow part: hash on every core. `None` for rows without
/// a password.
fn hash_passwords(ctx: Ctx<'_>, rows: &[&ImportRow]) -> Result<Vec<Option<String>>, AdminError> {
    let params = ctx.config.password_params();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = rows.len().div_ceil(threads).max(1);
    let hashes: Vec<Result<Option<String>, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|r| match r.password.as_deref() {
                            Some(pw) => {
                                radmfa_store::hash_password(pw.as_bytes(), &params).map(Some)
                            }
                            None => Ok(None),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    if hashes.len() != rows.len() {
        return Err(AdminError::Invalid("password hashing failed".to_string()));
    }
    hashes
        .into_iter()
        .map(|h| h.map_err(AdminError::from))
        .collect()
}
