//! Counters, latency percentiles and the human / JSON report.

use std::fmt::Write as _;
use std::time::Duration;

/// Counters and latency samples gathered by one worker thread during the measured window.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Completed transactions ending in Access-Accept.
    pub accept: u64,
    /// Completed transactions ending in Access-Reject (wrong code, replayed code, ...).
    pub reject: u64,
    /// Completed transactions ending in anything else (unexpected code, Challenge without State).
    pub other: u64,
    /// Access-Challenge replies received (challenge scenario, first leg).
    pub challenges: u64,
    /// Transactions abandoned after all retransmissions timed out.
    pub timeouts: u64,
    /// SMS scenario: logins abandoned because their code could not be read from the
    /// gateway simulator (not completed, no latency sample).
    pub sms_missing: u64,
    /// Second-leg requests (State + code) sent, first transmissions only, over the whole
    /// run *including* warm-up and drain, to compare with the servers' own counters.
    pub leg2_sent_all: u64,
    /// Retransmissions sent (same identifier and authenticator).
    pub retransmits: u64,
    /// Packets sent (first transmissions and retransmissions).
    pub packets_sent: u64,
    /// Replies whose Response Authenticator or Message-Authenticator did not verify.
    pub bad_replies: u64,
    /// Replies for an identifier with nothing outstanding (late replies after a timeout).
    pub unmatched: u64,
    /// Send or receive errors reported by the socket (e.g. ICMP port unreachable).
    pub socket_errors: u64,
    /// Time the worker spent polling without finding anything to do, in nanoseconds.
    pub idle_ns: u64,
    /// Latency of each completed transaction, in nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Latency of the transactions that ended in Access-Accept (also in `latencies_ns`).
    pub accept_latencies_ns: Vec<u64>,
    /// Latency of each answered second leg alone (first transmission to reply), in
    /// nanoseconds: the leg a cluster may forward to the node that owns the challenge.
    pub leg2_latencies_ns: Vec<u64>,
    /// SMS scenario: time to read each code from the simulator, in nanoseconds.
    pub fetch_latencies_ns: Vec<u64>,
}

impl Stats {
    /// Adds another thread's counters and samples into this one.
    pub fn merge(&mut self, other: Stats) {
        self.accept += other.accept;
        self.reject += other.reject;
        self.other += other.other;
        self.challenges += other.challenges;
        self.timeouts += other.timeouts;
        self.sms_missing += other.sms_missing;
        self.leg2_sent_all += other.leg2_sent_all;
        self.retransmits += other.retransmits;
        self.packets_sent += other.packets_sent;
        self.bad_replies += other.bad_replies;
        self.unmatched += other.unmatched;
        self.socket_errors += other.socket_errors;
        self.idle_ns += other.idle_ns;
        self.latencies_ns.extend(other.latencies_ns);
        self.accept_latencies_ns.extend(other.accept_latencies_ns);
        self.leg2_latencies_ns.extend(other.leg2_latencies_ns);
        self.fetch_latencies_ns.extend(other.fetch_latencies_ns);
    }

    /// Completed transactions (accept + reject + other).
    pub fn completed(&self) -> u64 {
        self.accept + self.reject + self.other
    }
}

/// Latency summary in microseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Maximum.
    pub max_us: f64,
}

/// Nearest-rank percentile of sorted samples (`q` in 0..=1).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank: ceil(q * n), 1-based.
    let n = sorted.len();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted.get(rank - 1).copied().unwrap_or(0)
}

impl Latency {
    /// Summarises samples in nanoseconds (sorts them in place).
    pub fn from_samples(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let us = |ns: u64| ns as f64 / 1000.0;
        let sum: u128 = samples.iter().map(|&v| u128::from(v)).sum();
        Latency {
            mean_us: sum as f64 / samples.len() as f64 / 1000.0,
            p50_us: us(percentile(samples, 0.50)),
            p90_us: us(percentile(samples, 0.90)),
            p99_us: us(percentile(samples, 0.99)),
            p999_us: us(percentile(samples, 0.999)),
            max_us: us(samples.last().copied().unwrap_or(0)),
        }
    }
}

