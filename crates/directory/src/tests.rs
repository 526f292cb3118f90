//! Unit tests that need no server.

use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::config::check_url;
use crate::conn::OpError;
use crate::directory::groups::GroupIndex;
use crate::directory::lookup::ldap_state;
use crate::entry::Entry;

fn cfg(kind: DirectoryKind, servers: &[&str]) -> DirectoryConfig {
    DirectoryConfig::new(
        kind,
        servers.iter().map(|s| (*s).to_owned()).collect(),
        "dc=example,dc=org",
        "cn=svc,dc=example,dc=org",
        Secret::new("pw".into()),
    )
}

fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> Entry {
    Entry {
        dn: dn.into(),
        attrs: attrs
            .iter()
            .map(|(n, v)| {
                (
                    n.to_ascii_lowercase(),
                    v.iter().map(|s| s.as_bytes().to_vec()).collect(),
                )
            })
            .collect(),
    }
}

#[test]
fn secret_hides_and_compares() {
    let s = Secret::new("hunter2".into());
    assert_eq!(format!("{s:?}"), "***");
    let c = cfg(DirectoryKind::Ldap, &["ldap://127.0.0.1:389"]);
    assert!(!format!("{c:?}").contains("pw\""));
    assert_eq!(s, Secret::new("hunter2".into()));
    assert_ne!(s, Secret::new("hunter3".into()));
    assert_ne!(s, Secret::new("hunter".into()));
    assert_eq!(s.expose(), "hunter2");
}

#[test]
fn reasons_are_stable() {
    let all = [
        (AuthFailure::WrongPassword, "wrong_password"),
        (AuthFailure::UnknownUser, "unknown_user"),
        (AuthFailure::AccountDisabled, "account_disabled"),
        (AuthFailure::AccountLocked, "account_locked"),
        (AuthFailure::AccountExpired, "account_expired"),
        (AuthFailure::PasswordExpired, "password_expired"),
        (
            AuthFailure::Unreachable("x".into()),
            "directory_unreachable",
        ),
        (AuthFailure::Directory("x".into()), "directory_error"),
    ];
    for (f, r) in all {
        assert_eq!(f.reason(), r);
    }
}

#[test]
fn defaults_per_kind() {
    let ad = cfg(DirectoryKind::ActiveDirectory, &["ldap://dc1"]);
    assert_eq!(ad.login_attr, "sAMAccountName");
    assert_eq!(ad.effective_user_filter(), AD_DEFAULT_USER_FILTER);
    assert_eq!(ad.max_group_depth, 8);
    let l = cfg(DirectoryKind::Ldap, &["ldap://x"]);
    assert_eq!(l.login_attr, "uid");
    assert_eq!(l.effective_user_filter(), LDAP_DEFAULT_USER_FILTER);
    assert_eq!(l.phone_attr, "mobile");
}

#[test]
fn urls() {
    assert_eq!(
        check_url("ldap://127.0.0.1:3890", TlsMode::None),
        Ok(("ldap://127.0.0.1:3890".into(), TlsMode::None))
    );
    assert_eq!(
        check_url("ldaps://dc1.corp:636/", TlsMode::None),
        Ok(("ldaps://dc1.corp:636".into(), TlsMode::Ldaps))
    );
    assert_eq!(
        check_url("ldap://dc1.corp", TlsMode::Ldaps),
        Ok(("ldaps://dc1.corp".into(), TlsMode::Ldaps))
    );
    assert_eq!(
        check_url("ldap://dc1", TlsMode::StartTls),
        Ok(("ldap://dc1".into(), TlsMode::StartTls))
    );
    assert_eq!(
        check_url("LDAPS://[::1]:636", TlsMode::None),
        Ok(("ldaps://[::1]:636".into(), TlsMode::Ldaps))
    );
    for bad in [
        "http://x",
        "ldap://",
        "ldap:///",
        "ldap://:389",
        "ldap://x:0",
        "ldap://x:99999",
        "ldap://x:abc",
        "ldap://x/dc=example",
        "ldap://user@x",
        "ldap://[::1",
        "ldap://[::1]x",
        "ldap://a b",
        "ldapi:///var/run/slapd",
    ] {
        assert!(check_url(bad, TlsMode::None).is_err(), "{bad}");
    }
}

