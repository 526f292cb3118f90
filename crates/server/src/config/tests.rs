//! Unit tests of the configuration as a whole: the shipped file, defaults,
//! located errors, the schema against the annotated default file. Section
//! specific tests sit beside their section.

use super::client::parse_cidr;
use super::file::FileConfig;
use super::parse::ParsedConfig;
use super::runtime::RuntimeConfig;

#[test]
fn shipped_default_config_parses() {
    let text = include_str!("../../../../config/radmfa.toml");
    let cfg = RuntimeConfig::parse(text, "config/radmfa.toml").expect("default config");
    assert_eq!(cfg.listen, vec!["0.0.0.0:1812".parse().expect("addr")]);
    assert!(cfg.policies.contains_key("default"));
    assert_eq!(cfg.clients.len(), 1);
    assert!(cfg.clients[0].require_message_authenticator);
}

#[test]
fn empty_config_gets_defaults() {
    let cfg = RuntimeConfig::parse("", "x.toml").expect("empty");
    assert_eq!(cfg.node_id, 1);
    assert_eq!(cfg.otp_window, 1);
    assert_eq!(cfg.policy("nope").name, "default");
}

#[test]
fn unknown_key_is_located() {
    let text = "[server]\nnode_name = \"a\"\nnode_nmae = \"b\"\n";
    let err = RuntimeConfig::parse(text, "bad.toml").expect_err("must fail");
    assert_eq!(err.line, 3, "{err}");
    assert!(err.reason.contains("node_nmae"), "{err}");
    assert!(err.to_string().starts_with("bad.toml:3:"), "{err}");
}

#[test]
fn wrong_type_is_located() {
    let text = "[radius]\nduplicate_window_secs = \"thirty\"\n";
    let err = RuntimeConfig::parse(text, "bad.toml").expect_err("must fail");
    assert_eq!(err.line, 2, "{err}");
}

#[test]
fn validation_errors_are_located() {
    let text = "[[client]]\nname = \"vpn\"\naddress = \"10.0.0.300/24\"\nsecret = \"testing123\"\n";
    let err = RuntimeConfig::parse(text, "c.toml").expect_err("must fail");
    assert_eq!((err.line, err.origin.as_str()), (3, "c.toml"), "{err}");
    assert!(err.reason.contains("not an IP address"), "{err}");

    let text = "[[client]]\nname = \"vpn\"\naddress = \"10.0.0.0/24\"\nsecret = \"testing123\"\npolicy = \"strict\"\n";
    let err = RuntimeConfig::parse(text, "c.toml").expect_err("must fail");
    assert_eq!(err.line, 5, "{err}");

    let err = RuntimeConfig::parse("[server]\nnode_id = 0\n", "n.toml").expect_err("node 0");
    assert_eq!(err.line, 2, "{err}");

    let err = RuntimeConfig::parse("[otp]\ndigits = 5\n", "o.toml").expect_err("digits");
    assert_eq!(err.line, 2, "{err}");
}

