//! The users part of the [`Store`]: user records, passwords and PINs.
//! Split from `store.rs` by concern; every write goes through the
//! transaction machinery there ([`Store::write`]).

use std::sync::atomic::Ordering;

use super::{abort, normalise, now_secs, pin_aad, Store};
use crate::crypto::{hex_decode, hex_encode};
use crate::model::{check_user_text, validate_name};
use crate::password::{hash_password, PasswordParams};
use crate::schema::{decode, encode, AdminTree};
use crate::{DisabledReason, SealedPin, Secret, StoreError, Token, User};

/// A new token and the OTP state to start it with (the last HOTP counter
/// used; `None` for a token never used).
pub type TokenWithState = (Token, Option<u64>);

impl Store {
    /// Adds a new user; [`StoreError::AlreadyExists`] if the name is taken. Sets
    /// `created` and `updated` to now.
    pub fn add_user(&self, user: &User) -> Result<(), StoreError> {
        check_user_text(None, user)?;
        let now = now_secs();
        let mut stored = user.clone();
        stored.created = now;
        stored.updated = now;
        normalise(&mut stored);
        let value = encode(&stored)?;
        let key = user.name.as_bytes();
        self.write(|tx| {
            if tx.get(AdminTree::Users, key)?.is_some() {
                return abort(StoreError::AlreadyExists {
                    what: "user",
                    name: user.name.clone(),
                });
            }
            tx.put(AdminTree::Users, key, value.clone())?;
            Ok(())
        })
    }

    /// Inserts or replaces many users, each with an optional new token, in one
    /// transaction and one flush (bulk import). Same rules per user as
    /// [`Store::put_user`] and [`Store::put_token`]. Returns how many users
    /// were new.
    pub fn put_users(&self, items: &[(User, Option<Token>)]) -> Result<usize, StoreError> {
        let items: Vec<_> = items
            .iter()
            .map(|(u, t)| (u.clone(), t.clone().map(|t| (t, None))))
            .collect();
        self.put_users_with_state(&items)
    }

    /// [`Store::put_users`] where a new token may come with its OTP state
    /// (the last HOTP counter used: an imported token that has been used
    /// before). `None` clears the state, as for a new token.
    pub fn put_users_with_state(
        &self,
        items: &[(User, Option<TokenWithState>)],
    ) -> Result<usize, StoreError> {
        let now = now_secs();
        let mut prepared = Vec::with_capacity(items.len());
        for (user, token) in items {
            validate_name("user", &user.name)?;
            let token = match token {
                Some((t, state)) => Some((self.seal_token(&user.name, t)?, *state)),
                None => None,
            };
            prepared.push((user, token));
        }
        self.write(|tx| {
            let mut added = 0;
            for (user, token) in &prepared {
                let key = user.name.as_bytes();
                let old = tx.get(AdminTree::Users, key)?;
                let old_user = old
                    .as_ref()
                    .and_then(|o| decode::<User>("user", key, o).ok());
                if let Err(e) = check_user_text(old_user.as_ref(), user) {
                    return abort(e);
                }
                let created = match &old {
                    Some(_) => old_user.as_ref().map_or(now, |o| o.created),
                    None => {
                        added += 1;
                        now
                    }
                };
                let mut stored = (*user).clone();
                stored.created = created;
                stored.updated = now;
                normalise(&mut stored);
                let value = match encode(&stored) {
                    Ok(v) => v,
                    Err(e) => return abort(e),
                };
                tx.put(AdminTree::Users, key, value)?;
                if let Some((token, state)) = token {
                    tx.put(AdminTree::Tokens, key, token.clone())?;
                    match state {
                        Some(s) => tx.put(AdminTree::OtpState, key, s.to_be_bytes().to_vec())?,
                        None => tx.remove(AdminTree::OtpState, key)?,
                    };
                }
            }
            Ok(added)
        })
    }

