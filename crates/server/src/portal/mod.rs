//! The user self-service portal (the seed's "User Portal"): users sign in
//! with their first and second factor, set up an authenticator app, set and
//! verify their phone number, choose their method, change their PIN, see
//! their recent sign-ins and report one that was not theirs.
//!
//! Served over HTTPS by every node. Sessions are stateless sealed cookies
//! (see [`session`]), so a balancer without stickiness works. Plain HTML
//! forms; JavaScript only where the Push API needs it (the installable
//! app's service worker and the devices page, [`app`]), and the approval
//! page a push opens ([`approve`]). Every write goes through
//! [`crate::control::dispatch`], like any other admin request.
//!
//! One file per page (sign-in, second factor, confirmation, home, app,
//! phone, method, PIN), beside the state they share ([`state`]), response
//! building ([`respond`]) and serving ([`server`]); this file only declares
//! and re-exports.

mod app;
mod approve;
mod codes;
mod confirm;
mod devices;
mod enroll;
mod home;
mod html;
mod i18n;
mod method;
mod phone;
mod pin;
pub(crate) mod pin_policy;
mod respond;
mod server;
mod session;
mod signin;
mod state;
mod verify;

pub use crate::config::{PortalSection, PortalSettings};
pub use crate::https::load_tls;
pub use server::{check, serve};
pub use session::CookieKeys;
