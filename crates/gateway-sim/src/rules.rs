//! Rules that decide how the simulated user answers a verification.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How the simulated user answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Approves at once.
    Approve,
    /// Denies at once.
    Deny,
    /// Reports fraud at once.
    Fraud,
    /// The gateway gives up at once (`timed_out`).
    Timeout,
    /// Never answers: the verification stays pending.
    Never,
    /// Pending for the given time, then the inner rule.
    After(Duration, Box<Rule>),
    /// The user enters these digits as their PIN: approved when they match the
    /// verification's PIN (or in standard mode), denied otherwise. (`approve`
    /// in PIN mode means the user enters the right PIN.)
    Enter(String),
}

/// The state of a verification at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No answer yet.
    Pending,
    /// Approved.
    Approved,
    /// Denied.
    Denied,
    /// Fraud reported.
    Fraud,
    /// Timed out.
    TimedOut,
}

impl Outcome {
    /// The radmfa protocol name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Approved => "approved",
            Outcome::Denied => "denied",
            Outcome::Fraud => "fraud",
            Outcome::TimedOut => "timed_out",
        }
    }
}

impl Rule {
    /// The outcome `elapsed` after the verification started; `pin` is the
    /// PIN of a PIN-mode verification.
    pub fn outcome(&self, elapsed: Duration, pin: Option<&[u8]>) -> Outcome {
        match self {
            Rule::Enter(entered) => match pin {
                Some(pin)
                    if !bool::from(subtle::ConstantTimeEq::ct_eq(entered.as_bytes(), pin)) =>
                {
                    Outcome::Denied
                }
                _ => Outcome::Approved,
            },
            Rule::Approve => Outcome::Approved,
            Rule::Deny => Outcome::Denied,
            Rule::Fraud => Outcome::Fraud,
            Rule::Timeout => Outcome::TimedOut,
            Rule::Never => Outcome::Pending,
            Rule::After(delay, inner) => match elapsed.checked_sub(*delay) {
                Some(rest) => inner.outcome(rest, pin),
                None => Outcome::Pending,
            },
        }
    }
}

/// A rule that does not parse.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRule(pub String);

impl fmt::Display for BadRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad rule {:?}: expected approve, deny, fraud, timeout, never, enter:DIGITS or after:SECONDS:RULE",
            self.0
        )
    }
}

impl std::error::Error for BadRule {}

impl FromStr for Rule {
    type Err = BadRule;

    fn from_str(s: &str) -> Result<Self, BadRule> {
        let bad = || BadRule(s.chars().take(64).collect());
        match s {
            "approve" => Ok(Rule::Approve),
            "deny" => Ok(Rule::Deny),
            "fraud" => Ok(Rule::Fraud),
            "timeout" => Ok(Rule::Timeout),
            "never" => Ok(Rule::Never),
            _ => {
                if let Some(digits) = s.strip_prefix("enter:") {
                    if digits.is_empty()
                        || digits.len() > 16
                        || !digits.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(bad());
                    }
                    return Ok(Rule::Enter(digits.to_string()));
                }
                let rest = s.strip_prefix("after:").ok_or_else(bad)?;
                let (secs, inner) = rest.split_once(':').ok_or_else(bad)?;
                let secs: f64 = secs.parse().map_err(|_| bad())?;
                if !(0.0..=86_400.0).contains(&secs) {
                    return Err(bad());
                }
                let inner: Rule = inner.parse().map_err(|_| bad())?;
                Ok(Rule::After(Duration::from_secs_f64(secs), Box::new(inner)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        assert_eq!("approve".parse(), Ok(Rule::Approve));
        assert_eq!("never".parse(), Ok(Rule::Never));
        assert_eq!(
            "after:2:deny".parse(),
            Ok(Rule::After(Duration::from_secs(2), Box::new(Rule::Deny)))
        );
        assert!("after:2".parse::<Rule>().is_err());
        assert!("after:-1:deny".parse::<Rule>().is_err());
        assert!("after:x:deny".parse::<Rule>().is_err());
        assert!("maybe".parse::<Rule>().is_err());
    }

    #[test]
    fn after_is_pending_then_inner() {
        let r: Rule = "after:1.5:fraud".parse().unwrap();
        assert_eq!(r.outcome(Duration::from_secs(1), None), Outcome::Pending);
        assert_eq!(r.outcome(Duration::from_secs(2), None), Outcome::Fraud);
        assert_eq!(Rule::Never.outcome(Duration::MAX, None), Outcome::Pending);
    }

    #[test]
    fn enter_compares_with_the_pin() {
        let r: Rule = "enter:4321".parse().unwrap();
        assert_eq!(r, Rule::Enter("4321".into()));
        assert_eq!(r.outcome(Duration::ZERO, Some(b"4321")), Outcome::Approved);
        assert_eq!(r.outcome(Duration::ZERO, Some(b"4322")), Outcome::Denied);
        assert_eq!(r.outcome(Duration::ZERO, Some(b"43210")), Outcome::Denied);
        assert_eq!(r.outcome(Duration::ZERO, None), Outcome::Approved);
        let late: Rule = "after:1:enter:9".parse().unwrap();
        assert_eq!(late.outcome(Duration::ZERO, Some(b"9")), Outcome::Pending);
        assert_eq!(
            late.outcome(Duration::from_secs(1), Some(b"8")),
            Outcome::Denied
        );
        for bad in ["enter:", "enter:12a", "enter:12345678901234567"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }
}
