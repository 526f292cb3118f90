//! `radmfa token`: enroll (with a QR code), list, show, delete and
//! resynchronise second-factor tokens.

use anyhow::Context;
use radmfa_server::admin::AdminRequest;
use radmfa_server::RuntimeConfig;
use radmfa_store::{TokenAlgorithm, TokenKind};
use serde_json::Value;

use super::args::{AlgArg, KindArg, TokenCmd};
use super::call::call;
use super::print::{field, format_time, print_table, show_time};

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
            let v = call(
                cfg,
                AdminRequest::TokenEnroll {
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
                },
            )?;
            let uri = v["uri"].as_str().unwrap_or_default();
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
            println!("secret: {}", v["secret"].as_str().unwrap_or_default());
            println!("Scan the QR code (or type the secret) in an authenticator app.");
        }
        TokenCmd::List { json } => {
            let v = call(cfg, AdminRequest::TokenList)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = v
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    vec![
                        field(t, "user"),
                        field(t, "kind"),
                        field(t, "algorithm"),
                        field(t, "digits"),
                        if t["kind"] == "totp" {
                            format!("{} s", field(t, "period"))
                        } else {
                            "-".into()
                        },
                        show_time(&t["created"]),
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
            let t = call(cfg, AdminRequest::TokenShow { user })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
                return Ok(());
            }
            println!("{:<14} {}", "user", field(&t, "user"));
            println!("{:<14} {}", "type", field(&t, "kind"));
            println!("{:<14} {}", "algorithm", field(&t, "algorithm"));
            println!("{:<14} {}", "digits", field(&t, "digits"));
            if t["kind"] == "totp" {
                println!("{:<14} {} s", "period", field(&t, "period"));
            }
            println!("{:<14} {}", "enrolled", show_time(&t["created"]));
            println!("{:<14} {}", "last used", last_used(&t));
        }
        TokenCmd::Delete { user } => {
            call(cfg, AdminRequest::TokenDelete { user: user.clone() })?;
            println!(
                "deleted the token of {user}; enroll a new one with `radmfa token enroll {user}`"
            );
        }
        TokenCmd::Resync {
            user,
            first,
            second,
        } => {
            let v = call(
                cfg,
                AdminRequest::TokenResync {
                    user: user.clone(),
                    first,
                    second,
                },
            )?;
            println!(
                "resynchronised the HOTP token of {user}: counter {} was the last used; the next code is accepted",
                v["last_used"]
            );
        }
    }
    Ok(())
}

/// The last used step or counter of a token, for people: a TOTP step as
/// the time it began.
pub fn last_used(t: &Value) -> String {
    match (t["last_used"].as_u64(), t["kind"].as_str()) {
        (None, _) => "never".into(),
        (Some(step), Some("totp")) => {
            let period = t["period"].as_u64().unwrap_or(30).max(1);
            format!(
                "step {step} ({})",
                format_time(step.saturating_mul(period).saturating_mul(1000))
            )
        }
        (Some(counter), _) => format!("counter {counter}"),
    }
}
