//! Admin API bearer tokens: scopes, generation, and the check of a request's
//! `Authorization` header.

use zeroize::Zeroizing;

/// Every scope a token can hold. `admin` grants all of the others.
pub const SCOPES: &[&str] = &[
    "users:read",
    "users:write",
    "clients:read",
    "clients:write",
    "reports:read",
    "cluster:read",
    "admin",
];

/// Prefix of every token, so that a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "radmfa_";

/// Checks, deduplicates and sorts scopes (comma-separated items allowed).
pub fn normalize_scopes(scopes: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for s in scopes.iter().flat_map(|s| s.split(',')) {
        let s = s.trim();
        if s.is_empty() {
            continue;
        }
        if !SCOPES.contains(&s) {
            return Err(format!(
                "unknown scope {s:?} (one of: {})",
                SCOPES.join(", ")
            ));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    if out.is_empty() {
        return Err(format!(
            "give at least one scope (one of: {})",
            SCOPES.join(", ")
        ));
    }
    out.sort();
    Ok(out)
}

/// A new token: the prefix and 256 random bits in hex.
pub fn new_token() -> Zeroizing<String> {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::fill(&mut raw[..]);
    let mut s = Zeroizing::new(String::with_capacity(TOKEN_PREFIX.len() + 64));
    s.push_str(TOKEN_PREFIX);
    for b in raw.iter() {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// Whether `held` grants `needed`.
pub fn grants(held: &[String], needed: &str) -> bool {
    held.iter().any(|s| s == needed || s == "admin")
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: &[u8]) -> Option<&[u8]> {
    let rest = header
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
        .and_then(|_| header.get(7..))?;
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_checked_and_normalized() {
        let got = normalize_scopes(&["users:write,users:read".into(), "users:read".into()]);
        assert_eq!(got.unwrap(), vec!["users:read", "users:write"]);
        assert!(normalize_scopes(&["users:delete".into()]).is_err());
        assert!(normalize_scopes(&[" , ".into()]).is_err());
    }

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(*a, *b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
    }

    #[test]
    fn admin_grants_everything_and_bearer_parses() {
        assert!(grants(&["admin".into()], "users:write"));
        assert!(grants(&["users:read".into()], "users:read"));
        assert!(!grants(&["users:read".into()], "users:write"));
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bear"), None);
    }
}