/// Everything the run reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// Free-form label (e.g. "radmfa" or "freeradius").
    pub label: String,
    /// "inline" or "challenge".
    pub scenario: String,
    /// Server address.
    pub server: String,
    /// Number of users cycled through.
    pub users: usize,
    /// Outstanding transactions (closed-loop window).
    pub outstanding: usize,
    /// Client sockets.
    pub sockets: usize,
    /// Target rate (transactions/s), if any.
    pub target_rate: Option<f64>,
    /// Measured window.
    pub measured: Duration,
    /// Loadgen CPU time over the measured window divided by wall time (1.0 = one core busy).
    /// The workers busy-poll, so this is ~1.0 per thread whenever they own a CPU.
    pub loadgen_cpu: Option<f64>,
    /// Worker threads (to turn idle time into a busy fraction).
    pub threads: usize,
    /// Counters.
    pub stats: Stats,
    /// Latency summary of completed transactions.
    pub latency: Latency,
    /// Latency summary of the transactions that ended in Access-Accept.
    pub accept_latency: Latency,
    /// Latency summary of the second legs alone (challenge and sms scenarios).
    pub leg2_latency: Latency,
    /// Latency summary of reading the SMS codes (sms scenario).
    pub fetch_latency: Latency,
}

impl Report {
    /// Completed transactions per second over the measured window.
    pub fn tps(&self) -> f64 {
        let secs = self.measured.as_secs_f64();
        if secs > 0.0 {
            self.stats.completed() as f64 / secs
        } else {
            0.0
        }
    }

    /// Fraction of the workers' time spent doing work rather than polling idle sockets.
    /// Near 1.0 the load generator, not the server, may be the bottleneck.
    pub fn loadgen_busy(&self) -> Option<f64> {
        let wall = self.measured.as_nanos() as f64 * self.threads as f64;
        if wall > 0.0 {
            Some((1.0 - self.stats.idle_ns as f64 / wall).clamp(0.0, 1.0))
        } else {
            None
        }
    }

    /// Human-readable multi-line report.
    pub fn human(&self) -> String {
        let s = &self.stats;
        let l = &self.latency;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} scenario={} server={} users={} outstanding={} sockets={}{}",
            if self.label.is_empty() {
                "run"
            } else {
                &self.label
            },
            self.scenario,
            self.server,
            self.users,
            self.outstanding,
            self.sockets,
            match self.target_rate {
                Some(r) => format!(" target_rate={r:.0}/s"),
                None => String::new(),
            }
        );
        let _ = writeln!(
            out,
            "  transactions/s {:.1} over {:.2} s  (accept {}, reject {}, other {}, challenges {})",
            self.tps(),
            self.measured.as_secs_f64(),
            s.accept,
            s.reject,
            s.other,
            s.challenges
        );
        let _ = writeln!(
            out,
            "  latency us: mean {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            l.mean_us, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
        );
        let _ = writeln!(
            out,
            "  timeouts {}  retransmits {}  packets {}  bad replies {}  unmatched {}  socket errors {}{}",
            s.timeouts,
            s.retransmits,
            s.packets_sent,
            s.bad_replies,
            s.unmatched,
            s.socket_errors,
            match self.loadgen_cpu {
                Some(c) => format!("  loadgen cpu {:.0}%", c * 100.0),
                None => String::new(),
            }
        );
        if !s.leg2_latencies_ns.is_empty() {
            let g = &self.leg2_latency;
            let _ = writeln!(
                out,
                "  second leg only, latency us: p50 {:.1}  p99 {:.1}  max {:.1}  (sent over the whole run {})",
                g.p50_us, g.p99_us, g.max_us, s.leg2_sent_all
            );
        }
        if !s.fetch_latencies_ns.is_empty() || s.sms_missing > 0 {
            let f = &self.fetch_latency;
            let _ = writeln!(
                out,
                "  SMS code read from the simulator, us: p50 {:.1}  p99 {:.1}  max {:.1}  missing {}",
                f.p50_us, f.p99_us, f.max_us, s.sms_missing
            );
        }
        if s.accept > 0 && s.accept < s.completed() {
            let a = &self.accept_latency;
            let _ = writeln!(
                out,
                "  accepted only, latency us: mean {:.1}  p50 {:.1}  p99 {:.1}  max {:.1}",
                a.mean_us, a.p50_us, a.p99_us, a.max_us
            );
        }
        if let Some(b) = self.loadgen_busy() {
            let _ = writeln!(
                out,
                "  loadgen busy {:.0}% (time not spent polling idle sockets)",
                b * 100.0
            );
        }
        out
    }

    /// One-line JSON object.
    pub fn json(&self) -> String {
        let s = &self.stats;
        let l = &self.latency;
        let mut out = String::from("{");
        let _ = write!(
            out,
            "\"label\":{},\"scenario\":{},\"server\":{},\"users\":{},\"outstanding\":{},\"sockets\":{},",
            json_str(&self.label),
            json_str(&self.scenario),
            json_str(&self.server),
            self.users,
            self.outstanding,
            self.sockets
        );
        let _ = write!(
            out,
            "\"target_rate\":{},\"duration_s\":{},\"tps\":{},",
            self.target_rate.map_or("null".to_owned(), json_f64),
            json_f64(self.measured.as_secs_f64()),
            json_f64(self.tps())
        );
        let _ = write!(
            out,
            "\"completed\":{},\"accept\":{},\"reject\":{},\"other\":{},\"challenges\":{},\"timeouts\":{},\"sms_missing\":{},\"leg2_sent_all\":{},\"retransmits\":{},\"packets_sent\":{},\"bad_replies\":{},\"unmatched\":{},\"socket_errors\":{},",
            s.completed(),
            s.accept,
            s.reject,
            s.other,
            s.challenges,
            s.timeouts,
            s.sms_missing,
            s.leg2_sent_all,
            s.retransmits,
            s.packets_sent,
            s.bad_replies,
            s.unmatched,
            s.socket_errors
        );
        let _ = write!(
            out,
            "\"latency_us\":{},\"accept_latency_us\":{},\"leg2_latency_us\":{},\"fetch_latency_us\":{},\"loadgen_cpu\":{},\"loadgen_busy\":{}}}",
            latency_json(l),
            latency_json(&self.accept_latency),
            latency_json(&self.leg2_latency),
            latency_json(&self.fetch_latency),
            self.loadgen_cpu.map_or("null".to_owned(), json_f64),
            self.loadgen_busy().map_or("null".to_owned(), json_f64)
        );
        out
    }
}

