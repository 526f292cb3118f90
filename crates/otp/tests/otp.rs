//! End-to-end use of the public API, as the server drives it.

use radmfa_otp::{
    base32_decode, base32_encode, codes_match, generate_secret, otpauth_uri, random_code,
    Algorithm, Clock, ManualClock, OtpError, OtpKind, OtpauthParams, Sessions, StateError,
    StateKey, Totp,
};

/// Enrollment: seed -> otpauth URI -> the app decodes the secret -> login with
/// the app's code, once per step, through the injected clock.
#[test]
fn enroll_and_login_once_per_step() {
    let clock = ManualClock::new(1_700_000_000);
    let alg = Algorithm::parse("SHA-256").unwrap();
    let seed = generate_secret(alg.recommended_secret_len());
    let uri = otpauth_uri(&OtpauthParams {
        issuer: "radmfa",
        account: "alice",
        secret: &seed,
        algorithm: alg,
        digits: 6,
        kind: OtpKind::Totp { period: 30 },
    });
    let b32 = uri
        .split_once("secret=")
        .and_then(|(_, rest)| rest.split('&').next())
        .unwrap();
    assert_eq!(b32, base32_encode(&seed));
    let app_seed = base32_decode(b32).unwrap();
    assert_eq!(app_seed, seed);

    let totp = Totp {
        algorithm: alg,
        ..Totp::default()
    };
    let code = totp.generate(&app_seed, clock.now_unix());
    let used = totp.verify(&seed, &code, clock.now_unix(), None).unwrap();
    assert_eq!(
        totp.verify(&seed, &code, clock.now_unix(), Some(used)),
        Err(OtpError::Replayed { step: used })
    );
    clock.advance(30);
    let code = totp.generate(&app_seed, clock.now_unix());
    assert_eq!(
        totp.verify(&seed, &code, clock.now_unix(), Some(used)),
        Ok(used + 1)
    );
    // Ninety seconds later the previous code is outside the window.
    clock.advance(90);
    assert!(totp
        .verify(&seed, &code, clock.now_unix(), Some(used))
        .is_err());
}

/// SMS challenge: code in a session, State in the Access-Challenge, the reply
/// comes back (possibly to another node, which only reads the owner id).
#[test]
fn sms_challenge_round_trip() {
    let clock = ManualClock::new(10_000);
    let key = StateKey::generate();
    let peer_key = StateKey::new(key.as_bytes()).unwrap();
    let sessions: Sessions<(String, String)> = Sessions::new(120, 1000);

    let code = random_code(6, "0123456789");
    let sid = sessions
        .insert(clock.now_unix(), ("alice".to_owned(), code.clone()))
        .unwrap();
    let state = key.seal(3, &sid);

    // Another node with the same cluster key learns the owner.
    let tok = peer_key.open(&state).unwrap();
    assert_eq!(tok.node_id, 3);

    // The owner: wrong code first, session put back with its original deadline.
    clock.advance(20);
    let ((user, expected), deadline) = sessions
        .take_entry(&tok.session_id, clock.now_unix())
        .unwrap();
    assert!(!codes_match(&expected, "not it"));
    sessions
        .put_back(tok.session_id, deadline, (user, expected))
        .unwrap();
    // Right code.
    let (user, expected) = sessions.take(&tok.session_id, clock.now_unix()).unwrap();
    assert_eq!(user, "alice");
    assert!(codes_match(&expected, &code));
    // Single use.
    assert!(sessions.take(&tok.session_id, clock.now_unix()).is_none());

    // A forged State never reaches the sessions.
    let mut forged = state;
    forged[5] ^= 0x80;
    assert_eq!(key.open(&forged), Err(StateError::BadMac));
    let e: OtpError = key.open(&forged[..10]).unwrap_err().into();
    assert_eq!(e, OtpError::BadState(StateError::BadLength));
}

#[test]
fn challenge_expires() {
    let clock = ManualClock::new(0);
    let sessions = Sessions::new(60, 10);
    let sid = sessions.insert(clock.now_unix(), 1u8).unwrap();
    clock.advance(60);
    assert_eq!(sessions.take(&sid, clock.now_unix()), None);
    assert!(sessions.is_empty());
}
