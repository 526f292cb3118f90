//! The records the store keeps, as callers see them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Secret, StoreError};

/// Longest accepted user or client name, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 253;
/// Longest accepted token seed, in bytes.
pub(crate) const MAX_SEED_LEN: usize = 1024;

/// Longest accepted display name, in characters (AD's `displayName` limit).
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;
/// Longest accepted e-mail address, in bytes (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest accepted group name, in characters (AD's `cn` limit is 64; LDAP
/// groups elsewhere may be longer).
pub const MAX_GROUP_CHARS: usize = 256;
/// Most groups one user may have.
pub const MAX_GROUPS: usize = 1024;

/// Characters refused in names, display names, e-mail addresses and groups,
/// and shown escaped wherever text is logged or printed: control characters
/// (C0, DEL, C1: CR and LF forge log lines, ESC drives the terminal), the
/// Unicode line and paragraph separators (new lines to some viewers), and the
/// bidirectional marks and overrides (text that reads differently from what
/// it is).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Checks a user or client name: 1..=253 bytes of UTF-8, no control
/// characters (see [`is_unsafe_char`]). Used by every lookup as well, so it
/// accepts whatever older versions let in; new users also pass
/// [`check_user_text`].
pub(crate) fn validate_name(what: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(StoreError::Invalid(format!(
            "{what} name must be 1 to {MAX_NAME_LEN} bytes long, got {}",
            name.len()
        )));
    }
    if name.chars().any(is_unsafe_char) {
        return Err(StoreError::Invalid(format!(
            "{what} name must not contain control characters: {name:?}"
        )));
    }
    Ok(())
}

/// One free-text field of a user: at most `max` (bytes or characters, as
/// `len` counts), no [`is_unsafe_char`].
fn check_field(
    user: &str,
    what: &str,
    value: &str,
    max: usize,
    len: fn(&str) -> usize,
) -> Result<(), StoreError> {
    if len(value) > max {
        return Err(StoreError::Invalid(format!(
            "{what} of user {user:?} is too long (at most {max})"
        )));
    }
    if value.chars().any(is_unsafe_char) {
        return Err(StoreError::Invalid(format!(
            "{what} of user {user:?} must not contain control characters: {value:?}"
        )));
    }
    Ok(())
}

/// The one check of the text a user record carries, run by the store on
/// every write (CLI, admin API, portal, import, directory sync all write
/// through it). `old` is the record being replaced, `None` for a new user:
/// only fields that change are checked, so a record written by an older
/// version stays writable (a lock, a PIN change) until its text is edited.
///
/// Rules: the name is 1..=253 bytes without control characters and, for a
/// new user, without white space at either end (`"alice "` would look like
/// `"alice"` in every list); names are matched exactly and case-sensitively.
/// Display name (at most [`MAX_DISPLAY_NAME_CHARS`]), e-mail (at most
/// [`MAX_EMAIL_LEN`] bytes) and groups (at most [`MAX_GROUPS`], each 1 to
/// [`MAX_GROUP_CHARS`] characters) must not contain control characters.
pub fn check_user_text(old: Option<&User>, new: &User) -> Result<(), StoreError> {
    let chars = |s: &str| s.chars().count();
    if old.is_none() {
        validate_name("user", &new.name)?;
        if new.name.trim() != new.name {
            return Err(StoreError::Invalid(format!(
                "user name must not begin or end with white space: {:?}",
                new.name
            )));
        }
    }
    let name = new.name.as_str();
    if old.is_none_or(|o| o.display_name != new.display_name) {
        check_field(
            name,
            "display name",
            &new.display_name,
            MAX_DISPLAY_NAME_CHARS,
            chars,
        )?;
    }
    if old.is_none_or(|o| o.email != new.email) {
        check_field(name, "email", &new.email, MAX_EMAIL_LEN, str::len)?;
    }
    if old.is_none_or(|o| o.groups != new.groups) {
        if new.groups.len() > MAX_GROUPS {
            return Err(StoreError::Invalid(format!(
                "user {name:?} has too many groups (at most {MAX_GROUPS})"
            )));
        }
        for g in &new.groups {
            if g.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "user {name:?}: a group name must not be empty"
                )));
            }
            check_field(name, "group", g, MAX_GROUP_CHARS, chars)?;
        }
    }
    Ok(())
}

