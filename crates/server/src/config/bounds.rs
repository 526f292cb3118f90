//! The range of every numeric key that the section validation does not check
//! itself, in one table.
//!
//! Why a table: a value out of range used to be clamped silently (an admin
//! who wrote `retries = 50` got 5 without a word) or not bounded at all
//! (`password.iterations = 4000000000` hung start-up in argon2;
//! `store_cache_mib = 100000000` overflowed into a sled panic). Every key
//! listed here is refused with file:line:column and its range instead, and
//! the same range is written next to the key in `config/radmfa.toml` (a test
//! keeps the two in step). Keys whose section already checks a range with
//! its own message (`otp.digits`, `[limits]`, `[portal]`, `[radsec]`,
//! `[api]`...) are not repeated here.
//!
//! The check runs on a second, span-keeping parse of the same text (see
//! [`Raw`]), so the typed structs and their defaults stay as they are.

use std::collections::BTreeMap;
use std::ops::{Range, RangeInclusive};

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// One bounded key: its dotted path (an array of tables such as
/// `[[upstream]]` is checked in each of its entries), the allowed range and,
/// optionally, what to do instead.
pub(super) struct Bound {
    pub(super) path: &'static str,
    pub(super) range: RangeInclusive<i64>,
    pub(super) hint: &'static str,
}

const fn b(path: &'static str, min: i64, max: i64) -> Bound {
    Bound {
        path,
        range: min..=max,
        hint: "",
    }
}

/// The bounded keys. Upper bounds keep memory and start-up time sane; lower
/// bounds keep the feature working (a 0 pool or a 0 ms timeout).
pub(super) const BOUNDS: &[Bound] = &[
    // sled's cache: the resident cost is about 1.6 times this (64 GiB max).
    b("server.store_cache_mib", 1, 65_536),
    b("server.user_cache_entries", 64, 10_000_000),
    b("radius.duplicate_window_secs", 1, 600),
    b("radius.duplicate_cache_entries", 1_024, 10_000_000),
    b("radius.workers", 0, 1_024),
    b("radius.max_in_flight", 1, 1_000_000),
    // One verification costs memory_kib x iterations; start-up hashes once.
    b("password.iterations", 1, 16),
    b("password.cache_ttl_secs", 0, 86_400),
    b("password.cache_max_entries", 1, 10_000_000),
    b("otp.hotp_look_ahead", 0, 100),
    b("challenge.max_sessions", 1, 10_000_000),
    b("gateway.timeout_ms", 100, 60_000),
    b("gateway.retries", 0, 5),
    b("gateway.verdict_timeout_secs", 5, 300),
    b("sms.max_attempts", 1, 10),
    b("upstream.timeout_ms", 100, 30_000),
    b("upstream.retries", 0, 5),
    b("directory.timeout_ms", 100, 60_000),
    b("directory.pool_size", 1, 64),
    b("directory.max_group_depth", 1, 32),
    b("mail.port", 1, 65_535),
    b("mail.timeout_ms", 1_000, 120_000),
    b("cluster.forward_timeout_ms", 100, 60_000),
    Bound {
        path: "log.audit_retention_days",
        range: 1..=36_500,
        hint: " (leave it out to keep the audit log forever)",
    },
];

/// Checks every key of [`BOUNDS`] present in `text` (already known to parse).
/// Returns the span of the first offending value and the reason.
pub(super) fn check(text: &str) -> Result<(), (Range<usize>, String)> {
    // The typed parse succeeded, so this one does too; should it not, the
    // typed checks still apply.
    let Ok(root) = toml::from_str::<BTreeMap<String, Spanned<Raw>>>(text) else {
        return Ok(());
    };
    for bound in BOUNDS {
        let mut parts = bound.path.split('.');
        let Some(first) = parts.next() else { continue };
        let Some(top) = root.get(first) else { continue };
        let rest: Vec<&str> = parts.collect();
        check_at(top, &rest, bound)?;
    }
    Ok(())
}

