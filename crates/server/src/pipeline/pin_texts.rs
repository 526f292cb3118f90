//! What the forced PIN change over RADIUS ([`super::pinchange`]) tells the
//! user, as catalog texts (`[radius] prompt_pin_*`, `pin_change*` and the
//! portal's PIN rule texts, which say the same thing on the portal's page),
//! one function each, so that the flow reads without the keys.

use crate::i18n::{Key, Text};
use crate::portal::pin_policy::PinProblem;

/// The first prompt, instead of the Accept.
pub(super) fn must_change() -> Text {
    Key::PinChangePrompt.into()
}

/// The prompt for the second entry.
pub(super) fn enter_again() -> Text {
    Key::PinChangeAgain.into()
}

/// Why an entry was refused, and the prompt to start again.
pub(super) fn refused(problem: PinProblem, min_len: usize) -> Text {
    let min = min_len.to_string();
    let why = match problem {
        PinProblem::Format => Text::with(Key::PinFormat, &[("min", &min)]),
        PinProblem::Repeated => Key::PinRepeated.into(),
        PinProblem::Sequence => Key::PinSequence.into(),
        PinProblem::PhoneDigits => Key::PinPhone.into(),
        PinProblem::Mismatch => Key::PinMismatch.into(),
        PinProblem::Unchanged => Key::PinUnchanged.into(),
    };
    why.then(Key::PinChangeNew)
}

/// The Reject after too many refused entries.
pub(super) fn too_many_tries() -> Text {
    Key::PinChangeFailed.into()
}

/// The Reject when the new PIN could not be stored.
pub(super) fn not_saved() -> Text {
    Key::PinChangeNotSaved.into()
}

/// The Accept once the new PIN is stored.
pub(super) fn changed(who: &str) -> Text {
    Text::with(Key::PinChangedWelcome, &[("name", who)])
}