#[test]
fn config_validation() {
    assert!(Directory::new(cfg(DirectoryKind::Ldap, &["ldap://127.0.0.1:1"])).is_ok());
    assert!(matches!(
        Directory::new(cfg(DirectoryKind::Ldap, &[])),
        Err(DirectoryError::Config(_))
    ));
    assert!(Directory::new(cfg(DirectoryKind::Ldap, &["ftp://x"])).is_err());
    let mut c = cfg(DirectoryKind::Ldap, &["ldap://x"]);
    c.bind_password = Secret::new(String::new());
    assert!(
        Directory::new(c.clone()).is_err(),
        "empty service password = unauthenticated bind"
    );
    c.bind_dn = String::new();
    assert!(Directory::new(c).is_ok(), "anonymous searches are allowed");
    let mut c = cfg(DirectoryKind::Ldap, &["ldap://x"]);
    c.user_filter = Some("(uid=alice)".into());
    assert!(Directory::new(c.clone()).is_err(), "no placeholder");
    c.user_filter = Some("(uid={user}".into());
    assert!(Directory::new(c.clone()).is_err(), "unbalanced");
    c.user_filter = Some("(&(objectClass=person)(|(uid={user})(mail={user})))".into());
    assert!(Directory::new(c.clone()).is_ok());
    c.disabled_filter = Some("(((".into());
    assert!(Directory::new(c.clone()).is_err());
    c.disabled_filter = Some("employeeType=disabled".into());
    assert!(Directory::new(c.clone()).is_ok());
    c.timeout = Duration::ZERO;
    assert!(Directory::new(c.clone()).is_err());
    let mut c = cfg(DirectoryKind::Ldap, &["ldap://x"]);
    c.ca_pem = Some("garbage".into());
    assert!(Directory::new(c.clone()).is_err());
    c.base_dn = " ".into();
    c.ca_pem = None;
    assert!(Directory::new(c).is_err());
    let d = Directory::new(cfg(DirectoryKind::Ldap, &["ldap://x"])).expect("dir");
    assert!(format!("{d:?}").contains("ldap://x"));
    assert_eq!(d.clone().with_page_size(0).page_size, 1);
}

#[tokio::test]
async fn empty_password_and_bad_logins_need_no_server() {
    // Port 1 on loopback: nothing listens; these must not even try.
    let d = Directory::new(cfg(DirectoryKind::Ldap, &["ldap://127.0.0.1:1"])).expect("dir");
    assert_eq!(
        d.authenticate("alice", b"").await.unwrap_err().reason(),
        "wrong_password"
    );
    assert_eq!(
        d.authenticate("", b"pw").await.unwrap_err().reason(),
        "unknown_user"
    );
    assert_eq!(
        d.authenticate("a\0b", b"pw").await.unwrap_err().reason(),
        "unknown_user"
    );
    assert!(d.lookup("").await.expect("no search").is_none());
    // With a real login it does try, and reports the directory unreachable.
    assert_eq!(
        d.authenticate("alice", b"pw").await.unwrap_err().reason(),
        "directory_unreachable"
    );
    assert!(matches!(
        d.lookup("alice").await,
        Err(DirectoryError::Unreachable(_))
    ));
}

#[test]
fn ldap_account_state() {
    let e = entry(
        "uid=d,dc=x",
        &[("pwdAccountLockedTime", &["000001010000Z"])],
    );
    assert_eq!(
        ldap_state(&e, false).unwrap_err().reason(),
        "account_locked"
    );
    assert_eq!(
        ldap_state(&e, true).unwrap_err().reason(),
        "account_disabled"
    );
    let e = entry(
        "uid=d,dc=x",
        &[("pwdAccountLockedTime", &["20240101000000Z"])],
    );
    assert!(
        ldap_state(&e, false).is_ok(),
        "a timed lock may have passed: the bind decides"
    );
    assert!(ldap_state(&entry("uid=e,dc=x", &[]), false).is_ok());
}

