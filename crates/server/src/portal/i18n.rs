//! The portal's words in English and Dutch. One enum, so a missing text is
//! a compile error rather than a blank on a page.

/// A language the portal speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    /// English.
    En,
    /// Dutch.
    Nl,
}

impl Lang {
    /// From a user's `language` field or a `lang` parameter ("nl", "nl-BE", "en").
    pub(crate) fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        if s == "nl" || s.starts_with("nl-") || s.starts_with("nl_") {
            Some(Lang::Nl)
        } else if s == "en" || s.starts_with("en-") || s.starts_with("en_") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The first language of an `Accept-Language` header the portal speaks.
    pub(crate) fn from_accept(header: &str) -> Option<Lang> {
        header
            .split(',')
            .filter_map(|part| Lang::parse(part.split(';').next().unwrap_or("")))
            .next()
    }

    /// The code ("en", "nl").
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Nl => "nl",
        }
    }
}

macro_rules! messages {
    ($($id:ident => $en:expr, $nl:expr;)*) => {
        /// Every text the portal shows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Msg { $($id),* }

        impl Msg {
            /// The text in `lang`.
            pub(crate) fn text(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((Msg::$id, Lang::En) => $en, (Msg::$id, Lang::Nl) => $nl,)*
                }
            }

            /// The message id (kept in the session for one-shot notices).
            pub(crate) fn id(self) -> &'static str {
                match self { $(Msg::$id => stringify!($id)),* }
            }

            /// The message with this id.
            pub(crate) fn from_id(id: &str) -> Option<Msg> {
                match id { $(stringify!($id) => Some(Msg::$id),)* _ => None }
            }
        }
    };
}

