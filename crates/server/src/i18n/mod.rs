//! Languages (en, nl, de, fr) for everything a user reads: RADIUS
//! Reply-Messages and prompts, SMS and call texts, the portal. Texts live in
//! one translation file per language (`crates/server/i18n/<lang>.toml`,
//! built in; `[i18n] dir` for an admin's edited copies), named in code by
//! typed keys. See docs/i18n.md.

mod catalog;
mod keys;
mod lang;
#[cfg(test)]
mod tests;
mod text;

pub use catalog::{catalog, fill, install, Catalog};
pub use keys::Key;
pub use lang::{check_language_tag, choose, Lang};
pub use text::Text;
