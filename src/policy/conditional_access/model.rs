//! Graph's JSON for conditional access: `conditionalAccessPolicy`,
//! `namedLocation` (`ipNamedLocation`, `countryNamedLocation`) and
//! `authenticationStrengthPolicy`, deserialized as Graph writes them.
//!
//! Policies exported from Entra ID must load unchanged, so every object
//! accepts `null` anywhere Graph may write it and keeps the properties
//! Gatepass does not model in `extra` (serialized back as they came). A kept
//! property that *does something* (a device filter, terms of use, a session
//! control other than `signInFrequency`, …) is reported by
//! [`Policy::unsupported_fields`]; the evaluator then fails closed — the
//! policy still applies, and the result says why.
//!
//! Lists Graph may send as `null` are `Option<Vec<_>>`; read them through
//! [`list`] so that `null`, absent and `[]` all mean "none".
//!
//! Reference: <https://learn.microsoft.com/graph/api/resources/conditionalaccesspolicy>.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// `null` or absent → the type's default (for required-ish strings).
fn null_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// The entries of an optional Graph list (`null`/absent = empty).
pub fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

/// Whether a kept property is in use: not `null`, `false`, `""`, `[]`, or
/// an object whose every property is unused. OData annotations (`@…`) never
/// count. Entra exports write every unused condition as `null` or `[]`.
pub fn is_set(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Bool(true) | Value::Number(_) => true,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_set),
        Value::Object(o) => o.iter().any(|(k, v)| !k.starts_with('@') && is_set(v)),
    }
}

/// The kept properties in use, skipping OData annotations (`@odata.type`,
/// `x@odata.context`).
fn set_keys(extra: &Map<String, Value>) -> impl Iterator<Item = &str> {
    extra
        .iter()
        .filter(|(k, v)| !k.contains('@') && is_set(v))
        .map(|(k, _)| k.as_str())
}

/// Whether any kept property is in use.
pub fn extra_in_use(extra: &Map<String, Value>) -> bool {
    set_keys(extra).next().is_some()
}

/// `state` of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyState {
    Enabled,
    Disabled,
    /// Report-only: evaluated and logged, never enforced.
    EnabledForReportingButNotEnforced,
}

impl PolicyState {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyState::Enabled => "enabled",
            PolicyState::Disabled => "disabled",
            PolicyState::EnabledForReportingButNotEnforced => "enabledForReportingButNotEnforced",
        }
    }
}

/// `conditionalAccessPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub display_name: String,
    pub state: PolicyState,
    #[serde(default, deserialize_with = "null_default")]
    pub conditions: ConditionSet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_controls: Option<GrantControls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_controls: Option<SessionControls>,
    /// `createdDateTime`, `templateId`, `description`, … kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `conditionalAccessConditionSet`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConditionSet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<ConditionalAccessUsers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applications: Option<ConditionalAccessApplications>,
    /// `all`, `browser`, `mobileAppsAndDesktopClients`, `exchangeActiveSync`,
    /// `easSupported`, `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_app_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locations: Option<ConditionalAccessLocations>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platforms: Option<ConditionalAccessPlatforms>,
    /// `low`, `medium`, `high`, `hidden`, `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in_risk_levels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_risk_levels: Option<Vec<String>>,
    /// `devices`, `clientApplications`, `servicePrincipalRiskLevels`,
    /// `insiderRiskLevels`, `authenticationFlows`, `times`, … (unsupported).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `conditionalAccessUsers`. `includeUsers` also takes `All`, `None` and
/// `GuestsOrExternalUsers`; roles are role template ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConditionalAccessUsers {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_users: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_users: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_groups: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_groups: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_roles: Option<Vec<String>>,
    /// Matched as "any guest" (Gatepass has no guest kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_guests_or_external_users: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_guests_or_external_users: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ConditionalAccessUsers {
    /// Whether telling if a user is in this condition needs their groups.
    pub fn names_groups(&self) -> bool {
        !(list(&self.include_groups).is_empty() && list(&self.exclude_groups).is_empty())
    }

    /// Whether telling if a user is in this condition needs their roles.
    pub fn names_roles(&self) -> bool {
        !(list(&self.include_roles).is_empty() && list(&self.exclude_roles).is_empty())
    }
}

