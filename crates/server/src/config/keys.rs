//! The running configuration key by key: for every field of
//! [`RuntimeConfig`], the section it comes from, whether the nodes of a
//! cluster must agree on it ([`Scope`]) and whether a running node can take
//! a new value without a restart ([`Apply`]). Two users read this one table:
//! the per-section digests the nodes exchange to notice a disagreement
//! ([`section_digests`]) and the reload, which refuses a change to a
//! restart-only key and names what changed ([`changes`]).
//!
//! Separate from `runtime.rs` so that the classification sits in one place:
//! [`keys`] destructures `RuntimeConfig` without a wildcard, so a new field
//! does not compile until it is classified here. A field holding a section's
//! settings (a policy, the gateway, the limits) is one key: what other code
//! adds inside those settings is carried without a change here.
//!
//! Values are compared through their `Debug` text, which every settings type
//! derives, with maps sorted first. Secrets print as `***` there (the secret
//! newtypes), so **secrets are not part of a digest**: a digest travels to the
//! peers and is shown by `status` and the API, and a hash of a short shared
//! secret could be guessed offline from it. A changed secret is still read
//! by a reload (every secret file is read again and the clients, upstreams,
//! directory, mail and gateway are rebuilt from the new file).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::runtime::RuntimeConfig;

/// Whether the nodes of a cluster must agree on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The same on every node: part of the section's digest.
    Cluster,
    /// This node's own (its id, name, addresses, files, log level): not
    /// compared.
    Node,
}

/// What a new value of a key needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// A reload applies it (requests in flight finish with the old value).
    Reload,
    /// Read once at start-up (sockets, the store, caches sized at start):
    /// a reload that changes it is refused.
    Restart,
}

/// One key of the running configuration.
#[derive(Debug, Clone)]
pub struct Key {
    /// The section, as written in the file (`policy` for `[[policy]]`).
    pub section: &'static str,
    /// The key inside the section; empty when the whole section is one key.
    pub name: &'static str,
    /// Compared between nodes or not.
    pub scope: Scope,
    /// Reloadable or not.
    pub apply: Apply,
    /// The value as compared (secrets as `***`).
    value: String,
}

impl Key {
    /// How the key's section is named to people: `[radius]`, `[[policy]]`.
    pub fn section_label(&self) -> String {
        match self.section {
            "upstream" | "group_attributes" | "sync" | "policy" | "client" => {
                format!("[[{}]]", self.section)
            }
            s => format!("[{s}]"),
        }
    }

    /// How the key is named to people: `[radius] listen`, `[[policy]]`.
    pub fn label(&self) -> String {
        let section = self.section_label();
        if self.name.is_empty() {
            section
        } else {
            format!("{section} {}", self.name)
        }
    }
}

fn text<T: Debug>(v: &T) -> String {
    format!("{v:?}")
}

/// A map's entries in key order (a `HashMap`'s `Debug` order is random).
fn sorted<K: Ord + Debug, V: Debug>(m: &std::collections::HashMap<K, V>) -> String {
    text(&m.iter().collect::<BTreeMap<_, _>>())
}

