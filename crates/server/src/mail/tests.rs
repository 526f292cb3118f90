use super::*;

fn config() -> MailConfig {
    MailConfig {
        host: "127.0.0.1".to_owned(),
        port: 2525,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        ca_pem: None,
        from: "radmfa <mfa@example.org>".to_owned(),
        portal_url: "https://mfa.example.org/portal".to_owned(),
        templates_dir: None,
        default_language: "en".to_owned(),
        timeout: Duration::from_secs(5),
    }
}

fn mailer() -> Mailer {
    Mailer::new(config()).expect("valid config")
}

fn enrollment(method: MailMethod, language: &str) -> Enrollment<'_> {
    Enrollment {
        to: "jan@example.org",
        display_name: "Jan de Vries",
        login: "jdevries",
        method,
        language,
        phone: "+31 6 1234 5678",
        pin: None,
        otpauth_uri: None,
    }
}

const URI: &str = "otpauth://totp/radmfa:jdevries?secret=JBSWY3DPEHPK3PXP&issuer=radmfa";

fn config_err(cfg: MailConfig) -> String {
    match Mailer::new(cfg) {
        Err(MailError::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn every_builtin_renders_for_every_method_and_language() {
    let m = mailer();
    let greetings = [
        ("en", "Hello Jan de Vries,"),
        ("nl", "Hallo Jan de Vries,"),
        ("de", "Hallo Jan de Vries,"),
        ("fr", "Bonjour Jan de Vries,"),
    ];
    for (language, greeting) in greetings {
        for method in MailMethod::ALL {
            let mut e = enrollment(method, language);
            e.otpauth_uri = Some(URI);
            let (subject, body) = m.render(&e).expect("renders");
            assert!(!subject.is_empty() && !subject.contains('\n'));
            assert!(body.starts_with(greeting), "{language}/{method:?}: {body}");
            assert!(body.contains("jdevries"), "{body}");
            assert!(!body.contains('{') && !body.contains('}'), "{body}");
            assert!(!body.contains("\n\n\n"), "{body}");
            assert!(body.ends_with(".\n"), "{language}/{method:?}: {body:?}");
            match method {
                MailMethod::Call | MailMethod::Sms => {
                    assert!(body.contains("5678"), "{body}");
                    assert!(body.contains("https://mfa.example.org/portal\n"));
                    assert!(!body.contains("otpauth://"), "URI only in app mails");
                }
                MailMethod::App => {
                    assert!(body.contains("https://mfa.example.org/portal\n"));
                    assert!(body.contains(URI), "{body}");
                }
                MailMethod::Portal => {
                    assert!(body.contains("https://mfa.example.org/portal\n"));
                    assert!(!body.contains("5678"), "no phone in the portal mail");
                    assert!(!body.contains("otpauth://"), "URI only in app mails");
                }
            }
        }
    }
}

#[test]
fn methods_and_languages_give_different_text() {
    let m = mailer();
    let (en_sub, call) = m.render(&enrollment(MailMethod::Call, "en")).unwrap();
    let (_, sms) = m.render(&enrollment(MailMethod::Sms, "en")).unwrap();
    let (_, app) = m.render(&enrollment(MailMethod::App, "en")).unwrap();
    assert!(call.contains("we will call"));
    assert!(sms.contains("text message"));
    assert!(app.contains("authenticator app") && app.contains("scan the QR code"));
    let mut no_phone = enrollment(MailMethod::Portal, "en");
    no_phone.phone = "";
    let (portal_sub, portal) = m.render(&no_phone).unwrap();
    assert!(
        portal_sub.contains("Complete your enrollment"),
        "{portal_sub}"
    );
    assert!(portal.contains("no phone number is registered"), "{portal}");
    let (nl_sub, nl) = m.render(&enrollment(MailMethod::Sms, "nl")).unwrap();
    assert!(nl.contains("sms met een eenmalige code"), "{nl}");
    let (de_sub, _) = m.render(&enrollment(MailMethod::Sms, "de")).unwrap();
    let (fr_sub, _) = m.render(&enrollment(MailMethod::Sms, "fr")).unwrap();
    let subjects = [&en_sub, &nl_sub, &de_sub, &fr_sub];
    for (i, a) in subjects.iter().enumerate() {
        for b in subjects.iter().skip(i + 1) {
            assert_ne!(a, b);
        }
    }
    assert!(de_sub.contains("Überprüfung"));
    assert!(fr_sub.contains("vérification"));
}

#[test]
fn language_fallback() {
    let m = mailer();
    let body = |lang: &str| m.render(&enrollment(MailMethod::Call, lang)).unwrap().1;
    assert!(body("de-CH").starts_with("Hallo") && body("de-CH").contains("Endung"));
    assert!(body("fr_BE").starts_with("Bonjour"));
    assert!(body("NL").contains("eindigt op"));
    assert!(body("es").starts_with("Hello"), "unknown: default language");
    assert!(body("").starts_with("Hello"));
    assert!(body("../../etc").starts_with("Hello"), "garbage: default");

    let mut cfg = config();
    cfg.default_language = "fr".to_owned();
    let fr = Mailer::new(cfg).unwrap();
    let (_, b) = fr.render(&enrollment(MailMethod::Sms, "es")).unwrap();
    assert!(b.starts_with("Bonjour"), "{b}");
    let (_, b) = fr.render(&enrollment(MailMethod::Sms, "nl")).unwrap();
    assert!(b.starts_with("Hallo"));

    // A default without templates falls back to English.
    let mut cfg = config();
    cfg.default_language = "sv".to_owned();
    let sv = Mailer::new(cfg).unwrap();
    let (_, b) = sv.render(&enrollment(MailMethod::Sms, "es")).unwrap();
    assert!(b.starts_with("Hello"));
}

#[test]
fn phone_number_is_masked() {
    assert_eq!(phone_tail("+31 6 1234 5678"), "5678");
    assert_eq!(phone_tail("+1 (555) 010-9999 "), "9999");
    assert_eq!(phone_tail("12"), "12");
    assert_eq!(phone_tail("tel:"), "");
    assert_eq!(phone_tail("٣٣٣٣٣"), "", "only ASCII digits");
    let m = mailer();
    for method in [MailMethod::Call, MailMethod::Sms] {
        for lang in ["en", "nl", "de", "fr"] {
            let (_, body) = m.render(&enrollment(method, lang)).unwrap();
            assert!(body.contains("5678"));
            assert!(!body.contains("1234"), "{body}");
            assert!(!body.contains("+31"), "{body}");
        }
    }
    // The app mail does not mention the number at all.
    let (_, app) = m.render(&enrollment(MailMethod::App, "en")).unwrap();
    assert!(!app.contains("5678"));
}

#[test]
fn call_and_sms_need_a_phone_number() {
    let m = mailer();
    for method in [MailMethod::Call, MailMethod::Sms] {
        let mut e = enrollment(method, "en");
        e.phone = "";
        assert!(matches!(m.render(&e), Err(MailError::Template(_))));
    }
    let mut e = enrollment(MailMethod::App, "en");
    e.phone = "";
    assert!(m.render(&e).is_ok());
}

#[test]
fn pin_block_only_with_a_pin() {
    let m = mailer();
    let words = [
        ("en", "Your initial PIN is: 482913", "change"),
        ("nl", "Uw initiële pincode is: 482913", "wijzigen"),
        ("de", "Ihre anfängliche PIN lautet: 482913", "ändern"),
        ("fr", "Votre code PIN initial est : 482913", "modifier"),
    ];
    for method in MailMethod::ALL {
        for (lang, line, change) in words {
            let mut e = enrollment(method, lang);
            let (_, without) = m.render(&e).unwrap();
            assert!(!without.contains("482913"));
            let lead = line.split(':').next().unwrap_or(line).trim_end();
            assert!(!without.contains(lead), "{lead}: {without}");
            assert!(!without.contains("\n\n\n"));
            e.pin = Some("482913");
            let (subject, with) = m.render(&e).unwrap();
            assert!(with.contains(line), "{lang}: {with}");
            assert!(with.contains(change), "{lang}: {with}");
            assert!(!subject.contains("482913"));
        }
    }
    let mut e = enrollment(MailMethod::Sms, "en");
    e.pin = Some("  ");
    assert!(matches!(m.render(&e), Err(MailError::Template(_))));
}

#[test]
fn app_block_needs_an_otpauth_uri() {
    let m = mailer();
    let mut e = enrollment(MailMethod::App, "en");
    let (_, without) = m.render(&e).unwrap();
    assert!(!without.contains("cannot scan"));
    assert!(without.contains("scan the QR code"));
    e.otpauth_uri = Some(URI);
    let (_, with) = m.render(&e).unwrap();
    assert!(with.contains("If you cannot scan the QR code"));
    assert!(with.contains(&format!(":\n{URI}\n")), "{with}");
    for bad in [
        "https://evil.example/",
        "otpauth://totp/x\r\nBcc: a@b",
        "otpauth://a b",
    ] {
        e.otpauth_uri = Some(bad);
        assert!(matches!(m.render(&e), Err(MailError::Template(_))), "{bad}");
    }
}

#[test]
fn values_cannot_add_lines() {
    let m = mailer();
    let mut e = enrollment(MailMethod::Sms, "en");
    e.display_name = "Eve\r\nBcc: victim@example.org";
    e.login = "eve\nX-Evil: 1";
    let (subject, body) = m.render(&e).unwrap();
    assert!(!subject.contains('\n'));
    assert!(
        body.starts_with("Hello Eve  Bcc: victim@example.org,\n"),
        "{body}"
    );
    assert!(!body
        .lines()
        .any(|l| l.starts_with("Bcc:") || l.starts_with("X-Evil")));
}

fn header_lines(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
    head.split("\r\n").map(str::to_owned).collect()
}

#[test]
fn header_injection_is_impossible() {
    let evil = "Eve\r\nBcc: victim@example.org\r\nX-Evil: 1";
    // lettre's builder alone: a CR/LF in the subject is encoded, not a line
    // break.
    let raw = Message::builder()
        .from("a <a@example.org>".parse().unwrap())
        .to("b@example.org".parse().unwrap())
        .subject(evil)
        .body(String::from("x"))
        .unwrap()
        .formatted();
    for line in header_lines(&raw) {
        assert!(
            !line.starts_with("Bcc:") && !line.starts_with("X-Evil:"),
            "{line}"
        );
    }
    // lettre 0.11 cannot encode CR/LF in a mailbox name and panics in the
    // builder instead; that is why the mailer cleans names first. If a later
    // lettre builds it, it still must not inject.
    let built = std::panic::catch_unwind(|| {
        Message::builder()
            .from("a <a@example.org>".parse().unwrap())
            .to(Mailbox::new(
                Some(evil.to_owned()),
                "b@example.org".parse().unwrap(),
            ))
            .subject("s")
            .body(String::from("x"))
            .map(|m| m.formatted())
    });
    if let Ok(Ok(raw)) = built {
        for line in header_lines(&raw) {
            assert!(
                !line.starts_with("Bcc:") && !line.starts_with("X-Evil:"),
                "{line}"
            );
        }
    }
    // Through the mailer, with an override subject that carries the name.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sms.en.txt"),
        "Subject: Welcome {display_name} ({login})\n\nHi {display_name}, code to {phone_tail}.\n",
    )
    .unwrap();
    let mut cfg = config();
    cfg.templates_dir = Some(dir.path().to_path_buf());
    let m = Mailer::new(cfg).unwrap();
    let mut e = enrollment(MailMethod::Sms, "en");
    e.display_name = evil;
    e.login = "eve\r\nCc: other@example.org";
    let raw = m.message(&e).unwrap().formatted();
    let headers = header_lines(&raw);
    for line in &headers {
        for bad in ["Bcc:", "X-Evil:", "Cc:"] {
            assert!(!line.starts_with(bad), "{line}");
        }
    }
    assert!(headers
        .iter()
        .any(|l| l == "Auto-Submitted: auto-generated"));
    assert!(headers.iter().any(|l| l.starts_with("Subject: ")));
    assert_eq!(
        headers.iter().filter(|l| l.starts_with("To: ")).count(),
        1,
        "{headers:?}"
    );
    // A bad recipient address is refused before any connection.
    e.to = "victim@example.org\r\nBcc: x@example.org";
    assert!(matches!(m.message(&e), Err(MailError::Send(_))));
    e.to = "not an address";
    assert!(matches!(m.message(&e), Err(MailError::Send(_))));
}

#[test]
fn message_is_plain_text_utf8() {
    let m = mailer();
    let mut e = enrollment(MailMethod::Call, "de");
    e.pin = Some("1234");
    let raw = m.message(&e).unwrap().formatted();
    let headers = header_lines(&raw);
    assert!(headers
        .iter()
        .any(|l| l.eq_ignore_ascii_case("Content-Type: text/plain; charset=utf-8")));
    assert!(headers
        .iter()
        .any(|l| l.starts_with("From: radmfa <mfa@example.org>")));
    assert!(headers.iter().any(|l| l.starts_with("Date: ")));
    assert!(headers.iter().any(|l| l.starts_with("Message-ID: ")));
    assert!(raw.is_ascii(), "headers and body are transfer-encoded");
}

#[test]
fn override_templates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sms.en.txt"),
        "Subject: Your {{radmfa}} code for {login}\r\n\r\nDear {display_name},\r\ncodes go to ...{phone_tail}.\r\n{pin_block}\r\n\r\n{portal_url}\r\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("call.es.txt"),
        "Subject: Verificación en dos pasos\nHola {display_name}, le llamaremos al ...{phone_tail}.\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not a template {oops}").unwrap();
    std::fs::write(dir.path().join(".app.en.txt.swp"), "ignored").unwrap();
    let mut cfg = config();
    cfg.templates_dir = Some(dir.path().to_path_buf());
    let m = Mailer::new(cfg).unwrap();

    let mut e = enrollment(MailMethod::Sms, "en-GB");
    e.pin = Some("9999");
    let (subject, body) = m.render(&e).unwrap();
    assert_eq!(subject, "Your {radmfa} code for jdevries");
    assert_eq!(
        body,
        "Dear Jan de Vries,\ncodes go to ...5678.\nYour initial PIN is: 9999\n\
         You must change this PIN the first time you sign in. Keep it secret, and delete \
         this message once you have changed it.\n\nhttps://mfa.example.org/portal\n"
    );
    // Other methods keep the built-in text.
    let (_, call) = m.render(&enrollment(MailMethod::Call, "en")).unwrap();
    assert!(call.contains("we will call"));
    // An override can add a language.
    let (subject, body) = m.render(&enrollment(MailMethod::Call, "es")).unwrap();
    assert_eq!(subject, "Verificación en dos pasos");
    assert_eq!(body, "Hola Jan de Vries, le llamaremos al ...5678.\n");
    // ... which other methods do not have: default language.
    let (_, sms) = m.render(&enrollment(MailMethod::Sms, "es")).unwrap();
    assert!(sms.starts_with("Dear"));
}

