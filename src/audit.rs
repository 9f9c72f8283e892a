//! The sign-in log and the directory audit, in Graph's shapes
//! (`signIn`, `directoryAudit`), retained for 30 days like Entra ID's.
//!
//! Entries are append-only records whose keys sort by time, so listing is a
//! scan in key order. They never contain secrets: a TAP, password, code or
//! token must not be passed to any field here.

use crate::ids::{LogEntryId, UserId};
use crate::store::{Durability, Store, StoreError, decode, encode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;

pub const SIGN_INS: &str = "log_signin";
pub const DIRECTORY_AUDITS: &str = "log_audit";
const RETENTION: time::Duration = time::Duration::days(30);

/// Graph `signIn.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInStatus {
    /// 0 on success; otherwise an Entra-style AADSTS number.
    pub error_code: u32,
    pub failure_reason: Option<String>,
}

/// Entra error codes of sign-ins that conditional access stopped after the
/// credentials were verified: MFA or a stronger method required (50074,
/// 50076, 50079, 50158), blocked (53003), a compliant, domain-joined or
/// approved device required (53000, 53001, 53002), blocked by a security
/// policy (530032).
pub const CONDITIONAL_ACCESS_ERRORS: [u32; 9] = [
    50074, 50076, 50079, 50158, 53000, 53001, 53002, 53003, 530032,
];

/// Whether `error_code` is conditional access refusing a sign-in whose
/// methods all succeeded.
pub fn is_conditional_access_error(error_code: u32) -> bool {
    CONDITIONAL_ACCESS_ERRORS.contains(&error_code)
}

/// Graph `deviceDetail` (what the `User-Agent` tells).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDetail {
    /// `Windows`, `iOS`, `MacOs`, `Android`, `Linux`, `Windows Phone`, or
    /// empty when the header names none.
    pub operating_system: String,
    /// The browser and its major version, e.g. `Chrome 131.0.0`, as Entra
    /// ID writes it; absent without a `User-Agent` (and on entries written
    /// before Gatepass recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
}

/// Entra's `deviceDetail.browser` for a `User-Agent`: the browser's name
/// and version (`Edge 131.0.0`, `Chrome 131.0.0`, `Firefox 133.0`,
/// `Safari 18.1`), or `Other` for anything else.
pub fn browser_from_user_agent(user_agent: &str) -> String {
    // Order matters: Edge says Chrome and Safari too, Chrome says Safari.
    let version_after = |token: &str| {
        user_agent.split_whitespace().find_map(|part| {
            part.strip_prefix(token)
                .map(|v| v.trim_end_matches(|c: char| !c.is_ascii_digit()).to_owned())
        })
    };
    // Entra keeps at most three version components (`131.0.0.0` → `131.0.0`).
    let named = |name: &str, v: Option<String>| match v {
        Some(v) if !v.is_empty() => {
            let short: Vec<&str> = v.split('.').take(3).collect();
            format!("{name} {}", short.join("."))
        }
        _ => name.to_owned(),
    };
    if let Some(v) = version_after("Edg/") {
        named("Edge", Some(v))
    } else if let Some(v) = version_after("Firefox/") {
        named("Firefox", Some(v))
    } else if let Some(v) = version_after("Chrome/").or_else(|| version_after("HeadlessChrome/")) {
        named("Chrome", Some(v))
    } else if user_agent.contains("Safari/") {
        named("Safari", version_after("Version/"))
    } else {
        "Other".to_owned()
    }
}

/// Graph `authenticationDetail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationDetail {
    pub authentication_method: String,
    pub authentication_method_detail: Option<String>,
    pub succeeded: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub authentication_step_date_time: OffsetDateTime,
    /// `Primary authentication` or `Multi-factor authentication`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_step_requirement: Option<String>,
}

/// Graph `signIn`: one sign-in attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignIn {
    pub id: LogEntryId,
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
    pub user_id: Option<UserId>,
    pub user_principal_name: String,
    pub user_display_name: Option<String>,
    pub app_id: String,
    pub app_display_name: String,
    pub ip_address: String,
    /// Absent on entries written before Gatepass recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_detail: Option<DeviceDetail>,
    pub client_app_used: String,
    pub status: SignInStatus,
    pub authentication_details: Vec<AuthenticationDetail>,
    /// The methods that succeeded, by their log names.
    #[serde(default)]
    pub authentication_methods_used: Vec<String>,
    /// `singleFactorAuthentication` or `multiFactorAuthentication`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_requirement: Option<String>,
    /// One sign-in's attempts share it (an interrupted one and its step-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub conditional_access_status: String,
    /// Graph `appliedConditionalAccessPolicy` entries, report-only included.
    #[serde(default)]
    pub applied_conditional_access_policies: Vec<serde_json::Value>,
}

