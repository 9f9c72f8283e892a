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

/// Graph `authenticationDetail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationDetail {
    pub authentication_method: String,
    pub authentication_method_detail: Option<String>,
    pub succeeded: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub authentication_step_date_time: OffsetDateTime,
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
    pub client_app_used: String,
    pub status: SignInStatus,
    pub authentication_details: Vec<AuthenticationDetail>,
    pub conditional_access_status: String,
}

/// Graph `identity` inside `initiatedBy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Initiator {
    User {
        id: String,
        #[serde(rename = "userPrincipalName")]
        user_principal_name: String,
    },
    App {
        #[serde(rename = "appId")]
        app_id: String,
        #[serde(rename = "displayName")]
        display_name: String,
    },
    /// Gatepass itself (first start, background jobs).
    System,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
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
    pub result: String,
    pub initiated_by: Initiator,
    pub target_resources: Vec<TargetResource>,
    pub additional_details: Vec<KeyValue>,
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

    /// Sign-ins, newest first.
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

    /// Directory audit events, newest first.
    pub async fn directory_audits(&self, now: OffsetDateTime) -> Result<Vec<DirectoryAudit>, StoreError> {
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
