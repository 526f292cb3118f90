//! Provider callbacks: the public endpoints through which a user's answer to
//! an out-of-band verification comes back (Twilio's `<Gather action>`,
//! `StatusCallback` and inbound-message webhook), their authentication, and
//! the delivery of the answer to the node that owns the verification.
//!
//! `texts.rs` (URLs, SMS text, reading a reply) is a leaf the pipeline uses
//! to send; `twilio.rs` serves the routes (merged into the portal's router);
//! `deliver.rs` judges an answer against the registry (`verifications.rs`)
//! here or sends it to the owner over the peer link; `push.rs` judges the
//! push approval page's answers (the page itself is portal/approve.rs).

mod deliver;
pub mod push;
pub mod texts;
mod twilio;

pub use deliver::{answer_forwarded, decide_here, deliver, Answer, Delivered};
pub use twilio::router;
