//! The CSV form of a bulk user import (`radmfa user import`, `POST
//! /api/v1/users/import`): a header line naming the columns (any order,
//! any case), one user a row. Turns text into [`ImportRow`]s with each
//! row's line; a value that is not of its column's type is an error naming
//! the line and column. Range and policy checks are the import's own
//! ([`super::import`]), so JSON rows get them too. One parser for the CLI
//! and the API, so both accept the same files.

use radmfa_store::{Method, TokenAlgorithm, TokenKind};

use super::request::ImportRow;

/// The columns an import file may have.
pub const COLUMNS: [&str; 19] = [
    "name",
    "password",
    "totp_secret",
    "display_name",
    "email",
    "phone",
    "extension",
    "method",
    "device_token",
    "language",
    "pin",
    "groups",
    "enabled",
    "token_type",
    "algorithm",
    "digits",
    "period",
    "counter",
    // Alias of totp_secret (it may be an HOTP seed).
    "secret",
];

/// A row that cannot be imported: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// Line in the file (1 = the header).
    pub line: u64,
    /// The column at fault, if one is.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl RowError {
    /// `users.csv:14: column "digits": 9 is not 6, 7 or 8` (`source`
    /// empty: `line 14: ...`).
    pub fn render(&self, source: &str) -> String {
        let at = if source.is_empty() {
            format!("line {}", self.line)
        } else {
            format!("{source}:{}", self.line)
        };
        match &self.column {
            Some(c) => format!("{at}: column {c:?}: {}", self.message),
            None => format!("{at}: {}", self.message),
        }
    }
}

/// A parsed file: the rows that parsed, and the ones that did not.
#[derive(Debug, Default)]
pub struct ParsedCsv {
    /// Rows, with their lines.
    pub rows: Vec<ImportRow>,
    /// Rows refused, in file order.
    pub errors: Vec<RowError>,
}

/// Parses an import file. `Err` for what makes the whole file unusable
/// (no header, an unknown or repeated column, no `name` column).
pub fn parse_csv(text: &[u8]) -> Result<ParsedCsv, RowError> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text);
    let header_err = |message: String, column: Option<String>| RowError {
        line: 1,
        column,
        message,
    };
    let headers = r
        .headers()
        .map_err(|e| header_err(format!("cannot read the header line: {e}"), None))?
        .clone();
    if headers.iter().all(str::is_empty) {
        return Err(header_err(
            format!(
                "a header line naming the columns is required ({})",
                COLUMNS.join(",")
            ),
            None,
        ));
    }
    let mut cols: Vec<&'static str> = Vec::with_capacity(headers.len());
    for h in headers.iter() {
        let h = h.to_ascii_lowercase();
        let Some(c) = COLUMNS.iter().find(|c| **c == h) else {
            return Err(header_err(
                format!("unknown column (known: {})", COLUMNS.join(", ")),
                Some(h),
            ));
        };
        if cols.contains(c) {
            return Err(header_err("the column appears twice".into(), Some(h)));
        }
        cols.push(c);
    }
    if !cols.contains(&"name") {
        return Err(header_err(
            "no \"name\" column: a header line naming the columns is required".into(),
            None,
        ));
    }
    if cols.contains(&"secret") && cols.contains(&"totp_secret") {
        return Err(header_err(
            "give the seed in \"secret\" or \"totp_secret\", not both".into(),
            None,
        ));
    }
    let mut out = ParsedCsv::default();
    for rec in r.records() {
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                out.errors.push(RowError {
                    line,
                    column: None,
                    message: format!("not CSV: {e}"),
                });
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if rec.len() > cols.len() {
            out.errors.push(RowError {
                line,
                column: None,
                message: format!("{} fields, the header names {}", rec.len(), cols.len()),
            });
            continue;
        }
        match row(line, &cols, &rec) {
            Ok(r) => out.rows.push(r),
            Err(e) => out.errors.push(e),
        }
    }
    Ok(out)
}

