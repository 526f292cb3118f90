//! The table of admin operations run on the store: one arm per request,
//! handing its fields to the file of its resource and its typed answer to
//! JSON. Requests that need the running node (stats, replication, directory
//! sync) are answered by [`super::service::Admin`] and refused here.

use serde::Serialize;
use serde_json::Value;

use radmfa_otp::{Clock, SystemClock};
use radmfa_store::{AuditFilter, Store};

use crate::config::RuntimeConfig;

use super::actor::Actor;
use super::context::Ctx;
use super::error::AdminError;
use super::request::AdminRequest;
use super::{admin_tokens, clients, cluster, devices, import, pool, reports, tokens, users};

/// Runs a request against the store at the system clock's time and returns
/// its answer as JSON (the CLI without a server, tests). An action is
/// audited as the CLI's on this node, offline; a report read from a
/// replica's store says it may lack what the primary holds.
pub fn execute(store: &Store, cfg: &RuntimeConfig, req: AdminRequest) -> Result<Value, AdminError> {
    let ctx = Ctx {
        store,
        config: cfg,
        now: SystemClock.now_unix(),
    };
    let audited = req.audited();
    let report = matches!(
        req,
        AdminRequest::Report { .. } | AdminRequest::ReportSummary { .. }
    );
    let mut res = run(ctx, req);
    if let Some((op, target)) = audited {
        use std::os::unix::fs::MetadataExt;
        let actor = Actor::Cli {
            node: cfg.node_name.clone(),
            uid: std::fs::metadata("/proc/self").ok().map(|m| m.uid()),
            offline: true,
        };
        let rec = actor.record(
            (&cfg.node_name, &cfg.server_ip),
            SystemClock.now_unix_ms(),
            (op, &target),
            res.as_ref().map(|_| ()),
        );
        if let Err(e) = store.append_audit(&rec) {
            tracing::error!(error = %e, op, "cannot write the audit record of an admin action");
        }
    }
    let replica = !matches!(store.repl_state().0, radmfa_store::repl::Role::Primary);
    if let (true, true, Ok(Value::Object(obj))) = (report, replica, res.as_mut()) {
        obj.insert("complete".into(), Value::Bool(false));
        obj.insert(
            "note".into(),
            Value::String(
                "no server is running: read from this replica's store (its own records only)"
                    .into(),
            ),
        );
    }
    res
}

