//! A local SMTP sink (`tests/py/smtp_sink.py`, aiosmtpd) that keeps every
//! message it accepts, for the tests of the enrollment mail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `tests/py/smtp_sink.py` (aiosmtpd) on a free port of 127.0.0.1.
pub struct SmtpSink {
    child: Child,
    /// The bound port.
    pub port: u16,
    out: PathBuf,
}

impl SmtpSink {
    /// Starts the sink, its messages under `dir/mail`.
    pub fn start(dir: &Path) -> SmtpSink {
        let ready = dir.join("smtp.ready");
        let out = dir.join("mail");
        std::fs::create_dir_all(&out).expect("mail dir");
        let child = Command::new("python3")
            .arg(super::py_dir().join("smtp_sink.py"))
            .args(["--port", "0", "--ready-file"])
            .arg(&ready)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 smtp_sink.py (pip install aiosmtpd)");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&ready)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "SMTP sink not ready");
            std::thread::sleep(Duration::from_millis(50));
        };
        SmtpSink { child, port, out }
    }

    /// Every message received, as text.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    /// Every message received, as the sink decoded it (envelope, headers,
    /// `subject`, plain-text `body`), in order of arrival.
    pub fn mails(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|e| e == "json"));
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect()
    }

    /// Waits (up to 20 s) until `n` messages arrived; returns them all.
    pub fn wait_mails(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mails = self.mails();
            if mails.len() >= n || Instant::now() > deadline {
                return mails;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
