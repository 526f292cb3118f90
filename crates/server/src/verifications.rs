//! The out-of-band verifications this node is waiting for (a phone call, a
//! two-way SMS, a push approval), and the one place a verdict for them is
//! delivered.
//!
//! A login whose second factor is out of band [`Verifications::open`]s an
//! entry and awaits its [`Waiter`]: one `tokio::sync::oneshot` per login, no
//! task, thread or poll loop, so ten thousand waiting logins cost ten
//! thousand small map entries. Whoever learns the user's answer (the Twilio
//! callbacks, the push approval page, a peer that received such a callback)
//! calls [`Verifications::decide`] with a typed [`Outcome`]; the first
//! decision wakes the waiter, any later one changes nothing
//! ([`Decided::AlreadyDecided`]). The entry lives until its waiter is dropped
//! (verdict delivered, timeout, or the request task gone): the [`Waiter`]'s
//! `Drop` removes it, so nothing needs sweeping.
//!
//! An id is `n<node id>-<32 lowercase hex>`: 128 random bits, unguessable,
//! and it names the node that owns it ([`owner`]), as the challenge State
//! does, so a callback reaching any node of a cluster can be sent to the
//! owner over the peer link. A two-way SMS carries a short reference instead
//! (the user types it back): three random digits followed by the owner's
//! node id ([`reference_owner`]), unique among the pending verifications of
//! the same phone on this node.
//!
//! A leaf module (it knows no other part of the server) so that the pipeline,
//! the callback handlers, the portal's approval page and the peer link can
//! all use it without depending on each other.

use crate::i18n::Lang;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use zeroize::Zeroizing;

/// The kind of out-of-band verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OobMode {
    /// A phone call: `#` (or the PIN then `#`) approves.
    Call,
    /// An SMS the user answers by replying.
    TwoWaySms,
    /// A push message opening the portal's approval page.
    Push,
}

impl OobMode {
    /// Stable name (logs, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            OobMode::Call => "call",
            OobMode::TwoWaySms => "two_way_sms",
            OobMode::Push => "push",
        }
    }
}

/// What the user (or the provider) answered. Each has its own audit reason
/// in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The user approved (`#`, the right PIN, a "yes" reply, Approve).
    Approved,
    /// The user denied (another key, a "no" reply, Deny).
    Denied,
    /// PIN mode: the digits were not the user's PIN.
    WrongPin,
    /// The user reported the sign-in as not theirs (the fraud code, "This
    /// was not me"): the user is locked.
    Fraud,
    /// The call was answered but no key was pressed before Twilio's
    /// `<Gather>` timed out.
    NoInput,
    /// The line was busy.
    CallBusy,
    /// The call rang out unanswered.
    CallNoAnswer,
    /// The call could not be placed (invalid number, carrier error).
    CallFailed,
    /// The call was cancelled before it was answered.
    CallCanceled,
}

impl Outcome {
    /// Stable name (logs, the peer link, tests).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Denied => "denied",
            Outcome::WrongPin => "wrong_pin",
            Outcome::Fraud => "fraud",
            Outcome::NoInput => "no_input",
            Outcome::CallBusy => "call_busy",
            Outcome::CallNoAnswer => "call_no_answer",
            Outcome::CallFailed => "call_failed",
            Outcome::CallCanceled => "call_canceled",
        }
    }

    /// Every outcome, for parsing and tests.
    pub const ALL: &'static [Outcome] = &[
        Outcome::Approved,
        Outcome::Denied,
        Outcome::WrongPin,
        Outcome::Fraud,
        Outcome::NoInput,
        Outcome::CallBusy,
        Outcome::CallNoAnswer,
        Outcome::CallFailed,
        Outcome::CallCanceled,
    ];

    /// The outcome of a stable name.
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.iter().copied().find(|o| o.as_str() == s)
    }
}

/// What became of a [`Verifications::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// This call decided the verification; its waiter is woken.
    Done,
    /// No such verification here: never opened, expired, or its login has
    /// finished (timed out, gone). Nothing changed.
    Unknown,
    /// It was decided before (a replayed or second callback). Nothing changed.
    AlreadyDecided,
}

