//! What the out-of-band methods say and read in words: the callback URLs a
//! verification gets, the two-way SMS text in the user's language, and how
//! a reply is read (yes or no, and the reference). A leaf, so that the
//! pipeline (which sends) and the callback handlers (which read) share it
//! without depending on each other; the texts themselves are configured in
//! `[gateway.two_way_sms_text]` over the built-in ones
//! (`config::gateway::TWO_WAY_SMS_TEXTS`).

use crate::config::OobSettings;
use crate::verifications::View;

/// Path prefix of every provider callback on the portal listener.
pub const CALLBACK_PREFIX: &str = "/callback/twilio";

/// The `<Gather action>` and `StatusCallback` URLs of verification `id`
/// under the public base `base` (`[gateway] callback_url`).
pub fn call_callbacks(base: &str, id: &str) -> radmfa_gateway::Callbacks {
    radmfa_gateway::Callbacks {
        gather: format!("{base}{CALLBACK_PREFIX}/voice/{id}"),
        status: format!("{base}{CALLBACK_PREFIX}/status/{id}"),
    }
}

/// The inbound-message webhook URL to set on the Twilio number.
pub fn sms_webhook(base: &str) -> String {
    format!("{base}{CALLBACK_PREFIX}/sms")
}

/// The text of a two-way SMS for `view`, in `language` (the user's
/// `language` field: "nl", "nl-BE"...; English when there is no text for it).
pub fn two_way_sms_text(oob: &OobSettings, language: &str, view: &View) -> String {
    let lang = language.trim().to_ascii_lowercase();
    let primary = lang.split(['-', '_']).next().unwrap_or("");
    let text = oob
        .two_way_sms_text
        .get(&lang)
        .or_else(|| oob.two_way_sms_text.get(primary))
        .or_else(|| oob.two_way_sms_text.get("en"))
        .map_or(
            "Reply YES {reference} to approve or NO {reference} to deny.",
            |t| t.as_str(),
        );
    let time =
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(view.context.at_unix).unwrap_or(0))
            .map(|t| format!("{:02}:{:02} UTC", t.hour(), t.minute()))
            .unwrap_or_default();
    text.replace("{client}", &view.context.client)
        .replace("{time}", &time)
        .replace("{reference}", view.reference.as_deref().unwrap_or(""))
}

/// Words a reply approves with (any language configured; compared without case).
const YES: &[&str] = &["yes", "y", "ok", "approve", "ja", "j", "oui", "si", "sí"];
/// Words a reply denies with.
const NO: &[&str] = &["no", "n", "deny", "nee", "nein", "non"];

/// A two-way SMS reply, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Yes (true) or no (false).
    pub approve: bool,
    /// The reference typed, if any.
    pub reference: Option<String>,
}

/// Reads a reply body: a yes or no word and optionally a reference (digits),
/// in either order ("YES 4821", "4821 yes", "y"). `None`: neither a yes nor
/// a no, or both, or more than one reference.
pub fn read_reply(body: &str) -> Option<Reply> {
    let mut approve = None;
    let mut reference = None;
    for word in body
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | ':' | ';'))
        .filter(|w| !w.is_empty())
    {
        let lower = word.to_lowercase();
        let said = if YES.contains(&lower.as_str()) {
            Some(true)
        } else if NO.contains(&lower.as_str()) {
            Some(false)
        } else if word.bytes().all(|b| b.is_ascii_digit()) && reference.is_none() {
            reference = Some(word.to_string());
            continue;
        } else {
            return None;
        };
        if approve.is_some_and(|a| Some(a) != said) {
            return None;
        }
        approve = said;
    }
    Some(Reply {
        approve: approve?,
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let r = |approve, reference: Option<&str>| {
            Some(Reply {
                approve,
                reference: reference.map(str::to_owned),
            })
        };
        assert_eq!(read_reply("YES 4821"), r(true, Some("4821")));
        assert_eq!(read_reply(" 4821  no."), r(false, Some("4821")));
        assert_eq!(read_reply("y"), r(true, None));
        assert_eq!(read_reply("Nee"), r(false, None));
        assert_eq!(read_reply("yes no"), None);
        assert_eq!(read_reply("maybe"), None);
        assert_eq!(read_reply("4821"), None);
        assert_eq!(read_reply("yes 12 34"), None);
        assert_eq!(read_reply(""), None);
    }

    #[test]
    fn texts_fall_back_to_english() {
        let mut oob = OobSettings::default();
        oob.two_way_sms_text
            .insert("en".into(), "E {reference} {client} {time}".into());
        oob.two_way_sms_text
            .insert("nl".into(), "N {reference}".into());
        let view = View {
            id: "n1-x".into(),
            user: "u".into(),
            mode: crate::verifications::OobMode::TwoWaySms,
            context: crate::verifications::Context {
                client: "vpn".into(),
                at_unix: 3600 + 5 * 60,
                ..Default::default()
            },
            phone: None,
            reference: Some("1231".into()),
            pin_mode: false,
            created: std::time::Instant::now(),
            expires: std::time::Instant::now(),
            decided: false,
        };
        assert_eq!(two_way_sms_text(&oob, "nl-BE", &view), "N 1231");
        assert_eq!(two_way_sms_text(&oob, "fr", &view), "E 1231 vpn 01:05 UTC");
        assert_eq!(
            call_callbacks("https://m.example/p", "n1-a").status,
            "https://m.example/p/callback/twilio/status/n1-a"
        );
    }
}
