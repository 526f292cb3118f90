//! [`Text`]: what a user is told, before it is put into their language. The
//! pipeline decides a message long before it knows (or looks up) who reads
//! it; the reply step renders it once the language is chosen. Kept apart
//! from the catalog so that decisions carry keys and arguments, not words.

use super::catalog::{catalog, fill};
use super::keys::Key;
use super::lang::Lang;

/// A message: one or more parts, rendered one after the other with a space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// A catalog text with its placeholders' values.
    Key(Key, Vec<(&'static str, String)>),
    /// Words radmfa does not own (an upstream RADIUS server's Reply-Message),
    /// passed on as they are.
    Verbatim(String),
}

impl Text {
    /// `key`'s text with `args` for its placeholders.
    pub fn with(key: Key, args: &[(&'static str, &str)]) -> Text {
        Text {
            parts: vec![Part::Key(
                key,
                args.iter().map(|(n, v)| (*n, (*v).to_string())).collect(),
            )],
        }
    }

    /// Words passed on untranslated (an upstream server's, an admin's
    /// configured prompt).
    pub fn verbatim(s: impl Into<String>) -> Text {
        let s = s.into();
        Text {
            parts: if s.is_empty() {
                Vec::new()
            } else {
                vec![Part::Verbatim(s)]
            },
        }
    }

    /// Nothing to say.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// This text followed by `next`.
    pub fn then(mut self, next: impl Into<Text>) -> Text {
        self.parts.extend(next.into().parts);
        self
    }

    /// The words in `lang`.
    pub fn render(&self, lang: Lang) -> String {
        let cat = catalog();
        let mut out = String::new();
        for part in &self.parts {
            if !out.is_empty() {
                out.push(' ');
            }
            match part {
                Part::Key(key, args) => {
                    let args: Vec<(&str, &str)> =
                        args.iter().map(|(n, v)| (*n, v.as_str())).collect();
                    out.push_str(&fill(cat.get(*key, lang), &args));
                }
                Part::Verbatim(s) => out.push_str(s),
            }
        }
        out
    }

    /// The first catalog key, if any (tests and lockout bookkeeping look at
    /// what was said, not at the words).
    pub fn key(&self) -> Option<Key> {
        self.parts.iter().find_map(|p| match p {
            Part::Key(k, _) => Some(*k),
            Part::Verbatim(_) => None,
        })
    }
}

impl From<Key> for Text {
    fn from(key: Key) -> Text {
        Text {
            parts: vec![Part::Key(key, Vec::new())],
        }
    }
}
