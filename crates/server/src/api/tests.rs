//! Unit tests of the API module: the OpenAPI document against the router,
//! CSV output, error classification.

use super::*;
use radmfa_store::StoreError;

/// (method, path) of every operation in `docs/openapi.yaml`. The document is
/// written with paths at two spaces of indentation and methods at four.
fn documented() -> Vec<(String, String)> {
    let doc = include_str!("../../../../docs/openapi.yaml");
    let mut out = Vec::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line.trim_end() == "paths:";
            current = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            current = Some(format!("/{}", p.trim_end().trim_end_matches(':')));
        } else if let (Some(path), Some(m)) = (&current, line.strip_prefix("    ")) {
            let m = m.trim_end().trim_end_matches(':');
            if ["get", "post", "put", "patch", "delete"].contains(&m) {
                out.push((m.to_string(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn openapi_document_matches_the_router() {
    let mut code: Vec<(String, String)> = routes()
        .table
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    code.sort();
    let doc = documented();
    assert!(!doc.is_empty(), "no operations found in docs/openapi.yaml");
    let missing: Vec<_> = code.iter().filter(|r| !doc.contains(r)).collect();
    let extra: Vec<_> = doc.iter().filter(|r| !code.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes not in docs/openapi.yaml: {missing:?}; documented but not routed: {extra:?}"
    );
}

#[test]
fn csv_quotes_and_defuses_formulas() {
    let recs = vec![json!({
        "time_ms": 5, "user": "a,b", "mode": "=cmd", "result": "accept",
        "reason": "say \"hi\"", "server_name": "n", "server_ip": "",
        "client_name": "c", "client_ip": "1.2.3.4", "calling_station": "-1"
    })];
    let text = records_csv(&recs);
    let mut lines = text.split("\r\n");
    let header = format!("time,{}", REPORT_FIELDS.join(","));
    assert_eq!(lines.next(), Some(header.as_str()));
    // time_ms 5 is 5 ms after the Unix epoch, in ISO 8601 UTC.
    assert_eq!(
        lines.next(),
        Some(
            "1970-01-01T00:00:00.005Z,5,\"a,b\",'=cmd,accept,\"say \"\"hi\"\"\",n,,c,1.2.3.4,'-1,,"
        )
    );
}

#[test]
fn errors_map_to_stable_codes() {
    let c = |e: AdminError| {
        let a = classify(&e);
        (a.status.as_u16(), a.code)
    };
    assert_eq!(
        c(AdminError::Store(StoreError::NotFound {
            what: "user",
            name: "x".into()
        })),
        (404, "not_found")
    );
    assert_eq!(
        c(AdminError::Invalid("no user named \"x\"".into())),
        (404, "not_found")
    );
    assert_eq!(
        c(AdminError::Invalid("user already exists: x".into())),
        (409, "conflict")
    );
    assert_eq!(
        c(AdminError::Store(StoreError::ReadOnly(
            "read-only: this node is a replica".into()
        ))),
        (503, "read_only")
    );
    assert_eq!(
        c(AdminError::Invalid("digits must be 6".into())),
        (400, "invalid_request")
    );
}

#[test]
fn times_parse() {
    assert_eq!(parse_time("from", "10"), Ok(10_000));
    assert_eq!(parse_time("from", "1970-01-01T00:00:01Z"), Ok(1000));
    assert!(parse_time("from", "yesterday").is_err());
}
