//! `[sms]`: one-way SMS codes (length, alphabet, lifetime, attempts, text).

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;
use crate::i18n::{Key, Lang};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmsSection {
    #[serde(default = "default_sms_length")]
    code_length: Spanned<usize>,
    #[serde(default = "default_sms_alphabet")]
    alphabet: Spanned<String>,
    #[serde(default = "default_sms_lifetime")]
    lifetime_secs: Spanned<u64>,
    #[serde(default = "default_sms_attempts")]
    max_attempts: u8,
    #[serde(default)]
    message: Option<Spanned<String>>,
}

impl Default for SmsSection {
    fn default() -> Self {
        SmsSection {
            code_length: default_sms_length(),
            alphabet: default_sms_alphabet(),
            lifetime_secs: default_sms_lifetime(),
            max_attempts: default_sms_attempts(),
            message: None,
        }
    }
}

fn default_sms_length() -> Spanned<usize> {
    Spanned::new(0..0, 6)
}
fn default_sms_alphabet() -> Spanned<String> {
    Spanned::new(0..0, "0123456789".to_string())
}
fn default_sms_lifetime() -> Spanned<u64> {
    Spanned::new(0..0, 300)
}
fn default_sms_attempts() -> u8 {
    3
}

/// One-way SMS settings.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// Code length.
    pub code_length: usize,
    /// Characters codes are drawn from.
    pub alphabet: String,
    /// How long a code is valid.
    pub lifetime_secs: u64,
    /// Wrong codes allowed before the session ends.
    pub max_attempts: u8,
    /// The admin's message text in every language (`{code}` is replaced
    /// by the code); `None`: the translated `[sms] code` text.
    pub message: Option<String>,
}

impl SmsSettings {
    /// The SMS carrying `code` to a user who reads `lang`: the admin's
    /// `message`, else the translated `[sms] code` text.
    pub fn text(&self, lang: Lang, code: &str) -> String {
        match &self.message {
            Some(own) => own.replace("{code}", code),
            None => Key::SmsCode.fill(lang, &[("code", code)]),
        }
    }
}

impl Section for SmsSection {
    type Settings = SmsSettings;

    /// Checks the code length, the message's `{code}`, the lifetime and the
    /// alphabet.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<SmsSettings, ConfigError> {
        let sms_len = cx.within(&self.code_length, 4..=12, "sms.code_length")?;
        if let Some(m) = self
            .message
            .as_ref()
            .filter(|m| !m.get_ref().contains("{code}"))
        {
            return Err(cx.at(m.span(), "sms.message must contain {code}".to_string()));
        }
        let sms_lifetime = cx.within(&self.lifetime_secs, 10..=3600, "sms.lifetime_secs")?;
        check_sms_alphabet(self.alphabet.get_ref())
            .map_err(|reason| cx.at(self.alphabet.span(), reason))?;
        Ok(SmsSettings {
            code_length: sms_len,
            alphabet: self.alphabet.into_inner(),
            lifetime_secs: sms_lifetime,
            // Range: `bounds::BOUNDS`.
            max_attempts: self.max_attempts,
            message: self.message.map(Spanned::into_inner),
        })
    }
}

/// An SMS code alphabet must have at least 10 symbols, each once (a repeated
/// one would be drawn twice as often, and a short alphabet makes codes
/// guessable), and only printable, non-space characters a user can type.
fn check_sms_alphabet(alphabet: &str) -> Result<(), String> {
    let mut seen: Vec<char> = Vec::new();
    for c in alphabet.chars() {
        if c.is_whitespace() || c.is_control() {
            return Err(format!(
                "sms.alphabet must hold printable characters without spaces, not {c:?}"
            ));
        }
        if seen.contains(&c) {
            return Err(format!(
                "sms.alphabet repeats {c:?}: every symbol must appear once"
            ));
        }
        seen.push(c);
    }
    if seen.len() < 10 {
        return Err(format!(
            "sms.alphabet needs at least 10 distinct symbols, not {} ({alphabet:?})",
            seen.len()
        ));
    }
    Ok(())
}
