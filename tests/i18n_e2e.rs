//! Languages end to end: users with `--language` en, nl, de and fr (and one
//! with none, under a policy whose language is Dutch) sign in through
//! radclient against the radmfa binary; the Access-Challenge prompt, the
//! Reject's Reply-Message, the Accept's welcome and the one-way SMS as the
//! gateway simulator receives it are each in the user's language. The
//! expected words are read from the translation files
//! (crates/server/i18n/<lang>.toml), not from the code, with a few literal
//! spot checks written here. The CLI side: `user add/set --language`
//! (checked), `user show` (text and JSON), `check-config` on an edited
//! translation directory.

mod common;

use common::i18n::text;
use common::sim::{code_in, env_with_gateway, Sim};
use common::{expect, login, totp_now, wrong_code, Env, PASSWORD, TOTP_SECRETS};

/// Every Reply-Message of a reply, joined (a long one is split over several).
fn reply_message(r: &common::RadReply) -> String {
    r.attrs
        .iter()
        .filter(|(n, _)| n == "Reply-Message")
        .map(|(_, v)| v.trim_matches('"').to_string())
        .collect()
}

fn add_user(env: &Env, name: &str, extra: &[&str]) {
    let mut args = vec!["user", "add", name, "--password-stdin"];
    args.extend_from_slice(extra);
    env.radmfa_stdin(&args, Some(&format!("{PASSWORD}\n")))
        .assert_ok();
}

/// (language tag given to `--language`, language of the file, the
/// prompt written out here as a spot check).
const LANGUAGES: [(&str, &str, &str); 4] = [
    ("en", "en", "Enter the code from your authenticator app"),
    ("nl-BE", "nl", "Voer de code uit uw verificatie-app in"),
    (
        "de",
        "de",
        "Geben Sie den Code aus Ihrer Authenticator-App ein",
    ),
    (
        "fr-CA",
        "fr",
        "Saisissez le code de votre application d'authentification",
    ),
];

#[test]
fn prompts_rejects_welcomes_and_sms_in_the_users_language() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    // The client's policy speaks Dutch to users without a language of their own.
    let env = env_with_gateway(&sim, dir.path(), "language = \"nl\"");
    for (i, (tag, _, _)) in LANGUAGES.iter().enumerate() {
        let totp = format!("t{i}");
        add_user(
            &env,
            &totp,
            &["--language", tag, "--display-name", "Ann Example"],
        );
        env.enroll(&totp, TOTP_SECRETS[i]).assert_ok();
        let phone = format!("+1555010300{i}");
        add_user(
            &env,
            &format!("s{i}"),
            &["--language", tag, "--method", "sms", "--phone", &phone],
        );
    }
    add_user(&env, "nolang", &[]);
    env.enroll("nolang", TOTP_SECRETS[0]).assert_ok();
    let server = env.start();
    let addr = server.addr_string();

    for (i, (tag, lang, spot)) in LANGUAGES.iter().enumerate() {
        let secret = common::decode_secret(TOTP_SECRETS[i]);
        let user = format!("t{i}");
        // The TOTP challenge prompt.
        let r = login(&addr, &user, PASSWORD, None);
        expect(&r, "Access-Challenge");
        let prompt = reply_message(&r);
        assert_eq!(
            prompt,
            text(lang, "radius.prompt_totp", &[]),
            "{tag}: {}",
            r.output
        );
        assert_eq!(prompt, *spot, "{tag}");
        // A wrong code: the Reject says so in the user's language.
        let state = r.attr("State").expect("State").to_string();
        let r = login(&addr, &user, &wrong_code(&secret), Some(&state));
        expect(&r, "Access-Reject");
        assert_eq!(
            reply_message(&r),
            text(lang, "radius.wrong_code", &[]),
            "{tag}: {}",
            r.output
        );
        // A wrong password too.
        let r = login(&addr, &user, "not-the-password", None);
        expect(&r, "Access-Reject");
        assert_eq!(
            reply_message(&r),
            text(lang, "radius.wrong_credentials", &[]),
            "{tag}"
        );
        // The right code: welcomed by name.
        common::clear_of_step_edge();
        let r = login(
            &addr,
            &user,
            &format!("{PASSWORD}{}", totp_now(&secret)),
            None,
        );
        expect(&r, "Access-Accept");
        assert_eq!(
            reply_message(&r),
            text(lang, "radius.welcome", &[("name", "Ann Example")]),
            "{tag}"
        );

        // One-way SMS: the prompt names the phone's last digits, the text
        // the simulator received is the translated one with the code.
        let phone = format!("+1555010300{i}");
        let r = login(&addr, &format!("s{i}"), PASSWORD, None);
        expect(&r, "Access-Challenge");
        let tail = &phone[phone.len() - 4..];
        assert_eq!(
            reply_message(&r),
            text(lang, "radius.prompt_sms", &[("tail", tail)]),
            "{tag}: {}",
            r.output
        );
        let sent = sim.messages(&phone);
        assert_eq!(sent.len(), 1, "{sent:?}");
        let code = code_in(&sent[0]);
        assert_eq!(sent[0], text(lang, "sms.code", &[("code", &code)]), "{tag}");
    }
    // Spot checks of the SMS words, written here.
    let sms_of = |i: usize| sim.messages(&format!("+1555010300{i}")).remove(0);
    assert!(sms_of(0).starts_with("Your sign-in code is "));
    assert!(sms_of(1).starts_with("Uw aanmeldcode is "));
    assert!(sms_of(2).starts_with("Ihr Anmeldecode lautet "));
    assert!(sms_of(3).starts_with("Votre code de connexion est "));

    // No language of the user's own: the policy's (Dutch).
    let r = login(&addr, "nolang", PASSWORD, None);
    expect(&r, "Access-Challenge");
    assert_eq!(reply_message(&r), "Voer de code uit uw verificatie-app in");
    // An unknown user: the policy's language as well.
    let r = login(&addr, "nobody", PASSWORD, None);
    expect(&r, "Access-Reject");
    assert_eq!(
        reply_message(&r),
        text("nl", "radius.wrong_credentials", &[])
    );
}

