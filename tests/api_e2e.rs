//! The admin HTTPS API against the real binary: token scopes (401/403),
//! user CRUD, enrollment then a radclient login with a TOTP code from the
//! returned otpauth URI, audit report filters and CSV, Prometheus /metrics,
//! /healthz and /readyz; then schemathesis fuzzes the live server with
//! docs/openapi.yaml.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{expect, hotp_at, login, totp_now, ConfigOptions, Env, Server};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

/// A CA and a server certificate for 127.0.0.1 / localhost, written to `dir`.
/// Returns (CA PEM path, cert path, key path).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "radmfa api test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
        .expect("server params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    let paths = (
        dir.join("api-ca.pem"),
        dir.join("api.pem"),
        dir.join("api.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write CA");
    std::fs::write(&paths.1, cert.pem()).expect("write cert");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key");
    paths
}

struct Api {
    env: Env,
    _certs: tempfile::TempDir,
    ca: PathBuf,
    /// `https://ADDR` from the ready file, once started ([`Api::wait_up`]).
    base: std::sync::OnceLock<String>,
    http: Client,
}

/// An environment whose config has an [api] section (and
/// `extra` appended), the server not started yet.
fn api_env(extra: &str) -> Api {
    let certs = tempfile::tempdir().expect("cert dir");
    let (ca, cert, key) = make_certs(certs.path());
    let env = Env::with_options(ConfigOptions {
        extra: format!("[api]\nlisten = \"127.0.0.1:0\"\ncert = {cert:?}\nkey = {key:?}\n{extra}"),
        ..ConfigOptions::default()
    });
    let ca_pem = std::fs::read(&ca).expect("read CA");
    let http = Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).expect("CA pem"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");
    Api {
        env,
        _certs: certs,
        ca,
        base: std::sync::OnceLock::new(),
        http,
    }
}

