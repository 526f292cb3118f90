//! The load step: every file the configuration names for its content (shared
//! secrets, passwords, API keys, CA certificates) is read here and nowhere
//! else, after the text has been validated without touching the disk. What
//! needs the content to be checked (a secret's length, a CA that must parse,
//! the mailer's templates) is checked here too, and reported at the key that
//! names the file. Certificates and keys of the listeners (API, portal,
//! RadSec, peer link) are paths the servers load when they bind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Place};
use crate::secret::SharedSecret;
use crate::upstream::UpstreamConfig;

/// Shortest shared secret accepted for a RADIUS client or upstream (the
/// admin CLI and API ask the same). Here because the load step checks the
/// secrets read from `secret_file` too.
pub const MIN_SECRET_LEN: usize = 8;

/// The files named by the sections, in the order the sections come.
#[derive(Debug, Default)]
pub(crate) struct KeyFiles {
    /// `[[upstream]] secret_file`: upstream name, file, place of the name.
    pub upstream: Vec<(String, PathBuf, Place)>,
    /// `[directory]`, when configured.
    pub directory: Option<DirectoryFiles>,
    /// `[mail]`, when configured.
    pub mail: Option<MailFiles>,
    /// `[gateway]`, when configured.
    pub gateway: Option<GatewayFiles>,
}

/// The files of `[directory]`; `place` is the section's.
#[derive(Debug)]
pub(crate) struct DirectoryFiles {
    pub bind_password: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub place: Place,
}

/// The files of `[mail]`; `place` is the section's.
#[derive(Debug)]
pub(crate) struct MailFiles {
    pub password: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub place: Place,
}

/// The files of `[gateway]`; `place` is the section's.
#[derive(Debug)]
pub(crate) struct GatewayFiles {
    pub api_key: PathBuf,
    pub ca: Option<PathBuf>,
    pub place: Place,
}

/// A file's text without its trailing line break.
fn read_line_end(path: &Path, what: &str, place: &Place) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
        .map_err(|e| place.error(format!("cannot read {what} {}: {e}", path.display())))
}

/// A file's text without surrounding white space.
fn read_trimmed(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path).map(|s| s.trim().to_string())
}

/// Reads the shared secrets of the upstreams that name a `secret_file`.
pub(crate) fn load_upstreams(
    files: Vec<(String, PathBuf, Place)>,
    upstreams: &mut HashMap<String, UpstreamConfig>,
) -> Result<(), ConfigError> {
    for (name, path, place) in files {
        let secret = read_trimmed(&path).map_err(|e| {
            place.error(format!(
                "upstream {name:?}: cannot read secret_file {}: {e}",
                path.display()
            ))
        })?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(place.error(format!(
                "upstream {name:?}: the shared secret is too short: use at least {MIN_SECRET_LEN} characters \
                 (set the same longer secret on the upstream server)"
            )));
        }
        if let Some(u) = upstreams.get_mut(&name) {
            u.secret = SharedSecret::new(secret.into_bytes());
        }
    }
    Ok(())
}

/// Reads the bind password and CA of `[directory]`, then builds the client
/// (no I/O) so a bad setting stops start-up here.
pub(crate) fn load_directory(
    files: Option<DirectoryFiles>,
    directory: &mut Option<radmfa_directory::DirectoryConfig>,
) -> Result<(), ConfigError> {
    let (Some(files), Some(dc)) = (files, directory.as_mut()) else {
        return Ok(());
    };
    let place = &files.place;
    if let Some(p) = &files.bind_password {
        dc.bind_password = radmfa_directory::Secret::new(read_line_end(
            p,
            "[directory] bind_password_file",
            place,
        )?);
    }
    if let Some(ca) = &files.ca {
        dc.ca_pem = Some(read_line_end(ca, "[directory] ca_file", place)?);
    }
    let fail = |reason: String| place.error(format!("[directory]: {reason}"));
    let built = radmfa_directory::Directory::new(dc.clone()).map_err(|e| fail(e.to_string()))?;
    if let Some(url) = built.cleartext_servers().first() {
        return Err(fail(format!(
            "server {url:?} without TLS would carry the service account's and the users' passwords in clear: set tls = \"starttls\" or \"ldaps\" (plain LDAP is only allowed to a server on this host)"
        )));
    }
    Ok(())
}

/// Reads the SMTP password and CA of `[mail]`, then builds the mailer (which
/// reads the template overrides) so a bad setting stops start-up here.
pub(crate) fn load_mail(
    files: Option<MailFiles>,
    mail: &mut Option<crate::mail::MailConfig>,
) -> Result<(), ConfigError> {
    let (Some(files), Some(mc)) = (files, mail.as_mut()) else {
        return Ok(());
    };
    let place = &files.place;
    if let Some(p) = &files.password {
        mc.password = Some(crate::mail::MailSecret::new(read_line_end(
            p,
            "[mail] password_file",
            place,
        )?));
    }
    if let Some(p) = &files.ca {
        mc.ca_pem = Some(read_line_end(p, "[mail] ca_file", place)?);
    }
    crate::mail::Mailer::new(mc.clone()).map_err(|e| place.error(format!("[mail]: {e}")))?;
    Ok(())
}

/// Reads the API key (or Twilio auth token) and CA of `[gateway]`.
pub(crate) fn load_gateway(
    files: Option<GatewayFiles>,
    gateway: &mut Option<radmfa_gateway::GatewayConfig>,
) -> Result<(), ConfigError> {
    let (Some(files), Some(gc)) = (files, gateway.as_mut()) else {
        return Ok(());
    };
    let fail = |reason: String| files.place.error(format!("[gateway]: {reason}"));
    let read = |p: &Path, what: &str| {
        read_trimmed(p).map_err(|e| fail(format!("cannot read {what} {}: {e}", p.display())))
    };
    let key = read(&files.api_key, "api_key_file")?;
    if key.is_empty() {
        return Err(fail(
            "api_key_file is required (the API key or Twilio auth token)".into(),
        ));
    }
    match &mut gc.provider {
        radmfa_gateway::Provider::Radmfa { api_key, .. } => {
            *api_key = radmfa_gateway::Secret::new(key)
        }
        radmfa_gateway::Provider::Twilio { auth_token, .. } => {
            *auth_token = radmfa_gateway::Secret::new(key)
        }
    }
    if let Some(ca) = &files.ca {
        gc.extra_ca_pem = Some(read(ca, "ca_file")?);
    }
    Ok(())
}
