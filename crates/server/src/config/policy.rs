//! `[[policy]]`: how a client's users sign in (first factor, how the code
//! arrives, users without a token, gateway failure, group rules). A policy
//! named "default" exists even when the file defines none.

use std::collections::HashMap;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;
use crate::i18n::Lang;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicySection {
    name: Spanned<String>,
    #[serde(default = "default_first_factor")]
    first_factor: FirstFactor,
    #[serde(default = "default_otp_mode")]
    otp_mode: OtpMode,
    #[serde(default = "default_unenrolled")]
    unenrolled: Unenrolled,
    #[serde(default)]
    challenge_prompt: Option<String>,
    #[serde(default)]
    language: Option<Spanned<String>>,
    #[serde(default = "default_fail_mode")]
    fail_mode: FailMode,
    #[serde(default)]
    upstream: Option<Spanned<String>>,
    #[serde(default)]
    mfa_bypass_groups: Vec<String>,
    #[serde(default)]
    mfa_groups: Vec<String>,
    #[serde(default)]
    number_matching: bool,
    from_number: Option<Spanned<String>>,
    accounting: Option<Spanned<String>>,
}

fn default_fail_mode() -> FailMode {
    FailMode::Closed
}

fn default_first_factor() -> FirstFactor {
    FirstFactor::Local
}
fn default_otp_mode() -> OtpMode {
    OtpMode::Auto
}
fn default_unenrolled() -> Unenrolled {
    Unenrolled::Reject
}

/// How the first factor is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirstFactor {
    /// argon2id password hash in the store.
    Local,
    /// No first factor: the User-Password carries only the one-time code.
    None,
    /// Proxy to the policy's upstream RADIUS server (NPS, FreeRADIUS).
    Radius,
    /// Bind to the directory ([directory]) as the user.
    Ldap,
}

/// How the one-time code reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtpMode {
    /// Password immediately followed by the code in one User-Password.
    Inline,
    /// Password first, then the code in answer to an Access-Challenge.
    Challenge,
    /// Inline when the User-Password carries a code, Access-Challenge otherwise.
    Auto,
}

/// What happens to a user who must use an OTP but has no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unenrolled {
    /// Reject, telling the user to enroll.
    Reject,
    /// Accept on the first factor alone.
    Accept,
}

/// What happens when the cloud gateway cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Reject with a clear message (default).
    Closed,
    /// Users with an authenticator app get a TOTP challenge instead.
    TotpOnly,
    /// Accept on the first factor alone (only when configured).
    Open,
}

/// What happens to the Accounting-Requests of a policy's clients
/// (`accounting = "store" | "forward:NAME" | "both:NAME" | "discard"`).
/// The Accounting-Response goes out only once this is done (RFC 2866 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounting {
    /// Written to the audit journal as an accounting record (default).
    Store,
    /// Sent to the `[[upstream]]` group NAME; not answered when it fails.
    Forward(String),
    /// Both: written, then sent to NAME.
    Both(String),
    /// Answered and not kept.
    Discard,
}

impl Accounting {
    /// Whether records are written to the audit journal.
    pub fn stores(&self) -> bool {
        matches!(self, Accounting::Store | Accounting::Both(_))
    }

    /// The upstream group records are forwarded to.
    pub fn forward_to(&self) -> Option<&str> {
        match self {
            Accounting::Forward(n) | Accounting::Both(n) => Some(n),
            Accounting::Store | Accounting::Discard => None,
        }
    }
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its name, referenced by clients.
    pub name: String,
    /// First factor.
    pub first_factor: FirstFactor,
    /// Inline, challenge or auto.
    pub otp_mode: OtpMode,
    /// Users without a token.
    pub unenrolled: Unenrolled,
    /// Reply-Message of the TOTP/HOTP Access-Challenge in every language;
    /// `None`: the translated prompt (`[radius] prompt_totp`).
    pub challenge_prompt: Option<String>,
    /// The language of this policy's users who have none of their own.
    pub language: Option<Lang>,
    /// Gateway unreachable.
    pub fail_mode: FailMode,
    /// Upstream group for `first_factor = "radius"`.
    pub upstream: Option<String>,
    /// Members of these groups skip the second factor.
    pub mfa_bypass_groups: Vec<String>,
    /// When not empty, only members of these groups need a second factor.
    pub mfa_groups: Vec<String>,
    /// Push approvals with number matching where the NAS can show an
    /// Access-Challenge: the approval page shows a two-digit number that the
    /// user types at the prompt (and approves on the page).
    pub number_matching: bool,
    /// Caller ID / SMS sender (E.164) of this policy's calls and two-way
    /// SMS through Twilio; `None`: `[gateway] from_number`.
    pub from_number: Option<String>,
    /// What happens to Accounting-Requests.
    pub accounting: Accounting,
}

impl Policy {
    /// Whether a user in `groups` needs a second factor under this policy.
    pub fn needs_mfa(&self, groups: &[String]) -> bool {
        let member = |list: &[String]| {
            list.iter()
                .any(|g| groups.iter().any(|u| u.eq_ignore_ascii_case(g)))
        };
        if member(&self.mfa_bypass_groups) {
            return false;
        }
        self.mfa_groups.is_empty() || member(&self.mfa_groups)
    }
}