messages! {
    PortalName => "Multi-factor sign-in: self-service", "Meervoudige verificatie: selfservice";
    SignInTitle => "Sign in", "Aanmelden";
    VerifyTitle => "Verify it is you", "Bevestig dat u het bent";
    HomeTitle => "Your account", "Uw account";
    EnrollTitle => "Authenticator app", "Verificatie-app";
    PhoneTitle => "Phone number", "Telefoonnummer";
    MethodTitle => "How you verify", "Hoe u zich verifieert";
    PinTitle => "PIN", "Pincode";
    ReportedTitle => "Sign-in reported", "Aanmelding gemeld";
    UserName => "User name", "Gebruikersnaam";
    Password => "Password", "Wachtwoord";
    SignIn => "Sign in", "Aanmelden";
    Code => "Code", "Code";
    Pin => "PIN", "Pincode";
    Verify => "Verify", "Verifiëren";
    NewPin => "New PIN", "Nieuwe pincode";
    NewPinAgain => "New PIN again", "Nieuwe pincode nogmaals";
    SavePin => "Change PIN", "Pincode wijzigen";
    Phone => "Mobile phone number", "Mobiel telefoonnummer";
    SendCode => "Send a code", "Code versturen";
    Confirm => "Confirm", "Bevestigen";
    Save => "Save", "Opslaan";
    SignOut => "Sign out", "Afmelden";
    NotMe => "This was not me", "Dit was ik niet";
    Navigation => "Portal pages", "Portalpagina's";
    NavHome => "Account", "Account";
    NavApp => "Authenticator app", "Verificatie-app";
    NavPhone => "Phone", "Telefoon";
    NavMethod => "Method", "Methode";
    NavPin => "PIN", "Pincode";
    OtherLanguage => "Nederlands", "English";
    WrongCredentials => "Wrong user name or password.", "Onjuiste gebruikersnaam of wachtwoord.";
    TryAgain => "This is temporarily unavailable. Please try again in a minute.", "Dit is tijdelijk niet beschikbaar. Probeer het over een minuut opnieuw.";
    TooMany => "Too many attempts. Wait a minute, then try again.", "Te veel pogingen. Wacht een minuut en probeer het dan opnieuw.";
    AccountDisabled => "Your account is disabled. Contact your help desk.", "Uw account is uitgeschakeld. Neem contact op met uw helpdesk.";
    AccountCannotSignIn => "Your account cannot sign in right now. Contact your help desk.", "Uw account kan zich nu niet aanmelden. Neem contact op met uw helpdesk.";
    NotSetUp => "Your account is not set up for multi-factor sign-in. Contact your administrator.", "Uw account is niet ingesteld voor meervoudige verificatie. Neem contact op met uw beheerder.";
    FormExpired => "This form has expired or was not sent by this portal. Please try again.", "Dit formulier is verlopen of niet door deze portal verstuurd. Probeer het opnieuw.";
    SessionEnded => "Your session has ended. Please sign in again.", "Uw sessie is beëindigd. Meld u opnieuw aan.";
    SignedOut => "You are signed out.", "U bent afgemeld.";
    CodeFromApp => "Enter the code your authenticator app shows.", "Voer de code in die uw verificatie-app toont.";
    CodeSentTo => "We sent a code by text message to your phone ending in {tail}. Enter it below.", "We hebben een code per sms gestuurd naar uw telefoon die eindigt op {tail}. Voer die hieronder in.";
    PinWithCode => "Your account uses a PIN: enter it as well.", "Uw account gebruikt een pincode: voer die ook in.";
    WrongCode => "The code is not correct.", "De code is niet juist.";
    CodeReused => "This code was already used. Wait for your app to show a new one.", "Deze code is al gebruikt. Wacht tot uw app een nieuwe toont.";
    CodeExpired => "The code has expired or was tried too often. Please start again.", "De code is verlopen of te vaak geprobeerd. Begin opnieuw.";
    PinOrCodeWrong => "The PIN or the code is not correct.", "De pincode of de code is niet juist.";
    SmsFailed => "We could not send a text message right now. Please try again in a few minutes.", "We konden nu geen sms versturen. Probeer het over een paar minuten opnieuw.";
    Account => "Account", "Account";
    MethodLabel => "Verification method", "Verificatiemethode";
    PhoneLabel => "Phone", "Telefoon";
    NoPhone => "none", "geen";
    AppLabel => "Authenticator app", "Verificatie-app";
    Enrolled => "set up", "ingesteld";
    NotEnrolled => "not set up", "niet ingesteld";
    PinModeLabel => "PIN", "Pincode";
    PinOn => "required with every sign-in", "vereist bij elke aanmelding";
    PinOff => "not used", "niet gebruikt";
    RecentSignIns => "Your recent sign-ins", "Uw recente aanmeldingen";
    NoSignIns => "No sign-ins recorded yet.", "Nog geen aanmeldingen geregistreerd.";
    When => "When (UTC)", "Wanneer (UTC)";
    Outcome => "Result", "Resultaat";
    How => "How", "Hoe";
    Where => "From", "Vanaf";
    Report => "Report", "Melden";
    ResultAccept => "signed in", "aangemeld";
    ResultReject => "refused", "geweigerd";
    ResultChallenge => "code asked", "code gevraagd";
    NoSecondFactor => "You have not set up a second factor yet. Set up an authenticator app or a phone number now.", "U heeft nog geen tweede factor ingesteld. Stel nu een verificatie-app of een telefoonnummer in.";
    ScanQr => "Scan this QR code with your authenticator app (for example Microsoft Authenticator, Google Authenticator or FreeOTP).", "Scan deze QR-code met uw verificatie-app (bijvoorbeeld Microsoft Authenticator, Google Authenticator of FreeOTP).";
    QrLabel => "QR code for your authenticator app", "QR-code voor uw verificatie-app";
    ManualEntry => "Cannot scan? Enter this key in the app instead:", "Lukt scannen niet? Voer dan deze sleutel in de app in:";
    EnrollConfirm => "Then enter the code the app shows, to confirm.", "Voer daarna ter bevestiging de code in die de app toont.";
    ReplacesApp => "Setting up a new app replaces the one you use now.", "Een nieuwe app instellen vervangt de app die u nu gebruikt.";
    AppEnrolled => "Your authenticator app is set up.", "Uw verificatie-app is ingesteld.";
    PhoneHint => "International format, for example +31612345678. We send a code to check it.", "Internationale notatie, bijvoorbeeld +31612345678. We sturen een code om het te controleren.";
    PhoneInvalid => "Enter the number in international format: + and 8 to 15 digits.", "Voer het nummer in internationale notatie in: + en 8 tot 15 cijfers.";
    PhoneSaved => "Your phone number is saved.", "Uw telefoonnummer is opgeslagen.";
    NoGateway => "Text messages are not available on this server.", "Sms is op deze server niet beschikbaar.";
    MethodHint => "Choose how you verify when you sign in.", "Kies hoe u zich verifieert bij het aanmelden.";
    MethodUnavailable => "That method needs an authenticator app or a phone number first.", "Die methode heeft eerst een verificatie-app of telefoonnummer nodig.";
    MethodSaved => "Your verification method is saved.", "Uw verificatiemethode is opgeslagen.";
    MethodTotp => "Code from the authenticator app", "Code uit de verificatie-app";
    MethodHotp => "Code from a hardware token", "Code van een hardwaretoken";
    MethodSms => "Code by text message", "Code per sms";
    MethodSmsTwoWay => "Answer a text message", "Een sms beantwoorden";
    MethodCall => "Phone call", "Telefoongesprek";
    MethodPush => "Notification in the app", "Melding in de app";
    MethodNone => "No second factor", "Geen tweede factor";
    PinHint => "{min} to 10 digits. Not all the same digit, not a run like 1234 or 9876, not the end of your phone number.", "{min} tot 10 cijfers. Niet allemaal hetzelfde cijfer, geen reeks zoals 1234 of 9876, niet het einde van uw telefoonnummer.";
    PinChangeRequired => "Your PIN was set by your administrator. Choose your own PIN now.", "Uw pincode is door uw beheerder ingesteld. Kies nu uw eigen pincode.";
    PinChanged => "Your PIN is changed.", "Uw pincode is gewijzigd.";
    PinFormat => "The PIN must have {min} to 10 digits and nothing else.", "De pincode moet {min} tot 10 cijfers hebben en niets anders.";
    PinRepeated => "That PIN is too easy to guess: all digits are the same.", "Die pincode is te makkelijk te raden: alle cijfers zijn gelijk.";
    PinSequence => "That PIN is too easy to guess: the digits form a run.", "Die pincode is te makkelijk te raden: de cijfers vormen een reeks.";
    PinPhone => "That PIN is too easy to guess: it is the end of your phone number.", "Die pincode is te makkelijk te raden: het is het einde van uw telefoonnummer.";
    PinMismatch => "The two PINs are not the same.", "De twee pincodes zijn niet gelijk.";
    PinUnchanged => "Choose a PIN other than your current one.", "Kies een andere pincode dan uw huidige.";
    NoPinMode => "Your account does not use a PIN. Your administrator decides this.", "Uw account gebruikt geen pincode. Uw beheerder bepaalt dit.";
    ReportedText => "Thank you. We disabled your account so nobody can use it, and recorded your report for your administrator. Contact your help desk to get access again.", "Dank u. We hebben uw account uitgeschakeld zodat niemand het kan gebruiken en uw melding vastgelegd voor uw beheerder. Neem contact op met uw helpdesk om weer toegang te krijgen.";
    NotFound => "This page does not exist.", "Deze pagina bestaat niet.";
    LockedTimed => "Your account is locked after too many failed sign-in attempts. Try again later or contact your help desk.", "Uw account is geblokkeerd na te veel mislukte aanmeldpogingen. Probeer het later opnieuw of neem contact op met uw helpdesk.";
    LockedAdmin => "Your account is locked. Contact your help desk to unlock it.", "Uw account is geblokkeerd. Neem contact op met uw helpdesk om het te deblokkeren.";
    LockedFraud => "Your account is locked because a sign-in was reported as not yours. Contact your help desk.", "Uw account is geblokkeerd omdat een aanmelding is gemeld als niet van u. Neem contact op met uw helpdesk.";
    ConfirmTitle => "Confirm it is you", "Bevestig dat u het bent";
    ConfirmIntro => "Before you change your authenticator app or phone number, confirm with your current second factor.", "Bevestig met uw huidige tweede factor voordat u uw verificatie-app of telefoonnummer wijzigt.";
    ConfirmSendTo => "We will send a code by text message to your phone ending in {tail}.", "We sturen een code per sms naar uw telefoon die eindigt op {tail}.";
    NavDevices => "Devices", "Apparaten";
    DevicesTitle => "Devices for sign-in approvals", "Apparaten voor aanmeldgoedkeuring";
    DevicesIntro => "Register this browser to approve sign-ins with a notification instead of typing a code. On a phone, add this portal to the home screen first, then open it from there. Then choose \"Notification in the app\" under Method.", "Registreer deze browser om aanmeldingen met een melding goed te keuren in plaats van een code te typen. Voeg op een telefoon deze portal eerst toe aan het beginscherm en open hem vandaar. Kies daarna \"Melding in de app\" bij Methode.";
    DeviceName => "Name of this device", "Naam van dit apparaat";
    DeviceDefaultName => "My phone", "Mijn telefoon";
    RegisterDevice => "Register this browser", "Deze browser registreren";
    NoDevices => "No device is registered.", "Er is geen apparaat geregistreerd.";
    DeviceRegistered => "This browser is registered for sign-in approvals.", "Deze browser is geregistreerd voor aanmeldgoedkeuring.";
    DeviceRemoved => "The device is removed.", "Het apparaat is verwijderd.";
    DeviceInvalid => "This browser's registration could not be used. Please try again.", "De registratie van deze browser kon niet worden gebruikt. Probeer het opnieuw.";
    Remove => "Remove", "Verwijderen";
    PushService => "Push service", "Pushdienst";
    Registered => "Registered (UTC)", "Geregistreerd (UTC)";
    PushUnsupported => "This browser cannot receive notifications from this portal.", "Deze browser kan geen meldingen van deze portal ontvangen.";
    PushDenied => "Notifications are blocked for this portal. Allow them in the browser's site settings, then try again.", "Meldingen zijn geblokkeerd voor deze portal. Sta ze toe in de site-instellingen van de browser en probeer het opnieuw.";
    PushFailed => "This browser could not be registered.", "Deze browser kon niet worden geregistreerd.";
    ApproveTitle => "Approve this sign-in?", "Deze aanmelding goedkeuren?";
    ApproveIntro => "Someone is signing in with your account. Approve only if it is you, now.", "Iemand meldt zich aan met uw account. Keur alleen goed als u het zelf bent, nu.";
    ApproveUser => "Account", "Account";
    ApproveApp => "Application", "Toepassing";
    ApproveSource => "From", "Vanaf";
    ApproveTime => "Time (UTC)", "Tijd (UTC)";
    ApproveNumber => "Type this number at the sign-in prompt, then approve here:", "Typ dit getal bij de aanmeldprompt en keur hier goed:";
    Approve => "Approve", "Goedkeuren";
    Deny => "Deny", "Weigeren";
    ApproveGone => "This sign-in request has expired or was already answered.", "Dit aanmeldverzoek is verlopen of al beantwoord.";
    ApprovedText => "Approved. You can close this page.", "Goedgekeurd. U kunt deze pagina sluiten.";
    DeniedText => "Denied. Nobody is signed in with this request.", "Geweigerd. Met dit verzoek is niemand aangemeld.";
    NotMeText => "Thank you. The sign-in was refused and your account is locked so nobody can use it. Contact your help desk to get access again.", "Dank u. De aanmelding is geweigerd en uw account is geblokkeerd zodat niemand het kan gebruiken. Neem contact op met uw helpdesk om weer toegang te krijgen.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages() {
        assert_eq!(Lang::parse("nl-BE"), Some(Lang::Nl));
        assert_eq!(Lang::parse("EN"), Some(Lang::En));
        assert_eq!(Lang::parse("de"), None);
        assert_eq!(Lang::from_accept("de-DE,nl;q=0.8,en;q=0.5"), Some(Lang::Nl));
        assert_eq!(Lang::from_accept("fr"), None);
    }

    #[test]
    fn ids_round_trip_and_texts_differ() {
        for m in [Msg::PinChanged, Msg::AppEnrolled, Msg::SignedOut] {
            assert_eq!(Msg::from_id(m.id()), Some(m));
            assert_ne!(m.text(Lang::En), m.text(Lang::Nl));
        }
        assert_eq!(Msg::from_id("nope"), None);
    }
}