impl Api {
    /// `radmfa token-admin create`; returns the printed token.
    fn token(&self, name: &str, scopes: &str) -> String {
        let out = self
            .env
            .radmfa(&["token-admin", "create", "--name", name, "--scope", scopes]);
        out.assert_ok();
        let token = out.stdout.trim().to_string();
        assert!(token.starts_with("radmfa_"), "{}", out.stdout);
        token
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.base()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.text().await.expect("body"))
    }

    /// [`Api::json`] with `token` and no body.
    async fn no_body(
        &self,
        method: Method,
        path: &str,
        token: &str,
        expected: StatusCode,
    ) -> Value {
        self.json(method, path, Some(token), None, expected).await
    }

    /// [`Api::json`] with `token` and `body`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Value,
        expected: StatusCode,
    ) -> Value {
        self.json(method, path, Some(token), Some(body), expected)
            .await
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let (status, text) = self.call(method.clone(), path, token, body).await;
        assert_eq!(status, expected, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
    }

    /// The API's base URL (after [`Api::wait_up`]).
    fn base(&self) -> &str {
        self.base
            .get()
            .expect("the server is started (Api::wait_up)")
    }

    /// Takes the API's bound address from the ready file (written once
    /// every listener is up, so /healthz answers at once).
    /// `GET path` answers 200 with `count` = `n`.
    async fn expect_count(&self, path: &str, token: &str, n: usize) {
        let v = self.no_body(Method::GET, path, token, StatusCode::OK).await;
        assert_eq!(v["count"], n, "{path}: {v}");
    }

    async fn wait_up(&self, server: &Server) {
        let addr = server.ready.api.unwrap_or_else(|| {
            panic!(
                "the ready file names no api address; log:\n{}",
                server.log()
            )
        });
        let _ = self.base.set(format!("https://{addr}"));
        let r = self
            .http
            .get(format!("{}/healthz", self.base()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("/healthz right after the ready file: {e}"));
        assert_eq!(r.status(), StatusCode::OK);
    }
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

/// The base32 secret of an otpauth URI.
fn uri_secret(uri: &str) -> String {
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap_or_else(|| panic!("no secret in {uri}"))
        .to_string()
}

/// Prometheus text: (metric name with labels, value) per sample; panics on
/// a line that is not a comment or a well-formed sample.
fn parse_exposition(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let c = c.trim_start();
            assert!(
                c.starts_with("HELP ") || c.starts_with("TYPE "),
                "bad comment {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels in {line:?}");
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.push((series.to_string(), v));
    }
    out
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no sample {series}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_end_to_end() {
    let api = api_env("metrics_loopback = true\n");
    let full = api.token("automation", "admin");
    let reader = api.token("helpdesk", "users:read");
    let reports = api.token("siem", "reports:read,cluster:read");
    // Scopes are checked when the token is made.
    api.env
        .radmfa(&[
            "token-admin",
            "create",
            "--name",
            "x",
            "--scope",
            "users:delete",
        ])
        .assert_code(1);
    let server = api.env.start();
    api.wait_up(&server).await;
    let addr = server.addr_string();

    // Health without auth.
    let v = api
        .json(Method::GET, "/readyz", None, None, StatusCode::OK)
        .await;
    assert_eq!(v["status"], "ready");

    // 401: no token, unknown token; 403: token without the scope.
    let v = api
        .json(
            Method::GET,
            "/api/v1/users",
            None,
            None,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert_eq!(error_code(&v), "unauthorized");
    let v = api
        .no_body(
            Method::GET,
            "/api/v1/users",
            "radmfa_00000000",
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert_eq!(error_code(&v), "unauthorized");
    let new_user = json!({"name": "alice", "display_name": "Alice", "password": "correct-horse"});
    let v = api
        .send(
            Method::POST,
            "/api/v1/users",
            &reader,
            new_user.clone(),
            StatusCode::FORBIDDEN,
        )
        .await;
    assert_eq!(error_code(&v), "forbidden");
    api.no_body(
        Method::GET,
        "/api/v1/clients",
        &reader,
        StatusCode::FORBIDDEN,
    )
    .await;

    // CRUD.
    let v = api
        .send(
            Method::POST,
            "/api/v1/users",
            &full,
            new_user.clone(),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(v["name"], "alice");
    assert_eq!(v["has_password"], true);
    assert!(!v.to_string().contains("correct-horse"), "{v}");
    let v = api
        .send(
            Method::POST,
            "/api/v1/users",
            &full,
            new_user,
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(error_code(&v), "conflict");
    api.send(
        Method::POST,
        "/api/v1/users",
        &full,
        json!({"name": "bob", "method": "sms", "phone": "+31612345678", "language": "nl-BE"}),
        StatusCode::CREATED,
    )
    .await;
    // A language radmfa does not speak is refused.
    let v = api
        .send(
            Method::POST,
            "/api/v1/users",
            &full,
            json!({"name": "dora", "language": "es"}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(error_code(&v), "invalid_request");
    let v = api
        .send(
            Method::POST,
            "/api/v1/users",
            &full,
            json!({"name": "carol", "phone": "12"}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(error_code(&v), "invalid_request");
    let v = api
        .no_body(
            Method::GET,
            "/api/v1/users?limit=1&offset=1",
            &reader,
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["total"], 2);
    assert_eq!(v["items"][0]["name"], "bob");
    assert_eq!(v["items"][0]["language"], "nl-BE");
    let v = api
        .send(
            Method::PATCH,
            "/api/v1/users/alice",
            &full,
            json!({"display_name": "Alice Example", "groups": ["vpn"], "language": "de"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["display_name"], "Alice Example");
    assert_eq!(v["language"], "de");
    assert_eq!(v["groups"], json!(["vpn"]));
    let v = api
        .no_body(
            Method::POST,
            "/api/v1/users/bob/disable",
            &full,
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["enabled"], false);
    let v = api
        .no_body(Method::GET, "/api/v1/users/bob", &reader, StatusCode::OK)
        .await;
    assert_eq!(v["enabled"], false);
    api.send(
        Method::PUT,
        "/api/v1/users/bob/pin",
        &full,
        json!({"pin": "4711"}),
        StatusCode::OK,
    )
    .await;
    let v = api
        .no_body(
            Method::DELETE,
            "/api/v1/users/bob/pin",
            &full,
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["pin_mode"], "standard");
    api.no_body(Method::DELETE, "/api/v1/users/bob", &full, StatusCode::OK)
        .await;
    let v = api
        .no_body(
            Method::GET,
            "/api/v1/users/bob",
            &reader,
            StatusCode::NOT_FOUND,
        )
        .await;
    assert_eq!(error_code(&v), "not_found");
    api.send(
        Method::PUT,
        "/api/v1/users/alice/password",
        &full,
        json!({"password": "battery-staple"}),
        StatusCode::OK,
    )
    .await;

    // Enroll, then sign in with a code computed from the returned URI.
    let v = api
        .send(
            Method::POST,
            "/api/v1/users/nobody/token",
            &full,
            json!({}),
            StatusCode::NOT_FOUND,
        )
        .await;
    assert_eq!(error_code(&v), "not_found");
    let v = api
        .send(
            Method::POST,
            "/api/v1/users/alice/token",
            &full,
            json!({"type": "totp"}),
            StatusCode::CREATED,
        )
        .await;
    let uri = v["uri"].as_str().expect("uri").to_string();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let secret = common::decode_secret(&uri_secret(&uri));
    let r = login(
        &addr,
        "alice",
        &format!("battery-staple{}", totp_now(&secret)),
        None,
    );
    expect(&r, "Access-Accept");
    let r = login(&addr, "alice", "wrong-password000000", None);
    expect(&r, "Access-Reject");

    // Clients: created, listed without the secret, deleted.
    let v = api
        .send(
            Method::POST,
            "/api/v1/clients",
            &full,
            json!({"name": "vpn1", "address": "10.0.0.5", "secret": "s3cret-shared-123"}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(v["address"], "10.0.0.5/32");
    let v = api
        .no_body(Method::GET, "/api/v1/clients", &full, StatusCode::OK)
        .await;
    assert!(!v.to_string().contains("s3cret"), "{v}");
    assert_eq!(v["items"][0]["name"], "vpn1");
    api.no_body(
        Method::DELETE,
        "/api/v1/clients/vpn1",
        &full,
        StatusCode::OK,
    )
    .await;
    let v = api
        .no_body(Method::GET, "/api/v1/policies", &full, StatusCode::OK)
        .await;
    assert_eq!(v["items"][0]["name"], "default");

    // Reports: filters and CSV (the audit writer is asynchronous: poll).
    let path = "/api/v1/reports?user=alice&result=accept&method=totp&client=localhost";
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let v = api
            .json(Method::GET, path, Some(&reports), None, StatusCode::OK)
            .await;
        if v["count"] == 1 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v["count"], 1, "{v}");
    assert_eq!(v["items"][0]["mode"], "pap+totp-inline");
    for (q, n) in [
        ("user=alice&client=localhost", 2),
        ("user=alice&result=reject", 1),
        ("method=sms", 0),
        ("client=other", 0),
        ("user=alice&to=1", 0),
        ("user=alice&from=2000-01-01T00:00:00Z&limit=1", 1),
    ] {
        api.expect_count(&format!("/api/v1/reports?{q}"), &reports, n)
            .await;
    }
    let (status, csv) = api
        .call(
            Method::GET,
            &format!("{path}&format=csv"),
            Some(&reports),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].starts_with("time,time_ms,user,mode,result"),
        "{csv}"
    );
    assert!(lines[1].contains(",alice,pap+totp-inline,accept,"), "{csv}");
    // The API's writes are in the audit log with the token's name and the
    // outcome (the second, refused add of alice too), never the password.
    let v = api
        .no_body(
            Method::GET,
            "/api/v1/reports?user=alice&client=api",
            &reports,
            StatusCode::OK,
        )
        .await;
    let adds: Vec<&Value> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|x| x.starts_with("user_add"))
        })
        .collect();
    assert_eq!(adds.len(), 2, "{v}");
    assert_eq!(
        (
            adds[0]["result"].as_str(),
            adds[0]["actor"].as_str(),
            adds[0]["mode"].as_str()
        ),
        (Some("ok"), Some("api token automation"), Some("admin")),
        "{v}"
    );
    assert_eq!(adds[1]["result"], "failed", "{v}");
    assert!(!v.to_string().contains("correct-horse"), "{v}");
    let v = api
        .no_body(
            Method::GET,
            "/api/v1/reports?format=xml",
            &reports,
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(error_code(&v), "invalid_request");
    // The CLI has the same filters.
    let out = api.env.radmfa(&[
        "report",
        "--user",
        "alice",
        "--result",
        "accept",
        "--method",
        "totp",
        "--client",
        "localhost",
        "--format",
        "csv",
    ]);
    out.assert_ok();
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);

    let v = api
        .no_body(Method::GET, "/api/v1/cluster", &reports, StatusCode::OK)
        .await;
    assert_eq!(v["role"], "primary");
    assert!(v["stats"]["access_accepts"].as_u64() >= Some(1), "{v}");

    // Metrics: open on loopback (no metrics_token, metrics_loopback), parsed.
    let (status, text) = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let samples = parse_exposition(&text);
    assert!(
        sample(
            &samples,
            "radmfa_replies_total{client=\"localhost\",code=\"access_accept\"}"
        ) >= 1.0
    );
    let count = sample(
        &samples,
        "radmfa_reply_latency_seconds_count{client=\"localhost\",code=\"access_accept\"}",
    );
    let inf = sample(
        &samples,
        "radmfa_reply_latency_seconds_bucket{client=\"localhost\",code=\"access_accept\",le=\"+Inf\"}",
    );
    assert_eq!(count, inf);
    assert!(
        sample(
            &samples,
            "radmfa_auth_outcomes_total{method=\"totp\",result=\"accept\"}"
        ) >= 1.0
    );
    assert_eq!(sample(&samples, "radmfa_store_users"), 1.0);
    assert_eq!(sample(&samples, "radmfa_store_tokens"), 1.0);
    assert_eq!(sample(&samples, "radmfa_store_admin_tokens"), 3.0);
    sample(&samples, "radmfa_dropped_total{reason=\"unknown_client\"}");
    sample(&samples, "radmfa_gateway_requests_total{op=\"send_sms\"}");

    // Revoked through the control socket while serving: 401 at once.
    api.env
        .radmfa(&["token-admin", "revoke", "helpdesk"])
        .assert_ok();
    api.no_body(
        Method::GET,
        "/api/v1/users",
        &reader,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let listed = api.env.radmfa(&["token-admin", "list", "--json"]);
    listed.assert_ok();
    assert!(!listed.stdout.contains("radmfa_"), "{}", listed.stdout);
    assert_eq!(listed.json().as_array().map(Vec::len), Some(2));

    // API writes are logged with the token's name, never the token.
    let (_, log) = server.terminate();
    assert!(log.contains("automation"), "{log}");
    assert!(log.contains("admin api write done"), "{log}");
    assert!(!log.contains(&full), "the token leaked into the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_token_is_required_when_set() {
    let api = api_env("metrics_token = \"scrape-me-0123456789\"\n");
    let server = api.env.start();
    api.wait_up(&server).await;
    let (status, _) = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api
        .call(Method::GET, "/metrics", Some("scrape-me-0123456780"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, text) = api
        .call(Method::GET, "/metrics", Some("scrape-me-0123456789"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!parse_exposition(&text).is_empty());
}

/// schemathesis (pinned in .ci/run) against the live server and
/// docs/openapi.yaml: no 5xx, responses match the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_or_schema_mismatches() {
    if !common::require_tool("schemathesis", "pip install schemathesis==4.32.5") {
        return;
    }
    let api = api_env("");
    let token = api.token("fuzzer", "admin");
    let server = api.env.start();
    api.wait_up(&server).await;
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml");
    // --max-time bounds the fuzzing phase only; the deadline bounds the process.
    let out = common::tools::output_within(
        std::process::Command::new("schemathesis")
            .arg("run")
            .arg(&spec)
            .args(["--url", api.base()])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .arg("--tls-verify")
            .arg(&api.ca)
            .args(["--max-examples", "10"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance",
            ])
            .args(["--workers", "1", "--max-time", "40", "--seed", "1"])
            .current_dir(api.env.path())
            .env("NO_COLOR", "1"),
        std::time::Duration::from_secs(240),
        "schemathesis",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        server.log()
    );
}

/// The security headers every API and portal response must carry.
const SECURITY_HEADERS: [&str; 4] = [
    "content-security-policy",
    "strict-transport-security",
    "x-frame-options",
    "x-content-type-options",
];

/// Issue 15 findings 5 and 11 through the API: security headers on every
/// response, errors included (405, body too large, wrong type); the push device token is
/// never shown (a reader sees only whether there is one); /metrics is
/// closed without a metrics_token unless metrics_loopback says otherwise;
/// control characters in user text are refused with 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_headers_device_token_metrics_and_user_text() {
    let api = api_env("max_body_bytes = 1024\n");
    let writer = api.token("writer", "users:write");
    let reader = api.token("reader", "users:read");
    let server = api.env.start();
    api.wait_up(&server).await;

    // Errors answered by axum itself carry the headers too.
    let big = "x".repeat(4096);
    let cases = [
        (
            api.http
                .delete(format!("{}/api/v1/users", api.base()))
                .bearer_auth(&writer),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            api.http
                .post(format!("{}/api/v1/users", api.base()))
                .bearer_auth(&writer)
                .header("content-type", "text/plain")
                .body("{\"name\":\"plain\"}"),
            // 415, mapped to 400 invalid_request by the handler
            StatusCode::BAD_REQUEST,
        ),
        (
            api.http.get(format!("{}/healthz", api.base())),
            StatusCode::OK,
        ),
        (
            api.http
                .post(format!("{}/api/v1/users", api.base()))
                .bearer_auth(&writer)
                .json(&json!({"name": "big", "display_name": big})),
            // last (the server may close the connection); 413, mapped to 400 invalid_request by the handler
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (req, expected) in cases {
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), expected, "{:?}", resp.url().path());
        for h in SECURITY_HEADERS {
            assert!(
                resp.headers().contains_key(h),
                "{expected}: no {h}: {:?}",
                resp.headers()
            );
        }
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        assert_eq!(resp.headers()["x-frame-options"], "DENY");
    }

    // The device token is write-only.
    const DEVICE: &str = "dev-token-Secret-0123456789";
    let created = api
        .send(
            Method::POST,
            "/api/v1/users",
            &writer,
            json!({"name": "pat", "method": "push", "device_token": DEVICE}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(created["has_device_token"], true, "{created}");
    for path in ["/api/v1/users/pat", "/api/v1/users"] {
        let (status, text) = api.call(Method::GET, path, Some(&reader), None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(
            !text.contains(DEVICE),
            "{path} shows the device token: {text}"
        );
        assert!(text.contains("\"has_device_token\":true"), "{text}");
    }
    let shown = api.env.radmfa(&["user", "show", "pat", "--json"]).json();
    assert!(!shown.to_string().contains(DEVICE), "{shown}");

    // /metrics: closed without a token unless metrics_loopback = true.
    let (status, text) = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("metrics_token"), "{text}");

    // Control characters in user text: 400, nothing written.
    for body in [
        json!({"name": "eve\r\nINFO forged"}),
        json!({"name": "eve", "display_name": "Eve\u{1b}[2J"}),
        json!({"name": "eve", "email": "eve@example.org\n"}),
        json!({"name": "eve", "groups": ["vpn", "adm\u{85}"]}),
        json!({"name": "eve "}),
    ] {
        let v = api
            .send(
                Method::POST,
                "/api/v1/users",
                &writer,
                body.clone(),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(error_code(&v), "invalid_request", "{body}: {v}");
    }
    api.no_body(
        Method::GET,
        "/api/v1/users/eve",
        &reader,
        StatusCode::NOT_FOUND,
    )
    .await;
    let v = api
        .send(
            Method::PATCH,
            "/api/v1/users/pat",
            &writer,
            json!({"groups": ["ok", "bad\u{7}"]}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("control characters")),
        "{v}"
    );
    drop(server);
}

/// Accounting-Requests from radclient (start, interim-update, stop) are
/// answered once stored, and read back by `radmfa report --accounting`
/// (table, JSON, CSV, filters) and `GET /api/v1/reports/accounting`, with
/// octets that count their Gigawords and the session time the NAS sent;
/// sign-in reports leave them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_is_stored_and_reported_by_the_cli_and_the_api() {
    let api = api_env("");
    let reports = api.token("siem", "reports:read");
    let server = api.env.start();
    api.wait_up(&server).await;
    let addr = server.addr_string();
    let common = "User-Name = \"alice\"\nAcct-Session-Id = \"S-42\"\nNAS-IP-Address = 192.0.2.1\nNAS-Identifier = \"vpn-gw\"\nFramed-IP-Address = 10.8.0.7\nCalling-Station-Id = \"198.51.100.9\"\n";
    let sent = [
        "Acct-Status-Type = Start\n",
        "Acct-Status-Type = Interim-Update\nAcct-Input-Octets = 1000\nAcct-Output-Octets = 2000\nAcct-Session-Time = 60\n",
        "Acct-Status-Type = Stop\nAcct-Input-Octets = 5\nAcct-Input-Gigawords = 2\nAcct-Output-Octets = 4294967295\nAcct-Output-Gigawords = 1\nAcct-Session-Time = 3600\nAcct-Terminate-Cause = User-Request\n",
    ];
    for s in sent {
        let r = common::radclient(&addr, "acct", common::SECRET, &format!("{common}{s}"));
        expect(&r, "Accounting-Response");
    }
    // Answered only once written: the records are there at once.
    let rows = api.env.report(&["--accounting", "--user", "alice"]);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let status: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["start", "interim-update", "stop"]);
    let start = &rows[0];
    for (k, v) in [
        ("session_id", "S-42"),
        ("nas_ip", "192.0.2.1"),
        ("nas_identifier", "vpn-gw"),
        ("framed_ip", "10.8.0.7"),
        ("calling_station", "198.51.100.9"),
        ("client_name", "localhost"),
        ("client_ip", "127.0.0.1"),
    ] {
        assert_eq!(start[k], v, "{k}: {start}");
    }
    assert_eq!(
        (
            &rows[1]["input_octets"],
            &rows[1]["output_octets"],
            &rows[1]["session_time"]
        ),
        (&json!(1000), &json!(2000), &json!(60))
    );
    // 2 x 2^32 + 5 and 2^32 + (2^32 - 1) (RFC 2869 §5.1-5.2).
    let stop = &rows[2];
    assert_eq!(stop["input_octets"], 8_589_934_597u64, "{stop}");
    assert_eq!(stop["output_octets"], 8_589_934_591u64, "{stop}");
    assert_eq!(stop["session_time"], 3600, "{stop}");
    assert_eq!(stop["terminate_cause"], "User-Request", "{stop}");
    // Sign-in reports do not show them.
    assert!(api.env.report(&["--user", "alice"]).is_empty());
    // Filters, the table and CSV.
    assert_eq!(api.env.report(&["--accounting", "--user", "bob"]).len(), 0);
    assert_eq!(api.env.report(&["--accounting", "--since", "1h"]).len(), 3);
    assert_eq!(api.env.report(&["--accounting", "--until", "1"]).len(), 0);
    assert_eq!(
        api.env.report(&["--accounting", "--limit", "1"])[0]["status"],
        "stop"
    );
    let out = api.env.radmfa(&["report", "--accounting"]);
    out.assert_ok();
    assert!(
        out.stdout.contains("interim-update") && out.stdout.contains("8589934597"),
        "{}",
        out.stdout
    );
    let out = api.env.radmfa(&["report", "--accounting", "--csv"]);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(
        lines[0].starts_with(
            "time,time_ms,user,status,session_id,session_time,input_octets,output_octets"
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[3].contains(",alice,stop,S-42,3600,8589934597,8589934591,User-Request,"),
        "{}",
        lines[3]
    );
    let out = api
        .env
        .radmfa(&["report", "--accounting", "--result", "accept"]);
    assert_ne!(out.code(), 0, "--result does not apply to accounting");

    // The API.
    let v = api
        .no_body(
            Method::GET,
            "/api/v1/reports/accounting?user=alice",
            &reports,
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["count"], 3, "{v}");
    assert_eq!(v["items"][2]["input_octets"], 8_589_934_597u64, "{v}");
    for (q, n) in [
        ("user=bob", 0),
        ("client=localhost&limit=2", 2),
        ("to=1", 0),
        ("from=2000-01-01T00:00:00Z", 3),
    ] {
        api.expect_count(&format!("/api/v1/reports/accounting?{q}"), &reports, n)
            .await;
    }
    let (status, csv) = api
        .call(
            Method::GET,
            "/api/v1/reports/accounting?format=csv",
            Some(&reports),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let v = api
        .no_body(
            Method::GET,
            "/api/v1/reports/accounting?result=accept",
            &reports,
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(error_code(&v), "invalid_request");
    let v = api
        .no_body(
            Method::GET,
            "/api/v1/reports?user=alice",
            &reports,
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["count"], 0, "sign-in reports leave accounting out: {v}");
}

/// The `[mail]` section for the SMTP sink on `port`.
fn mail_section(port: u16) -> String {
    format!(
        "[mail]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
         from = \"radmfa <mfa@example.org>\"\nportal_url = \"https://mfa.example.org/portal\"\n"
    )
}

/// The initial PIN an English enrollment mail tells.
fn mailed_pin(body: &str) -> String {
    let line = body
        .lines()
        .find_map(|l| l.strip_prefix("Your initial PIN is: "))
        .unwrap_or_else(|| panic!("no initial PIN in the mail:\n{body}"));
    assert!(line.bytes().all(|b| b.is_ascii_digit()), "{line}");
    line.to_string()
}

/// `user add --send-email --generate-pin` through a running server (the
/// control socket): the mail reaches the SMTP sink with the initial PIN,
/// which is nowhere else (CLI output, server log, audit); `user import
/// --send-email` mails the users it adds. Then a RADIUS login with the
/// mailed PIN is asked for a new PIN (policy failure, mismatch, success),
/// and the next login with the new PIN is accepted without the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_mail_pin_and_forced_pin_change_over_radius() {
    if !common::require_python_module("aiosmtpd", "pip install aiosmtpd==1.4.6") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = common::smtp::SmtpSink::start(dir.path());
    let env = Env::with_options(ConfigOptions {
        extra: mail_section(sink.port),
        ..ConfigOptions::default()
    });
    let server = env.start();
    let addr = server.addr_string();
    let secret_b32 = common::TOTP_SECRETS[0];
    let add = env.radmfa(&[
        "user",
        "add",
        "ann",
        "--display-name",
        "Ann Smit",
        "--email",
        "ann@example.org",
        "--password",
        common::PASSWORD,
        "--send-email",
        "--generate-pin",
    ]);
    add.assert_ok();
    assert!(add.stdout.contains("enrollment mail sent (app)"), "{add:?}");
    env.enroll("ann", secret_b32);
    let mails = sink.wait_mails(1);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["rcpt_tos"], json!(["ann@example.org"]));
    let body = mails[0]["body"].as_str().expect("body");
    assert!(body.starts_with("Hello Ann Smit,"), "{body}");
    let pin = mailed_pin(body);
    assert!(pin.len() >= 6, "{pin}");
    assert!(!add.stdout.contains(&pin) && !add.stderr.contains(&pin));
    let shown = env.radmfa(&["user", "show", "ann", "--json"]).json();
    assert_eq!(shown["pin_mode"], "pin");
    assert_eq!(shown["pin_change_required"], true);

    // The import mails the users it adds.
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "name,email,phone,method\ndora,dora@example.org,,sms\n",
    )
    .expect("csv");
    let csv = csv.to_str().expect("utf-8");
    let import = env.radmfa(&["user", "import", "--csv", csv, "--send-email"]);
    import.assert_ok();
    assert!(
        import
            .stdout
            .contains("enrollment mail sent to 1 new users"),
        "{import:?}"
    );
    let mails = sink.wait_mails(2);
    assert_eq!(mails[1]["rcpt_tos"], json!(["dora@example.org"]));
    // No phone for her SMS method: the portal variant.
    let dora = mails[1]["body"].as_str().expect("body");
    assert!(dora.contains("no phone number is registered"), "{dora}");
    assert!(!dora.contains("initial PIN"), "{dora}");

    // RADIUS: password + mailed PIN + code, inline; then the new PIN.
    let secret = common::decode_secret(secret_b32);
    common::clear_of_step_edge();
    let inline = format!("{}{pin}{}", common::PASSWORD, totp_now(&secret));
    let r = login(&addr, "ann", &inline, None);
    expect(&r, "Access-Challenge");
    assert_eq!(
        r.text("Reply-Message").as_deref(),
        Some("Your PIN must be changed. Enter a new PIN:")
    );
    let state = r.attr("State").expect("State").to_owned();
    // Each answer under the same State: (entry, reply code, Reply-Message).
    let steps = [
        // A run of digits: refused by the PIN policy, asked again.
        (
            "1234",
            "Access-Challenge",
            "That PIN is too easy to guess: the digits form a run. Enter a new PIN:",
        ),
        ("2580", "Access-Challenge", "Enter the new PIN again:"),
        // A different second entry: asked from the start.
        (
            "2581",
            "Access-Challenge",
            "The two PINs are not the same. Enter a new PIN:",
        ),
        ("2580", "Access-Challenge", "Enter the new PIN again:"),
        (
            "2580",
            "Access-Accept",
            "Your PIN has been changed. Welcome, Ann Smit.",
        ),
    ];
    for (entry, code, message) in steps {
        let r = login(&addr, "ann", entry, Some(&state));
        expect(&r, code);
        assert_eq!(r.text("Reply-Message").as_deref(), Some(message), "{entry}");
    }
    let shown = env.radmfa(&["user", "show", "ann", "--json"]).json();
    assert_eq!(shown["pin_change_required"], false);

    // The next login: the new PIN, no change asked; the mailed one fails.
    let next = common::totp_step(&secret, 1);
    let r = login(
        &addr,
        "ann",
        &format!("{}2580{next}", common::PASSWORD),
        None,
    );
    expect(&r, "Access-Accept");
    assert_eq!(
        r.text("Reply-Message").as_deref(),
        Some("Welcome, Ann Smit.")
    );
    let reasons: Vec<String> = env
        .report(&["--user", "ann"])
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    for want in [
        "pin_change_required",
        "pin_change_retry",
        "pin_change_confirm",
        "pin_changed",
        "ok",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want}: {reasons:?}");
    }
    let audit = env.radmfa(&["report", "--json", "--user", "ann"]);
    let (_, log) = server.terminate();
    for secret_pin in [pin.as_str(), "2580"] {
        assert!(!log.contains(secret_pin), "PIN {secret_pin} in the log");
        assert!(!audit.stdout.contains(secret_pin), "PIN in the audit log");
    }
}

/// `POST /api/v1/users` with `send_email`: the mail reaches the SMTP sink
/// (the portal variant for a user without a phone) with the generated PIN,
/// which the answer does not carry; a user without an address is created
/// with a warning, and no PIN is generated for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_user_create_sends_the_enrollment_mail() {
    if !common::require_python_module("aiosmtpd", "pip install aiosmtpd==1.4.6") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = common::smtp::SmtpSink::start(dir.path());
    let api = api_env(&mail_section(sink.port));
    let token = api.token("enroll", "users:write");
    let server = api.env.start();
    api.wait_up(&server).await;
    let body = json!({"name": "bob", "display_name": "Bob de Wit", "email": "bob@example.org",
        "method": "sms", "send_email": true, "generate_pin": true});
    let (status, text) = api
        .call(Method::POST, "/api/v1/users", Some(&token), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        v["enrollment_mail"],
        json!({"sent": true, "template": "portal", "pin_generated": true})
    );
    assert_eq!(v["pin_mode"], "pin");
    let mails = sink.wait_mails(1);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0]["subject"],
        "Complete your enrollment for two-step verification"
    );
    let mail = mails[0]["body"].as_str().expect("body");
    assert!(mail.contains("https://mfa.example.org/portal"), "{mail}");
    let pin = mailed_pin(mail);
    assert!(!text.contains(&pin), "the PIN is in the API answer: {text}");

    // No address: created, warned, no PIN generated, no mail.
    let body = json!({"name": "carl", "send_email": true, "generate_pin": true});
    let v = api
        .send(
            Method::POST,
            "/api/v1/users",
            &token,
            body,
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(v["pin_mode"], "standard");
    assert_eq!(v["enrollment_mail"]["sent"], false);
    assert_eq!(v["enrollment_mail"]["pin_generated"], false);
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("no PIN generated for carl"), "{warnings}");
    assert!(warnings.contains("has no email address"), "{warnings}");
    // A generated PIN needs the mail.
    let body = json!({"name": "dirk", "email": "d@example.org", "generate_pin": true});
    let v = api
        .send(
            Method::POST,
            "/api/v1/users",
            &token,
            body,
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(v.to_string().contains("send_email"), "{v}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.mails().len(), 1);
    let (_, log) = server.terminate();
    assert!(!log.contains(&pin), "the PIN is in the server log");
}

/// The migration imports through the API: a CSV body (dry run, an error
/// naming line and column refusing everything, then the import), a PSKC
/// document (RFC 6030 figure 7, PBKDF2) with a wrong and the right
/// password, listing, assigning by serial, a radclient login with the code
/// Python computes, revoking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_imports_through_the_api() {
    let api = api_env("");
    let writer = api.token("writer", "users:write,users:read");
    let server = api.env.start();
    api.wait_up(&server).await;
    let csv_post = |query: &str, body: &str| {
        api.http
            .post(format!("{}/api/v1/users/import{query}", api.base()))
            .bearer_auth(&writer)
            .header("content-type", "text/csv")
            .body(body.to_string())
    };
    let bad = "name,password,digits,secret\nok1,battery-staple,6,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\nbad1,battery-staple,9,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n";
    let r = csv_post("", bad).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = r.text().await.expect("body");
    assert!(
        text.contains("line 3: column \\\"digits\\\": 9 is not 6, 7 or 8"),
        "{text}"
    );
    let r = csv_post("?dry_run=true", "name,language\napi1,fr-CA\n")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["dry_run"], true, "{v}");
    assert!(
        v["changes"][0]
            .as_str()
            .unwrap_or("")
            .contains("add api1: language=fr-CA"),
        "{v}"
    );
    api.no_body(
        Method::GET,
        "/api/v1/users/api1",
        &writer,
        StatusCode::NOT_FOUND,
    )
    .await;
    let r = csv_post("?continue_on_error=true", bad)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["added"].as_u64(), v["failed"].as_array().map(Vec::len)),
        (Some(1), Some(1)),
        "{v}"
    );

    let xml = std::fs::read_to_string(format!(
        "{}/tests/data/pskc/rfc6030-figure7.pskcxml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("figure 7");
    let v = api
        .send(
            Method::POST,
            "/api/v1/tokens/import",
            &writer,
            json!({"pskc": xml, "password": "wrong"}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(v.to_string().contains("nothing imported"), "{v}");
    let v = api
        .send(
            Method::POST,
            "/api/v1/tokens/import",
            &writer,
            json!({"pskc": xml, "password": "qwerty"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["imported"], 1, "{v}");
    let v = api
        .no_body(
            Method::GET,
            "/api/v1/tokens?unassigned=true",
            &writer,
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["items"][0]["serial"], "987654321", "{v}");
    assert_eq!(v["items"][0]["manufacturer"], "TokenVendorAcme", "{v}");
    api.send(
        Method::POST,
        "/api/v1/tokens/987654321/assign",
        &writer,
        json!({"user": "ok1"}),
        StatusCode::OK,
    )
    .await;
    let addr = server.addr.to_string();
    let seed = b"12345678901234567890";
    let r = login(
        &addr,
        "ok1",
        &format!("battery-staple{}", hotp_at(seed, 0, "sha1", 8)),
        None,
    );
    expect(&r, "Access-Accept");
    let v = api
        .no_body(
            Method::DELETE,
            "/api/v1/tokens/987654321",
            &writer,
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["user"], "ok1", "{v}");
    let r = login(
        &addr,
        "ok1",
        &format!("battery-staple{}", hotp_at(seed, 1, "sha1", 8)),
        None,
    );
    expect(&r, "Access-Reject");
    api.no_body(
        Method::DELETE,
        "/api/v1/tokens/987654321",
        &writer,
        StatusCode::NOT_FOUND,
    )
    .await;
}
