//! What the out-of-band methods say and read in words: the callback URLs a
//! verification gets, the two-way SMS text in the user's language, and how
//! a reply is read (yes or no, and the reference). A leaf, so that the
//! pipeline (which sends) and the callback handlers (which read) share it
//! without depending on each other; the texts are the catalog's `[sms]
//! two_way` (crate::i18n), or an admin's `[gateway.two_way_sms_text]`.

use crate::config::OobSettings;
use crate::i18n::{fill, Key, Lang};
use crate::verifications::View;

/// Path prefix of every provider callback on the portal listener.
pub const CALLBACK_PREFIX: &str = "/callback/twilio";

/// The `<Gather action>` and `StatusCallback` URLs of verification `id`
/// under the public base `base` (`[gateway] callback_url`). The action
/// names the language the call speaks (`?lang=nl`), so that whichever node
/// Twilio reaches answers the caller in it; Twilio signs the URL with its
/// query, so the parameter is as trusted as the rest of the callback.
pub fn call_callbacks(base: &str, id: &str, lang: Lang) -> radmfa_gateway::Callbacks {
    radmfa_gateway::Callbacks {
        gather: format!("{base}{CALLBACK_PREFIX}/voice/{id}?lang={}", lang.code()),
        status: format!("{base}{CALLBACK_PREFIX}/status/{id}"),
    }
}

/// The inbound-message webhook URL to set on the Twilio number.
pub fn sms_webhook(base: &str) -> String {
    format!("{base}{CALLBACK_PREFIX}/sms")
}

/// The text of a two-way SMS for `view` to a user whose `language` field
/// is `language` ("nl-BE", "" for none) and who reads `lang` (that, or
/// their policy's or the default language): the admin's
/// `[gateway.two_way_sms_text]` for the tag, its primary language or
/// `lang`, else the catalog's text in `lang`.
pub fn two_way_sms_text(oob: &OobSettings, language: &str, lang: Lang, view: &View) -> String {
    let tag = language.trim().to_ascii_lowercase().replace('_', "-");
    let primary = tag.split('-').next().unwrap_or("");
    let text = [tag.as_str(), primary, lang.code()]
        .into_iter()
        .find_map(|l| oob.two_way_sms_text.get(l))
        .map_or(Key::SmsTwoWay.text(lang), |t| t.as_str());
    let time =
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(view.context.at_unix).unwrap_or(0))
            .map(|t| format!("{:02}:{:02} UTC", t.hour(), t.minute()))
            .unwrap_or_default();
    fill(
        text,
        &[
            ("client", &view.context.client),
            ("time", &time),
            ("reference", view.reference.as_deref().unwrap_or("")),
        ],
    )
}

/// What a verification call says to a user who reads `lang`: who calls
/// (`server`), how to approve (`#`, or the PIN then `#`), and the fraud key
/// when there is one.
pub fn call_speech(
    lang: Lang,
    server: &str,
    pin_mode: bool,
    fraud_key: Option<char>,
) -> radmfa_gateway::Speech {
    let mut text = Key::CallIntro.fill(lang, &[("server", server)]);
    let approve = if pin_mode {
        Key::CallApprovePin
    } else {
        Key::CallApproveKey
    };
    text.push(' ');
    text.push_str(approve.text(lang));
    if let Some(k) = fraud_key {
        let fraud = if pin_mode {
            Key::CallFraudKeyPin
        } else {
            Key::CallFraudKey
        };
        text.push(' ');
        text.push_str(&fraud.fill(lang, &[("key", key_name(k).text(lang))]));
    }
    radmfa_gateway::Speech {
        language: lang.voice_tag().to_string(),
        voice: "alice".to_string(),
        text,
    }
}

/// The spoken name of a phone key (`0-9`, `*`: the fraud keys).
fn key_name(key: char) -> Key {
    match key {
        '0' => Key::Key0,
        '1' => Key::Key1,
        '2' => Key::Key2,
        '3' => Key::Key3,
        '4' => Key::Key4,
        '5' => Key::Key5,
        '6' => Key::Key6,
        '7' => Key::Key7,
        '8' => Key::Key8,
        '9' => Key::Key9,
        _ => Key::KeyStar,
    }
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
    fn calls_speak_the_users_language() {
        let s = call_speech(Lang::De, "vpn", true, Some('9'));
        assert_eq!(s.language, "de-DE");
        assert_eq!(
            s.text,
            "Dies ist eine Anmeldeüberprüfung von vpn. Geben Sie zum Genehmigen Ihre PIN ein, gefolgt von der Rautetaste. Wenn Sie nicht versucht haben, sich anzumelden, drücken Sie neun und dann die Rautetaste, um Betrug zu melden."
        );
        let s = call_speech(Lang::Fr, "vpn", false, None);
        assert_eq!(s.language, "fr-FR");
        assert_eq!(
            s.text,
            "Ceci est une vérification de connexion de vpn. Pour approuver, appuyez sur la touche dièse."
        );
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
            lang: Lang::En,
        };
        assert_eq!(two_way_sms_text(&oob, "nl-BE", Lang::Nl, &view), "N 1231");
        // No text of the admin's for French: the catalog's.
        assert_eq!(
            two_way_sms_text(&oob, "fr", Lang::Fr, &view),
            "Connexion à vpn à 01:05 UTC. Répondez OUI 1231 pour approuver ou NON 1231 pour refuser."
        );
        // No language of the user's: the policy's (here English), the admin's English text.
        assert_eq!(
            two_way_sms_text(&oob, "", Lang::En, &view),
            "E 1231 vpn 01:05 UTC"
        );
        let cb = call_callbacks("https://m.example/p", "n1-a", Lang::De);
        assert_eq!(cb.status, "https://m.example/p/callback/twilio/status/n1-a");
        assert_eq!(
            cb.gather,
            "https://m.example/p/callback/twilio/voice/n1-a?lang=de"
        );
    }
}