/// One record into a row.
fn row(line: u64, cols: &[&'static str], rec: &csv::StringRecord) -> Result<ImportRow, RowError> {
    let mut r = ImportRow {
        line,
        name: String::new(),
        password: None,
        totp_secret: None,
        display_name: String::new(),
        email: String::new(),
        phone: String::new(),
        method: None,
        device_token: String::new(),
        language: String::new(),
        pin: None,
        groups: None,
        enabled: None,
        extension: String::new(),
        token_type: None,
        algorithm: None,
        digits: None,
        period: None,
        counter: None,
    };
    for (col, value) in cols.iter().zip(rec.iter()) {
        if value.is_empty() {
            continue;
        }
        let err = |message: String| RowError {
            line,
            column: Some((*col).to_string()),
            message,
        };
        let num = |what: &str| -> Result<u64, RowError> {
            value
                .parse::<u64>()
                .map_err(|_| err(format!("{value:?} is not a {what}")))
        };
        let v = value.to_string();
        match *col {
            "name" => r.name = v,
            "password" => r.password = Some(v),
            "totp_secret" | "secret" => r.totp_secret = Some(v),
            "display_name" => r.display_name = v,
            "email" => r.email = v,
            "phone" => r.phone = v,
            "extension" => r.extension = v,
            "device_token" => r.device_token = v,
            "language" => r.language = v,
            "pin" => r.pin = Some(v),
            "method" => r.method = Some(value.parse::<Method>().map_err(|e| err(e.to_string()))?),
            "groups" => {
                r.groups = Some(
                    value
                        .split(';')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect(),
                )
            }
            "enabled" => {
                r.enabled = Some(match value.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "1" => true,
                    "false" | "no" | "0" => false,
                    _ => return Err(err(format!("{value:?} is not true or false"))),
                })
            }
            "token_type" => {
                r.token_type = Some(value.parse::<TokenKind>().map_err(|e| err(e.to_string()))?)
            }
            "algorithm" => {
                r.algorithm = Some(
                    value
                        .parse::<TokenAlgorithm>()
                        .map_err(|e| err(e.to_string()))?,
                )
            }
            "digits" => {
                let d = num("number")?;
                r.digits = Some(u8::try_from(d).unwrap_or(u8::MAX));
            }
            "period" => r.period = Some(num("number of seconds")?),
            "counter" => r.counter = Some(num("counter value")?),
            _ => {}
        }
    }
    if r.name.is_empty() {
        return Err(RowError {
            line,
            column: Some("name".into()),
            message: "empty name".into(),
        });
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_in_any_order_and_errors_with_line_and_column() {
        let text = b"Digits,name,token_type,groups,enabled\n6,alice,hotp,vpn; staff,no\nx,bob,,,\n8,carol,totp,,maybe\n";
        let p = parse_csv(text).unwrap();
        assert_eq!(p.rows.len(), 1);
        let a = &p.rows[0];
        assert_eq!((a.line, a.name.as_str(), a.digits), (2, "alice", Some(6)));
        assert_eq!(
            a.groups.as_deref(),
            Some(&["vpn".to_string(), "staff".to_string()][..])
        );
        assert_eq!(a.enabled, Some(false));
        assert_eq!(a.token_type, Some(TokenKind::Hotp));
        let errs: Vec<_> = p.errors.iter().map(|e| e.render("u.csv")).collect();
        assert_eq!(
            errs,
            [
                "u.csv:3: column \"digits\": \"x\" is not a number",
                "u.csv:4: column \"enabled\": \"maybe\" is not true or false",
            ]
        );
    }

    #[test]
    fn header_problems_refuse_the_file() {
        let e = parse_csv(b"name,colour\nalice,red\n").unwrap_err();
        assert_eq!(e.render("u.csv"), "u.csv:1: column \"colour\": unknown column (known: name, password, totp_secret, display_name, email, phone, extension, method, device_token, language, pin, groups, enabled, token_type, algorithm, digits, period, counter, secret)");
        assert!(parse_csv(b"").is_err());
        assert!(parse_csv(b"email\nx@example.org\n").is_err());
        assert!(parse_csv(b"name,name\na,b\n").is_err());
    }
}