/// Where a listener's own address and files are blanked before comparing.
const ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Every key of `cfg`. Exhaustive on purpose (no `..`): a new field of
/// [`RuntimeConfig`] must be classified here to compile.
pub fn keys(cfg: &RuntimeConfig) -> Vec<Key> {
    use Apply::{Reload, Restart};
    use Scope::{Cluster, Node};
    let RuntimeConfig {
        origin: _,
        node_name,
        node_id,
        server_ip,
        data_dir,
        key_file,
        cluster_key_file,
        store_cache_bytes,
        log_format,
        log_level,
        listen,
        duplicate_window_secs,
        duplicate_cache_entries,
        workers,
        max_in_flight,
        argon2_memory_kib,
        argon2_iterations,
        password_cache_ttl_secs,
        password_cache_max_entries,
        user_cache_entries,
        otp_issuer,
        otp_window,
        otp_digits,
        hotp_look_ahead,
        challenge_lifetime_secs,
        challenge_max_sessions,
        gateway,
        verdict_timeout_secs,
        oob,
        push,
        sms,
        cluster,
        upstreams,
        group_attributes,
        directory,
        sync,
        mail,
        policies,
        clients,
        portal,
        api,
        audit_retention_days,
        radsec,
        limits,
        i18n,
    } = cfg;
    // The listeners' sections without what is this node's own (address,
    // certificate and key files): the rest must agree.
    let portal = portal.clone().map(|mut p| {
        (p.listen, p.cert, p.key) = (ANY, PathBuf::new(), PathBuf::new());
        p
    });
    let api = api.clone().map(|mut a| {
        (a.listen, a.cert, a.key) = (ANY, PathBuf::new(), PathBuf::new());
        a
    });
    let radsec = radsec.clone().map(|mut r| {
        (r.listen, r.cert, r.key, r.ca) = (ANY, PathBuf::new(), PathBuf::new(), PathBuf::new());
        r
    });
    // The callback address is each node's own (nodes may be published
    // apart); the fraud key and the texts must agree.
    let oob_shared = {
        let mut o = oob.clone();
        o.callback_url = None;
        o
    };
    // Each node names its own VAPID key file (the key itself is the
    // cluster's); the rest of [push] must agree.
    let push_shared = {
        let mut p = push.clone();
        p.vapid_key_file = PathBuf::new();
        p
    };
    let key = |section, name, scope, apply, value| Key {
        section,
        name,
        scope,
        apply,
        value,
    };
    let c = |section, name, apply, value| key(section, name, Cluster, apply, value);
    let n = |section, name, apply, value| key(section, name, Node, apply, value);
    // One line per key: a table reads best unwrapped.
    #[rustfmt::skip]
    let table = vec![
        n("server", "node_name", Reload, text(node_name)),
        n("server", "node_id", Restart, text(node_id)),
        n("server", "server_ip", Reload, text(server_ip)),
        n("server", "data_dir", Restart, text(data_dir)),
        n("server", "key_file", Restart, text(key_file)),
        c("server", "store_cache_bytes", Restart, text(store_cache_bytes)),
        c("server", "user_cache_entries", Restart, text(user_cache_entries)),
        n("challenge", "cluster_key_file", Restart, text(cluster_key_file)),
        c("challenge", "lifetime_secs", Restart, text(challenge_lifetime_secs)),
        c("challenge", "max_sessions", Restart, text(challenge_max_sessions)),
        n("log", "format", Restart, text(log_format)),
        n("log", "level", Restart, text(log_level)),
        c("log", "audit_retention_days", Restart, text(audit_retention_days)),
        n("radius", "listen", Restart, text(listen)),
        c("radius", "duplicate_window_secs", Restart, text(duplicate_window_secs)),
        c("radius", "duplicate_cache_entries", Restart, text(duplicate_cache_entries)),
        c("radius", "workers", Restart, text(workers)),
        c("radius", "max_in_flight", Restart, text(max_in_flight)),
        c("password", "memory_kib", Restart, text(argon2_memory_kib)),
        c("password", "iterations", Restart, text(argon2_iterations)),
        c("password", "cache_ttl_secs", Restart, text(password_cache_ttl_secs)),
        c("password", "cache_max_entries", Restart, text(password_cache_max_entries)),
        c("otp", "issuer", Reload, text(otp_issuer)),
        c("otp", "window", Reload, text(otp_window)),
        c("otp", "digits", Reload, text(otp_digits)),
        c("otp", "hotp_look_ahead", Reload, text(hotp_look_ahead)),
        c("gateway", "", Reload, text(gateway)),
        c("gateway", "verdict_timeout_secs", Reload, text(verdict_timeout_secs)),
        n("gateway", "callback_url", Reload, text(&oob.callback_url)),
        c("gateway", "fraud_key two_way_sms_text", Reload, text(&oob_shared)),
        c("sms", "", Restart, text(sms)),
        n("push", "vapid_key_file", Restart, text(&push.vapid_key_file)),
        c("push", "", Restart, text(&push_shared)),
        n("cluster", "", Restart, text(cluster)),
        c("upstream", "", Reload, sorted(upstreams)),
        c("group_attributes", "", Reload, text(group_attributes)),
        c("directory", "", Reload, text(directory)),
        c("sync", "", Reload, text(sync)),
        c("mail", "", Reload, text(mail)),
        c("policy", "", Reload, sorted(policies)),
        c("client", "", Reload, text(clients)),
        c("portal", "", Restart, text(&portal)),
        c("api", "", Restart, text(&api)),
        c("radsec", "", Restart, text(&radsec)),
        c("limits", "", Reload, text(limits)),
        c("i18n", "", Restart, text(i18n)),
    ];
    table
}