/// The registry is at its bound: the login is refused rather than the
/// node's memory grown without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many out-of-band verifications waiting ({0})")]
pub struct Full(pub usize);

/// What an approval page or an SMS shows about the sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// The RADIUS client (NAS) the request came through, by its configured name.
    pub client: String,
    /// The NAS's address (NAS-IP-Address, else the datagram's source).
    pub nas_ip: Option<IpAddr>,
    /// Calling-Station-Id as sent (the end user's address or number), if any.
    pub calling_station: Option<String>,
    /// When the login arrived, seconds since the Unix epoch.
    pub at_unix: u64,
}

/// A verification to open.
pub struct NewVerification {
    /// The user the login is for.
    pub user: String,
    /// Call, two-way SMS or push.
    pub mode: OobMode,
    /// What the approval page / SMS shows.
    pub context: Context,
    /// The phone number (E.164) a call or SMS goes to; two-way SMS replies
    /// are matched by it.
    pub phone: Option<String>,
    /// PIN mode: the PIN the digits are checked against (never sent out).
    pub pin: Option<Zeroizing<String>>,
    /// How long the verification may be answered.
    pub lifetime: Duration,
    /// The language the user is told things in (what a callback's answer
    /// to them is worded in, on whichever node it lands).
    pub lang: Lang,
}

impl fmt::Debug for NewVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewVerification")
            .field("user", &self.user)
            .field("mode", &self.mode)
            .field("pin", &self.pin.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// A copy of what is known about a pending verification (no PIN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Its id.
    pub id: String,
    /// The user.
    pub user: String,
    /// Call, two-way SMS or push.
    pub mode: OobMode,
    /// What the approval page shows.
    pub context: Context,
    /// The phone number, for calls and SMS.
    pub phone: Option<String>,
    /// Two-way SMS: the reference the user may type back.
    pub reference: Option<String>,
    /// PIN mode.
    pub pin_mode: bool,
    /// When it was opened.
    pub created: Instant,
    /// When it stops being answerable.
    pub expires: Instant,
    /// Decided already (its waiter not yet gone).
    pub decided: bool,
    /// The user's language.
    pub lang: Lang,
}

/// One entry: its view, its PIN, and the sender that wakes its waiter.
struct Entry {
    view: View,
    pin: Option<Zeroizing<String>>,
    tx: Option<oneshot::Sender<Outcome>>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<String, Entry>,
    /// Phone number -> ids of the entries for it (two-way SMS matching).
    by_phone: HashMap<String, Vec<String>>,
}

impl Table {
    fn remove(&mut self, id: &str) {
        let Some(e) = self.entries.remove(id) else {
            return;
        };
        if let Some(phone) = e.view.phone {
            if let Some(ids) = self.by_phone.get_mut(&phone) {
                ids.retain(|i| i != id);
                if ids.is_empty() {
                    self.by_phone.remove(&phone);
                }
            }
        }
    }
}

struct Inner {
    node_id: u16,
    max: usize,
    table: Mutex<Table>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pending out-of-band verifications of one node. Cheap to clone.
#[derive(Clone)]
pub struct Verifications {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifications {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifications")
            .field("node_id", &self.inner.node_id)
            .field("pending", &self.len())
            .finish()
    }
}

/// The login's side of a verification: await [`Waiter::wait`]. Dropping it
/// removes the verification, so a later callback finds nothing.
pub struct Waiter {
    id: String,
    rx: oneshot::Receiver<Outcome>,
    inner: Arc<Inner>,
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter").field("id", &self.id).finish()
    }
}

impl Waiter {
    /// The verification's id (for callback URLs, the push message).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits for the outcome until `deadline`; `None` when none came in time.
    pub async fn wait(mut self, deadline: tokio::time::Instant) -> Option<Outcome> {
        tokio::time::timeout_at(deadline, &mut self.rx)
            .await
            .ok()
            .and_then(Result::ok)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.inner.lock().remove(&self.id);
    }
}

