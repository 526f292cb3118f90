//! One-way SMS codes, read back from the gateway simulator (`radmfa-gateway-sim`) the way
//! a user reads them from their phone: `GET /sim/messages?to=PHONE` over HTTPS.
//!
//! A small pool of blocking fetch threads does the HTTP so that the UDP engine never
//! waits on it: the engine hands a [`FetchJob`] over a channel and later picks the
//! [`Fetched`] answer up from its own channel while it keeps polling its sockets.

use std::fmt;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// Bearer API key of the simulator's `/sim` endpoints; `Debug` does not print it.
#[derive(Clone)]
pub struct SimKey(pub String);

impl fmt::Debug for SimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where and how to read the codes.
#[derive(Debug, Clone)]
pub struct SmsOptions {
    /// Base URL of the simulator, e.g. `https://127.0.0.1:8443`.
    pub sim_url: String,
    /// API key of the simulator.
    pub sim_key: SimKey,
    /// PEM certificate(s) to trust for the simulator (its self-signed certificate).
    pub sim_ca_pem: Vec<u8>,
    /// The server's SMS text with `{code}` where the code goes (radmfa's `[sms] message`).
    pub template: String,
    /// Fetch threads.
    pub fetchers: usize,
    /// How long to look for the SMS of a challenge before giving up on the login.
    pub wait: Duration,
}

impl SmsOptions {
    /// Reads the CA file and checks the options.
    pub fn new(
        sim_url: &str,
        sim_key: String,
        sim_ca: &Path,
        template: String,
        fetchers: usize,
        wait: Duration,
    ) -> Result<SmsOptions> {
        let sim_ca_pem =
            std::fs::read(sim_ca).with_context(|| format!("reading {}", sim_ca.display()))?;
        let opts = SmsOptions {
            sim_url: sim_url.trim_end_matches('/').to_owned(),
            sim_key: SimKey(sim_key),
            sim_ca_pem,
            template,
            fetchers,
            wait,
        };
        opts.validate()?;
        Ok(opts)
    }

    fn validate(&self) -> Result<()> {
        if !self.sim_url.starts_with("https://") {
            bail!("--sim-url must be an https:// URL");
        }
        if self.sim_key.0.is_empty() {
            bail!("--sim-key must not be empty");
        }
        if self.template.matches("{code}").count() != 1 {
            bail!("--sms-template must contain {{code}} exactly once");
        }
        if self.fetchers == 0 {
            bail!("--sms-fetchers must be at least 1");
        }
        if self.wait.is_zero() {
            bail!("--sms-wait-ms must be at least 1");
        }
        Ok(())
    }
}

/// The code in an SMS `body` written from `template` (`{code}` marks the code), if the
/// body has that shape and the code is a non-empty run of ASCII letters and digits.
pub fn code_from_body<'b>(template: &str, body: &'b str) -> Option<&'b str> {
    let (pre, post) = template.split_once("{code}")?;
    let code = body.strip_prefix(pre)?.strip_suffix(post)?;
    (!code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(code)
}

/// One record of `GET /sim/messages` (other fields are ignored).
#[derive(Debug, Deserialize)]
struct Record {
    seq: u64,
    kind: String,
    #[serde(default)]
    body: Option<String>,
}

/// The newest SMS newer than `after_seq` among `records`: its sequence number and code.
/// `Ok(None)` if there is none yet; an error if the newest one does not match the template.
fn newest_code(
    records: &[Record],
    after_seq: u64,
    template: &str,
) -> Result<Option<(u64, String)>> {
    let newest = records
        .iter()
        .filter(|r| r.kind == "sms" && r.seq > after_seq)
        .max_by_key(|r| r.seq);
    let Some(rec) = newest else {
        return Ok(None);
    };
    let body = rec.body.as_deref().unwrap_or("");
    let code = code_from_body(template, body)
        .ok_or_else(|| anyhow!("SMS {body:?} does not match --sms-template {template:?}"))?;
    Ok(Some((rec.seq, code.to_owned())))
}

/// A request for the code of a challenge just sent to `phone`.
#[derive(Debug)]
pub struct FetchJob<T> {
    /// Opaque to the pool, given back in [`Fetched::tag`].
    pub tag: T,
    /// Recipient.
    pub phone: String,
    /// Only an SMS with a larger simulator sequence number is this challenge's.
    pub after_seq: u64,
    /// Where the answer goes.
    pub reply: Sender<Fetched<T>>,
}

/// The answer to a [`FetchJob`].
#[derive(Debug)]
pub struct Fetched<T> {
    /// The job's tag.
    pub tag: T,
    /// The SMS's sequence number and the code, or why there is none.
    pub result: Result<(u64, String), String>,
    /// Time from taking the job to the answer (HTTP round trips, retries included).
    pub took: Duration,
}

/// The fetch threads. Dropping every sender returned by [`FetchPool::start`] stops them.
#[derive(Debug)]
pub struct FetchPool;

impl FetchPool {
    /// Starts `opts.fetchers` threads and returns the job channel.
    pub fn start<T: Send + 'static>(opts: &SmsOptions) -> Result<Sender<FetchJob<T>>> {
        opts.validate()?;
        let certs = reqwest::Certificate::from_pem_bundle(&opts.sim_ca_pem)
            .context("parsing the simulator certificate (--sim-ca)")?;
        if certs.is_empty() {
            bail!("--sim-ca holds no certificate");
        }
        let mut builder = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .timeout(opts.wait.max(Duration::from_millis(500)))
            .pool_max_idle_per_host(opts.fetchers);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().context("building the HTTPS client")?;
        let (tx, rx) = mpsc::channel::<FetchJob<T>>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..opts.fetchers {
            let rx = Arc::clone(&rx);
            let client = client.clone();
            let opts = opts.clone();
            thread::Builder::new()
                .name(format!("sms-fetch-{i}"))
                .spawn(move || fetch_loop(&client, &opts, &rx))
                .context("spawning a fetch thread")?;
        }
        Ok(tx)
    }
}