fn override_error(name: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), text).unwrap();
    let mut cfg = config();
    cfg.templates_dir = Some(dir.path().to_path_buf());
    match Mailer::new(cfg) {
        Err(MailError::Template(m) | MailError::Config(m)) => m,
        other => panic!("{name}: expected an error, got {other:?}"),
    }
}

#[test]
fn override_template_errors_name_file_and_line() {
    let e = override_error(
        "sms.en.txt",
        "Subject: s\n\nHello {display_name},\nsee {portal}\n",
    );
    assert!(
        e.ends_with("sms.en.txt:4: unknown placeholder {portal}"),
        "{e}"
    );
    let e = override_error("sms.en.txt", "Subject: s {nope}\n\nbody\n");
    assert!(
        e.ends_with("sms.en.txt:1: unknown placeholder {nope}"),
        "{e}"
    );
    let e = override_error("app.nl.txt", "Hallo\n\nbody\n");
    assert!(e.contains("app.nl.txt:1: the first line must be"), "{e}");
    let e = override_error("app.nl.txt", "Subject:   \nbody\n");
    assert!(e.contains("app.nl.txt:1: empty subject"), "{e}");
    let e = override_error("app.nl.txt", "Subject: PIN {pin_block}\nbody\n");
    assert!(
        e.contains(":1: {pin_block} is not allowed in the subject"),
        "{e}"
    );
    let e = override_error("app.nl.txt", "Subject: s\nbody {app_block\n");
    assert!(e.contains("app.nl.txt:2: unclosed"), "{e}");
    let e = override_error("app.nl.txt", "Subject: s\nbody\n a } b\n");
    assert!(e.contains("app.nl.txt:3: stray"), "{e}");
    let e = override_error("app.nl.txt", "Subject: s\n\n \n");
    assert!(e.contains("app.nl.txt: empty body"), "{e}");
    let e = override_error("sms.txt", "Subject: s\nbody\n");
    assert!(e.contains("sms.txt: a template is named"), "{e}");
    let e = override_error("email.en.txt", "Subject: s\nbody\n");
    assert!(e.contains("email.en.txt: a template is named"), "{e}");
    let e = override_error("sms.EN.txt", "Subject: s\nbody\n");
    assert!(e.contains("a template is named"), "{e}");
}

