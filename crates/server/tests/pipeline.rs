//! The pipeline driven through `Node::handle_datagram` with a manual clock:
//! decisions, State handling, duplicate detection and drops, without sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use radmfa_otp::{Clock, ManualClock, StateKey};
use radmfa_radius::{
    encode_request, hide_password, verify_response, AttrType, Attribute, Code, Packet,
};
use radmfa_server::admin::{execute, AdminRequest, NewToken, NewUser};
use radmfa_server::counters::Counters;
use radmfa_server::hot::HotState;
use radmfa_server::pipeline::NodeParts;
use radmfa_server::{audit, open_store, Node, RuntimeConfig};
use radmfa_store::{AuditFilter, Method, Store, TokenAlgorithm, TokenKind};
use tokio_util::sync::CancellationToken;

const SECRET: &[u8] = b"testing123";
const SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const T0: u64 = 1_800_000_000;

struct Harness {
    _dir: tempfile::TempDir,
    node: Arc<Node>,
    store: Store,
    clock: ManualClock,
    state_key: StateKey,
    next_id: u8,
}

fn config(dir: &std::path::Path, radius: &str, extra: &str) -> RuntimeConfig {
    let text = format!(
        r#"
[server]
data_dir = "{}"
node_id = 7
[radius]
listen = ["127.0.0.1:0"]
{radius}
[password]
memory_kib = 64
iterations = 1
[[client]]
name = "nas"
address = "127.0.0.0/8"
secret = "testing123"
{extra}
"#,
        dir.display()
    );
    RuntimeConfig::parse(&text, "test.toml").expect("config")
}

async fn harness(extra: &str) -> Harness {
    harness_with("", extra).await
}

/// [`harness`] with more keys in `[radius]`.
async fn harness_with(radius: &str, extra: &str) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Arc::new(config(dir.path(), radius, extra));
    let store = open_store(&cfg).expect("store");
    // bare: TOTP method, never enrolled.
    for (name, method) in [
        ("alice", Method::Totp),
        ("nomfa", Method::None),
        ("bare", Method::Totp),
    ] {
        execute(
            &store,
            &cfg,
            AdminRequest::UserAdd(NewUser {
                name: name.into(),
                display_name: String::new(),
                email: String::new(),
                phone: String::new(),
                language: String::new(),
                method,
                groups: vec![],
                password: Some("pw".into()),
                device_token: String::new(),
                pin: None,
                enabled: true,
                send_email: false,
                generate_pin: false,
            }),
        )
        .expect("add user");
    }
    execute(
        &store,
        &cfg,
        AdminRequest::TokenEnroll(NewToken {
            user: "alice".into(),
            secret: Some(SEED_B32.into()),
            kind: TokenKind::Totp,
            algorithm: TokenAlgorithm::Sha1,
            digits: 6,
            period: 30,
            replace: false,
        }),
    )
    .expect("enroll");
    let clock = ManualClock::new(T0);
    let stop = CancellationToken::new();
    let (sink, _writer) = audit::spawn_writer(store.clone(), stop.clone());
    let (hot, _otp) = HotState::new(store.clone(), 1000, stop);
    let state_key = StateKey::generate();
    let node = Node::new(
        cfg,
        NodeParts {
            store: store.clone(),
            state_key: state_key.clone(),
            hot,
            gateway: None,
            counters: Arc::new(Counters::default()),
            audit: sink,
            clock: Arc::new(clock.clone()) as Arc<dyn Clock>,
            peers: None,
            peer_stats: Arc::default(),
        },
    )
    .expect("node");
    Harness {
        _dir: dir,
        node: Arc::new(node),
        store,
        clock,
        state_key,
        next_id: 0,
    }
}

fn source() -> SocketAddr {
    "127.0.0.1:40000".parse().expect("addr")
}

