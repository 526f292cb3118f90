//! The load engine: worker threads, each owning a few connected UDP sockets, that keep a
//! window of transactions in flight (closed loop) or start them at a fixed rate (open loop),
//! match replies by (socket, identifier), verify them, and retransmit on timeout.
//!
//! Workers busy-poll their non-blocking sockets: the load generator is meant to own a CPU
//! (`taskset`), and polling keeps latency measurement precise to a microsecond or so, where
//! socket read timeouts would round to scheduler ticks.
//!
//! The SMS scenario reads each code back from the gateway simulator over HTTPS; that is
//! done by the fetch threads of [`crate::sms`], so a worker never blocks on HTTP.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use radmfa_otp::Totp;
use radmfa_radius::{AttrType, Attribute, Code, Packet};
use socket2::SockRef;

use crate::sms::{FetchJob, FetchPool, Fetched, SmsOptions};
use crate::stats::Stats;
use crate::users::{Needs, User};

/// Which authentication flow a transaction performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One Access-Request, User-Password = password followed by the TOTP code; expects Accept.
    Inline,
    /// Access-Request (password) -> Access-Challenge with State -> Access-Request (State,
    /// code) -> Accept. Latency covers both legs.
    Challenge,
    /// One-way SMS: Access-Request (password) -> Access-Challenge with State (the server
    /// has sent the code through the gateway) -> the code is read from the gateway
    /// simulator -> Access-Request (State, code) -> Accept. Latency covers the whole login.
    Sms,
}

impl Scenario {
    /// Lower-case name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Inline => "inline",
            Scenario::Challenge => "challenge",
            Scenario::Sms => "sms",
        }
    }

    /// What every user needs for this flow.
    pub fn needs(self) -> Needs {
        match self {
            Scenario::Inline | Scenario::Challenge => Needs::Totp,
            Scenario::Sms => Needs::Phone,
        }
    }
}

/// Shared secret; `Debug` does not print it.
#[derive(Clone)]
pub struct SharedSecret(pub Vec<u8>);

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Run parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server address.
    pub server: SocketAddr,
    /// RADIUS shared secret.
    pub secret: SharedSecret,
    /// Flow to run.
    pub scenario: Scenario,
    /// Traffic before measuring (not counted).
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// Transactions in flight (split over threads).
    pub outstanding: usize,
    /// UDP sockets (split over threads); each gives 256 identifiers.
    pub sockets: usize,
    /// Requests in flight per socket at most (1..=256). A UDP balancer that keeps a
    /// session per source address (nginx `stream`) sends every request of a busy socket
    /// to the same server; with 1, each request opens its own session.
    pub per_socket: usize,
    /// Worker threads.
    pub threads: usize,
    /// Retransmission timeout.
    pub timeout: Duration,
    /// Retransmissions before a transaction counts as timed out.
    pub retries: u32,
    /// Target transaction rate (open loop); `None` = as fast as the window allows.
    pub rate: Option<f64>,
    /// Log every user in exactly once, then stop (cache warm-up); everything is measured.
    pub one_pass: bool,
    /// NAS-Identifier sent in every request.
    pub nas_identifier: String,
    /// Where the SMS codes are read (SMS scenario only).
    pub sms: Option<SmsOptions>,
}

impl Config {
    /// Checks the combination of parameters.
    pub fn validate(&self, users: usize) -> Result<()> {
        if self.threads == 0 || self.sockets == 0 || self.outstanding == 0 {
            bail!("--threads, --sockets and --outstanding must be at least 1");
        }
        if self.sockets < self.threads {
            bail!("--sockets must be at least --threads");
        }
        if !(1..=256).contains(&self.per_socket) {
            bail!("--per-socket must be between 1 and 256");
        }
        if users < self.threads {
            bail!("need at least one user per thread");
        }
        for t in 0..self.threads {
            let window = share(self.outstanding, self.threads, t);
            let socks = share(self.sockets, self.threads, t);
            if window > socks * self.per_socket {
                bail!(
                    "--outstanding {} needs more requests in flight than --sockets {} x --per-socket {} allow",
                    self.outstanding,
                    self.sockets,
                    self.per_socket
                );
            }
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                bail!("--rate must be a positive number");
            }
        }
        if self.timeout.is_zero() {
            bail!("--timeout-ms must be at least 1");
        }
        Ok(())
    }
}

/// Part `t` of `total` split as evenly as possible over `parts`.
fn share(total: usize, parts: usize, t: usize) -> usize {
    total / parts + usize::from(t < total % parts)
}

/// Result of a run.
#[derive(Debug)]
pub struct Outcome {
    /// Merged counters and latency samples.
    pub stats: Stats,
    /// Length of the measured window.
    pub measured: Duration,
    /// Loadgen CPU use during the measured window (1.0 = one core).
    pub cpu: Option<f64>,
}

/// TOTP period assumed by the code cache (`Totp::default()` uses 30 s steps).
const TOTP_PERIOD: u64 = 30;

/// What a worker hands the fetch pool with a job: the transaction and the State of the
/// Access-Challenge to answer.
type FetchTag = (Txn, Vec<u8>);

