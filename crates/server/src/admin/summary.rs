//! Aggregated reports (`radmfa report --summary`, `GET
//! /api/v1/reports/summary`): sign-ins counted per period, method, result
//! and client, the users with the most rejects, and from the user records
//! the locked, fraud-reported and never-enrolled users. Records are
//! counted as they are read (constant memory, whatever the range). Its own
//! file: the types and the counting, apart from the plain record report.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use radmfa_store::{AuditRecord, DisabledReason, Method, Token, User};

/// One hour and one day in ms.
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 86_400_000;

/// The period sign-ins are counted by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// Clock hours (UTC).
    Hour,
    /// UTC days.
    #[default]
    Day,
}

impl Bucket {
    fn start(self, time_ms: u64) -> u64 {
        let len = match self {
            Bucket::Hour => HOUR_MS,
            Bucket::Day => DAY_MS,
        };
        time_ms - time_ms % len
    }
}

/// Sign-ins of one period, method, result and client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInCount {
    /// Start of the period (unix ms, UTC).
    pub period_start_ms: u64,
    /// Second-factor method (`totp`, `sms`, ..., `none`).
    pub method: String,
    /// `accept` or `reject`.
    pub result: String,
    /// RADIUS client name (`portal` for portal sign-ins).
    pub client: String,
    /// How many.
    pub count: u64,
}

/// A user and how many rejects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCount {
    /// Login name.
    pub user: String,
    /// Rejected sign-ins in the range.
    pub count: u64,
}

/// A user locked now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedUser {
    /// Login name.
    pub user: String,
    /// Until (unix seconds; `u64::MAX`: until an admin unlocks).
    pub locked_until: u64,
    /// Why (`too_many_failures`, `fraud_reported`).
    pub reason: String,
}

/// What `report --summary` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSummary {
    /// Range start (unix ms), if given.
    pub since_ms: Option<u64>,
    /// Range end (unix ms, exclusive), if given.
    pub until_ms: Option<u64>,
    /// The period of `sign_ins`.
    pub bucket: Bucket,
    /// Accepted and rejected sign-ins (challenges are steps, not sign-ins;
    /// admin and other records are not counted), by period, method,
    /// result, client; oldest period first.
    pub sign_ins: Vec<SignInCount>,
    /// The users with the most rejects, most first.
    pub top_failing: Vec<UserCount>,
    /// Users locked now (lockout or fraud report).
    pub locked: Vec<LockedUser>,
    /// Users disabled because they reported a sign-in as not theirs.
    pub fraud_reported: Vec<String>,
    /// Users without what their method needs: an app token (totp, hotp),
    /// a phone (sms, sms_two_way, call), a device (push).
    pub never_enrolled: Vec<String>,
    /// False when the primary was unreachable and this node counted what it
    /// holds.
    pub complete: bool,
    /// The node that counted.
    pub answered_by: String,
    /// Why incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Counts records as they are read.
#[derive(Debug, Default)]
pub struct Tally {
    bucket: Bucket,
    sign_ins: BTreeMap<(u64, String, String, String), u64>,
    rejects: HashMap<String, u64>,
}

impl Tally {
    /// An empty tally by `bucket`.
    pub fn new(bucket: Bucket) -> Self {
        Tally {
            bucket,
            ..Tally::default()
        }
    }

    /// Counts one record (sign-ins only).
    pub fn add(&mut self, r: &AuditRecord) {
        if !(r.result == "accept" || r.result == "reject") || r.mode == crate::audit::ADMIN_MODE {
            return;
        }
        let key = (
            self.bucket.start(r.time_ms),
            crate::counters::method_of(&r.mode).to_string(),
            r.result.clone(),
            r.client_name.clone(),
        );
        *self.sign_ins.entry(key).or_default() += 1;
        if r.result == "reject" {
            *self.rejects.entry(r.user.clone()).or_default() += 1;
        }
    }

    /// The summary: the tally, the `top` users by rejects, and the state of
    /// `users` (with their tokens) at `now` (unix seconds).
    pub fn finish(self, top: usize, users: &[(User, Option<Token>)], now: u64) -> AuditSummary {
        let sign_ins = self
            .sign_ins
            .into_iter()
            .map(
                |((period_start_ms, method, result, client), count)| SignInCount {
                    period_start_ms,
                    method,
                    result,
                    client,
                    count,
                },
            )
            .collect();
        let mut top_failing: Vec<UserCount> = self
            .rejects
            .into_iter()
            .map(|(user, count)| UserCount { user, count })
            .collect();
        top_failing.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.user.cmp(&b.user)));
        top_failing.truncate(top);
        let mut locked = Vec::new();
        let mut fraud_reported = Vec::new();
        let mut never_enrolled = Vec::new();
        for (u, token) in users {
            if u.locked_until > now {
                locked.push(LockedUser {
                    user: u.name.clone(),
                    locked_until: u.locked_until,
                    reason: u.lock_reason.clone(),
                });
            }
            if u.disabled_reason == Some(DisabledReason::Fraud) {
                fraud_reported.push(u.name.clone());
            }
            let enrolled = match u.method {
                Method::Totp | Method::Hotp => token.is_some(),
                Method::Sms | Method::SmsTwoWay | Method::Call => !u.phone.is_empty(),
                Method::Push => !u.device_token.is_empty(),
                Method::None => true,
            };
            if !enrolled {
                never_enrolled.push(u.name.clone());
            }
        }
        AuditSummary {
            since_ms: None,
            until_ms: None,
            bucket: self.bucket,
            sign_ins,
            top_failing,
            locked,
            fraud_reported,
            never_enrolled,
            complete: true,
            answered_by: String::new(),
            note: None,
        }
    }
}

