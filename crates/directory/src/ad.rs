//! Active Directory account state: `userAccountControl`, `accountExpires` and the
//! diagnostic codes AD puts in a failed bind's message (`..., data 52e, v4563`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::AuthFailure;

/// `userAccountControl` ACCOUNTDISABLE.
pub(crate) const UF_ACCOUNTDISABLE: i64 = 0x0002;
/// `userAccountControl` LOCKOUT (reliable only in `msDS-User-Account-Control-Computed`).
pub(crate) const UF_LOCKOUT: i64 = 0x0010;
/// `msDS-User-Account-Control-Computed` PASSWORD_EXPIRED.
pub(crate) const UF_PASSWORD_EXPIRED: i64 = 0x0080_0000;

/// Seconds between 1601-01-01 (FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET_SECS: i64 = 11_644_473_600;

/// `now` as a Windows FILETIME (100 ns intervals since 1601-01-01).
pub(crate) fn filetime(now: SystemTime) -> i64 {
    let secs = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
        Err(_) => 0,
    };
    secs.saturating_add(FILETIME_UNIX_OFFSET_SECS)
        .saturating_mul(10_000_000)
}

/// Parses an AD integer attribute value (decimal, possibly negative); garbage is `None`.
pub(crate) fn parse_int(value: Option<&str>) -> Option<i64> {
    value.and_then(|v| v.trim().parse::<i64>().ok())
}

/// Whether `accountExpires` (FILETIME; 0 and i64::MAX mean "never") lies before `now_ft`.
pub(crate) fn account_expired(account_expires: Option<i64>, now_ft: i64) -> bool {
    match account_expires {
        None | Some(0) | Some(i64::MAX) => false,
        Some(v) if v < 0 => false,
        Some(v) => v <= now_ft,
    }
}

/// The account state AD reports before any bind.
///
/// `uac` is `userAccountControl`, `computed` is `msDS-User-Account-Control-Computed`
/// (the only place where lockout and password expiry are kept current). `lockoutTime`
/// is deliberately not used here: it stays non-zero after the lockout duration has
/// passed, so it only explains a failed bind (see [`locked_hint`]).
pub(crate) fn account_state(
    uac: Option<i64>,
    computed: Option<i64>,
    account_expires: Option<i64>,
    now_ft: i64,
) -> Result<(), AuthFailure> {
    let uac = uac.unwrap_or(0);
    let computed = computed.unwrap_or(0);
    if uac & UF_ACCOUNTDISABLE != 0 {
        return Err(AuthFailure::AccountDisabled);
    }
    if account_expired(account_expires, now_ft) {
        return Err(AuthFailure::AccountExpired);
    }
    if (uac | computed) & UF_LOCKOUT != 0 {
        return Err(AuthFailure::AccountLocked);
    }
    if (uac | computed) & UF_PASSWORD_EXPIRED != 0 {
        return Err(AuthFailure::PasswordExpired);
    }
    Ok(())
}

/// Whether a non-zero `lockoutTime` should explain a rejected bind as a lockout.
pub(crate) fn locked_hint(lockout_time: Option<i64>) -> bool {
    matches!(lockout_time, Some(t) if t > 0)
}

/// Maps the AD sub-code in a bind's diagnostic message to a failure.
///
/// | data | meaning | result |
/// |------|---------|--------|
/// | 525 | user not found | UnknownUser |
/// | 52e | invalid credentials | WrongPassword |
/// | 52f, 530, 531, 534 | account/logon-hours/workstation/logon-type restriction | AccountDisabled |
/// | 532 | password expired | PasswordExpired |
/// | 533 | account disabled | AccountDisabled |
/// | 701 | account expired | AccountExpired |
/// | 773 | user must reset password | PasswordExpired |
/// | 775 | account locked | AccountLocked |
///
/// `None` when the message carries no (known) code.
pub(crate) fn map_bind_diagnostic(text: &str) -> Option<AuthFailure> {
    let code = diagnostic_code(text)?;
    Some(match code.as_str() {
        "525" => AuthFailure::UnknownUser,
        "52e" => AuthFailure::WrongPassword,
        "52f" | "530" | "531" | "534" => AuthFailure::AccountDisabled,
        "532" | "773" => AuthFailure::PasswordExpired,
        "533" => AuthFailure::AccountDisabled,
        "701" => AuthFailure::AccountExpired,
        "775" => AuthFailure::AccountLocked,
        _ => return None,
    })
}