/// A user's second-factor method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Time-based one-time password (authenticator app).
    Totp,
    /// Counter-based one-time password (hardware token).
    Hotp,
    /// One-way SMS code, entered at an Access-Challenge.
    Sms,
    /// Two-way SMS: the user answers the SMS; the request waits.
    SmsTwoWay,
    /// Voice call: the user confirms on the phone; the request waits.
    Call,
    /// Push to the mobile app; the request waits.
    Push,
    /// No second factor.
    None,
}

impl Method {
    /// The configuration / CLI spelling ("totp", "sms_two_way", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Hotp => "hotp",
            Method::Sms => "sms",
            Method::SmsTwoWay => "sms_two_way",
            Method::Call => "call",
            Method::Push => "push",
            Method::None => "none",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Method, StoreError> {
        const ALL: [Method; 7] = [
            Method::Totp,
            Method::Hotp,
            Method::Sms,
            Method::SmsTwoWay,
            Method::Call,
            Method::Push,
            Method::None,
        ];
        ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            StoreError::Invalid(format!(
                "unknown method {s:?} (expected totp, hotp, sms, sms_two_way, call, push or none)"
            ))
        })
    }
}

/// Why a user is disabled. Sync re-enables only the users it disabled
/// itself ([`DisabledReason::by_sync`]); a user disabled by an admin or
/// after a fraud report stays disabled until an admin enables them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// An admin disabled the user (CLI, API), or added them disabled.
    Admin,
    /// The user reported a sign-in as not theirs (portal "This was not me").
    Fraud,
    /// A directory sync item: the user left the set it covers.
    LeftDirectory,
    /// A directory sync item: the account is disabled in the directory.
    DirectoryDisabled,
}

impl DisabledReason {
    /// The stable spelling (`user show`, the API): "admin", "fraud",
    /// "left_directory", "directory_disabled".
    pub fn as_str(self) -> &'static str {
        match self {
            DisabledReason::Admin => "admin",
            DisabledReason::Fraud => "fraud",
            DisabledReason::LeftDirectory => "left_directory",
            DisabledReason::DirectoryDisabled => "directory_disabled",
        }
    }

    /// True for the reasons a directory sync sets (and may lift).
    pub fn by_sync(self) -> bool {
        matches!(
            self,
            DisabledReason::LeftDirectory | DisabledReason::DirectoryDisabled
        )
    }
}

impl fmt::Display for DisabledReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The directory's values of a synced user's attributes, as the last sync
/// saw them (phone normalised, groups sorted). A current value that differs
/// from its value here was set locally (portal, CLI, API) since that sync.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedFields {
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// Email address.
    #[serde(default)]
    pub email: String,
    /// Phone number (E.164 or empty).
    #[serde(default)]
    pub phone: String,
    /// Group names, sorted and without duplicates.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A user as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name (the key): 1..=253 bytes, no control characters.
    pub name: String,
    /// Human-readable name.
    pub display_name: String,
    /// E-mail address (enrollment mail).
    pub email: String,
    /// Phone number (SMS, call).
    pub phone: String,
    /// Phone extension (digits, `*`, `#`, `w` for a pause), dialled after a
    /// call connects (Twilio `SendDigits`); empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub extension: String,
    /// Second-factor method.
    pub method: Method,
    /// Disabled users are rejected.
    pub enabled: bool,
    /// Why the user is disabled; `None` while enabled (the store clears it
    /// on enabling), and for users disabled before reasons were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<DisabledReason>,
    /// Groups, mapped to reply attributes.
    pub groups: Vec<String>,
    /// argon2id PHC string for the `local` first factor. Never printed by `Debug`.
    pub password_hash: Option<String>,
    /// Device token of the authenticator app (push); empty when none.
    #[serde(default)]
    pub device_token: String,
    /// Browsers registered for sign-in approvals by Web Push (portal
    /// devices page). The endpoints are capabilities: `Debug` prints only
    /// how many there are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push_devices: Vec<PushDevice>,
    /// Language of messages to the user (enrollment email), e.g. "en"; empty
    /// for the configured default.
    #[serde(default)]
    pub language: String,
    /// Where the user came from: empty when added by an admin, else the
    /// directory sync item (`ldap:NAME`) that manages the record.
    #[serde(default)]
    pub source: String,
    /// Directory-synced users: the directory's values at the last sync, to
    /// tell locally set fields from synced ones. `None` for other users
    /// (and for synced users before their first sync with this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced: Option<SyncedFields>,
    /// The user's PIN, sealed under the store key: set means PIN mode (the PIN
    /// is typed with the code, or asked for in the call / SMS / app). Written
    /// only by [`crate::Store::set_pin`], read by [`crate::Store::open_pin`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<SealedPin>,
    /// The PIN was set by an admin: the user must choose their own in the
    /// portal before using it (set with [`crate::Store::set_pin_required`]).
    #[serde(default)]
    pub pin_change_required: bool,
    /// Locked out until this time, unix seconds: 0 = not locked, `u64::MAX`
    /// = until an admin unlocks. Written by the server's lockout.
    #[serde(default)]
    pub locked_until: u64,
    /// Why the user is locked (`too_many_failures`, `fraud_reported`);
    /// empty when not locked.
    #[serde(default)]
    pub lock_reason: String,
    /// Creation time, unix seconds (set by the store).
    pub created: u64,
    /// Last change, unix seconds (set by the store).
    pub updated: u64,
}