impl Harness {
    fn code(&self, offset_steps: i64) -> String {
        // From Python's hmac/hashlib (tests/py/otp.py), not radmfa-otp.
        let t = (self.clock.now_unix() as i64 + offset_steps * 30) as u64;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/py/otp.py");
        let out = std::process::Command::new("python3")
            .args([script, "totp", SEED_B32, &t.to_string()])
            .output()
            .expect("python3 (tests/py/otp.py computes the expected codes)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }

    fn request(&mut self, user: &str, password: &str, state: Option<&[u8]>) -> (Vec<u8>, [u8; 16]) {
        self.next_id = self.next_id.wrapping_add(1);
        let mut auth = [0u8; 16];
        auth[0] = self.next_id;
        auth[1..9].copy_from_slice(&self.clock.now_unix().to_be_bytes());
        let mut attrs = vec![
            Attribute::string(AttrType::USER_NAME, user),
            Attribute::new(
                AttrType::USER_PASSWORD,
                hide_password(password.as_bytes(), SECRET, &auth).expect("hide"),
            ),
        ];
        if let Some(s) = state {
            attrs.push(Attribute::new(AttrType::STATE, s.to_vec()));
        }
        let raw = encode_request(Code::ACCESS_REQUEST, self.next_id, &auth, &attrs, SECRET)
            .expect("encode");
        (raw, auth)
    }

    async fn send(&mut self, user: &str, password: &str, state: Option<&[u8]>) -> Packet {
        let (raw, auth) = self.request(user, password, state);
        let reply = self
            .node
            .handle_datagram(&raw, source())
            .await
            .expect("a reply");
        verify_response(&reply, &auth, SECRET, true).expect("reply authenticates");
        let p = Packet::decode(&reply).expect("decode");
        assert_eq!(
            p.attributes.first().map(|a| a.typ),
            Some(AttrType::MESSAGE_AUTHENTICATOR),
            "Message-Authenticator must come first"
        );
        p
    }
}

fn message(p: &Packet) -> String {
    p.attrs(AttrType::REPLY_MESSAGE)
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        .collect()
}

#[tokio::test]
async fn inline_totp_accepts_once() {
    let mut h = harness("").await;
    let code = h.code(0);
    let p = h.send("alice", &format!("pw{code}"), None).await;
    assert_eq!(p.code, Code::ACCESS_ACCEPT, "{}", message(&p));
    let p = h.send("alice", &format!("pw{code}"), None).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    assert!(message(&p).contains("already used"), "{}", message(&p));
    // The next step is a new code.
    h.clock.advance(30);
    let p = h.send("alice", &format!("pw{}", h.code(0)), None).await;
    assert_eq!(p.code, Code::ACCESS_ACCEPT);
}

#[tokio::test]
async fn drift_window_is_one_step() {
    let mut h = harness("").await;
    let p = h.send("alice", &format!("pw{}", h.code(-2)), None).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    let p = h.send("alice", &format!("pw{}", h.code(-1)), None).await;
    assert_eq!(p.code, Code::ACCESS_ACCEPT);
}

#[tokio::test]
async fn wrong_password_or_code_rejects() {
    let mut h = harness("").await;
    let p = h.send("alice", &format!("nope{}", h.code(0)), None).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    assert!(message(&p).contains("Wrong user name or password"));
    let p = h.send("alice", "pw000000", None).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    let p = h.send("mallory", "pw123456", None).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    assert!(message(&p).contains("Wrong user name or password"));
}

#[tokio::test]
async fn challenge_round_trip_and_single_use_state() {
    let mut h = harness("").await;
    let p = h.send("alice", "pw", None).await;
    assert_eq!(p.code, Code::ACCESS_CHALLENGE);
    let state = p.attr(AttrType::STATE).expect("State").value.clone();
    assert_eq!(state.len(), 35);
    let token = h.state_key.open(&state).expect("our State");
    assert_eq!(token.node_id, 7);
    let code = h.code(0);
    let p = h.send("alice", &code, Some(&state)).await;
    assert_eq!(p.code, Code::ACCESS_ACCEPT, "{}", message(&p));
    // The same State again: the session is gone.
    h.clock.advance(30);
    let p = h.send("alice", &h.code(0), Some(&state)).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
}

#[tokio::test]
async fn challenge_expires_and_forged_state_rejects() {
    let mut h = harness("").await;
    let p = h.send("alice", "pw", None).await;
    let state = p.attr(AttrType::STATE).expect("State").value.clone();
    h.clock.advance(121);
    let p = h.send("alice", &h.code(0), Some(&state)).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    assert!(message(&p).contains("expired"));

    let mut forged = state.clone();
    forged[10] ^= 1;
    let p = h.send("alice", &h.code(0), Some(&forged)).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);

    // A State of another node (valid MAC, other id) is not ours to answer.
    let other = h.state_key.seal(8, &[1; 16]);
    let p = h.send("alice", &h.code(0), Some(&other)).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    assert!(message(&p).contains("another server"));

    // A State for alice cannot be used by bob.
    let p = h.send("alice", "pw", None).await;
    let state = p.attr(AttrType::STATE).expect("State").value.clone();
    let p = h.send("nomfa", &h.code(0), Some(&state)).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
}

#[tokio::test]
async fn method_none_and_disabled_users() {
    let mut h = harness("").await;
    let p = h.send("nomfa", "pw", None).await;
    assert_eq!(p.code, Code::ACCESS_ACCEPT);
    h.store.set_user_enabled("alice", false).expect("disable");
    h.node.after_admin_write(Some("alice"), false);
    let p = h.send("alice", &format!("pw{}", h.code(0)), None).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    assert!(message(&p).contains("disabled"));
    // Disabled and never enrolled: refused as disabled, not "not enrolled".
    h.store.set_user_enabled("bare", false).expect("disable");
    h.node.after_admin_write(Some("bare"), false);
    let p = h.send("bare", "pw", None).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    assert!(message(&p).contains("disabled"), "{}", message(&p));
}

#[tokio::test]
async fn inline_only_policy_does_not_challenge() {
    let mut h = harness("[[policy]]\nname = \"default\"\notp_mode = \"inline\"\n").await;
    let p = h.send("alice", "pw", None).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    let p = h.send("alice", &format!("pw{}", h.code(0)), None).await;
    assert_eq!(p.code, Code::ACCESS_ACCEPT);
}

#[tokio::test]
async fn otp_only_first_factor() {
    let mut h = harness("[[policy]]\nname = \"default\"\nfirst_factor = \"none\"\n").await;
    let p = h.send("alice", &h.code(0), None).await;
    assert_eq!(p.code, Code::ACCESS_ACCEPT, "{}", message(&p));
    // Users without a second factor cannot pass a policy with no first factor.
    let p = h.send("nomfa", "pw", None).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
}

/// A policy without a first factor checks only the user's TOTP code: its
/// decisions count under `method="totp"` in `/metrics`, inline and through
/// an Access-Challenge alike (they were counted as method "none").
#[tokio::test]
async fn code_only_logins_count_under_their_method() {
    let mut h = harness("[[policy]]\nname = \"default\"\nfirst_factor = \"none\"\n").await;
    let p = h.send("alice", &h.code(0), None).await;
    assert_eq!(p.code, Code::ACCESS_ACCEPT, "{}", message(&p));
    h.clock.advance(30);
    let p = h.send("alice", "x", None).await;
    assert_eq!(p.code, Code::ACCESS_CHALLENGE, "{}", message(&p));
    let state = p.attr(AttrType::STATE).expect("State").value.clone();
    let p = h.send("alice", &h.code(0), Some(&state)).await;
    assert_eq!(p.code, Code::ACCESS_ACCEPT, "{}", message(&p));

    let text = radmfa_server::api::metrics::render(&h.node, Default::default());
    let outcomes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("radmfa_auth_outcomes_total{"))
        .collect();
    assert_eq!(
        outcomes,
        [
            "radmfa_auth_outcomes_total{method=\"totp\",result=\"accept\"} 2",
            "radmfa_auth_outcomes_total{method=\"totp\",result=\"challenge\"} 1",
        ],
        "{text}"
    );
}