/// The node that owns a verification id (`n<node id>-<32 hex>`), or `None`
/// when `id` is not one.
pub fn owner(id: &str) -> Option<u16> {
    let rest = id.strip_prefix('n')?;
    let (node, random) = rest.split_once('-')?;
    if node.is_empty() || node.len() > 5 || !node.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if random.len() != 32
        || !random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    node.parse().ok()
}

/// The node that owns a two-way SMS reference (three digits, then the node
/// id), or `None` when `r` is not one.
pub fn reference_owner(r: &str) -> Option<u16> {
    if r.len() < 4 || r.len() > 8 || !r.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    r.get(3..)?.parse().ok()
}

/// Most two-way SMS verifications pending for one phone number.
const MAX_PER_PHONE: usize = 500;

fn new_id(node_id: u16) -> String {
    let mut random = [0u8; 16];
    rand::fill(&mut random[..]);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("n{node_id}-{hex}")
}

impl Verifications {
    /// An empty registry for node `node_id`, holding at most `max` pending
    /// verifications.
    pub fn new(node_id: u16, max: usize) -> Verifications {
        Verifications {
            inner: Arc::new(Inner {
                node_id,
                max,
                table: Mutex::new(Table::default()),
            }),
        }
    }

    /// This node's id (the owner named in the ids it makes).
    pub fn node_id(&self) -> u16 {
        self.inner.node_id
    }

    /// Pending verifications (decided ones whose waiter is still there included).
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens a verification at `now`; the login awaits the returned
    /// [`Waiter`]. A two-way SMS gets a reference unique among the pending
    /// verifications of its phone.
    pub fn open(&self, new: NewVerification, now: Instant) -> Result<(View, Waiter), Full> {
        let mut table = self.inner.lock();
        if table.entries.len() >= self.inner.max {
            return Err(Full(self.inner.max));
        }
        let id = new_id(self.inner.node_id);
        let reference = if new.mode == OobMode::TwoWaySms {
            let taken: Vec<String> = new
                .phone
                .as_ref()
                .and_then(|p| table.by_phone.get(p))
                .into_iter()
                .flatten()
                .filter_map(|i| table.entries.get(i)?.view.reference.clone())
                .collect();
            // Three digits: at most 1000 references per phone; half of
            // them in use is abuse, not a user signing in.
            if taken.len() >= MAX_PER_PHONE {
                return Err(Full(MAX_PER_PHONE));
            }
            Some(loop {
                let r = format!(
                    "{:03}{}",
                    rand::random_range(0..1000u16),
                    self.inner.node_id
                );
                if !taken.contains(&r) {
                    break r;
                }
            })
        } else {
            None
        };
        let view = View {
            id: id.clone(),
            user: new.user,
            mode: new.mode,
            context: new.context,
            phone: new.phone,
            reference,
            pin_mode: new.pin.is_some(),
            created: now,
            expires: now + new.lifetime,
            decided: false,
            lang: new.lang,
        };
        let (tx, rx) = oneshot::channel();
        if let Some(phone) = &view.phone {
            table
                .by_phone
                .entry(phone.clone())
                .or_default()
                .push(id.clone());
        }
        table.entries.insert(
            id.clone(),
            Entry {
                view: view.clone(),
                pin: new.pin,
                tx: Some(tx),
            },
        );
        drop(table);
        let waiter = Waiter {
            id,
            rx,
            inner: self.inner.clone(),
        };
        Ok((view, waiter))
    }

    /// What is known about a pending verification (`None`: unknown or
    /// expired at `now`).
    pub fn view(&self, id: &str, now: Instant) -> Option<View> {
        let table = self.inner.lock();
        let e = table.entries.get(id)?;
        (now < e.view.expires).then(|| e.view.clone())
    }

    /// Decides a verification with `outcome` (single use).
    pub fn decide(&self, id: &str, outcome: Outcome, now: Instant) -> Decided {
        self.decide_with(id, now, |_| Some(outcome))
    }

