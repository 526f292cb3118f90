//! Deterministic simulation of a replicated cluster (quinn-style): 3–5
//! [`Machine`]s over [`MemLog`]s, a virtual clock, and a network that delays,
//! drops, duplicates and reorders messages, partitions and heals, and
//! crashes and restarts nodes (a restarted machine is rebuilt from its
//! persisted role and epoch and its log). Random writes go to whichever node
//! believes it is primary; now and then the primary is cut off or crashed and
//! an up-to-date replica is promoted.
//!
//! After healing and quiescence, for every seed:
//! (a) every node holds the current primary's data and log position, and
//!     follows it at its epoch;
//! (b) without a promotion, every write the primary acknowledged is there;
//! (c) writes a fenced (old-epoch) primary acknowledged after a promotion are
//!     nowhere; writes the final primary acknowledged in its epoch are
//!     everywhere;
//! (d) at most one node is ever primary in an epoch.
//!
//! `REPL_SIM_SEEDS=n` runs seeds 0..n (default 150); `REPL_SIM_SEED=s` runs
//! one seed; `REPL_SIM_TRACE=1` prints every event and action. A failure
//! (an error or a panic) names its seed. The randomness is [`SimRng`]
//! (SplitMix64, written out below), not `rand`'s `StdRng`, whose algorithm
//! may change with a dependency update: a recorded seed replays the same run
//! as long as [`SIM_RNG`] stays the same.

use std::collections::{BTreeMap, BTreeSet};

use radmfa_store::repl::{Action, Event, Machine, MemLog, Msg, NodeId, Op, ReplLog, Role, Timing};

/// The PRNG and its version, printed with a failing seed. Change the
/// generator or how ranges are drawn only together with this version.
const SIM_RNG: &str = "splitmix64 v1";

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", 2014; the seeding generator of xoshiro): small, fast, and
/// fixed here so runs do not depend on the `rand` crate's version.
struct SimRng(u64);

impl SimRng {
    fn seed_from_u64(seed: u64) -> SimRng {
        SimRng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits.
    fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn random_bool(&mut self, p: f64) -> bool {
        self.random() < p
    }

    /// Uniform in [0, n) by multiply-shift (Lemire); the bias, below
    /// n / 2^64, does not matter here, determinism does.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn random_range<T, R: SimRange<T>>(&mut self, range: R) -> T {
        range.sample(self)
    }
}

/// A range [`SimRng::random_range`] draws from.
trait SimRange<T> {
    fn sample(self, rng: &mut SimRng) -> T;
}

impl SimRange<f64> for std::ops::Range<f64> {
    fn sample(self, rng: &mut SimRng) -> f64 {
        self.start + (self.end - self.start) * rng.random()
    }
}

macro_rules! int_ranges {
    ($($t:ty),*) => {$(
        impl SimRange<$t> for std::ops::Range<$t> {
            fn sample(self, rng: &mut SimRng) -> $t {
                assert!(self.start < self.end, "empty range");
                let span = (self.end - self.start) as u64;
                self.start + rng.below(span) as $t
            }
        }
        impl SimRange<$t> for std::ops::RangeInclusive<$t> {
            fn sample(self, rng: &mut SimRng) -> $t {
                let (start, end) = self.into_inner();
                assert!(start <= end, "empty range");
                let span = (end - start) as u64 + 1;
                start + rng.below(span) as $t
            }
        }
    )*};
}
int_ranges!(u8, u16, u32, u64, usize);

#[test]
fn sim_rng_is_splitmix64() {
    // Reference outputs of SplitMix64 from seed 0 (the published C code).
    let mut r = SimRng::seed_from_u64(0);
    assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
    assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
}

const TICK_MS: u64 = 50;
const CHAOS_MS: u64 = 30_000;
const QUIESCE_LIMIT_MS: u64 = 90_000;

type Key = (u8, Vec<u8>);

