//! `[[group_attributes]]`: RADIUS reply attributes sent to the members of a
//! group, written as dictionary text and parsed once at start-up.

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupAttributesSection {
    group: String,
    attributes: Vec<Spanned<String>>,
}

impl Section for Vec<GroupAttributesSection> {
    type Settings = Vec<(String, Vec<radmfa_radius::Attribute>)>;

    /// Parses each attribute against the dictionary.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Self::Settings, ConfigError> {
        let mut group_attributes = Vec::new();
        for g in self {
            let mut attrs = Vec::new();
            for a in &g.attributes {
                attrs.push(
                    crate::dictionary::parse_attribute(a.get_ref()).map_err(|e| {
                        cx.at(a.span(), format!("group_attributes {:?}: {e}", g.group))
                    })?,
                );
            }
            group_attributes.push((g.group, attrs));
        }
        Ok(group_attributes)
    }
}