/// A SHA-256 (hex) per section over its [`Scope::Cluster`] keys, secrets
/// excluded: what a node reports to its peers.
pub fn section_digests(cfg: &RuntimeConfig) -> BTreeMap<String, String> {
    let mut hashers: BTreeMap<&'static str, Sha256> = BTreeMap::new();
    for k in keys(cfg).into_iter().filter(|k| k.scope == Scope::Cluster) {
        let h = hashers.entry(k.section).or_default();
        for part in [k.name.as_bytes(), b"=", k.value.as_bytes(), b"\n"] {
            h.update(part);
        }
    }
    hashers
        .into_iter()
        .map(|(s, h)| {
            let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            (s.to_string(), hex)
        })
        .collect()
}

/// The sections whose digests differ between `a` and `b` (a section only
/// one side reports counts as different).
pub fn differing_sections(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out: Vec<String> = a
        .iter()
        .filter(|(s, d)| b.get(*s) != Some(d))
        .map(|(s, _)| s.clone())
        .collect();
    out.extend(b.keys().filter(|s| !a.contains_key(*s)).cloned());
    out.sort();
    out
}

/// The keys whose value differs from `old` to `new` (secrets aside: see the
/// module comment).
pub fn changes(old: &RuntimeConfig, new: &RuntimeConfig) -> Vec<Key> {
    keys(old)
        .into_iter()
        .zip(keys(new))
        .filter(|(o, n)| o.value != n.value)
        .map(|(_, n)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(node: &str, listen: &str, first_factor: &str, secret: &str) -> RuntimeConfig {
        let text = format!(
            "[server]\nnode_name = \"{node}\"\n[radius]\nlisten = [\"{listen}\"]\n\
             [[policy]]\nname = \"vpn\"\nfirst_factor = \"{first_factor}\"\n\
             [[client]]\nname = \"nas\"\naddress = \"10.0.0.0/24\"\nsecret = \"{secret}\"\npolicy = \"vpn\"\n"
        );
        RuntimeConfig::parse(&text, "t.toml").expect("config")
    }

    #[test]
    fn node_keys_and_secrets_stay_out_of_the_digests() {
        let a = cfg("a", "0.0.0.0:1812", "local", "testing123");
        let b = cfg("b", "127.0.0.1:11812", "local", "other-secret-456");
        assert_eq!(section_digests(&a), section_digests(&b));
        // Both listed as changes (a reload names them), the address as needing a restart.
        let changed: Vec<(String, Apply)> = changes(&a, &b)
            .iter()
            .map(|k| (k.label(), k.apply))
            .collect();
        assert_eq!(
            changed,
            vec![
                ("[server] node_name".to_string(), Apply::Reload),
                // Derived from the listen address when not set.
                ("[server] server_ip".to_string(), Apply::Reload),
                ("[radius] listen".to_string(), Apply::Restart),
            ]
        );
    }

    #[test]
    fn a_policy_change_is_its_section_and_reloadable() {
        let a = cfg("a", "0.0.0.0:1812", "local", "testing123");
        let c = cfg("a", "0.0.0.0:1812", "none", "testing123");
        let (da, dc) = (section_digests(&a), section_digests(&c));
        assert_eq!(differing_sections(&da, &dc), vec!["policy".to_string()]);
        let changed: Vec<String> = changes(&a, &c).iter().map(Key::label).collect();
        assert_eq!(changed, vec!["[[policy]]".to_string()]);
        // The digest is SHA-256 over `name=value` lines of the cluster-wide keys.
        let hex = &da["otp"];
        let mut h = Sha256::new();
        for line in [
            "issuer=\"radmfa\"\n",
            "window=1\n",
            "digits=6\n",
            "hotp_look_ahead=10\n",
        ] {
            h.update(line);
        }
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, &want);
    }
}
