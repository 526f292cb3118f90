//! The benchmark user list: a CSV file `name,password,totp_secret` (base32), shared by
//! `radmfa user import --csv` and the FreeRADIUS `users` file generator.

use std::fmt;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::Rng;

/// One benchmark user.
pub struct User {
    /// RADIUS User-Name.
    pub name: String,
    /// Cleartext first-factor password.
    pub password: String,
    /// Raw TOTP key (decoded from base32).
    pub totp_key: Vec<u8>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &"***")
            .field("totp_key", &"***")
            .finish()
    }
}

/// Parses the users CSV. A first line starting with `name,` is taken as the header; extra
/// columns (display name, email, phone) are ignored. Every user must have a TOTP secret.
pub fn parse_csv(text: &str) -> Result<Vec<User>> {
    let mut users = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if lineno == 1 && line.starts_with("name,") {
            continue;
        }
        let mut fields = line.split(',');
        let (Some(name), Some(password), Some(secret)) =
            (fields.next(), fields.next(), fields.next())
        else {
            bail!("users CSV line {lineno}: expected name,password,totp_secret");
        };
        if name.is_empty() {
            bail!("users CSV line {lineno}: empty user name");
        }
        if secret.is_empty() {
            bail!("users CSV line {lineno}: user {name} has no TOTP secret");
        }
        let totp_key = radmfa_otp::base32_decode(secret)
            .map_err(|e| anyhow::anyhow!("users CSV line {lineno}: bad base32 secret: {e}"))?;
        users.push(User {
            name: name.to_owned(),
            password: password.to_owned(),
            totp_key,
        });
    }
    if users.is_empty() {
        bail!("users CSV has no users");
    }
    Ok(users)
}

/// Loads the users CSV from a file.
pub fn load(path: &Path) -> Result<Vec<User>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_csv(&text).with_context(|| format!("parsing {}", path.display()))
}

const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Random password of `len` characters drawn from an unambiguous alphanumeric alphabet.
/// The last character is always a letter so that "password + 6 digits" splits unambiguously.
fn random_password<R: Rng>(rng: &mut R, len: usize) -> String {
    let mut out = String::with_capacity(len);
    for i in 0..len {
        let alphabet = if i + 1 == len {
            &PASSWORD_ALPHABET[..49] // letters only
        } else {
            PASSWORD_ALPHABET
        };
        let c = alphabet[rng.random_range(0..alphabet.len())];
        out.push(char::from(c));
    }
    out
}

/// Writes `count` users named `{prefix}{n:06}` with random 16-character passwords and
/// random 20-byte TOTP seeds.
pub fn generate(path: &Path, count: usize, prefix: &str) -> Result<()> {
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    writeln!(out, "name,password,totp_secret")?;
    let mut rng = rand::rng();
    for n in 0..count {
        let password = random_password(&mut rng, 16);
        let seed = radmfa_otp::generate_secret(20);
        let secret = radmfa_otp::base32_encode(seed.as_ref());
        writeln!(out, "{prefix}{n:06},{password},{secret}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_rows() {
        let csv = "name,password,totp_secret\nalice,pw1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\nbob,pw2,JBSWY3DPEHPK3PXP,Bob,b@x,1\n";
        let users = parse_csv(csv).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].name, "alice");
        assert_eq!(users[0].password, "pw1");
        assert_eq!(users[0].totp_key, b"12345678901234567890");
        assert_eq!(users[1].name, "bob");
        assert_eq!(users[1].totp_key, b"Hello!\xde\xad\xbe\xef");
    }

    #[test]
    fn rejects_bad_rows() {
        assert!(parse_csv("").is_err());
        assert!(parse_csv("name,password,totp_secret\n").is_err());
        assert!(parse_csv("alice,pw\n").is_err());
        assert!(parse_csv("alice,pw,\n").is_err());
        assert!(parse_csv(",pw,JBSWY3DPEHPK3PXP\n").is_err());
        assert!(parse_csv("alice,pw,not-base32!\n").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let users = parse_csv("alice,hunter2,JBSWY3DPEHPK3PXP\n").unwrap();
        let dbg = format!("{:?}", users[0]);
        assert!(dbg.contains("alice"));
        assert!(!dbg.contains("hunter2"));
    }

    #[test]
    fn generated_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("radmfa-loadgen-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.csv");
        generate(&path, 50, "u").unwrap();
        let users = load(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(users.len(), 50);
        assert_eq!(users[7].name, "u000007");
        for u in &users {
            assert_eq!(u.password.len(), 16);
            assert!(u.password.bytes().last().unwrap().is_ascii_alphabetic());
            assert_eq!(u.totp_key.len(), 20);
        }
        assert_ne!(users[0].totp_key, users[1].totp_key);
    }
}
