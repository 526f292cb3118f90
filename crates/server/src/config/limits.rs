//! `[limits]`: per client, per source and per user rates, the bound on
//! tracked keys and the lockout rules. The limiters themselves are
//! `crate::limits`; this is only what the file says.

use std::num::NonZeroU32;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

/// The `[limits]` section as written (every key optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    #[serde(default = "default_client_rps")]
    client_rps: Spanned<u32>,
    #[serde(default = "default_client_burst")]
    client_burst: Spanned<u32>,
    #[serde(default = "default_source_rps")]
    source_rps: Spanned<u32>,
    #[serde(default = "default_source_burst")]
    source_burst: Spanned<u32>,
    #[serde(default = "default_user_per_minute")]
    user_per_minute: Spanned<u32>,
    #[serde(default = "default_user_burst")]
    user_burst: Spanned<u32>,
    #[serde(default = "default_max_tracked_keys")]
    max_tracked_keys: Spanned<usize>,
    #[serde(default = "default_lockout_failures")]
    lockout_failures: Spanned<u32>,
    #[serde(default = "default_lockout_window_secs")]
    lockout_window_secs: Spanned<u64>,
    #[serde(default = "default_lockout_secs")]
    lockout_secs: Spanned<u64>,
    #[serde(default = "default_push_per_user")]
    push_per_user: Spanned<u32>,
    #[serde(default = "default_push_window_secs")]
    push_window_secs: Spanned<u64>,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            client_rps: default_client_rps(),
            client_burst: default_client_burst(),
            source_rps: default_source_rps(),
            source_burst: default_source_burst(),
            user_per_minute: default_user_per_minute(),
            user_burst: default_user_burst(),
            max_tracked_keys: default_max_tracked_keys(),
            lockout_failures: default_lockout_failures(),
            lockout_window_secs: default_lockout_window_secs(),
            lockout_secs: default_lockout_secs(),
            push_per_user: default_push_per_user(),
            push_window_secs: default_push_window_secs(),
        }
    }
}

fn default_client_rps() -> Spanned<u32> {
    Spanned::new(0..0, 2000)
}
fn default_client_burst() -> Spanned<u32> {
    Spanned::new(0..0, 4000)
}
fn default_source_rps() -> Spanned<u32> {
    Spanned::new(0..0, 1000)
}
fn default_source_burst() -> Spanned<u32> {
    Spanned::new(0..0, 2000)
}
fn default_user_per_minute() -> Spanned<u32> {
    Spanned::new(0..0, 30)
}
fn default_user_burst() -> Spanned<u32> {
    Spanned::new(0..0, 15)
}
fn default_max_tracked_keys() -> Spanned<usize> {
    Spanned::new(0..0, 100_000)
}
fn default_lockout_failures() -> Spanned<u32> {
    Spanned::new(0..0, 10)
}
fn default_lockout_window_secs() -> Spanned<u64> {
    Spanned::new(0..0, 600)
}
fn default_lockout_secs() -> Spanned<u64> {
    Spanned::new(0..0, 1800)
}
fn default_push_per_user() -> Spanned<u32> {
    Spanned::new(0..0, 5)
}
fn default_push_window_secs() -> Spanned<u64> {
    Spanned::new(0..0, 600)
}

/// A rate and its burst; `None` where the limit is off (rate 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per period (second or minute).
    pub per_period: NonZeroU32,
    /// Requests allowed at once after a quiet period.
    pub burst: NonZeroU32,
}

/// Validated `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Per RADIUS client, per second.
    pub client: Option<Rate>,
    /// Per source IP, per second.
    pub source: Option<Rate>,
    /// Per user name, per minute.
    pub user: Option<Rate>,
    /// Bound on the entries of each table.
    pub max_tracked_keys: usize,
    /// Failed second factors that lock a user (0: lockout off; a fraud
    /// report still locks).
    pub lockout_failures: u32,
    /// Window in which the failures are counted.
    pub lockout_window_secs: u64,
    /// How long a lock lasts (0: until an admin unlocks).
    pub lockout_secs: u64,
    /// Push approvals sent to one user per `push_window_secs` (push
    /// fatigue); 0: no limit.
    pub push_per_user: u32,
    /// The window of `push_per_user`.
    pub push_window_secs: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitsSection::default()
            .validate(&mut Ctx::new("", ""))
            .unwrap_or_else(|e| unreachable!("the defaults are valid: {e}"))
    }
}

impl Section for LimitsSection {
    type Settings = LimitSettings;