#[test]
fn bind_failures() {
    let ad = Directory::new(cfg(DirectoryKind::ActiveDirectory, &["ldap://dc1"])).expect("dir");
    let plain = entry("cn=a,dc=x", &[]);
    let msg =
        "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 775, v4563\0";
    assert_eq!(ad.bind_failure(49, msg, &plain).reason(), "account_locked");
    assert_eq!(
        ad.bind_failure(49, &msg.replace("775", "52e"), &plain)
            .reason(),
        "wrong_password"
    );
    assert_eq!(
        ad.bind_failure(49, &msg.replace("775", "773"), &plain)
            .reason(),
        "password_expired"
    );
    assert_eq!(ad.bind_failure(49, "", &plain).reason(), "wrong_password");
    let locked = entry("cn=a,dc=x", &[("lockoutTime", &["133000000000000000"])]);
    assert_eq!(ad.bind_failure(49, "", &locked).reason(), "account_locked");
    assert_eq!(ad.bind_failure(53, "", &plain).reason(), "directory_error");
    assert_eq!(ad.bind_failure(48, "", &plain).reason(), "wrong_password");

    let l = Directory::new(cfg(DirectoryKind::Ldap, &["ldap://x"])).expect("dir");
    // LDAP servers do not speak AD codes: "data 775" in a text means nothing there.
    assert_eq!(l.bind_failure(49, msg, &plain).reason(), "wrong_password");
    let ppolicy = entry(
        "uid=a,dc=x",
        &[("pwdAccountLockedTime", &["20240101000000Z"])],
    );
    assert_eq!(l.bind_failure(49, "", &ppolicy).reason(), "account_locked");
}

fn group(dn: &str, cn: &str, member_of: &[&str], members: &[&str]) -> Entry {
    entry(
        dn,
        &[("cn", &[cn]), ("memberOf", member_of), ("member", members)],
    )
}

#[test]
fn group_index_nesting_cycles_and_depth() {
    let u = "uid=carol,ou=people,dc=x";
    let groups = vec![
        group("cn=engineers,ou=groups,dc=x", "engineers", &[], &[u]),
        group(
            "cn=vpn-users,ou=groups,dc=x",
            "vpn-users",
            &[],
            &["CN=Engineers, OU=Groups,DC=x"],
        ),
        // a cycle: loop-a <-> loop-b, and vpn-users is in loop-a
        group(
            "cn=loop-a,ou=groups,dc=x",
            "loop-a",
            &[],
            &["cn=vpn-users,ou=groups,dc=x", "cn=loop-b,ou=groups,dc=x"],
        ),
        group(
            "cn=loop-b,ou=groups,dc=x",
            "loop-b",
            &[],
            &["cn=loop-a,ou=groups,dc=x"],
        ),
        group(
            "cn=other,ou=groups,dc=x",
            "other",
            &[],
            &["uid=erin,ou=people,dc=x"],
        ),
    ];
    let idx = GroupIndex::new(&groups, DirectoryKind::Ldap);
    let mut all: Vec<String> = idx.closure(u, &[], 8).into_values().collect();
    all.sort();
    assert_eq!(all, vec!["engineers", "loop-a", "loop-b", "vpn-users"]);
    let mut one: Vec<String> = idx.closure(u, &[], 1).into_values().collect();
    one.sort();
    assert_eq!(one, vec!["engineers"]);
    let two: HashSet<String> = idx.closure(u, &[], 2).into_values().collect();
    assert_eq!(two.len(), 2);
    // memberOf pointing outside the index: CN from the DN.
    let ext: Vec<String> = idx
        .closure("uid=z,dc=x", &["cn=Remote\\, Group,dc=other".into()], 8)
        .into_values()
        .collect();
    assert_eq!(ext, vec!["Remote, Group"]);
    assert_eq!(
        idx.resolve("VPN-USERS").expect("cn"),
        "cn=vpn-users,ou=groups,dc=x"
    );
    assert_eq!(
        idx.resolve("cn=VPN-users,ou=groups,dc=x").expect("dn"),
        "cn=vpn-users,ou=groups,dc=x"
    );
    assert!(matches!(idx.resolve("nope"), Err(OpError::Config(_))));
}

