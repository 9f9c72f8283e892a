//! Authenticator names by AAGUID, for people: the security-info page,
//! Graph's `fido2AuthenticationMethod.model`, the admin console and refusal
//! messages. The shipped list is `assets/aaguids.json` (its source and version
//! are in `assets/README.md`); `[passkeys] authenticator_names` adds or
//! overrides names in the same format. Names are never a trust decision.

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

const SHIPPED: &str = include_str!("../../assets/aaguids.json");

#[derive(Deserialize)]
struct Entry {
    name: String,
}

/// AAGUID → display name.
#[derive(Debug, Clone, Default)]
pub struct Authenticators {
    names: Arc<HashMap<Uuid, String>>,
}

impl Authenticators {
    /// The shipped list plus `extra` (the content of an operator's file, in
    /// the shipped format), whose names win. The error says what is wrong
    /// with `extra`.
    pub fn load(extra: Option<&str>) -> Result<Self, String> {
        let mut names = parse(SHIPPED).map_err(|e| format!("shipped assets/aaguids.json: {e}"))?;
        if let Some(extra) = extra {
            names.extend(parse(extra)?);
        }
        Ok(Self {
            names: Arc::new(names),
        })
    }

    /// The name of authenticator model `aaguid`, if known.
    pub fn name(&self, aaguid: Uuid) -> Option<&str> {
        self.names.get(&aaguid).map(String::as_str)
    }

    /// How many models have a name.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn parse(text: &str) -> Result<HashMap<Uuid, String>, String> {
    let raw: HashMap<String, Entry> =
        serde_json::from_str(text).map_err(|e| format!("not an AAGUID name list: {e}"))?;
    raw.into_iter()
        .map(|(k, v)| {
            let id = Uuid::parse_str(&k).map_err(|_| format!("{k:?} is not an AAGUID"))?;
            let name = v.name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(format!("the name of {k} must have 1 to 100 characters"));
            }
            Ok((id, name.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_shipped_list_names_providers_and_an_extra_file_overrides_it() {
        let shipped = Authenticators::load(None).unwrap();
        assert_eq!(shipped.len(), 52);
        let hello = Uuid::parse_str("08987058-cadc-4b81-b6e1-30de50dcbe96").unwrap();
        assert_eq!(shipped.name(hello), Some("Windows Hello"));
        assert_eq!(shipped.name(Uuid::nil()), None);
        let extra = r#"{"08987058-CADC-4b81-b6e1-30de50dcbe96": {"name": "Hello (ours)"},
                        "cb69481e-8ff7-4039-93ec-0a2729a154a8": {"name": "YubiKey 5"}}"#;
        let both = Authenticators::load(Some(extra)).unwrap();
        assert_eq!(both.name(hello), Some("Hello (ours)"));
        assert_eq!(both.len(), 53);
        assert!(Authenticators::load(Some(r#"{"x": {"name": "y"}}"#)).is_err());
        assert!(
            Authenticators::load(Some(
                r#"{"08987058-cadc-4b81-b6e1-30de50dcbe96": {"name": ""}}"#
            ))
            .is_err()
        );
    }
}