impl User {
    /// A new enabled user with method TOTP, empty fields and zero times.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            display_name: String::new(),
            email: String::new(),
            phone: String::new(),
            extension: String::new(),
            method: Method::Totp,
            enabled: true,
            disabled_reason: None,
            groups: Vec::new(),
            password_hash: None,
            device_token: String::new(),
            push_devices: Vec::new(),
            language: String::new(),
            source: String::new(),
            synced: None,
            pin: None,
            pin_change_required: false,
            locked_until: 0,
            lock_reason: String::new(),
            created: 0,
            updated: 0,
        }
    }
}

impl User {
    /// Disables the user for `reason`. A user already disabled by an admin
    /// or a fraud report keeps that reason; one disabled by a sync (or
    /// before reasons were recorded) takes the new one, so an admin's
    /// disable is never lifted by a later sync.
    pub fn disable(&mut self, reason: DisabledReason) {
        let keep = !self.enabled && self.disabled_reason.is_some_and(|r| !r.by_sync());
        if !keep {
            self.disabled_reason = Some(reason);
        }
        self.enabled = false;
    }

    /// Enables the user and forgets why they were disabled.
    pub fn enable(&mut self) {
        self.enabled = true;
        self.disabled_reason = None;
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .field("extension", &self.extension)
            .field("method", &self.method)
            .field("enabled", &self.enabled)
            .field("disabled_reason", &self.disabled_reason)
            .field("groups", &self.groups)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| Redacted),
            )
            .field("device_token", &self.device_token)
            .field("push_devices", &self.push_devices.len())
            .field("language", &self.language)
            .field("source", &self.source)
            .field("synced", &self.synced)
            .field("pin", &self.pin)
            .field("pin_change_required", &self.pin_change_required)
            .field("locked_until", &self.locked_until)
            .field("lock_reason", &self.lock_reason)
            .field("created", &self.created)
            .field("updated", &self.updated)
            .finish()
    }
}

/// Most Web Push devices one user may register.
pub const MAX_PUSH_DEVICES: usize = 10;
/// Longest accepted device name, in characters.
pub const MAX_DEVICE_NAME_CHARS: usize = 64;
/// Longest accepted push endpoint URL, in bytes.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// A browser registered for sign-in approvals: its Push API subscription
/// (RFC 8030 push resource and the RFC 8291 keys). The endpoint URL is a
/// capability (whoever knows it can send to the browser), so `Debug` and
/// every log show only its host ([`PushDevice::endpoint_host`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushDevice {
    /// Random id (hex), what the portal, CLI and API name it by.
    pub id: String,
    /// Name the user gave it ("Phone").
    pub name: String,
    /// The push resource (https URL of the browser vendor's push service).
    pub endpoint: String,
    /// The browser's P-256 public key, base64url (uncompressed point).
    pub p256dh: String,
    /// The authentication secret, base64url (16 bytes).
    pub auth: String,
    /// When it was registered, unix seconds.
    pub created: u64,
}

impl PushDevice {
    /// The host of the endpoint, the only part of it that may be shown.
    pub fn endpoint_host(&self) -> &str {
        endpoint_host(&self.endpoint)
    }