#[test]
fn override_files_must_be_utf8_and_small() {
    let e = override_error("sms.en.txt", "");
    assert!(e.contains(":1: the first line must be"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sms.en.txt"), b"Subject: s\n\xff\xfe\n").unwrap();
    let mut cfg = config();
    cfg.templates_dir = Some(dir.path().to_path_buf());
    assert!(matches!(Mailer::new(cfg.clone()), Err(MailError::Template(m)) if m.contains("UTF-8")));
    let big = format!("Subject: s\n{}\n", "x".repeat(70 * 1024));
    std::fs::write(dir.path().join("sms.en.txt"), big).unwrap();
    assert!(
        matches!(Mailer::new(cfg.clone()), Err(MailError::Template(m)) if m.contains("larger"))
    );
    cfg.templates_dir = Some(dir.path().join("missing"));
    assert!(config_err(cfg).contains("missing"));
}

#[test]
fn config_is_validated() {
    let mut c = config();
    c.host = "smtp.example.org".to_owned();
    assert!(config_err(c).contains("plain SMTP to smtp.example.org is refused"));
    let mut c = config();
    c.host = "192.0.2.1".to_owned();
    config_err(c);
    for host in [
        "localhost",
        "127.0.0.1",
        "127.0.0.53",
        "::1",
        "[::1]",
        "LOCALHOST",
    ] {
        let mut c = config();
        c.host = host.to_owned();
        assert!(Mailer::new(c).is_ok(), "{host}");
    }
    let mut c = config();
    c.host = "smtp.example.org".to_owned();
    c.security = SmtpSecurity::StartTls;
    assert!(Mailer::new(c.clone()).is_ok());
    c.security = SmtpSecurity::Tls;
    assert!(Mailer::new(c).is_ok());

    let mut c = config();
    c.username = Some("u".to_owned());
    assert!(config_err(c).contains("together"));
    let mut c = config();
    c.password = Some(MailSecret::new("p".to_owned()));
    config_err(c);
    let mut c = config();
    c.host = " ".to_owned();
    config_err(c);
    let mut c = config();
    c.port = 0;
    config_err(c);
    let mut c = config();
    c.timeout = Duration::ZERO;
    config_err(c);
    let mut c = config();
    c.from = "not a mailbox".to_owned();
    assert!(config_err(c).contains("from"));
    let mut c = config();
    c.from = "radmfa <mfa@example.org>\r\nBcc: x@example.org".to_owned();
    config_err(c);
    for url in [
        "ftp://x",
        "mfa.example.org",
        "https://x/\nBcc: y",
        "https://a b",
    ] {
        let mut c = config();
        c.portal_url = url.to_owned();
        assert!(config_err(c).contains("portal_url"), "{url}");
    }
    let mut c = config();
    c.default_language = "english!".to_owned();
    assert!(config_err(c).contains("default_language"));
}

#[test]
fn ca_pem_must_hold_a_certificate() {
    let mut c = config();
    c.host = "smtp.example.org".to_owned();
    c.security = SmtpSecurity::StartTls;
    c.ca_pem = Some("no pem here".to_owned());
    assert!(config_err(c.clone()).contains("ca_pem"));
    c.ca_pem = Some("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".to_owned());
    assert!(config_err(c.clone()).contains("ca_pem"));
    let ck = rcgen::generate_simple_self_signed(vec!["smtp.example.org".to_owned()]).unwrap();
    c.ca_pem = Some(ck.cert.pem());
    assert!(Mailer::new(c).is_ok());
}

#[test]
fn secrets_stay_out_of_debug() {
    let s = MailSecret::new("hunter2-password".to_owned());
    assert_eq!(format!("{s:?}"), "***");
    assert_eq!(s.expose(), "hunter2-password");
    assert_eq!(s, MailSecret::new("hunter2-password".to_owned()));
    assert_ne!(s, MailSecret::new("hunter3-password".to_owned()));

    let mut c = config();
    c.username = Some("relay-user".to_owned());
    c.password = Some(s);
    assert!(!format!("{c:?}").contains("hunter2"));
    let m = Mailer::new(c).unwrap();
    let dbg = format!("{m:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("127.0.0.1"));

    let mut e = enrollment(MailMethod::App, "en");
    e.pin = Some("482913");
    e.otpauth_uri = Some(URI);
    let dbg = format!("{e:?}");
    assert!(
        !dbg.contains("482913") && !dbg.contains("JBSWY3DP"),
        "{dbg}"
    );
    assert!(!dbg.contains("1234"), "phone masked: {dbg}");
    assert!(dbg.contains("jdevries"));
}

#[test]
fn method_names() {
    for m in MailMethod::ALL {
        assert_eq!(m.as_str().parse::<MailMethod>().unwrap(), m);
    }
    assert!("email".parse::<MailMethod>().is_err());
}

#[test]
fn tidy_collapses_blank_lines() {
    assert_eq!(tidy("a\n\n\n\nb  \n\n"), "a\n\nb\n");
    assert_eq!(tidy("\n\na"), "a\n");
}

#[tokio::test]
async fn refused_connection_is_a_send_error() {
    // Bind then drop a listener: its port refuses connections.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = config();
    c.port = port;
    let m = Mailer::new(c).unwrap();
    let err = m
        .send_enrollment(&enrollment(MailMethod::Sms, "en"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MailError::Send(ref s) if s.contains(&port.to_string())),
        "{err}"
    );
}

#[tokio::test]
async fn silent_relay_times_out() {
    // A listener that accepts but never greets.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(s);
    });
    let mut c = config();
    c.port = port;
    c.timeout = Duration::from_millis(300);
    let m = Mailer::new(c).unwrap();
    let started = std::time::Instant::now();
    let err = m
        .send_enrollment(&enrollment(MailMethod::Sms, "en"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Send(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}
