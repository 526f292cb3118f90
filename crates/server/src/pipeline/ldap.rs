//! First factor `ldap`: a bind to the directory as the user, then the
//! second factor of the canonical login name's record.

use tracing::warn;

use super::codes::split_code;
use super::decision::*;
use super::login::Login;
use super::node::Node;
use crate::config::OtpMode;
use crate::i18n::Key;

impl Node {
    /// First factor `ldap`: decides by a bind to the directory as the user (AD forms
    /// `user`, `user@domain`, `DOMAIN\user`), then the second factor of the
    /// local record of the canonical login name; the user's directory groups
    /// decide whether MFA applies and which attributes the Accept carries.
    pub(super) async fn ldap_first_leg(&self, login: &Login<'_>, password: &[u8]) -> Decision {
        let (name, policy) = (login.name, login.policy);
        let mode = Mode::first(First::Ldap);
        let Some(directory) = self.directory() else {
            return Decision::reject(name, mode, Reason::NoDirectory, MSG_TRY_AGAIN);
        };
        // Inline only when the policy says so: the directory sees exactly one
        // password per request (repeated wrong binds lock AD accounts).
        let by_name = match self.hot.user(&self.store, name) {
            Ok(u) => u,
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Decision::reject(name, mode, Reason::StoreError, MSG_TRY_AGAIN);
            }
        };
        let inline = match (&by_name, policy.otp_mode) {
            (Some(c), OtpMode::Inline) => c
                .token
                .as_ref()
                .and_then(|t| split_code(password, usize::from(t.digits))),
            _ => None,
        };
        let first_password = inline.map_or(password, |(pw, _)| pw);
        let dir_user = match directory.authenticate(name, first_password).await {
            Ok(u) => u,
            Err(f) => {
                use radmfa_directory::AuthFailure as F;
                let msg = match &f {
                    F::WrongPassword | F::UnknownUser => MSG_WRONG_CREDENTIALS,
                    F::AccountDisabled => Key::DirectoryDisabled,
                    F::AccountLocked => Key::DirectoryLocked,
                    F::AccountExpired => Key::DirectoryExpired,
                    F::PasswordExpired => Key::PasswordExpired,
                    _ => Key::PasswordUnchecked,
                };
                if matches!(f, F::Unreachable(_)) {
                    warn!(error = %f, "directory unreachable");
                }
                return Decision::reject(name, mode, Reason::of_directory(&f), msg);
            }
        };
        let canonical = dir_user.login.clone();
        let cached = if canonical == name {
            by_name
        } else {
            match self.hot.user(&self.store, &canonical) {
                Ok(u) => u,
                Err(e) => {
                    warn!(error = %e, "store read failed");
                    return Decision::reject(&canonical, mode, Reason::StoreError, MSG_TRY_AGAIN);
                }
            }
        };
        let on_accept = OnAccept {
            attrs: Vec::new(),
            groups: dir_user.groups,
        };
        let login = Login {
            name: &canonical,
            ..login.with_first(First::Ldap, on_accept)
        };
        self.second_factor_after(&login, cached, inline.map(|(_, c)| c))
            .await
    }
}
