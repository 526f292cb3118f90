//! The English texts of the forced PIN change over RADIUS
//! ([`super::pinchange`]), one function each and nothing else, so that they
//! can move into the translation catalog as they are.

use crate::portal::pin_policy::PinProblem;

/// The first prompt, instead of the Accept.
pub(super) fn must_change() -> &'static str {
    "Your PIN must be changed. Enter a new PIN:"
}

/// The prompt for the second entry.
pub(super) fn enter_again() -> &'static str {
    "Enter the new PIN again:"
}

/// Why an entry was refused, and the prompt to start again.
pub(super) fn refused(problem: PinProblem, min_len: usize) -> String {
    let why = match problem {
        PinProblem::Format => format!("A PIN has {min_len} to 10 digits and nothing else."),
        PinProblem::Repeated => "A PIN cannot be one digit repeated.".to_string(),
        PinProblem::Sequence => "A PIN cannot be a run of digits such as 1234.".to_string(),
        PinProblem::PhoneDigits => "A PIN cannot be the end of your phone number.".to_string(),
        PinProblem::Mismatch => "The two PINs were not the same.".to_string(),
        PinProblem::Unchanged => "The new PIN must differ from your current PIN.".to_string(),
    };
    format!("{why} Enter a new PIN:")
}

/// The Reject after too many refused entries.
pub(super) fn too_many_tries() -> &'static str {
    "Your PIN was not changed: too many attempts. Sign in again with your current PIN."
}

/// The Reject when the new PIN could not be stored.
pub(super) fn not_saved() -> &'static str {
    "Your new PIN could not be saved. Please sign in again with your current PIN in a minute."
}

/// The Accept once the new PIN is stored.
pub(super) fn changed(who: &str) -> String {
    format!("Your PIN has been changed. Welcome, {who}.")
}
