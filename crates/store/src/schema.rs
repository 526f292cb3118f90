//! The on-disk schema shared by the [`Store`](crate::Store) and the
//! replication changelog: tree numbers, the `meta` keys, the record encodings
//! (JSON values, u64 big-endian counters, sealed token records) and the
//! changelog entry format.
//!
//! It is its own module so that `store.rs` (which writes changelog entries in
//! every administrative transaction) and `changelog.rs` (which reads them back,
//! installs snapshots and serves replicas) both depend on it and neither on
//! the other's encoding: `changelog.rs` uses the store, the store does not use
//! the changelog.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::repl::{Change, Op};
use crate::{StoreError, TokenAlgorithm, TokenKind};

/// Replication tree number of the `users` tree.
pub const TREE_USERS: u8 = 1;
/// Replication tree number of the `tokens` tree (sealed seeds).
pub const TREE_TOKENS: u8 = 2;
/// Replication tree number of the `otp_state` tree (u64 big-endian values).
pub const TREE_OTP_STATE: u8 = 3;
/// Replication tree number of the `clients` tree.
pub const TREE_CLIENTS: u8 = 4;
/// Replication tree number of the `admin_tokens` tree (admin API bearer
/// token hashes).
pub const TREE_ADMIN_TOKENS: u8 = 5;
/// Replication tree number of the `token_pool` tree (imported hardware and
/// software tokens by serial, seeds sealed; see `store/pool.rs`).
pub const TREE_TOKEN_POOL: u8 = 6;

/// Schema version written to the `meta` tree; a database with another version
/// is refused.
pub(crate) const SCHEMA_VERSION: u32 = 1;
pub(crate) const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// Number of users (u64 big-endian), kept in the same transaction as the users
/// tree so [`Store::user_count`] needs no scan.
pub(crate) const META_USER_COUNT: &[u8] = b"user_count";

/// Sequence number of the last changelog entry (u64 big-endian), or of the
/// installed snapshot when no entry follows it.
pub(crate) const META_REPL_LAST_SEQ: &[u8] = b"repl_last_seq";
/// Epoch of that entry (u64 big-endian).
pub(crate) const META_REPL_LAST_EPOCH: &[u8] = b"repl_last_epoch";
/// `primary` or `replica`.
pub(crate) const META_REPL_ROLE: &[u8] = b"repl_role";
/// The node's epoch (u64 big-endian).
pub(crate) const META_REPL_EPOCH: &[u8] = b"repl_epoch";
/// Present while a snapshot is being installed: a store opened with it
/// finishes the wipe (see [`Store::install_entries`]).
pub(crate) const META_REPL_INSTALLING: &[u8] = b"repl_installing";
/// The seed key check value (`crypto::seal_key_check`): nonce and
/// ciphertext of a fixed text under the seed key.
pub(crate) const META_KEY_CHECK: &[u8] = b"seed_key_check";

/// The trees an administrative write may change: the replicated trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AdminTree {
    Users,
    Tokens,
    OtpState,
    Clients,
    AdminTokens,
    TokenPool,
}

impl AdminTree {
    /// This tree's bit in a set of trees written by one transaction.
    pub(crate) fn bit(self) -> u8 {
        match self {
            AdminTree::Users => 1,
            AdminTree::Tokens => 2,
            AdminTree::OtpState => 4,
            AdminTree::Clients => 8,
            AdminTree::AdminTokens => 16,
            AdminTree::TokenPool => 32,
        }
    }

    /// The replication tree number ([`Op::tree`](crate::repl::Op::tree)).
    pub(crate) fn number(self) -> u8 {
        match self {
            AdminTree::Users => TREE_USERS,
            AdminTree::Tokens => TREE_TOKENS,
            AdminTree::OtpState => TREE_OTP_STATE,
            AdminTree::Clients => TREE_CLIENTS,
            AdminTree::AdminTokens => TREE_ADMIN_TOKENS,
            AdminTree::TokenPool => TREE_TOKEN_POOL,
        }
    }

    /// The tree of a replication tree number.
    pub(crate) fn from_number(n: u8) -> Option<AdminTree> {
        match n {
            TREE_USERS => Some(AdminTree::Users),
            TREE_TOKENS => Some(AdminTree::Tokens),
            TREE_OTP_STATE => Some(AdminTree::OtpState),
            TREE_CLIENTS => Some(AdminTree::Clients),
            TREE_ADMIN_TOKENS => Some(AdminTree::AdminTokens),
            TREE_TOKEN_POOL => Some(AdminTree::TokenPool),
            _ => None,
        }
    }

    /// All of them, in tree number order.
    pub(crate) const ALL: [AdminTree; 6] = [
        AdminTree::Users,
        AdminTree::Tokens,
        AdminTree::OtpState,
        AdminTree::Clients,
        AdminTree::AdminTokens,
        AdminTree::TokenPool,
    ];
}