#[tokio::test]
async fn duplicates_missing_ma_and_unknown_clients() {
    let mut h = harness("").await;
    let (raw, _) = h.request("alice", &format!("pw{}", h.code(0)), None);
    let first = h.node.handle_datagram(&raw, source()).await.expect("reply");
    let again = h
        .node
        .handle_datagram(&raw, source())
        .await
        .expect("cached");
    assert_eq!(first, again, "a retransmission gets the same bytes");
    let c = h.node.counters().to_json();
    assert_eq!(c["duplicates_answered_from_cache"], 1);
    assert_eq!(c["access_accepts"], 1, "the pipeline ran once");

    // Same bytes from another source port is another request (and a replay).
    let other: SocketAddr = "127.0.0.1:40001".parse().expect("addr");
    let p = h.node.handle_datagram(&raw, other).await.expect("reply");
    assert_eq!(
        Packet::decode(&p).expect("decode").code,
        Code::ACCESS_REJECT
    );

    // Without Message-Authenticator: dropped.
    let auth = [9u8; 16];
    let attrs = vec![
        Attribute::string(AttrType::USER_NAME, "alice"),
        Attribute::new(
            AttrType::USER_PASSWORD,
            hide_password(b"pw", SECRET, &auth).expect("hide"),
        ),
    ];
    let bare = Packet {
        code: Code::ACCESS_REQUEST,
        identifier: 1,
        authenticator: auth,
        attributes: attrs,
    }
    .encode()
    .expect("encode");
    assert!(h.node.handle_datagram(&bare, source()).await.is_none());
    // Wrong secret: dropped.
    let wrong = encode_request(Code::ACCESS_REQUEST, 2, &auth, &[], b"wrong-secret").expect("enc");
    assert!(h.node.handle_datagram(&wrong, source()).await.is_none());
    // Garbage: dropped.
    assert!(h.node.handle_datagram(&[1, 2, 3], source()).await.is_none());
    // Unknown client.
    let far: SocketAddr = "192.0.2.1:1812".parse().expect("addr");
    assert!(h.node.handle_datagram(&raw, far).await.is_none());
    let c = h.node.counters().to_json();
    assert_eq!(c["dropped_missing_message_authenticator"], 1);
    assert_eq!(c["dropped_bad_message_authenticator"], 1);
    assert_eq!(c["dropped_malformed"], 1);
    assert_eq!(c["dropped_unknown_client"], 1);
}

