//! The bulk user import: every row checked before anything is written,
//! passwords hashed on every core, then written in batches.

use radmfa_store::{Secret, StoreError, Token, TokenAlgorithm, TokenKind, User};

use super::context::Ctx;
use super::error::AdminError;
use super::request::ImportRow;
use super::results::Imported;
use super::users::{check_contact, check_password};

/// Adds or updates users from `rows`.
pub fn import(ctx: Ctx<'_>, rows: Vec<ImportRow>) -> Result<Imported, AdminError> {
    let (store, cfg) = (ctx.store, ctx.config);
    // Validate everything before writing anything.
    let mut seeds = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        if let Some(pw) = r.password.as_deref().filter(|p| !p.is_empty()) {
            check_password(pw).map_err(|e| AdminError::Invalid(format!("row {}: {e}", i + 1)))?;
        }
        let seed = match r.totp_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(radmfa_otp::base32_decode(s).map_err(|_| {
                AdminError::Invalid(format!(
                    "row {} ({:?}): totp_secret is not base32",
                    i + 1,
                    r.name
                ))
            })?),
            None => None,
        };
        seeds.push(seed);
    }
    // argon2 is the slow part: hash on every core.
    let params = cfg.password_params();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = rows.len().div_ceil(threads).max(1);
    let hashes: Vec<Result<Option<String>, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|r| match r.password.as_deref().filter(|p| !p.is_empty()) {
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
    let now = ctx.now;
    let mut items = Vec::with_capacity(rows.len());
    for (i, ((r, hash), seed)) in rows.iter().zip(hashes).zip(seeds).enumerate() {
        let hash = hash?;
        let old = store.get_user(&r.name)?;
        let mut u = old.clone().unwrap_or_else(|| User::new(&r.name));
        if !r.display_name.is_empty() {
            u.display_name = r.display_name.clone();
        }
        if !r.email.is_empty() {
            u.email = r.email.clone();
        }
        if !r.phone.is_empty() {
            u.phone = r.phone.clone();
        }
        if let Some(m) = r.method {
            u.method = m;
        }
        if !r.device_token.is_empty() {
            u.device_token = r.device_token.clone();
        }
        radmfa_store::check_user_text(old.as_ref(), &u)
            .map_err(|e| AdminError::Invalid(format!("row {}: {e}", i + 1)))?;
        check_contact(&u).map_err(|e| AdminError::Invalid(format!("user {:?}: {e}", u.name)))?;
        if hash.is_some() {
            u.password_hash = hash;
        }
        let token = seed.map(|seed| Token {
            kind: TokenKind::Totp,
            algorithm: TokenAlgorithm::Sha1,
            digits: cfg.otp_digits,
            period: 30,
            secret: Secret::new(seed),
            created: now,
        });
        items.push((u, token));
    }
    // Every row was validated above. Written in transactions of IMPORT_BATCH
    // rows (one huge sled transaction would hold the whole import in memory
    // several times over); a storage failure midway keeps the batches before
    // it and says how far it got.
    const IMPORT_BATCH: usize = 10_000;
    let mut added = 0u64;
    for (i, batch) in items.chunks(IMPORT_BATCH).enumerate() {
        added += store.put_users(batch).map_err(|e| {
            AdminError::Invalid(format!(
                "import stopped after {} of {} rows: {e}",
                i * IMPORT_BATCH,
                items.len()
            ))
        })? as u64;
    }
    let updated = items.len() as u64 - added;
    Ok(Imported { added, updated })
}
