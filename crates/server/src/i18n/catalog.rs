//! The catalog: every [`Key`]'s text in every [`Lang`], read from the
//! translation files (`crates/server/i18n/<lang>.toml`, built in) and an
//! admin's edited copies (`[i18n] dir`). Separate from the keys so that the
//! checks a file passes (known keys, known placeholders, the English
//! placeholders kept) live in one place, with the file and line of each
//! error. English is complete; another language falls back to it per key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use toml::Spanned;

use super::keys::Key;
use super::lang::Lang;
use crate::config::ConfigError;

/// The built-in translation files, by language.
const BUILTIN: [(Lang, &str); 4] = [
    (Lang::En, include_str!("../../i18n/en.toml")),
    (Lang::Nl, include_str!("../../i18n/nl.toml")),
    (Lang::De, include_str!("../../i18n/de.toml")),
    (Lang::Fr, include_str!("../../i18n/fr.toml")),
];

/// Every text in every language.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Per language (`Lang as usize`), per key ([`Key::index`]).
    texts: [Vec<Option<Box<str>>>; 4],
}

/// One text as a file gives it, with its line and column.
struct Entry {
    key: Key,
    text: String,
    line: usize,
    column: usize,
}

impl Catalog {
    /// The built-in catalog, with the files of `dir` (`<lang>.toml`, each
    /// optional) replacing the built-in texts key by key. An unknown key,
    /// section or placeholder, a placeholder of the English text left out,
    /// or a file that is not TOML is an error naming the file and line.
    pub fn load(dir: Option<&Path>) -> Result<Catalog, ConfigError> {
        Catalog::build(&BUILTIN, dir)
    }

    /// [`Catalog::load`] from these built-in files.
    pub(super) fn build(
        builtin: &[(Lang, &str)],
        dir: Option<&Path>,
    ) -> Result<Catalog, ConfigError> {
        let mut c = Catalog {
            texts: std::array::from_fn(|_| vec![None; Key::ALL.len()]),
        };
        for &(lang, text) in builtin {
            let origin = format!("built-in crates/server/i18n/{}.toml", lang.code());
            c.apply(lang, &parse(text, &origin)?, &origin)?;
        }
        if let Some(missing) = c.english_missing() {
            return Err(ConfigError {
                origin: "built-in crates/server/i18n/en.toml".into(),
                line: 0,
                column: 0,
                reason: format!("no English text for [{}] {}: English is the fallback of every language and must be complete", missing.section(), missing.name()),
            });
        }
        if let Some(dir) = dir {
            for lang in Lang::ALL {
                let path = dir.join(format!("{}.toml", lang.code()));
                let origin = path.display().to_string();
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(ConfigError {
                            origin,
                            line: 0,
                            column: 0,
                            reason: format!("cannot read the translation file: {e}"),
                        })
                    }
                };
                c.apply(lang, &parse(&text, &origin)?, &origin)?;
            }
        }
        Ok(c)
    }

    /// Takes `entries` of `lang`'s file `origin`: checks each text's
    /// placeholders against its key and against the English text.
    fn apply(&mut self, lang: Lang, entries: &[Entry], origin: &str) -> Result<(), ConfigError> {
        for e in entries {
            let at = |reason: String| ConfigError {
                origin: origin.to_string(),
                line: e.line,
                column: e.column,
                reason,
            };
            let allowed = e.key.placeholders();
            let used = placeholders(&e.text);
            if let Some(bad) = used.iter().find(|p| !allowed.contains(p)) {
                return Err(at(format!(
                    "[{}] {}: unknown placeholder {{{bad}}}; this text can use {}",
                    e.key.section(),
                    e.key.name(),
                    list(allowed)
                )));
            }
            // The built-in English text (set first; an edited English file
            // is held to it as well).
            if let Some(english) = &self.texts[Lang::En as usize][e.key.index()] {
                if let Some(lost) = placeholders(english)
                    .into_iter()
                    .find(|p| !used.contains(p))
                {
                    return Err(at(format!(
                        "[{}] {}: the English text has {{{lost}}}, this one does not (radmfa fills it in: keep it)",
                        e.key.section(),
                        e.key.name()
                    )));
                }
            }
            self.texts[lang as usize][e.key.index()] = Some(e.text.clone().into_boxed_str());
        }
        Ok(())
    }

    fn english_missing(&self) -> Option<Key> {
        Key::ALL
            .iter()
            .copied()
            .find(|k| self.texts[Lang::En as usize][k.index()].is_none())
    }

    /// `key`'s text in `lang`, else in English.
    pub fn get(&self, key: Key, lang: Lang) -> &str {
        self.texts[lang as usize][key.index()]
            .as_deref()
            .or_else(|| self.texts[Lang::En as usize][key.index()].as_deref())
            .unwrap_or_default()
    }

    /// The keys each language lacks (shown in English instead), for
    /// `radmfa check-config`; languages that lack none are left out.
    pub fn missing(&self) -> Vec<(Lang, Vec<Key>)> {
        Lang::ALL
            .into_iter()
            .filter_map(|lang| {
                let keys: Vec<Key> = Key::ALL
                    .iter()
                    .copied()
                    .filter(|k| self.texts[lang as usize][k.index()].is_none())
                    .collect();
                (!keys.is_empty()).then_some((lang, keys))
            })
            .collect()
    }
}

