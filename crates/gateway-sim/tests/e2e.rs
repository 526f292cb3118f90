//! End-to-end: the radmfa-gateway client against the real simulator binary over HTTPS.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use radmfa_gateway::{
    BreakerState, Gateway, GatewayConfig, GatewayError, PinMode, Provider, Secret, SmsRequest,
    UserFields, Verdict, VerificationMode, VerificationRequest,
};
use serde_json::Value;
use tokio::time::Instant;

const KEY: &str = "test-api-key";
const SID: &str = "ACtest";
const TOKEN: &str = "twilio-token";

struct SimProc {
    child: Child,
    addr: String,
    cert: String,
    _dir: tempfile::TempDir,
}

impl Drop for SimProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SimProc {
    async fn start(extra: &[&str]) -> SimProc {
        let dir = tempfile::tempdir().unwrap();
        let ready: PathBuf = dir.path().join("ready");
        let cert: PathBuf = dir.path().join("cert.pem");
        let child = Command::new(env!("CARGO_BIN_EXE_radmfa-gateway-sim"))
            .args(["--listen", "127.0.0.1:0", "--api-key", KEY])
            .args(["--twilio-account-sid", SID, "--twilio-auth-token", TOKEN])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--cert-out")
            .arg(&cert)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut sim = SimProc {
            child,
            addr: String::new(),
            cert: String::new(),
            _dir: dir,
        };
        for _ in 0..200 {
            if let Ok(addr) = std::fs::read_to_string(&ready) {
                sim.addr = addr;
                sim.cert = std::fs::read_to_string(&cert).unwrap();
                return sim;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("simulator did not start");
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn config(&self, key: &str) -> GatewayConfig {
        let mut cfg = GatewayConfig::new(Provider::Radmfa {
            base_url: self.url(),
            api_key: Secret::new(key),
        });
        cfg.extra_ca_pem = Some(self.cert.clone());
        cfg.backoff.initial = Duration::from_millis(10);
        cfg.poll_interval = Duration::from_millis(100);
        cfg
    }

    fn twilio_config(&self, token: &str) -> GatewayConfig {
        let mut cfg = GatewayConfig::new(Provider::Twilio {
            base_url: self.url(),
            account_sid: SID.into(),
            auth_token: Secret::new(token),
            from_number: "+15005550006".into(),
        });
        cfg.extra_ca_pem = Some(self.cert.clone());
        cfg.poll_interval = Duration::from_millis(100);
        cfg
    }

    fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.cert.as_bytes()).unwrap())
            .build()
            .unwrap()
    }

