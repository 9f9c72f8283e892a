//! Temporary Access Pass: the policy, the pass, and its lifecycle
//! (DESIGN §3).
//!
//! ```text
//!            issue (replaces any previous pass, atomically: one key per user)
//!              │
//!              ▼
//!   NotYetValid ──start──▶ EnabledByPolicy ──start+lifetime──▶ Expired
//!                              │    │
//!                  one-time ───┘    └── policy off / user untargeted /
//!                  redeem               multi-use under one-time policy
//!                    │                            │
//!                    ▼                            ▼
//!                OneTimeUsed               DisabledByPolicy
//! ```
//!
//! Usability is computed from the record, the policy and the clock on every
//! read, so a new pass is usable at its start instant and an expired or
//! deleted one fails at once: there is no replication delay to wait out.
//! The secret exists in plaintext only in the create response; the store
//! keeps an argon2id hash. Redeeming a one-time pass is one compare-and-swap,
//! so of any number of concurrent sign-ins exactly one wins.

use crate::authn::password::PasswordHasher;
use crate::ids::{GroupId, UserId};
use crate::store::{Durability, Store, StoreError, decode, encode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

pub const PASSES: &str = "tap";
pub const POLICIES: &str = "policy";
const POLICY_KEY: &str = "temporaryAccessPass";

/// Bounds Graph documents for the policy and a pass.
pub const LIFETIME_RANGE: (u32, u32) = (10, 43_200);
pub const LENGTH_RANGE: (u32, u32) = (8, 48);

/// The pseudo-group that means "every user".
pub const ALL_USERS: &str = "all_users";

/// Graph `authenticationMethodTarget` / `excludeTarget`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodTarget {
    pub id: String,
    #[serde(default = "group_target")]
    pub target_type: String,
    #[serde(default)]
    pub is_registration_required: bool,
}

fn group_target() -> String {
    "group".to_owned()
}

/// `temporaryAccessPassAuthenticationMethodConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TapPolicy {
    pub state: MethodState,
    pub include_targets: Vec<MethodTarget>,
    pub exclude_targets: Vec<MethodTarget>,
    pub minimum_lifetime_in_minutes: u32,
    pub maximum_lifetime_in_minutes: u32,
    pub default_lifetime_in_minutes: u32,
    pub default_length: u32,
    pub is_usable_once: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MethodState {
    Enabled,
    Disabled,
}

impl Default for TapPolicy {
    /// DESIGN §3 defaults: min 60, max 1440, default 60, length 8, enabled
    /// for all users, multi-use allowed.
    fn default() -> Self {
        Self {
            state: MethodState::Enabled,
            include_targets: vec![MethodTarget {
                id: ALL_USERS.to_owned(),
                target_type: "group".to_owned(),
                is_registration_required: false,
            }],
            exclude_targets: Vec::new(),
            minimum_lifetime_in_minutes: 60,
            maximum_lifetime_in_minutes: 1440,
            default_lifetime_in_minutes: 60,
            default_length: 8,
            is_usable_once: false,
        }
    }
}

/// A policy rule broken; `field` is the Graph property name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyViolation {
    pub field: &'static str,
    pub message: String,
}