    /// Inserts or replaces a user. Keeps the stored `created` if the user
    /// exists (now otherwise); sets `updated` to now.
    pub fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.put_users(&[(user.clone(), None)]).map(|_| ())
    }

    /// The user named `name`; `None` if there is none (or the name could not be
    /// valid).
    pub fn get_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        if validate_name("user", name).is_err() {
            return Ok(None);
        }
        self.inner
            .users
            .get(name)?
            .map(|v| decode("user", name.as_bytes(), &v))
            .transpose()
    }

    /// All users, sorted by name (byte order).
    pub fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.inner
            .users
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode("user", &k, &v)
            })
            .collect()
    }

    /// Number of users (kept as a counter: no scan).
    pub fn user_count(&self) -> usize {
        usize::try_from(self.inner.user_count.load(Ordering::SeqCst).max(0)).unwrap_or(usize::MAX)
    }

    /// Enables or disables a user (an admin's decision: a disable records
    /// [`DisabledReason::Admin`], see [`User::disable`]); [`StoreError::NotFound`]
    /// if absent.
    pub fn set_user_enabled(&self, name: &str, enabled: bool) -> Result<(), StoreError> {
        if enabled {
            self.update_user(name, User::enable)
        } else {
            self.disable_user(name, DisabledReason::Admin)
        }
    }

    /// Disables a user for `reason` (see [`User::disable`] for a user who is
    /// disabled already); [`StoreError::NotFound`] if absent.
    pub fn disable_user(&self, name: &str, reason: DisabledReason) -> Result<(), StoreError> {
        self.update_user(name, |u| u.disable(reason))
    }

    /// Field-level read-modify-write of many users in one transaction and
    /// one flush: for each name, `change` gets the record as stored at that
    /// moment (`None`: no such user) and returns the record to write with a
    /// note for the caller, or `None` to leave it alone. Nothing written
    /// between a caller's earlier read and this call is lost, because
    /// `change` sees it. The closure may run again on a conflict. The name
    /// and the PIN cannot be changed (a new record gets no PIN); `created`
    /// and `updated` are set by the store. Returns the notes of the records
    /// written, in order.
    pub fn modify_users<R>(
        &self,
        names: &[String],
        change: impl Fn(&str, Option<&User>) -> Option<(User, R)>,
    ) -> Result<Vec<R>, StoreError> {
        for name in names {
            validate_name("user", name)?;
        }
        let now = now_secs();
        self.write(|tx| {
            let mut notes = Vec::new();
            for name in names {
                let key = name.as_bytes();
                let old = match tx.get(AdminTree::Users, key)? {
                    Some(v) => match decode::<User>("user", key, &v) {
                        Ok(u) => Some(u),
                        Err(e) => return abort(e),
                    },
                    None => None,
                };
                let Some((mut user, note)) = change(name, old.as_ref()) else {
                    continue;
                };
                user.name.clone_from(name);
                user.pin = old.as_ref().and_then(|o| o.pin.clone());
                user.created = old.as_ref().map_or(now, |o| o.created);
                user.updated = now;
                normalise(&mut user);
                let value = match encode(&user) {
                    Ok(v) => v,
                    Err(e) => return abort(e),
                };
                tx.put(AdminTree::Users, key, value)?;
                notes.push(note);
            }
            Ok(notes)
        })
    }

    /// Deletes a user with its token and OTP state, in one transaction;
    /// [`StoreError::NotFound`] if absent.
    pub fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        validate_name("user", name)?;
        let key = name.as_bytes();
        self.write(|tx| {
            if tx.remove(AdminTree::Users, key)?.is_none() {
                return abort(StoreError::NotFound {
                    what: "user",
                    name: name.to_string(),
                });
            }
            tx.remove(AdminTree::Tokens, key)?;
            tx.remove(AdminTree::OtpState, key)?;
            Ok(())
        })
    }

    /// Sets the user's local password (argon2id with `params`, hashed before the
    /// transaction); [`StoreError::NotFound`] if absent.
    pub fn set_password(
        &self,
        name: &str,
        password: &[u8],
        params: &PasswordParams,
    ) -> Result<(), StoreError> {
        validate_name("user", name)?;
        let phc = hash_password(password, params)?;
        self.update_user(name, |u| u.password_hash = Some(phc.clone()))
    }

    /// Sets (`Some`) or clears (`None`) the user's PIN: 4 to 10 digits, sealed
    /// under the store key with `pin:` + the user name as AAD. A user with a
    /// PIN authenticates in PIN mode. [`StoreError::NotFound`] if absent.
    pub fn set_pin(&self, name: &str, pin: Option<&[u8]>) -> Result<(), StoreError> {
        self.set_pin_inner(name, pin, None)
    }

    /// [`Store::set_pin`] that also sets the user's `pin_change_required`
    /// flag in the same transaction: `true` when an admin hands out a PIN the
    /// user must replace, `false` when the user chose it (or it is cleared).
    pub fn set_pin_required(
        &self,
        name: &str,
        pin: Option<&[u8]>,
        change_required: bool,
    ) -> Result<(), StoreError> {
        self.set_pin_inner(name, pin, Some(change_required && pin.is_some()))
    }

    fn set_pin_inner(
        &self,
        name: &str,
        pin: Option<&[u8]>,
        change_required: Option<bool>,
    ) -> Result<(), StoreError> {
        validate_name("user", name)?;
        let sealed = match pin {
            None => None,
            Some(pin) => Some(self.seal_pin(name, pin)?),
        };
        self.rewrite_user(name, |u| {
            u.pin = sealed.clone();
            if let Some(required) = change_required {
                u.pin_change_required = required;
            }
        })
    }

    /// `pin` checked ([`crate::validate_pin`]) and sealed for the user
    /// `name`, for a record written in bulk ([`Store::put_users`]: the
    /// import); [`Store::set_pin`] does this itself.
    pub fn seal_pin(&self, name: &str, pin: &[u8]) -> Result<SealedPin, StoreError> {
        crate::model::validate_pin(pin)?;
        let (nonce, sealed) = self.inner.cipher.seal(pin, &pin_aad(name))?;
        Ok(SealedPin {
            nonce: hex_encode(&nonce),
            sealed: hex_encode(&sealed),
        })
    }

    /// The user's PIN in clear, `None` in standard mode. [`StoreError::Crypto`]
    /// if it does not decrypt (wrong key, tampered, or copied from another user).
    pub fn open_pin(&self, user: &User) -> Result<Option<Secret>, StoreError> {
        let Some(p) = &user.pin else {
            return Ok(None);
        };
        let nonce = hex_decode(p.nonce.as_bytes()).ok_or(StoreError::Crypto)?;
        let sealed = hex_decode(p.sealed.as_bytes()).ok_or(StoreError::Crypto)?;
        self.inner
            .cipher
            .open(&nonce, &sealed, &pin_aad(&user.name))
            .map(Some)
    }

    /// Read-modify-write of one user in one transaction (the closure may run
    /// again on a conflict); sets `updated`. [`StoreError::NotFound`] if absent.
    /// The name and the PIN cannot be changed this way (see [`Store::set_pin`]).
    pub fn update_user(&self, name: &str, change: impl Fn(&mut User)) -> Result<(), StoreError> {
        self.rewrite_user(name, |u| {
            let (name_before, pin_before) = (u.name.clone(), u.pin.clone());
            change(u);
            u.name = name_before;
            u.pin = pin_before;
        })
    }

    /// [`Store::update_user`] without the guard on the name and PIN.
    fn rewrite_user(&self, name: &str, change: impl Fn(&mut User)) -> Result<(), StoreError> {
        validate_name("user", name)?;
        let key = name.as_bytes();
        let now = now_secs();
        self.write(|tx| {
            let Some(old) = tx.get(AdminTree::Users, key)? else {
                return abort(StoreError::NotFound {
                    what: "user",
                    name: name.to_string(),
                });
            };
            let mut user: User = match decode("user", key, &old) {
                Ok(u) => u,
                Err(e) => return abort(e),
            };
            let before = user.clone();
            change(&mut user);
            if let Err(e) = check_user_text(Some(&before), &user) {
                return abort(e);
            }
            user.updated = now;
            normalise(&mut user);
            match encode(&user) {
                Ok(value) => tx.put(AdminTree::Users, key, value)?,
                Err(e) => return abort(e),
            };
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::open;
    use crate::User;

    #[test]
    fn user_count_follows_writes_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        assert_eq!(store.user_count(), 0);
        store.add_user(&User::new("a")).unwrap();
        store.put_user(&User::new("b")).unwrap();
        store.put_user(&User::new("b")).unwrap(); // replace: no change
        assert!(store.add_user(&User::new("a")).is_err());
        assert_eq!(store.user_count(), 2);
        store.delete_user("a").unwrap();
        assert!(store.delete_user("a").is_err());
        assert_eq!(store.user_count(), 1);
        drop(store);
        let store = open(&dir);
        assert_eq!(store.user_count(), 1);
    }
}
