//! The benchmark user list, shared by `radmfa user import --csv` and the FreeRADIUS
//! `users` file generator: `name,password,totp_secret` (base32) for the TOTP scenarios,
//! `name,password,method,phone` (method `sms`) for the one-way SMS scenario.

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
    /// Raw TOTP key (decoded from base32), if the user has one.
    pub totp_key: Option<Vec<u8>>,
    /// E.164 phone number the SMS codes go to, if any.
    pub phone: Option<String>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &"***")
            .field("totp_key", &self.totp_key.as_ref().map(|_| "***"))
            .field("phone", &self.phone)
            .finish()
    }
}

/// Column positions of the fields the load generator uses.
struct Columns {
    name: usize,
    password: usize,
    totp_secret: Option<usize>,
    phone: Option<usize>,
}

impl Columns {
    /// Without a header: `name,password,totp_secret` and extra columns ignored.
    const POSITIONAL: Columns = Columns {
        name: 0,
        password: 1,
        totp_secret: Some(2),
        phone: None,
    };

    fn from_header(line: &str) -> Result<Columns> {
        let names: Vec<&str> = line.split(',').map(str::trim).collect();
        let col = |want: &str| names.iter().position(|h| h.eq_ignore_ascii_case(want));
        let (Some(name), Some(password)) = (col("name"), col("password")) else {
            bail!("users CSV header must name the columns 'name' and 'password'");
        };
        Ok(Columns {
            name,
            password,
            totp_secret: col("totp_secret"),
            phone: col("phone"),
        })
    }
}

/// Parses the users CSV. A first line starting with `name,` is the header and says where
/// `name`, `password`, `totp_secret` and `phone` are (other columns are ignored); without
/// it the columns are `name,password,totp_secret`. Empty TOTP secrets and phones are
/// allowed here; [`require`] checks what a scenario needs.
pub fn parse_csv(text: &str) -> Result<Vec<User>> {
    let mut users = Vec::new();
    let mut cols = Columns::POSITIONAL;
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if lineno == 1 && line.starts_with("name,") {
            cols = Columns::from_header(line)?;
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let field = |c: Option<usize>| c.and_then(|c| fields.get(c)).copied().unwrap_or("");
        let (Some(name), Some(password)) = (fields.get(cols.name), fields.get(cols.password))
        else {
            bail!("users CSV line {lineno}: missing name or password");
        };
        if name.is_empty() {
            bail!("users CSV line {lineno}: empty user name");
        }
        let secret = field(cols.totp_secret);
        let totp_key =
            if secret.is_empty() {
                None
            } else {
                Some(radmfa_otp::base32_decode(secret).map_err(|e| {
                    anyhow::anyhow!("users CSV line {lineno}: bad base32 secret: {e}")
                })?)
            };
        let phone = Some(field(cols.phone).trim())
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        users.push(User {
            name: (*name).to_owned(),
            password: (*password).to_owned(),
            totp_key,
            phone,
        });
    }
    if users.is_empty() {
        bail!("users CSV has no users");
    }
    Ok(users)
}

/// What a scenario needs of every user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A TOTP secret (inline and challenge scenarios).
    Totp,
    /// A phone number (SMS scenario).
    Phone,
}

/// Fails unless every user has what the scenario needs.
pub fn require(users: &[User], needs: Needs) -> Result<()> {
    for u in users {
        match needs {
            Needs::Totp if u.totp_key.is_none() => {
                bail!(
                    "user {} has no TOTP secret (this scenario needs one)",
                    u.name
                )
            }
            Needs::Phone if u.phone.is_none() => {
                bail!("user {} has no phone (the sms scenario needs one)", u.name)
            }
            _ => {}
        }
    }
    Ok(())
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

/// Second factor of generated users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// `name,password,totp_secret` with a random 20-byte TOTP seed.
    Totp,
    /// `name,password,method,phone` with method `sms` and a unique phone number.
    Sms,
}

/// Digits after the phone prefix: `+3161` + 7 digits is a complete Dutch mobile number.
const PHONE_DIGITS: usize = 7;

/// The phone number of user `n`: `prefix` followed by `n` on [`PHONE_DIGITS`] digits.
pub fn phone_number(prefix: &str, n: usize) -> String {
    format!("{prefix}{n:0width$}", width = PHONE_DIGITS)
}

fn check_phone_prefix(prefix: &str, count: usize) -> Result<()> {
    let digits = prefix.strip_prefix('+').unwrap_or("");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--phone-prefix must be '+' followed by digits (E.164), got {prefix:?}");
    }
    if !(8..=15).contains(&(digits.len() + PHONE_DIGITS)) {
        bail!("--phone-prefix {prefix:?} plus {PHONE_DIGITS} digits is not an E.164 number");
    }
    if count > 10usize.pow(PHONE_DIGITS as u32) {
        bail!("at most 10^{PHONE_DIGITS} users get distinct phone numbers");
    }
    Ok(())
}

