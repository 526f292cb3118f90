//! Local password checks: argon2id verification (bounded concurrency, off
//! the packet loop), the credential cache, rehashing to the configured
//! parameters, and the per-request argon2 count that pads rejects to a
//! fixed cost.

use radmfa_store::User;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use super::node::Node;
use crate::config::{FirstFactor, OtpMode, Policy};
use crate::counters::bump;

impl Node {
    /// Decides whether `password` is `user`'s: the credential cache first,
    /// else an argon2id verification (cached and, when the hash has other
    /// parameters than the configured ones, rehashed on success). Marks the
    /// request's password as passed for the argon2 padding.
    pub(super) async fn verify_password(&self, user: &User, password: &[u8]) -> bool {
        let Some(hash) = user.password_hash.as_deref() else {
            return false;
        };
        let now = self.clock.instant();
        if self.creds.check(&user.name, hash, password, now) {
            let _ = PASSWORD_PASSED.try_with(|p| p.set(true));
            return true;
        }
        let ok = self.verify_argon2(hash.to_string(), password).await;
        if ok {
            let _ = PASSWORD_PASSED.try_with(|p| p.set(true));
            self.creds.insert(&user.name, hash, password, now);
            self.rehash(&user.name, hash, password).await;
        }
        ok
    }

    /// After a password verified against a hash made with other argon2
    /// parameters than the configured ones: replaces it by one made with
    /// them, so that user's verifications cost what everyone else's (and the
    /// decoy's) do. One more argon2 run, counted as `argon2_rehashes`, on
    /// success only. Written where the store is writable (primary or
    /// standalone); a replica leaves it to a sign-in at the primary. Only
    /// the hash that was verified is replaced: a password changed meanwhile
    /// stays.
    pub(super) async fn rehash(&self, name: &str, old: &str, password: &[u8]) {
        let params = self.cfg().password_params();
        if !radmfa_store::needs_rehash(old, &params)
            || self.store.repl_state().0 != radmfa_store::repl::Role::Primary
        {
            return;
        }
        let Ok(_permit) = self.argon2_slots.acquire().await else {
            return;
        };
        bump(&self.counters.argon2_rehashes);
        let (store, user, old) = (self.store.clone(), name.to_string(), old.to_string());
        let password = Zeroizing::new(password.to_vec());
        let written = tokio::task::spawn_blocking(move || {
            let new = radmfa_store::hash_password(&password, &params)?;
            store.update_user(&user, |u| {
                if u.password_hash.as_deref() == Some(old.as_str()) {
                    u.password_hash = Some(new.clone());
                }
            })
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.hot.forget_user(name);
                self.creds.forget(name);
                debug!("password hash upgraded to the configured argon2 parameters");
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot upgrade the password hash to the configured argon2 parameters; it is tried again at the next sign-in")
            }
            Err(e) => warn!(error = %e, "password rehash task failed"),
        }
    }

    pub(super) async fn verify_argon2(&self, hash: String, password: &[u8]) -> bool {
        bump(&self.counters.argon2_verifications);
        // Counted per request too, so local_first_leg can pad to a fixed cost.
        let _ = ARGON2_RUNS.try_with(|n| n.set(n.get().saturating_add(1)));
        // Each verification holds `memory_kib` of RAM for milliseconds: bound
        // how many run at once, so a burst of cold logins queues here instead
        // of growing the blocking pool and the heap without limit.
        let Ok(_permit) = self.argon2_slots.acquire().await else {
            return false;
        };
        let password = Zeroizing::new(password.to_vec());
        // argon2 takes milliseconds of CPU: keep it off the packet loop.
        tokio::task::spawn_blocking(move || radmfa_store::verify_password(&hash, &password))
            .await
            .unwrap_or(false)
    }
}

tokio::task_local! {
    /// argon2 verifications run so far by the request this task serves
    /// (set by `local_first_leg`; other callers are not counted).
    pub(super) static ARGON2_RUNS: std::cell::Cell<u32>;
    /// Whether the request this task serves got its password right (set by
    /// `verify_password` within `local_first_leg`).
    pub(super) static PASSWORD_PASSED: std::cell::Cell<bool>;
}

/// How many argon2 verifications a rejected request costs under `policy`:
/// one for a `local` first factor, two when `otp_mode = "auto"` (a
/// User-Password ending in digits is checked both as password + code and as
/// the whole password, so every other rejected request is padded to two);
/// none for the other first factors (no local password is checked).
pub(crate) fn argon2_per_reject(policy: &Policy) -> u32 {
    match (policy.first_factor, policy.otp_mode) {
        (FirstFactor::Local, OtpMode::Auto) => 2,
        (FirstFactor::Local, _) => 1,
        _ => 0,
    }
}
