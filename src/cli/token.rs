//! `radmfa token`: enroll (with a QR code), list, show, delete and
//! resynchronise second-factor tokens.

use anyhow::Context;
use radmfa_server::admin::{AdminRequest, Enrolled, NewToken, Resynced, TokenDeleted, TokenView};
use radmfa_server::RuntimeConfig;
use radmfa_store::{TokenAlgorithm, TokenKind};

use super::args::{AlgArg, KindArg, TokenCmd};
use super::call::call;
use super::print::{esc, format_time, json_pretty, kind_name, print_table, show_time};

pub fn token(cfg: &RuntimeConfig, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Enroll {
            user,
            secret,
            kind,
            algorithm,
            digits,
            period,
            no_qr,
            replace,
        } => {
            let v: Enrolled = call(
                cfg,
                AdminRequest::TokenEnroll(NewToken {
                    user,
                    secret,
                    kind: match kind {
                        KindArg::Totp => TokenKind::Totp,
                        KindArg::Hotp => TokenKind::Hotp,
                    },
                    algorithm: match algorithm {
                        AlgArg::Sha1 => TokenAlgorithm::Sha1,
                        AlgArg::Sha256 => TokenAlgorithm::Sha256,
                        AlgArg::Sha512 => TokenAlgorithm::Sha512,
                    },
                    digits: digits.unwrap_or(cfg.otp_digits),
                    period,
                    replace,
                }),
            )?;
            let uri = v.uri.as_str();
            println!("{uri}");
            if !no_qr {
                let code =
                    qrcode::QrCode::new(uri.as_bytes()).context("cannot build the QR code")?;
                let qr = code
                    .render::<qrcode::render::unicode::Dense1x2>()
                    .quiet_zone(true)
                    .build();
                println!("{qr}");
            }
            println!("secret: {}", v.secret);
            println!("Scan the QR code (or type the secret) in an authenticator app.");
        }
        TokenCmd::List {
            json,
            imported,
            unassigned,
        } if imported || unassigned => super::import::pool_list(cfg, unassigned, json)?,
        TokenCmd::ImportPskc {
            file,
            password_stdin,
            psk_file,
            dry_run,
        } => super::import::pskc(cfg, &file, password_stdin, psk_file.as_deref(), dry_run)?,
        TokenCmd::Assign { serial, user } => super::import::assign(cfg, serial, user)?,
        TokenCmd::Revoke { serial } => super::import::revoke(cfg, serial)?,
        TokenCmd::List { json, .. } => {
            let tokens: Vec<TokenView> = call(cfg, AdminRequest::TokenList)?;
            if json {
                println!("{}", json_pretty(&tokens)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    vec![
                        esc(&t.user),
                        kind_name(t.kind).into(),
                        esc(&t.algorithm),
                        t.digits.to_string(),
                        if t.kind == TokenKind::Totp {
                            format!("{} s", t.period)
                        } else {
                            "-".into()
                        },
                        show_time(t.created),
                        last_used(t),
                    ]
                })
                .collect();
            print_table(
                &[
                    "USER",
                    "TYPE",
                    "ALGORITHM",
                    "DIGITS",
                    "PERIOD",
                    "ENROLLED (UTC)",
                    "LAST USED",
                ],
                &rows,
            );
        }
        TokenCmd::Show { user, json } => {
            let t: TokenView = call(cfg, AdminRequest::TokenShow { user })?;
            if json {
                println!("{}", json_pretty(&t)?);
                return Ok(());
            }
            println!("{:<14} {}", "user", esc(&t.user));
            println!("{:<14} {}", "type", kind_name(t.kind));
            println!("{:<14} {}", "algorithm", esc(&t.algorithm));
            println!("{:<14} {}", "digits", t.digits);
            if t.kind == TokenKind::Totp {
                println!("{:<14} {} s", "period", t.period);
            }
            println!("{:<14} {}", "enrolled", show_time(t.created));
            println!("{:<14} {}", "last used", last_used(&t));
        }
        TokenCmd::Delete { user } => {
            let _: TokenDeleted = call(cfg, AdminRequest::TokenDelete { user: user.clone() })?;
            println!(
                "deleted the token of {user}; enroll a new one with `radmfa token enroll {user}`"
            );
        }
        TokenCmd::Resync {
            user,
            first,
            second,
        } => {
            let v: Resynced = call(
                cfg,
                AdminRequest::TokenResync {
                    user: user.clone(),
                    first,
                    second,
                },
            )?;
            println!(
                "resynchronised the HOTP token of {user}: counter {} was the last used; the next code is accepted",
                v.last_used
            );
        }
    }
    Ok(())
}

/// The last used step or counter of a token, for people: a TOTP step as
/// the time it began.
fn last_used(t: &TokenView) -> String {
    match (t.last_used, t.kind) {
        (None, _) => "never".into(),
        (Some(step), TokenKind::Totp) => {
            let period = t.period.max(1);
            format!(
                "step {step} ({})",
                format_time(step.saturating_mul(period).saturating_mul(1000))
            )
        }
        (Some(counter), TokenKind::Hotp) => format!("counter {counter}"),
    }
}
