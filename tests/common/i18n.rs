//! The translation files (crates/server/i18n/<lang>.toml) as tests read
//! them: the words a test expects come from the files a translator edits,
//! not from the server's code.

use std::collections::BTreeMap;

/// The texts of `lang`: `section.name` -> text.
pub fn texts(lang: &str) -> BTreeMap<String, String> {
    let path = format!(
        "{}/crates/server/i18n/{lang}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let file: BTreeMap<String, BTreeMap<String, String>> =
        toml::from_str(&std::fs::read_to_string(&path).expect("translation file"))
            .expect("translation file parses");
    file.into_iter()
        .flat_map(|(section, names)| {
            names
                .into_iter()
                .map(move |(name, text)| (format!("{section}.{name}"), text))
        })
        .collect()
}

/// `lang`'s text of `key` (`section.name`), with `args` filled in.
pub fn text(lang: &str, key: &str, args: &[(&str, &str)]) -> String {
    let mut t = texts(lang)
        .remove(key)
        .unwrap_or_else(|| panic!("{lang}.toml has no {key}"));
    for (name, value) in args {
        t = t.replace(&format!("{{{name}}}"), value);
    }
    t
}