/// A token as stored in the `tokens` tree: parameters in clear, seed sealed with
/// ChaCha20-Poly1305 (AAD = user name).
#[derive(Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub(crate) kind: TokenKind,
    pub(crate) algorithm: TokenAlgorithm,
    pub(crate) digits: u8,
    pub(crate) period: u64,
    pub(crate) created: u64,
    /// 12-byte nonce, hex.
    pub(crate) nonce: String,
    /// Ciphertext and 16-byte tag, hex.
    pub(crate) sealed: String,
    /// The serial of the imported token this is (see `store/pool.rs`);
    /// `None` for a token enrolled for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) serial: Option<String>,
}

/// An imported token in the `token_pool` tree (key = serial): parameters
/// in clear, seed sealed with ChaCha20-Poly1305 (AAD = `pool:` + serial).
#[derive(Serialize, Deserialize)]
pub(crate) struct PoolRecord {
    pub(crate) kind: TokenKind,
    pub(crate) algorithm: TokenAlgorithm,
    pub(crate) digits: u8,
    pub(crate) period: u64,
    /// HOTP: the next counter value the token will use.
    #[serde(default)]
    pub(crate) counter: u64,
    #[serde(default)]
    pub(crate) manufacturer: String,
    pub(crate) created: u64,
    /// The user it is assigned to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    /// 12-byte nonce, hex.
    pub(crate) nonce: String,
    /// Ciphertext and 16-byte tag, hex.
    pub(crate) sealed: String,
}

/// Encodes a record value (JSON).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("encoding failed: {e}")))
}

/// Decodes a record value stored under `key` (JSON); `what` names the
/// record kind in the error.
pub(crate) fn decode<T: DeserializeOwned>(
    what: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{what} {:?}: {e}", String::from_utf8_lossy(key))))
}

/// Decodes a u64 big-endian value (a counter or a meta position).
pub(crate) fn decode_u64(what: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| {
            StoreError::Corrupt(format!("{what}: expected 8 bytes, found {}", bytes.len()))
        })
}

/// The kind byte of a changelog entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Put,
    Remove,
}

/// Encodes one changelog value (the sequence number is the key).
pub(crate) fn encode_entry(
    epoch: u64,
    kind: EntryKind,
    tree: u8,
    key: &[u8],
    value: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + key.len() + value.len());
    out.extend_from_slice(&epoch.to_be_bytes());
    out.push(match kind {
        EntryKind::Put => 0,
        EntryKind::Remove => 1,
    });
    out.push(tree);
    // Keys are sled keys of the admin trees: names, far below 4 GiB.
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(key);
    if kind == EntryKind::Put {
        out.extend_from_slice(value);
    }
    out
}

/// Decodes the changelog entry `seq` from its stored value.
pub(crate) fn decode_entry(seq: u64, bytes: &[u8]) -> Result<Change, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("changelog entry {seq}: {what}"));
    let (epoch, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| bad("truncated epoch"))?;
    let (&[kind, tree], rest) = rest
        .split_first_chunk::<2>()
        .ok_or_else(|| bad("truncated header"))?;
    let (klen, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("truncated key length"))?;
    let klen = usize::try_from(u32::from_be_bytes(*klen)).map_err(|_| bad("key too long"))?;
    let (key, value) = rest
        .split_at_checked(klen)
        .ok_or_else(|| bad("truncated key"))?;
    let op = match kind {
        0 => Op::Put {
            tree,
            key: key.to_vec(),
            value: value.to_vec(),
        },
        1 if value.is_empty() => Op::Remove {
            tree,
            key: key.to_vec(),
        },
        1 => return Err(bad("remove with a value")),
        k => return Err(bad(&format!("unknown kind {k}"))),
    };
    Ok(Change {
        seq,
        epoch: u64::from_be_bytes(*epoch),
        op,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip_and_garbage() {
        let put = encode_entry(7, EntryKind::Put, TREE_USERS, b"alice", b"{}");
        assert_eq!(
            decode_entry(3, &put).unwrap(),
            Change {
                seq: 3,
                epoch: 7,
                op: Op::Put {
                    tree: 1,
                    key: b"alice".to_vec(),
                    value: b"{}".to_vec()
                }
            }
        );
        let rm = encode_entry(2, EntryKind::Remove, TREE_CLIENTS, b"nas", b"ignored");
        assert_eq!(
            decode_entry(4, &rm).unwrap().op,
            Op::Remove {
                tree: 4,
                key: b"nas".to_vec()
            }
        );
        // Every truncation of a remove entry, and junk, is an error.
        for n in 0..rm.len() {
            assert!(decode_entry(1, &rm[..n]).is_err(), "prefix {n}");
        }
        let mut bad = put.clone();
        bad[8] = 9;
        assert!(decode_entry(1, &bad).is_err());
        let mut long = rm.clone();
        long.push(0);
        assert!(decode_entry(1, &long).is_err());
        let mut huge = put;
        huge[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_entry(1, &huge).is_err());
    }

    #[test]
    fn tree_numbers_map_both_ways() {
        for t in AdminTree::ALL {
            assert_eq!(AdminTree::from_number(t.number()), Some(t));
        }
        assert_eq!(AdminTree::from_number(0), None);
        assert_eq!(AdminTree::from_number(7), None);
    }
}
