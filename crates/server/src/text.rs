//! Text from outside (user names typed at a sign-in page, RADIUS
//! attributes, directory values) shown to people: in log lines, audit
//! records and the CLI's tables. A CR or LF there forges a log line, an ESC
//! drives the operator's terminal; so wherever such text is written, the
//! characters [`radmfa_store::is_unsafe_char`] names are written escaped
//! (`\n`, `\r`, `\t`, `\u{1b}`), and everything else as it is. The store
//! refuses those characters in the records it keeps; this covers what it
//! never sees and records older versions wrote.

use std::borrow::Cow;
use std::fmt;

use radmfa_store::is_unsafe_char;

/// `s` with every unsafe character escaped; borrowed when there is none.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(Escaped(s).to_string())
}

/// Displays a string with unsafe characters escaped, without allocating:
/// for tracing fields (`user = %Escaped(&name)`).
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        for c in self.0.chars() {
            if matches!(c, '\t' | '\r' | '\n') {
                write!(f, "{}", c.escape_default())?;
            } else if is_unsafe_char(c) {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_unsafe_characters() {
        assert!(matches!(escape("DOMAIN\\älice"), Cow::Borrowed(_)));
        assert_eq!(
            escape("eve\r\n2026 INFO sign-in user=admin"),
            "eve\\r\\n2026 INFO sign-in user=admin"
        );
        assert_eq!(escape("a\u{1b}[31mb\u{7}"), "a\\u{1b}[31mb\\u{7}");
        assert_eq!(escape("\u{202e}nimda\u{85}"), "\\u{202e}nimda\\u{85}");
        assert_eq!(escape("tab\there"), "tab\\there");
        assert_eq!(Escaped("x\ny").to_string(), "x\\ny");
    }
}
