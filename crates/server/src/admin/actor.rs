//! Who made an admin action, for its audit record: the CLI on a node (and
//! the local user id the control socket saw), an API token, a portal user,
//! the sync scheduler. Its own file: the API, the portal and the control
//! socket name their callers with it, and the service turns it into the
//! record.

use std::fmt;

use radmfa_store::AuditRecord;

use super::error::AdminError;

/// Who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// `radmfa` on the node: through the control socket (the peer's uid),
    /// or on the store directly while no server runs (`offline`).
    Cli {
        /// The node's `node_name`.
        node: String,
        /// The local user id, when known.
        uid: Option<u32>,
        /// No server was running: the CLI wrote the store itself.
        offline: bool,
    },
    /// An admin API token, by its name (never the token).
    Api {
        /// The token's name.
        token: String,
    },
    /// A user of the self-service portal.
    Portal {
        /// Login name.
        user: String,
    },
    /// A `[[sync]]` item run by the node's scheduler.
    Scheduler {
        /// The node's `node_name`.
        node: String,
    },
    /// The node itself (any other caller of the admin service).
    Node {
        /// The node's `node_name`.
        node: String,
    },
}

impl Actor {
    /// The channel, in the record's `client_name`.
    pub fn channel(&self) -> &'static str {
        match self {
            Actor::Cli { .. } => "cli",
            Actor::Api { .. } => "api",
            Actor::Portal { .. } => "portal",
            Actor::Scheduler { .. } => "scheduler",
            Actor::Node { .. } => "node",
        }
    }

    /// The audit record of action `op` on `target` with its outcome, made
    /// on node `server_name` (`server_ip`) at `time_ms`. The error text is
    /// the one the caller got (errors never carry secrets).
    pub fn record(
        &self,
        (server_name, server_ip): (&str, &str),
        time_ms: u64,
        (op, target): (&str, &str),
        outcome: Result<(), &AdminError>,
    ) -> AuditRecord {
        let (result, reason) = match outcome {
            Ok(()) => ("ok", op.to_string()),
            Err(e) => ("failed", format!("{op}: {e}")),
        };
        AuditRecord {
            time_ms,
            user: crate::text::escape(target).into_owned(),
            mode: crate::audit::ADMIN_MODE.to_string(),
            result: result.to_string(),
            reason: crate::text::escape(&reason).into_owned(),
            server_name: server_name.to_string(),
            server_ip: server_ip.to_string(),
            client_name: self.channel().to_string(),
            actor: crate::text::escape(&self.to_string()).into_owned(),
            ..AuditRecord::default()
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Cli { node, uid, offline } => {
                write!(f, "cli on {node}")?;
                if let Some(uid) = uid {
                    write!(f, " (uid {uid})")?;
                }
                if *offline {
                    write!(f, " (offline)")?;
                }
                Ok(())
            }
            Actor::Api { token } => write!(f, "api token {token}"),
            Actor::Portal { user } => write!(f, "portal user {user}"),
            Actor::Scheduler { node } => write!(f, "sync scheduler on {node}"),
            Actor::Node { node } => write!(f, "node {node}"),
        }
    }
}
