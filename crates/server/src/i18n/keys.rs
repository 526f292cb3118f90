//! Every text key, typed: the code names a text by a [`Key`] variant, so it
//! cannot ask for one that does not exist. Each key has its section and name
//! in the translation files (`[section] name = "..."`) and the
//! `{placeholders}` its text may use. Adding a text: one line here and one
//! line in each `crates/server/i18n/<lang>.toml` (docs/i18n.md).

/// Declares [`Key`] with its file section, name and placeholders.
macro_rules! keys {
    ($($variant:ident = $section:ident . $name:ident $([$($ph:ident),*])?;)*) => {
        /// A text radmfa shows or sends to a user.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Key {
            $(
                #[doc = concat!("`[", stringify!($section), "] ", stringify!($name), "`")]
                $variant,
            )*
        }

        impl Key {
            /// Every key, in file order.
            pub const ALL: &'static [Key] = &[$(Key::$variant,)*];

            /// The section of the translation file (`radius`, `portal`...).
            pub fn section(self) -> &'static str {
                match self { $(Key::$variant => stringify!($section),)* }
            }

            /// The name within its section.
            pub fn name(self) -> &'static str {
                match self { $(Key::$variant => stringify!($name),)* }
            }

            /// The placeholders its text may use (`{name}` in the file).
            pub fn placeholders(self) -> &'static [&'static str] {
                match self { $(Key::$variant => &[$($(stringify!($ph)),*)?],)* }
            }
        }
    };
}

impl Key {
    /// The key of `[section] name`.
    pub fn find(section: &str, name: &str) -> Option<Key> {
        Key::ALL
            .iter()
            .copied()
            .find(|k| k.section() == section && k.name() == name)
    }

