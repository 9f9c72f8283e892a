//! Request parameters as OAuth defines them.
//!
//! RFC 6749 §3.1 and §3.2: parameters sent without a value are treated as
//! omitted, and request and response parameters MUST NOT be included more
//! than once. Serde's map deserializers silently keep the last duplicate, so
//! we parse into our own type that refuses them.

use super::error::OAuthError;
use std::collections::HashMap;

/// A parsed, duplicate-free parameter set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query string or
    /// a form body).
    pub fn parse(encoded: &str) -> Result<Params, OAuthError> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(encoded.as_bytes()) {
            if value.is_empty() {
                continue;
            }
            if map.insert(name.to_string(), value.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{name}` is repeated (RFC 6749 §3.1)"
                )));
            }
        }
        Ok(Params(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter `{name}`")))
    }

    /// Every parameter, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Merges a second source (for endpoints that accept GET and POST);
    /// a name present in both is a repetition.
    pub fn merge(mut self, other: Params) -> Result<Params, OAuthError> {
        for (k, v) in other.0 {
            if self.0.contains_key(&k) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{k}` is repeated (RFC 6749 §3.1)"
                )));
            }
            self.0.insert(k, v);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn params_repeated_is_rejected_and_empty_is_omitted() {
        assert!(Params::parse("a=1&a=2").is_err());
        let p = Params::parse("a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
        assert!(p.require("b").is_err());
    }
}
