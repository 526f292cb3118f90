//! `[otp]`: authenticator app codes (issuer, digits, drift window, HOTP
//! look-ahead).

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtpSection {
    #[serde(default = "default_issuer")]
    issuer: String,
    #[serde(default = "default_window")]
    window: Spanned<u64>,
    #[serde(default = "default_digits")]
    digits: Spanned<u8>,
    #[serde(default = "default_hotp_look_ahead")]
    hotp_look_ahead: u64,
}

impl Default for OtpSection {
    fn default() -> Self {
        OtpSection {
            issuer: default_issuer(),
            window: default_window(),
            digits: default_digits(),
            hotp_look_ahead: default_hotp_look_ahead(),
        }
    }
}

fn default_issuer() -> String {
    "radmfa".to_string()
}
fn default_window() -> Spanned<u64> {
    Spanned::new(0..0, 1)
}
fn default_digits() -> Spanned<u8> {
    Spanned::new(0..0, 6)
}
fn default_hotp_look_ahead() -> u64 {
    10
}

/// The validated `[otp]` section.
#[derive(Debug, Clone)]
pub(crate) struct OtpSettings {
    pub issuer: String,
    pub window: u64,
    pub digits: u8,
    pub hotp_look_ahead: u64,
}

impl Section for OtpSection {
    type Settings = OtpSettings;

    /// Checks the digits (6 to 8) and the drift window (at most 10 steps).
    fn validate(self, cx: &mut Ctx<'_>) -> Result<OtpSettings, ConfigError> {
        let digits = *self.digits.get_ref();
        if !(6..=8).contains(&digits) {
            return Err(cx.at(
                self.digits.span(),
                format!("otp.digits must be 6, 7 or 8, not {digits}"),
            ));
        }
        let window = *self.window.get_ref();
        if window > 10 {
            return Err(cx.at(
                self.window.span(),
                format!("otp.window of {window} steps is too wide (at most 10)"),
            ));
        }
        Ok(OtpSettings {
            issuer: self.issuer,
            window,
            digits,
            // Range: `bounds::BOUNDS`.
            hotp_look_ahead: self.hotp_look_ahead,
        })
    }
}