impl SignIn {
    /// The method the sign-in rested on, as a metric label from a fixed
    /// set: the strongest method that succeeded (`passkey`, `tap`,
    /// `password`), or `none`.
    pub fn method_label(&self) -> &'static str {
        let succeeded = |name: &str| {
            self.authentication_details
                .iter()
                .any(|d| d.succeeded && d.authentication_method.starts_with(name))
        };
        if succeeded("Passkey") {
            "passkey"
        } else if succeeded("Temporary Access Pass") {
            "tap"
        } else if succeeded("Password") {
            "password"
        } else {
            "none"
        }
    }
}

/// Who made a change. Serialized as Graph's `initiatedBy`, which always has
/// both `user` and `app`, one of them null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initiator {
    User {
        id: String,
        user_principal_name: String,
    },
    App {
        app_id: String,
        display_name: String,
    },
    /// Gatepass itself (first start, background jobs).
    System,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitiatedBy {
    user: Option<InitiatorUser>,
    app: Option<InitiatorApp>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitiatorUser {
    id: String,
    user_principal_name: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitiatorApp {
    app_id: Option<String>,
    display_name: String,
}

impl Serialize for Initiator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire = match self {
            Initiator::User {
                id,
                user_principal_name,
            } => InitiatedBy {
                user: Some(InitiatorUser {
                    id: id.clone(),
                    user_principal_name: user_principal_name.clone(),
                }),
                app: None,
            },
            Initiator::App {
                app_id,
                display_name,
            } => InitiatedBy {
                user: None,
                app: Some(InitiatorApp {
                    app_id: Some(app_id.clone()),
                    display_name: display_name.clone(),
                }),
            },
            Initiator::System => InitiatedBy {
                user: None,
                app: Some(InitiatorApp {
                    app_id: None,
                    display_name: "Gatepass".to_owned(),
                }),
            },
        };
        wire.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Initiator {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = InitiatedBy::deserialize(d)?;
        Ok(match (wire.user, wire.app) {
            (Some(u), _) => Initiator::User {
                id: u.id,
                user_principal_name: u.user_principal_name,
            },
            (
                None,
                Some(InitiatorApp {
                    app_id: Some(app_id),
                    display_name,
                }),
            ) => Initiator::App {
                app_id,
                display_name,
            },
            _ => Initiator::System,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetResource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub display_name: Option<String>,
    pub user_principal_name: Option<String>,
}

impl TargetResource {
    /// A user, as Entra names one in the audit log.
    pub fn user(user: &crate::directory::User) -> TargetResource {
        TargetResource {
            id: user.id.to_string(),
            kind: "User".to_owned(),
            display_name: Some(user.display_name.clone()),
            user_principal_name: Some(user.user_principal_name.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

impl KeyValue {
    pub fn new(key: &str, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: value.into(),
        }
    }
}

/// Graph `directoryAudit`: one change to the directory or its policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryAudit {
    pub id: LogEntryId,
    #[serde(with = "time::serde::rfc3339")]
    pub activity_date_time: OffsetDateTime,
    pub activity_display_name: String,
    pub category: String,
    /// `success` or `failure`.
    pub result: String,
    /// Why a change failed (empty on success, as Graph returns it).
    #[serde(default)]
    pub result_reason: String,
    pub initiated_by: Initiator,
    pub target_resources: Vec<TargetResource>,
    pub additional_details: Vec<KeyValue>,
}

impl DirectoryAudit {
    /// A successful change to one target, made at `now`.
    pub fn success(
        activity: &str,
        category: &str,
        initiated_by: Initiator,
        target: TargetResource,
        additional_details: Vec<KeyValue>,
        now: OffsetDateTime,
    ) -> Result<DirectoryAudit, crate::ids::RandomError> {
        Ok(DirectoryAudit {
            id: LogEntryId::generate()?,
            activity_date_time: now,
            activity_display_name: activity.to_owned(),
            category: category.to_owned(),
            result: "success".to_owned(),
            result_reason: String::new(),
            initiated_by,
            target_resources: vec![target],
            additional_details,
        })
    }

    /// A change to one target that was refused, and why.
    pub fn failure(
        activity: &str,
        category: &str,
        initiated_by: Initiator,
        target: TargetResource,
        additional_details: Vec<KeyValue>,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<DirectoryAudit, crate::ids::RandomError> {
        let mut entry = Self::success(
            activity,
            category,
            initiated_by,
            target,
            additional_details,
            now,
        )?;
        entry.result = "failure".to_owned();
        entry.result_reason = reason.to_owned();
        Ok(entry)
    }
}

#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
}

fn entry_key(at: OffsetDateTime, id: LogEntryId) -> String {
    // Zero-padded microseconds sort lexicographically in time order.
    let micros = at.unix_timestamp_nanos() / 1000;
    format!("{micros:020}-{id}")
}

impl AuditLog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn record_sign_in(&self, entry: &SignIn) -> Result<(), StoreError> {
        metrics::counter!(
            "gatepass_signins_total",
            "method" => entry.method_label(),
            "result" => if entry.status.error_code == 0 { "success" } else { "failure" },
        )
        .increment(1);
        self.store
            .put(
                SIGN_INS,
                &entry_key(entry.created_date_time, entry.id),
                encode(entry)?,
                Some((entry.created_date_time + RETENTION).unix_timestamp()),
                Durability::Durable,
            )
            .await
            .map(|_| ())
    }

    pub async fn record_directory(&self, entry: &DirectoryAudit) -> Result<(), StoreError> {
        self.store
            .put(
                DIRECTORY_AUDITS,
                &entry_key(entry.activity_date_time, entry.id),
                encode(entry)?,
                Some((entry.activity_date_time + RETENTION).unix_timestamp()),
                Durability::Durable,
            )
            .await
            .map(|_| ())
    }

    /// Up to `limit` sign-ins, newest first, older than the entry keyed
    /// `before` (the key of the last entry of the previous page): one page
    /// read from the store, whatever the size of the log.
    pub async fn sign_in_page(
        &self,
        before: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, SignIn)>, StoreError> {
        page(&*self.store, SIGN_INS, before, limit, now).await
    }

    /// [`AuditLog::sign_in_page`] for the directory audit.
    pub async fn directory_audit_page(
        &self,
        before: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, DirectoryAudit)>, StoreError> {
        page(&*self.store, DIRECTORY_AUDITS, before, limit, now).await
    }

    /// Every sign-in, newest first: for tests and tools, never a request
    /// path (which pages with [`AuditLog::sign_in_page`]).
    pub async fn sign_ins(&self, now: OffsetDateTime) -> Result<Vec<SignIn>, StoreError> {
        let mut out = self
            .store
            .scan(SIGN_INS, now.unix_timestamp())
            .await?
            .into_iter()
            .map(|(_, r)| decode::<SignIn>(SIGN_INS, &r.value))
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// Every directory audit event, newest first: for tests and tools.
    pub async fn directory_audits(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<DirectoryAudit>, StoreError> {
        let mut out = self
            .store
            .scan(DIRECTORY_AUDITS, now.unix_timestamp())
            .await?
            .into_iter()
            .map(|(_, r)| decode::<DirectoryAudit>(DIRECTORY_AUDITS, &r.value))
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }
}

/// One page of a log, newest first.
async fn page<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    table: crate::store::Table,
    before: Option<&str>,
    limit: usize,
    now: OffsetDateTime,
) -> Result<Vec<(String, T)>, StoreError> {
    store
        .scan_page(
            table,
            "",
            before,
            crate::store::Order::Descending,
            limit,
            now.unix_timestamp(),
        )
        .await?
        .into_iter()
        .map(|(key, r)| Ok((key, decode::<T>(table, &r.value)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::browser_from_user_agent as browser;

    #[test]
    fn browsers_are_named_as_entra_names_them() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge 131.0.0",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome 131.0.0",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox 133.0",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                "Safari 18.1",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.224 Safari/537.36",
                "Chrome 120.0.6099",
            ),
            ("curl/8.5.0", "Other"),
        ];
        for (ua, want) in cases {
            assert_eq!(browser(ua), want, "{ua}");
        }
    }
}
