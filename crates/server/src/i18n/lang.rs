//! The languages radmfa speaks and how a language tag (a user's `language`
//! field, a policy's `language`, an `Accept-Language` header) maps to one.
//! A leaf: the catalog, the pipeline and the portal all name languages.

use std::fmt;

/// A language with a complete set of texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lang {
    /// English: authoritative, every key has an English text.
    En,
    /// Dutch.
    Nl,
    /// German.
    De,
    /// French.
    Fr,
}

impl Lang {
    /// Every language, English first.
    pub const ALL: [Lang; 4] = [Lang::En, Lang::Nl, Lang::De, Lang::Fr];

    /// The two-letter code ("en", "nl", "de", "fr"): the translation file's
    /// name and the HTML `lang`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Nl => "nl",
            Lang::De => "de",
            Lang::Fr => "fr",
        }
    }

    /// The language of a tag: "nl", "nl-BE", "de_CH", "FR" (case and `_`
    /// ignored); `None` for an empty tag or a language radmfa has no texts
    /// for.
    pub fn parse(tag: &str) -> Option<Lang> {
        let tag = tag.trim();
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        let lang = Lang::ALL
            .into_iter()
            .find(|l| primary.eq_ignore_ascii_case(l.code()))?;
        // A region or script suffix: letters and digits only ("nl-BE",
        // "zh-Hant" style), so "nl-" or "nl-B E" are not tags.
        let rest = &tag[primary.len()..];
        let suffix_ok = rest.is_empty()
            || rest[1..].split(['-', '_']).all(|p| {
                (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        suffix_ok.then_some(lang)
    }

    /// The first language of an `Accept-Language` header radmfa speaks, in
    /// the order the header gives (weights are not re-sorted: browsers send
    /// them in descending order).
    pub fn from_accept(header: &str) -> Option<Lang> {
        header
            .split(',')
            .filter_map(|part| Lang::parse(part.split(';').next().unwrap_or("")))
            .next()
    }

    /// The language tag and voice of a call's `<Say>` (Twilio): a regional
    /// tag its "alice" voice speaks.
    pub fn voice_tag(self) -> &'static str {
        match self {
            Lang::En => "en-GB",
            Lang::Nl => "nl-NL",
            Lang::De => "de-DE",
            Lang::Fr => "fr-FR",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A `language` setting's check (user records, the CLI, the API): empty
/// (none set) or a tag of a language radmfa speaks, kept as written
/// ("nl-BE").
pub fn check_language_tag(tag: &str) -> Result<(), String> {
    // One rule for `user add/set`, the API and the CSV import (the store
    // checks it where the import does, `radmfa_store::check_language`).
    radmfa_store::check_language(tag).map_err(|_| {
        format!(
            "language {tag:?} is not one radmfa speaks: use en, nl, de or fr, optionally with a region (nl-BE, fr-CA)"
        )
    })
}

/// The language a user reads: their own `language`, else their policy's,
/// else `[i18n] default_language`.
pub fn choose(user: Option<&str>, policy: Option<Lang>, default: Lang) -> Lang {
    user.and_then(Lang::parse).or(policy).unwrap_or(default)
}
