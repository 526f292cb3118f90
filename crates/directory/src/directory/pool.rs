//! Servers, pooled service-account connections and failover: the order servers
//! are tried in, the back-off of a failed one, and the try-every-server wrapper
//! that every service-account operation runs through.

use ldap3::Ldap;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::{lock, Directory, Server};
use crate::conn::{self, OpError, Security};
use crate::error::Failed;
use crate::{TlsMode, DOWN_BACKOFF};

impl Directory {
    pub(super) fn security(&self, mode: TlsMode) -> Result<Security, OpError> {
        if mode == TlsMode::None {
            return Ok(Security::Plain);
        }
        let cfg = self
            .inner
            .tls
            .get_or_init(|| conn::client_config(&self.inner.extra_roots))
            .clone()
            .map_err(OpError::Unreachable)?;
        Ok(match mode {
            TlsMode::StartTls => Security::StartTls(cfg),
            _ => Security::Ldaps(cfg),
        })
    }

    pub(super) async fn connect(&self, server: &Server) -> Result<Ldap, OpError> {
        let security = self.security(server.mode)?;
        conn::connect(&server.url, security, self.cfg().timeout).await
    }

    /// Servers in the order to try: healthy ones in configured order, then those that
    /// failed within [`DOWN_BACKOFF`].
    pub(super) fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let (mut up, down): (Vec<usize>, Vec<usize>) =
            (0..self.inner.servers.len()).partition(|&i| {
                self.inner
                    .servers
                    .get(i)
                    .is_none_or(|s| lock(&s.down_until).is_none_or(|t| t <= now))
            });
        up.extend(down);
        up
    }

    pub(super) fn mark(&self, server: &Server, ok: bool) {
        let until = (!ok).then(|| Instant::now() + DOWN_BACKOFF);
        *lock(&server.down_until) = until;
        if !ok {
            lock(&server.pool).clear();
        }
    }

    /// A bound service-account connection: a pooled one unless `fresh`.
    pub(super) async fn acquire(
        &self,
        server: &Server,
        fresh: bool,
    ) -> Result<(Ldap, bool), OpError> {
        if fresh {
            lock(&server.pool).clear();
        } else {
            loop {
                let pooled = lock(&server.pool).pop();
                match pooled {
                    Some(mut l) => {
                        if !l.is_closed() {
                            return Ok((l, true));
                        }
                    }
                    None => break,
                }
            }
        }
        let ldap = self.connect(server).await?;
        let cfg = self.cfg();
        if !cfg.bind_dn.trim().is_empty() {
            let pw = Zeroizing::new(cfg.bind_password.expose().to_owned());
            match conn::bind(&ldap, &cfg.bind_dn, pw, cfg.timeout).await? {
                (0, _) => {}
                (rc @ (51 | 52), text) => {
                    return Err(OpError::Unreachable(format!(
                        "bind: {rc} {}",
                        conn::clean(&text)
                    )))
                }
                (rc, text) => {
                    return Err(OpError::ServiceBind(format!(
                        "{} on {}: result {rc} ({})",
                        cfg.bind_dn,
                        server.url,
                        conn::clean(&text)
                    )))
                }
            }
        }
        Ok((ldap, false))
    }

    pub(super) fn release(&self, server: &Server, mut ldap: Ldap) {
        if ldap.is_closed() {
            return;
        }
        let mut pool = lock(&server.pool);
        if pool.len() < self.cfg().pool_size {
            pool.push(ldap);
        } else {
            drop(pool);
            conn::unbind(ldap);
        }
    }

    /// Runs `op` on a service-account connection, server after server until one answers.
    /// A pooled connection that turns out dead is replaced once before moving on.
    ///
    /// `op` returns a plain `Send` future (not an async closure): the futures
    /// of this client must be spawnable on a multi-threaded runtime, and an
    /// async closure's future cannot be bounded `Send` on stable Rust.
    pub(super) async fn with_service<T, F, Fut>(&self, op: F) -> Result<T, Failed>
    where
        F: Fn(Ldap) -> Fut,
        Fut: std::future::Future<Output = Result<T, OpError>> + Send,
    {
        let mut errors = Vec::new();
        let mut service_bind = false;
        for idx in self.order() {
            let Some(server) = self.inner.servers.get(idx) else {
                continue;
            };
            let mut fresh = false;
            loop {
                let (ldap, reused) = match self.acquire(server, fresh).await {
                    Ok(c) => c,
                    Err(e) => {
                        service_bind |= matches!(e, OpError::ServiceBind(_));
                        tracing::warn!(server = %server.url, error = %e, "directory server failed");
                        errors.push(format!("{}: {e}", server.url));
                        self.mark(server, false);
                        break;
                    }
                };
                match op(ldap.clone()).await {
                    Ok(v) => {
                        self.mark(server, true);
                        self.release(server, ldap);
                        return Ok(v);
                    }
                    Err(e) if e.failover() => {
                        drop(ldap);
                        if reused && !fresh {
                            fresh = true;
                            continue;
                        }
                        tracing::warn!(server = %server.url, error = %e, "directory server failed");
                        errors.push(format!("{}: {e}", server.url));
                        self.mark(server, false);
                        break;
                    }
                    Err(e) => {
                        self.release(server, ldap);
                        return Err(Failed::Op(e));
                    }
                }
            }
        }
        Err(Failed::All {
            errors,
            service_bind,
        })
    }
}