/// `conditionalAccessApplications`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConditionalAccessApplications {
    /// Client ids, `All`, `None`, `Office365`, `MicrosoftAdminPortals`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_applications: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_applications: Option<Vec<String>>,
    /// `urn:user:registersecurityinfo`, `urn:user:registerdevice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_user_actions: Option<Vec<String>>,
    /// `c1` … `c99`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_authentication_context_class_references: Option<Vec<String>>,
    /// `applicationFilter`, `networkAccess`, `globalSecureAccess` (unsupported).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `conditionalAccessLocations`: named-location ids, `All`, `AllTrusted`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConditionalAccessLocations {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_locations: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_locations: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `conditionalAccessPlatforms`: `all`, `android`, `iOS`, `windows`,
/// `windowsPhone`, `macOS`, `linux`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConditionalAccessPlatforms {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_platforms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_platforms: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `conditionalAccessGrantControls`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrantControls {
    /// `AND` or `OR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// `block`, `mfa`, `compliantDevice`, `domainJoinedDevice`,
    /// `approvedApplication`, `compliantApplication`, `passwordChange`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub built_in_controls: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_authentication_factors: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terms_of_use: Option<Vec<String>>,
    /// Graph writes the whole strength here; a request may give only `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_strength: Option<AuthenticationStrengthPolicy>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl GrantControls {
    /// `OR` (any control) or, by default and for anything else, `AND`:
    /// the stricter reading of an unknown operator.
    pub fn is_or(&self) -> bool {
        self.operator
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("OR"))
    }
}

/// `conditionalAccessSessionControls`. Only `signInFrequency` is enforced;
/// the others are kept and reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionControls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in_frequency: Option<SignInFrequency>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `signInFrequencySessionControl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SignInFrequency {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// `hours` or `days`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub frequency_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<bool>,
    /// `timeBased` (default) or `everyTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_interval: Option<String>,
    /// `primaryAndSecondaryAuthentication` or `secondaryAuthentication`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_type: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SignInFrequency {
    /// Entra treats a present control without `isEnabled` as enabled.
    pub fn enabled(&self) -> bool {
        self.is_enabled != Some(false)
    }

    pub fn is_every_time(&self) -> bool {
        self.frequency_interval
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("everyTime"))
    }

    /// The period for `timeBased`; `None` when value or type is missing or
    /// invalid (the evaluator then reads it as `everyTime`: fail closed).
    pub fn period(&self) -> Option<time::Duration> {
        let value = self.value.filter(|v| *v > 0)?;
        match self.frequency_type.as_deref()? {
            t if t.eq_ignore_ascii_case("hours") => Some(time::Duration::hours(value)),
            t if t.eq_ignore_ascii_case("days") => Some(time::Duration::days(value)),
            _ => None,
        }
    }
}

/// `authenticationStrengthPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationStrengthPolicy {
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// Empty when a policy refers to the strength by `id` alone.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `builtIn` or `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<String>,
    /// `none` or `mfa`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements_satisfied: Option<String>,
    /// Comma-joined `authenticationMethodModes`, e.g. `"password,sms"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_combinations: Option<Vec<String>>,
    /// `createdDateTime`, `combinationConfigurations`, … kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `namedLocation`: `#microsoft.graph.ipNamedLocation` (supported) or
/// `#microsoft.graph.countryNamedLocation` (kept, not evaluated: Gatepass
/// has no IP-to-country data, so a policy that uses one fails closed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedLocation {
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_ranges: Option<Vec<IpRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_trusted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub countries_and_regions: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationKind {
    Ip,
    Country,
    Unknown,
}