/// Extracts the lower-cased hex code after `data ` in an AD diagnostic message.
fn diagnostic_code(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(pos) = rest.find("data ") {
        let after = rest.get(pos + 5..)?;
        let code: String = after.chars().take_while(char::is_ascii_hexdigit).collect();
        if !code.is_empty() && code.len() <= 8 {
            return Some(code);
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MSG: &str =
        "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563\0";

    #[test]
    fn diagnostics_map_to_reasons() {
        let cases = [
            ("525", "unknown_user"),
            ("52e", "wrong_password"),
            ("52E", "wrong_password"),
            ("530", "account_disabled"),
            ("531", "account_disabled"),
            ("532", "password_expired"),
            ("533", "account_disabled"),
            ("701", "account_expired"),
            ("773", "password_expired"),
            ("775", "account_locked"),
        ];
        for (code, reason) in cases {
            let text = MSG.replace("52e", code);
            let got = map_bind_diagnostic(&text).map(|f| f.reason());
            assert_eq!(got, Some(reason), "code {code}");
        }
        assert!(map_bind_diagnostic("invalid credentials").is_none());
        assert!(map_bind_diagnostic("").is_none());
        assert!(map_bind_diagnostic("data ").is_none());
        assert!(
            map_bind_diagnostic("data zzz, data 775").map(|f| f.reason()) == Some("account_locked")
        );
        assert!(map_bind_diagnostic("comment: data 999, v1").is_none());
        // Multi-byte text around the marker must not panic.
        assert!(map_bind_diagnostic("ü data ü").is_none());
    }

    #[test]
    fn user_account_control_bits() {
        let now = filetime(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert!(account_state(Some(512), None, None, now).is_ok());
        assert_eq!(
            account_state(Some(514), None, None, now)
                .unwrap_err()
                .reason(),
            "account_disabled"
        );
        assert_eq!(
            account_state(Some(512 | 16), None, None, now)
                .unwrap_err()
                .reason(),
            "account_locked"
        );
        assert_eq!(
            account_state(Some(512), Some(16), None, now)
                .unwrap_err()
                .reason(),
            "account_locked"
        );
        assert_eq!(
            account_state(Some(512), Some(0x0080_0000), None, now)
                .unwrap_err()
                .reason(),
            "password_expired"
        );
        // Disabled wins over locked.
        assert_eq!(
            account_state(Some(2 | 16), Some(16), None, now)
                .unwrap_err()
                .reason(),
            "account_disabled"
        );
        assert!(account_state(None, None, None, now).is_ok());
    }

    #[test]
    fn account_expires_filetime() {
        // 2023-11-14T22:13:20Z
        let now = filetime(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(now, (1_700_000_000 + 11_644_473_600) * 10_000_000);
        assert!(!account_expired(Some(0), now));
        assert!(!account_expired(Some(i64::MAX), now));
        assert!(!account_expired(None, now));
        assert!(!account_expired(Some(-5), now));
        assert!(account_expired(Some(now - 1), now));
        assert!(!account_expired(Some(now + 10_000_000), now));
        assert_eq!(
            account_state(Some(512), None, Some(now - 1), now)
                .unwrap_err()
                .reason(),
            "account_expired"
        );
        // Clocks before 1970 clamp to the Unix epoch.
        assert_eq!(
            filetime(UNIX_EPOCH - Duration::from_secs(5)),
            11_644_473_600 * 10_000_000
        );
    }

    #[test]
    fn integers_and_lockout_hint() {
        assert_eq!(parse_int(Some(" 512 ")), Some(512));
        assert_eq!(parse_int(Some("-1")), Some(-1));
        assert_eq!(parse_int(Some("9223372036854775807")), Some(i64::MAX));
        assert_eq!(parse_int(Some("x")), None);
        assert_eq!(parse_int(Some("99999999999999999999")), None);
        assert_eq!(parse_int(None), None);
        assert!(locked_hint(Some(133_000_000_000_000_000)));
        assert!(!locked_hint(Some(0)));
        assert!(!locked_hint(None));
    }
}