/// Runs one request against `ctx`'s store: decides nothing beyond handing
/// each request to its operation; the operations validate.
pub fn run(ctx: Ctx<'_>, req: AdminRequest) -> Result<Value, AdminError> {
    match req {
        AdminRequest::UserAdd(n) => json(users::add(ctx, n)),
        AdminRequest::UserSet(c) => json(users::set(ctx, c)),
        AdminRequest::UserPin { name, pin } => json(users::pin(ctx, name, pin)),
        AdminRequest::UserPinChange { name, pin } => json(users::pin_change(ctx, name, pin)),
        AdminRequest::UserList => json(users::list(ctx)),
        AdminRequest::UserShow { name } => json(users::show(ctx, &name)),
        AdminRequest::UserSetEnabled { name, enabled } => {
            json(users::set_enabled(ctx, name, enabled))
        }
        AdminRequest::UserDisableFraud { name } => json(users::disable_fraud(ctx, name)),
        AdminRequest::UserDelete { name } => json(users::delete(ctx, name)),
        AdminRequest::UserDevices { name } => json(devices::list(ctx, &name)),
        AdminRequest::UserDeviceAdd(n) => json(devices::add(ctx, n)),
        AdminRequest::UserDeviceRemove { name, id } => json(devices::remove(ctx, name, id)),
        AdminRequest::UserUnlock { name } => json(users::unlock(ctx, name)),
        AdminRequest::UserLock {
            name,
            until,
            reason,
        } => json(users::lock(ctx, name, until, reason)),
        AdminRequest::UserPasswd { name, password } => json(users::passwd(ctx, name, password)),
        AdminRequest::UserImport {
            rows,
            dry_run,
            continue_on_error,
            source,
            rejected,
            send_email: _,
        } => json(import::import(
            ctx,
            rows,
            import::ImportOptions {
                dry_run,
                continue_on_error,
                source,
                rejected,
            },
        )),
        AdminRequest::TokenImport(t) => json(pool::import(ctx, t)),
        AdminRequest::TokenAssign { serial, user } => json(pool::assign(ctx, serial, user)),
        AdminRequest::TokenPoolList { unassigned } => json(pool::list(ctx, unassigned)),
        AdminRequest::TokenRevoke { serial } => json(pool::revoke(ctx, serial)),
        AdminRequest::TokenEnroll(t) => json(tokens::enroll(ctx, t)),
        AdminRequest::TokenList => json(tokens::list(ctx)),
        AdminRequest::TokenShow { user } => json(tokens::show(ctx, &user)),
        AdminRequest::TokenDelete { user } => json(tokens::delete(ctx, user)),
        AdminRequest::TokenResync {
            user,
            first,
            second,
        } => json(tokens::resync(ctx, user, &first, &second)),
        AdminRequest::ClientAdd(n) => json(clients::add(ctx, n)),
        AdminRequest::ClientList => json(clients::list(ctx)),
        AdminRequest::ClientDelete { name } => json(clients::delete(ctx, name)),
        AdminRequest::Report {
            user,
            result,
            since_ms,
            limit,
            until_ms,
            method,
            client,
            sign_ins_only,
        } => json(reports::report(
            ctx,
            &AuditFilter {
                user,
                since_ms,
                until_ms,
                result,
                limit,
            },
            method.as_deref(),
            client.as_deref(),
            sign_ins_only,
        )),
        AdminRequest::ReportSummary {
            since_ms,
            until_ms,
            bucket,
            top,
        } => json(reports::summary(
            ctx,
            since_ms,
            until_ms,
            bucket,
            top.unwrap_or(10),
        )),
        AdminRequest::AccountingReport {
            user,
            since_ms,
            until_ms,
            limit,
            client,
        } => json(reports::accounting(
            ctx,
            &AuditFilter {
                user,
                since_ms,
                until_ms,
                result: None,
                limit,
            },
            client.as_deref(),
        )),
        AdminRequest::AdminTokenCreate { name, scopes } => {
            json(admin_tokens::create(ctx, name, &scopes))
        }
        AdminRequest::AdminTokenList => json(admin_tokens::list(ctx)),
        AdminRequest::AdminTokenRevoke { name } => json(admin_tokens::revoke(ctx, name)),
        AdminRequest::OtpAdvance { steps } => json(cluster::otp_advance(ctx, &steps)),
        AdminRequest::Backup { path } => json(cluster::backup(ctx, &path)),
        AdminRequest::Stats
        | AdminRequest::ReplStatus
        | AdminRequest::Reload
        | AdminRequest::ConfigStatus
        | AdminRequest::ConfigDigest { .. }
        | AdminRequest::Promote { .. }
        | AdminRequest::LockoutFailure { .. }
        | AdminRequest::LockoutReset { .. } => Err(no_server()),
        AdminRequest::DirectorySync { .. } => Err(not_here()),
    }
}

/// A request only a running server answers.
fn no_server() -> AdminError {
    AdminError::NeedsServer("no radmfa server is running on this data directory".to_string())
}

/// A directory sync: async, with the directory and mailer it needs.
fn not_here() -> AdminError {
    AdminError::Invalid(
        "directory sync runs through radmfa_server::admin::directory_sync".to_string(),
    )
}

/// An operation's typed answer as the JSON every caller receives.
fn json<T: Serialize>(answer: Result<T, AdminError>) -> Result<Value, AdminError> {
    serde_json::to_value(answer?).map_err(|e| AdminError::Invalid(e.to_string()))
}
