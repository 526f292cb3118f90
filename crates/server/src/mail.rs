//! Enrollment email over SMTP.
//!
//! When an administrator enrolls a user for two-step verification, the user is
//! told by email how they will be verified: by a phone call, by a text message
//! or with an authenticator app. In PIN mode the email also tells the initial
//! PIN, which the user must change at the first sign-in.
//!
//! The text comes from built-in templates (methods `call`, `sms`, `app`,
//! and `portal` for users who must still register a phone or an app in the
//! portal, in English, Dutch, German and French) or from override files
//! `<dir>/<method>.<language>.txt`. A template's first line is
//! `Subject: ...`; the rest is the plain-text body. Placeholders are
//! `{display_name}`, `{login}`, `{phone_tail}`, `{portal_url}`, `{pin_block}`
//! and `{app_block}` (the last two only in the body); `{{` and `}}` stand for
//! literal braces. Substituted values are never parsed again.
//!
//! Messages go out through lettre's SMTP client with rustls (ring provider);
//! the relay is trusted through the Mozilla roots (webpki-roots) plus an
//! optional extra CA. Neither the PIN nor the SMTP password is ever logged.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// How the connection to the SMTP relay is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP. Only accepted for a loopback relay (a local MTA or a test
    /// sink); [`Mailer::new`] refuses it for any other host.
    None,
    /// Plain connection upgraded with STARTTLS, which is required: a relay
    /// that does not offer it is an error (usually port 587).
    StartTls,
    /// TLS from the first byte ("submissions", usually port 465).
    Tls,
}

/// The SMTP password. `Debug` prints `***`; zeroized on drop; compared in
/// constant time.
#[derive(Clone)]
pub struct MailSecret(Zeroizing<String>);

impl MailSecret {
    /// Wraps a password.
    pub fn new(secret: String) -> MailSecret {
        MailSecret(Zeroizing::new(secret))
    }

    /// The password, for the SMTP client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MailSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for MailSecret {
    fn eq(&self, other: &MailSecret) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for MailSecret {}

/// Settings of the enrollment mailer.
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// The relay's host name or IP address (also the name its certificate
    /// must carry).
    pub host: String,
    /// The relay's port (25, 465, 587, ...).
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// SMTP AUTH user name; set together with `password`.
    pub username: Option<String>,
    /// SMTP AUTH password; set together with `username`.
    pub password: Option<MailSecret>,
    /// An extra CA (PEM, one or more certificates) trusted for the relay, on
    /// top of the built-in Mozilla roots.
    pub ca_pem: Option<String>,
    /// The sender, e.g. `radmfa <mfa@example.org>`.
    pub from: String,
    /// The user portal, linked in every mail (`https://...`).
    pub portal_url: String,
    /// A directory of override templates `<method>.<language>.txt`.
    pub templates_dir: Option<PathBuf>,
    /// The language used when a user's language has no template.
    pub default_language: String,
    /// Bound on one whole delivery (connect, TLS, SMTP dialogue), and on each
    /// SMTP command.
    pub timeout: Duration,
}

/// The verification method an enrollment mail describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MailMethod {
    /// A phone call to the user's phone.
    Call,
    /// A text message with a one-time code.
    Sms,
    /// An authenticator app (TOTP, HOTP or push).
    App,
    /// Nothing to verify with yet (no phone number for a phone method, or
    /// no method): the user completes the enrollment in the portal.
    Portal,
}

impl MailMethod {
    /// Every method.
    pub const ALL: [MailMethod; 4] = [
        MailMethod::Call,
        MailMethod::Sms,
        MailMethod::App,
        MailMethod::Portal,
    ];

    /// The name used in template file names: `call`, `sms`, `app` or
    /// `portal`.
    pub fn as_str(self) -> &'static str {
        match self {
            MailMethod::Call => "call",
            MailMethod::Sms => "sms",
            MailMethod::App => "app",
            MailMethod::Portal => "portal",
        }
    }
}

impl MailMethod {
    /// The mail a user gets: their method's, or `Portal` when there is
    /// nothing to verify with yet (a phone method without a phone number,
    /// or no method).
    pub fn for_user(u: &radmfa_store::User) -> MailMethod {
        use radmfa_store::Method;
        match u.method {
            Method::Call if !u.phone.is_empty() => MailMethod::Call,
            Method::Sms | Method::SmsTwoWay if !u.phone.is_empty() => MailMethod::Sms,
            Method::Totp | Method::Hotp | Method::Push => MailMethod::App,
            Method::Call | Method::Sms | Method::SmsTwoWay | Method::None => MailMethod::Portal,
        }
    }
}