impl Section for Vec<PolicySection> {
    type Settings = HashMap<String, Policy>;

    /// Checks each policy against the upstreams and the directory, adds the
    /// default policy unless defined, and records the names in `cx`.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Self::Settings, ConfigError> {
        let mut policies = HashMap::new();
        for p in self {
            let name = p.name.get_ref().clone();
            if name.is_empty() {
                return Err(cx.at(p.name.span(), "policy name must not be empty".to_string()));
            }
            let upstream = upstream(&p, &name, cx)?;
            let from_number = match &p.from_number {
                Some(n) if is_e164(n.get_ref()) => Some(n.get_ref().clone()),
                Some(n) => {
                    return Err(cx.at(
                        n.span(),
                        format!(
                            "policy {name:?}: from_number {:?} is not E.164 (+ and 8 to 15 digits)",
                            n.get_ref()
                        ),
                    ))
                }
                None => None,
            };
            let accounting = accounting(p.accounting.as_ref(), &name, cx)?;
            let language = match &p.language {
                Some(l) => Some(Lang::parse(l.get_ref()).ok_or_else(|| {
                    cx.at(
                        l.span(),
                        format!(
                            "policy {name:?}: language {:?} is not one radmfa speaks (en, nl, de, fr, optionally with a region: nl-BE)",
                            l.get_ref()
                        ),
                    )
                })?),
                None => None,
            };
            let policy = Policy {
                name: name.clone(),
                first_factor: p.first_factor,
                otp_mode: p.otp_mode,
                unenrolled: p.unenrolled,
                challenge_prompt: p.challenge_prompt,
                language,
                fail_mode: p.fail_mode,
                upstream,
                mfa_bypass_groups: p.mfa_bypass_groups,
                mfa_groups: p.mfa_groups,
                number_matching: p.number_matching,
                from_number,
                accounting,
            };
            if policies.insert(name.clone(), policy).is_some() {
                return Err(cx.at(p.name.span(), format!("policy {name:?} is defined twice")));
            }
        }
        policies
            .entry("default".to_string())
            .or_insert_with(|| Policy {
                name: "default".to_string(),
                first_factor: default_first_factor(),
                otp_mode: default_otp_mode(),
                unenrolled: default_unenrolled(),
                challenge_prompt: None,
                language: None,
                fail_mode: default_fail_mode(),
                upstream: None,
                mfa_bypass_groups: Vec::new(),
                mfa_groups: Vec::new(),
                number_matching: false,
                from_number: None,
                accounting: Accounting::Store,
            });
        cx.policies = policies.keys().cloned().collect();
        Ok(policies)
    }
}

/// `+` then 8 to 15 digits.
fn is_e164(n: &str) -> bool {
    n.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The upstream group of policy `name`: required with the `radius` first
/// factor (and defined), refused with any other; `ldap` needs a directory.
fn upstream(p: &PolicySection, name: &str, cx: &Ctx<'_>) -> Result<Option<String>, ConfigError> {
    match (&p.first_factor, &p.upstream) {
        (FirstFactor::Radius, Some(u)) if cx.upstreams.contains(u.get_ref()) => {
            Ok(Some(u.get_ref().clone()))
        }
        (FirstFactor::Radius, Some(u)) => Err(cx.at(
            u.span(),
            format!("policy {name:?}: upstream {:?} is not defined (add an [[upstream]] with that name)", u.get_ref()),
        )),
        (FirstFactor::Radius, None) => Err(cx.at(
            p.name.span(),
            format!("policy {name:?}: first_factor = \"radius\" needs upstream = \"NAME\""),
        )),
        (FirstFactor::Ldap, None) if !cx.directory => Err(cx.at(
            p.name.span(),
            format!("policy {name:?}: first_factor = \"ldap\" needs a [directory] section"),
        )),
        (_, Some(u)) => Err(cx.at(
            u.span(),
            format!("policy {name:?}: upstream is only used with first_factor = \"radius\""),
        )),
        (_, None) => Ok(None),
    }
}

/// Policy `name`'s `accounting` (default `store`); a forward names a
/// defined `[[upstream]]`.
fn accounting(
    a: Option<&Spanned<String>>,
    name: &str,
    cx: &Ctx<'_>,
) -> Result<Accounting, ConfigError> {
    let Some(a) = a else {
        return Ok(Accounting::Store);
    };
    let text = a.get_ref().as_str();
    let upstream = |u: &str| {
        if cx.upstreams.contains(u) {
            Ok(u.to_string())
        } else {
            Err(cx.at(
                a.span(),
                format!("policy {name:?}: accounting forwards to upstream {u:?}, which is not defined (add an [[upstream]] with that name, its servers at the accounting port, e.g. 1813)"),
            ))
        }
    };
    match text.split_once(':') {
        None if text == "store" => Ok(Accounting::Store),
        None if text == "discard" => Ok(Accounting::Discard),
        Some(("forward", u)) => Ok(Accounting::Forward(upstream(u)?)),
        Some(("both", u)) => Ok(Accounting::Both(upstream(u)?)),
        _ => Err(cx.at(
            a.span(),
            format!("policy {name:?}: accounting = {text:?} is not one of \"store\", \"forward:UPSTREAM\", \"both:UPSTREAM\", \"discard\""),
        )),
    }
}
