//! Enrollment mail against a real SMTP server: `tests/py/smtp_sink.py`
//! (python3 + the PyPI package `aiosmtpd`) stores what it receives; the
//! messages are read back and checked, decoded by Python's email package.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use radmfa_server::mail::{
    Enrollment, MailConfig, MailError, MailMethod, MailSecret, Mailer, SmtpSecurity,
};
use serde_json::Value;

#[path = "../../../tests/common/tools.rs"]
mod tools;

/// python3 with aiosmtpd is there, or the test skips (fails under CI=true).
fn have_aiosmtpd() -> bool {
    tools::require_python_module("aiosmtpd", "pip install aiosmtpd==1.4.6")
}

/// A running sink; killed on drop.
struct Sink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

#[derive(Default)]
struct SinkOptions {
    /// (cert PEM, key PEM) and whether TLS is implicit (else STARTTLS).
    tls: Option<(String, String, bool)>,
    auth: Option<&'static str>,
}

impl Sink {
    fn start(opts: SinkOptions) -> Sink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/py/smtp_sink.py");
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("port");
        let out = dir.path().join("out");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .arg("--port")
            .arg("0")
            .arg("--ready-file")
            .arg(&ready)
            .arg("--out")
            .arg(&out)
            .arg("--max-seconds")
            .arg("120")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some((cert, key, implicit)) = &opts.tls {
            let cert_file = dir.path().join("cert.pem");
            let key_file = dir.path().join("key.pem");
            std::fs::write(&cert_file, cert).expect("write cert");
            std::fs::write(&key_file, key).expect("write key");
            cmd.arg("--tls-cert")
                .arg(&cert_file)
                .arg("--tls-key")
                .arg(&key_file);
            cmd.arg(if *implicit {
                "--implicit-tls"
            } else {
                "--starttls"
            });
        }
        if let Some(auth) = opts.auth {
            cmd.arg("--auth").arg(auth);
        }
        let mut child = cmd
            .spawn()
            .expect("python3 must be installed to run the mail tests");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                break text.trim().parse::<u16>().expect("port in the ready file");
            }
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
                panic!(
                    "smtp_sink.py exited with {status} (is the PyPI package aiosmtpd \
                     installed? python3 -m pip install aiosmtpd):\n{err}"
                );
            }
            assert!(Instant::now() < deadline, "smtp_sink.py did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Sink { child, dir, port }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// The stored messages, oldest first: (raw .eml, decoded record).
    fn messages(&self) -> Vec<(String, Value)> {
        let mut names: Vec<PathBuf> = match std::fs::read_dir(self.out()) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
            .into_iter()
            .map(|json| {
                let record: Value =
                    serde_json::from_str(&std::fs::read_to_string(&json).expect("read json"))
                        .expect("valid json");
                let raw = std::fs::read_to_string(json.with_extension("eml")).expect("read eml");
                (raw, record)
            })
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(port: u16, security: SmtpSecurity) -> MailConfig {
    MailConfig {
        host: "127.0.0.1".to_owned(),
        port,
        security,
        username: None,
        password: None,
        ca_pem: None,
        from: "radmfa <mfa@example.org>".to_owned(),
        portal_url: "https://mfa.example.org/portal".to_owned(),
        templates_dir: None,
        default_language: "en".to_owned(),
        timeout: Duration::from_secs(10),
    }
}

const URI: &str = "otpauth://totp/radmfa:zdupont?secret=JBSWY3DPEHPK3PXP&issuer=radmfa";

fn zoe() -> Enrollment<'static> {
    Enrollment {
        to: "zoe@example.org",
        display_name: "Zoë Dupont-Lefèvre",
        login: "zdupont",
        method: MailMethod::App,
        language: "fr-BE",
        phone: "+32 470 12 34 56",
        pin: Some("482913"),
        otpauth_uri: Some(URI),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Checks one stored message against what the mailer rendered.
fn check_delivered(mailer: &Mailer, e: &Enrollment<'_>, raw: &str, rec: &Value) {
    let (subject, body) = mailer.render(e).expect("renders");
    assert_eq!(str_of(rec, "mail_from"), "mfa@example.org");
    assert_eq!(rec["rcpt_tos"], serde_json::json!([e.to]));
    assert_eq!(rec["to_addresses"], serde_json::json!([e.to]));
    assert_eq!(rec["to_names"], serde_json::json!([e.display_name]));
    assert_eq!(str_of(rec, "from"), "radmfa <mfa@example.org>");
    assert_eq!(str_of(rec, "subject"), subject);
    assert_eq!(str_of(rec, "content_type"), "text/plain");
    assert_eq!(str_of(rec, "charset"), "utf-8");
    // Transfer encoding may add a final line break.
    assert_eq!(
        str_of(rec, "body").replace("\r\n", "\n").trim_end(),
        body.trim_end()
    );
    assert!(
        raw.contains("\r\nAuto-Submitted: auto-generated\r\n"),
        "{raw}"
    );
    assert!(raw.contains("\r\nMessage-ID: <"), "{raw}");
}

#[tokio::test]
async fn plain_smtp_to_a_loopback_sink() {
    if !have_aiosmtpd() {
        return;
    }
    let sink = Sink::start(SinkOptions::default());
    let mailer = Mailer::new(config(sink.port, SmtpSecurity::None)).expect("mailer");

    let zoe = zoe();
    mailer.send_enrollment(&zoe).await.expect("sent");
    let jan = Enrollment {
        to: "jan@example.org",
        display_name: "Jan de Vries",
        login: "jdevries",
        method: MailMethod::Sms,
        language: "nl",
        phone: "+31 6 1234 5678",
        pin: None,
        otpauth_uri: None,
    };
    mailer.send_enrollment(&jan).await.expect("sent");

    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2);
    let (raw, rec) = &msgs[0];
    check_delivered(&mailer, &zoe, raw, rec);
    assert!(rec["tls_version"].is_null());
    let body = str_of(rec, "body");
    assert!(body.starts_with("Bonjour Zoë Dupont-Lefèvre,"), "{body}");
    assert!(
        body.contains("Votre code PIN initial est : 482913"),
        "{body}"
    );
    assert!(body.contains(URI), "{body}");
    assert!(body.contains("https://mfa.example.org/portal"), "{body}");

    let (raw, rec) = &msgs[1];
    check_delivered(&mailer, &jan, raw, rec);
    let body = str_of(rec, "body");
    assert!(body.contains("eindigt op 5678"), "{body}");
    assert!(!body.contains("1234"), "{body}");
    assert!(!body.contains("pincode"), "{body}");
    assert_eq!(
        str_of(rec, "subject"),
        "Verificatie in twee stappen is ingesteld voor uw account"
    );
}

fn relay_cert() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    (ck.cert.pem(), ck.key_pair.serialize_pem())
}

fn tls_config(port: u16, security: SmtpSecurity, ca: &str) -> MailConfig {
    let mut cfg = config(port, security);
    cfg.ca_pem = Some(ca.to_owned());
    cfg.username = Some("relay".to_owned());
    cfg.password = Some(MailSecret::new("s3cret-relay-pw".to_owned()));
    cfg
}

fn tls_version(rec: &Value) -> &str {
    str_of(rec, "tls_version")
}

#[tokio::test]
async fn starttls_with_auth_and_a_private_ca() {
    if !have_aiosmtpd() {
        return;
    }
    let (cert, key) = relay_cert();
    let sink = Sink::start(SinkOptions {
        tls: Some((cert.clone(), key, false)),
        auth: Some("relay:s3cret-relay-pw"),
    });
    let mailer = Mailer::new(tls_config(sink.port, SmtpSecurity::StartTls, &cert)).expect("mailer");
    assert!(!format!("{mailer:?}").contains("s3cret"));
    let e = zoe();
    mailer
        .send_enrollment(&e)
        .await
        .expect("sent over STARTTLS");
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    let (raw, rec) = &msgs[0];
    check_delivered(&mailer, &e, raw, rec);
    assert!(matches!(tls_version(rec), "TLSv1.3" | "TLSv1.2"), "{rec}");
    assert_eq!(str_of(rec, "auth_login"), "relay");

    // A wrong password is refused by the relay.
    let mut cfg = tls_config(sink.port, SmtpSecurity::StartTls, &cert);
    cfg.password = Some(MailSecret::new("wrong".to_owned()));
    let err = Mailer::new(cfg)
        .unwrap()
        .send_enrollment(&e)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("535"), "{err}");
    assert!(matches!(err, MailError::Send(_)), "{err}");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn starttls_refuses_an_untrusted_certificate() {
    if !have_aiosmtpd() {
        return;
    }
    let (cert, key) = relay_cert();
    let sink = Sink::start(SinkOptions {
        tls: Some((cert, key, false)),
        auth: None,
    });
    // Trust a different CA: the relay's certificate does not verify.
    let (other, _) = relay_cert();
    let mut cfg = tls_config(sink.port, SmtpSecurity::StartTls, &other);
    cfg.username = None;
    cfg.password = None;
    let err = Mailer::new(cfg)
        .unwrap()
        .send_enrollment(&zoe())
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Send(_)), "{err}");
    // Without any extra CA (only the public roots) it fails too.
    let mut cfg = config(sink.port, SmtpSecurity::StartTls);
    cfg.host = "127.0.0.1".to_owned();
    let err = Mailer::new(cfg)
        .unwrap()
        .send_enrollment(&zoe())
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Send(_)), "{err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn starttls_is_required_not_opportunistic() {
    if !have_aiosmtpd() {
        return;
    }
    // The sink offers no STARTTLS: the mailer must not fall back to plain.
    let sink = Sink::start(SinkOptions::default());
    let (cert, _) = relay_cert();
    let mut cfg = tls_config(sink.port, SmtpSecurity::StartTls, &cert);
    cfg.username = None;
    cfg.password = None;
    let err = Mailer::new(cfg)
        .unwrap()
        .send_enrollment(&zoe())
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Send(_)), "{err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn implicit_tls_with_auth() {
    if !have_aiosmtpd() {
        return;
    }
    let (cert, key) = relay_cert();
    let sink = Sink::start(SinkOptions {
        tls: Some((cert.clone(), key, true)),
        auth: Some("relay:s3cret-relay-pw"),
    });
    let mailer = Mailer::new(tls_config(sink.port, SmtpSecurity::Tls, &cert)).expect("mailer");
    let e = Enrollment {
        method: MailMethod::Call,
        language: "de",
        pin: None,
        otpauth_uri: None,
        ..zoe()
    };
    mailer.send_enrollment(&e).await.expect("sent over TLS");
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    let (raw, rec) = &msgs[0];
    check_delivered(&mailer, &e, raw, rec);
    assert!(matches!(tls_version(rec), "TLSv1.3" | "TLSv1.2"), "{rec}");
    assert_eq!(str_of(rec, "auth_login"), "relay");
    assert!(str_of(rec, "body").contains("mit der Endung 3456"));
}