    /// Checks what a browser sent: an http(s) endpoint of sane length, a
    /// 65-byte uncompressed P-256 point and a 16-byte secret (base64url, as
    /// `PushSubscription.toJSON()` gives them), a name without control
    /// characters.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: &str| Err(StoreError::Invalid(m.to_string()));
        if self.name.trim().is_empty()
            || self.name.chars().count() > MAX_DEVICE_NAME_CHARS
            || self.name.chars().any(is_unsafe_char)
        {
            return bad("a device name must be 1 to 64 characters without control characters");
        }
        let scheme_ok =
            self.endpoint.starts_with("https://") || self.endpoint.starts_with("http://");
        if !scheme_ok
            || self.endpoint.len() > MAX_ENDPOINT_LEN
            || self.endpoint_host().is_empty()
            || self.endpoint.chars().any(|c| c.is_control() || c == ' ')
        {
            return bad("the push endpoint must be an https URL of at most 2048 bytes");
        }
        let b64 = |s: &str| {
            data_encoding::BASE64URL_NOPAD
                .decode(s.trim_end_matches('=').as_bytes())
                .ok()
        };
        if b64(&self.p256dh).is_none_or(|k| k.len() != 65 || k[0] != 4) {
            return bad("p256dh must be an uncompressed P-256 public key, base64url");
        }
        if b64(&self.auth).is_none_or(|k| k.len() != 16) {
            return bad("auth must be 16 bytes, base64url");
        }
        Ok(())
    }
}

/// The host (and port) of an http(s) URL; empty when it has none.
pub fn endpoint_host(url: &str) -> &str {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or("");
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Never user info.
    authority.rsplit('@').next().unwrap_or("")
}

impl fmt::Debug for PushDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushDevice")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("endpoint_host", &self.endpoint_host())
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// A PIN encrypted at rest (ChaCha20-Poly1305 under the store key, bound to
/// the user name). Opaque: only the store opens it. `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPin {
    /// 12-byte nonce, hex.
    pub(crate) nonce: String,
    /// Ciphertext and tag, hex.
    pub(crate) sealed: String,
}

impl fmt::Debug for SealedPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Shortest and longest PIN, in digits.
pub const PIN_LEN: std::ops::RangeInclusive<usize> = 4..=10;

/// Checks a PIN: 4 to 10 ASCII digits (a phone keypad can enter it).
pub fn validate_pin(pin: &[u8]) -> Result<(), StoreError> {
    if !PIN_LEN.contains(&pin.len()) || !pin.iter().all(u8::is_ascii_digit) {
        return Err(StoreError::Invalid(format!(
            "a PIN must be {} to {} digits",
            PIN_LEN.start(),
            PIN_LEN.end()
        )));
    }
    Ok(())
}

/// Prints `***` in place of a secret.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One-time password token type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// RFC 6238.
    Totp,
    /// RFC 4226.
    Hotp,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenKind::Totp => "totp",
            TokenKind::Hotp => "hotp",
        })
    }
}

impl FromStr for TokenKind {
    type Err = StoreError;

    /// "totp" or "hotp", any case.
    fn from_str(s: &str) -> Result<TokenKind, StoreError> {
        match s.to_ascii_lowercase().as_str() {
            "totp" => Ok(TokenKind::Totp),
            "hotp" => Ok(TokenKind::Hotp),
            _ => Err(StoreError::Invalid(format!(
                "unknown token kind {s:?} (expected totp or hotp)"
            ))),
        }
    }
}

/// HMAC hash of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenAlgorithm {
    /// HMAC-SHA-1 (the authenticator-app default).
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl fmt::Display for TokenAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenAlgorithm::Sha1 => "sha1",
            TokenAlgorithm::Sha256 => "sha256",
            TokenAlgorithm::Sha512 => "sha512",
        })
    }
}

impl FromStr for TokenAlgorithm {
    type Err = StoreError;

    /// "sha1", "sha256" or "sha512", any case (otpauth URIs say "SHA1").
    fn from_str(s: &str) -> Result<TokenAlgorithm, StoreError> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" => Ok(TokenAlgorithm::Sha1),
            "sha256" => Ok(TokenAlgorithm::Sha256),
            "sha512" => Ok(TokenAlgorithm::Sha512),
            _ => Err(StoreError::Invalid(format!(
                "unknown token algorithm {s:?} (expected sha1, sha256 or sha512)"
            ))),
        }
    }
}

/// A token as handed to callers: seed decrypted. `Debug` prints `***` for the
/// secret, which is zeroized on drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// TOTP or HOTP.
    pub kind: TokenKind,
    /// HMAC hash.
    pub algorithm: TokenAlgorithm,
    /// Code length, 6..=10.
    pub digits: u8,
    /// TOTP time step in seconds (at least 1); ignored for HOTP.
    pub period: u64,
    /// The seed (1..=1024 bytes).
    pub secret: Secret,
    /// Enrollment time, unix seconds (kept as given).
    pub created: u64,
}

