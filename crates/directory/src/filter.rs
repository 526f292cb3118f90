//! Search filter construction (RFC 4515 escaping) and login-name parsing.

use crate::DirectoryKind;

/// Longest login accepted before any search is made.
pub(crate) const MAX_LOGIN_LEN: usize = 256;

/// Escapes a value for use inside an RFC 4515 search filter.
///
/// `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c` and `\00`;
/// everything else (including UTF-8) is kept as is, as the RFC allows.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            other => out.push(other),
        }
    }
    out
}

/// Fills every `{user}` placeholder of `template` with the escaped `login`.
pub(crate) fn render_user_filter(template: &str, login: &str) -> String {
    template.replace("{user}", &escape_filter_value(login))
}

/// The "every user" filter derived from a user filter template: `{user}` becomes `*`
/// (a presence match), so `(&(objectClass=inetOrgPerson)(uid={user}))` selects all users.
pub(crate) fn all_users_filter(template: &str) -> String {
    template.replace("{user}", "*")
}

/// Wraps a bare filter component (`uid=x`) in parentheses; a filter that already
/// starts with `(` is returned unchanged.
pub(crate) fn wrap_filter(filter: &str) -> String {
    let f = filter.trim();
    if f.starts_with('(') {
        f.to_owned()
    } else {
        format!("({f})")
    }
}

/// The names to search for, in order, for what the user typed.
///
/// - `DOMAIN\user` (Active Directory): the domain part is dropped -> `user`.
/// - `user@domain` (UPN): first the whole UPN (the AD default filter matches
///   `userPrincipalName`; an LDAP `uid` may be an e-mail address), then the local part,
///   so `alice@corp.example` also finds `sAMAccountName=alice` / `uid=alice`.
/// - anything else: as typed.
///
/// Empty names, names longer than [`MAX_LOGIN_LEN`] and names with control characters
/// yield no candidate (the caller reports an unknown user without searching).
pub(crate) fn login_candidates(kind: DirectoryKind, login: &str) -> Vec<String> {
    let login = login.trim();
    if login.is_empty() || login.len() > MAX_LOGIN_LEN || login.chars().any(char::is_control) {
        return Vec::new();
    }
    if kind == DirectoryKind::ActiveDirectory {
        if let Some((domain, user)) = login.split_once('\\') {
            let user = user.trim();
            if domain.is_empty() || user.is_empty() || user.contains('\\') {
                return Vec::new();
            }
            return vec![user.to_owned()];
        }
    }
    if let Some((local, domain)) = login.rsplit_once('@') {
        let local = local.trim();
        if !local.is_empty() && !domain.trim().is_empty() {
            return vec![login.to_owned(), local.to_owned()];
        }
    }
    vec![login.to_owned()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_rfc4515_specials() {
        assert_eq!(
            escape_filter_value("a*b(c)d\\e\0f"),
            "a\\2ab\\28c\\29d\\5ce\\00f"
        );
        assert_eq!(escape_filter_value("plain.user-1"), "plain.user-1");
        assert_eq!(escape_filter_value("jürgen"), "jürgen");
        assert_eq!(escape_filter_value(""), "");
    }

    #[test]
    fn injection_attempts_stay_values() {
        let f = render_user_filter("(&(objectClass=inetOrgPerson)(uid={user}))", "*)(uid=*");
        assert_eq!(
            f,
            "(&(objectClass=inetOrgPerson)(uid=\\2a\\29\\28uid=\\2a))"
        );
        assert!(ldap3::parse_filter(&f).is_ok());
        let f = render_user_filter("(|(a={user})(b={user}))", "x)(|(c=*");
        assert_eq!(f, "(|(a=x\\29\\28|\\28c=\\2a)(b=x\\29\\28|\\28c=\\2a))");
    }

    #[test]
    fn all_users_and_wrapping() {
        assert_eq!(
            all_users_filter("(&(objectClass=inetOrgPerson)(uid={user}))"),
            "(&(objectClass=inetOrgPerson)(uid=*))"
        );
        assert_eq!(wrap_filter("mail=*"), "(mail=*)");
        assert_eq!(wrap_filter(" (mail=*) "), "(mail=*)");
    }

    #[test]
    fn login_forms_ad() {
        let ad = DirectoryKind::ActiveDirectory;
        assert_eq!(login_candidates(ad, "alice"), vec!["alice"]);
        assert_eq!(login_candidates(ad, "CORP\\alice"), vec!["alice"]);
        assert_eq!(
            login_candidates(ad, "alice@corp.example"),
            vec!["alice@corp.example", "alice"]
        );
        assert_eq!(login_candidates(ad, " alice "), vec!["alice"]);
        assert!(login_candidates(ad, "CORP\\").is_empty());
        assert!(login_candidates(ad, "\\alice").is_empty());
        assert!(login_candidates(ad, "A\\B\\c").is_empty());
    }

    #[test]
    fn login_forms_ldap_and_rejects() {
        let l = DirectoryKind::Ldap;
        assert_eq!(login_candidates(l, "bob"), vec!["bob"]);
        assert_eq!(
            login_candidates(l, "bob@example.org"),
            vec!["bob@example.org", "bob"]
        );
        // LDAP keeps a backslash as part of the name (escaped later).
        assert_eq!(login_candidates(l, "X\\bob"), vec!["X\\bob"]);
        assert_eq!(login_candidates(l, "@example.org"), vec!["@example.org"]);
        assert_eq!(login_candidates(l, "bob@"), vec!["bob@"]);
        assert!(login_candidates(l, "").is_empty());
        assert!(login_candidates(l, "   ").is_empty());
        assert!(login_candidates(l, "bo\0b").is_empty());
        assert!(login_candidates(l, "bo\nb").is_empty());
        assert!(login_candidates(l, &"x".repeat(MAX_LOGIN_LEN + 1)).is_empty());
        assert_eq!(login_candidates(l, &"x".repeat(MAX_LOGIN_LEN)).len(), 1);
    }
}
