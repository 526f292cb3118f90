//! Twilio specifics: the TwiML of the verification call, the meaning of the
//! keys pressed, the call statuses that end a verification, and the
//! `X-Twilio-Signature` every callback from Twilio carries.
//!
//! Real Twilio reports a call's result only to callbacks (the `<Gather
//! action>` gets the digits, the `StatusCallback` the final call status) and
//! a two-way SMS reply only to the number's inbound-message webhook; the
//! radmfa server serves those (`/callback/twilio/...`) and uses the functions
//! here to read them. Nothing here does I/O.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

use crate::secret::Secret;
use crate::types::Speech;

/// Body of a Twilio Message or Call resource (the fields we read).
#[derive(Debug, Deserialize)]
pub(crate) struct TwilioResource {
    pub(crate) sid: String,
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `key` may be the fraud key: one of `0-9` and `*` (`#` approves).
pub fn valid_fraud_key(key: char) -> bool {
    key.is_ascii_digit() || key == '*'
}

/// The TwiML of a verification call (sent inline as the call's `Twiml`).
///
/// Standard mode: one key; `#` approves, the fraud key reports fraud, any
/// other key denies. PIN mode: the PIN then `#`; the fraud key then `#`
/// reports fraud. The keys go to `action` (`<Gather action>`, POST); with
/// `actionOnEmptyResult` a call answered without a key posts an empty
/// `Digits`, so the wait ends at once. What is said (`speech`, in the
/// user's language) is the caller's: it names the keys. The PIN is never in
/// the TwiML.
pub fn twiml_for_call(pin_mode: bool, action: &str, speech: &Speech) -> String {
    let action = xml_escape(action);
    let gather = if pin_mode {
        "finishOnKey=\"#\""
    } else {
        "numDigits=\"1\" finishOnKey=\"\""
    };
    format!(
        "<Response><Gather input=\"dtmf\" timeout=\"15\" {gather} action=\"{action}\" method=\"POST\" actionOnEmptyResult=\"true\"><Say language=\"{language}\" voice=\"{voice}\">{text}</Say></Gather></Response>",
        language = xml_escape(&speech.language),
        voice = xml_escape(&speech.voice),
        text = xml_escape(&speech.text),
    )
}

/// What the keys pressed in a verification call (the `Digits` parameter of
/// the `<Gather action>` callback) mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys<'a> {
    /// Standard mode: `#`.
    Approve,
    /// The fraud key (then `#` in PIN mode).
    Fraud,
    /// Nothing pressed before the `<Gather>` timed out.
    Nothing,
    /// PIN mode: these digits, to be checked against the user's PIN.
    Pin(&'a str),
    /// Standard mode: another key.
    Other,
}

/// Reads the `Digits` of a `<Gather action>` callback (see [`twiml_for_call`]).
pub fn read_keys(digits: &str, pin_mode: bool, fraud_key: Option<char>) -> Keys<'_> {
    let digits = if pin_mode {
        digits.strip_suffix('#').unwrap_or(digits)
    } else {
        digits
    };
    let mut fraud = [0u8; 4];
    let fraud = fraud_key.map(|k| &*k.encode_utf8(&mut fraud));
    if digits.is_empty() {
        Keys::Nothing
    } else if Some(digits) == fraud {
        Keys::Fraud
    } else if pin_mode {
        Keys::Pin(digits)
    } else if digits == "#" {
        Keys::Approve
    } else {
        Keys::Other
    }
}

/// The final status of a call (`CallStatus` of the `StatusCallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// The call was answered and ended (its keys went to the Gather action).
    Completed,
    /// The line was busy.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// The call could not be placed.
    Failed,
    /// The call was cancelled before it was answered.
    Canceled,
}

/// The final status named by a `CallStatus` value; `None` for the
/// progress statuses (`queued`, `initiated`, `ringing`, `in-progress`) and
/// anything unknown.
pub fn call_end(status: &str) -> Option<CallEnd> {
    match status {
        "completed" => Some(CallEnd::Completed),
        "busy" => Some(CallEnd::Busy),
        "no-answer" => Some(CallEnd::NoAnswer),
        "failed" => Some(CallEnd::Failed),
        "canceled" => Some(CallEnd::Canceled),
        _ => None,
    }
}

