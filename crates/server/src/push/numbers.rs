//! Number matching: the two-digit number the approval page shows and the
//! user types at the NAS's Access-Challenge prompt, kept on the node that
//! owns the push verification together with the login's [`Waiter`] (the
//! login itself has already answered with the challenge; the challenge
//! answer takes the waiter over). Entries end when the answer takes them or
//! at their deadline, so the table holds only challenges in progress.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::verifications::Waiter;

struct Entry {
    number: u8,
    waiter: Waiter,
    deadline: Instant,
}

/// The numbers of this node's number-matching push verifications, by
/// verification id.
#[derive(Default)]
pub struct MatchNumbers {
    table: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for MatchNumbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchNumbers")
            .field("pending", &self.lock().len())
            .finish()
    }
}

impl MatchNumbers {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `waiter` until `deadline` with a new random number (10..=99,
    /// two digits whatever the keypad) and returns the number.
    pub fn issue(&self, waiter: Waiter, now: Instant, deadline: Instant) -> u8 {
        let number = rand::random_range(10..=99u8);
        let mut t = self.lock();
        t.retain(|_, e| e.deadline > now);
        t.insert(
            waiter.id().to_string(),
            Entry {
                number,
                waiter,
                deadline,
            },
        );
        number
    }

    /// The number of verification `id`, while it is pending.
    pub fn number(&self, id: &str, now: Instant) -> Option<u8> {
        let t = self.lock();
        t.get(id).filter(|e| e.deadline > now).map(|e| e.number)
    }

    /// Takes verification `id` (single use): its number and waiter.
    pub fn take(&self, id: &str, now: Instant) -> Option<(u8, Waiter)> {
        let e = self.lock().remove(id)?;
        (e.deadline > now).then_some((e.number, e.waiter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifications::{Context, NewVerification, OobMode, Verifications};
    use std::time::Duration;

    #[test]
    fn issued_read_taken_once_and_expired() {
        let r = Verifications::new(1, 10);
        let now = Instant::now();
        let open = || {
            r.open(
                NewVerification {
                    user: "a".into(),
                    mode: OobMode::Push,
                    context: Context::default(),
                    phone: None,
                    pin: None,
                    lifetime: Duration::from_secs(60),
                    lang: crate::i18n::Lang::En,
                },
                now,
            )
            .unwrap()
        };
        let m = MatchNumbers::default();
        let (v, w) = open();
        let n = m.issue(w, now, now + Duration::from_secs(30));
        assert!((10..=99).contains(&n));
        assert_eq!(m.number(&v.id, now), Some(n));
        assert_eq!(m.take(&v.id, now).map(|t| t.0), Some(n));
        assert!(m.take(&v.id, now).is_none());
        // The waiter went with it: the verification is gone.
        assert!(r.view(&v.id, now).is_none());
        let (v, w) = open();
        m.issue(w, now, now + Duration::from_secs(1));
        let later = now + Duration::from_secs(2);
        assert_eq!(m.number(&v.id, later), None);
        assert!(m.take(&v.id, later).is_none());
    }
}