/// `[radius] duplicate_cache_entries` bounds the replies kept: beyond it the
/// oldest are forgotten, so their retransmission is processed afresh.
#[tokio::test]
async fn duplicate_cache_entries_is_honoured() {
    let h = harness_with("duplicate_cache_entries = 1024", "").await;
    let status = |id: u8, n: u32| {
        let mut auth = [5u8; 16];
        auth[..4].copy_from_slice(&n.to_be_bytes());
        encode_request(Code::STATUS_SERVER, id, &auth, &[], SECRET).expect("enc")
    };
    // Distinct source addresses, so the per-source rate limit stays out of it.
    let from =
        |n: u32| -> SocketAddr { SocketAddr::from(([127, 1, (n >> 8) as u8, n as u8], 40000)) };
    let first = status(0, 0);
    h.node
        .handle_datagram(&first, from(0))
        .await
        .expect("reply");
    h.node
        .handle_datagram(&first, from(0))
        .await
        .expect("cached");
    assert_eq!(
        h.node.counters().to_json()["duplicates_answered_from_cache"],
        1
    );
    for n in 1..3000u32 {
        h.node
            .handle_datagram(&status(n as u8, n), from(n))
            .await
            .expect("reply");
    }
    // 3000 replies against a bound of 1024: the first one is forgotten.
    h.node
        .handle_datagram(&first, from(0))
        .await
        .expect("reply");
    let c = h.node.counters().to_json();
    assert_eq!(c["duplicates_answered_from_cache"], 1, "{c}");
    assert_eq!(c["status_server_replies"], 3001, "{c}");
}