fn check_at(
    node: &Spanned<Raw>,
    rest: &[&str],
    bound: &Bound,
) -> Result<(), (Range<usize>, String)> {
    match (node.get_ref(), rest.split_first()) {
        // An array of tables: every entry.
        (Raw::Array(items), _) => {
            for item in items {
                check_at(item, rest, bound)?;
            }
            Ok(())
        }
        (Raw::Table(map), Some((key, rest))) => match map.get(*key) {
            Some(child) => check_at(child, rest, bound),
            None => Ok(()),
        },
        (Raw::Integer(v), None) if !bound.range.contains(v) => Err((
            node.span(),
            format!(
                "{} must be between {} and {}, not {v}{}",
                bound.path,
                bound.range.start(),
                bound.range.end(),
                bound.hint
            ),
        )),
        _ => Ok(()),
    }
}

/// A TOML value that keeps the span of every nested value (what
/// `toml::Value` forgets). Only integers, tables and arrays matter here.
#[derive(Debug)]
enum Raw {
    Integer(i64),
    Table(BTreeMap<String, Spanned<Raw>>),
    Array(Vec<Spanned<Raw>>),
    Other,
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any TOML value")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Integer(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Integer(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
        Ok(Raw::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Raw, E> {
        Ok(Raw::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Raw, E> {
        Ok(Raw::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            out.insert(key, value);
        }
        Ok(Raw::Table(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuntimeConfig;

    /// The least a section needs besides the bounded key.
    fn context(section: &str) -> &'static str {
        match section {
            "gateway" => "url = \"https://gw.example\"\n",
            "upstream" => {
                "name = \"u\"\nservers = [\"127.0.0.1:1812\"]\nsecret = \"upstream-secret\"\n"
            }
            "directory" => {
                "kind = \"ldap\"\nservers = [\"ldap://127.0.0.1\"]\nbase_dn = \"dc=x\"\n"
            }
            "mail" => {
                "host = \"127.0.0.1\"\nfrom = \"a@b.example\"\nportal_url = \"https://p.example\"\n"
            }
            "cluster" => "listen = \"127.0.0.1:4443\"\nca = \"c\"\ncert = \"c\"\nkey = \"k\"\n",
            _ => "",
        }
    }

    /// A file setting `path` to `value`, the key on line 3.
    fn file_with(path: &str, value: i64) -> String {
        let (section, key) = path.split_once('.').expect("dotted");
        let header = if section == "upstream" {
            "[[upstream]]"
        } else {
            &format!("[{section}]")
        };
        format!("# bounds\n{header}\n{key} = {value}\n{}", context(section))
    }

    #[test]
    fn every_bound_is_enforced_with_its_line() {
        for bound in BOUNDS {
            for bad in [*bound.range.start() - 1, *bound.range.end() + 1] {
                if bad < 0 {
                    continue; // unsigned: refused by the typed parse already
                }
                let text = file_with(bound.path, bad);
                let err = RuntimeConfig::parse(&text, "b.toml")
                    .expect_err(&format!("{} = {bad} must be refused", bound.path));
                let key = bound.path.rsplit('.').next().unwrap_or(bound.path);
                assert_eq!((err.line, err.column), (3, key.len() + 4), "{err}");
                // Past the type's own range (mail.port = 65536) the typed
                // parse refuses it first, at the same place.
                assert!(
                    (err.reason.contains(bound.path)
                        && err.reason.contains(&format!("{}", bound.range.end())))
                        || err.reason.starts_with("invalid value"),
                    "{err}"
                );
            }
            // Both ends are accepted as far as the bound goes (later checks
            // of the same section may still object, e.g. a missing file).
            for good in [*bound.range.start(), *bound.range.end()] {
                if let Err(e) = RuntimeConfig::parse(&file_with(bound.path, good), "b.toml") {
                    assert!(
                        !e.reason.contains("must be between"),
                        "{}={good}: {e}",
                        bound.path
                    );
                }
            }
        }
    }

    #[test]
    fn shipped_config_documents_every_range() {
        let text = include_str!("../../../../config/radmfa.toml");
        for bound in BOUNDS {
            let key = bound.path.rsplit('.').next().unwrap_or(bound.path);
            let range = format!("{}..{}", bound.range.start(), bound.range.end());
            assert!(
                text.lines()
                    .any(|l| l.contains(&format!("{key} =")) && l.contains(&range)),
                "config/radmfa.toml: no `{key} = ...` line that says {range}"
            );
        }
    }
}