fn latency_json(l: &Latency) -> String {
    format!(
        "{{\"mean\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
        json_f64(l.mean_us),
        json_f64(l.p50_us),
        json_f64(l.p90_us),
        json_f64(l.p99_us),
        json_f64(l.p999_us),
        json_f64(l.max_us)
    )
}

/// JSON number (finite, three decimals); non-finite values become `null`.
fn json_f64(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".to_owned()
    }
}

/// JSON string literal with the mandatory escapes.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<u64> = (1..=1000).rev().map(|x| x * 1000).collect();
        let l = Latency::from_samples(&mut v);
        assert_eq!(l.p50_us, 500.0);
        assert_eq!(l.p90_us, 900.0);
        assert_eq!(l.p99_us, 990.0);
        assert_eq!(l.p999_us, 999.0);
        assert_eq!(l.max_us, 1000.0);
        assert!((l.mean_us - 500.5).abs() < 1e-9);
        assert_eq!(percentile(&[7], 0.999), 7);
        assert_eq!(Latency::from_samples(&mut []), Latency::default());
    }

    #[test]
    fn merge_adds() {
        let mut a = Stats {
            accept: 1,
            timeouts: 2,
            latencies_ns: vec![5],
            ..Stats::default()
        };
        let b = Stats {
            accept: 3,
            reject: 4,
            other: 1,
            latencies_ns: vec![6, 7],
            sms_missing: 2,
            leg2_sent_all: 5,
            leg2_latencies_ns: vec![8],
            fetch_latencies_ns: vec![9],
            ..Stats::default()
        };
        a.merge(b);
        assert_eq!(a.accept, 4);
        assert_eq!(a.completed(), 9);
        assert_eq!(a.timeouts, 2);
        assert_eq!(a.latencies_ns, vec![5, 6, 7]);
        assert_eq!((a.sms_missing, a.leg2_sent_all), (2, 5));
        assert_eq!(
            (a.leg2_latencies_ns, a.fetch_latencies_ns),
            (vec![8], vec![9])
        );
    }

    #[test]
    fn json_escapes_and_shape() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(json_f64(f64::NAN), "null");
        let r = Report {
            label: "x\"y".into(),
            scenario: "inline".into(),
            server: "127.0.0.1:1812".into(),
            users: 10,
            outstanding: 4,
            sockets: 1,
            target_rate: None,
            measured: Duration::from_secs(2),
            loadgen_cpu: Some(0.5),
            threads: 2,
            stats: Stats {
                accept: 10,
                reject: 2,
                idle_ns: 1_000_000_000,
                ..Stats::default()
            },
            latency: Latency::default(),
            accept_latency: Latency::default(),
            leg2_latency: Latency::default(),
            fetch_latency: Latency::default(),
        };
        let j = r.json();
        assert!(j.starts_with("{\"label\":\"x\\\"y\""));
        assert!(j.contains("\"tps\":6.000"));
        assert!(j.contains("\"target_rate\":null"));
        assert!(j.contains("\"loadgen_cpu\":0.500"));
        assert!(j.contains("\"loadgen_busy\":0.750"));
        assert!(j.contains("\"accept_latency_us\":{\"mean\":0.000,"));
        assert!(j.contains("\"leg2_latency_us\":{\"mean\":0.000,"));
        assert!(j.contains("\"sms_missing\":0,\"leg2_sent_all\":0,"));
        assert!(j.ends_with("}"));
        assert_eq!(j.matches('{').count(), j.matches('}').count());
        assert!(r.human().contains("transactions/s 6.0"));
    }
}
