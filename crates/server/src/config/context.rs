//! What every section validator shares: the [`Section`] signature each
//! `[section]` implements, and the [`Ctx`] that turns a span into
//! file:line:column, carries what earlier sections decided to the later ones
//! that refer to it (policies name upstreams, clients name policies...) and
//! collects the key files the sections name for the load step. Separate so
//! that section files depend on this and not on each other.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::path::PathBuf;

use toml::Spanned;

use super::error::{ConfigError, Place};
use super::files::KeyFiles;

/// One configuration section: validates itself as written into what the
/// server runs with. Every section has this one shape; what a section needs
/// from another comes through `cx`.
pub(crate) trait Section {
    /// The validated settings.
    type Settings;
    /// Checks the section; every error names the file, line and column.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Self::Settings, ConfigError>;
}

/// The text being validated, and what the sections validated so far tell
/// later ones (filled in [`super::parse`] order).
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
    /// This node's id (`[server]`), which no peer may share.
    pub node_id: u16,
    /// The RADIUS listen addresses (`[radius]`).
    pub listen: Vec<SocketAddr>,
    /// The data directory (`[server]`), default home of the key files.
    pub data_dir: PathBuf,
    /// Names of the `[[upstream]]` groups.
    pub upstreams: HashSet<String>,
    /// Whether a `[directory]` is configured.
    pub directory: bool,
    /// Names of the policies (`[[policy]]` and the default one).
    pub policies: HashSet<String>,
    /// `[portal] public_url` as written, the default of `[mail] portal_url`.
    pub portal_url: Option<String>,
    /// Whether a `[portal]` is configured (it serves the Twilio callbacks).
    pub portal: bool,
    /// The files the sections name, read by the load step.
    pub files: KeyFiles,
}

impl<'a> Ctx<'a> {
    /// A context for `text`, named `origin` in errors.
    pub fn new(text: &'a str, origin: &'a str) -> Ctx<'a> {
        Ctx {
            text,
            origin,
            node_id: 0,
            listen: Vec::new(),
            data_dir: PathBuf::new(),
            upstreams: HashSet::new(),
            directory: false,
            policies: HashSet::new(),
            portal_url: None,
            portal: false,
            files: KeyFiles::default(),
        }
    }

    /// The place of `span` (`None`: no place).
    pub fn place(&self, span: Option<Range<usize>>) -> Place {
        let (line, column) = span.map(|s| line_col(self.text, s.start)).unwrap_or((0, 0));
        Place::new(self.origin, line, column)
    }

    /// The error `reason` at `span` (`None`: no place).
    pub fn error(&self, span: Option<Range<usize>>, reason: String) -> ConfigError {
        self.place(span).error(reason)
    }

    /// The place of a value's `span`; a default's empty span is no place.
    pub fn place_of(&self, span: Range<usize>) -> Place {
        self.place(spot(span))
    }

    /// The error `reason` at a value's `span` (a default's empty span: no
    /// place).
    pub fn at(&self, span: Range<usize>, reason: String) -> ConfigError {
        self.error(spot(span), reason)
    }

    /// The value of `key` if it lies in `range`, else the error "`key` must
    /// be between A and B, not V" at the value.
    pub fn within<T>(
        &self,
        value: &Spanned<T>,
        range: RangeInclusive<T>,
        key: &str,
    ) -> Result<T, ConfigError>
    where
        T: PartialOrd + Copy + fmt::Display,
    {
        let v = *value.get_ref();
        if range.contains(&v) {
            return Ok(v);
        }
        Err(self.at(
            value.span(),
            format!(
                "{key} must be between {} and {}, not {v}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// A value's span, `None` for a default's empty one.
pub(crate) fn spot(span: Range<usize>) -> Option<Range<usize>> {
    if span.end == 0 {
        None
    } else {
        Some(span)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map(|(_, l)| l.chars().count())
        .unwrap_or_else(|| before.chars().count())
        + 1;
    (line, column)
}