impl TapPolicy {
    /// Checks every range and relation; the first broken rule names its field.
    pub fn validate(&self) -> Result<(), PolicyViolation> {
        let (lo, hi) = LIFETIME_RANGE;
        for (field, v) in [
            ("minimumLifetimeInMinutes", self.minimum_lifetime_in_minutes),
            ("maximumLifetimeInMinutes", self.maximum_lifetime_in_minutes),
            ("defaultLifetimeInMinutes", self.default_lifetime_in_minutes),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(PolicyViolation {
                    field,
                    message: format!("must be between {lo} and {hi} minutes, got {v}"),
                });
            }
        }
        if self.minimum_lifetime_in_minutes > self.maximum_lifetime_in_minutes {
            return Err(PolicyViolation {
                field: "minimumLifetimeInMinutes",
                message: "must not exceed maximumLifetimeInMinutes".to_owned(),
            });
        }
        if !(self.minimum_lifetime_in_minutes..=self.maximum_lifetime_in_minutes)
            .contains(&self.default_lifetime_in_minutes)
        {
            return Err(PolicyViolation {
                field: "defaultLifetimeInMinutes",
                message: format!(
                    "must be between minimumLifetimeInMinutes ({}) and maximumLifetimeInMinutes ({})",
                    self.minimum_lifetime_in_minutes, self.maximum_lifetime_in_minutes
                ),
            });
        }
        let (lo, hi) = LENGTH_RANGE;
        if !(lo..=hi).contains(&self.default_length) {
            return Err(PolicyViolation {
                field: "defaultLength",
                message: format!("must be between {lo} and {hi}, got {}", self.default_length),
            });
        }
        check_targets(&self.include_targets, &self.exclude_targets)?;
        Ok(())
    }

    /// Whether the policy targets a user in `groups` (exclusions win).
    pub fn targets(&self, groups: &BTreeSet<GroupId>) -> bool {
        is_targeted(&self.include_targets, &self.exclude_targets, groups)
    }

    /// Whether evaluating [`TapPolicy::targets`] needs the user's groups.
    pub fn needs_groups(&self) -> bool {
        needs_groups(&self.include_targets, &self.exclude_targets)
    }
}

/// Checks a method configuration's `includeTargets` / `excludeTargets`:
/// group targets naming `all_users` or a group id.
pub fn check_targets(
    include: &[MethodTarget],
    exclude: &[MethodTarget],
) -> Result<(), PolicyViolation> {
    for (field, targets) in [("includeTargets", include), ("excludeTargets", exclude)] {
        for t in targets {
            if t.target_type != "group" {
                return Err(PolicyViolation {
                    field,
                    message: format!(
                        "targetType {:?} is not supported; use \"group\"",
                        t.target_type
                    ),
                });
            }
            if t.id != ALL_USERS && GroupId::parse(&t.id).is_none() {
                return Err(PolicyViolation {
                    field,
                    message: format!("{:?} is neither \"all_users\" nor a group id", t.id),
                });
            }
        }
    }
    Ok(())
}

/// Whether a method configuration includes a user in `groups` (exclusions
/// win; `all_users` matches everyone).
pub fn is_targeted(
    include: &[MethodTarget],
    exclude: &[MethodTarget],
    groups: &BTreeSet<GroupId>,
) -> bool {
    let hit = |t: &MethodTarget| {
        t.id == ALL_USERS || GroupId::parse(&t.id).is_some_and(|g| groups.contains(&g))
    };
    include.iter().any(hit) && !exclude.iter().any(hit)
}

/// Whether [`is_targeted`] needs the user's groups (any target but
/// `all_users`).
pub fn needs_groups(include: &[MethodTarget], exclude: &[MethodTarget]) -> bool {
    include.iter().chain(exclude).any(|t| t.id != ALL_USERS)
}

/// Graph `methodUsabilityReason`, spelled as the service returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsabilityReason {
    EnabledByPolicy,
    DisabledByPolicy,
    Expired,
    NotYetValid,
    OneTimeUsed,
}

impl UsabilityReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UsabilityReason::EnabledByPolicy => "EnabledByPolicy",
            UsabilityReason::DisabledByPolicy => "DisabledByPolicy",
            UsabilityReason::Expired => "Expired",
            UsabilityReason::NotYetValid => "NotYetValid",
            UsabilityReason::OneTimeUsed => "OneTimeUsed",
        }
    }
}

/// A stored pass. The secret is only its argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemporaryAccessPass {
    pub id: String,
    pub user_id: UserId,
    pub created_at: i64,
    pub start_at: i64,
    pub lifetime_in_minutes: u32,
    pub is_usable_once: bool,
    /// argon2id PHC string of the pass.
    pub hash: String,
    pub used_at: Option<i64>,
}

