//! Scopes (RFC 6749 §3.3): a space-delimited, order-free set.

use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parses `scope`; `None` if a token has characters outside RFC 6749's
    /// `scope-token` grammar (%x21 / %x23-5B / %x5D-7E).
    pub fn parse(s: &str) -> Option<Scope> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return None;
            }
            set.insert(token.to_owned());
        }
        Some(Scope(set))
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Scope {
        Scope(tokens.into_iter().map(str::to_owned).collect())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
            first = false;
        }
        Ok(())
    }
}
