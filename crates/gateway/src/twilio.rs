//! Twilio specifics: the TwiML of the verification call and the meaning of the digits.

use serde::Deserialize;

use crate::types::{PinMode, Verdict};

/// Body of a Twilio Message or Call resource (the fields we read).
#[derive(Debug, Deserialize)]
pub(crate) struct TwilioResource {
    pub(crate) sid: String,
    #[serde(default)]
    pub(crate) status: Option<String>,
    /// Not a Twilio field: the simulator reports the call's verdict here, because real
    /// Twilio only delivers the digits to the `<Gather action>` callback.
    #[serde(default)]
    pub(crate) radmfa_verdict: Option<String>,
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

/// The TwiML of a verification call. Standard mode: press `#` to approve, `0` to
/// report fraud (any other key denies). PIN mode: enter the PIN then `#`; `0#`
/// reports fraud. The digits go to `callback` (the `<Gather action>`), when given.
pub fn twiml_for_call(pin_mode: &PinMode, server_name: &str, callback: Option<&str>) -> String {
    let action = callback
        .map(|url| format!(" action=\"{}\" method=\"POST\"", xml_escape(url)))
        .unwrap_or_default();
    let server = xml_escape(server_name);
    let (gather, prompt) = match pin_mode {
        PinMode::Standard => (
            "numDigits=\"1\" finishOnKey=\"\"",
            "press the pound key to sign in. Press zero to report fraud.",
        ),
        PinMode::Pin(_) => (
            "finishOnKey=\"#\"",
            "enter your PIN followed by the pound key. Press zero then pound to report fraud.",
        ),
    };
    format!(
        "<Response><Gather input=\"dtmf\" timeout=\"15\" {gather}{action}><Say>This is a sign-in verification from {server}. To approve, {prompt}</Say></Gather><Say>No input received. Goodbye.</Say></Response>"
    )
}

/// The verdict for the digits Twilio collected with [`twiml_for_call`] (the `Digits`
/// parameter of the `<Gather action>` callback).
pub fn verdict_from_digits(digits: &str, pin_mode: &PinMode) -> Verdict {
    match pin_mode {
        PinMode::Standard => match digits {
            "#" => Verdict::Approved,
            "0" => Verdict::FraudReported,
            "" => Verdict::TimedOut,
            _ => Verdict::Denied,
        },
        PinMode::Pin(pin) => {
            let digits = digits.strip_suffix('#').unwrap_or(digits);
            if digits == "0" {
                Verdict::FraudReported
            } else if digits.is_empty() {
                Verdict::TimedOut
            } else if !pin.is_empty() && pin.matches(digits.as_bytes()) {
                Verdict::Approved
            } else {
                Verdict::Denied
            }
        }
    }
}

/// Maps a Twilio call resource to a verdict, if it has one yet.
pub(crate) fn call_verdict(res: &TwilioResource) -> Result<Option<Verdict>, String> {
    if let Some(v) = res.radmfa_verdict.as_deref() {
        return match v {
            "approved" => Ok(Some(Verdict::Approved)),
            "denied" => Ok(Some(Verdict::Denied)),
            "fraud" => Ok(Some(Verdict::FraudReported)),
            "timed_out" => Ok(Some(Verdict::TimedOut)),
            other => Err(format!("unknown radmfa_verdict {other:?}")),
        };
    }
    match res.status.as_deref().unwrap_or("") {
        "queued" | "initiated" | "ringing" | "in-progress" => Ok(None),
        "no-answer" => Ok(Some(Verdict::TimedOut)),
        "busy" | "canceled" => Ok(Some(Verdict::Denied)),
        "completed" => Err(
            "the call completed; its verdict is delivered to the status callback, not the REST API"
                .into(),
        ),
        other => Err(format!("call status {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn standard_digits() {
        let m = PinMode::Standard;
        assert_eq!(verdict_from_digits("#", &m), Verdict::Approved);
        assert_eq!(verdict_from_digits("0", &m), Verdict::FraudReported);
        assert_eq!(verdict_from_digits("5", &m), Verdict::Denied);
        assert_eq!(verdict_from_digits("", &m), Verdict::TimedOut);
    }

    #[test]
    fn pin_digits() {
        let m = PinMode::Pin(Secret::new("4321"));
        assert_eq!(verdict_from_digits("4321", &m), Verdict::Approved);
        assert_eq!(verdict_from_digits("4321#", &m), Verdict::Approved);
        assert_eq!(verdict_from_digits("1234", &m), Verdict::Denied);
        assert_eq!(verdict_from_digits("0#", &m), Verdict::FraudReported);
    }

    #[test]
    fn twiml_escapes_and_never_contains_the_pin() {
        let t = twiml_for_call(
            &PinMode::Pin(Secret::new("987654")),
            "vpn<&>",
            Some("https://x/cb?a=1&b=2"),
        );
        assert!(t.contains("vpn&lt;&amp;&gt;"));
        assert!(t.contains("action=\"https://x/cb?a=1&amp;b=2\""));
        assert!(!t.contains("987654"));
        assert!(t.starts_with("<Response><Gather"));
    }

    #[test]
    fn call_status_mapping() {
        let r = |status: &str, v: Option<&str>| TwilioResource {
            sid: "CA1".into(),
            status: Some(status.into()),
            radmfa_verdict: v.map(str::to_owned),
        };
        assert_eq!(call_verdict(&r("ringing", None)), Ok(None));
        assert_eq!(
            call_verdict(&r("no-answer", None)),
            Ok(Some(Verdict::TimedOut))
        );
        assert_eq!(call_verdict(&r("busy", None)), Ok(Some(Verdict::Denied)));
        assert!(call_verdict(&r("completed", None)).is_err());
        assert_eq!(
            call_verdict(&r("completed", Some("fraud"))),
            Ok(Some(Verdict::FraudReported))
        );
    }
}