fn fetch_loop<T>(
    client: &reqwest::blocking::Client,
    opts: &SmsOptions,
    rx: &Mutex<Receiver<FetchJob<T>>>,
) {
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.recv()
        };
        let Ok(job) = job else {
            return; // every sender dropped: the run is over
        };
        let t0 = Instant::now();
        let result = fetch_code(client, opts, &job.phone, job.after_seq, t0 + opts.wait)
            .map_err(|e| format!("{e:#}"));
        // The worker may be gone (run over): nothing to do then.
        let _ = job.reply.send(Fetched {
            tag: job.tag,
            result,
            took: t0.elapsed(),
        });
    }
}

/// Polls the simulator until the SMS of this challenge is there or `deadline` passes.
/// radmfa records the SMS before it answers with the Access-Challenge, so the first
/// request normally finds it.
fn fetch_code(
    client: &reqwest::blocking::Client,
    opts: &SmsOptions,
    phone: &str,
    after_seq: u64,
    deadline: Instant,
) -> Result<(u64, String)> {
    let url = format!("{}/sim/messages", opts.sim_url);
    loop {
        let resp = client
            .get(&url)
            .query(&[("to", phone)])
            .bearer_auth(&opts.sim_key.0)
            .send()
            .context("GET /sim/messages")?;
        let status = resp.status();
        if !status.is_success() {
            bail!("GET /sim/messages: HTTP {status}");
        }
        let records: Vec<Record> = resp.json().context("GET /sim/messages: bad JSON")?;
        if let Some(found) = newest_code(&records, after_seq, &opts.template)? {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            bail!(
                "no SMS to {phone} after seq {after_seq} within {:?}",
                opts.wait
            );
        }
        thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "Your sign-in code is {code}";

    #[test]
    fn code_is_cut_out_of_the_template() {
        assert_eq!(
            code_from_body(TEMPLATE, "Your sign-in code is 012345"),
            Some("012345")
        );
        assert_eq!(
            code_from_body("{code} is your code.", "77 is your code."),
            Some("77")
        );
        assert_eq!(code_from_body(TEMPLATE, "Your sign-in code is "), None);
        assert_eq!(code_from_body(TEMPLATE, "Your code is 012345"), None);
        assert_eq!(code_from_body(TEMPLATE, "Your sign-in code is 12 34"), None);
        assert_eq!(code_from_body("no placeholder", "no placeholder"), None);
    }

    fn rec(seq: u64, kind: &str, body: Option<&str>) -> Record {
        Record {
            seq,
            kind: kind.to_owned(),
            body: body.map(str::to_owned),
        }
    }

    #[test]
    fn newest_sms_after_the_last_one_is_taken() {
        let records = vec![
            rec(3, "sms", Some("Your sign-in code is 111111")),
            rec(9, "sms", Some("Your sign-in code is 222222")),
            rec(11, "verification", None),
            rec(7, "sms", Some("Your sign-in code is 333333")),
        ];
        assert_eq!(
            newest_code(&records, 0, TEMPLATE).unwrap(),
            Some((9, "222222".to_owned()))
        );
        assert_eq!(newest_code(&records, 9, TEMPLATE).unwrap(), None);
        assert_eq!(newest_code(&[], 0, TEMPLATE).unwrap(), None);
        let odd = vec![rec(12, "sms", Some("Hello"))];
        assert!(newest_code(&odd, 0, TEMPLATE).is_err());
    }

    #[test]
    fn records_parse_from_the_simulator_json() {
        let json = r#"[{"seq":5,"kind":"sms","id":"msg-4","to":"+31610000001","body":"Your sign-in code is 987654","request":{"id":"ab"}},
                       {"seq":6,"kind":"verification","id":"v-1","to":"+31610000001","body":null,"request":{}}]"#;
        let records: Vec<Record> = serde_json::from_str(json).unwrap();
        assert_eq!(
            newest_code(&records, 0, TEMPLATE).unwrap(),
            Some((5, "987654".to_owned()))
        );
    }

    #[test]
    fn options_are_checked() {
        let ok = SmsOptions {
            sim_url: "https://127.0.0.1:1".into(),
            sim_key: SimKey("k".into()),
            sim_ca_pem: Vec::new(),
            template: TEMPLATE.into(),
            fetchers: 2,
            wait: Duration::from_secs(1),
        };
        assert!(ok.validate().is_ok());
        assert_eq!(format!("{:?}", ok.sim_key), "***");
        let mut o = ok.clone();
        o.sim_url = "http://127.0.0.1:1".into();
        assert!(o.validate().is_err());
        let mut o = ok.clone();
        o.template = "no code".into();
        assert!(o.validate().is_err());
        let mut o = ok.clone();
        o.fetchers = 0;
        assert!(o.validate().is_err());
        let mut o = ok;
        o.sim_key = SimKey(String::new());
        assert!(o.validate().is_err());
    }

    #[test]
    fn pool_refuses_a_file_without_certificates() {
        let opts = SmsOptions {
            sim_url: "https://127.0.0.1:1".into(),
            sim_key: SimKey("k".into()),
            sim_ca_pem: b"not a certificate".to_vec(),
            template: TEMPLATE.into(),
            fetchers: 1,
            wait: Duration::from_secs(1),
        };
        assert!(FetchPool::start::<()>(&opts).is_err());
    }
}