#[test]
fn group_index_ad_uses_member_of_only() {
    // AD: member lists may be ranged (truncated); memberOf is authoritative.
    let groups = vec![
        group(
            "CN=Eng,OU=G,DC=corp",
            "Eng",
            &["CN=VPN,OU=G,DC=corp"],
            &["CN=x,DC=corp"],
        ),
        group("CN=VPN,OU=G,DC=corp", "VPN", &[], &[]),
    ];
    let idx = GroupIndex::new(&groups, DirectoryKind::ActiveDirectory);
    assert!(idx.closure("CN=x,DC=corp", &[], 8).is_empty());
    let mut g: Vec<String> = idx
        .closure("CN=x,DC=corp", &["cn=eng,ou=g,dc=corp".into()], 8)
        .into_values()
        .collect();
    g.sort();
    assert_eq!(g, vec!["Eng", "VPN"]);
}

#[test]
fn dir_user_fallbacks() {
    let d = Directory::new(cfg(DirectoryKind::Ldap, &["ldap://x"])).expect("dir");
    let e = entry(
        "uid=alice,ou=people,dc=x",
        &[
            ("uid", &["alice"]),
            ("cn", &["Alice A"]),
            ("telephoneNumber", &["+1"]),
            ("mobile", &[""]),
        ],
    );
    let u = d.dir_user(&e, vec!["b".into(), "a".into(), "b".into()], true);
    assert_eq!(u.login, "alice");
    assert_eq!(u.display_name, "Alice A");
    assert_eq!(u.phone, "+1");
    assert_eq!(u.email, "");
    assert_eq!(u.groups, vec!["a", "b"]);
    let bare = d.dir_user(&entry("uid=bob,dc=x", &[]), vec![], false);
    assert_eq!(bare.login, "bob");
    assert_eq!(bare.display_name, "bob");
    assert!(!bare.enabled);
}

/// The server spawns these futures on a multi-threaded runtime: they must be
/// `Send` for any borrow (an async closure inside would break that).
#[test]
fn futures_are_send() {
    fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
    let cfg = DirectoryConfig::new(
        DirectoryKind::Ldap,
        vec!["ldap://127.0.0.1:1".into()],
        "dc=example,dc=org",
        "cn=svc",
        Secret::new("x".into()),
    );
    let d = Directory::new(cfg).expect("directory");
    let (a, b, c) = (d.clone(), d.clone(), d);
    spawnable(async move { a.authenticate("alice", b"pw").await.is_ok() });
    spawnable(async move { b.lookup("alice").await.is_ok() });
    spawnable(async move { c.search_users(None, None, Some("g")).await.is_ok() });
}

#[test]
fn plain_ldap_is_cleartext_unless_the_server_is_this_machine() {
    let mut c = cfg(
        DirectoryKind::Ldap,
        &[
            "ldap://dc1.corp:389",
            "ldap://127.0.0.1:389",
            "ldap://localhost",
            "ldap://[::1]:389",
            "ldap://10.0.0.5",
            "ldaps://dc2.corp",
            "ldap://[2001:db8::1]",
        ],
    );
    let d = Directory::new(c.clone()).expect("dir");
    assert_eq!(
        d.cleartext_servers(),
        vec![
            "ldap://dc1.corp:389",
            "ldap://10.0.0.5",
            "ldap://[2001:db8::1]"
        ]
    );
    c.tls = TlsMode::StartTls;
    assert!(Directory::new(c)
        .expect("dir")
        .cleartext_servers()
        .is_empty());
}