#[test]
fn plain_ldap_to_another_host_is_refused_with_the_remedy() {
    let section = |servers: &str, tls: &str| {
        format!("[server]\nnode_id = 1\n\n[directory]\nkind = \"ldap\"\nservers = [{servers}]\n{tls}base_dn = \"dc=example,dc=org\"\n")
    };
    // The default is tls = "none": a remote server is refused.
    let err = RuntimeConfig::parse(&section(r#""ldap://dc1.corp.example""#, ""), "d.toml")
        .expect_err("cleartext LDAP");
    assert_eq!(err.line, 4, "{err}");
    assert!(err.reason.contains("ldap://dc1.corp.example"), "{err}");
    assert!(err.reason.contains("tls = \"starttls\""), "{err}");
    // Also when only one of the servers is remote.
    let both = r#""ldap://127.0.0.1:389", "ldap://10.0.0.5""#;
    assert!(RuntimeConfig::parse(&section(both, "tls = \"none\"\n"), "d.toml").is_err());
    // On this host, or with TLS, it is fine.
    RuntimeConfig::parse(&section(r#""ldap://127.0.0.1:389""#, ""), "d.toml").expect("loopback");
    RuntimeConfig::parse(&section(both, "tls = \"starttls\"\n"), "d.toml").expect("starttls");
    RuntimeConfig::parse(&section(r#""ldaps://dc1.corp.example""#, ""), "d.toml").expect("ldaps");
}

#[test]
fn cluster_section() {
    let base = "[cluster]\nlisten = \"127.0.0.1:4443\"\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"\n";
    let ok = format!("{base}[[cluster.peer]]\nnode_id = 2\naddress = \"127.0.0.1:4444\"\n");
    let cfg = RuntimeConfig::parse(&ok, "c.toml").expect("parses");
    let cluster = cfg.cluster.expect("cluster");
    assert_eq!(cluster.peers, vec![(2, "127.0.0.1:4444".parse().unwrap())]);
    assert_eq!(cluster.forward_timeout, std::time::Duration::from_secs(3));

    let own = format!("{base}[[cluster.peer]]\nnode_id = 1\naddress = \"127.0.0.1:4444\"\n");
    let err = RuntimeConfig::parse(&own, "c.toml").expect_err("own id");
    assert_eq!(err.line, 7, "{err}");
    assert!(err.reason.contains("own node_id"), "{err}");

    let twice = format!("{ok}[[cluster.peer]]\nnode_id = 2\naddress = \"127.0.0.1:4445\"\n");
    let err = RuntimeConfig::parse(&twice, "c.toml").expect_err("twice");
    assert_eq!(err.line, 10, "{err}");

    let bad = format!("{base}[[cluster.peer]]\nnode_id = 2\naddress = \"peer-b\"\n");
    let err = RuntimeConfig::parse(&bad, "c.toml").expect_err("address");
    assert_eq!(err.line, 8, "{err}");
    assert!(err.reason.contains("IP:PORT"), "{err}");

    let no_cert = "[cluster]\nlisten = \"127.0.0.1:4443\"\nca = \"ca.pem\"\n";
    assert!(RuntimeConfig::parse(no_cert, "c.toml").is_err());
}

#[test]
fn limits_section() {
    let cfg = RuntimeConfig::parse("", "x.toml").expect("empty");
    assert_eq!(cfg.limits, crate::limits::LimitSettings::default());
    assert_eq!(cfg.limits.lockout_failures, 10);
    let text = "[limits]\nclient_rps = 0\nuser_per_minute = 5\nuser_burst = 2\nlockout_secs = 0\n";
    let cfg = RuntimeConfig::parse(text, "l.toml").expect("parses");
    assert_eq!(cfg.limits.client, None);
    assert_eq!(cfg.limits.user.map(|r| r.burst.get()), Some(2));
    assert_eq!(cfg.limits.lockout_secs, 0);

    let err = RuntimeConfig::parse("[limits]\nuser_per_minute = 5\nuser_burst = 0\n", "l.toml")
        .expect_err("burst 0");
    assert_eq!(err.line, 3, "{err}");
    assert!(err.reason.contains("user_burst"), "{err}");
    let err =
        RuntimeConfig::parse("[limits]\n\nmax_tracked_keys = 5\n", "l.toml").expect_err("cap");
    assert_eq!(err.line, 3, "{err}");
    let err =
        RuntimeConfig::parse("[limits]\nlockout_window_secs = 0\n", "l.toml").expect_err("window");
    assert_eq!(err.line, 2, "{err}");
    let err = RuntimeConfig::parse("[limits]\nclient_rsp = 5\n", "l.toml").expect_err("typo");
    assert_eq!(err.line, 2, "{err}");
}

/// A table path from the top: each table's name and whether it is an
/// array of tables (`[[name]]`).
type TablePath = [(String, bool)];

/// The keys `FileConfig` accepts directly in the table at `path`, asked
/// from the schema itself: with `deny_unknown_fields`, serde lists every
/// accepted field when it meets an unknown one. `None` when `path` is not
/// a table of that shape. The probe is written inline
/// (`a = {b = [{probe = 1}]}`), which reaches nested tables without
/// their required keys.
fn schema_keys(path: &TablePath) -> Option<Vec<String>> {
    let probe = "zz_probe_key";
    let mut text = format!("{{{probe} = 1}}");
    for (i, (name, array)) in path.iter().enumerate().rev() {
        if *array {
            text = format!("[{text}]");
        }
        text = if i == 0 {
            format!("{name} = {text}")
        } else {
            format!("{{{name} = {text}}}")
        };
    }
    if path.is_empty() {
        text = format!("{probe} = 1");
    }
    let err = toml::from_str::<FileConfig>(&text).err()?;
    let msg = err.message();
    let rest = msg.split_once(&format!("unknown field `{probe}`"))?.1;
    let expected = rest.split_once("expected").map_or("", |(_, e)| e);
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// Every (table, key) the schema accepts, tables included as (table, "").
fn all_schema_keys() -> Vec<(String, String)> {
    fn walk(path: &mut Vec<(String, bool)>, out: &mut Vec<(String, String)>) {
        let keys = schema_keys(path).expect("a table");
        let name: Vec<&str> = path.iter().map(|(n, _)| n.as_str()).collect();
        let name = name.join(".");
        if !path.is_empty() {
            out.push((name.clone(), String::new()));
        }
        for k in keys {
            let mut nested = None;
            for array in [false, true] {
                path.push((k.clone(), array));
                if schema_keys(path).is_some() {
                    nested = Some(array);
                }
                path.pop();
                if nested.is_some() {
                    break;
                }
            }
            match nested {
                Some(array) => {
                    path.push((k.clone(), array));
                    walk(path, out);
                    path.pop();
                }
                None => out.push((name.clone(), k)),
            }
        }
    }
    let mut out = Vec::new();
    walk(&mut Vec::new(), &mut out);
    out
}

/// The (table, key) pairs written in an annotated file, commented out or
/// not: `[t]`, `[[t]]`, `# [t]`, `key = ...`, `# key = ...`.
fn documented_keys(text: &str) -> std::collections::HashSet<(String, String)> {
    let mut out = std::collections::HashSet::new();
    let mut table = String::new();
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
    };
    for line in text.lines() {
        let l = line.trim().trim_start_matches('#').trim();
        let l = l.split(" #").next().unwrap_or("").trim();
        let header = l
            .strip_prefix("[[")
            .and_then(|h| h.strip_suffix("]]"))
            .or_else(|| l.strip_prefix('[').and_then(|h| h.strip_suffix(']')));
        if let Some(h) = header.filter(|h| is_name(h)) {
            table = h.to_string();
            out.insert((table.clone(), String::new()));
        } else if let Some((k, _)) = l.split_once('=') {
            if is_name(k.trim()) {
                out.insert((table.clone(), k.trim().to_string()));
            }
        }
    }
    out
}

#[test]
fn every_accepted_key_is_in_the_annotated_default_file() {
    let keys = all_schema_keys();
    // The probe itself must see the schema: a few known keys and tables.
    for known in [
        ("server", "node_name"),
        ("directory", "login_attr"),
        ("cluster.peer", "address"),
        ("radsec.client", "cert_cn"),
        ("limits", "client_rps"),
        ("gateway", ""),
    ] {
        assert!(
            keys.contains(&(known.0.to_string(), known.1.to_string())),
            "schema probe missed {known:?}: {keys:?}"
        );
    }
    let text = include_str!("../../../../config/radmfa.toml");
    let documented = documented_keys(text);
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| !documented.contains(*k))
        .map(|(t, k)| {
            if k.is_empty() {
                format!("[{t}]")
            } else {
                format!("[{t}] {k}")
            }
        })
        .collect();
    assert!(
        missing.is_empty(),
        "accepted by the schema but not in config/radmfa.toml: {missing:?}"
    );
}

#[test]
fn sms_alphabet_is_checked() {
    let cfg = RuntimeConfig::parse("[sms]\nalphabet = \"ABCDEFGHJKLMNPQR\"\n", "s.toml")
        .expect("16 symbols");
    assert_eq!(cfg.sms.alphabet, "ABCDEFGHJKLMNPQR");
    for (alphabet, needle) in [
        ("012345678", "at least 10 distinct"),
        ("01234567899", "repeats '9'"),
        ("0123456789ABCDEFA", "repeats 'A'"),
        ("0123 456789", "without spaces"),
        ("", "at least 10 distinct"),
    ] {
        let text = format!("[sms]\ncode_length = 6\nalphabet = {alphabet:?}\n");
        let err = RuntimeConfig::parse(&text, "s.toml").expect_err(alphabet);
        assert_eq!((err.line, err.origin.as_str()), (3, "s.toml"), "{err}");
        assert!(err.reason.contains(needle), "{alphabet:?}: {err}");
    }
}

#[test]
fn duplicate_clients_are_refused() {
    let client = |name: &str, addr: &str| {
        format!("[[client]]\nname = \"{name}\"\naddress = \"{addr}\"\nsecret = \"s3cret-s3cret\"\n")
    };
    let ok = format!(
        "{}{}",
        client("a", "10.0.0.0/8"),
        client("b", "10.1.0.0/16")
    );
    assert_eq!(
        RuntimeConfig::parse(&ok, "c.toml")
            .expect("overlap allowed")
            .clients
            .len(),
        2
    );
    let twice = format!("{}{}", client("a", "10.0.0.1"), client("a", "10.0.0.2"));
    let err = RuntimeConfig::parse(&twice, "c.toml").expect_err("same name");
    assert_eq!(err.line, 6, "{err}");
    assert!(err.reason.contains("defined twice"), "{err}");
    let same = format!(
        "{}{}",
        client("a", "10.0.0.0/24"),
        client("b", "10.0.0.7/24")
    );
    let err = RuntimeConfig::parse(&same, "c.toml").expect_err("same address");
    assert_eq!(err.line, 7, "{err}");
    assert!(
        err.reason.contains("already the address of client \"a\""),
        "{err}"
    );
}

#[test]
fn cidr_forms() {
    assert_eq!(
        parse_cidr("10.1.2.3/24").map(|n| n.to_string()),
        Some("10.1.2.0/24".into())
    );
    assert_eq!(
        parse_cidr("10.1.2.3").map(|n| n.to_string()),
        Some("10.1.2.3/32".into())
    );
    assert!(parse_cidr("::1").is_some());
    assert!(parse_cidr("nope").is_none());
}

#[test]
fn sync_fields_parse_and_bad_modes_are_located() {
    let head = "[directory]\nkind = \"ldap\"\nservers = [\"ldap://127.0.0.1:389\"]\nbase_dn = \"dc=x\"\n\n[[sync]]\nname = \"staff\"\n";
    let cfg = RuntimeConfig::parse(head, "x.toml").expect("defaults");
    assert_eq!(cfg.sync[0].fields, crate::sync::FieldModes::default());
    let text = format!("{head}fields = {{ phone = \"directory_wins\", email = \"add_only\" }}\n");
    let cfg = RuntimeConfig::parse(&text, "x.toml").expect("fields");
    let f = cfg.sync[0].fields;
    assert_eq!(f.phone, crate::sync::FieldMode::DirectoryWins);
    assert_eq!(f.email, crate::sync::FieldMode::AddOnly);
    assert_eq!(f.groups, crate::sync::FieldMode::KeepLocal);
    let bad = format!("{head}fields = {{ phone = \"always\" }}\n");
    let err = RuntimeConfig::parse(&bad, "x.toml").expect_err("bad mode");
    assert_eq!(err.line, 8, "{err}");
    assert!(err.reason.contains("keep_local"), "{err}");
    let bad = format!("{head}fields = {{ mobile = \"keep_local\" }}\n");
    let err = RuntimeConfig::parse(&bad, "x.toml").expect_err("bad field");
    assert_eq!(err.line, 8, "{err}");
    assert!(err.reason.contains("mobile"), "{err}");
}

/// Validating text reads no file; the load step reads them, checks what
/// depends on their content and names the key's line when it fails.
#[test]
fn key_files_are_read_by_the_load_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("upstream.secret");
    let key = dir.path().join("gateway.key");
    let text = format!(
        "[[upstream]]\nname = \"nps\"\nservers = [\"10.0.0.5:1812\"]\nsecret_file = {secret:?}\n\n\
         [gateway]\nurl = \"https://gw.example\"\napi_key_file = {key:?}\n"
    );
    // No file exists yet: the text alone is valid.
    let parsed = || ParsedConfig::parse(&text, "k.toml").expect("validating reads no file");

    let err = parsed().load_files().expect_err("no secret file");
    assert_eq!((err.line, err.origin.as_str()), (2, "k.toml"), "{err}");
    assert!(err.reason.contains("cannot read secret_file"), "{err}");

    std::fs::write(&secret, "short\n").expect("write");
    let err = parsed().load_files().expect_err("short secret");
    assert_eq!(err.line, 2, "{err}");
    assert!(err.reason.contains("too short"), "{err}");

    std::fs::write(&secret, "  upstream-secret-1\n").expect("write");
    let err = parsed().load_files().expect_err("no key file");
    assert_eq!(err.line, 6, "{err}");
    assert!(err.reason.contains("cannot read api_key_file"), "{err}");

    std::fs::write(&key, "\n").expect("write");
    let err = parsed().load_files().expect_err("empty key");
    assert!(err.reason.contains("api_key_file is required"), "{err}");

    std::fs::write(&key, "gateway-api-key\n").expect("write");
    let cfg = parsed().load_files().expect("loads");
    assert_eq!(cfg.upstreams["nps"].secret.expose(), b"upstream-secret-1");
    let gateway = cfg.gateway.expect("gateway");
    match gateway.provider {
        radmfa_gateway::Provider::Radmfa { api_key, .. } => {
            assert_eq!(api_key, radmfa_gateway::Secret::new("gateway-api-key"))
        }
        other => panic!("provider {other:?}"),
    }
    // RuntimeConfig::parse runs both steps.
    let cfg = RuntimeConfig::parse(&text, "k.toml").expect("parses and loads");
    assert_eq!(cfg.upstreams["nps"].secret.expose(), b"upstream-secret-1");
}

#[test]
fn policy_accounting_is_parsed_and_a_bad_one_is_located() {
    use crate::config::Accounting;
    let up = "[[upstream]]\nname = \"acct\"\nservers = [\"127.0.0.1:1813\"]\nsecret = \"testing123\"\n\n";
    let policy = |a: &str| format!("{up}[[policy]]\nname = \"p\"\naccounting = \"{a}\"\n");
    let cfg = RuntimeConfig::parse("", "x.toml").expect("empty");
    assert_eq!(cfg.policy("default").accounting, Accounting::Store);
    for (text, want) in [
        ("store", Accounting::Store),
        ("discard", Accounting::Discard),
        ("forward:acct", Accounting::Forward("acct".into())),
        ("both:acct", Accounting::Both("acct".into())),
    ] {
        let cfg = RuntimeConfig::parse(&policy(text), "a.toml").expect(text);
        assert_eq!(cfg.policy("p").accounting, want, "{text}");
    }
    for (text, says) in [
        ("forward:nope", "upstream \"nope\", which is not defined"),
        ("keep", "is not one of"),
        ("forward", "is not one of"),
    ] {
        let err = RuntimeConfig::parse(&policy(text), "a.toml").expect_err(text);
        assert_eq!(err.line, 8, "{err}");
        assert!(err.reason.contains(says), "{text}: {err}");
    }
}
