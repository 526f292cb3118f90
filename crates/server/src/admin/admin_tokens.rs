//! Admin API token operations: create (the token shown once, its SHA-256
//! stored), list, revoke.

use super::context::Ctx;
use super::error::AdminError;
use super::results::{AdminTokenCreated, AdminTokenView, Revoked};

/// Creates a token with `scopes` ([`crate::api::SCOPES`]).
pub fn create(
    ctx: Ctx<'_>,
    name: String,
    scopes: &[String],
) -> Result<AdminTokenCreated, AdminError> {
    let scopes = crate::api::auth::normalize_scopes(scopes).map_err(AdminError::Invalid)?;
    let token = crate::api::auth::new_token();
    ctx.store.add_admin_token(&radmfa_store::AdminToken {
        name: name.clone(),
        scopes: scopes.clone(),
        hash: radmfa_store::admin_token_hash(token.as_bytes()),
        created: ctx.now,
    })?;
    Ok(AdminTokenCreated {
        name,
        scopes,
        created: ctx.now,
        token: token.as_str().to_string(),
    })
}

/// Every token's name, scopes and creation time.
pub fn list(ctx: Ctx<'_>) -> Result<Vec<AdminTokenView>, AdminError> {
    Ok(ctx
        .store
        .list_admin_tokens()?
        .into_iter()
        .map(|t| AdminTokenView {
            name: t.name,
            scopes: t.scopes,
            created: t.created,
        })
        .collect())
}

/// Revokes a token.
pub fn revoke(ctx: Ctx<'_>, name: String) -> Result<Revoked, AdminError> {
    ctx.store.delete_admin_token(&name)?;
    Ok(Revoked { revoked: name })
}
