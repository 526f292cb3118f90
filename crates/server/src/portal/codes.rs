//! Answers to the codes the portal sends by text message, counted on the
//! server.
//!
//! The code itself travels in the sealed session cookie, so that any node
//! can check an answer (no sticky balancer needed). But a cookie can be
//! copied and sent again: a counter of wrong answers kept inside it would
//! start afresh with every copy. So each code sent gets a random id, and the
//! node that checks an answer counts it here against that id until the code
//! expires. A code answered correctly, or wrongly `max_attempts` times, is
//! spent: every copy of the cookie is refused from then on (like a RADIUS
//! SMS challenge, whose session is single use).
//!
//! The count lives in the memory of the node that checks the answer, as a
//! RADIUS challenge's does on its owner. Behind a balancer without
//! stickiness, copies of one cookie sent to each of N nodes get at most
//! N x `max_attempts` answers; at sign-in each wrong one also counts
//! towards the user's lockout, which holds cluster-wide.
//!
//! Memory is bounded: at most `cap` codes are tracked. When the table is
//! full of codes that have not expired, an answer is refused (fail closed)
//! rather than a count forgotten.

use std::collections::HashMap;
use std::sync::Mutex;

/// What the table says about one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Right, and the code is now spent.
    Accepted,
    /// Wrong; `left` more answers are allowed (0: the code is now spent).
    Wrong { left: u8 },
    /// The code was spent already (or the table is full): the answer was
    /// not looked at.
    Spent,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The code's expiry (unix seconds); the entry goes after it.
    until: u64,
    /// Wrong answers so far.
    wrong: u8,
    /// Answered correctly or out of attempts.
    spent: bool,
}

/// Wrong answers per sent code, on this node.
#[derive(Debug)]
pub(crate) struct CodeAttempts {
    map: Mutex<HashMap<String, Entry>>,
    cap: usize,
}

impl CodeAttempts {
    /// A table that tracks at most `cap` codes.
    pub(crate) fn new(cap: usize) -> CodeAttempts {
        CodeAttempts {
            map: Mutex::new(HashMap::new()),
            cap: cap.max(1),
        }
    }

    /// Records one answer to code `id` (valid until `until`, `max` wrong
    /// answers allowed); `right` says whether it matched. The check and the
    /// count happen under one lock, so concurrent copies of a cookie cannot
    /// slip in extra answers.
    pub(crate) fn answer(&self, id: &str, until: u64, max: u8, now: u64, right: bool) -> Verdict {
        if id.is_empty() || now >= until {
            return Verdict::Spent;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(id) && map.len() >= self.cap {
            map.retain(|_, e| e.until > now);
            if map.len() >= self.cap {
                return Verdict::Spent;
            }
        }
        let e = map.entry(id.to_string()).or_insert(Entry {
            until,
            wrong: 0,
            spent: false,
        });
        if e.spent || e.wrong >= max {
            e.spent = true;
            return Verdict::Spent;
        }
        if right {
            e.spent = true;
            return Verdict::Accepted;
        }
        e.wrong = e.wrong.saturating_add(1);
        let left = max.saturating_sub(e.wrong);
        if left == 0 {
            e.spent = true;
        }
        Verdict::Wrong { left }
    }

    /// Forgets codes that have expired.
    pub(crate) fn prune(&self, now: u64) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, e| e.until > now);
        map.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_answers_count_per_code_and_spend_it() {
        let t = CodeAttempts::new(100);
        assert_eq!(t.answer("a", 100, 3, 10, false), Verdict::Wrong { left: 2 });
        assert_eq!(t.answer("a", 100, 3, 11, false), Verdict::Wrong { left: 1 });
        assert_eq!(t.answer("b", 100, 3, 11, false), Verdict::Wrong { left: 2 });
        assert_eq!(t.answer("a", 100, 3, 12, false), Verdict::Wrong { left: 0 });
        assert_eq!(t.answer("a", 100, 3, 13, true), Verdict::Spent);
        assert_eq!(t.answer("b", 100, 3, 13, true), Verdict::Accepted);
        assert_eq!(
            t.answer("b", 100, 3, 14, true),
            Verdict::Spent,
            "single use"
        );
        assert_eq!(t.answer("c", 100, 3, 100, true), Verdict::Spent, "expired");
        assert_eq!(t.answer("", 100, 3, 10, true), Verdict::Spent, "no id");
    }

    #[test]
    fn full_table_fails_closed_until_codes_expire() {
        let t = CodeAttempts::new(2);
        assert_eq!(t.answer("a", 50, 3, 10, false), Verdict::Wrong { left: 2 });
        assert_eq!(t.answer("b", 60, 3, 10, false), Verdict::Wrong { left: 2 });
        assert_eq!(t.answer("c", 60, 3, 10, true), Verdict::Spent, "full");
        assert_eq!(t.answer("a", 50, 3, 10, false), Verdict::Wrong { left: 1 });
        assert_eq!(
            t.answer("c", 60, 3, 50, true),
            Verdict::Accepted,
            "a expired"
        );
        t.prune(60);
        assert_eq!(t.answer("d", 90, 3, 61, true), Verdict::Accepted);
    }
}