/// The `X-Twilio-Signature` of a request Twilio sends to `url` with the
/// form parameters `params`: base64 of HMAC-SHA1, keyed by the account's
/// auth token, over the full URL followed by every parameter's name and
/// value, sorted by name (then value).
pub fn signature(url: &str, params: &[(String, String)], auth_token: &Secret) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // An HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(auth_token.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `presented` (the `X-Twilio-Signature` header) is the signature of
/// this request; compared in constant time.
pub fn signature_matches(
    url: &str,
    params: &[(String, String)],
    auth_token: &Secret,
    presented: &str,
) -> bool {
    use subtle::ConstantTimeEq;
    let expected = signature(url, params, auth_token);
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_keys() {
        let f = Some('0');
        assert_eq!(read_keys("#", false, f), Keys::Approve);
        assert_eq!(read_keys("0", false, f), Keys::Fraud);
        assert_eq!(read_keys("5", false, f), Keys::Other);
        assert_eq!(read_keys("", false, f), Keys::Nothing);
        assert_eq!(read_keys("0", false, None), Keys::Other);
        assert_eq!(read_keys("*", false, Some('*')), Keys::Fraud);
    }

    #[test]
    fn pin_keys() {
        let f = Some('0');
        assert_eq!(read_keys("4321", true, f), Keys::Pin("4321"));
        assert_eq!(read_keys("4321#", true, f), Keys::Pin("4321"));
        assert_eq!(read_keys("0#", true, f), Keys::Fraud);
        assert_eq!(read_keys("#", true, f), Keys::Nothing);
        assert_eq!(read_keys("0#", true, None), Keys::Pin("0"));
    }

    #[test]
    fn twiml_escapes_and_posts_to_the_action() {
        let speech = Speech {
            language: "nl-NL".into(),
            voice: "alice".into(),
            text: "Dit is <vpn> & zo".into(),
        };
        let t = twiml_for_call(true, "https://x/cb?a=1&b=2", &speech);
        assert!(
            t.contains("<Say language=\"nl-NL\" voice=\"alice\">Dit is &lt;vpn&gt; &amp; zo</Say>")
        );
        assert!(t.contains("action=\"https://x/cb?a=1&amp;b=2\""));
        assert!(t.contains("actionOnEmptyResult=\"true\""));
        assert!(t.contains("finishOnKey=\"#\""));
        assert!(t.starts_with("<Response><Gather"));
        let t = twiml_for_call(false, "https://x/cb", &speech);
        assert!(t.contains("numDigits=\"1\""));
    }

    #[test]
    fn call_statuses() {
        assert_eq!(call_end("busy"), Some(CallEnd::Busy));
        assert_eq!(call_end("no-answer"), Some(CallEnd::NoAnswer));
        assert_eq!(call_end("failed"), Some(CallEnd::Failed));
        assert_eq!(call_end("canceled"), Some(CallEnd::Canceled));
        assert_eq!(call_end("completed"), Some(CallEnd::Completed));
        assert_eq!(call_end("ringing"), None);
        assert_eq!(call_end("in-progress"), None);
    }

    /// The expected values were computed with Twilio's own helper library
    /// (PyPI `twilio` 9.13.0), independently of this code:
    ///
    /// ```python
    /// from twilio.request_validator import RequestValidator
    /// v = RequestValidator("12345")
    /// v.compute_signature("https://mycompany.com/myapp.php?foo=1&bar=2",
    ///     {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030",
    ///      "Digits": "1234", "From": "+12349013030", "To": "+18005551212"})
    /// v.compute_signature("https://mfa.example.com/callback/twilio/voice/n1-00112233445566778899aabbccddeeff",
    ///     {"Digits": "#", "CallSid": "CAabc", "CallStatus": "in-progress", "To": "+15005550006"})
    /// ```
    #[test]
    fn signature_matches_twilios_library() {
        let token = Secret::new("12345");
        let p = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature(url, &params, &token),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        let params = p(&[
            ("Digits", "#"),
            ("CallSid", "CAabc"),
            ("CallStatus", "in-progress"),
            ("To", "+15005550006"),
        ]);
        let url =
            "https://mfa.example.com/callback/twilio/voice/n1-00112233445566778899aabbccddeeff";
        let sig = signature(url, &params, &token);
        assert_eq!(sig, "NQv29UuMJpVwkeJPcEJTsNNpMNE=");
        assert!(signature_matches(url, &params, &token, &sig));
        assert!(!signature_matches(
            url,
            &params,
            &Secret::new("other"),
            &sig
        ));
        assert!(!signature_matches(
            &format!("{url}x"),
            &params,
            &token,
            &sig
        ));
        assert!(!signature_matches(url, &params, &token, ""));
    }
}