impl NamedLocation {
    pub fn kind(&self) -> LocationKind {
        match self.odata_type.as_deref() {
            Some(t) if t.ends_with("ipNamedLocation") => LocationKind::Ip,
            Some(t) if t.ends_with("countryNamedLocation") => LocationKind::Country,
            Some(_) => LocationKind::Unknown,
            None if self.ip_ranges.is_some() => LocationKind::Ip,
            None if self.countries_and_regions.is_some() => LocationKind::Country,
            None => LocationKind::Unknown,
        }
    }

    pub fn trusted(&self) -> bool {
        self.is_trusted == Some(true)
    }

    /// Whether `ip` is in one of the location's ranges (IP locations only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.kind() == LocationKind::Ip
            && self
                .ip_ranges
                .iter()
                .flatten()
                .any(|r| r.cidr.is_some_and(|c| c.contains(ip)))
    }

    /// Checks what Graph requires; the error names the property.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.display_name.trim().is_empty() {
            return Err(InvalidField::new("displayName", "is required"));
        }
        match self.kind() {
            LocationKind::Ip => {
                let ranges = self.ip_ranges.as_deref().unwrap_or(&[]);
                if ranges.is_empty() {
                    return Err(InvalidField::new("ipRanges", "needs at least one range"));
                }
                for (i, r) in ranges.iter().enumerate() {
                    if r.cidr.is_none() {
                        return Err(InvalidField::new(
                            format!("ipRanges[{i}].cidrAddress"),
                            format!("'{}' is not an IPv4 or IPv6 CIDR range", r.cidr_address),
                        ));
                    }
                }
                Ok(())
            }
            LocationKind::Country => {
                if list(&self.countries_and_regions).is_empty() {
                    return Err(InvalidField::new(
                        "countriesAndRegions",
                        "needs at least one country",
                    ));
                }
                Ok(())
            }
            LocationKind::Unknown => Err(InvalidField::new(
                "@odata.type",
                "must be #microsoft.graph.ipNamedLocation or #microsoft.graph.countryNamedLocation",
            )),
        }
    }
}

/// `ipRange` (`#microsoft.graph.iPv4CidrRange` / `iPv6CidrRange`). The
/// range is parsed once, when the JSON is read, not on every sign-in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "IpRangeJson", into = "IpRangeJson")]
pub struct IpRange {
    odata_type: Option<String>,
    cidr_address: String,
    extra: Map<String, Value>,
    cidr: Option<Cidr>,
}

impl IpRange {
    pub fn new(cidr_address: impl Into<String>) -> IpRange {
        IpRange::from(IpRangeJson {
            cidr_address: cidr_address.into(),
            ..IpRangeJson::default()
        })
    }

    pub fn cidr_address(&self) -> &str {
        &self.cidr_address
    }

    /// The parsed range; `None` when `cidrAddress` is not a CIDR range.
    pub fn cidr(&self) -> Option<Cidr> {
        self.cidr
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpRangeJson {
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    odata_type: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    cidr_address: String,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl From<IpRangeJson> for IpRange {
    fn from(j: IpRangeJson) -> IpRange {
        let cidr = Cidr::parse(&j.cidr_address);
        IpRange {
            odata_type: j.odata_type,
            cidr_address: j.cidr_address,
            extra: j.extra,
            cidr,
        }
    }
}

impl From<IpRange> for IpRangeJson {
    fn from(r: IpRange) -> IpRangeJson {
        IpRangeJson {
            odata_type: r.odata_type,
            cidr_address: r.cidr_address,
            extra: r.extra,
        }
    }
}

/// An IPv4 or IPv6 CIDR range. A bare address is a single-host range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr {
            network: addr,
            prefix,
        })
    }

    /// The first and the last address of the range.
    pub fn bounds(&self) -> (IpAddr, IpAddr) {
        match self.network {
            IpAddr::V4(net) => {
                let host = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                let first = u32::from(net) & !host;
                (IpAddr::V4(first.into()), IpAddr::V4((first | host).into()))
            }
            IpAddr::V6(net) => {
                let host = u128::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                let first = u128::from(net) & !host;
                (IpAddr::V6(first.into()), IpAddr::V6((first | host).into()))
            }
        }
    }

    /// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as a dual-stack
    /// listener reports IPv4 clients) are compared as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A property that is missing, malformed or refers to nothing; `field` is