impl TemporaryAccessPass {
    /// The instant the pass stops working.
    pub fn end_at(&self) -> i64 {
        self.start_at + i64::from(self.lifetime_in_minutes) * 60
    }

    /// Usability at `now` under `policy`, for a user the policy does or does
    /// not target. Order matters: a consumed pass reads `OneTimeUsed` even
    /// after it expires, and policy problems outrank time.
    pub fn usability(&self, policy: &TapPolicy, targeted: bool, now: i64) -> UsabilityReason {
        if self.is_usable_once && self.used_at.is_some() {
            UsabilityReason::OneTimeUsed
        } else if policy.state == MethodState::Disabled
            || !targeted
            || (policy.is_usable_once && !self.is_usable_once)
        {
            UsabilityReason::DisabledByPolicy
        } else if now < self.start_at {
            UsabilityReason::NotYetValid
        } else if now >= self.end_at() {
            UsabilityReason::Expired
        } else {
            UsabilityReason::EnabledByPolicy
        }
    }

    pub fn method(&self) -> crate::authn::AuthMethod {
        if self.is_usable_once {
            crate::authn::AuthMethod::TemporaryAccessPassOneTime
        } else {
            crate::authn::AuthMethod::TemporaryAccessPassMultiUse
        }
    }
}

/// What an issuer asks for (Graph's create body, all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueRequest {
    pub is_usable_once: Option<bool>,
    pub start_at: Option<i64>,
    pub lifetime_in_minutes: Option<u32>,
}

/// Why a pass cannot be issued. Each names the rule it enforces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("The Temporary Access Pass policy is disabled; enable it before issuing passes.")]
    PolicyDisabled,
    #[error(
        "The user is not included in the Temporary Access Pass policy targets (or is excluded)."
    )]
    UserNotTargeted,
    #[error(
        "Invalid LifetimeInMinutes specified. The valid range is between {min} and {max} minutes."
    )]
    LifetimeOutOfRange { min: u32, max: u32 },
    #[error(
        "The Temporary Access Pass policy requires one-time passes (isUsableOnce); a multi-use pass cannot be created."
    )]
    MultiUseForbidden,
    #[error("startDateTime must not be more than {max_days} days in the future.")]
    StartTooLate { max_days: i64 },
}

impl IssueError {
    pub fn code(&self) -> &'static str {
        match self {
            IssueError::PolicyDisabled => "tap.policy_disabled",
            IssueError::UserNotTargeted => "tap.user_not_targeted",
            IssueError::LifetimeOutOfRange { .. } => "tap.lifetime_out_of_range",
            IssueError::MultiUseForbidden => "tap.multi_use_forbidden",
            IssueError::StartTooLate { .. } => "tap.start_too_late",
        }
    }
}

/// The pure issuing decision: the pass parameters, or the broken rule.
pub fn plan_issue(
    policy: &TapPolicy,
    targeted: bool,
    request: &IssueRequest,
    now: i64,
) -> Result<(i64, u32, bool), IssueError> {
    if policy.state == MethodState::Disabled {
        return Err(IssueError::PolicyDisabled);
    }
    if !targeted {
        return Err(IssueError::UserNotTargeted);
    }
    let lifetime = request
        .lifetime_in_minutes
        .unwrap_or(policy.default_lifetime_in_minutes);
    if !(policy.minimum_lifetime_in_minutes..=policy.maximum_lifetime_in_minutes)
        .contains(&lifetime)
    {
        return Err(IssueError::LifetimeOutOfRange {
            min: policy.minimum_lifetime_in_minutes,
            max: policy.maximum_lifetime_in_minutes,
        });
    }
    let once = match (policy.is_usable_once, request.is_usable_once) {
        (true, Some(false)) => return Err(IssueError::MultiUseForbidden),
        (true, _) => true,
        (false, requested) => requested.unwrap_or(false),
    };
    // A start in the past means "now"; far-future starts are refused so a
    // forgotten pass cannot lie in wait for years.
    const MAX_START_DAYS: i64 = 30;
    let start = request.start_at.map_or(now, |s| s.max(now));
    if start > now + MAX_START_DAYS * 86_400 {
        return Err(IssueError::StartTooLate {
            max_days: MAX_START_DAYS,
        });
    }
    Ok((start, lifetime, once))
}

