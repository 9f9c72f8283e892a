//! Conditional access (DESIGN §5): Graph-format policies, named locations
//! and authentication strengths, a pure evaluator, and What-If.
//!
//! - [`model`]: the Graph JSON, loaded unchanged from Entra exports.
//! - [`strengths`]: built-in and custom authentication strengths, and how
//!   Gatepass's methods (password, passkey, TAP) satisfy them.
//! - [`evaluate`]: `evaluate(policies, strengths, locations, context, now)`
//!   → [`Decision`] — allow, step up to a strength, or block — with a
//!   result per policy. No I/O, no clock: the caller passes `now`.
//! - [`what_if`]: the evaluate API / `gatepass ca what-if` on top of it.
//!
//! The files the CLI reads hold Graph REST JSON: one object, an array, or a
//! collection `{"value": [...]}` as `GET …/policies` returns it.

pub mod evaluate;
pub mod model;
pub mod strengths;
pub mod what_if;

pub use evaluate::{
    AnalysisReason, AppliedConditionalAccessPolicy, BlockedBy, ClientAppType, Decision,
    DevicePlatform, Mode, Outcome, PolicyResult, RequiredControl, Requirement, RiskLevel,
    SignInContext, StrengthRef, Target, UnmetRequirement, UserAction, UserScope, Verdict, evaluate,
    passkey_meets, platform_from_user_agent, step_up_methods, step_up_methods_with, user_scope,
};
pub use model::{
    AuthenticationStrengthPolicy, ConditionalAccessUsers, InvalidField, NamedLocation, Policy,
    PolicyState,
};
pub use strengths::{
    Combination, MethodMode, MethodNameError, MethodSet, SessionMethods, StrengthSet, acr_strength,
};
pub use what_if::{DirectoryFacts, WhatIfRequest, WhatIfResponse, render_table, what_if};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A file that is not valid JSON, or an object that is not what Graph
/// writes; `path` locates the property (`value[2].conditions.users`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LoadError {
    pub path: String,
    pub message: String,
}

impl LoadError {
    pub fn code(&self) -> &'static str {
        "conditional_access.invalid_file"
    }
}

/// Reads one object, an array, or a Graph collection `{"value": [...]}`.
fn load<T: DeserializeOwned>(json: &str) -> Result<Vec<T>, LoadError> {
    let document: Value = serde_json::from_str(json).map_err(|e| LoadError {
        path: ".".to_owned(),
        message: format!("invalid JSON: {e}"),
    })?;
    let (prefix, items) = match document {
        Value::Array(items) => ("", items),
        Value::Object(mut map) if matches!(map.get("value"), Some(Value::Array(_))) => {
            match map.remove("value") {
                Some(Value::Array(items)) => ("value", items),
                _ => ("value", Vec::new()),
            }
        }
        Value::Object(map) => return Ok(vec![parse_one(Value::Object(map), "")?]),
        other => {
            return Err(LoadError {
                path: ".".to_owned(),
                message: format!(
                    "expected an object, an array or {{\"value\": [...]}}, found {}",
                    kind(&other)
                ),
            });
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| parse_one(item, &format!("{prefix}[{i}]")))
        .collect()
}

fn parse_one<T: DeserializeOwned>(item: Value, at: &str) -> Result<T, LoadError> {
    serde_path_to_error::deserialize(item).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (at.is_empty(), inner.as_str()) {
            (true, ".") => ".".to_owned(),
            (true, p) => p.to_owned(),
            (false, ".") => at.to_owned(),
            (false, p) => format!("{at}.{p}"),
        };
        LoadError {
            path,
            message: e.into_inner().to_string(),
        }
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Conditional access policies from a file or request body.
pub fn load_policies(json: &str) -> Result<Vec<Policy>, LoadError> {
    load(json)
}

/// Authentication strengths; build a [`StrengthSet`] with
/// [`StrengthSet::with_custom`] (built-ins in the file are skipped there).
pub fn load_strengths(json: &str) -> Result<Vec<AuthenticationStrengthPolicy>, LoadError> {
    load(json)
}

/// Named locations.
pub fn load_locations(json: &str) -> Result<Vec<NamedLocation>, LoadError> {
    load(json)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn load_accepts_object_array_and_collection() {
        let one = r#"{"id":"p1","displayName":"One","state":"enabled","conditions":{}}"#;
        assert_eq!(load_policies(one).unwrap().len(), 1);
        assert_eq!(load_policies(&format!("[{one},{one}]")).unwrap().len(), 2);
        let collection = format!(
            r#"{{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#x","value":[{one}]}}"#
        );
        assert_eq!(load_policies(&collection).unwrap()[0].id, "p1");
        assert!(load_policies("[]").unwrap().is_empty());
    }

    #[test]
    fn load_errors_name_the_property() {
        let err = load_policies(
            r#"{"value":[{"id":"a","state":"enabled"},{"id":"b","state":"sometimes"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "value[1].state", "{err}");
        let err = load_policies(r#"[{"id":"a"}]"#).unwrap_err();
        assert_eq!(err.path, "[0]", "{err}");
        assert!(err.message.contains("state"), "{err}");
        let err = load_locations(r#"{"id":"x","ipRanges":[{"cidrAddress":7}]}"#).unwrap_err();
        assert_eq!(err.path, "ipRanges[0].cidrAddress", "{err}");
        let err = load_strengths("\"just a string\"").unwrap_err();
        assert_eq!(err.path, ".");
        let err = load_strengths("{nope").unwrap_err();
        assert!(err.message.starts_with("invalid JSON"), "{err}");
    }
}