    /// Its position in [`Key::ALL`] (the catalog's index).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

keys! {
    // ----- RADIUS: Reply-Message of a Reject or Accept
    Welcome = radius.welcome [name];
    WelcomeAnonymous = radius.welcome_anonymous;
    BadCredentials = radius.wrong_credentials;
    CodeWrong = radius.wrong_code;
    ReusedCode = radius.reused_code;
    WrongPinOrCode = radius.wrong_pin_or_code;
    Unavailable = radius.unavailable;
    SessionGone = radius.session_gone;
    Disabled = radius.disabled;
    NoUserName = radius.no_user_name;
    ControlCharacters = radius.control_characters;
    NoPassword = radius.no_password;
    ChapUnsupported = radius.chap_unsupported;
    EapUnsupported = radius.eap_unsupported;
    MalformedPassword = radius.malformed_password;
    OwnerUnreachable = radius.owner_unreachable;
    OwnerDown = radius.owner_down;
    SmsNotSent = radius.sms_not_sent;
    PhoneMissing = radius.phone_missing;
    DirectoryDisabled = radius.directory_disabled;
    DirectoryLocked = radius.directory_locked;
    DirectoryExpired = radius.directory_expired;
    PasswordExpired = radius.password_expired;
    PasswordUnchecked = radius.password_unchecked;
    AppNotEnrolled = radius.not_enrolled;
    NoMethod = radius.no_method;
    NotSetUpForMfa = radius.not_set_up;
    CodeAsPassword = radius.code_as_password;
    PasswordThenCode = radius.password_then_code;
    MethodNeedsCode = radius.method_needs_code;
    NoDevice = radius.no_device;
    DeniedOrWrongPin = radius.denied_or_wrong_pin;
    DeniedOnPhone = radius.denied_on_phone;
    WrongPinOnPhone = radius.wrong_pin_on_phone;
    FraudReported = radius.fraud_reported;
    CallNoKey = radius.call_no_key;
    CallBusy = radius.call_busy;
    CallNoAnswer = radius.call_no_answer;
    CallFailed = radius.call_failed;
    CallCanceled = radius.call_canceled;
    NoAnswer = radius.no_answer;
    PushLimited = radius.push_limited;
    PushUndeliverable = radius.push_undeliverable;
    PushNumberWrong = radius.push_number_wrong;
    PushNotApproved = radius.push_not_approved;
    PushDeniedOrWrongPin = radius.push_denied_or_wrong_pin;
    PushDeniedOnDevice = radius.push_denied;
    PushTimeout = radius.push_timeout;
    RateLimited = radius.rate_limited;
    Locked = radius.locked;
    LockedByAdmin = radius.locked_by_admin;
    LockedByFraud = radius.locked_by_fraud;
    // ----- RADIUS: Access-Challenge prompts
    PromptTotp = radius.prompt_totp;
    PromptTotpPin = radius.prompt_totp_pin;
    PromptPinFirst = radius.prompt_pin_first [prompt];
    PromptSms = radius.prompt_sms [tail];
    PromptSmsPin = radius.prompt_sms_pin [tail];
    SmsRetry = radius.sms_retry;
    PromptPushNumber = radius.prompt_push_number;
    // ----- RADIUS: the forced PIN change (pipeline/pinchange.rs)
    PinChangePrompt = radius.prompt_pin_change;
    PinChangeAgain = radius.prompt_pin_again;
    PinChangeNew = radius.prompt_pin_new;
    PinChangeFailed = radius.pin_change_failed;
    PinChangeNotSaved = radius.pin_change_not_saved;
    PinChangedWelcome = radius.pin_changed [name];
    // ----- one-way and two-way SMS
    SmsCode = sms.code [code];
    SmsTwoWay = sms.two_way [client, time, reference];
    SmsReplyHelp = sms.reply_help;
    SmsReplyApproved = sms.reply_approved;
    SmsReplyDenied = sms.reply_denied;
    SmsReplyAmbiguous = sms.reply_ambiguous;
    SmsReplyNotRecorded = sms.reply_not_recorded;
    SmsReplyNothingWaiting = sms.reply_nothing_waiting;
    // ----- the verification call (spoken)
    CallIntro = call.intro [server];
    CallApproveKey = call.approve_key;
    CallApprovePin = call.approve_pin;
    CallFraudKey = call.fraud_key [key];
    CallFraudKeyPin = call.fraud_key_pin [key];
    Key0 = call.key_0;
    Key1 = call.key_1;
    Key2 = call.key_2;
    Key3 = call.key_3;
    Key4 = call.key_4;
    Key5 = call.key_5;
    Key6 = call.key_6;
    Key7 = call.key_7;
    Key8 = call.key_8;
    Key9 = call.key_9;
    KeyStar = call.key_star;
    // ----- the verification call: what the caller hears once they answered
    CallApproved = call.approved;
    CallWrongPin = call.wrong_pin;
    CallFraudLocked = call.fraud_locked;
    CallNoKeyDenied = call.no_key_denied;
    CallDenied = call.denied;
    CallNotRecorded = call.not_recorded;
    CallNoLongerValid = call.no_longer_valid;
    CallGoodbye = call.goodbye;
    // ----- the self-service portal and the push approval page
    PortalName = portal.portal_name;
    SignInTitle = portal.sign_in_title;
    VerifyTitle = portal.verify_title;
    HomeTitle = portal.home_title;
    EnrollTitle = portal.enroll_title;
    PhoneTitle = portal.phone_title;
    MethodTitle = portal.method_title;
    PinTitle = portal.pin_title;
    ReportedTitle = portal.reported_title;
    UserName = portal.user_name;
    Password = portal.password;
    SignIn = portal.sign_in;
    Code = portal.code;
    Pin = portal.pin;
    Verify = portal.verify;
    NewPin = portal.new_pin;
    NewPinAgain = portal.new_pin_again;
    SavePin = portal.save_pin;
    Phone = portal.phone;
    SendCode = portal.send_code;
    Confirm = portal.confirm;
    Save = portal.save;
    SignOut = portal.sign_out;
    NotMe = portal.not_me;
    Navigation = portal.navigation;
    NavHome = portal.nav_home;
    NavApp = portal.nav_app;
    NavPhone = portal.nav_phone;
    NavMethod = portal.nav_method;
    NavPin = portal.nav_pin;
    LanguageName = portal.language_name;
    WrongCredentials = portal.wrong_credentials;
    TryAgain = portal.try_again;
    TooMany = portal.too_many;
    AccountDisabled = portal.account_disabled;
    AccountCannotSignIn = portal.account_cannot_sign_in;
    NotSetUp = portal.not_set_up;
    FormExpired = portal.form_expired;
    SessionEnded = portal.session_ended;
    SignedOut = portal.signed_out;
    CodeFromApp = portal.code_from_app;
    CodeSentTo = portal.code_sent_to [tail];
    PinWithCode = portal.pin_with_code;
    WrongCode = portal.wrong_code;
    CodeReused = portal.code_reused;
    CodeExpired = portal.code_expired;
    PinOrCodeWrong = portal.pin_or_code_wrong;
    SmsFailed = portal.sms_failed;
    Account = portal.account;
    MethodLabel = portal.method_label;
    PhoneLabel = portal.phone_label;
    NoPhone = portal.no_phone;
    AppLabel = portal.app_label;
    Enrolled = portal.enrolled;
    NotEnrolled = portal.not_enrolled;
    PinModeLabel = portal.pin_mode_label;
    PinOn = portal.pin_on;
    PinOff = portal.pin_off;
    RecentSignIns = portal.recent_sign_ins;
    NoSignIns = portal.no_sign_ins;
    When = portal.when;
    Outcome = portal.outcome;
    How = portal.how;
    Where = portal.where;
    Report = portal.report;
    ResultAccept = portal.result_accept;
    ResultReject = portal.result_reject;
    ResultChallenge = portal.result_challenge;
    NoSecondFactor = portal.no_second_factor;
    ScanQr = portal.scan_qr;
    QrLabel = portal.qr_label;
    ManualEntry = portal.manual_entry;
    EnrollConfirm = portal.enroll_confirm;
    ReplacesApp = portal.replaces_app;
    AppEnrolled = portal.app_enrolled;
    PhoneHint = portal.phone_hint;
    PhoneInvalid = portal.phone_invalid;
    PhoneSaved = portal.phone_saved;
    NoGateway = portal.no_gateway;
    MethodHint = portal.method_hint;
    MethodUnavailable = portal.method_unavailable;
    MethodSaved = portal.method_saved;
    MethodTotp = portal.method_totp;
    MethodHotp = portal.method_hotp;
    MethodSms = portal.method_sms;
    MethodSmsTwoWay = portal.method_sms_two_way;
    MethodCall = portal.method_call;
    MethodPush = portal.method_push;
    MethodNone = portal.method_none;
    PinHint = portal.pin_hint [min];
    PinChangeRequired = portal.pin_change_required;
    PinChanged = portal.pin_changed;
    PinFormat = portal.pin_format [min];
    PinRepeated = portal.pin_repeated;
    PinSequence = portal.pin_sequence;
    PinPhone = portal.pin_phone;
    PinMismatch = portal.pin_mismatch;
    PinUnchanged = portal.pin_unchanged;
    NoPinMode = portal.no_pin_mode;
    ReportedText = portal.reported_text;
    NotFound = portal.not_found;
    LockedTimed = portal.locked_timed;
    LockedAdmin = portal.locked_admin;
    LockedFraud = portal.locked_fraud;
    ConfirmTitle = portal.confirm_title;
    ConfirmIntro = portal.confirm_intro;
    ConfirmSendTo = portal.confirm_send_to [tail];
    NavDevices = portal.nav_devices;
    DevicesTitle = portal.devices_title;
    DevicesIntro = portal.devices_intro;
    DeviceName = portal.device_name;
    DeviceDefaultName = portal.device_default_name;
    RegisterDevice = portal.register_device;
    NoDevices = portal.no_devices;
    DeviceRegistered = portal.device_registered;
    DeviceRemoved = portal.device_removed;
    DeviceInvalid = portal.device_invalid;
    Remove = portal.remove;
    PushService = portal.push_service;
    Registered = portal.registered;
    PushUnsupported = portal.push_unsupported;
    PushDenied = portal.push_denied;
    PushFailed = portal.push_failed;
    ApproveTitle = portal.approve_title;
    ApproveIntro = portal.approve_intro;
    ApproveUser = portal.approve_user;
    ApproveApp = portal.approve_app;
    ApproveSource = portal.approve_source;
    ApproveTime = portal.approve_time;
    ApproveNumber = portal.approve_number;
    Approve = portal.approve;
    Deny = portal.deny;
    ApproveGone = portal.approve_gone;
    ApprovedText = portal.approved_text;
    DeniedText = portal.denied_text;
    NotMeText = portal.not_me_text;
}
