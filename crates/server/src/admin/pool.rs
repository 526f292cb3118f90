//! Imported tokens by serial (PSKC files, see [`crate::pskc`]): import,
//! assign to a user, list, revoke. Separate from [`super::tokens`], which
//! handles the token a user has, because these exist before any user does.

use radmfa_store::{PoolEntry, PoolToken, Secret, StoreError, Token};

use super::context::Ctx;
use super::error::{user_not_found, AdminError};
use super::request::TokenImport;
use super::results::{PoolChanged, TokensImported};

/// Written in transactions of this many tokens (see `import.rs`).
const BATCH: usize = 10_000;

/// Imports tokens by serial: all checked first (serial free, seed and
/// parameters valid), then written; a token whose file names a user that
/// exists is assigned to them.
pub fn import(ctx: Ctx<'_>, t: TokenImport) -> Result<TokensImported, AdminError> {
    let store = ctx.store;
    let mut pool = Vec::with_capacity(t.tokens.len());
    let mut changes = Vec::with_capacity(t.tokens.len());
    let mut assign = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for it in &t.tokens {
        let bad =
            |m: String| AdminError::Invalid(format!("token {}: {m}; nothing imported", it.serial));
        radmfa_store::validate_serial(&it.serial).map_err(|e| bad(e.to_string()))?;
        if !seen.insert(it.serial.as_str()) {
            return Err(bad("the serial appears twice in the file".into()));
        }
        if store.pool_token(&it.serial)?.is_some() {
            return Err(bad(
                "already imported (revoke it first to import it again)".into()
            ));
        }
        if !(6..=8).contains(&it.digits) {
            return Err(bad(format!("{} digits is not 6, 7 or 8", it.digits)));
        }
        let seed = data_encoding::HEXLOWER_PERMISSIVE
            .decode(it.secret_hex.as_bytes())
            .map_err(|_| bad("the secret is not hex".into()))?;
        let mut line = format!(
            "{}: {} {} {} digits{}",
            it.serial,
            it.kind,
            it.algorithm,
            it.digits,
            match it.kind {
                radmfa_store::TokenKind::Totp => format!(", {} s", it.period),
                radmfa_store::TokenKind::Hotp => format!(", counter {}", it.counter),
            }
        );
        if it.time_drift != 0 {
            line.push_str(&format!(
                " (time drift {} intervals not applied)",
                it.time_drift
            ));
        }
        if let Some(uid) = &it.user_id {
            match user_for(ctx, uid)? {
                Some(u) => {
                    line.push_str(&format!(", assigned to {u}"));
                    assign.push((it.serial.clone(), u));
                }
                None => line.push_str(&format!(", unassigned (no user {uid:?})")),
            }
        } else {
            line.push_str(", unassigned");
        }
        changes.push(line);
        pool.push(PoolToken {
            serial: it.serial.clone(),
            manufacturer: it.manufacturer.clone(),
            counter: it.counter,
            token: Token {
                kind: it.kind,
                algorithm: it.algorithm,
                digits: it.digits,
                period: it.period,
                secret: Secret::new(seed),
                created: ctx.now,
            },
        });
    }
    if !t.dry_run {
        for (i, batch) in pool.chunks(BATCH).enumerate() {
            store.put_pool_tokens(batch).map_err(|e| {
                AdminError::Invalid(format!(
                    "import stopped after {} of {} tokens: {e}",
                    i * BATCH,
                    pool.len()
                ))
            })?;
        }
        for (serial, user) in &assign {
            store.assign_pool_token(serial, user)?;
        }
    }
    Ok(TokensImported {
        imported: pool.len() as u64,
        dry_run: t.dry_run,
        changes,
        skipped: t.skipped,
    })
}

/// The user a PSKC `UserId` names: the name itself, or the value of its
/// first RDN (`UID=jsmith,DC=example,DC=net` is `jsmith`).
fn user_for(ctx: Ctx<'_>, uid: &str) -> Result<Option<String>, AdminError> {
    if ctx.store.get_user(uid)?.is_some() {
        return Ok(Some(uid.to_string()));
    }
    let rdn = uid
        .split(',')
        .next()
        .and_then(|r| r.split_once('='))
        .map(|(_, v)| v.trim());
    match rdn {
        Some(v) if !v.is_empty() && ctx.store.get_user(v)?.is_some() => Ok(Some(v.to_string())),
        _ => Ok(None),
    }
}

/// Assigns an imported token to a user.
pub fn assign(ctx: Ctx<'_>, serial: String, user: String) -> Result<PoolChanged, AdminError> {
    if ctx.store.get_user(&user)?.is_none() {
        return Err(user_not_found(&user));
    }
    let e = ctx
        .store
        .assign_pool_token(&serial, &user)
        .map_err(not_found)?;
    Ok(PoolChanged {
        serial,
        user: e.user,
    })
}

/// The imported tokens (all, or only the unassigned ones).
pub fn list(ctx: Ctx<'_>, unassigned: bool) -> Result<Vec<PoolEntry>, AdminError> {
    let mut all = ctx.store.pool_tokens()?;
    if unassigned {
        all.retain(|e| e.user.is_none());
    }
    Ok(all)
}

/// Revokes an imported token (from its user too).
pub fn revoke(ctx: Ctx<'_>, serial: String) -> Result<PoolChanged, AdminError> {
    let user = ctx.store.revoke_pool_token(&serial).map_err(not_found)?;
    Ok(PoolChanged { serial, user })
}

fn not_found(e: StoreError) -> AdminError {
    AdminError::from(e)
}

/// The import request of a parsed PSKC file.
pub fn from_pskc(f: crate::pskc::PskcFile, dry_run: bool) -> TokenImport {
    TokenImport {
        tokens: f
            .tokens
            .into_iter()
            .map(|t| {
                let p = t.pool;
                let tok = &p.token;
                super::request::ImportedToken {
                    secret_hex: data_encoding::HEXLOWER.encode(tok.secret.expose()),
                    kind: tok.kind,
                    algorithm: tok.algorithm,
                    digits: tok.digits,
                    period: tok.period,
                    serial: p.serial.clone(),
                    manufacturer: p.manufacturer.clone(),
                    counter: p.counter,
                    time_drift: t.time_drift,
                    user_id: t.user_id,
                }
            })
            .collect(),
        skipped: f.skipped,
        dry_run,
    }
}
