//! `[i18n]`: the language of users who have none (neither their own nor
//! their policy's) and an optional directory of edited translation files.
//! The files themselves are checked by `crate::i18n` in the load step.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;
use crate::i18n::Lang;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct I18nSection {
    #[serde(default)]
    default_language: Option<Spanned<String>>,
    #[serde(default)]
    dir: Option<PathBuf>,
}

/// The validated `[i18n]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I18nSettings {
    /// The language of a user with no `language` whose policy has none
    /// (default English).
    pub default_language: Lang,
    /// Edited translation files (`<lang>.toml`) replacing built-in texts.
    pub dir: Option<PathBuf>,
}

impl Default for I18nSettings {
    fn default() -> Self {
        I18nSettings {
            default_language: Lang::En,
            dir: None,
        }
    }
}

impl Section for I18nSection {
    type Settings = I18nSettings;

    /// Checks that the default language is one radmfa speaks.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<I18nSettings, ConfigError> {
        let default_language = match &self.default_language {
            None => Lang::En,
            Some(l) => Lang::parse(l.get_ref()).ok_or_else(|| {
                cx.at(
                    l.span(),
                    format!(
                        "i18n.default_language {:?} is not one radmfa speaks: en, nl, de or fr",
                        l.get_ref()
                    ),
                )
            })?,
        };
        Ok(I18nSettings {
            default_language,
            dir: self.dir,
        })
    }
}
