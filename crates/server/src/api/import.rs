//! The request bodies of the migration imports on the API (`POST
//! /api/v1/users/import` with a CSV body, `POST /api/v1/tokens/import`
//! with a PSKC document) turned into admin requests by the same parsers
//! the CLI uses. Pure: the handlers in `mod.rs` authorize and run them.

use serde::Deserialize;
use zeroize::Zeroizing;

use super::error::ApiError;
use crate::admin::import_csv::parse_csv;
use crate::admin::pool::from_pskc;
use crate::admin::AdminRequest;
use crate::pskc::{self, PskcKey};

/// `?dry_run=true&continue_on_error=true&send_email=true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    continue_on_error: bool,
    /// The enrollment mail to each user the import added.
    #[serde(default)]
    send_email: bool,
}

/// The user import of a CSV body; a header problem is a 400.
pub(super) fn csv_request(body: &[u8], q: ImportQuery) -> Result<AdminRequest, ApiError> {
    let parsed = parse_csv(body).map_err(|e| ApiError::invalid(e.render("")))?;
    Ok(AdminRequest::UserImport {
        rows: parsed.rows,
        dry_run: q.dry_run,
        continue_on_error: q.continue_on_error,
        source: String::new(),
        rejected: parsed.errors.iter().map(|e| e.render("")).collect(),
        send_email: q.send_email,
    })
}

/// `POST /api/v1/tokens/import`: the PSKC document and, for an encrypted
/// one, its password or pre-shared key (hex).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PskcBody {
    pskc: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    psk_hex: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// The token import of a PSKC body (slow for a big PBKDF2 count: run it
/// off the async threads).
pub(super) fn pskc_request(b: PskcBody) -> Result<AdminRequest, ApiError> {
    let key = match (b.password, b.psk_hex) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("give password or psk_hex, not both")),
        (Some(p), None) => PskcKey::Password(Zeroizing::new(p.into_bytes())),
        (None, Some(h)) => PskcKey::PreShared(Zeroizing::new(
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(h.trim().as_bytes())
                .map_err(|_| ApiError::invalid("psk_hex is not hex"))?,
        )),
        (None, None) => PskcKey::None,
    };
    let file = pskc::parse(&b.pskc, &key)
        .map_err(|e| ApiError::invalid(format!("{e}; nothing imported")))?;
    Ok(AdminRequest::TokenImport(from_pskc(file, b.dry_run)))
}

/// `POST /api/v1/tokens/{serial}/assign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignBody {
    pub(super) user: String,
}

/// `GET /api/v1/tokens?unassigned=true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PoolQuery {
    #[serde(default)]
    pub(super) unassigned: bool,
}