#[test]
fn the_language_is_set_checked_and_shown_by_the_cli() {
    let env = Env::new();
    add_user(&env, "ann", &["--language", "de-CH"]);
    let shown = env
        .radmfa(&["user", "show", "ann", "--json"])
        .assert_ok()
        .json();
    assert_eq!(shown["language"], "de-CH");
    let out = env
        .radmfa(&["user", "show", "ann"])
        .assert_ok()
        .stdout
        .clone();
    assert!(
        out.lines()
            .any(|l| l.starts_with("language") && l.ends_with("de-CH")),
        "{out}"
    );
    env.radmfa(&["user", "set", "ann", "--language", "fr"])
        .assert_ok();
    let shown = env
        .radmfa(&["user", "show", "ann", "--json"])
        .assert_ok()
        .json();
    assert_eq!(shown["language"], "fr");
    // A language radmfa does not speak is refused, and nothing changes.
    let bad = env.radmfa(&["user", "set", "ann", "--language", "es"]);
    assert_ne!(bad.code(), 0);
    assert!(
        bad.stderr.contains("\"es\" is not one radmfa speaks"),
        "{}",
        bad.stderr
    );
    let shown = env
        .radmfa(&["user", "show", "ann", "--json"])
        .assert_ok()
        .json();
    assert_eq!(shown["language"], "fr");
    let bad = env.radmfa_stdin(
        &[
            "user",
            "add",
            "bob",
            "--language",
            "english",
            "--password-stdin",
        ],
        Some("pw-123456\n"),
    );
    assert_ne!(bad.code(), 0, "{}", bad.stdout);
    // Cleared: the policy's or the default language again.
    env.radmfa(&["user", "set", "ann", "--language", ""])
        .assert_ok();
    let shown = env
        .radmfa(&["user", "show", "ann", "--json"])
        .assert_ok()
        .json();
    assert_eq!(shown["language"], "");
}

#[test]
fn check_config_reports_an_edited_translation_file_by_file_and_line() {
    let env = Env::new();
    let out = env.radmfa(&["check-config"]).assert_ok().stdout.clone();
    assert!(out.contains("texts: en, nl, de, fr complete"), "{out}");
    // An edited Dutch file with a placeholder radmfa does not fill in.
    let i18n = env.path().join("i18n");
    std::fs::create_dir_all(&i18n).unwrap();
    std::fs::write(
        i18n.join("nl.toml"),
        "# edited\n[sms]\ncode = \"Uw code: {code} voor {user}\"\n",
    )
    .unwrap();
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    std::fs::write(
        env.config_path(),
        format!("{config}\n[i18n]\ndir = {:?}\n", i18n.display().to_string()),
    )
    .unwrap();
    let bad = env.radmfa(&["check-config"]);
    assert_ne!(bad.code(), 0);
    let expected = format!("{}:3:", i18n.join("nl.toml").display());
    assert!(
        bad.stderr.contains(&expected) && bad.stderr.contains("unknown placeholder {user}"),
        "{}",
        bad.stderr
    );
    // Fixed: accepted (its other texts stay built in).
    std::fs::write(i18n.join("nl.toml"), "[sms]\ncode = \"Uw code: {code}\"\n").unwrap();
    let out = env.radmfa(&["check-config"]).assert_ok().stdout.clone();
    assert!(out.contains("texts: en, nl, de, fr complete"), "{out}");
}
