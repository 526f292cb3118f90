//! The configuration file as written: one field per section, each parsed by
//! serde with `deny_unknown_fields` and named defaults. Validation is the
//! sections' own ([`super::context::Section`]).

use serde::Deserialize;
use toml::Spanned;

use super::api::ApiSection;
use super::challenge::ChallengeSection;
use super::client::ClientSection;
use super::cluster::ClusterSection;
use super::directory::DirectorySection;
use super::gateway::GatewaySection;
use super::group_attributes::GroupAttributesSection;
use super::i18n::I18nSection;
use super::limits::LimitsSection;
use super::log::LogSection;
use super::mail::MailSection;
use super::otp::OtpSection;
use super::password::PasswordSection;
use super::policy::PolicySection;
use super::portal::PortalSection;
use super::push::PushSection;
use super::radius::RadiusSection;
use super::radsec::RadsecSection;
use super::server::ServerSection;
use super::sms::SmsSection;
use super::sync::SyncSection;
use super::upstream::UpstreamSection;

/// The configuration file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub(super) server: ServerSection,
    #[serde(default)]
    pub(super) log: LogSection,
    #[serde(default)]
    pub(super) radius: RadiusSection,
    #[serde(default)]
    pub(super) password: PasswordSection,
    #[serde(default)]
    pub(super) otp: OtpSection,
    #[serde(default)]
    pub(super) challenge: ChallengeSection,
    #[serde(default)]
    pub(super) gateway: Option<Spanned<GatewaySection>>,
    #[serde(default)]
    pub(super) sms: SmsSection,
    #[serde(default)]
    pub(super) cluster: Option<Spanned<ClusterSection>>,
    #[serde(default)]
    pub(super) upstream: Vec<UpstreamSection>,
    #[serde(default)]
    pub(super) directory: Option<Spanned<DirectorySection>>,
    #[serde(default)]
    pub(super) sync: Vec<SyncSection>,
    #[serde(default)]
    pub(super) mail: Option<Spanned<MailSection>>,
    #[serde(default)]
    pub(super) group_attributes: Vec<GroupAttributesSection>,
    #[serde(default)]
    pub(super) policy: Vec<PolicySection>,
    #[serde(default)]
    pub(super) client: Vec<ClientSection>,
    #[serde(default)]
    pub(super) portal: Option<Spanned<PortalSection>>,
    pub(super) api: Option<Spanned<ApiSection>>,
    pub(super) radsec: Option<Spanned<RadsecSection>>,
    #[serde(default)]
    pub(super) limits: LimitsSection,
    #[serde(default)]
    pub(super) push: PushSection,
    #[serde(default)]
    pub(super) i18n: I18nSection,
}