impl Token {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if !(6..=10).contains(&self.digits) {
            return Err(StoreError::Invalid(format!(
                "token digits must be 6 to 10, got {}",
                self.digits
            )));
        }
        if self.kind == TokenKind::Totp && self.period == 0 {
            return Err(StoreError::Invalid(
                "TOTP period must be at least 1 second".into(),
            ));
        }
        let len = self.secret.expose().len();
        if len == 0 || len > MAX_SEED_LEN {
            return Err(StoreError::Invalid(format!(
                "token seed must be 1 to {MAX_SEED_LEN} bytes, got {len}"
            )));
        }
        Ok(())
    }
}

/// The languages users can be given: their messages (prompts, SMS,
/// calls, mail, portal) exist in these.
pub const LANGUAGES: [&str; 4] = ["en", "nl", "de", "fr"];

/// Checks a user's language: one of [`LANGUAGES`], optionally with a
/// region (`nl-BE`, `fr_CA`: two letters or three digits); empty means the
/// configured default. The one check for every place a language is set
/// (CSV import, `user add/set --language`, the API).
pub fn check_language(lang: &str) -> Result<(), StoreError> {
    if lang.is_empty() {
        return Ok(());
    }
    let (base, region) = match lang.split_once(['-', '_']) {
        Some((b, r)) => (b, Some(r)),
        None => (lang, None),
    };
    let region_ok = region.is_none_or(|r| {
        (r.len() == 2 && r.bytes().all(|b| b.is_ascii_alphabetic()))
            || (r.len() == 3 && r.bytes().all(|b| b.is_ascii_digit()))
    });
    if LANGUAGES.contains(&base.to_ascii_lowercase().as_str()) && region_ok {
        return Ok(());
    }
    Err(StoreError::Invalid(format!(
        "{lang:?} is not a supported language (en, nl, de or fr, optionally with a region such as nl-BE)"
    )))
}

/// Longest accepted token serial, in bytes.
pub const MAX_SERIAL_LEN: usize = 128;

/// An imported token (PSKC, a vendor's seed file) as handed to
/// [`crate::Store::put_pool_tokens`]: kept by serial until assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolToken {
    /// The serial it is known by (printed on a hardware token).
    pub serial: String,
    /// Who made it (PSKC `Manufacturer`); may be empty.
    pub manufacturer: String,
    /// HOTP: the next counter value the token will use (0 for a new one).
    pub counter: u64,
    /// The token itself (seed in clear, zeroized on drop).
    pub token: Token,
}

/// An imported token as listed: never its seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolEntry {
    /// The serial.
    pub serial: String,
    /// Who made it; may be empty.
    pub manufacturer: String,
    /// TOTP or HOTP.
    pub kind: TokenKind,
    /// HMAC hash.
    pub algorithm: TokenAlgorithm,
    /// Code length.
    pub digits: u8,
    /// TOTP time step in seconds.
    pub period: u64,
    /// HOTP: the counter it was imported with.
    pub counter: u64,
    /// Import time, unix seconds.
    pub created: u64,
    /// The user it is assigned to; `None` while unassigned.
    pub user: Option<String>,
}

/// Checks a token serial: 1..=128 bytes, no white space or control
/// characters (it is typed on a command line and shown in lists).
pub fn validate_serial(serial: &str) -> Result<(), StoreError> {
    if serial.is_empty() || serial.len() > MAX_SERIAL_LEN {
        return Err(StoreError::Invalid(format!(
            "a token serial must be 1 to {MAX_SERIAL_LEN} bytes, got {}",
            serial.len()
        )));
    }
    if serial
        .chars()
        .any(|c| c.is_whitespace() || is_unsafe_char(c))
    {
        return Err(StoreError::Invalid(format!(
            "a token serial must not contain white space or control characters: {serial:?}"
        )));
    }
    Ok(())
}

/// A RADIUS client (NAS).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Client {
    /// Name (the key): 1..=253 bytes, no control characters.
    pub name: String,
    /// Source address or network the client's requests come from.
    pub address: ipnet::IpNet,
    /// RADIUS shared secret (non-empty). Never printed by `Debug`.
    pub secret: String,
    /// Name of the policy applied to its requests.
    pub policy: String,
    /// Require Message-Authenticator in Access-Requests (BlastRADIUS).
    pub require_message_authenticator: bool,
}