/// Reads a translation file: `[section]` tables of `name = "text"`.
fn parse(text: &str, origin: &str) -> Result<Vec<Entry>, ConfigError> {
    let at = |offset: usize, reason: String| {
        let (line, column) = line_col(text, offset);
        ConfigError {
            origin: origin.to_string(),
            line,
            column,
            reason,
        }
    };
    type File = BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<String>>>;
    let file: File = toml::from_str(text).map_err(|e| {
        at(
            e.span().map_or(0, |s| s.start),
            format!(
                "not a translation file ([section] then name = \"text\" lines): {}",
                e.message()
            ),
        )
    })?;
    let mut out = Vec::new();
    for (section, names) in file {
        if !Key::ALL.iter().any(|k| k.section() == section.get_ref()) {
            return Err(at(
                section.span().start,
                format!(
                    "unknown section [{}]; the sections are {}",
                    section.get_ref(),
                    list(&sections())
                ),
            ));
        }
        for (name, value) in names {
            let Some(key) = Key::find(section.get_ref(), name.get_ref()) else {
                return Err(at(
                    name.span().start,
                    format!(
                        "unknown text [{}] {} (a typo, or a text this version does not have)",
                        section.get_ref(),
                        name.get_ref()
                    ),
                ));
            };
            let (line, column) = line_col(text, value.span().start);
            out.push(Entry {
                key,
                text: value.into_inner(),
                line,
                column,
            });
        }
    }
    Ok(out)
}

/// The sections keys live in.
fn sections() -> Vec<&'static str> {
    let mut s: Vec<&'static str> = Key::ALL.iter().map(|k| k.section()).collect();
    s.dedup();
    s
}

/// `{a}, {b}` (or "no placeholder").
fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "no placeholder".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("{{{n}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// 1-based line and column of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The `{name}` placeholders of a text (a name is ASCII letters, digits
/// and `_`; other braces are text).
pub(crate) fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find('}') {
            let name = &rest[..close];
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                out.push(name);
                rest = &rest[close + 1..];
            }
        }
    }
    out
}

/// `text` with each `{name}` of `args` replaced by its value, in one pass
/// (a value that itself holds `{...}` is not filled in again).
pub fn fill(text: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            args.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v, close))
        });
        match value {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

static INSTALLED: OnceLock<Arc<Catalog>> = OnceLock::new();

/// Makes `catalog` the one every text comes from (`radmfa serve`, once at
/// start-up, after the configuration loaded it). `false`: a catalog was
/// already in use (a second install in one process is ignored).
pub fn install(catalog: Arc<Catalog>) -> bool {
    INSTALLED.set(catalog).is_ok()
}

/// The catalog in use: the installed one, else the built-in one.
///
/// A process-wide value rather than a handle passed around: the texts are
/// constant data read by the pipeline, the portal's page builders and the
/// gateway texts alike, fixed at start-up (`[i18n] dir` needs a restart).
pub fn catalog() -> &'static Catalog {
    INSTALLED.get_or_init(|| {
        // The built-in files are checked by the unit tests (a build that
        // breaks them does not pass CI); an empty text is the worst case.
        Arc::new(Catalog::load(None).unwrap_or_else(|_| Catalog {
            texts: std::array::from_fn(|_| vec![None; Key::ALL.len()]),
        }))
    })
}

impl Key {
    /// This text in `lang` (English when `lang` lacks it).
    pub fn text(self, lang: Lang) -> &'static str {
        catalog().get(self, lang)
    }

    /// This text in `lang` with `args` filled in.
    pub fn fill(self, lang: Lang, args: &[(&str, &str)]) -> String {
        fill(self.text(lang), args)
    }
}