    async fn messages(&self, to: &str) -> Vec<Value> {
        let resp = self
            .http()
            .get(format!("{}/sim/messages", self.url()))
            .query(&[("to", to)])
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    async fn set_rule(&self, key: &str, rule: &str) {
        let resp = self
            .http()
            .post(format!("{}/sim/rules", self.url()))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"key": key, "rule": rule}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
}

fn user(phone: &str) -> UserFields {
    UserFields {
        unique_id: format!("user-{}", phone.trim_start_matches('+')),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        email: Some("ada@example.com".into()),
        phone: Some(phone.into()),
        device_token: Some(format!("token-{phone}")),
        extension: None,
    }
}

fn sms(id: &str, phone: &str, body: &str) -> SmsRequest {
    SmsRequest {
        id: id.into(),
        user: user(phone),
        body: body.into(),
        server_name: "radmfa-1".into(),
        server_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        client_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        from_number: None,
    }
}

fn verification(id: &str, mode: VerificationMode, phone: &str) -> VerificationRequest {
    VerificationRequest {
        id: id.into(),
        mode,
        user: user(phone),
        server_name: "radmfa-1".into(),
        server_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        client_ip: None,
        pin_mode: PinMode::Standard,
        callbacks: None,
        message: None,
        from_number: None,
        fraud_key: None,
        speech: None,
    }
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[tokio::test]
async fn sms_is_sent_and_readable_and_optional_fields_are_omitted() {
    let sim = SimProc::start(&[]).await;
    let gw = Gateway::new(sim.config(KEY)).unwrap();
    let id = gw
        .send_sms(&sms("req-1", "+4915100000001", "Your code is 482913"))
        .await
        .unwrap();
    let msgs = sim.messages("+4915100000001").await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["id"], id.0.as_str());
    assert_eq!(msgs[0]["body"], "Your code is 482913");
    let req = &msgs[0]["request"];
    assert_eq!(req["unique_id"], "user-4915100000001");
    assert_eq!(req["server_name"], "radmfa-1");
    assert_eq!(req["server_ip"], "10.0.0.1");
    assert_eq!(req["client_ip"], "192.0.2.7");
    for field in ["first_name", "last_name", "email"] {
        assert!(req.get(field).is_none(), "{field} must not be sent: {req}");
    }
    assert!(sim.messages("+4915100000002").await.is_empty());
    assert_eq!(gw.metrics().send_sms.requests, 1);
    assert_eq!(gw.metrics().send_sms.errors, 0);
}

#[tokio::test]
async fn optional_fields_are_sent_when_enabled() {
    let sim = SimProc::start(&[]).await;
    let mut cfg = sim.config(KEY);
    cfg.send_names = true;
    let gw = Gateway::new(cfg).unwrap();
    gw.send_sms(&sms("n1", "+4915100000003", "hello"))
        .await
        .unwrap();
    let mut cfg = sim.config(KEY);
    cfg.send_email = true;
    let gw = Gateway::new(cfg).unwrap();
    gw.start_verification(&verification(
        "n2",
        VerificationMode::Call,
        "+4915100000003",
    ))
    .await
    .unwrap();
    let msgs = sim.messages("+4915100000003").await;
    assert_eq!(msgs.len(), 2);
    let (a, b) = (&msgs[0]["request"], &msgs[1]["request"]);
    assert_eq!(a["first_name"], "Ada");
    assert_eq!(a["last_name"], "Lovelace");
    assert!(a.get("email").is_none());
    assert_eq!(b["email"], "ada@example.com");
    assert!(b.get("first_name").is_none());
    assert_eq!(b["mode"], "call");
    assert_eq!(b["phone"], "+4915100000003");
}

#[tokio::test]
async fn verifications_follow_the_rules() {
    let sim = SimProc::start(&[]).await;
    let gw = Gateway::new(sim.config(KEY)).unwrap();
    let cases = [
        (
            "+4915100000010",
            "approve",
            VerificationMode::Call,
            Verdict::Approved,
        ),
        (
            "+4915100000011",
            "deny",
            VerificationMode::TwoWaySms,
            Verdict::Denied,
        ),
        (
            "+4915100000012",
            "fraud",
            VerificationMode::Call,
            Verdict::FraudReported,
        ),
        (
            "+4915100000013",
            "timeout",
            VerificationMode::Call,
            Verdict::TimedOut,
        ),
    ];
    for (i, (phone, rule, mode, expected)) in cases.into_iter().enumerate() {
        sim.set_rule(phone, rule).await;
        let id = gw
            .start_verification(&verification(&format!("v{i}"), mode, phone))
            .await
            .unwrap();
        assert_eq!(
            gw.wait_verdict(&id, deadline(10)).await.unwrap(),
            expected,
            "{rule}"
        );
    }
}

#[tokio::test]
async fn push_after_delay_is_long_polled_and_never_times_out_locally() {
    let sim = SimProc::start(&["--default-rule", "never"]).await;
    let gw = Gateway::new(sim.config(KEY)).unwrap();
    sim.set_rule("user-4915100000020", "after:1:approve").await;
    let started = Instant::now();
    let id = gw
        .start_verification(&verification(
            "p1",
            VerificationMode::Push,
            "+4915100000020",
        ))
        .await
        .unwrap();
    assert_eq!(
        gw.wait_verdict(&id, deadline(10)).await.unwrap(),
        Verdict::Approved
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        gw.metrics().poll_verdict.requests <= 2,
        "long poll, not busy polling"
    );
    let msgs = sim.messages("token-+4915100000020").await;
    assert_eq!(msgs[0]["request"]["device_token"], "token-+4915100000020");

    // Default rule "never": our own deadline ends the wait.
    let id = gw
        .start_verification(&verification(
            "p2",
            VerificationMode::Call,
            "+4915100000021",
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let verdict = gw
        .wait_verdict(&id, Instant::now() + Duration::from_millis(1500))
        .await
        .unwrap();
    assert_eq!(verdict, Verdict::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn wrong_api_key_is_an_auth_error_and_does_not_trip_the_breaker() {
    let sim = SimProc::start(&[]).await;
    let mut cfg = sim.config("wrong-key");
    cfg.breaker.failure_threshold = 1;
    let gw = Gateway::new(cfg).unwrap();
    for _ in 0..2 {
        let err = gw
            .send_sms(&sms("a1", "+4915100000030", "x"))
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::Auth { status: 401 }), "{err:?}");
    }
    let m = gw.metrics();
    assert_eq!(
        (m.send_sms.requests, m.send_sms.errors, m.send_sms.retries),
        (2, 2, 0)
    );
    assert_eq!(m.breaker_state, BreakerState::Closed);
    assert!(sim.messages("+4915100000030").await.is_empty());
}

#[tokio::test]
async fn idempotency_key_replays_and_conflicts() {
    let sim = SimProc::start(&[]).await;
    let gw = Gateway::new(sim.config(KEY)).unwrap();
    let first = gw
        .send_sms(&sms("same-id", "+4915100000040", "code 1"))
        .await
        .unwrap();
    let again = gw
        .send_sms(&sms("same-id", "+4915100000040", "code 1"))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(sim.messages("+4915100000040").await.len(), 1);
    let err = gw
        .send_sms(&sms("same-id", "+4915100000040", "code 2"))
        .await
        .unwrap_err();
    match err {
        GatewayError::Rejected { status, code, .. } => {
            assert_eq!((status, code.as_str()), (409, "idempotency_conflict"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn breaker_opens_when_the_gateway_is_down_and_fails_fast() {
    let mut sim = SimProc::start(&[]).await;
    let mut cfg = sim.config(KEY);
    cfg.retries = 1;
    cfg.breaker.failure_threshold = 2;
    cfg.breaker.cool_down = Duration::from_secs(60);
    let gw = Gateway::new(cfg).unwrap();
    gw.send_sms(&sms("b0", "+4915100000050", "up"))
        .await
        .unwrap();
    sim.child.kill().unwrap();
    sim.child.wait().unwrap();

    let err = gw
        .send_sms(&sms("b1", "+4915100000050", "down"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let m = gw.metrics();
    assert_eq!(
        m.send_sms.requests, 3,
        "one success, then 1 attempt + 1 retry"
    );
    assert_eq!(m.send_sms.retries, 1);
    assert_eq!(m.send_sms.errors, 2);
    assert_eq!(m.breaker_opened, 1);
    assert_eq!(m.breaker_state, BreakerState::Open);

    // Fails fast: refused by the open breaker before any attempt (no request
    // counted, so no connect was tried or waited for). A state check, not a
    // wall-clock limit, which flakes on a busy machine.
    let err = gw
        .start_verification(&verification(
            "b2",
            VerificationMode::Call,
            "+4915100000050",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Unavailable), "{err:?}");
    let m = gw.metrics();
    assert_eq!(m.start_verification.breaker_open, 1);
    assert_eq!(m.start_verification.requests, 0);
}

#[tokio::test]
async fn twilio_sms_and_calls() {
    let sim = SimProc::start(&[]).await;
    let gw = Gateway::new(sim.twilio_config(TOKEN)).unwrap();
    let id = gw
        .send_sms(&sms("t1", "+4915100000060", "Your code is 111222"))
        .await
        .unwrap();
    assert!(id.0.starts_with("SM"));
    let msgs = sim.messages("+4915100000060").await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["kind"], "twilio_sms");
    assert_eq!(msgs[0]["body"], "Your code is 111222");
    assert_eq!(msgs[0]["request"]["From"], "+15005550006");

    // A call: inline TwiML whose <Gather> posts to the callback, and a
    // StatusCallback for its end; the PIN is never sent. Its verdict comes
    // only through the callbacks, so there is nothing to poll.
    let mut call = verification("t2", VerificationMode::Call, "+4915100000061");
    call.pin_mode = PinMode::Pin(Secret::new("918273"));
    call.fraud_key = Some('0');
    call.speech = Some(radmfa_gateway::Speech {
        language: "de-DE".into(),
        voice: "alice".into(),
        text: "Dies ist eine Anmeldeüberprüfung.".into(),
    });
    call.from_number = Some("+15005550009".into());
    call.callbacks = Some(radmfa_gateway::Callbacks {
        gather: "https://radmfa.example/callback/twilio/voice/n1-x".into(),
        status: "https://radmfa.example/callback/twilio/status/n1-x".into(),
    });
    let id = gw.start_verification(&call).await.unwrap();
    assert!(id.0.starts_with("CA"));
    assert!(matches!(
        gw.wait_verdict(&id, deadline(1)).await,
        Err(GatewayError::Unsupported(_))
    ));
    let call = &sim.messages("+4915100000061").await[0]["request"];
    assert_eq!(
        call["StatusCallback"],
        "https://radmfa.example/callback/twilio/status/n1-x"
    );
    assert_eq!(call["StatusCallbackEvent"], "completed");
    assert_eq!(call["From"], "+15005550009");
    let twiml = call["Twiml"].as_str().unwrap();
    assert!(twiml.contains("<Gather"));
    assert!(twiml.contains(
        "<Say language=\"de-DE\" voice=\"alice\">Dies ist eine Anmeldeüberprüfung.</Say>"
    ));
    assert!(twiml.contains("action=\"https://radmfa.example/callback/twilio/voice/n1-x\""));
    assert!(!twiml.contains("918273"));
    // Without callbacks a call is refused before anything is sent.
    let err = gw
        .start_verification(&verification(
            "t5",
            VerificationMode::Call,
            "+4915100000066",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::InvalidRequest(_)), "{err:?}");
    // A two-way SMS is a Message with the given text.
    let mut two_way = verification("t6", VerificationMode::TwoWaySms, "+4915100000067");
    two_way.message = Some("Reply YES 1231 to approve".into());
    let id = gw.start_verification(&two_way).await.unwrap();
    assert!(id.0.starts_with("SM"));
    let msgs = sim.messages("+4915100000067").await;
    assert_eq!(msgs[0]["body"], "Reply YES 1231 to approve");

    let err = gw
        .start_verification(&verification(
            "t3",
            VerificationMode::Push,
            "+4915100000064",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Unsupported(_)), "{err:?}");

    let bad = Gateway::new(sim.twilio_config("wrong")).unwrap();
    let err = bad
        .send_sms(&sms("t4", "+4915100000065", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Auth { status: 401 }), "{err:?}");
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let sim = SimProc::start(&[]).await;
    let mut cfg = sim.config(KEY);
    cfg.extra_ca_pem = None;
    cfg.retries = 0;
    let gw = Gateway::new(cfg).unwrap();
    let err = gw
        .send_sms(&sms("c1", "+4915100000070", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Transport(_)), "{err:?}");
    assert!(sim.messages("+4915100000070").await.is_empty());
}

#[tokio::test]
async fn slow_gateway_times_out_and_retries_are_counted() {
    let sim = SimProc::start(&[]).await;
    let resp = sim
        .http()
        .post(format!("{}/sim/latency", sim.url()))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"ms": 3000}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let mut cfg = sim.config(KEY);
    cfg.timeout = Duration::from_millis(300);
    cfg.retries = 1;
    let gw = Gateway::new(cfg).unwrap();
    let err = gw
        .send_sms(&sms("s1", "+4915100000080", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Timeout), "{err:?}");
    let m = gw.metrics().send_sms;
    assert_eq!((m.requests, m.timeouts, m.errors, m.retries), (2, 2, 2, 1));
    assert_eq!(m.latency_buckets.iter().sum::<u64>(), 2);
}

#[tokio::test]
async fn protocol_errors_and_pin_mode() {
    let sim = SimProc::start(&[]).await;
    // A POST without Idempotency-Key is refused by the gateway.
    let resp = sim
        .http()
        .post(format!("{}/v1/sms", sim.url()))
        .bearer_auth(KEY)
        .json(
            &serde_json::json!({"id": "x1", "to": "+4915100000090", "body": "b",
            "unique_id": "u", "server_name": "s"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "invalid_request");

    let gw = Gateway::new(sim.config(KEY)).unwrap();
    let err = gw
        .wait_verdict(
            &radmfa_gateway::VerificationId("ver-999".into()),
            deadline(5),
        )
        .await
        .unwrap_err();
    match err {
        GatewayError::Rejected { status, code, .. } => {
            assert_eq!((status, code.as_str()), (404, "not_found"));
        }
        other => panic!("{other:?}"),
    }

    let mut req = verification("pin1", VerificationMode::Call, "+4915100000091");
    req.pin_mode = PinMode::Pin(Secret::new("7351"));
    let id = gw.start_verification(&req).await.unwrap();
    assert_eq!(
        gw.wait_verdict(&id, deadline(5)).await.unwrap(),
        Verdict::Approved
    );
    let rec = &sim.messages("+4915100000091").await[0]["request"];
    assert_eq!(rec["pin_mode"], "pin");
    assert_eq!(rec["pin"], "***", "the simulator does not keep the PIN");
}
