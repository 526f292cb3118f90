//! The self-service portal's door into the node: the same first-factor
//! checks, OTP replay state, gateway client, lockout and audit sink the
//! RADIUS pipeline uses, without RADIUS.

use std::sync::Arc;

use radmfa_store::{AuditRecord, Token, User};
use tracing::warn;

use super::decision::{Answer, Decision, Mode, Reason};
use super::gateway::hex;
use super::node::Node;
use crate::config::{FirstFactor, Policy};
use crate::i18n::Text;

/// What the self-service portal learns from a first-factor check.
#[derive(Debug)]
pub(crate) enum PortalFirstFactor {
    /// Passed: the canonical login name (the directory may map `DOMAIN\\user`
    /// or a UPN to it) and the user's record, if the store has one.
    Passed(String, Option<Arc<crate::hot::CachedUser>>),
    /// Failed: the audit reason (`wrong_password`, `unknown_user`,
    /// `store_error`, a directory reason such as `account_locked`).
    Failed(&'static str),
}

/// The user is locked now, after a second factor checked in the portal.
#[derive(Debug)]
pub(crate) struct PortalLock {
    /// The audit reason to record instead (`otp_mismatch+locked_out`,
    /// `locked_out`).
    pub reason: String,
}

/// The portal's entry points into the node: the same first-factor checks,
/// OTP replay state, gateway client and audit sink the RADIUS pipeline uses.
impl Node {
    /// Checks a first factor as `policy` says: `local` against the store's
    /// argon2id hash (an unknown user costs the same as a wrong password),
    /// `ldap` by binding to the directory. `radius` and `none` policies have
    /// no first factor the portal can check, so it uses the local password.
    pub(crate) async fn portal_first_factor(
        &self,
        name: &str,
        password: &[u8],
        policy: &Policy,
    ) -> PortalFirstFactor {
        let wrong = || PortalFirstFactor::Failed(Reason::WrongPassword.as_str());
        let try_again = || PortalFirstFactor::Failed(Reason::StoreError.as_str());
        if policy.first_factor == FirstFactor::Ldap {
            let Some(directory) = self.directory() else {
                return PortalFirstFactor::Failed(Reason::NoDirectory.as_str());
            };
            return match directory.authenticate(name, password).await {
                Ok(dir_user) => match self.hot.user(&self.store, &dir_user.login) {
                    Ok(cached) => PortalFirstFactor::Passed(dir_user.login, cached),
                    Err(e) => {
                        warn!(error = %e, "store read failed");
                        try_again()
                    }
                },
                Err(f) => {
                    if matches!(f, radmfa_directory::AuthFailure::Unreachable(_)) {
                        warn!(error = %f, "directory unreachable");
                    }
                    PortalFirstFactor::Failed(Reason::of_directory(&f).as_str())
                }
            };
        }
        let cached = match self.hot.user(&self.store, name) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "store read failed");
                return try_again();
            }
        };
        match cached {
            Some(c) if c.user.password_hash.is_some() => {
                if self.verify_password(&c.user, password).await {
                    PortalFirstFactor::Passed(c.user.name.clone(), Some(c))
                } else {
                    wrong()
                }
            }
            _ => {
                self.verify_argon2(self.decoy_hash.clone(), password).await;
                wrong()
            }
        }
    }

    /// A user and their token, through the node's cache.
    pub(crate) fn portal_user(
        &self,
        name: &str,
    ) -> Result<Option<Arc<crate::hot::CachedUser>>, String> {
        self.hot.user(&self.store, name).map_err(|e| {
            warn!(error = %e, "store read failed");
            Reason::StoreError.as_str().to_string()
        })
    }

    /// Verifies a code of the user's token and consumes its step or counter,
    /// cluster-wide, exactly as a RADIUS login does. `Err` is the reason
    /// (`OtpReplayed`, `OtpMismatch`, `OtpMalformed`, `StoreError`).
    pub(crate) fn portal_check_code(
        &self,
        user: &User,
        token: &Token,
        code: &str,
    ) -> Result<(), Reason> {
        let d = self.check_code(user, token, code, Mode::Unknown);
        if d.answer == Answer::Accept {
            Ok(())
        } else {
            Err(d.reason)
        }
    }

    /// Marks TOTP step `step` of `user` used (a new token confirmed in the
    /// portal: its confirmation code cannot be replayed at a RADIUS login).
    pub(crate) fn portal_mark_step_used(&self, user: &str, step: u64) {
        if let Err(e) = self.hot.advance_otp(&self.store, user, step) {
            warn!(error = %e, "otp state write failed");
        }
    }

    /// The user's PIN in clear, when they have one.
    pub(crate) fn portal_pin(&self, user: &User) -> Result<Option<radmfa_store::Secret>, String> {
        self.store.open_pin(user).map_err(|e| {
            warn!(error = %e, "cannot open the PIN");
            Reason::StoreError.as_str().to_string()
        })
    }

    /// Whether a gateway is configured (SMS codes can be sent).
    pub(crate) fn portal_can_send_sms(&self) -> bool {
        self.gateway.get().is_some()
    }

    /// Sends `body` by SMS to `phone` for `user` through the gateway.
    pub(crate) async fn portal_send_sms(
        &self,
        user: &User,
        phone: &str,
        body: String,
        end_user: Option<std::net::IpAddr>,
    ) -> Result<(), String> {
        let Some(gateway) = self.gateway() else {
            return Err(Reason::GatewayNotConfigured.as_str().into());
        };
        let mut id = [0u8; 16];
        rand::fill(&mut id[..]);
        let mut fields = self.user_fields(user);
        fields.phone = Some(phone.to_string());
        let request = radmfa_gateway::SmsRequest {
            id: hex(&id),
            user: fields,
            body,
            server_name: self.cfg().node_name.clone(),
            server_ip: self.server_ip(),
            client_ip: end_user,
            from_number: None,
        };
        gateway.send_sms(&request).await.map(|_| ()).map_err(|e| {
            warn!(error = %e, "cannot send the SMS code");
            Reason::GatewayUnreachable.as_str().to_string()
        })
    }

    /// The user's lock now, if any: the check a RADIUS request meets first.
    pub(crate) fn portal_lock(&self, name: &str) -> Option<crate::limits::LockKind> {
        let now = self.clock.now_unix();
        self.limits().lock_of(&self.store, &self.hot, name, now)
    }

    /// Counts the outcome of a second factor checked in the portal through
    /// the same lockout bookkeeping as a RADIUS request
    /// ([`crate::limits::Limits::after_decision`]): a second-factor failure
    /// (`OtpMismatch`, `SmsCodeWrong`, `WrongPin`...) counts towards the
    /// lock, which is written through the primary like any other; a success
    /// resets the count. `Some` when the user is locked now: its `reason` is
    /// the audit reason to record instead.
    pub(crate) async fn portal_second_factor_outcome(
        &self,
        user: &str,
        outcome: Result<(), Reason>,
    ) -> Option<PortalLock> {
        let decision = match outcome {
            Ok(()) => Decision::accept_name(user, Mode::Unknown, Reason::Ok, Vec::new()),
            Err(reason) => Decision::reject(user, Mode::Unknown, reason, Text::default()),
        };
        let o = self.lockout_after(&decision).await?;
        Some(PortalLock {
            reason: o.audit_reason().into_owned(),
        })
    }

    /// Queues an audit record for a portal event, as this node.
    pub(crate) fn portal_audit(
        &self,
        user: &str,
        mode: &str,
        result: &str,
        reason: &str,
        source: std::net::IpAddr,
    ) {
        self.audit.record(AuditRecord {
            time_ms: self.clock.now_unix_ms(),
            user: user.to_string(),
            mode: mode.to_string(),
            result: result.to_string(),
            reason: reason.to_string(),
            server_name: self.cfg().node_name.clone(),
            server_ip: self.cfg().server_ip.clone(),
            client_name: "portal".to_string(),
            client_ip: source.to_string(),
            calling_station: String::new(),
            ..AuditRecord::default()
        });
    }
}
