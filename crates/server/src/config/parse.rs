//! From text to [`RuntimeConfig`] in two steps: [`ParsedConfig::parse`]
//! validates the text section by section without touching the disk, and
//! [`ParsedConfig::load_files`] reads the key files the sections name
//! (`super::files`). [`RuntimeConfig::load`] and [`RuntimeConfig::parse`]
//! run both.

use std::path::Path;

use super::bounds;
use super::context::{Ctx, Section};
use super::error::ConfigError;
use super::file::FileConfig;
use super::files::{self, KeyFiles};
use super::portal::raw_public_url;
use super::radius::default_server_ip;
use super::runtime::RuntimeConfig;

/// A configuration validated from its text alone: the files it names
/// (shared secrets, passwords, API keys, CA certificates) are not read yet,
/// so the secrets they hold are still empty. [`ParsedConfig::load_files`]
/// completes it.
#[derive(Debug)]
pub struct ParsedConfig {
    config: RuntimeConfig,
    files: KeyFiles,
}

impl ParsedConfig {
    /// Parses and validates configuration text; `origin` names it in errors.
    /// No file is read.
    pub fn parse(text: &str, origin: &str) -> Result<ParsedConfig, ConfigError> {
        let mut cx = Ctx::new(text, origin);
        let file: FileConfig =
            toml::from_str(text).map_err(|e| cx.error(e.span(), e.message().to_string()))?;
        bounds::check(text).map_err(|(span, reason)| cx.error(Some(span), reason))?;
        cx.portal_url = raw_public_url(&file.portal);

        // In this order: a later section may refer to an earlier one (`cx`).
        let server = file.server.validate(&mut cx)?;
        let radius = file.radius.validate(&mut cx)?;
        let otp = file.otp.validate(&mut cx)?;
        let password = file.password.validate(&mut cx)?;
        let challenge = file.challenge.validate(&mut cx)?;
        let upstreams = file.upstream.validate(&mut cx)?;
        let group_attributes = file.group_attributes.validate(&mut cx)?;
        let directory = file.directory.validate(&mut cx)?;
        let sync = file.sync.validate(&mut cx)?;
        let mail = file.mail.validate(&mut cx)?;
        let policies = file.policy.validate(&mut cx)?;
        let portal = file.portal.validate(&mut cx)?;
        cx.portal = portal.is_some();
        let clients = file.client.validate(&mut cx)?;
        let sms = file.sms.validate(&mut cx)?;
        let gateway = file.gateway.validate(&mut cx)?;
        let cluster = file.cluster.validate(&mut cx)?;
        let api = file.api.validate(&mut cx)?;
        let log = file.log.validate(&mut cx)?;
        let radsec = file.radsec.validate(&mut cx)?;
        let limits = file.limits.validate(&mut cx)?;
        let push = file.push.validate(&mut cx)?;
        let i18n = file.i18n.validate(&mut cx)?;

        let config = RuntimeConfig {
            origin: origin.to_string(),
            node_name: server.node_name,
            node_id: server.node_id,
            server_ip: server
                .server_ip
                .unwrap_or_else(|| default_server_ip(&radius.listen)),
            data_dir: server.data_dir,
            key_file: server.key_file,
            cluster_key_file: challenge.cluster_key_file,
            store_cache_bytes: server.store_cache_bytes,
            log_format: log.format,
            log_level: log.level,
            listen: radius.listen,
            duplicate_window_secs: radius.duplicate_window_secs,
            duplicate_cache_entries: radius.duplicate_cache_entries,
            workers: radius.workers,
            max_in_flight: radius.max_in_flight,
            argon2_memory_kib: password.memory_kib,
            argon2_iterations: password.iterations,
            password_cache_ttl_secs: password.cache_ttl_secs,
            password_cache_max_entries: password.cache_max_entries,
            user_cache_entries: server.user_cache_entries,
            otp_issuer: otp.issuer,
            otp_window: otp.window,
            otp_digits: otp.digits,
            hotp_look_ahead: otp.hotp_look_ahead,
            challenge_lifetime_secs: challenge.lifetime_secs,
            challenge_max_sessions: challenge.max_sessions,
            gateway: gateway.gateway,
            verdict_timeout_secs: gateway.verdict_timeout_secs,
            oob: gateway.oob,
            sms,
            cluster,
            upstreams,
            group_attributes,
            directory,
            sync,
            mail,
            policies,
            clients,
            portal,
            api,
            audit_retention_days: log.audit_retention_days,
            radsec,
            limits,
            push,
            i18n,
        };
        Ok(ParsedConfig {
            config,
            files: cx.files,
        })
    }

    /// The load step: reads the files the configuration names and checks
    /// what depends on their content. Errors name the key's file and line.
    pub fn load_files(self) -> Result<RuntimeConfig, ConfigError> {
        let ParsedConfig { mut config, files } = self;
        files::load_upstreams(files.upstream, &mut config.upstreams)?;
        files::load_directory(files.directory, &mut config.directory)?;
        files::load_mail(files.mail, &mut config.mail)?;
        files::load_gateway(files.gateway, &mut config.gateway)?;
        // Edited translation files: checked now, so a bad one stops
        // start-up (and `check-config`) with its file and line.
        if let Some(dir) = &config.i18n.dir {
            crate::i18n::Catalog::load(Some(dir))?;
        }
        Ok(config)
    }
}

impl RuntimeConfig {
    /// Reads a configuration file, validates it and reads the files it names.
    pub fn load(path: &Path) -> Result<RuntimeConfig, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: 0,
            column: 0,
            reason: format!("cannot read the file: {e}"),
        })?;
        Self::parse(&text, &origin)
    }

    /// Validates configuration text (`origin` names it in errors), then
    /// reads the files it names: [`ParsedConfig::parse`] and
    /// [`ParsedConfig::load_files`].
    pub fn parse(text: &str, origin: &str) -> Result<RuntimeConfig, ConfigError> {
        ParsedConfig::parse(text, origin)?.load_files()
    }
}
