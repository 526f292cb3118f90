//! The context of one Access-Request as it passes its factors: who asks,
//! through which client, under which policy, and what the first factor
//! established. The steps pass this one value instead of repeating the same
//! argument list.

use std::net::IpAddr;

use radmfa_radius::Packet;

use super::decision::{First, Mode, OnAccept};
use crate::clients::ClientEntry;
use crate::config::Policy;

/// One Access-Request being decided.
#[derive(Debug)]
pub(super) struct Login<'a> {
    /// The user name the factors are checked for: the User-Name as received
    /// (not empty, no control characters), or the directory's canonical
    /// login name once an `ldap` first factor passed.
    pub name: &'a str,
    /// The client the request came through (a challenge is answerable only
    /// through it).
    pub client: &'a ClientEntry,
    /// The client's policy.
    pub policy: &'a Policy,
    /// The request itself.
    pub packet: &'a Packet,
    /// The end user's address (Calling-Station-Id, when it is one), sent to
    /// the gateway.
    pub end_user: Option<IpAddr>,
    /// How the first factor was authenticated (the audit mode's first
    /// part; `None` before it is known).
    pub first: Option<First>,
    /// What the final Accept carries from the first factor.
    pub on_accept: OnAccept,
}

impl<'a> Login<'a> {
    /// The audit mode of a decision made on the first factor alone.
    pub fn first_mode(&self) -> Mode {
        self.first.map_or(Mode::Unknown, Mode::first)
    }

    /// The same request, its first factor now `first` with `on_accept`.
    pub fn with_first(&self, first: First, on_accept: OnAccept) -> Login<'a> {
        Login {
            name: self.name,
            client: self.client,
            policy: self.policy,
            packet: self.packet,
            end_user: self.end_user,
            first: Some(first),
            on_accept,
        }
    }
}
