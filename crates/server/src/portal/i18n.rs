//! The portal's words: the `[portal]` texts of the catalog (crate::i18n),
//! under the names the portal's pages use. A missing text is a compile
//! error (a [`Msg`] variant that does not exist), never a blank on a page.

pub(crate) use crate::i18n::{Key as Msg, Lang};

impl Msg {
    /// The id kept in the session for a one-shot notice.
    pub(crate) fn id(self) -> &'static str {
        self.name()
    }

    /// The portal text with this id.
    pub(crate) fn from_id(id: &str) -> Option<Msg> {
        Msg::find("portal", id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_texts_differ() {
        for m in [Msg::PinChanged, Msg::AppEnrolled, Msg::SignedOut] {
            assert_eq!(Msg::from_id(m.id()), Some(m));
            for lang in [Lang::Nl, Lang::De, Lang::Fr] {
                assert_ne!(m.text(lang), m.text(Lang::En));
            }
        }
        assert_eq!(Msg::from_id("nope"), None);
        // A RADIUS text is not a portal notice.
        assert_eq!(Msg::from_id("prompt_totp"), None);
    }
}