/// Unambiguous alphabet for passes people type: no 0/O, 1/l/I.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// A random pass of `len` characters from [`ALPHABET`], drawn from ring's
/// `SystemRandom` without modulo bias (rejection sampling).
pub fn generate_secret(len: usize) -> Result<TapSecret, crate::ids::RandomError> {
    let limit = 256 - (256 % ALPHABET.len());
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        crate::ids::fill_random(&mut buf)?;
        for b in buf {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(TapSecret(out))
}

/// A plaintext pass: shown once in the create response, then dropped. No
/// `Debug`, no `Serialize`.
pub struct TapSecret(String);

impl TapSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A freshly issued pass.
pub struct Issued {
    pub pass: TemporaryAccessPass,
    pub secret: TapSecret,
    pub replaced: Option<TemporaryAccessPass>,
}

/// Why issuing failed: a policy rule, or the store / randomness.
#[derive(Debug, thiserror::Error)]
pub enum IssueFailure {
    #[error(transparent)]
    Rule(#[from] IssueError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every hashing slot is taken: retry shortly.
    #[error("too many passwords and passes are being hashed; retry shortly")]
    Busy,
    #[error("{0}")]
    Internal(String),
}

/// Why a presented pass could not be checked (not: why it was wrong).
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hashing(#[from] super::password::PasswordError),
}

/// Store access for passes and the policy.
#[derive(Clone)]
pub struct Taps {
    store: Arc<dyn Store>,
    /// The `[tap]` configuration: in force until the policy is stored.
    configured: Arc<TapPolicy>,
    /// Told when a pass is deleted or replaced: the sessions signed in
    /// with it end (back-channel logout).
    backchannel: Option<crate::logout::Backchannel>,
}

/// Outcome of presenting a pass at sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// Verified (and, if one-time, consumed by this call).
    Accepted(TemporaryAccessPass),
    /// No pass, wrong pass, or lost the race for a one-time pass.
    Rejected,
    /// The pass exists but is not usable now (the reason is logged, not shown).
    Unusable(UsabilityReason),
}

impl Taps {
    pub fn new(store: Arc<dyn Store>, configured: TapPolicy) -> Self {
        Self {
            store,
            configured: Arc::new(configured),
            backchannel: None,
        }
    }

    pub fn with_backchannel(mut self, backchannel: crate::logout::Backchannel) -> Self {
        self.backchannel = Some(backchannel);
        self
    }

    async fn pass_ended(&self, user: UserId, id: &str, now: i64) {
        if let Some(b) = &self.backchannel {
            b.ended(user, crate::logout::Ended::Pass(id), now).await;
        }
    }

    pub async fn policy(&self, now: i64) -> Result<TapPolicy, StoreError> {
        match self.store.get(POLICIES, POLICY_KEY, now).await? {
            Some(r) => decode(POLICIES, &r.value),
            None => Ok((*self.configured).clone()),
        }
    }

    /// Seeds the policy from configuration on first start only; later
    /// changes come through the Graph API and survive restarts.
    pub async fn seed_policy(&self, policy: &TapPolicy, now: i64) -> Result<bool, StoreError> {
        Ok(self
            .store
            .insert(
                POLICIES,
                POLICY_KEY,
                encode(policy)?,
                None,
                Durability::Durable,
                now,
            )
            .await?
            .is_some())
    }

    pub async fn set_policy(&self, policy: &TapPolicy) -> Result<(), StoreError> {
        self.store
            .put(
                POLICIES,
                POLICY_KEY,
                encode(policy)?,
                None,
                Durability::Durable,
            )
            .await
            .map(|_| ())
    }

    /// The user's pass (usable or not), with its store version.
    pub async fn pass(
        &self,
        user: UserId,
        now: i64,
    ) -> Result<Option<(TemporaryAccessPass, u64)>, StoreError> {
        match self.store.get(PASSES, &user.to_string(), now).await? {
            Some(r) => Ok(Some((decode(PASSES, &r.value)?, r.version))),
            None => Ok(None),
        }
    }

    /// Stores `pass` as the user's only pass, replacing any other in one
    /// write; returns the replaced pass. Sessions derived from the old pass
    /// end because they are bound to its id.
    pub async fn store_pass(
        &self,
        pass: &TemporaryAccessPass,
    ) -> Result<Option<TemporaryAccessPass>, StoreError> {
        let key = pass.user_id.to_string();
        let now = pass.created_at;
        for _ in 0..32 {
            let previous = self.store.get(PASSES, &key, now).await?;
            let value = encode(pass)?;
            // Keep the record until it can no longer matter to anyone.
            let expires = Some(pass.end_at() + 86_400);
            match &previous {
                None => {
                    if self
                        .store
                        .insert(PASSES, &key, value, expires, Durability::Durable, now)
                        .await?
                        .is_some()
                    {
                        return Ok(None);
                    }
                }
                Some(r) => {
                    if self
                        .store
                        .compare_and_swap(
                            PASSES,
                            &key,
                            r.version,
                            Some(value),
                            expires,
                            Durability::Durable,
                            now,
                        )
                        .await?
                        .is_some()
                    {
                        let replaced: TemporaryAccessPass = decode(PASSES, &r.value)?;
                        self.pass_ended(pass.user_id, &replaced.id, now).await;
                        return Ok(Some(replaced));
                    }
                }
            }
        }
        Err(StoreError::Unavailable(
            "too much contention replacing the pass; retry".into(),
        ))
    }

    /// Issues a new pass for `user` under `policy` (already checked to
    /// target them): generates the secret, stores only its hash, and
    /// replaces any previous pass atomically. Returns the stored pass, the
    /// plaintext (for the one response that shows it) and the replaced pass.
    pub async fn issue(
        &self,
        hasher: &PasswordHasher,
        user: UserId,
        policy: &TapPolicy,
        targeted: bool,
        request: &IssueRequest,
        now: i64,
    ) -> Result<Issued, IssueFailure> {
        let (start_at, lifetime_in_minutes, is_usable_once) =
            plan_issue(policy, targeted, request, now)?;
        let len = usize::try_from(policy.default_length).unwrap_or(8);
        let secret = generate_secret(len)
            .map_err(|_| IssueFailure::Internal("random source failed".into()))?;
        let hash = hasher.hash(secret.expose()).await.map_err(|e| match e {
            super::password::PasswordError::Busy => IssueFailure::Busy,
            other => IssueFailure::Internal(other.to_string()),
        })?;
        let id = crate::ids::random_uuid()
            .map_err(|_| IssueFailure::Internal("random source failed".into()))?
            .to_string();
        let pass = TemporaryAccessPass {
            id,
            user_id: user,
            created_at: now,
            start_at,
            lifetime_in_minutes,
            is_usable_once,
            hash,
            used_at: None,
        };
        let replaced = self.store_pass(&pass).await?;
        metrics::counter!("gatepass_tap_issued_total").increment(1);
        Ok(Issued {
            pass,
            secret,
            replaced,
        })
    }

    /// Deletes the pass with `id`; `false` if the user has no such pass.
    pub async fn delete(&self, user: UserId, id: &str, now: i64) -> Result<bool, StoreError> {
        let Some((pass, version)) = self.pass(user, now).await? else {
            return Ok(false);
        };
        if pass.id != id {
            return Ok(false);
        }
        let deleted = self
            .store
            .compare_and_swap(
                PASSES,
                &user.to_string(),
                version,
                None,
                None,
                Durability::Durable,
                now,
            )
            .await?
            .is_some();
        if deleted {
            self.pass_ended(user, id, now).await;
        }
        Ok(deleted)
    }

    /// Marks a verified one-time pass used; `true` if this call won.
    pub async fn consume(
        &self,
        pass: &TemporaryAccessPass,
        version: u64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut used = pass.clone();
        used.used_at = Some(now);
        Ok(self
            .store
            .compare_and_swap(
                PASSES,
                &pass.user_id.to_string(),
                version,
                Some(encode(&used)?),
                Some(pass.end_at() + 86_400),
                Durability::Durable,
                now,
            )
            .await?
            .is_some())
    }

    /// Verifies a presented pass for `user`: exactly one argon2id hash per
    /// attempt (also when there is no usable pass, so timing says nothing),
    /// then, for a one-time pass, one compare-and-swap that consumes it. Of
    /// many concurrent attempts with the same one-time pass, exactly one is
    /// `Accepted`.
    pub async fn redeem(
        &self,
        hasher: &PasswordHasher,
        user: UserId,
        policy: &TapPolicy,
        targeted: bool,
        presented: &str,
        now: i64,
    ) -> Result<Redeemed, RedeemError> {
        let Some((pass, version)) = self.pass(user, now).await? else {
            hasher.verify_dummy(presented).await?;
            return Ok(Redeemed::Rejected);
        };
        let reason = pass.usability(policy, targeted, now);
        if reason != UsabilityReason::EnabledByPolicy {
            hasher.verify_dummy(presented).await?;
            return Ok(Redeemed::Unusable(reason));
        }
        if presented.is_empty() || !hasher.verify(presented, &pass.hash).await? {
            return Ok(Redeemed::Rejected);
        }
        if pass.is_usable_once && !self.consume(&pass, version, now).await? {
            // Another sign-in consumed it between our read and our write.
            return Ok(Redeemed::Rejected);
        }
        Ok(Redeemed::Accepted(pass))
    }

    /// Whether a session bound to pass `id` may continue: the user's current
    /// pass is still that one and has not ended.
    pub async fn binding_is_live(
        &self,
        user: UserId,
        id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .pass(user, now)
            .await?
            .is_some_and(|(p, _)| p.id == id && now < p.end_at()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::UsabilityReason::*;
    use super::*;

    fn pass(once: bool, used: bool) -> TemporaryAccessPass {
        TemporaryAccessPass {
            id: "p".into(),
            user_id: UserId(uuid::Uuid::nil()),
            created_at: 1000,
            start_at: 2000,
            lifetime_in_minutes: 60,
            is_usable_once: once,
            hash: String::new(),
            used_at: used.then_some(2100),
        }
    }

    #[test]
    fn tap_usability_follows_the_state_diagram() {
        let on = TapPolicy::default();
        let off = TapPolicy {
            state: MethodState::Disabled,
            ..TapPolicy::default()
        };
        let once_only = TapPolicy {
            is_usable_once: true,
            ..TapPolicy::default()
        };
        let table = [
            (pass(false, false), &on, true, 1999, NotYetValid),
            (pass(false, false), &on, true, 2000, EnabledByPolicy),
            (pass(false, false), &on, true, 5599, EnabledByPolicy),
            (pass(false, false), &on, true, 5600, Expired),
            (pass(true, true), &on, true, 2200, OneTimeUsed),
            (pass(true, true), &on, true, 9999, OneTimeUsed),
            (pass(false, false), &off, true, 2500, DisabledByPolicy),
            (pass(false, false), &on, false, 2500, DisabledByPolicy),
            (pass(false, false), &once_only, true, 2500, DisabledByPolicy),
            (pass(true, false), &once_only, true, 2500, EnabledByPolicy),
        ];
        for (p, policy, targeted, now, want) in table {
            assert_eq!(p.usability(policy, targeted, now), want, "{p:?} at {now}");
        }
    }

    #[test]
    fn tap_policy_validation_names_the_field() {
        type Case = (fn(&mut TapPolicy), &'static str);
        let cases: [Case; 6] = [
            (
                |p| p.minimum_lifetime_in_minutes = 9,
                "minimumLifetimeInMinutes",
            ),
            (
                |p| p.maximum_lifetime_in_minutes = 43_201,
                "maximumLifetimeInMinutes",
            ),
            (
                |p| p.default_lifetime_in_minutes = 30,
                "defaultLifetimeInMinutes",
            ),
            (
                |p| {
                    p.minimum_lifetime_in_minutes = 500;
                    p.maximum_lifetime_in_minutes = 400;
                    p.default_lifetime_in_minutes = 450;
                },
                "minimumLifetimeInMinutes",
            ),
            (|p| p.default_length = 7, "defaultLength"),
            (
                |p| p.include_targets[0].id = "not-a-group".into(),
                "includeTargets",
            ),
        ];
        for (mutate, field) in cases {
            let mut p = TapPolicy::default();
            mutate(&mut p);
            assert_eq!(p.validate().unwrap_err().field, field);
        }
        assert!(TapPolicy::default().validate().is_ok());
    }

    #[test]
    fn tap_plan_issue_enforces_every_rule() {
        let p = TapPolicy::default();
        let req = |once, life| IssueRequest {
            is_usable_once: once,
            start_at: None,
            lifetime_in_minutes: life,
        };
        assert_eq!(
            plan_issue(&p, true, &req(None, None), 100),
            Ok((100, 60, false))
        );
        assert_eq!(
            plan_issue(&p, true, &req(Some(true), Some(1440)), 100),
            Ok((100, 1440, true))
        );
        assert_eq!(
            plan_issue(&p, true, &req(None, Some(59)), 100),
            Err(IssueError::LifetimeOutOfRange { min: 60, max: 1440 })
        );
        assert_eq!(
            plan_issue(&p, false, &req(None, None), 100),
            Err(IssueError::UserNotTargeted)
        );
        let off = TapPolicy {
            state: MethodState::Disabled,
            ..TapPolicy::default()
        };
        assert_eq!(
            plan_issue(&off, true, &req(None, None), 100),
            Err(IssueError::PolicyDisabled)
        );
        let once = TapPolicy {
            is_usable_once: true,
            ..TapPolicy::default()
        };
        assert_eq!(
            plan_issue(&once, true, &req(Some(false), None), 100),
            Err(IssueError::MultiUseForbidden)
        );
        assert_eq!(
            plan_issue(&once, true, &req(None, None), 100),
            Ok((100, 60, true))
        );
        let later = IssueRequest {
            start_at: Some(5000),
            ..IssueRequest::default()
        };
        assert_eq!(plan_issue(&p, true, &later, 100), Ok((5000, 60, false)));
        let past = IssueRequest {
            start_at: Some(50),
            ..IssueRequest::default()
        };
        assert_eq!(plan_issue(&p, true, &past, 100), Ok((100, 60, false)));
    }

    #[test]
    fn tap_secret_uses_the_unambiguous_alphabet() {
        let s = generate_secret(48).unwrap();
        assert_eq!(s.expose().len(), 48);
        assert!(s.expose().bytes().all(|b| ALPHABET.contains(&b)));
        for bad in ['0', 'O', '1', 'l', 'I'] {
            assert!(!ALPHABET.contains(&(bad as u8)));
        }
    }

    #[test]
    fn tap_policy_targets_groups_with_exclusions_winning() {
        let g1 = GroupId(uuid::Uuid::from_u128(1));
        let g2 = GroupId(uuid::Uuid::from_u128(2));
        let p = TapPolicy {
            include_targets: vec![MethodTarget {
                id: g1.to_string(),
                target_type: "group".into(),
                is_registration_required: false,
            }],
            exclude_targets: vec![MethodTarget {
                id: g2.to_string(),
                target_type: "group".into(),
                is_registration_required: false,
            }],
            ..TapPolicy::default()
        };
        assert!(p.targets(&[g1].into_iter().collect()));
        assert!(!p.targets(&[g1, g2].into_iter().collect()));
        assert!(!p.targets(&BTreeSet::new()));
        assert!(TapPolicy::default().targets(&BTreeSet::new()));
    }
}