    /// Checks every rate, burst, bound and lockout duration.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<LimitSettings, ConfigError> {
        let rate = |name: &str,
                    rate: &Spanned<u32>,
                    burst_name: &str,
                    burst: &Spanned<u32>,
                    max: u32|
         -> Result<Option<Rate>, ConfigError> {
            let r = *rate.get_ref();
            if r > max {
                return Err(cx.at(
                    rate.span(),
                    format!("limits.{name} must be between 0 (off) and {max}, not {r}"),
                ));
            }
            let b = *burst.get_ref();
            if b > max.saturating_mul(10) {
                return Err(cx.at(
                    burst.span(),
                    format!(
                        "limits.{burst_name} must be at most {}, not {b}",
                        max.saturating_mul(10)
                    ),
                ));
            }
            let Some(per_period) = NonZeroU32::new(r) else {
                return Ok(None);
            };
            let burst = NonZeroU32::new(b).ok_or_else(|| {
                cx.at(
                    burst.span(),
                    format!("limits.{burst_name} must be at least 1 while {name} is not 0"),
                )
            })?;
            Ok(Some(Rate { per_period, burst }))
        };
        let client = rate(
            "client_rps",
            &self.client_rps,
            "client_burst",
            &self.client_burst,
            1_000_000,
        )?;
        let source = rate(
            "source_rps",
            &self.source_rps,
            "source_burst",
            &self.source_burst,
            1_000_000,
        )?;
        let user = rate(
            "user_per_minute",
            &self.user_per_minute,
            "user_burst",
            &self.user_burst,
            100_000,
        )?;
        let keys = cx.within(
            &self.max_tracked_keys,
            1000..=100_000_000,
            "limits.max_tracked_keys",
        )?;
        let failures = *self.lockout_failures.get_ref();
        if failures > 1000 {
            return Err(cx.at(
                self.lockout_failures.span(),
                format!("limits.lockout_failures must be between 0 (off) and 1000, not {failures}"),
            ));
        }
        let window = *self.lockout_window_secs.get_ref();
        if !(1..=7 * 86_400).contains(&window) {
            return Err(cx.at(
                self.lockout_window_secs.span(),
                format!("limits.lockout_window_secs must be between 1 and 604800 (7 days), not {window}"),
            ));
        }
        let lock = *self.lockout_secs.get_ref();
        if lock > 366 * 86_400 {
            return Err(cx.at(
                self.lockout_secs.span(),
                format!("limits.lockout_secs must be between 0 (until an admin unlocks) and 31622400 (366 days), not {lock}"),
            ));
        }
        let push_per_user = *self.push_per_user.get_ref();
        if push_per_user > 1000 {
            return Err(cx.at(
                self.push_per_user.span(),
                format!(
                    "limits.push_per_user must be between 0 (off) and 1000, not {push_per_user}"
                ),
            ));
        }
        let push_window = *self.push_window_secs.get_ref();
        if !(1..=86_400).contains(&push_window) {
            return Err(cx.at(
                self.push_window_secs.span(),
                format!("limits.push_window_secs must be between 1 and 86400 (a day), not {push_window}"),
            ));
        }
        Ok(LimitSettings {
            client,
            source,
            user,
            max_tracked_keys: keys,
            lockout_failures: failures,
            lockout_window_secs: window,
            lockout_secs: lock,
            push_per_user,
            push_window_secs: push_window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    #[test]
    fn defaults_and_validation() {
        let d = LimitSettings::default();
        assert_eq!(d.lockout_failures, 10);
        assert_eq!(d.lockout_window_secs, 600);
        assert_eq!(d.lockout_secs, 1800);
        assert_eq!(d.max_tracked_keys, 100_000);
        assert_eq!(
            d.user,
            Some(Rate {
                per_period: nz(30),
                burst: nz(15)
            })
        );
        let err = |text: &str| {
            let s: LimitsSection = toml::from_str(text).expect("parses");
            s.validate(&mut Ctx::new(text, "t"))
                .expect_err("invalid")
                .reason
        };
        assert!(err("client_rps = 2000000").contains("client_rps"));
        assert!(err("source_rps = 5\nsource_burst = 0").contains("source_burst"));
        assert!(err("lockout_failures = 5000").contains("lockout_failures"));
        assert!(err("lockout_secs = 99999999999").contains("lockout_secs"));
        assert!(err("max_tracked_keys = 10").contains("max_tracked_keys"));
    }
}
