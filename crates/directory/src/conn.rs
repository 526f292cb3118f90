//! Connections: TLS set-up, connect, and the LDAP operations we use, each run in its
//! own task under a deadline so that a hung server or a panic inside the LDAP library
//! (which `expect`s on malformed PDUs) becomes an error value instead of a stall or a
//! crash of the caller.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ldap3::controls::{PagedResults, RawControl};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use zeroize::Zeroizing;

use crate::entry::{parse_entry, parse_paged_cookie, Entry};

/// OID of the RFC 2696 paged-results control.
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// Why one operation against one server failed.
#[derive(Debug)]
pub(crate) enum OpError {
    /// Connect, TLS, I/O or timeout: the server is not usable now.
    Unreachable(String),
    /// The service account's bind was refused.
    ServiceBind(String),
    /// The server answered with an LDAP result code.
    Ldap { rc: u32, text: String },
    /// The server sent something we could not parse.
    Malformed(String),
    /// The directory's data does not allow an answer (e.g. an ambiguous login).
    Data(String),
    /// The caller's parameters are wrong (e.g. an unknown group).
    Config(String),
}

impl OpError {
    /// Whether the next server should be tried.
    pub(crate) fn failover(&self) -> bool {
        match self {
            OpError::Unreachable(_) | OpError::ServiceBind(_) => true,
            // busy, unavailable
            OpError::Ldap { rc, .. } => matches!(rc, 51 | 52),
            _ => false,
        }
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Unreachable(m) => write!(f, "unreachable: {m}"),
            OpError::ServiceBind(m) => write!(f, "service account bind refused: {m}"),
            OpError::Ldap { rc, text } => write!(f, "LDAP result {rc} ({})", clean(text)),
            OpError::Malformed(m) => write!(f, "malformed response: {m}"),
            OpError::Data(m) | OpError::Config(m) => f.write_str(m),
        }
    }
}

/// Server diagnostic text without control characters (AD ends it with a NUL).
pub(crate) fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

fn classify(e: LdapError) -> OpError {
    match e {
        LdapError::LdapResult { result } => OpError::Ldap {
            rc: result.rc,
            text: result.text,
        },
        e @ (LdapError::Io { .. }
        | LdapError::Timeout { .. }
        | LdapError::OpSend { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::IdScrubSend { .. }
        | LdapError::MiscSend { .. }
        | LdapError::EndOfStream
        | LdapError::Rustls { .. }
        | LdapError::DNSName { .. }
        | LdapError::UrlParsing { .. }
        | LdapError::UnknownScheme(_)) => OpError::Unreachable(e.to_string()),
        other => OpError::Malformed(other.to_string()),
    }
}

/// Runs `fut` in its own task with a deadline. A timeout aborts the task (dropping its
/// connection handle); a panic in the task is reported as a malformed response.
async fn run<T, F>(timeout: Duration, what: &'static str, fut: F) -> Result<T, OpError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, OpError>> + Send + 'static,
{
    let task = tokio::spawn(fut);
    let abort = task.abort_handle();
    match tokio::time::timeout(timeout, task).await {
        Err(_) => {
            abort.abort();
            Err(OpError::Unreachable(format!(
                "{what} timed out after {timeout:?}"
            )))
        }
        Ok(Err(join)) if join.is_panic() => Err(OpError::Malformed(format!(
            "{what}: LDAP library rejected the server's PDU"
        ))),
        Ok(Err(join)) => Err(OpError::Unreachable(format!("{what}: {join}"))),
        Ok(Ok(result)) => result,
    }
}

/// How a connection is secured.
#[derive(Clone, Debug)]
pub(crate) enum Security {
    Plain,
    StartTls(Arc<ClientConfig>),
    Ldaps(Arc<ClientConfig>),
}

/// Opens a connection (TCP, then TLS or StartTLS) and starts its driver task.
pub(crate) async fn connect(
    url: &str,
    security: Security,
    timeout: Duration,
) -> Result<Ldap, OpError> {
    let mut settings = LdapConnSettings::new().set_conn_timeout(timeout);
    match security {
        Security::Plain => {}
        Security::StartTls(cfg) => settings = settings.set_starttls(true).set_config(cfg),
        Security::Ldaps(cfg) => settings = settings.set_config(cfg),
    }
    let url = url.to_owned();
    run(timeout, "connect", async move {
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &url)
            .await
            .map_err(|e| match classify(e) {
                // A refused StartTLS is a server we cannot use, not a directory answer.
                OpError::Ldap { rc, text } => {
                    OpError::Unreachable(format!("StartTLS refused: {rc} {}", clean(&text)))
                }
                other => other,
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        Ok(ldap)
    })
    .await
}

/// A simple bind; returns the result code and diagnostic text.
pub(crate) async fn bind(
    ldap: &Ldap,
    dn: &str,
    password: Zeroizing<String>,
    timeout: Duration,
) -> Result<(u32, String), OpError> {
    let mut ldap = ldap.clone();
    let dn = dn.to_owned();
    run(timeout, "bind", async move {
        let res = ldap.simple_bind(&dn, &password).await.map_err(classify)?;
        Ok((res.rc, res.text))
    })
    .await
}

/// Politely ends a connection we no longer need (best effort, in the background).
pub(crate) fn unbind(ldap: Ldap) {
    let mut ldap = ldap;
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), ldap.unbind()).await;
    });
}