impl FromStr for MailMethod {
    type Err = MailError;

    fn from_str(s: &str) -> Result<MailMethod, MailError> {
        MailMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| MailError::Config(format!("unknown mail method {s:?}")))
    }
}

/// What one enrollment mail says. `Debug` hides the PIN and the enrollment
/// URI (it holds the OTP secret).
#[derive(Clone, Copy)]
pub struct Enrollment<'a> {
    /// The recipient's address.
    pub to: &'a str,
    /// The user's name, used in the greeting and the `To` header.
    pub display_name: &'a str,
    /// The login the user signs in with.
    pub login: &'a str,
    /// How the user will be verified.
    pub method: MailMethod,
    /// The user's language (`nl`, `de-CH`, `fr_BE`, ...); unknown languages
    /// fall back to the configured default, then to English.
    pub language: &'a str,
    /// The phone number; only its last 4 digits are shown. Required for
    /// `Call` and `Sms`.
    pub phone: &'a str,
    /// The initial PIN (PIN mode); the mail tells it and asks the user to
    /// change it at the first sign-in.
    pub pin: Option<&'a str>,
    /// For `App`: the `otpauth://` enrollment URI, offered for phones that
    /// cannot scan the QR code in the portal.
    pub otpauth_uri: Option<&'a str>,
}

impl<'a> Enrollment<'a> {
    /// The enrollment mail of a stored user ([`MailMethod::for_user`]),
    /// telling `pin` when one was generated for them.
    pub fn of_user(u: &'a radmfa_store::User, pin: Option<&'a str>) -> Enrollment<'a> {
        Enrollment {
            to: &u.email,
            // "Hello ," would greet nobody: the login then.
            display_name: if u.display_name.is_empty() {
                &u.name
            } else {
                &u.display_name
            },
            login: &u.name,
            method: MailMethod::for_user(u),
            language: &u.language,
            phone: &u.phone,
            pin,
            otpauth_uri: None,
        }
    }
}

impl fmt::Debug for Enrollment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrollment")
            .field("to", &self.to)
            .field("display_name", &self.display_name)
            .field("login", &self.login)
            .field("method", &self.method)
            .field("language", &self.language)
            .field("phone_tail", &phone_tail(self.phone))
            .field("pin", &self.pin.map(|_| "***"))
            .field("otpauth_uri", &self.otpauth_uri.map(|_| "***"))
            .finish()
    }
}

/// Why a mail could not be configured, rendered or sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The mail settings are invalid.
    #[error("mail configuration: {0}")]
    Config(String),
    /// A template is invalid, or an enrollment cannot be rendered.
    #[error("mail template: {0}")]
    Template(String),
    /// The message could not be built or delivered.
    #[error("mail delivery: {0}")]
    Send(String),
}

/// Sends enrollment mails. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
    security: SmtpSecurity,
    from: Mailbox,
    portal_url: String,
    default_language: String,
    timeout: Duration,
    /// Override templates by (method, language).
    overrides: HashMap<(MailMethod, String), Template>,
    /// Built-in templates by (method, language).
    builtins: HashMap<(MailMethod, String), Template>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Mailer")
            .field("host", &i.host)
            .field("port", &i.port)
            .field("security", &i.security)
            .field("from", &i.from.to_string())
            .field("portal_url", &i.portal_url)
            .field("default_language", &i.default_language)
            .field("overrides", &i.overrides.len())
            .finish_non_exhaustive()
    }
}

/// The largest override template file read.
const MAX_TEMPLATE_BYTES: u64 = 64 * 1024;