/// The CSV columns of a summary: one row per count, user or name, the
/// section first.
pub const SUMMARY_FIELDS: &[&str] = &[
    "section",
    "period_start_ms",
    "method",
    "result",
    "client",
    "user",
    "count",
    "detail",
];

impl AuditSummary {
    /// The rows of its CSV form ([`SUMMARY_FIELDS`]).
    pub fn rows(&self) -> Vec<[String; 8]> {
        let mut rows = Vec::new();
        for s in &self.sign_ins {
            rows.push([
                "sign_ins".into(),
                s.period_start_ms.to_string(),
                s.method.clone(),
                s.result.clone(),
                s.client.clone(),
                String::new(),
                s.count.to_string(),
                String::new(),
            ]);
        }
        let user_row = |section: &str, user: &str, count: String, detail: String| {
            [
                section.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                user.to_string(),
                count,
                detail,
            ]
        };
        for u in &self.top_failing {
            rows.push(user_row(
                "top_failing",
                &u.user,
                u.count.to_string(),
                String::new(),
            ));
        }
        for u in &self.locked {
            let until = if u.locked_until == u64::MAX {
                "until unlocked".to_string()
            } else {
                format!("until {}", u.locked_until)
            };
            rows.push(user_row(
                "locked",
                &u.user,
                String::new(),
                format!("{} {until}", u.reason),
            ));
        }
        for u in &self.fraud_reported {
            rows.push(user_row("fraud_reported", u, String::new(), String::new()));
        }
        for u in &self.never_enrolled {
            rows.push(user_row("never_enrolled", u, String::new(), String::new()));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(time_ms: u64, user: &str, mode: &str, result: &str, client: &str) -> AuditRecord {
        AuditRecord {
            time_ms,
            user: user.into(),
            mode: mode.into(),
            result: result.into(),
            client_name: client.into(),
            ..AuditRecord::default()
        }
    }

    #[test]
    fn counts_sign_ins_by_hour_and_the_failing_users() {
        let h = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS;
        let mut t = Tally::new(Bucket::Hour);
        for r in [
            rec(h + 1, "ann", "pap+totp", "accept", "vpn"),
            rec(h + 2, "ann", "pap+totp-challenge", "challenge", "vpn"),
            rec(h + 3, "bob", "pap+totp", "reject", "vpn"),
            rec(h + 4, "bob", "pap+sms", "reject", "vpn"),
            rec(h + HOUR_MS, "bob", "pap+totp", "reject", "vpn"),
            rec(h + HOUR_MS, "cat", "pap+totp", "reject", "wifi"),
            rec(h + 5, "root", crate::audit::ADMIN_MODE, "ok", "admin"),
        ] {
            t.add(&r);
        }
        let s = t.finish(1, &[], 0);
        let got: Vec<(u64, &str, &str, &str, u64)> = s
            .sign_ins
            .iter()
            .map(|c| {
                (
                    c.period_start_ms - h,
                    c.method.as_str(),
                    c.result.as_str(),
                    c.client.as_str(),
                    c.count,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (0, "sms", "reject", "vpn", 1),
                (0, "totp", "accept", "vpn", 1),
                (0, "totp", "reject", "vpn", 1),
                (HOUR_MS, "totp", "reject", "vpn", 1),
                (HOUR_MS, "totp", "reject", "wifi", 1),
            ]
        );
        assert_eq!(
            s.top_failing,
            [UserCount {
                user: "bob".into(),
                count: 3
            }]
        );
    }

    /// Locked now (not an expired lock), disabled after a fraud report,
    /// and without what the method needs.
    #[test]
    fn lists_locked_fraud_reported_and_never_enrolled_users() {
        use radmfa_store::{Secret, TokenAlgorithm, TokenKind};
        let now = 1_000;
        let user = |name: &str, method: Method| {
            let mut u = User::new(name);
            u.method = method;
            u
        };
        let token = Token {
            kind: TokenKind::Totp,
            algorithm: TokenAlgorithm::Sha1,
            digits: 6,
            period: 30,
            secret: Secret::new(vec![1; 20]),
            created: 1,
        };
        let mut locked = user("locked", Method::Totp);
        locked.locked_until = now + 60;
        locked.lock_reason = "too_many_failures".into();
        let mut expired = user("expired", Method::Totp);
        expired.locked_until = now;
        let mut fraud = user("fraud", Method::Totp);
        fraud.disable(DisabledReason::Fraud);
        let mut texter = user("texter", Method::Sms);
        texter.phone = "+31600000000".into();
        let users = [
            (locked, Some(token.clone())),
            (expired, Some(token.clone())),
            (fraud, Some(token.clone())),
            (user("noapp", Method::Totp), None),
            (user("nophone", Method::Call), None),
            (user("nodevice", Method::Push), None),
            (texter, None),
            (user("bypass", Method::None), None),
        ];
        let s = Tally::new(Bucket::Day).finish(10, &users, now);
        assert_eq!(
            s.locked,
            [LockedUser {
                user: "locked".into(),
                locked_until: now + 60,
                reason: "too_many_failures".into(),
            }]
        );
        assert_eq!(s.fraud_reported, ["fraud"]);
        assert_eq!(s.never_enrolled, ["noapp", "nophone", "nodevice"]);
    }
}
