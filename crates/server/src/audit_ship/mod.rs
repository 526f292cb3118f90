//! Cluster-wide audit (architecture.md §6a): every node's journal reaches
//! the primary, which answers reports for the whole cluster.
//!
//! A node's own journal is the source of truth for its records; each record
//! carries the journal's sequence number (`seq`). A task on every clustered
//! node ([`sender::run`]) ships what follows the primary's acknowledged
//! sequence, in batches over the peer link (AuditBatch / AuditAck frames),
//! off the packet path; the primary ([`receiver::receive`]) stores each
//! (node, seq) once in its cluster inbox and acknowledges only what is on
//! its disk. After a failure, a restart or a promotion the sender asks the
//! (new) primary where to resume, so nothing is lost or stored twice.

pub mod receiver;
pub mod sender;
pub mod status;
pub mod wire;