/// Writes `count` users named `{prefix}{n:06}` with random 16-character passwords and,
/// by `method`, a random 20-byte TOTP seed or method `sms` and phone
/// `{phone_prefix}{n:07}`.
pub fn generate(
    path: &Path,
    count: usize,
    prefix: &str,
    method: Method,
    phone_prefix: &str,
) -> Result<()> {
    if method == Method::Sms {
        check_phone_prefix(phone_prefix, count)?;
    }
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    match method {
        Method::Totp => writeln!(out, "name,password,totp_secret")?,
        Method::Sms => writeln!(out, "name,password,method,phone")?,
    }
    let mut rng = rand::rng();
    for n in 0..count {
        let password = random_password(&mut rng, 16);
        match method {
            Method::Totp => {
                let seed = radmfa_otp::generate_secret(20);
                let secret = radmfa_otp::base32_encode(seed.as_ref());
                writeln!(out, "{prefix}{n:06},{password},{secret}")?;
            }
            Method::Sms => {
                let phone = phone_number(phone_prefix, n);
                writeln!(out, "{prefix}{n:06},{password},sms,{phone}")?;
            }
        }
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
        assert_eq!(
            users[0].totp_key.as_deref(),
            Some(&b"12345678901234567890"[..])
        );
        assert_eq!(users[1].name, "bob");
        assert_eq!(
            users[1].totp_key.as_deref(),
            Some(&b"Hello!\xde\xad\xbe\xef"[..])
        );
        assert!(users[1].phone.is_none());
    }

    #[test]
    fn parses_columns_by_header() {
        let csv = "name,password,method,phone\ncarol,pw3,sms,+31610000001\ndave,pw4,sms,\n";
        let users = parse_csv(csv).unwrap();
        assert_eq!(users[0].phone.as_deref(), Some("+31610000001"));
        assert!(users[0].totp_key.is_none());
        assert!(users[1].phone.is_none());
        assert!(require(&users[..1], Needs::Phone).is_ok());
        assert!(require(&users, Needs::Phone).is_err());
        assert!(require(&users[..1], Needs::Totp).is_err());
        let csv = "name,phone,totp_secret,password\nerin,+31610000002,JBSWY3DPEHPK3PXP,pw5\n";
        let users = parse_csv(csv).unwrap();
        assert_eq!(users[0].password, "pw5");
        assert_eq!(users[0].phone.as_deref(), Some("+31610000002"));
        assert!(require(&users, Needs::Totp).is_ok());
        assert!(parse_csv("name,secret\nx,y\n").is_err());
    }

    #[test]
    fn rejects_bad_rows() {
        assert!(parse_csv("").is_err());
        assert!(parse_csv("name,password,totp_secret\n").is_err());
        assert!(parse_csv("alice\n").is_err());
        assert!(parse_csv(",pw,JBSWY3DPEHPK3PXP\n").is_err());
        assert!(parse_csv("alice,pw,not-base32!\n").is_err());
        let users = parse_csv("alice,pw,\n").unwrap();
        assert!(require(&users, Needs::Totp).is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let users = parse_csv("alice,hunter2,JBSWY3DPEHPK3PXP\n").unwrap();
        let dbg = format!("{:?}", users[0]);
        assert!(dbg.contains("alice"));
        assert!(!dbg.contains("hunter2"));
        assert!(!dbg.contains("72"), "{dbg}"); // 'H' of the key
    }

    fn temp_csv(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("radmfa-loadgen-test-{tag}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.csv");
        (dir, path)
    }

    #[test]
    fn generated_file_round_trips() {
        let (dir, path) = temp_csv("totp");
        generate(&path, 50, "u", Method::Totp, "+3161").unwrap();
        let users = load(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(users.len(), 50);
        assert_eq!(users[7].name, "u000007");
        for u in &users {
            assert_eq!(u.password.len(), 16);
            assert!(u.password.bytes().last().unwrap().is_ascii_alphabetic());
            assert_eq!(u.totp_key.as_ref().map(Vec::len), Some(20));
        }
        assert_ne!(users[0].totp_key, users[1].totp_key);
        assert!(require(&users, Needs::Totp).is_ok());
    }

    #[test]
    fn generated_sms_users_have_unique_phones() {
        let (dir, path) = temp_csv("sms");
        generate(&path, 30, "s", Method::Sms, "+3161").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let users = load(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(text.starts_with("name,password,method,phone\ns000000,"));
        assert!(text.lines().skip(1).all(|l| l.contains(",sms,+3161")));
        assert_eq!(users[12].phone.as_deref(), Some("+31610000012"));
        let mut phones: Vec<_> = users.iter().filter_map(|u| u.phone.clone()).collect();
        phones.sort();
        phones.dedup();
        assert_eq!(phones.len(), 30);
        assert!(require(&users, Needs::Phone).is_ok());
        assert!(generate(&path, 1, "s", Method::Sms, "3161").is_err());
        assert!(generate(&path, 1, "s", Method::Sms, "+31612345678").is_err());
        assert!(generate(&path, 1, "s", Method::Sms, "+").is_err());
    }
}