/// Runs the load and returns the merged statistics.
pub fn run(cfg: &Config, users: Arc<Vec<User>>) -> Result<Outcome> {
    cfg.validate(users.len())?;
    crate::users::require(&users, cfg.scenario.needs())?;
    let fetch = match (&cfg.sms, cfg.scenario) {
        (Some(opts), Scenario::Sms) => Some(FetchPool::start::<FetchTag>(opts)?),
        (None, Scenario::Sms) => bail!("the sms scenario needs --sim-url, --sim-key and --sim-ca"),
        _ => None,
    };
    run_with(cfg, users, fetch)
}

/// [`run`] with the SMS fetch pool given (tests put a fake in its place).
fn run_with(
    cfg: &Config,
    users: Arc<Vec<User>>,
    fetch: Option<Sender<FetchJob<FetchTag>>>,
) -> Result<Outcome> {
    cfg.validate(users.len())?;
    if cfg.scenario == Scenario::Sms && fetch.is_none() {
        bail!("the sms scenario needs the fetch pool");
    }
    let mut per_thread_socks: Vec<Vec<UdpSocket>> = (0..cfg.threads).map(|_| Vec::new()).collect();
    for i in 0..cfg.sockets {
        let sock = open_socket(cfg.server)?;
        if let Some(v) = per_thread_socks.get_mut(i % cfg.threads) {
            v.push(sock);
        }
    }

    let start = Instant::now();
    let (measure_from, measure_to) = if cfg.one_pass {
        (start, start + Duration::from_secs(365 * 24 * 3600))
    } else {
        (start + cfg.warmup, start + cfg.warmup + cfg.duration)
    };
    let abort = Arc::new(AtomicBool::new(false));

    let mut handles = Vec::with_capacity(cfg.threads);
    for (t, socks) in per_thread_socks.into_iter().enumerate() {
        let users = Arc::clone(&users);
        let cfg = cfg.clone();
        let abort = Arc::clone(&abort);
        let jobs = fetch.clone();
        let handle = thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || -> Result<Stats> {
                let mut w = Worker::new(&cfg, &users, socks, t, start, measure_from, measure_to);
                w.fetch = jobs.map(|jobs| {
                    let (reply, answers) = mpsc::channel();
                    FetchLink {
                        jobs,
                        reply,
                        answers,
                    }
                });
                let res = w.run(&abort);
                if res.is_err() {
                    abort.store(true, Ordering::Relaxed);
                }
                res.map(|()| w.stats)
            })
            .context("spawning worker thread")?;
        handles.push(handle);
    }

    // Sample our own CPU time across the measured window.
    let mut cpu = None;
    if !cfg.one_pass {
        sleep_until(measure_from);
        let t0 = Instant::now();
        let c0 = process_cpu_ns();
        sleep_until(measure_to);
        let c1 = process_cpu_ns();
        if let (Some(c0), Some(c1)) = (c0, c1) {
            let wall = t0.elapsed().as_nanos() as f64;
            if wall > 0.0 {
                cpu = Some(c1.saturating_sub(c0) as f64 / wall);
            }
        }
    }

    // The workers hold the only other senders: once they are done the fetch threads stop.
    drop(fetch);
    let mut stats = Stats::default();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => stats.merge(s),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(anyhow!("worker thread panicked"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let measured = if cfg.one_pass {
        start.elapsed()
    } else {
        cfg.duration
    };
    Ok(Outcome {
        stats,
        measured,
        cpu,
    })
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

/// Sum of on-CPU nanoseconds of all our threads (from /proc/self/task/*/schedstat).
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path().join("schedstat");
        let Ok(text) = std::fs::read_to_string(path) else {
            continue; // thread exited meanwhile
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

fn open_socket(server: SocketAddr) -> Result<UdpSocket> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let sock = UdpSocket::bind(bind).context("binding client socket")?;
    sock.connect(server)
        .with_context(|| format!("connecting to {server}"))?;
    sock.set_nonblocking(true)?;
    let sref = SockRef::from(&sock);
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = sref.set_recv_buffer_size(4 << 20);
    let _ = sref.set_send_buffer_size(4 << 20);
    Ok(sock)
}

/// A transaction: one user's login, one or two round trips.
#[derive(Debug, Clone, Copy)]
struct Txn {
    user: usize,
    /// Start for latency: first send (closed loop) or scheduled send time (open loop).
    start: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    /// Password + code in one request.
    Inline,
    /// Challenge scenario, first request: password only.
    Password,
    /// Challenge scenario, second request: State + code.
    Code,
}

/// A request waiting for its reply.
struct Pending {
    txn: Txn,
    leg: Leg,
    packet: Vec<u8>,
    authenticator: [u8; 16],
    /// Last transmission (for the retransmission timer).
    sent: Instant,
    /// First transmission (for the per-leg latency).
    first_sent: Instant,
    tries: u32,
}

struct Sock {
    udp: UdpSocket,
    pending: Vec<Option<Pending>>,
    /// Free identifiers, reused first-in first-out so an identifier is reused as late as possible.
    free: VecDeque<u8>,
}

impl Sock {
    /// Requests waiting for a reply on this socket.
    fn in_use(&self) -> usize {
        256 - self.free.len()
    }
}

/// A worker's side of the SMS fetch pool.
struct FetchLink {
    jobs: Sender<FetchJob<FetchTag>>,
    /// Cloned into every job; the answers come back on `answers`.
    reply: Sender<Fetched<FetchTag>>,
    answers: Receiver<Fetched<FetchTag>>,
}

/// SMS scenario: a code fetched, the second leg waiting for a socket with room.
struct ReadyLeg {
    txn: Txn,
    state: Vec<u8>,
    code: String,
}

/// Fetch errors printed to stderr at most (the count is in the report).
const FETCH_ERRORS_SHOWN: u32 = 3;

impl Sock {
    fn new(udp: UdpSocket) -> Sock {
        Sock {
            udp,
            pending: (0..256).map(|_| None).collect(),
            free: (0..=255u8).collect(),
        }
    }
}

enum Finish {
    Accept,
    Reject,
    Other,
    /// SMS scenario: the code could not be read from the simulator.
    NoSms,
}

struct Worker<'a> {
    cfg: &'a Config,
    users: &'a [User],
    socks: Vec<Sock>,
    next_sock: usize,
    window: usize,
    inflight: usize,
    /// Users this worker logs in (indices into `users`), cycled.
    my_users: Vec<usize>,
    cursor: usize,
    /// One-pass mode: users not started yet.
    remaining: usize,
    /// (TOTP step, code) per user.
    codes: Vec<Option<(u64, String)>>,
    /// SMS scenario: users with a transaction under way (one login per user at a time,
    /// so the newest SMS to a phone is the one of its current challenge).
    busy: Vec<bool>,
    /// SMS scenario: simulator sequence number of the last SMS read per user.
    last_seq: Vec<u64>,
    fetch: Option<FetchLink>,
    ready: VecDeque<ReadyLeg>,
    fetch_errors_shown: u32,
    totp: Totp,
    start: Instant,
    measure_from: Instant,
    measure_to: Instant,
    stats: Stats,
}

impl<'a> Worker<'a> {
    fn new(
        cfg: &'a Config,
        users: &'a [User],
        socks: Vec<UdpSocket>,
        t: usize,
        start: Instant,
        measure_from: Instant,
        measure_to: Instant,
    ) -> Worker<'a> {
        let my_users: Vec<usize> = (t..users.len()).step_by(cfg.threads).collect();
        Worker {
            cfg,
            users,
            socks: socks.into_iter().map(Sock::new).collect(),
            next_sock: 0,
            window: share(cfg.outstanding, cfg.threads, t),
            inflight: 0,
            remaining: my_users.len(),
            my_users,
            cursor: 0,
            codes: vec![None; users.len()],
            busy: vec![false; users.len()],
            last_seq: vec![0; users.len()],
            fetch: None,
            ready: VecDeque::new(),
            fetch_errors_shown: 0,
            totp: Totp::default(),
            start,
            measure_from,
            measure_to,
            stats: Stats::default(),
        }
    }

    fn in_window(&self, t: Instant) -> bool {
        t >= self.measure_from && t < self.measure_to
    }

    fn run(&mut self, abort: &AtomicBool) -> Result<()> {
        let interval = self
            .cfg
            .rate
            .map(|r| Duration::from_secs_f64(self.cfg.threads as f64 / r));
        let mut next_send = self.start;
        let mut next_scan = self.start;
        let mut drain_deadline: Option<Instant> = None;
        let mut rx = vec![0u8; 4096];
        loop {
            if abort.load(Ordering::Relaxed) {
                return Ok(());
            }
            let now = Instant::now();
            let loop_start = now;
            let sending = if self.cfg.one_pass {
                self.remaining > 0
            } else {
                now < self.measure_to
            };
            if !sending {
                if self.inflight == 0 {
                    return Ok(());
                }
                let deadline = *drain_deadline
                    .get_or_insert_with(|| now + self.cfg.timeout.min(Duration::from_secs(2)));
                if now >= deadline {
                    return Ok(());
                }
            }

            let mut progressed = false;
            for s in 0..self.socks.len() {
                for _ in 0..64 {
                    let res = match self.socks.get(s) {
                        Some(sock) => sock.udp.recv(&mut rx),
                        None => break,
                    };
                    match res {
                        Ok(n) => {
                            progressed = true;
                            let data = rx.get(..n).unwrap_or_default();
                            self.on_reply(s, data)?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            // ECONNREFUSED from an ICMP error and the like.
                            if self.in_window(Instant::now()) {
                                self.stats.socket_errors += 1;
                            }
                            break;
                        }
                    }
                }
            }

            if self.poll_fetched()? {
                progressed = true;
            }

            if sending {
                while self.inflight < self.window && (!self.cfg.one_pass || self.remaining > 0) {
                    let now = Instant::now();
                    let start = match interval {
                        Some(iv) => {
                            if now < next_send {
                                break;
                            }
                            let s = next_send;
                            next_send += iv;
                            s
                        }
                        None => now,
                    };
                    if !self.start_txn(start)? {
                        break;
                    }
                    progressed = true;
                }
            }

            let now = Instant::now();
            if now >= next_scan {
                self.scan_timeouts(now)?;
                next_scan = now + Duration::from_millis(1);
            }

            if !progressed {
                if self.inflight == 0 && interval.is_some() && next_send > now {
                    let wait = next_send - now;
                    if wait > Duration::from_micros(200) {
                        thread::sleep(wait - Duration::from_micros(100));
                    }
                } else {
                    // Busy-poll, but let anything else runnable on this CPU go first.
                    thread::yield_now();
                }
                if self.in_window(loop_start) {
                    let idle = loop_start.elapsed().as_nanos();
                    self.stats.idle_ns += u64::try_from(idle).unwrap_or(u64::MAX);
                }
            }
        }
    }

    fn next_user(&mut self) -> Option<usize> {
        if self.cfg.one_pass {
            if self.remaining == 0 {
                return None;
            }
            self.remaining -= 1;
        }
        // SMS: skip users whose previous login is still under way (at most one lap).
        for _ in 0..self.my_users.len() {
            let u = *self.my_users.get(self.cursor)?;
            self.cursor += 1;
            if self.cursor >= self.my_users.len() {
                self.cursor = 0;
            }
            if self.cfg.scenario != Scenario::Sms || !self.busy.get(u).copied().unwrap_or(true) {
                return Some(u);
            }
        }
        None
    }

    /// Socket with a free identifier and room under `--per-socket`, round robin.
    fn pick_socket(&mut self) -> Option<usize> {
        let n = self.socks.len();
        let cap = self.cfg.per_socket;
        for k in 0..n {
            let s = (self.next_sock + k) % n;
            if self
                .socks
                .get(s)
                .is_some_and(|sock| !sock.free.is_empty() && sock.in_use() < cap)
            {
                self.next_sock = (s + 1) % n;
                return Some(s);
            }
        }
        None
    }

    /// SMS scenario: takes the fetch pool's answers and sends the second legs that have a
    /// code; a login whose SMS cannot be read ends as `sms_missing`. True if anything moved.
    fn poll_fetched(&mut self) -> Result<bool> {
        let mut progressed = false;
        while let Some(link) = &self.fetch {
            let fetched = match link.answers.try_recv() {
                Ok(f) => f,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => bail!("the SMS fetch threads are gone"),
            };
            progressed = true;
            let now = Instant::now();
            let (txn, state) = fetched.tag;
            match fetched.result {
                Ok((seq, code)) => {
                    if let Some(last) = self.last_seq.get_mut(txn.user) {
                        *last = seq;
                    }
                    if self.in_window(now) {
                        let ns = u64::try_from(fetched.took.as_nanos()).unwrap_or(u64::MAX);
                        self.stats.fetch_latencies_ns.push(ns);
                    }
                    self.ready.push_back(ReadyLeg { txn, state, code });
                }
                Err(e) => {
                    if self.fetch_errors_shown < FETCH_ERRORS_SHOWN {
                        self.fetch_errors_shown += 1;
                        eprintln!("radmfa-loadgen: reading the SMS code: {e}");
                    }
                    self.finish(txn, Finish::NoSms, now);
                }
            }
        }
        // In-flight requests never outnumber the socket capacity (checked by `validate`),
        // so a socket is normally free; otherwise the leg waits for the next round.
        while let Some(leg) = self.ready.pop_front() {
            let Some(s) = self.pick_socket() else {
                self.ready.push_front(leg);
                break;
            };
            progressed = true;
            self.send_leg(s, leg.txn, Leg::Code, Some(leg.state), Some(&leg.code))?;
        }
        Ok(progressed)
    }

    fn start_txn(&mut self, start: Instant) -> Result<bool> {
        let Some(sock) = self.pick_socket() else {
            return Ok(false);
        };
        let Some(user) = self.next_user() else {
            return Ok(false);
        };
        let leg = match self.cfg.scenario {
            Scenario::Inline => Leg::Inline,
            Scenario::Challenge | Scenario::Sms => Leg::Password,
        };
        self.inflight += 1;
        if let Some(b) = self.busy.get_mut(user) {
            *b = true;
        }
        self.send_leg(sock, Txn { user, start }, leg, None, None)?;
        Ok(true)
    }

    /// Current TOTP code of `user`, computed once per time step.
    fn code(&mut self, user: usize) -> Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs();
        let step = now / TOTP_PERIOD;
        if let Some(Some((s, code))) = self.codes.get(user) {
            if *s == step {
                return Ok(code.clone());
            }
        }
        let users: &'a [User] = self.users;
        let key = users
            .get(user)
            .ok_or_else(|| anyhow!("user index out of range"))?
            .totp_key
            .as_deref()
            .ok_or_else(|| anyhow!("user has no TOTP secret"))?;
        let code = self.totp.generate(key, now);
        if let Some(slot) = self.codes.get_mut(user) {
            *slot = Some((step, code.clone()));
        }
        Ok(code)
    }

    /// Sends the first transmission of a leg. `sms_code`: the code of an SMS login's
    /// second leg (otherwise the TOTP code is computed).
    fn send_leg(
        &mut self,
        s: usize,
        txn: Txn,
        leg: Leg,
        state: Option<Vec<u8>>,
        sms_code: Option<&str>,
    ) -> Result<()> {
        let users: &'a [User] = self.users;
        let user = users
            .get(txn.user)
            .ok_or_else(|| anyhow!("user index out of range"))?;
        let mut password: Vec<u8> = match leg {
            Leg::Inline | Leg::Password => user.password.as_bytes().to_vec(),
            Leg::Code => Vec::new(),
        };
        match (leg, sms_code) {
            (Leg::Password, _) => {}
            (Leg::Code, Some(code)) => password.extend_from_slice(code.as_bytes()),
            _ => password.extend_from_slice(self.code(txn.user)?.as_bytes()),
        }
        let sock = self
            .socks
            .get_mut(s)
            .ok_or_else(|| anyhow!("socket index out of range"))?;
        let id = sock
            .free
            .pop_front()
            .ok_or_else(|| anyhow!("no free RADIUS identifier"))?;
        let authenticator: [u8; 16] = rand::random();
        let secret = &self.cfg.secret.0;
        let hidden = radmfa_radius::hide_password(&password, secret, &authenticator)
            .map_err(|e| anyhow!("hiding User-Password: {e}"))?;
        let mut attrs = vec![
            Attribute::string(AttrType::USER_NAME, &user.name),
            Attribute::new(AttrType::USER_PASSWORD, hidden),
            Attribute::string(AttrType::NAS_IDENTIFIER, &self.cfg.nas_identifier),
        ];
        if let Some(state) = state {
            attrs.push(Attribute::new(AttrType::STATE, state));
        }
        let mut packet = Vec::with_capacity(128);
        radmfa_radius::encode_request_into(
            &mut packet,
            Code::ACCESS_REQUEST,
            id,
            &authenticator,
            &attrs,
            secret,
        )
        .map_err(|e| anyhow!("encoding Access-Request: {e}"))?;
        let now = Instant::now();
        let counted = now >= self.measure_from && now < self.measure_to;
        if sock.udp.send(&packet).is_err() && counted {
            // Lost like a dropped datagram; the retransmission timer recovers it.
            self.stats.socket_errors += 1;
        }
        if counted {
            self.stats.packets_sent += 1;
        }
        if leg == Leg::Code {
            // Warm-up and drain included: compared with the servers' own counters.
            self.stats.leg2_sent_all += 1;
        }
        if let Some(slot) = sock.pending.get_mut(usize::from(id)) {
            *slot = Some(Pending {
                txn,
                leg,
                packet,
                authenticator,
                sent: now,
                first_sent: now,
                tries: 0,
            });
        }
        Ok(())
    }

    fn on_reply(&mut self, s: usize, data: &[u8]) -> Result<()> {
        let now = Instant::now();
        let counted = self.in_window(now);
        let Some(sock) = self.socks.get_mut(s) else {
            return Ok(());
        };
        let Some(&id) = data.get(1) else {
            if counted {
                self.stats.bad_replies += 1;
            }
            return Ok(());
        };
        let Some(slot) = sock.pending.get_mut(usize::from(id)) else {
            return Ok(());
        };
        let Some(pending) = slot.take() else {
            if counted {
                self.stats.unmatched += 1;
            }
            return Ok(());
        };
        let verified =
            radmfa_radius::verify_response(data, &pending.authenticator, &self.cfg.secret.0, true)
                .is_ok();
        let packet = if verified {
            Packet::decode(data).ok()
        } else {
            None
        };
        let Some(packet) = packet else {
            // Forged or corrupt: keep waiting for the genuine reply.
            *slot = Some(pending);
            if counted {
                self.stats.bad_replies += 1;
            }
            return Ok(());
        };
        sock.free.push_back(id);

        let code = packet.code;
        if pending.leg == Leg::Code && counted {
            let ns = u64::try_from(now.saturating_duration_since(pending.first_sent).as_nanos())
                .unwrap_or(u64::MAX);
            self.stats.leg2_latencies_ns.push(ns);
        }
        if pending.leg == Leg::Password && code == Code::ACCESS_CHALLENGE {
            if counted {
                self.stats.challenges += 1;
            }
            match packet.attr(AttrType::STATE) {
                Some(state) => {
                    let state = state.value.clone();
                    if self.cfg.scenario == Scenario::Sms {
                        return self.request_code(pending.txn, state);
                    }
                    return self.send_leg(s, pending.txn, Leg::Code, Some(state), None);
                }
                None => self.finish(pending.txn, Finish::Other, now),
            }
        } else if code == Code::ACCESS_REJECT {
            self.finish(pending.txn, Finish::Reject, now);
        } else if code == Code::ACCESS_ACCEPT && pending.leg != Leg::Password {
            self.finish(pending.txn, Finish::Accept, now);
        } else {
            self.finish(pending.txn, Finish::Other, now);
        }
        Ok(())
    }

    /// SMS scenario: asks the fetch pool for the code of the challenge just received.
    fn request_code(&mut self, txn: Txn, state: Vec<u8>) -> Result<()> {
        let users: &'a [User] = self.users;
        let phone = users
            .get(txn.user)
            .and_then(|u| u.phone.clone())
            .ok_or_else(|| anyhow!("user without a phone in the sms scenario"))?;
        let after_seq = self.last_seq.get(txn.user).copied().unwrap_or(0);
        let link = self
            .fetch
            .as_ref()
            .ok_or_else(|| anyhow!("the sms scenario has no fetch pool"))?;
        link.jobs
            .send(FetchJob {
                tag: (txn, state),
                phone,
                after_seq,
                reply: link.reply.clone(),
            })
            .map_err(|_| anyhow!("the SMS fetch threads are gone"))
    }

    fn finish(&mut self, txn: Txn, how: Finish, now: Instant) {
        self.inflight = self.inflight.saturating_sub(1);
        if let Some(b) = self.busy.get_mut(txn.user) {
            *b = false;
        }
        if !self.in_window(now) {
            return;
        }
        let ns =
            u64::try_from(now.saturating_duration_since(txn.start).as_nanos()).unwrap_or(u64::MAX);
        match how {
            Finish::Accept => {
                self.stats.accept += 1;
                self.stats.accept_latencies_ns.push(ns);
            }
            Finish::Reject => self.stats.reject += 1,
            Finish::Other => self.stats.other += 1,
            Finish::NoSms => {
                // Not completed: like a timeout, no latency sample.
                self.stats.sms_missing += 1;
                return;
            }
        }
        self.stats.latencies_ns.push(ns);
    }

    fn scan_timeouts(&mut self, now: Instant) -> Result<()> {
        let counted = self.in_window(now);
        let timeout = self.cfg.timeout;
        let retries = self.cfg.retries;
        let mut expired = 0usize;
        let busy = &mut self.busy;
        for sock in &mut self.socks {
            for (id, slot) in sock.pending.iter_mut().enumerate() {
                let Some(p) = slot else { continue };
                if now.saturating_duration_since(p.sent) < timeout {
                    continue;
                }
                if p.tries < retries {
                    // RFC 5080: same identifier, same authenticator, same bytes.
                    p.tries += 1;
                    p.sent = now;
                    let failed = sock.udp.send(&p.packet).is_err();
                    if counted {
                        self.stats.retransmits += 1;
                        self.stats.packets_sent += 1;
                        if failed {
                            self.stats.socket_errors += 1;
                        }
                    }
                } else {
                    if let Some(b) = busy.get_mut(p.txn.user) {
                        *b = false;
                    }
                    *slot = None;
                    sock.free.push_back(u8::try_from(id)?);
                    expired += 1;
                }
            }
        }
        self.inflight = self.inflight.saturating_sub(expired);
        if counted {
            self.stats.timeouts += expired as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            server: "127.0.0.1:1812".parse().unwrap(),
            secret: SharedSecret(b"s".to_vec()),
            scenario: Scenario::Inline,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            outstanding: 256,
            sockets: 4,
            per_socket: 256,
            threads: 1,
            timeout: Duration::from_millis(100),
            retries: 1,
            rate: None,
            one_pass: false,
            nas_identifier: "t".into(),
            sms: None,
        }
    }

    #[test]
    fn share_splits_evenly() {
        assert_eq!(
            (0..3).map(|t| share(10, 3, t)).collect::<Vec<_>>(),
            vec![4, 3, 3]
        );
        assert_eq!((0..3).map(|t| share(10, 3, t)).sum::<usize>(), 10);
    }

    #[test]
    fn validate_checks_identifier_space() {
        assert!(cfg().validate(10).is_ok());
        let mut c = cfg();
        c.outstanding = 1025;
        assert!(c.validate(10).is_err());
        c.sockets = 5;
        assert!(c.validate(10).is_ok());
        c.threads = 6;
        assert!(c.validate(10).is_err());
        let mut c = cfg();
        c.rate = Some(0.0);
        assert!(c.validate(10).is_err());
        let mut c = cfg();
        c.threads = 2;
        assert!(c.validate(1).is_err());
        let mut c = cfg();
        c.per_socket = 1;
        assert!(c.validate(10).is_err()); // 256 in flight over 4 sockets x 1
        c.sockets = 256;
        assert!(c.validate(10).is_ok());
        c.per_socket = 0;
        assert!(c.validate(10).is_err());
        c.per_socket = 257;
        assert!(c.validate(10).is_err());
        let mut c = cfg();
        c.scenario = Scenario::Sms;
        let err = run(&c, fake_users(10)).unwrap_err().to_string();
        assert!(err.contains("--sim-url"), "{err}");
    }

    /// A minimal RADIUS server: checks the Message-Authenticator and the password
    /// (password + current code, or challenge then code), drops the first transmission of
    /// every 10th request to exercise retransmission, and replays duplicates' answers.
    fn fake_server(
        secret: &'static [u8],
        reply_secret: &'static [u8],
        stop: Arc<AtomicBool>,
    ) -> (SocketAddr, thread::JoinHandle<u64>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let mut seen: std::collections::HashMap<_, Vec<u8>> = std::collections::HashMap::new();
            let mut buf = [0u8; 4096];
            let mut n_req = 0u64;
            let mut dups = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let raw = &buf[..n];
                let req = Packet::decode(raw).unwrap();
                let ma = radmfa_radius::check_request_message_authenticator(raw, secret).unwrap();
                assert_eq!(ma, radmfa_radius::MessageAuthenticator::Valid);
                let key = (from, req.identifier, req.authenticator);
                if let Some(reply) = seen.get(&key) {
                    dups += 1;
                    sock.send_to(reply, from).unwrap();
                    continue;
                }
                n_req += 1;
                let hidden = &req.attr(AttrType::USER_PASSWORD).unwrap().value;
                let pw =
                    radmfa_radius::unhide_password(hidden, secret, &req.authenticator).unwrap();
                let pw = String::from_utf8(pw).unwrap();
                let user = req
                    .attr(AttrType::USER_NAME)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned();
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let totp = Totp::default();
                let code = totp.generate(user.as_bytes(), now);
                // A retransmission may cross a step boundary: accept the previous step too.
                let prev = totp.generate(user.as_bytes(), now.saturating_sub(30));
                let (rcode, attrs) = if req.attr(AttrType::STATE).is_some() {
                    let st = &req.attr(AttrType::STATE).unwrap().value;
                    let ok = st == user.as_bytes() && (pw == code || pw == prev);
                    (
                        if ok {
                            Code::ACCESS_ACCEPT
                        } else {
                            Code::ACCESS_REJECT
                        },
                        vec![],
                    )
                } else if pw == format!("pw-{user}") {
                    (
                        Code::ACCESS_CHALLENGE,
                        vec![Attribute::new(AttrType::STATE, user.as_bytes())],
                    )
                } else if pw == format!("pw-{user}{code}") || pw == format!("pw-{user}{prev}") {
                    (Code::ACCESS_ACCEPT, vec![])
                } else {
                    (Code::ACCESS_REJECT, vec![])
                };
                let reply = radmfa_radius::encode_reply(
                    rcode,
                    req.identifier,
                    &req.authenticator,
                    &attrs,
                    reply_secret,
                )
                .unwrap();
                seen.insert(key, reply.clone());
                if n_req % 10 != 0 {
                    sock.send_to(&reply, from).unwrap();
                }
            }
            dups
        });
        (addr, handle)
    }

    fn fake_users(n: usize) -> Arc<Vec<User>> {
        Arc::new(
            (0..n)
                .map(|i| User {
                    name: format!("u{i}"),
                    password: format!("pw-u{i}"),
                    totp_key: Some(format!("u{i}").into_bytes()),
                    phone: Some(format!("+3161{i:07}")),
                })
                .collect(),
        )
    }

    /// The end-to-end tests busy-poll: run them one at a time.
    static E2E: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn e2e(scenario: Scenario, reply_secret: &'static [u8], rate: Option<f64>) -> (Outcome, u64) {
        let _guard = E2E
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, server) = fake_server(b"s3cret", reply_secret, Arc::clone(&stop));
        let c = Config {
            server: addr,
            secret: SharedSecret(b"s3cret".to_vec()),
            scenario,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(700),
            outstanding: 16,
            sockets: 2,
            per_socket: 256,
            threads: 2,
            timeout: Duration::from_millis(30),
            retries: 2,
            rate,
            one_pass: false,
            nas_identifier: "test".into(),
            sms: None,
        };
        let out = run(&c, fake_users(50)).unwrap();
        stop.store(true, Ordering::Relaxed);
        let dups = server.join().unwrap();
        (out, dups)
    }

    #[test]
    fn inline_end_to_end_with_retransmits() {
        let (out, dups) = e2e(Scenario::Inline, b"s3cret", None);
        let s = &out.stats;
        assert!(s.accept > 50, "{s:?}");
        assert_eq!(
            (s.reject, s.other, s.timeouts, s.bad_replies),
            (0, 0, 0, 0),
            "{s:?}"
        );
        assert!(s.retransmits > 0 && dups > 0, "{s:?}");
        assert_eq!(s.latencies_ns.len() as u64, s.completed());
        assert_eq!(s.accept_latencies_ns.len() as u64, s.accept);
        assert_eq!(s.challenges, 0);
    }

    #[test]
    fn challenge_end_to_end() {
        let (out, _) = e2e(Scenario::Challenge, b"s3cret", None);
        let s = &out.stats;
        assert!(s.accept > 20, "{s:?}");
        // Timeouts (30 ms, two retries) are left out: on a machine busy
        // enough to starve the fake server they happen, and say nothing
        // about the engine's bookkeeping checked here.
        assert_eq!((s.reject, s.other, s.bad_replies), (0, 0, 0), "{s:?}");
        // Every accepted transaction went through a challenge first.
        assert!(
            s.challenges + 16 >= s.accept && s.challenges <= s.accept + 16,
            "{s:?}"
        );
    }

    #[test]
    fn fixed_rate_is_respected() {
        let (out, _) = e2e(Scenario::Inline, b"s3cret", Some(500.0));
        let done = out.stats.completed();
        // 500/s over 0.7 s = 350: never more (give or take the edges of the
        // window); fewer only if this machine is too busy to keep up.
        assert!(done > 0 && done <= 400, "{:?}", out.stats);
    }

    #[test]
    fn wrong_secret_replies_are_rejected_and_time_out() {
        let (out, _) = e2e(Scenario::Inline, b"other", None);
        let s = &out.stats;
        assert_eq!(s.completed(), 0, "{s:?}");
        assert!(s.bad_replies > 0 && s.timeouts > 0, "{s:?}");
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", cfg().secret), "***");
        assert!(!format!("{:?}", cfg()).contains("[115]"));
    }

    /// SMS codes "sent" by the fake server: (sequence number, phone, code).
    type Outbox = Arc<std::sync::Mutex<Vec<(u64, String, String)>>>;

    /// A fake one-way SMS server: leg 1 with the right password records a random code in
    /// `outbox` for the user's phone and answers Access-Challenge with a State naming the
    /// code's sequence number; leg 2 must carry that State and code. Every 7th first
    /// transmission is dropped (the loadgen retransmits; duplicates get the same answer).
    fn fake_sms_server(
        stop: Arc<AtomicBool>,
        outbox: Outbox,
    ) -> (SocketAddr, thread::JoinHandle<(u64, u64)>) {
        let secret: &[u8] = b"s3cret";
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let mut seen: std::collections::HashMap<_, Vec<u8>> = std::collections::HashMap::new();
            let mut buf = [0u8; 4096];
            let (mut n_req, mut leg2) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let raw = &buf[..n];
                let req = Packet::decode(raw).unwrap();
                let key = (from, req.identifier, req.authenticator);
                if let Some(reply) = seen.get(&key) {
                    sock.send_to(reply, from).unwrap();
                    continue;
                }
                n_req += 1;
                let hidden = &req.attr(AttrType::USER_PASSWORD).unwrap().value;
                let pw =
                    radmfa_radius::unhide_password(hidden, secret, &req.authenticator).unwrap();
                let pw = String::from_utf8(pw).unwrap();
                let user = req.attr(AttrType::USER_NAME).unwrap().as_str().unwrap();
                let i: usize = user.trim_start_matches('u').parse().unwrap();
                let phone = format!("+3161{i:07}");
                let (rcode, attrs) = match req.attr(AttrType::STATE) {
                    Some(st) => {
                        leg2 += 1;
                        let seq: u64 = std::str::from_utf8(&st.value).unwrap().parse().unwrap();
                        let ok = outbox
                            .lock()
                            .unwrap()
                            .iter()
                            .any(|(s, p, c)| *s == seq && *p == phone && *c == pw);
                        let code = if ok {
                            Code::ACCESS_ACCEPT
                        } else {
                            Code::ACCESS_REJECT
                        };
                        (code, vec![])
                    }
                    None if pw == format!("pw-{user}") => {
                        let mut out = outbox.lock().unwrap();
                        let seq = out.len() as u64 + 1;
                        let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
                        out.push((seq, phone, code));
                        let state = seq.to_string().into_bytes();
                        (
                            Code::ACCESS_CHALLENGE,
                            vec![Attribute::new(AttrType::STATE, state)],
                        )
                    }
                    None => (Code::ACCESS_REJECT, vec![]),
                };
                let reply = radmfa_radius::encode_reply(
                    rcode,
                    req.identifier,
                    &req.authenticator,
                    &attrs,
                    secret,
                )
                .unwrap();
                seen.insert(key, reply.clone());
                if n_req % 7 != 0 {
                    sock.send_to(&reply, from).unwrap();
                }
            }
            (n_req, leg2)
        });
        (addr, handle)
    }

    /// Stands in for the HTTPS fetch pool: answers from the fake server's outbox the way
    /// `sms::newest_code` does (newest SMS to the phone after the last one read).
    fn fake_fetch_pool(outbox: Outbox) -> Sender<FetchJob<FetchTag>> {
        let (tx, rx) = mpsc::channel::<FetchJob<FetchTag>>();
        thread::spawn(move || {
            while let Ok(job) = rx.recv() {
                let found = outbox
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(s, p, _)| *p == job.phone && *s > job.after_seq)
                    .max_by_key(|(s, _, _)| *s)
                    .map(|(s, _, c)| (*s, c.clone()))
                    .ok_or_else(|| "no SMS".to_owned());
                let _ = job.reply.send(Fetched {
                    tag: job.tag,
                    result: found,
                    took: Duration::from_micros(1),
                });
            }
        });
        tx
    }

    #[test]
    fn sms_end_to_end_with_one_request_per_socket() {
        let _guard = E2E
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stop = Arc::new(AtomicBool::new(false));
        let outbox: Outbox = Arc::default();
        let (addr, server) = fake_sms_server(Arc::clone(&stop), Arc::clone(&outbox));
        let c = Config {
            server: addr,
            secret: SharedSecret(b"s3cret".to_vec()),
            scenario: Scenario::Sms,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(700),
            outstanding: 8,
            sockets: 8,
            per_socket: 1,
            threads: 2,
            timeout: Duration::from_millis(30),
            retries: 2,
            rate: None,
            one_pass: false,
            nas_identifier: "test".into(),
            sms: None,
        };
        // 10 users for 8 in flight: the busy check keeps one login per user at a time, so
        // the newest SMS to a phone is always the current challenge's.
        let out = run_with(
            &c,
            fake_users(10),
            Some(fake_fetch_pool(Arc::clone(&outbox))),
        )
        .unwrap();
        stop.store(true, Ordering::Relaxed);
        let (_, leg2_received) = server.join().unwrap();
        let s = &out.stats;
        assert!(s.accept > 20, "{s:?}");
        assert_eq!(
            (s.reject, s.other, s.timeouts, s.sms_missing, s.bad_replies),
            (0, 0, 0, 0, 0),
            "{s:?}"
        );
        assert!(s.retransmits > 0, "{s:?}");
        assert!(s.leg2_latencies_ns.len() as u64 >= s.accept, "{s:?}");
        assert!(s.fetch_latencies_ns.len() as u64 + 8 >= s.accept, "{s:?}");
        // Every second leg sent reached the server once (retransmissions are duplicates).
        assert_eq!(s.leg2_sent_all, leg2_received, "{s:?}");
    }

    #[test]
    fn sms_logins_without_their_sms_are_counted_missing() {
        let _guard = E2E
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stop = Arc::new(AtomicBool::new(false));
        let outbox: Outbox = Arc::default();
        let (addr, server) = fake_sms_server(Arc::clone(&stop), Arc::clone(&outbox));
        let mut c = cfg();
        c.server = addr;
        c.secret = SharedSecret(b"s3cret".to_vec());
        c.scenario = Scenario::Sms;
        c.outstanding = 4;
        c.duration = Duration::from_millis(300);
        // The "simulator" never has the message.
        let empty: Outbox = Arc::default();
        let out = run_with(&c, fake_users(10), Some(fake_fetch_pool(empty))).unwrap();
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
        let s = &out.stats;
        assert_eq!(s.completed(), 0, "{s:?}");
        assert!(s.sms_missing > 10 && s.challenges > 10, "{s:?}");
        assert_eq!(s.leg2_sent_all, 0);
        assert!(run_with(&c, fake_users(10), None).is_err());
    }
}