/// The built-in templates: (method, language, text).
const BUILTIN: [(MailMethod, &str, &str); 16] = [
    (
        MailMethod::Call,
        "en",
        include_str!("mail/templates/call.en.txt"),
    ),
    (
        MailMethod::Sms,
        "en",
        include_str!("mail/templates/sms.en.txt"),
    ),
    (
        MailMethod::App,
        "en",
        include_str!("mail/templates/app.en.txt"),
    ),
    (
        MailMethod::Call,
        "nl",
        include_str!("mail/templates/call.nl.txt"),
    ),
    (
        MailMethod::Sms,
        "nl",
        include_str!("mail/templates/sms.nl.txt"),
    ),
    (
        MailMethod::App,
        "nl",
        include_str!("mail/templates/app.nl.txt"),
    ),
    (
        MailMethod::Call,
        "de",
        include_str!("mail/templates/call.de.txt"),
    ),
    (
        MailMethod::Sms,
        "de",
        include_str!("mail/templates/sms.de.txt"),
    ),
    (
        MailMethod::App,
        "de",
        include_str!("mail/templates/app.de.txt"),
    ),
    (
        MailMethod::Call,
        "fr",
        include_str!("mail/templates/call.fr.txt"),
    ),
    (
        MailMethod::Sms,
        "fr",
        include_str!("mail/templates/sms.fr.txt"),
    ),
    (
        MailMethod::App,
        "fr",
        include_str!("mail/templates/app.fr.txt"),
    ),
    (
        MailMethod::Portal,
        "en",
        include_str!("mail/templates/portal.en.txt"),
    ),
    (
        MailMethod::Portal,
        "nl",
        include_str!("mail/templates/portal.nl.txt"),
    ),
    (
        MailMethod::Portal,
        "de",
        include_str!("mail/templates/portal.de.txt"),
    ),
    (
        MailMethod::Portal,
        "fr",
        include_str!("mail/templates/portal.fr.txt"),
    ),
];

/// The language-specific paragraphs substituted for `{pin_block}` and
/// `{app_block}`: text before and after the PIN, and before the URI.
struct Blocks {
    pin_before: &'static str,
    pin_after: &'static str,
    app_before: &'static str,
}

fn blocks(language: &str) -> Blocks {
    match language {
        "nl" => Blocks {
            pin_before: "Uw initiële pincode is: ",
            pin_after: "\nU moet deze pincode wijzigen wanneer u zich de eerste keer aanmeldt. \
                        Houd de pincode geheim en verwijder dit bericht zodra u de pincode hebt gewijzigd.",
            app_before: "Kunt u de QR-code niet scannen? Open dan deze koppeling op uw telefoon \
                         om het account aan de app toe te voegen:\n",
        },
        "de" => Blocks {
            pin_before: "Ihre anfängliche PIN lautet: ",
            pin_after: "\nSie müssen diese PIN bei Ihrer ersten Anmeldung ändern. \
                        Halten Sie die PIN geheim und löschen Sie diese Nachricht, sobald Sie die PIN geändert haben.",
            app_before: "Falls Sie den QR-Code nicht scannen können, öffnen Sie diesen Link auf \
                         Ihrem Telefon, um das Konto zur App hinzuzufügen:\n",
        },
        "fr" => Blocks {
            pin_before: "Votre code PIN initial est : ",
            pin_after: "\nVous devrez le modifier lors de votre première connexion. \
                        Gardez ce code PIN secret et supprimez ce message une fois que vous l'aurez modifié.",
            app_before: "Si vous ne pouvez pas scanner le code QR, ouvrez ce lien sur votre \
                         téléphone pour ajouter le compte à l'application :\n",
        },
        _ => Blocks {
            pin_before: "Your initial PIN is: ",
            pin_after: "\nYou must change this PIN the first time you sign in. \
                        Keep it secret, and delete this message once you have changed it.",
            app_before: "If you cannot scan the QR code, open this link on your phone to add \
                         the account to the app:\n",
        },
    }
}

/// A placeholder of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    DisplayName,
    Login,
    PhoneTail,
    PortalUrl,
    PinBlock,
    AppBlock,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "display_name" => Var::DisplayName,
            "login" => Var::Login,
            "phone_tail" => Var::PhoneTail,
            "portal_url" => Var::PortalUrl,
            "pin_block" => Var::PinBlock,
            "app_block" => Var::AppBlock,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Clone, Debug)]
struct Template {
    subject: Vec<Seg>,
    body: Vec<Seg>,
}