impl Client {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        validate_name("client", &self.name)?;
        if self.secret.is_empty() {
            return Err(StoreError::Invalid(format!(
                "client {:?}: shared secret must not be empty",
                self.name
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("secret", &Redacted)
            .field("policy", &self.policy)
            .field(
                "require_message_authenticator",
                &self.require_message_authenticator,
            )
            .finish()
    }
}

/// One authentication (or admin action), as recorded in the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When, unix milliseconds.
    pub time_ms: u64,
    /// User-Name.
    pub user: String,
    /// e.g. "pap+totp", "pap+totp-challenge".
    pub mode: String,
    /// "accept", "reject" or "challenge".
    pub result: String,
    /// Why (for rejects), free text.
    pub reason: String,
    /// Node that answered.
    pub server_name: String,
    /// Its address.
    pub server_ip: String,
    /// RADIUS client name.
    pub client_name: String,
    /// The NAS address.
    pub client_ip: String,
    /// End-user address, if the NAS sent Calling-Station-Id.
    pub calling_station: String,
    /// Position in the journal of the node that wrote it (`server_name`),
    /// assigned by that journal; with the name it identifies the record
    /// cluster-wide (audit shipping). 0: written before sequences existed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// Who made an admin action (`mode` "admin"): "cli on node-a (uid 0)",
    /// "api token ops", "portal user alice"; empty for authentications.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    /// Present on the record of an Accounting-Request (RFC 2866), absent on
    /// authentication records: lines written before it existed read the
    /// same, and readers that ignore it see no change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting: Option<AccountingInfo>,
}

/// What an Accounting-Request said (RFC 2866 attributes; octet counts
/// include their Gigawords, RFC 2869 §5.1-5.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountingInfo {
    /// Acct-Status-Type: `start`, `stop`, `interim-update`, `accounting-on`,
    /// `accounting-off`, or the number of another value.
    pub status: String,
    /// Acct-Session-Id.
    #[serde(default)]
    pub session_id: String,
    /// NAS-IP-Address (or NAS-IPv6-Address).
    #[serde(default)]
    pub nas_ip: String,
    /// NAS-Identifier.
    #[serde(default)]
    pub nas_identifier: String,
    /// Framed-IP-Address.
    #[serde(default)]
    pub framed_ip: String,
    /// Acct-Input-Octets + 2^32 x Acct-Input-Gigawords.
    #[serde(default)]
    pub input_octets: u64,
    /// Acct-Output-Octets + 2^32 x Acct-Output-Gigawords.
    #[serde(default)]
    pub output_octets: u64,
    /// Acct-Session-Time, seconds.
    #[serde(default)]
    pub session_time: u64,
    /// Acct-Terminate-Cause (RFC 2866 §5.10 name, or its number).
    #[serde(default)]
    pub terminate_cause: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Selects audit records. All conditions must hold; `None` means "any".
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Exact user name.
    pub user: Option<String>,
    /// Records with `time_ms >= since_ms`.
    pub since_ms: Option<u64>,
    /// Records with `time_ms < until_ms` (exclusive).
    pub until_ms: Option<u64>,
    /// Exact result ("accept", "reject", "challenge").
    pub result: Option<String>,
    /// At most this many: the most recent matching records. Results are always
    /// in chronological order (oldest first).
    pub limit: Option<usize>,
}

impl AuditFilter {
    pub(crate) fn matches(&self, rec: &AuditRecord) -> bool {
        self.user.as_ref().is_none_or(|u| *u == rec.user)
            && self.result.as_ref().is_none_or(|r| *r == rec.result)
            && self.since_ms.is_none_or(|s| rec.time_ms >= s)
            && self.until_ms.is_none_or(|u| rec.time_ms < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_strings_round_trip() {
        let all = [
            Method::Totp,
            Method::Hotp,
            Method::Sms,
            Method::SmsTwoWay,
            Method::Call,
            Method::Push,
            Method::None,
        ];
        for m in all {
            assert_eq!(m.to_string().parse::<Method>().unwrap(), m);
            // serde uses the same spelling.
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        assert_eq!("sms_two_way".parse::<Method>().unwrap(), Method::SmsTwoWay);
        assert!("TOTP".parse::<Method>().is_err());
        assert!("".parse::<Method>().is_err());
    }

    #[test]
    fn token_kind_and_algorithm_parse() {
        assert_eq!(
            "SHA1".parse::<TokenAlgorithm>().unwrap(),
            TokenAlgorithm::Sha1
        );
        assert_eq!(
            TokenAlgorithm::Sha512
                .to_string()
                .parse::<TokenAlgorithm>()
                .unwrap(),
            TokenAlgorithm::Sha512
        );
        assert!("md5".parse::<TokenAlgorithm>().is_err());
        assert_eq!("hotp".parse::<TokenKind>().unwrap(), TokenKind::Hotp);
        assert_eq!(serde_json::to_string(&TokenKind::Totp).unwrap(), "\"totp\"");
        assert!("sms".parse::<TokenKind>().is_err());
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("user", "alice").is_ok());
        assert!(validate_name("user", "DOMAIN\\älice@example.com").is_ok());
        assert!(validate_name("user", &"a".repeat(253)).is_ok());
        assert!(validate_name("user", &"a".repeat(254)).is_err());
        assert!(validate_name("user", "").is_err());
        assert!(validate_name("user", "a\nb").is_err());
        assert!(validate_name("user", "a\u{0}").is_err());
        assert!(validate_name("user", "a\u{7f}").is_err());
        assert!(validate_name("user", "a\u{1b}[2J").is_err());
        assert!(validate_name("user", "a\u{85}b").is_err());
        assert!(validate_name("user", "a\u{2028}b").is_err());
        assert!(validate_name("user", "\u{202e}nimda").is_err());
    }

    #[test]
    fn user_text_is_checked_where_it_changes() {
        let ok = User::new("alice");
        assert!(check_user_text(None, &ok).is_ok());
        for name in [" alice", "alice ", "alice\t"] {
            assert!(check_user_text(None, &User::new(name)).is_err(), "{name:?}");
        }
        // Inside a name, spaces are fine (AD common names have them).
        assert!(check_user_text(None, &User::new("Alice Example")).is_ok());
        let mut bad = ok.clone();
        bad.display_name = "Alice\r\nsign-in user=admin".into();
        let e = check_user_text(None, &bad).unwrap_err().to_string();
        assert!(e.contains("display name") && e.contains("\\r\\n"), "{e}");
        let mut bad = ok.clone();
        bad.email = "a@example.org\u{1b}[2J".into();
        assert!(check_user_text(Some(&ok), &bad).is_err());
        let mut bad = ok.clone();
        bad.groups = vec!["vpn".into(), "adm\nins".into()];
        assert!(check_user_text(Some(&ok), &bad).is_err());
        bad.groups = vec![String::new()];
        assert!(check_user_text(Some(&ok), &bad).is_err());
        bad.groups = vec!["g".repeat(MAX_GROUP_CHARS + 1)];
        assert!(check_user_text(Some(&ok), &bad).is_err());
        let mut long = ok.clone();
        long.display_name = "é".repeat(MAX_DISPLAY_NAME_CHARS);
        assert!(check_user_text(None, &long).is_ok());
        long.display_name.push('é');
        assert!(check_user_text(None, &long).is_err());
        // A record an older version stored keeps working until that field
        // is edited: only changed fields are checked.
        let mut legacy = ok.clone();
        legacy.display_name = "old\u{7}".into();
        let mut locked = legacy.clone();
        locked.locked_until = 1;
        assert!(check_user_text(Some(&legacy), &locked).is_ok());
        assert!(check_user_text(None, &legacy).is_err());
    }

    #[test]
    fn user_debug_hides_password_hash() {
        let mut u = User::new("alice");
        assert_eq!(u.method, Method::Totp);
        assert!(u.enabled);
        u.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("argon2id"), "{dbg}");
        assert!(dbg.contains("***"), "{dbg}");
        assert!(dbg.contains("alice"), "{dbg}");
    }

    #[test]
    fn client_debug_hides_secret_and_validates() {
        let c = Client {
            name: "vpn".into(),
            address: "10.0.0.0/8".parse().unwrap(),
            secret: "s3cr3t-shared".into(),
            policy: "default".into(),
            require_message_authenticator: true,
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t-shared"), "{dbg}");
        assert!(dbg.contains("***") && dbg.contains("vpn"), "{dbg}");
        assert!(c.validate().is_ok());
        let empty = Client {
            secret: String::new(),
            ..c.clone()
        };
        assert!(matches!(empty.validate(), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn token_validation() {
        let t = Token {
            kind: TokenKind::Totp,
            algorithm: TokenAlgorithm::Sha1,
            digits: 6,
            period: 30,
            secret: Secret::new(vec![1; 20]),
            created: 0,
        };
        assert!(t.validate().is_ok());
        assert!(Token {
            digits: 5,
            ..t.clone()
        }
        .validate()
        .is_err());
        assert!(Token {
            digits: 11,
            ..t.clone()
        }
        .validate()
        .is_err());
        assert!(Token {
            period: 0,
            ..t.clone()
        }
        .validate()
        .is_err());
        let hotp = Token {
            kind: TokenKind::Hotp,
            period: 0,
            ..t.clone()
        };
        assert!(hotp.validate().is_ok());
        assert!(Token {
            secret: Secret::new(Vec::new()),
            ..t.clone()
        }
        .validate()
        .is_err());
        let dbg = format!("{t:?}");
        assert!(dbg.contains("secret: ***"), "{dbg}");
    }

    #[test]
    fn audit_filter_matches() {
        let rec = AuditRecord {
            time_ms: 1000,
            user: "alice".into(),
            mode: "pap+totp".into(),
            result: "accept".into(),
            reason: String::new(),
            server_name: "a".into(),
            server_ip: "127.0.0.1".into(),
            client_name: "vpn".into(),
            client_ip: "127.0.0.2".into(),
            calling_station: String::new(),
            ..AuditRecord::default()
        };
        assert!(AuditFilter::default().matches(&rec));
        let f = |since, until| AuditFilter {
            since_ms: since,
            until_ms: until,
            ..AuditFilter::default()
        };
        assert!(f(Some(1000), Some(1001)).matches(&rec));
        assert!(!f(Some(1001), None).matches(&rec));
        assert!(!f(None, Some(1000)).matches(&rec));
        let by_user = AuditFilter {
            user: Some("bob".into()),
            ..AuditFilter::default()
        };
        assert!(!by_user.matches(&rec));
        let by_result = AuditFilter {
            result: Some("accept".into()),
            ..AuditFilter::default()
        };
        assert!(by_result.matches(&rec));
    }

    /// A line written before accounting records existed reads the same, and
    /// an authentication record is written as it always was (no
    /// `accounting` key); an accounting record round-trips.
    #[test]
    fn audit_lines_without_accounting_are_unchanged() {
        let old = r#"{"time_ms":5,"user":"alice","mode":"pap+totp","result":"accept","reason":"","server_name":"a","server_ip":"127.0.0.1","client_name":"vpn","client_ip":"127.0.0.2","calling_station":""}"#;
        let rec: AuditRecord = serde_json::from_str(old).expect("old line");
        assert_eq!(rec.accounting, None);
        assert_eq!(serde_json::to_string(&rec).unwrap(), old);
        let acct = AuditRecord {
            accounting: Some(AccountingInfo {
                status: "stop".into(),
                input_octets: 8_589_934_597,
                ..AccountingInfo::default()
            }),
            ..rec
        };
        let line = serde_json::to_string(&acct).unwrap();
        assert!(line.contains(r#""accounting":{"status":"stop""#), "{line}");
        assert_eq!(serde_json::from_str::<AuditRecord>(&line).unwrap(), acct);
    }

    /// A record written before push devices existed loads with none, and
    /// a user without devices is written as before (no new key).
    #[test]
    fn push_devices_default_and_validate() {
        let old = r#"{"name":"alice","display_name":"","email":"","phone":"","method":"push","enabled":true,"groups":[],"password_hash":null,"created":1,"updated":1}"#;
        let u: User = serde_json::from_str(old).unwrap();
        assert!(u.push_devices.is_empty());
        assert!(!serde_json::to_string(&u).unwrap().contains("push_devices"));
        // A subscription as Chromium's PushSubscription.toJSON() gives it.
        let mut d = PushDevice {
            id: "00".into(),
            name: "Phone".into(),
            endpoint: "https://fcm.googleapis.com/fcm/send/secret-token".into(),
            p256dh: "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY".into(),
            auth: "_ordMnz7uTCmrpBTeUV4Bw".into(),
            created: 1,
        };
        assert!(d.validate().is_ok());
        assert_eq!(d.endpoint_host(), "fcm.googleapis.com");
        let dbg = format!("{d:?}");
        assert!(!dbg.contains("secret-token") && dbg.contains("fcm.googleapis.com"));
        for bad in ["ftp://x/y", "https:///y", "https://a b/"] {
            d.endpoint = bad.into();
            assert!(d.validate().is_err(), "{bad}");
        }
        d.endpoint = "https://u:p@push.example/x".into();
        assert_eq!(d.endpoint_host(), "push.example");
        d.auth = "AAAA".into();
        assert!(d.validate().is_err());
    }
}
