//! The catalog's checks: the built-in files pass them; an edited file with
//! an unknown placeholder, key or section, a lost placeholder or broken
//! TOML is refused with its file and line; a missing text falls back to
//! English and is listed.

use super::catalog::{fill, placeholders};
use super::*;

const EN: &str = include_str!("../../i18n/en.toml");

#[test]
fn builtin_files_are_complete_and_valid() {
    let c = Catalog::load(None).unwrap();
    assert!(c.missing().is_empty(), "{:?}", c.missing());
    // Spot checks written here, not read from the files.
    assert_eq!(
        c.get(Key::BadCredentials, Lang::Nl),
        "Onjuiste gebruikersnaam of wachtwoord."
    );
    assert_eq!(
        c.get(Key::SmsCode, Lang::De),
        "Ihr Anmeldecode lautet {code}"
    );
    assert_eq!(c.get(Key::SignIn, Lang::Fr), "Se connecter");
    // Every language differs from English where a word must change.
    for lang in [Lang::Nl, Lang::De, Lang::Fr] {
        assert_ne!(
            c.get(Key::PromptTotp, lang),
            c.get(Key::PromptTotp, Lang::En)
        );
    }
}

fn dir_with(lang: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{lang}.toml")), text).unwrap();
    dir
}

#[test]
fn an_unknown_placeholder_is_an_error_at_its_file_and_line() {
    let dir = dir_with(
        "nl",
        "# edited\n[radius]\nprompt_sms = \"Code naar {phone}\"\n",
    );
    let e = Catalog::load(Some(dir.path())).unwrap_err();
    assert_eq!(e.origin, dir.path().join("nl.toml").display().to_string());
    assert_eq!(e.line, 3, "{e}");
    assert!(
        e.reason.contains("unknown placeholder {phone}") && e.reason.contains("{tail}"),
        "{e}"
    );
}

#[test]
fn a_placeholder_left_out_unknown_names_and_bad_toml_are_errors() {
    let lost = dir_with("de", "[sms]\n\ncode = \"Ihr Code\"\n");
    let e = Catalog::load(Some(lost.path())).unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.reason.contains("{code}"), "{e}");
    let unknown = dir_with("fr", "[radius]\nwelcom = \"Bienvenue\"\n");
    let e = Catalog::load(Some(unknown.path())).unwrap_err();
    assert_eq!((e.line, e.reason.contains("welcom")), (2, true), "{e}");
    let section = dir_with("fr", "[radio]\nwelcome = \"x\"\n");
    let e = Catalog::load(Some(section.path())).unwrap_err();
    assert_eq!(e.line, 1, "{e}");
    assert!(e.reason.contains("unknown section [radio]"), "{e}");
    let broken = dir_with("en", "[radius]\nwelcome = \"Hi {name}\n");
    let e = Catalog::load(Some(broken.path())).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn an_edited_file_replaces_texts_key_by_key() {
    let dir = dir_with("nl", "[radius]\nwelcome = \"Goedendag, {name}.\"\n");
    let c = Catalog::load(Some(dir.path())).unwrap();
    assert_eq!(c.get(Key::Welcome, Lang::Nl), "Goedendag, {name}.");
    assert_eq!(c.get(Key::WelcomeAnonymous, Lang::Nl), "Welkom.");
}

#[test]
fn a_missing_text_falls_back_to_english_and_is_listed() {
    let nl = "[radius]\nwelcome = \"Welkom, {name}.\"\n";
    let c = Catalog::build(&[(Lang::En, EN), (Lang::Nl, nl)], None).unwrap();
    assert_eq!(c.get(Key::Welcome, Lang::Nl), "Welkom, {name}.");
    assert_eq!(c.get(Key::SmsCode, Lang::Nl), "Your sign-in code is {code}");
    let missing = c.missing();
    let nl_missing = &missing.iter().find(|(l, _)| *l == Lang::Nl).unwrap().1;
    assert!(nl_missing.contains(&Key::SmsCode) && !nl_missing.contains(&Key::Welcome));
    assert_eq!(nl_missing.len(), Key::ALL.len() - 1);
    // English itself must be complete.
    let e = Catalog::build(&[(Lang::En, "[radius]\nwelcome = \"Hi {name}\"\n")], None).unwrap_err();
    assert!(e.reason.contains("no English text"), "{e}");
}

#[test]
fn texts_render_in_one_pass() {
    assert_eq!(
        fill("Welcome, {name}.", &[("name", "{code}")]),
        "Welcome, {code}."
    );
    assert_eq!(fill("a {x} {y}", &[("y", "2")]), "a {x} 2");
    assert_eq!(placeholders("{a} { b} {c_1}{"), vec!["a", "c_1"]);
    let t = Text::with(Key::Welcome, &[("name", "Ann")]).then(Key::Locked);
    assert!(t
        .render(Lang::En)
        .starts_with("Welcome, Ann. Your account is locked"));
    assert_eq!(Text::verbatim("").render(Lang::En), "");
}

#[test]
fn language_tags() {
    assert_eq!(Lang::parse("nl-BE"), Some(Lang::Nl));
    assert_eq!(Lang::parse("DE_ch"), Some(Lang::De));
    assert_eq!(Lang::parse("fr"), Some(Lang::Fr));
    assert_eq!(Lang::parse("es"), None);
    assert_eq!(Lang::parse("nl-"), None);
    assert_eq!(Lang::parse("english"), None);
    assert_eq!(Lang::from_accept("es-ES,fr;q=0.8,en;q=0.5"), Some(Lang::Fr));
    assert!(check_language_tag("").is_ok() && check_language_tag("pt").is_err());
    assert_eq!(choose(Some("de"), Some(Lang::Nl), Lang::En), Lang::De);
    assert_eq!(choose(Some(""), Some(Lang::Nl), Lang::En), Lang::Nl);
    assert_eq!(choose(None, None, Lang::Fr), Lang::Fr);
}