impl Template {
    /// Parses a template; `source` names it in errors (`file:line: ...`).
    fn parse(source: &str, text: &str) -> Result<Template, MailError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
        let first = first.strip_suffix('\r').unwrap_or(first);
        let subject = first
            .strip_prefix("Subject:")
            .map(str::trim)
            .ok_or_else(|| {
                MailError::Template(format!(
                    "{source}:1: the first line must be \"Subject: ...\""
                ))
            })?;
        if subject.is_empty() {
            return Err(MailError::Template(format!("{source}:1: empty subject")));
        }
        if subject.chars().any(char::is_control) {
            return Err(MailError::Template(format!(
                "{source}:1: control character in the subject"
            )));
        }
        let subject = parse_segments(source, 1, subject)?;
        if let Some(var) = subject.iter().find_map(|s| match s {
            Seg::Var(v @ (Var::PinBlock | Var::AppBlock)) => Some(*v),
            _ => None,
        }) {
            let name = if var == Var::PinBlock {
                "pin_block"
            } else {
                "app_block"
            };
            return Err(MailError::Template(format!(
                "{source}:1: {{{name}}} is not allowed in the subject"
            )));
        }
        let mut body = Vec::new();
        for (i, line) in rest.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if i > 0 {
                body.push(Seg::Text("\n".to_owned()));
            }
            body.extend(parse_segments(source, i + 2, line)?);
        }
        if !body.iter().any(|s| match s {
            Seg::Text(t) => !t.trim().is_empty(),
            Seg::Var(_) => true,
        }) {
            return Err(MailError::Template(format!("{source}: empty body")));
        }
        Ok(Template { subject, body })
    }
}

/// Splits one template line into text and placeholders.
fn parse_segments(source: &str, line_no: usize, line: &str) -> Result<Vec<Seg>, MailError> {
    let err = |what: String| MailError::Template(format!("{source}:{line_no}: {what}"));
    let mut segs = Vec::new();
    let mut text = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(err("unclosed \"{\" (write \"{{\" for a brace)".to_owned()));
                }
                let var = Var::parse(&name)
                    .ok_or_else(|| err(format!("unknown placeholder {{{name}}}")))?;
                if !text.is_empty() {
                    segs.push(Seg::Text(std::mem::take(&mut text)));
                }
                segs.push(Seg::Var(var));
            }
            '}' => return Err(err("stray \"}\" (write \"}}\" for a brace)".to_owned())),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        segs.push(Seg::Text(text));
    }
    Ok(segs)
}