/// One search response: the entries, the result code and text, the paging cookie.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) entries: Vec<Entry>,
    pub(crate) rc: u32,
    pub(crate) text: String,
    pub(crate) cookie: Option<Vec<u8>>,
}

/// Parameters of one search request.
#[derive(Debug, Clone)]
pub(crate) struct SearchReq {
    pub(crate) base: String,
    pub(crate) scope: Scope,
    pub(crate) filter: String,
    pub(crate) attrs: Vec<String>,
    pub(crate) size_limit: i32,
    /// Page size and cookie for RFC 2696 paging.
    pub(crate) page: Option<(i32, Vec<u8>)>,
}

/// Runs one search request (one page when paged).
pub(crate) async fn search(
    ldap: &Ldap,
    req: SearchReq,
    timeout: Duration,
) -> Result<Page, OpError> {
    let mut ldap = ldap.clone();
    run(timeout, "search", async move {
        if req.size_limit > 0 {
            ldap.with_search_options(SearchOptions::new().sizelimit(req.size_limit));
        }
        if let Some((size, cookie)) = req.page {
            ldap.with_controls(RawControl::from(PagedResults { size, cookie }));
        }
        let res = ldap
            .search(&req.base, req.scope, &req.filter, req.attrs)
            .await
            .map_err(classify)?;
        let mut entries = Vec::with_capacity(res.0.len());
        for raw in &res.0 {
            let entry = parse_entry(&raw.0)
                .ok_or_else(|| OpError::Malformed("unparsable search entry".into()))?;
            entries.push(entry);
        }
        let cookie = res
            .1
            .ctrls
            .iter()
            .find(|c| c.1.ctype == PAGED_RESULTS_OID)
            .and_then(|c| c.1.val.as_deref())
            .and_then(parse_paged_cookie);
        Ok(Page {
            entries,
            rc: res.1.rc,
            text: res.1.text,
            cookie,
        })
    })
    .await
}

/// Parses the extra CA certificates (PEM text). At least one certificate is required.
pub(crate) fn parse_ca_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        out.push(cert.map_err(|e| format!("ca_pem: {e}"))?);
    }
    if out.is_empty() {
        return Err("ca_pem: no CERTIFICATE block found".into());
    }
    Ok(out)
}

/// A rustls client configuration (ring provider) trusting the system roots
/// (rustls-native-certs) plus `extra`.
pub(crate) fn client_config(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "while loading system trust roots");
    }
    let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| format!("ca_pem: unusable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no trusted CA: the system store is empty and ca_pem is not set".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_pem_parsing() {
        assert!(parse_ca_pem("").is_err());
        assert!(parse_ca_pem("not a pem").is_err());
        let cert = rcgen::generate_simple_self_signed(vec!["ldap.test".into()]).expect("cert");
        let pem = cert.cert.pem();
        let certs = parse_ca_pem(&pem).expect("pem");
        assert_eq!(certs.len(), 1);
        assert!(client_config(&certs).is_ok());
        let two = format!("{pem}\n{pem}");
        assert_eq!(parse_ca_pem(&two).expect("two").len(), 2);
    }

    #[test]
    fn failover_classes() {
        assert!(OpError::Unreachable("x".into()).failover());
        assert!(OpError::ServiceBind("x".into()).failover());
        assert!(OpError::Ldap {
            rc: 52,
            text: String::new()
        }
        .failover());
        assert!(!OpError::Ldap {
            rc: 32,
            text: String::new()
        }
        .failover());
        assert!(!OpError::Data("x".into()).failover());
        assert_eq!(clean("a\0b\n"), "ab");
    }

    #[tokio::test]
    async fn run_times_out_and_contains_panics() {
        let r: Result<(), OpError> = run(Duration::from_millis(20), "op", async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await;
        assert!(matches!(r, Err(OpError::Unreachable(_))));
        let r: Result<(), OpError> = run(Duration::from_secs(5), "op", async {
            let v: Vec<u8> = Vec::new();
            if v.is_empty() {
                panic!("simulated parser panic");
            }
            Ok(())
        })
        .await;
        assert!(matches!(r, Err(OpError::Malformed(_))));
    }
}
