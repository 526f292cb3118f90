//! The peer link: TCP with mutual TLS between the nodes of a cluster.
//!
//! Used for challenge forwarding (DESIGN.md §5): a node that receives the
//! second request of a challenge owned by another node sends the raw RADIUS
//! datagram and the NAS address to the owner, which runs its pipeline on it
//! and returns its reply datagram (or nothing). Replication (DESIGN.md §6)
//! uses the same transport (port 4443): each node sends its replication
//! messages to a peer over its own outgoing connection to that peer, cut
//! into Repl frames; replicas forward admin writes to the primary as Admin
//! frames; a node that received a Twilio callback for a verification
//! another node owns sends the answer to the owner as a Verdict frame
//! (`callback/`).
//!
//! # Security
//! A cluster CA ([`generate_ca`]) signs one certificate per node
//! ([`generate_node_cert`]) carrying the DNS name [`node_server_name`]. The
//! client verifies that the server's chain leads to the cluster CA and names
//! the node it wants; the server requires a client certificate chained to
//! the cluster CA and, after the client's Hello, that the certificate names
//! the node id the Hello claims and that this id is one of its configured
//! `[[cluster.peer]]` entries (certificates cannot be revoked: removing a
//! node from the peers' configuration shuts it out). TLS 1.3 only, no
//! session resumption.
//!
//! # Frames
//! Every frame on the TLS stream is
//!
//! ```text
//! u32 BE  length of the rest (9 ..= 9 + 16 MiB)
//! u8      kind
//! u64 BE  request id
//! ...     payload (kind specific)
//! ```
//!
//! | kind | name    | direction        | payload                                                     |
//! |------|---------|------------------|-------------------------------------------------------------|
//! | 1    | Hello   | client -> server | u16 BE node id, u8 protocol version (1); request id 0       |
//! | 2    | Forward | client -> server | u8 family (4 or 6), 4 or 16 bytes IP, u16 BE port, datagram |
//! | 3    | Reply   | server -> client | u8 status: 0 = datagram follows, 1 = no reply (nothing after)|
//! | 4    | Repl    | client -> server | u8 0 = last piece, 1 = more follow; a piece of a replication message; id 0 |
//! | 5    | Admin   | client -> server | an admin request (JSON) a replica forwards to the primary   |
//! | 6    | AdminReply | server -> client | the answer (JSON) to the Admin frame with the same id    |
//! | 7    | Verdict | client -> server | a user's out-of-band answer (JSON, `callback::Answer`) for the verification's owner |
//! | 8    | VerdictReply | server -> client | what became of it (JSON, `callback::Delivered`), same id |
//!
//! The Hello is the client's first frame and is sent once; a first frame
//! whose length prefix exceeds a Hello's is refused before its body is read. A Reply carries
//! the request id of its Forward; replies come back in completion order, not
//! request order. Any malformed frame, trailing byte, oversized length or
//! unknown kind closes the connection (other kinds are reserved for later
//! services, which will announce themselves through the protocol version).

mod client;
mod error;
mod frame;
mod handler;
mod pki;
mod server;
mod stats;
mod tls;

pub use client::PeerClient;
pub use error::{ForwardError, PeerError};
pub use handler::ForwardHandler;
pub use pki::{generate_ca, generate_node_cert, Pem};
pub use server::serve;
pub(crate) use stats::bump;
pub use stats::PeerStats;
pub use tls::{node_server_name, PeerTls};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