/// Normalizes a language tag: lower case, `_` as `-`; `None` when it is not
/// a plausible tag (letters, digits, dashes; starting with 2-3 letters).
fn normalize_language(tag: &str) -> Option<String> {
    let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
    let primary = tag.split('-').next().unwrap_or("");
    let ok = (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && tag.len() <= 35
        && tag
            .split('-')
            .all(|p| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    ok.then_some(tag)
}

/// The last 4 digits of a phone number (fewer if it has fewer).
fn phone_tail(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let start = digits.len().saturating_sub(4);
    digits.get(start..).unwrap_or(&[]).iter().collect()
}

/// Replaces control characters (CR, LF, TAB, ...) with spaces and trims: a
/// value from the directory must not shape the message.
fn clean(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Collapses runs of blank lines (left by empty blocks), strips trailing
/// spaces and ends the body with one newline.
fn tidy(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1);
    let mut blank_run = 0usize;
    for line in body.trim().split('\n') {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `Auto-Submitted: auto-generated` header (RFC 3834): tells mail
/// systems not to answer with vacation replies.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(s: &str) -> Result<AutoSubmitted, Box<dyn std::error::Error + Send + Sync>> {
        if s.trim().eq_ignore_ascii_case("auto-generated") {
            Ok(AutoSubmitted)
        } else {
            Err("not auto-generated".into())
        }
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// Loads the override templates of a directory.
fn load_overrides(dir: &Path) -> Result<HashMap<(MailMethod, String), Template>, MailError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| MailError::Config(format!("templates_dir {}: {e}", dir.display())))?;
    let mut out = HashMap::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| MailError::Config(format!("templates_dir {}: {e}", dir.display())))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".txt") {
            continue;
        }
        let shown = path.display().to_string();
        let bad_name = || {
            MailError::Config(format!(
                "{shown}: a template is named <call|sms|app|portal>.<language>.txt"
            ))
        };
        let stem = name.strip_suffix(".txt").unwrap_or(name);
        let (method, language) = stem.split_once('.').ok_or_else(bad_name)?;
        let method = MailMethod::from_str(method).map_err(|_| bad_name())?;
        let language = normalize_language(language)
            .filter(|l| l == language)
            .ok_or_else(bad_name)?;
        let meta =
            std::fs::metadata(&path).map_err(|e| MailError::Config(format!("{shown}: {e}")))?;
        if meta.len() > MAX_TEMPLATE_BYTES {
            return Err(MailError::Template(format!(
                "{shown}: larger than {MAX_TEMPLATE_BYTES} bytes"
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| MailError::Config(format!("{shown}: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| MailError::Template(format!("{shown}: not UTF-8")))?;
        let template = Template::parse(&shown, &text)?;
        out.insert((method, language), template);
    }
    Ok(out)
}

fn build_transport(cfg: &MailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let tls = match cfg.security {
        SmtpSecurity::None => Tls::None,
        SmtpSecurity::StartTls | SmtpSecurity::Tls => {
            let mut params = TlsParameters::builder(cfg.host.clone());
            if let Some(pem) = &cfg.ca_pem {
                let count = rustls_pemfile::certs(&mut pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| MailError::Config(format!("ca_pem: {e}")))?
                    .len();
                if count == 0 {
                    return Err(MailError::Config(
                        "ca_pem: no PEM certificate found".to_owned(),
                    ));
                }
                let cert = Certificate::from_pem(pem.as_bytes())
                    .map_err(|e| MailError::Config(format!("ca_pem: {e}")))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| MailError::Config(format!("TLS settings: {e}")))?;
            if cfg.security == SmtpSecurity::StartTls {
                Tls::Required(params)
            } else {
                Tls::Wrapper(params)
            }
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
        .port(cfg.port)
        .tls(tls)
        .timeout(Some(cfg.timeout));
    match (&cfg.username, &cfg.password) {
        (Some(user), Some(password)) => {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        (None, None) => {}
        _ => {
            return Err(MailError::Config(
                "username and password are set together".to_owned(),
            ))
        }
    }
    Ok(builder.build())
}

impl Mailer {
    /// Validates the settings, parses the built-in and override templates and
    /// prepares the SMTP client. Opens no connection.
    pub fn new(cfg: MailConfig) -> Result<Mailer, MailError> {
        let host = cfg.host.trim();
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(MailError::Config(format!(
                "invalid SMTP host {:?}",
                cfg.host
            )));
        }
        if cfg.port == 0 {
            return Err(MailError::Config("SMTP port 0".to_owned()));
        }
        if cfg.security == SmtpSecurity::None && !is_loopback_host(host) {
            return Err(MailError::Config(format!(
                "plain SMTP to {host} is refused: use StartTls or Tls (plain SMTP is \
                 only allowed to a loopback relay)"
            )));
        }
        if cfg.timeout.is_zero() {
            return Err(MailError::Config("timeout must be above zero".to_owned()));
        }
        let from = Mailbox::from_str(cfg.from.trim())
            .map_err(|e| MailError::Config(format!("from {:?}: {e}", cfg.from)))?;
        let portal_url = cfg.portal_url.trim().to_owned();
        if !(portal_url.starts_with("https://") || portal_url.starts_with("http://"))
            || portal_url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(MailError::Config(format!(
                "portal_url {:?} is not an http(s) URL",
                cfg.portal_url
            )));
        }
        let default_language = normalize_language(&cfg.default_language).ok_or_else(|| {
            MailError::Config(format!(
                "default_language {:?} is not a language tag",
                cfg.default_language
            ))
        })?;
        let mut builtins = HashMap::new();
        for (method, language, text) in BUILTIN {
            let source = format!("built-in {}.{language}.txt", method.as_str());
            builtins.insert(
                (method, language.to_owned()),
                Template::parse(&source, text)?,
            );
        }
        let overrides = match &cfg.templates_dir {
            Some(dir) => load_overrides(dir)?,
            None => HashMap::new(),
        };
        let transport = build_transport(&cfg)?;
        Ok(Mailer {
            inner: Arc::new(Inner {
                transport,
                host: host.to_owned(),
                port: cfg.port,
                security: cfg.security,
                from,
                portal_url,
                default_language,
                timeout: cfg.timeout,
                overrides,
                builtins,
            }),
        })
    }

    /// The template for a method and a user's language, with the language
    /// whose PIN/app paragraphs go with it.
    fn template(&self, method: MailMethod, language: &str) -> Option<(&Template, String)> {
        let i = &self.inner;
        let mut candidates = Vec::with_capacity(5);
        for tag in [
            normalize_language(language),
            Some(i.default_language.clone()),
        ]
        .into_iter()
        .flatten()
        {
            if let Some((primary, _)) = tag.split_once('-') {
                let primary = primary.to_owned();
                candidates.push(tag);
                candidates.push(primary);
            } else {
                candidates.push(tag);
            }
        }
        candidates.push("en".to_owned());
        candidates.into_iter().find_map(|tag| {
            let found = i
                .overrides
                .get(&(method, tag.clone()))
                .or_else(|| i.builtins.get(&(method, tag.clone())))?;
            let primary = tag.split('-').next().unwrap_or("en").to_owned();
            Some((found, primary))
        })
    }

    /// Renders the subject and the plain-text body of an enrollment mail.
    pub fn render(&self, e: &Enrollment) -> Result<(String, String), MailError> {
        let tail = phone_tail(e.phone);
        if matches!(e.method, MailMethod::Call | MailMethod::Sms) && tail.is_empty() {
            return Err(MailError::Template(format!(
                "method {} needs the user's phone number",
                e.method.as_str()
            )));
        }
        let (template, language) = self.template(e.method, e.language).ok_or_else(|| {
            MailError::Template(format!("no template for method {}", e.method.as_str()))
        })?;
        let b = blocks(&language);
        let pin_block = match e.pin.map(clean) {
            Some(pin) if !pin.is_empty() => {
                Zeroizing::new(format!("{}{pin}{}", b.pin_before, b.pin_after))
            }
            Some(_) => return Err(MailError::Template("empty PIN".to_owned())),
            None => Zeroizing::new(String::new()),
        };
        let app_block = match (e.method, e.otpauth_uri) {
            (MailMethod::App, Some(uri)) => {
                let uri = uri.trim();
                if !uri.starts_with("otpauth://")
                    || uri.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(MailError::Template(
                        "otpauth_uri is not an otpauth:// URI".to_owned(),
                    ));
                }
                Zeroizing::new(format!("{}{uri}", b.app_before))
            }
            _ => Zeroizing::new(String::new()),
        };
        let display_name = clean(e.display_name);
        let login = clean(e.login);
        let value = |var: Var| -> &str {
            match var {
                Var::DisplayName => &display_name,
                Var::Login => &login,
                Var::PhoneTail => &tail,
                Var::PortalUrl => &self.inner.portal_url,
                Var::PinBlock => &pin_block,
                Var::AppBlock => &app_block,
            }
        };
        let fill = |segs: &[Seg]| -> String {
            let mut out = String::new();
            for seg in segs {
                match seg {
                    Seg::Text(t) => out.push_str(t),
                    Seg::Var(v) => out.push_str(value(*v)),
                }
            }
            out
        };
        let subject = clean(&fill(&template.subject));
        let body = Zeroizing::new(fill(&template.body));
        Ok((subject, tidy(&body)))
    }

    /// Builds the message. lettre's builder encodes the headers; the display
    /// name is cleaned of control characters first (lettre 0.11 panics on a
    /// CR/LF in a mailbox name rather than encoding it).
    fn message(&self, e: &Enrollment) -> Result<Message, MailError> {
        let address = Address::from_str(e.to.trim())
            .map_err(|err| MailError::Send(format!("recipient {:?}: {err}", e.to)))?;
        let name = clean(e.display_name);
        let to = Mailbox::new((!name.is_empty()).then_some(name), address);
        let (subject, body) = self.render(e)?;
        Message::builder()
            .from(self.inner.from.clone())
            .to(to)
            .subject(subject)
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .header(AutoSubmitted)
            .body(body)
            .map_err(|err| MailError::Send(format!("building the message: {err}")))
    }

    /// Renders and sends an enrollment mail through the relay.
    pub async fn send_enrollment(&self, e: &Enrollment<'_>) -> Result<(), MailError> {
        let message = self.message(e)?;
        let i = &self.inner;
        let outcome = tokio::time::timeout(i.timeout, i.transport.send(message)).await;
        let result = match outcome {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(MailError::Send(format!("{}:{}: {err}", i.host, i.port))),
            Err(_) => Err(MailError::Send(format!(
                "{}:{}: timed out after {:?}",
                i.host, i.port, i.timeout
            ))),
        };
        match &result {
            Ok(()) => tracing::info!(
                login = e.login,
                method = e.method.as_str(),
                pin = e.pin.is_some(),
                "enrollment mail sent"
            ),
            Err(err) => tracing::warn!(
                login = e.login,
                method = e.method.as_str(),
                error = %err,
                "enrollment mail not sent"
            ),
        }
        result
    }
}

#[cfg(test)]
mod tests;