    /// Decides a verification with the outcome `judge` derives from it
    /// (e.g. digits checked against its PIN), under the registry's lock so
    /// that the judgement and the decision are one step. A judge that
    /// returns `None` (the answer does not fit this verification, e.g. keys
    /// for a push) leaves it undecided: [`Decided::Unknown`].
    pub fn decide_with(
        &self,
        id: &str,
        now: Instant,
        judge: impl FnOnce(&Judged<'_>) -> Option<Outcome>,
    ) -> Decided {
        let mut table = self.inner.lock();
        let Some(e) = table.entries.get_mut(id) else {
            return Decided::Unknown;
        };
        if now >= e.view.expires {
            return Decided::Unknown;
        }
        if e.tx.is_none() {
            return Decided::AlreadyDecided;
        }
        let Some(outcome) = judge(&Judged {
            view: &e.view,
            pin: e.pin.as_deref().map(String::as_str),
        }) else {
            return Decided::Unknown;
        };
        let Some(tx) = e.tx.take() else {
            return Decided::AlreadyDecided;
        };
        e.view.decided = true;
        e.pin = None;
        // The waiter may be gone this very moment; the entry goes with it.
        let _ = tx.send(outcome);
        Decided::Done
    }

    /// The undecided, unexpired verifications for `phone` (oldest first).
    pub fn find_by_phone(&self, phone: &str, now: Instant) -> Vec<View> {
        let table = self.inner.lock();
        let mut found: Vec<View> = table
            .by_phone
            .get(phone)
            .into_iter()
            .flatten()
            .filter_map(|id| table.entries.get(id))
            .filter(|e| e.tx.is_some() && now < e.view.expires)
            .map(|e| e.view.clone())
            .collect();
        found.sort_by_key(|v| v.created);
        found
    }
}

/// What [`Verifications::decide_with`]'s judge sees.
pub struct Judged<'a> {
    /// The verification.
    pub view: &'a View,
    /// Its PIN, in PIN mode.
    pin: Option<&'a str>,
}

impl fmt::Debug for Judged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Judged")
            .field("view", self.view)
            .finish_non_exhaustive()
    }
}