/// its Graph path (`grantControls.authenticationStrength.id`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: String,
    pub message: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> InvalidField {
        InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Stable code for the Graph error body.
    pub fn code(&self) -> &'static str {
        "conditional_access.invalid_field"
    }

    /// The same error, its field prefixed by where the checked object sits.
    #[must_use]
    pub fn within(self, prefix: &str) -> InvalidField {
        let field = if self.field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.field)
        };
        InvalidField { field, ..self }
    }
}

pub const USER_ACTION_REGISTER_SECURITY_INFO: &str = "urn:user:registersecurityinfo";
pub const USER_ACTION_REGISTER_DEVICE: &str = "urn:user:registerdevice";

const BUILT_IN_CONTROLS: [&str; 7] = [
    "block",
    "mfa",
    "compliantDevice",
    "domainJoinedDevice",
    "approvedApplication",
    "compliantApplication",
    "passwordChange",
];
const CLIENT_APP_TYPES: [&str; 6] = [
    "all",
    "browser",
    "mobileAppsAndDesktopClients",
    "exchangeActiveSync",
    "easSupported",
    "other",
];
const PLATFORMS: [&str; 7] = [
    "all",
    "android",
    "iOS",
    "windows",
    "windowsPhone",
    "macOS",
    "linux",
];
const RISK_LEVELS: [&str; 5] = ["low", "medium", "high", "hidden", "none"];