#[derive(Debug)]
enum SimEv {
    Tick(NodeId),
    Chaos,
    Deliver {
        from: NodeId,
        to: NodeId,
        link: u64,
        msg: Msg,
    },
    Establish {
        from: NodeId,
        to: NodeId,
    },
    Notify {
        to: NodeId,
        ev: Event,
    },
}

struct Node {
    machine: Option<Machine>,
    log: MemLog,
    persisted: (Role, u64),
}

#[derive(Debug)]
struct Ack {
    node: NodeId,
    epoch: u64,
    seq: u64,
    op: Op,
    /// Some node had a higher epoch when this was acknowledged.
    fenced: bool,
}

#[derive(Debug, Default)]
struct Stats {
    acks: usize,
    fenced_acks: usize,
    refused: usize,
    promotions: usize,
    snapshots: usize,
    messages: usize,
    crashes: usize,
}

struct Sim {
    rng: SimRng,
    timing: Timing,
    now: u64,
    counter: u64,
    queue: BTreeMap<(u64, u64), SimEv>,
    nodes: BTreeMap<NodeId, Node>,
    links: BTreeMap<(NodeId, NodeId), u64>,
    next_link: u64,
    side: BTreeMap<NodeId, u8>,
    p_drop: f64,
    p_dup: f64,
    max_delay: u64,
    chaos: bool,
    allow_promote: bool,
    primaries: BTreeMap<u64, BTreeSet<NodeId>>,
    acks: Vec<Ack>,
    put_keys: Vec<Key>,
    next_key: u64,
    stats: Stats,
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = SimRng::seed_from_u64(seed);
        let n: NodeId = rng.random_range(3..=5);
        // Half the seeds send snapshots in parts of a few entries, so parts
        // meet loss, reordering, crashes and promotions too.
        let timing = Timing {
            snapshot_part_bytes: if seed % 2 == 1 { 24 } else { 1 << 20 },
            ..Timing::default()
        };
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut nodes = BTreeMap::new();
        for &id in &ids {
            let persisted = if id == 1 {
                (Role::Primary, 1)
            } else {
                (Role::Replica { primary: None }, 0)
            };
            nodes.insert(
                id,
                Node {
                    machine: Some(Machine::with_timing(
                        id,
                        ids.clone(),
                        persisted.0,
                        persisted.1,
                        timing,
                    )),
                    log: MemLog::new(),
                    persisted,
                },
            );
        }
        let p_drop = rng.random_range(0.0..0.15);
        let p_dup = rng.random_range(0.0..0.1);
        let max_delay = rng.random_range(2..=60);
        let allow_promote = rng.random_bool(0.6);
        let mut sim = Sim {
            rng,
            timing,
            now: 0,
            counter: 0,
            queue: BTreeMap::new(),
            nodes,
            links: BTreeMap::new(),
            next_link: 0,
            side: ids.iter().map(|&id| (id, 0)).collect(),
            p_drop,
            p_dup,
            max_delay,
            chaos: true,
            allow_promote,
            primaries: BTreeMap::from([(1, BTreeSet::from([1]))]),
            acks: Vec::new(),
            put_keys: Vec::new(),
            next_key: 0,
            stats: Stats::default(),
        };
        for &id in &ids {
            let offset = u64::from(id) * 7 % TICK_MS;
            sim.at(offset, SimEv::Tick(id));
        }
        sim.at(500, SimEv::Chaos);
        sim
    }

    fn at(&mut self, delay: u64, ev: SimEv) {
        self.counter += 1;
        self.queue.insert((self.now + delay, self.counter), ev);
    }

    fn delay(&mut self) -> u64 {
        self.rng.random_range(1..=self.max_delay)
    }

    fn up(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.machine.is_some())
    }

    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        self.up(a) && self.up(b) && self.side.get(&a) == self.side.get(&b)
    }

    /// Highest epoch any node has (or persisted while down).
    fn max_epoch(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| {
                n.machine
                    .as_ref()
                    .map_or(n.persisted.1, |m| m.epoch().max(n.persisted.1))
            })
            .max()
            .unwrap_or(0)
    }

    fn handle(&mut self, id: NodeId, ev: Event) -> Result<(), String> {
        let now = self.now;
        if !self.up(id) {
            return Ok(());
        }
        let write = match &ev {
            Event::Write(op) => Some(op.clone()),
            _ => None,
        };
        let max_before = self.max_epoch_excluding(id);
        let node = self.nodes.get_mut(&id).ok_or("node vanished")?;
        let machine = node.machine.as_mut().ok_or("machine vanished")?;
        let trace = std::env::var_os("REPL_SIM_TRACE").is_some();
        if trace && !matches!(ev, Event::Tick) {
            println!("{now} n{id} <- {ev:?} log {:?}", node.log.last());
        }
        let actions = machine.handle(now, ev, &mut node.log);
        if trace {
            for a in &actions {
                println!("{now} n{id} -> {a:?}");
            }
        }
        let epoch = machine.epoch();
        for a in actions {
            match a {
                Action::Persist { role, epoch } => {
                    self.nodes.get_mut(&id).ok_or("node vanished")?.persisted = (role, epoch);
                    if role == Role::Primary {
                        let set = self.primaries.entry(epoch).or_default();
                        set.insert(id);
                        if set.len() > 1 {
                            return Err(format!("(d) two primaries in epoch {epoch}: {set:?}"));
                        }
                    }
                }
                Action::WriteDone(Ok(seq)) => {
                    let op = write.clone().ok_or("WriteDone without a write")?;
                    let fenced = max_before > epoch;
                    self.stats.acks += 1;
                    if fenced {
                        self.stats.fenced_acks += 1;
                    }
                    if let Op::Put { tree, key, .. } = &op {
                        self.put_keys.push((*tree, key.clone()));
                    }
                    self.acks.push(Ack {
                        node: id,
                        epoch,
                        seq,
                        op,
                        fenced,
                    });
                }
                Action::WriteDone(Err(_)) => self.stats.refused += 1,
                Action::Send(to, msg) => {
                    self.stats.messages += 1;
                    if matches!(msg, Msg::Snapshot { .. }) {
                        self.stats.snapshots += 1;
                    }
                    let Some(&link) = self.links.get(&pair(id, to)) else {
                        continue; // No connection: dropped, the machine retries.
                    };
                    if self.rng.random_bool(self.p_drop) {
                        continue;
                    }
                    if self.rng.random_bool(self.p_dup) {
                        let d = self.delay();
                        let msg = msg.clone();
                        self.at(
                            d,
                            SimEv::Deliver {
                                from: id,
                                to,
                                link,
                                msg,
                            },
                        );
                    }
                    let d = self.delay();
                    self.at(
                        d,
                        SimEv::Deliver {
                            from: id,
                            to,
                            link,
                            msg,
                        },
                    );
                }
                Action::Connect(to) => {
                    let d = self.delay();
                    self.at(d, SimEv::Establish { from: id, to });
                }
                Action::Disconnect(to) => {
                    if self.links.remove(&pair(id, to)).is_some() {
                        let d = self.delay();
                        self.at(
                            d,
                            SimEv::Notify {
                                to,
                                ev: Event::Disconnected(id),
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn max_epoch_excluding(&self, id: NodeId) -> u64 {
        self.nodes
            .iter()
            .filter(|(&n, _)| n != id)
            .map(|(_, n)| {
                n.machine
                    .as_ref()
                    .map_or(n.persisted.1, |m| m.epoch().max(n.persisted.1))
            })
            .max()
            .unwrap_or(0)
    }

    /// Drop links that no longer connect reachable nodes; each end hears of
    /// it after a while, or never (half-open: heartbeats must notice).
    fn cut_links(&mut self) {
        let dead: Vec<(NodeId, NodeId)> = self
            .links
            .keys()
            .copied()
            .filter(|&(a, b)| !self.reachable(a, b))
            .collect();
        for (a, b) in dead {
            self.links.remove(&(a, b));
            for (to, other) in [(a, b), (b, a)] {
                if self.rng.random_bool(0.5) {
                    let d = self.delay();
                    self.at(
                        d,
                        SimEv::Notify {
                            to,
                            ev: Event::Disconnected(other),
                        },
                    );
                }
            }
        }
    }

    fn crash(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(&id) {
            if n.machine.take().is_some() {
                self.stats.crashes += 1;
            }
        }
        self.cut_links();
    }

    fn restart(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        if let Some(n) = self.nodes.get_mut(&id) {
            if n.machine.is_none() {
                n.log.reopen();
                n.machine = Some(Machine::with_timing(
                    id,
                    ids,
                    n.persisted.0,
                    n.persisted.1,
                    self.timing,
                ));
            }
        }
    }

    fn heal(&mut self) {
        for s in self.side.values_mut() {
            *s = 0;
        }
    }

    fn random_node(&mut self) -> NodeId {
        let n = self.nodes.len() as NodeId;
        self.rng.random_range(1..=n)
    }

    /// The node that is primary at the highest epoch, if up.
    fn current_primary(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| n.machine.as_ref().map(|m| (id, m)))
            .filter(|(_, m)| m.role() == Role::Primary)
            .max_by_key(|(_, m)| m.epoch())
            .map(|(id, _)| id)
    }

    fn write(&mut self) -> Result<(), String> {
        // Mostly at a node that believes it is primary, fenced or not.
        let primaries: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| {
                n.machine
                    .as_ref()
                    .is_some_and(|m| m.role() == Role::Primary)
            })
            .map(|(&id, _)| id)
            .collect();
        let target = if !primaries.is_empty() && self.rng.random_bool(0.85) {
            primaries[self.rng.random_range(0..primaries.len())]
        } else {
            self.random_node()
        };
        let op = if !self.put_keys.is_empty() && self.rng.random_bool(0.15) {
            let (tree, key) = self.put_keys[self.rng.random_range(0..self.put_keys.len())].clone();
            Op::Remove { tree, key }
        } else {
            self.next_key += 1;
            Op::Put {
                tree: self.rng.random_range(1..=2),
                key: format!("k{}", self.next_key).into_bytes(),
                value: format!("v{}", self.next_key).into_bytes(),
            }
        };
        self.handle(target, Event::Write(op))
    }

    fn promote(&mut self) -> Result<(), String> {
        let Some(old) = self.current_primary() else {
            return Ok(());
        };
        // The old primary is cut off or crashed first.
        if self.rng.random_bool(0.5) {
            self.crash(old);
        } else {
            for (&id, s) in self.side.iter_mut() {
                *s = u8::from(id == old);
            }
            self.cut_links();
        }
        // The operator promotes an up replica that knows the latest epoch and
        // is synced with its primary (`radmfa status` shows both). Two
        // promotions from one epoch are the same-epoch conflict, and an
        // unsynced node may hold fenced writes: neither is what this
        // property test is about.
        let max = self.max_epoch();
        let candidates: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(&id, n)| {
                id != old
                    && n.machine.as_ref().is_some_and(|m| {
                        m.role() != Role::Primary && m.status().synced && m.epoch() == max
                    })
            })
            .map(|(&id, _)| id)
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let chosen = candidates[self.rng.random_range(0..candidates.len())];
        self.stats.promotions += 1;
        self.handle(chosen, Event::Promote)
    }

    fn chaos(&mut self) -> Result<(), String> {
        let r: f64 = self.rng.random();
        if r < 0.55 {
            self.write()?;
        } else if r < 0.60 {
            // A random split into two sides.
            for id in self.nodes.keys().copied().collect::<Vec<_>>() {
                let s = u8::from(self.rng.random_bool(0.5));
                self.side.insert(id, s);
            }
            self.cut_links();
        } else if r < 0.70 {
            self.heal();
        } else if r < 0.73 {
            let id = self.random_node();
            self.crash(id);
        } else if r < 0.83 {
            let id = self.random_node();
            self.restart(id);
        } else if r < 0.88 {
            let id = self.random_node();
            let keep = self.rng.random_range(0..20);
            let n = self.nodes.get_mut(&id).ok_or("no node")?;
            let upto = n.log.last().0.saturating_sub(keep);
            n.log.trim(upto);
        } else if r < 0.90 && self.allow_promote {
            self.promote()?;
        }
        Ok(())
    }

    fn step(&mut self) -> Result<bool, String> {
        let Some(((t, _), ev)) = self.queue.pop_first() else {
            return Ok(false);
        };
        self.now = t;
        match ev {
            SimEv::Tick(id) => {
                self.handle(id, Event::Tick)?;
                self.at(TICK_MS, SimEv::Tick(id));
            }
            SimEv::Chaos => {
                if self.chaos {
                    self.chaos()?;
                    let d = self.rng.random_range(20..400);
                    self.at(d, SimEv::Chaos);
                }
            }
            SimEv::Deliver {
                from,
                to,
                link,
                msg,
            } => {
                if self.links.get(&pair(from, to)) == Some(&link) {
                    self.handle(to, Event::Received(from, msg))?;
                }
            }
            SimEv::Establish { from, to } => {
                if !self.up(from) {
                } else if !self.reachable(from, to) {
                    self.handle(from, Event::Disconnected(to))?;
                } else if self.links.contains_key(&pair(from, to)) {
                    self.handle(from, Event::Connected(to))?;
                } else {
                    self.next_link += 1;
                    self.links.insert(pair(from, to), self.next_link);
                    self.handle(from, Event::Connected(to))?;
                    self.handle(to, Event::Connected(from))?;
                }
            }
            SimEv::Notify { to, ev } => self.handle(to, ev)?,
        }
        Ok(true)
    }

    fn run_until(&mut self, end: u64) -> Result<(), String> {
        while self
            .queue
            .first_key_value()
            .is_some_and(|((t, _), _)| *t <= end)
        {
            self.step()?;
        }
        self.now = end;
        Ok(())
    }

    fn converged(&self) -> Option<NodeId> {
        let p = self.current_primary()?;
        let pn = self.nodes.get(&p)?;
        let pm = pn.machine.as_ref()?;
        let ok = self.nodes.iter().all(|(&id, n)| {
            let Some(m) = n.machine.as_ref() else {
                return false;
            };
            let role_ok = id == p || m.role() == (Role::Replica { primary: Some(p) });
            role_ok
                && m.epoch() == pm.epoch()
                && n.log.last() == pn.log.last()
                && n.log.data() == pn.log.data()
        });
        ok.then_some(p)
    }

    fn describe(&self) -> String {
        self.nodes
            .iter()
            .map(|(id, n)| match n.machine.as_ref() {
                Some(m) => format!(
                    "node {id}: {:?} epoch {} log {:?} keys {}",
                    m.role(),
                    m.epoch(),
                    n.log.last(),
                    n.log.data().len()
                ),
                None => format!("node {id}: down"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn run(seed: u64) -> Result<Stats, String> {
    let mut sim = Sim::new(seed);
    sim.run_until(CHAOS_MS)?;

    // Heal, restart everything, stop the chaos (the network still drops,
    // duplicates and reorders), and wait for quiescence.
    sim.chaos = false;
    sim.heal();
    for id in sim.nodes.keys().copied().collect::<Vec<_>>() {
        sim.restart(id);
    }
    let mut primary = None;
    let mut t = sim.now;
    while primary.is_none() && t < CHAOS_MS + QUIESCE_LIMIT_MS {
        t += 1_000;
        sim.run_until(t)?;
        primary = sim.converged();
    }
    // (a) everyone holds the current primary's data and follows it.
    let Some(p) = primary else {
        return Err(format!("(a) no convergence: {}", sim.describe()));
    };
    // Stay converged: more time changes nothing.
    sim.run_until(t + 5_000)?;
    if sim.converged() != Some(p) {
        return Err(format!("(a) convergence did not last: {}", sim.describe()));
    }
    let pn = sim.nodes.get(&p).ok_or("primary vanished")?;
    let final_epoch = pn.machine.as_ref().ok_or("primary down")?.epoch();
    let data = pn.log.data();

    let present = |k: &Key| sim.nodes.values().any(|n| n.log.data().contains_key(k));
    let key_of = |op: &Op| (op.tree(), op.key().to_vec());

    // (b) without a promotion, the primary's acknowledged writes are the data.
    if sim.stats.promotions == 0 {
        let mut acked: Vec<&Ack> = sim.acks.iter().collect();
        if let Some(a) = acked.iter().find(|a| a.node != p || a.fenced) {
            return Err(format!("(b) unexpected ack without promotion: {a:?}"));
        }
        acked.sort_by_key(|a| a.seq);
        let mut model = BTreeMap::new();
        for a in acked {
            match &a.op {
                Op::Put { tree, key, value } => {
                    model.insert((*tree, key.clone()), value.clone());
                }
                Op::Remove { tree, key } => {
                    model.remove(&(*tree, key.clone()));
                }
            }
        }
        if &model != data {
            return Err(format!(
                "(b) acknowledged writes lost: model {} keys, primary {} keys",
                model.len(),
                data.len()
            ));
        }
    }

    // (c) fenced acknowledgements are nowhere...
    for a in sim.acks.iter().filter(|a| a.fenced) {
        if let Op::Put { .. } = a.op {
            if present(&key_of(&a.op)) {
                return Err(format!("(c) fenced write present: {a:?}"));
            }
        }
    }
    // ...and the final primary's acknowledgements in its epoch are everywhere.
    let mut last_op: BTreeMap<Key, &Ack> = BTreeMap::new();
    for a in sim
        .acks
        .iter()
        .filter(|a| a.node == p && a.epoch == final_epoch)
    {
        let k = key_of(&a.op);
        if last_op.get(&k).is_none_or(|b| b.seq < a.seq) {
            last_op.insert(k, a);
        }
    }
    for (k, a) in last_op {
        let expect = match &a.op {
            Op::Put { value, .. } => Some(value),
            Op::Remove { .. } => None,
        };
        if data.get(&k) != expect {
            return Err(format!("(c) final primary's write missing: {a:?}"));
        }
    }
    Ok(sim.stats)
}

/// Seed 37 (found when the simulator moved to [`SimRng`]) once failed: a
/// replica installed a snapshot in parts while the primary went on writing,
/// so its copy held writes past the snapshot's position; a promotion fenced
/// them before the replica had replayed that far, and it kept them on top of
/// the new primary's log. A fuzzy copy is now dropped when the epoch changes
/// before it settled (`Machine::drop_fuzzy_copy`); the seed stays in the
/// sweep, and the machine's unit test
/// `a_fuzzy_copy_is_dropped_when_the_epoch_changes_before_it_settled`
/// replays the same story step by step.
#[test]
fn simulated_cluster_converges_and_fences() {
    let seeds: Vec<u64> = match std::env::var("REPL_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("REPL_SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("REPL_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(150);
            (0..n).collect()
        }
    };
    let mut total = Stats::default();
    let mut failures = Vec::new();
    for &seed in &seeds {
        // A panic inside a machine or the simulator names its seed too.
        let outcome = std::panic::catch_unwind(|| run(seed)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        });
        match outcome {
            Ok(s) => {
                total.acks += s.acks;
                total.fenced_acks += s.fenced_acks;
                total.refused += s.refused;
                total.promotions += s.promotions;
                total.snapshots += s.snapshots;
                total.messages += s.messages;
                total.crashes += s.crashes;
            }
            Err(e) => failures.push(format!(
                "seed {seed}: {e} (rerun: REPL_SIM_SEED={seed}; PRNG {SIM_RNG})"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{} seeds: {total:?}", seeds.len());
    // The runs must exercise what the properties are about.
    if seeds.len() >= 50 {
        assert!(total.promotions > 0 && total.fenced_acks > 0, "{total:?}");
        assert!(
            total.snapshots > 0 && total.refused > 0 && total.crashes > 0,
            "{total:?}"
        );
    }
}