#[tokio::test]
async fn status_server_and_proxy_state() {
    let h = harness("").await;
    let auth = [3u8; 16];
    let raw = encode_request(Code::STATUS_SERVER, 9, &auth, &[], SECRET).expect("enc");
    let reply = h.node.handle_datagram(&raw, source()).await.expect("reply");
    verify_response(&reply, &auth, SECRET, true).expect("valid");
    assert_eq!(Packet::decode(&reply).expect("p").code, Code::ACCESS_ACCEPT);

    let attrs = vec![
        Attribute::string(AttrType::USER_NAME, "nomfa"),
        Attribute::new(
            AttrType::USER_PASSWORD,
            hide_password(b"pw", SECRET, &auth).expect("hide"),
        ),
        Attribute::new(AttrType::PROXY_STATE, b"one".to_vec()),
        Attribute::new(AttrType::PROXY_STATE, b"two".to_vec()),
    ];
    let raw = encode_request(Code::ACCESS_REQUEST, 10, &auth, &attrs, SECRET).expect("enc");
    let reply = h.node.handle_datagram(&raw, source()).await.expect("reply");
    let p = Packet::decode(&reply).expect("p");
    let ps: Vec<&[u8]> = p
        .attrs(AttrType::PROXY_STATE)
        .map(|a| a.value.as_slice())
        .collect();
    assert_eq!(ps, vec![&b"one"[..], &b"two"[..]]);
}

#[tokio::test]
async fn decisions_are_audited() {
    let mut h = harness("").await;
    let p = h.send("alice", &format!("pw{}", h.code(0)), None).await;
    assert_eq!(p.code, Code::ACCESS_ACCEPT);
    let p = h.send("alice", "wrong", None).await;
    assert_eq!(p.code, Code::ACCESS_REJECT);
    // The writer is asynchronous: wait for it.
    let mut recs = Vec::new();
    for _ in 0..100 {
        recs = h
            .store
            .query_audit(&AuditFilter {
                user: Some("alice".into()),
                ..AuditFilter::default()
            })
            .expect("query");
        // Sign-ins only: the harness's enrolment is audited too (mode "admin").
        recs.retain(|r| r.mode != radmfa_server::audit::ADMIN_MODE);
        if recs.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0].result, "accept");
    assert_eq!(recs[0].mode, "pap+totp-inline");
    assert_eq!(recs[0].client_name, "nas");
    assert_eq!(recs[0].client_ip, "127.0.0.1");
    assert_eq!(recs[1].result, "reject");
    assert_eq!(recs[1].reason, "wrong_password");
}

#[tokio::test]
async fn retransmission_while_in_flight_is_absorbed() {
    let mut h = harness("").await;
    let (raw, _) = h.request("alice", &format!("pw{}", h.code(0)), None);
    // The first copy waits for argon2 on the blocking pool (the credential
    // cache is cold), so the second copy arrives while it is in flight.
    let (first, second) = tokio::join!(
        h.node.handle_datagram(&raw, source()),
        h.node.handle_datagram(&raw, source())
    );
    assert!(first.is_some());
    assert!(
        second.is_none(),
        "the in-flight copy must not be answered twice"
    );
    let c = h.node.counters().to_json();
    assert_eq!(c["duplicates_in_flight_dropped"], 1);
    assert_eq!(c["access_accepts"], 1);
    // Once answered, a third copy gets the cached reply.
    let third = h.node.handle_datagram(&raw, source()).await;
    assert_eq!(third, first);
}