impl Judged<'_> {
    /// PIN mode: whether `candidate` is the PIN (constant time). `None`
    /// outside PIN mode.
    pub fn pin_matches(&self, candidate: &str) -> Option<bool> {
        use subtle::ConstantTimeEq;
        let pin = self.pin?;
        Some(!pin.is_empty() && bool::from(pin.as_bytes().ct_eq(candidate.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(user: &str, mode: OobMode, phone: Option<&str>) -> NewVerification {
        NewVerification {
            user: user.into(),
            mode,
            context: Context::default(),
            phone: phone.map(str::to_owned),
            pin: None,
            lifetime: Duration::from_secs(60),
            lang: Lang::En,
        }
    }

    fn deadline() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn ids_name_their_owner() {
        let r = Verifications::new(7, 10);
        let (v, _w) = r
            .open(new("a", OobMode::Call, None), Instant::now())
            .unwrap();
        assert_eq!(owner(&v.id), Some(7));
        assert_eq!(v.id.len(), "n7-".len() + 32);
        assert_eq!(
            owner("n65535-0123456789abcdef0123456789abcdef"),
            Some(65535)
        );
        for bad in [
            "",
            "n-0123456789abcdef0123456789abcdef",
            "n65536-0123456789abcdef0123456789abcdef",
            "x1-0123456789abcdef0123456789abcdef",
            "n1-0123456789abcdef0123456789abcde",
            "n1-0123456789ABCDEF0123456789abcdef",
            "n1-0123456789abcdef0123456789abcdef0",
            "n+1-0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(owner(bad), None, "{bad}");
        }
        assert_eq!(reference_owner("4827"), Some(7));
        assert_eq!(reference_owner("00112"), Some(12));
        assert_eq!(reference_owner("123"), None);
        assert_eq!(reference_owner("12a4"), None);
    }

    #[tokio::test]
    async fn decide_wakes_the_waiter_once() {
        let r = Verifications::new(1, 10);
        let now = Instant::now();
        let (v, w) = r.open(new("a", OobMode::Call, None), now).unwrap();
        assert_eq!(r.decide(&v.id, Outcome::Approved, now), Decided::Done);
        assert_eq!(
            r.decide(&v.id, Outcome::Denied, now),
            Decided::AlreadyDecided
        );
        assert_eq!(w.wait(deadline()).await, Some(Outcome::Approved));
        // The waiter is gone: so is the entry.
        assert_eq!(r.decide(&v.id, Outcome::Approved, now), Decided::Unknown);
        assert!(r.is_empty());
        assert_eq!(
            r.decide("n1-nope", Outcome::Approved, now),
            Decided::Unknown
        );
    }

    #[tokio::test]
    async fn a_timed_out_waiter_removes_its_entry() {
        let r = Verifications::new(1, 10);
        let now = Instant::now();
        let (v, w) = r.open(new("a", OobMode::Push, None), now).unwrap();
        assert_eq!(w.wait(tokio::time::Instant::now()).await, None);
        assert!(r.view(&v.id, now).is_none());
        assert_eq!(r.decide(&v.id, Outcome::Approved, now), Decided::Unknown);
    }

    #[test]
    fn expired_entries_cannot_be_decided_and_the_size_is_bounded() {
        let r = Verifications::new(1, 2);
        let now = Instant::now();
        let (v, _w1) = r.open(new("a", OobMode::Call, None), now).unwrap();
        let _w2 = r.open(new("b", OobMode::Call, None), now).unwrap();
        assert_eq!(
            r.open(new("c", OobMode::Call, None), now).unwrap_err(),
            Full(2)
        );
        let later = now + Duration::from_secs(61);
        assert!(r.view(&v.id, later).is_none());
        assert_eq!(r.decide(&v.id, Outcome::Approved, later), Decided::Unknown);
    }

    #[test]
    fn pin_is_judged_in_constant_time_and_dropped_after() {
        let r = Verifications::new(1, 10);
        let now = Instant::now();
        let mut n = new("a", OobMode::Call, Some("+15005550006"));
        n.pin = Some(Zeroizing::new("4321".into()));
        let (v, _w) = r.open(n, now).unwrap();
        assert!(v.pin_mode);
        let mut seen = None;
        r.decide_with(&v.id, now, |j| {
            seen = Some((j.pin_matches("4321"), j.pin_matches("1234")));
            None
        });
        assert_eq!(seen, Some((Some(true), Some(false))));
        // A judge that finds the answer does not fit changes nothing.
        assert_eq!(r.decide(&v.id, Outcome::Approved, now), Decided::Done);
    }

    #[test]
    fn two_way_sms_references_are_unique_per_phone() {
        let r = Verifications::new(3, 2000);
        let now = Instant::now();
        let mut waiters = Vec::new();
        for _ in 0..MAX_PER_PHONE {
            let (v, w) = r
                .open(new("a", OobMode::TwoWaySms, Some("+15005550006")), now)
                .unwrap();
            assert_eq!(reference_owner(v.reference.as_deref().unwrap()), Some(3));
            waiters.push(w);
        }
        let found = r.find_by_phone("+15005550006", now);
        let mut refs: Vec<_> = found.iter().map(|v| v.reference.clone()).collect();
        refs.sort();
        refs.dedup();
        assert_eq!(refs.len(), MAX_PER_PHONE);
        assert!(r
            .open(new("a", OobMode::TwoWaySms, Some("+15005550006")), now)
            .is_err());
        let first = found[0].id.clone();
        r.decide(&first, Outcome::Denied, now);
        assert_eq!(
            r.find_by_phone("+15005550006", now).len(),
            MAX_PER_PHONE - 1
        );
        drop(waiters);
        assert!(r.find_by_phone("+15005550006", now).is_empty());
        assert!(r.inner.lock().by_phone.is_empty());
    }
}