fn check_values(
    field: &str,
    values: &Option<Vec<String>>,
    allowed: &[&str],
) -> Result<(), InvalidField> {
    for v in list(values) {
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) {
            return Err(InvalidField::new(
                field,
                format!("'{v}' is not one of {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// `c1` … `c99`.
pub fn is_authentication_context(value: &str) -> bool {
    value
        .strip_prefix('c')
        .and_then(|n| {
            (!n.starts_with('0'))
                .then(|| n.parse::<u8>().ok())
                .flatten()
        })
        .is_some_and(|n| (1..=99).contains(&n))
}

impl Policy {
    /// The properties this policy uses that Gatepass does not evaluate, as
    /// Graph paths. Such a policy still applies (fail closed).
    pub fn unsupported_fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        let c = &self.conditions;
        out.extend(set_keys(&c.extra).map(|k| format!("conditions.{k}")));
        if let Some(u) = &c.users {
            out.extend(set_keys(&u.extra).map(|k| format!("conditions.users.{k}")));
        }
        if let Some(a) = &c.applications {
            out.extend(set_keys(&a.extra).map(|k| format!("conditions.applications.{k}")));
        }
        if let Some(l) = &c.locations {
            out.extend(set_keys(&l.extra).map(|k| format!("conditions.locations.{k}")));
        }
        if let Some(p) = &c.platforms {
            out.extend(set_keys(&p.extra).map(|k| format!("conditions.platforms.{k}")));
        }
        if let Some(g) = &self.grant_controls {
            for control in list(&g.built_in_controls) {
                if !matches!(
                    control.as_str(),
                    "block" | "mfa" | "compliantDevice" | "domainJoinedDevice"
                ) {
                    out.push(format!("grantControls.builtInControls.{control}"));
                }
            }
            if !list(&g.terms_of_use).is_empty() {
                out.push("grantControls.termsOfUse".to_owned());
            }
            if !list(&g.custom_authentication_factors).is_empty() {
                out.push("grantControls.customAuthenticationFactors".to_owned());
            }
            out.extend(set_keys(&g.extra).map(|k| format!("grantControls.{k}")));
        }
        if let Some(s) = &self.session_controls {
            out.extend(set_keys(&s.extra).map(|k| format!("sessionControls.{k}")));
            if let Some(f) = &s.sign_in_frequency {
                out.extend(
                    set_keys(&f.extra).map(|k| format!("sessionControls.signInFrequency.{k}")),
                );
            }
        }
        out
    }

    /// Checks a policy the way Graph does on create/update: required
    /// properties, known enumeration values, and that every referenced
    /// strength and named location exists. The error names the property.
    pub fn validate(
        &self,
        strengths: &super::strengths::StrengthSet,
        locations: &[NamedLocation],
    ) -> Result<(), InvalidField> {
        if self.display_name.trim().is_empty() {
            return Err(InvalidField::new("displayName", "is required"));
        }
        let c = &self.conditions;
        let users = c.users.as_ref();
        if users.is_none() && !c.extra.get("clientApplications").is_some_and(is_set) {
            return Err(InvalidField::new("conditions.users", "is required"));
        }
        if let Some(users) = users {
            for (field, ids) in [
                ("conditions.users.includeRoles", &users.include_roles),
                ("conditions.users.excludeRoles", &users.exclude_roles),
            ] {
                if let Some(bad) = list(ids)
                    .iter()
                    .find(|id| uuid::Uuid::parse_str(id).is_err())
                {
                    return Err(InvalidField::new(
                        field,
                        format!("'{bad}' is not a role template id (a GUID)"),
                    ));
                }
            }
        }
        let Some(apps) = &c.applications else {
            return Err(InvalidField::new("conditions.applications", "is required"));
        };
        if list(&apps.include_applications).is_empty()
            && list(&apps.include_user_actions).is_empty()
            && list(&apps.include_authentication_context_class_references).is_empty()
        {
            return Err(InvalidField::new(
                "conditions.applications",
                "needs includeApplications, includeUserActions or includeAuthenticationContextClassReferences",
            ));
        }
        check_values(
            "conditions.applications.includeUserActions",
            &apps.include_user_actions,
            &[
                USER_ACTION_REGISTER_SECURITY_INFO,
                USER_ACTION_REGISTER_DEVICE,
            ],
        )?;
        for v in list(&apps.include_authentication_context_class_references) {
            if !is_authentication_context(v) {
                return Err(InvalidField::new(
                    "conditions.applications.includeAuthenticationContextClassReferences",
                    format!("'{v}' is not an authentication context (c1 … c99)"),
                ));
            }
        }
        check_values(
            "conditions.clientAppTypes",
            &c.client_app_types,
            &CLIENT_APP_TYPES,
        )?;
        if let Some(p) = &c.platforms {
            check_values(
                "conditions.platforms.includePlatforms",
                &p.include_platforms,
                &PLATFORMS,
            )?;
            check_values(
                "conditions.platforms.excludePlatforms",
                &p.exclude_platforms,
                &PLATFORMS,
            )?;
        }
        check_values(
            "conditions.signInRiskLevels",
            &c.sign_in_risk_levels,
            &RISK_LEVELS,
        )?;
        check_values(
            "conditions.userRiskLevels",
            &c.user_risk_levels,
            &RISK_LEVELS,
        )?;
        if let Some(l) = &c.locations {
            for (field, ids, specials) in [
                (
                    "conditions.locations.includeLocations",
                    &l.include_locations,
                    &["All", "AllTrusted"][..],
                ),
                (
                    "conditions.locations.excludeLocations",
                    &l.exclude_locations,
                    &["AllTrusted"][..],
                ),
            ] {
                for id in list(ids) {
                    let known = specials.iter().any(|s| s.eq_ignore_ascii_case(id))
                        || locations.iter().any(|n| n.id.eq_ignore_ascii_case(id));
                    if !known {
                        return Err(InvalidField::new(
                            field,
                            format!("no named location has id '{id}'"),
                        ));
                    }
                }
            }
        }
        if let Some(g) = &self.grant_controls {
            if let Some(op) = &g.operator {
                if !op.eq_ignore_ascii_case("AND") && !op.eq_ignore_ascii_case("OR") {
                    return Err(InvalidField::new(
                        "grantControls.operator",
                        "must be AND or OR",
                    ));
                }
            }
            check_values(
                "grantControls.builtInControls",
                &g.built_in_controls,
                &BUILT_IN_CONTROLS,
            )?;
            let controls = list(&g.built_in_controls);
            let has = |name: &str| controls.iter().any(|c| c.eq_ignore_ascii_case(name));
            if has("block") && (controls.len() > 1 || g.authentication_strength.is_some()) {
                return Err(InvalidField::new(
                    "grantControls.builtInControls",
                    "block cannot be combined with other controls",
                ));
            }
            if let Some(strength) = &g.authentication_strength {
                if has("mfa") {
                    return Err(InvalidField::new(
                        "grantControls.authenticationStrength",
                        "cannot be combined with the mfa control; use the Multifactor authentication strength",
                    ));
                }
                if strengths.get(&strength.id).is_none() {
                    return Err(InvalidField::new(
                        "grantControls.authenticationStrength.id",
                        format!("no authentication strength has id '{}'", strength.id),
                    ));
                }
            }
        }
        if let Some(f) = self
            .session_controls
            .as_ref()
            .and_then(|s| s.sign_in_frequency.as_ref())
        {
            if f.enabled() && !f.is_every_time() {
                let max = match f.frequency_type.as_deref() {
                    Some(t) if t.eq_ignore_ascii_case("hours") => 23,
                    Some(t) if t.eq_ignore_ascii_case("days") => 365,
                    _ => {
                        return Err(InvalidField::new(
                            "sessionControls.signInFrequency.type",
                            "must be hours or days",
                        ));
                    }
                };
                if !f.value.is_some_and(|v| (1..=max).contains(&v)) {
                    return Err(InvalidField::new(
                        "sessionControls.signInFrequency.value",
                        format!("must be between 1 and {max}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl AuthenticationStrengthPolicy {
    /// Checks a custom strength: a name and known method modes.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.display_name.trim().is_empty() {
            return Err(InvalidField::new("displayName", "is required"));
        }
        let combinations = list(&self.allowed_combinations);
        if combinations.is_empty() {
            return Err(InvalidField::new(
                "allowedCombinations",
                "needs at least one combination",
            ));
        }
        for (i, c) in combinations.iter().enumerate() {
            if let Err(unknown) = super::strengths::MethodSet::parse_names(&[c]) {
                return Err(InvalidField::new(
                    format!("allowedCombinations[{i}]"),
                    format!("'{unknown}' is not an authentication method mode"),
                ));
            }
            if c.split(',').all(|p| p.trim().is_empty()) {
                return Err(InvalidField::new(
                    format!("allowedCombinations[{i}]"),
                    "is empty",
                ));
            }
        }
        match self.extra.get("combinationConfigurations") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Array(configs)) => {
                for (i, config) in configs.iter().enumerate() {
                    self.validate_configuration(config)
                        .map_err(|e| e.within(&format!("combinationConfigurations[{i}]")))?;
                }
                Ok(())
            }
            Some(_) => Err(InvalidField::new(
                "combinationConfigurations",
                "must be an array",
            )),
        }
    }

    /// Checks one `authenticationCombinationConfiguration` against this
    /// strength: it narrows combinations the strength allows and, for a
    /// `fido2CombinationConfiguration`, combinations with a passkey, to
    /// AAGUIDs. Other types are stored as written (and never met).
    pub fn validate_configuration(&self, config: &Value) -> Result<(), InvalidField> {
        use super::strengths::{is_fido2_configuration, normalise_combination, parse_aaguid};
        let Some(config) = config.as_object() else {
            return Err(InvalidField::new("", "must be an object"));
        };
        let fido2 = match config.get("@odata.type") {
            Some(Value::String(t)) => is_fido2_configuration(t),
            _ => {
                return Err(InvalidField::new(
                    "@odata.type",
                    "is required, e.g. #microsoft.graph.fido2CombinationConfiguration",
                ));
            }
        };
        let allowed: Vec<String> = list(&self.allowed_combinations)
            .iter()
            .map(|c| normalise_combination(c))
            .collect();
        let applies = match config.get("appliesToCombinations") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            _ => {
                return Err(InvalidField::new(
                    "appliesToCombinations",
                    "needs at least one combination of the strength's allowedCombinations",
                ));
            }
        };
        for (j, c) in applies.iter().enumerate() {
            let field = || format!("appliesToCombinations[{j}]");
            let Some(c) = c.as_str() else {
                return Err(InvalidField::new(field(), "must be a string"));
            };
            let normal = normalise_combination(c);
            if !allowed.contains(&normal) {
                return Err(InvalidField::new(
                    field(),
                    format!("'{c}' is not one of the strength's allowedCombinations"),
                ));
            }
            if fido2 && !normal.split(',').any(|m| m == "fido2") {
                return Err(InvalidField::new(
                    field(),
                    format!("'{c}' has no fido2: a fido2CombinationConfiguration narrows passkeys"),
                ));
            }
        }
        if !fido2 {
            return Ok(());
        }
        for key in config.keys() {
            if ![
                "@odata.type",
                "id",
                "appliesToCombinations",
                "allowedAAGUIDs",
            ]
            .contains(&key.as_str())
            {
                return Err(InvalidField::new(
                    key.clone(),
                    "is not a property of fido2CombinationConfiguration",
                ));
            }
        }
        if !matches!(config.get("id"), None | Some(Value::String(_))) {
            return Err(InvalidField::new("id", "must be a string"));
        }
        let Some(Value::Array(aaguids)) = config.get("allowedAAGUIDs") else {
            return Err(InvalidField::new(
                "allowedAAGUIDs",
                "is required: the AAGUIDs of the passkey models allowed",
            ));
        };
        for (j, a) in aaguids.iter().enumerate() {
            if a.as_str().and_then(parse_aaguid).is_none() {
                return Err(InvalidField::new(
                    format!("allowedAAGUIDs[{j}]"),
                    format!(
                        "{a} is not an AAGUID (a UUID such as 90a3ccdf-635c-4729-a248-9b709135078f)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cidr_bounds_are_the_first_and_last_address_whatever_was_written() {
        let b = |s: &str| {
            let (a, z) = Cidr::parse(s).unwrap().bounds();
            (a.to_string(), z.to_string())
        };
        assert_eq!(b("10.1.2.3/16"), ("10.1.0.0".into(), "10.1.255.255".into()));
        assert_eq!(b("0.0.0.0/0"), ("0.0.0.0".into(), "255.255.255.255".into()));
        assert_eq!(b("192.0.2.7"), ("192.0.2.7".into(), "192.0.2.7".into()));
        assert_eq!(
            b("2001:db8:5::1/48"),
            (
                "2001:db8:5::".into(),
                "2001:db8:5:ffff:ffff:ffff:ffff:ffff".into()
            )
        );
        assert_eq!(b("::/0").1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    }

    #[test]
    fn cidr_matches_ipv4_ipv6_and_mapped_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let table = [
            ("203.0.113.0/24", "203.0.113.77", true),
            ("203.0.113.0/24", "203.0.114.1", false),
            ("203.0.113.7/32", "203.0.113.7", true),
            ("203.0.113.7", "203.0.113.7", true),
            ("0.0.0.0/0", "198.51.100.1", true),
            ("203.0.113.0/24", "::ffff:203.0.113.9", true),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "2001:db9::1", true),
            ("2001:db8::/32", "203.0.113.1", false),
            ("203.0.113.0/24", "2001:db8::1", false),
        ];
        for (cidr, addr, want) in table {
            assert_eq!(
                Cidr::parse(cidr).unwrap().contains(ip(addr)),
                want,
                "{cidr} ∋ {addr}"
            );
        }
        for bad in [
            "203.0.113.0/33",
            "2001:db8::/129",
            "nope/8",
            "10.0.0.0/x",
            "",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn is_set_ignores_nulls_empties_and_annotations() {
        use serde_json::json;
        for unused in [
            json!(null),
            json!([]),
            json!(false),
            json!(""),
            json!({"a": null, "b": []}),
            json!({"@odata.type": "x"}),
        ] {
            assert!(!is_set(&unused), "{unused}");
        }
        for used in [
            json!(["low"]),
            json!(true),
            json!({"mode": "exclude"}),
            json!(3),
        ] {
            assert!(is_set(&used), "{used}");
        }
    }

    #[test]
    fn strength_combination_configurations_are_checked_against_the_strength() {
        use serde_json::json;
        let strength = |configs: Value| -> AuthenticationStrengthPolicy {
            serde_json::from_value(json!({
                "displayName": "Keys", "allowedCombinations": ["fido2", "password, fido2", "temporaryAccessPassOneTime"],
                "combinationConfigurations": configs}))
            .unwrap()
        };
        let fido2 = |applies: Value, aaguids: Value| {
            json!({"@odata.type": "#microsoft.graph.fido2CombinationConfiguration",
                   "appliesToCombinations": applies, "allowedAAGUIDs": aaguids})
        };
        let key = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
        for ok in [
            json!([]),
            json!(null),
            json!([fido2(
                json!(["fido2"]),
                json!([key, key.to_ascii_uppercase()])
            )]),
            json!([fido2(json!(["fido2,password"]), json!([key]))]),
            // Stored as written, never met (fail closed).
            json!([{"@odata.type": "#microsoft.graph.x509CertificateCombinationConfiguration",
                    "appliesToCombinations": ["fido2"], "allowedIssuerSkis": ["x"]}]),
        ] {
            assert_eq!(strength(ok.clone()).validate(), Ok(()), "{ok}");
        }
        let table = [
            (json!({}), "combinationConfigurations"),
            (json!(["x"]), "combinationConfigurations[0]"),
            (
                json!([{"appliesToCombinations": ["fido2"]}]),
                "combinationConfigurations[0].@odata.type",
            ),
            (
                json!([fido2(json!([]), json!([key]))]),
                "combinationConfigurations[0].appliesToCombinations",
            ),
            (
                json!([fido2(json!(["sms"]), json!([key]))]),
                "combinationConfigurations[0].appliesToCombinations[0]",
            ),
            (
                json!([fido2(
                    json!(["fido2", "temporaryAccessPassOneTime"]),
                    json!([key])
                )]),
                "combinationConfigurations[0].appliesToCombinations[1]",
            ),
            (
                json!([fido2(json!(["fido2"]), json!(null))]),
                "combinationConfigurations[0].allowedAAGUIDs",
            ),
            (
                json!([fido2(json!(["fido2"]), json!([key, "yubikey"]))]),
                "combinationConfigurations[0].allowedAAGUIDs[1]",
            ),
            (
                json!([
                    fido2(json!(["fido2"]), json!([key])),
                    fido2(json!(["fido2"]), json!([7]))
                ]),
                "combinationConfigurations[1].allowedAAGUIDs[0]",
            ),
            (
                json!([{"@odata.type": "#microsoft.graph.fido2CombinationConfiguration",
                        "appliesToCombinations": ["fido2"], "allowedAAGUIDs": [key], "allowedIssuerSkis": []}]),
                "combinationConfigurations[0].allowedIssuerSkis",
            ),
        ];
        for (configs, field) in table {
            let err = strength(configs.clone()).validate().unwrap_err();
            assert_eq!(err.field, field, "{configs}: {err}");
        }
    }

    #[test]
    fn authentication_contexts_are_c1_to_c99() {
        for ok in ["c1", "c9", "c37", "c99"] {
            assert!(is_authentication_context(ok), "{ok}");
        }
        for bad in ["c0", "c100", "c01", "C1", "1", "c", "cx"] {
            assert!(!is_authentication_context(bad), "{bad}");
        }
    }
}
