//! The passkey half of the authentication methods policy, in Graph's shapes:
//! `fido2AuthenticationMethodConfiguration` (who may use passkeys, which
//! authenticator models, whether attestation must be verified) and
//! `registrationEnforcement.authenticationMethodsRegistrationCampaign` (who
//! is nudged to register one after signing in).
//!
//! The rules are pure functions of a policy and what is known about the
//! user and the authenticator; [`PasskeyPolicies`] keeps the documents and
//! the campaign's snooze counts in the store. Every interface (sign-in
//! pages, security info, Graph) asks these functions — none re-implements a
//! rule.
//!
//! An AAGUID is what the authenticator *says* it is. Without attestation it
//! is self-reported, so an allow or block list is a guard-rail, not a
//! control; with `isAttestationEnforced` the AAGUID is vouched for by a
//! certificate chain to one of the configured roots (Entra ID documents the
//! same caveat).

use super::tap::{MethodState, MethodTarget, POLICIES, PolicyViolation, check_targets};
use crate::ids::{GroupId, UserId};
use crate::store::{Durability, Store, StoreError, decode, encode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

const FIDO2_KEY: &str = "fido2";
const CAMPAIGN_KEY: &str = "registrationCampaign";
/// Per-user campaign snoozes.
pub const SNOOZES: &str = "campaign_snooze";
/// How often a user may answer **Not now** before an enforcing campaign
/// stops offering it (Entra ID allows three).
pub const ALLOWED_SNOOZES: u32 = 3;
/// At most this many AAGUIDs in `keyRestrictions.aaGuids`.
pub const MAX_AAGUIDS: usize = 500;
/// `snoozeDurationInDays` range.
pub const SNOOZE_DAYS: (u32, u32) = (0, 14);

/// Graph `fido2AuthenticationMethodConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fido2Policy {
    pub state: MethodState,
    pub include_targets: Vec<MethodTarget>,
    pub exclude_targets: Vec<MethodTarget>,
    pub is_self_service_registration_allowed: bool,
    pub is_attestation_enforced: bool,
    pub key_restrictions: KeyRestrictions,
}

/// Graph `fido2KeyRestrictions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRestrictions {
    pub is_enforced: bool,
    pub enforcement_type: Enforcement,
    /// Lower-case hyphenated AAGUIDs (normalised by [`Fido2Policy::validate`]).
    pub aa_guids: Vec<String>,
}

/// Graph `fido2RestrictionEnforcementType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Enforcement {
    Allow,
    Block,
}

impl Default for Fido2Policy {
    /// Passkeys for everyone, registered by the users themselves, any
    /// authenticator, attestation not required: what Gatepass did before the
    /// policy existed.
    fn default() -> Self {
        Self {
            state: MethodState::Enabled,
            include_targets: vec![MethodTarget {
                id: super::tap::ALL_USERS.to_owned(),
                target_type: "group".to_owned(),
                is_registration_required: false,
            }],
            exclude_targets: Vec::new(),
            is_self_service_registration_allowed: true,
            is_attestation_enforced: false,
            key_restrictions: KeyRestrictions {
                is_enforced: false,
                enforcement_type: Enforcement::Block,
                aa_guids: Vec::new(),
            },
        }
    }
}

/// Why the passkey policy refuses a registration or a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The method is off (`state: disabled`).
    Disabled,
    /// The user is not in `includeTargets`, or is in `excludeTargets`.
    NotTargeted,
    /// `isSelfServiceRegistrationAllowed` is false.
    NoSelfService,
    /// `isAttestationEnforced` and the authenticator's attestation was
    /// missing or did not chain to a configured root.
    AttestationRequired,
    /// `isAttestationEnforced` but this server has no attestation roots.
    NoAttestationRoots,
    /// `keyRestrictions` do not admit this model.
    ModelRestricted { aaguid: Uuid, name: Option<String> },
}

impl Refusal {
    /// Names the authenticator model in the message, when it is known.
    #[must_use]
    pub fn named(self, names: &super::authenticators::Authenticators) -> Refusal {
        match self {
            Refusal::ModelRestricted { aaguid, .. } => Refusal::ModelRestricted {
                aaguid,
                name: names.name(aaguid).map(str::to_owned),
            },
            other => other,
        }
    }

    /// A stable code for logs and JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Disabled => "passkey_policy.disabled",
            Refusal::NotTargeted => "passkey_policy.not_targeted",
            Refusal::NoSelfService => "passkey_policy.no_self_service",
            Refusal::AttestationRequired => "passkey_policy.attestation_required",
            Refusal::NoAttestationRoots => "passkey_policy.no_attestation_roots",
            Refusal::ModelRestricted { .. } => "passkey_policy.model_restricted",
        }
    }

    /// What the user is told (and the audit log records).
    pub fn message(&self) -> String {
        match self {
            Refusal::Disabled => "Your organization has turned passkeys off.".to_owned(),
            Refusal::NotTargeted => {
                "Your organization's passkey policy does not include your account.".to_owned()
            }
            Refusal::NoSelfService => {
                "Your organization does not let you register passkeys yourself; ask an administrator."
                    .to_owned()
            }
            Refusal::AttestationRequired => {
                "Your organization accepts only authenticators that prove their make and model \
                 (attestation), and this one did not. Use a security key your organization issued."
                    .to_owned()
            }
            Refusal::NoAttestationRoots => {
                "Your organization requires attested authenticators, but this server has no \
                 attestation roots configured; ask an administrator."
                    .to_owned()
            }
            Refusal::ModelRestricted { aaguid, name } => format!(
                "Your organization's passkey policy does not allow this authenticator ({}).",
                name.clone().unwrap_or_else(|| format!("model {aaguid}"))
            ),
        }
    }
}

impl Fido2Policy {
    /// Checks the document and normalises the AAGUIDs; the first broken
    /// rule names its Graph property. `roots` says whether this server can
    /// verify attestation at all (`[passkeys] attestation_roots`).
    pub fn validate(&mut self, roots: bool) -> Result<(), PolicyViolation> {
        check_targets(&self.include_targets, &self.exclude_targets)?;
        if self.key_restrictions.aa_guids.len() > MAX_AAGUIDS {
            return Err(PolicyViolation {
                field: "keyRestrictions",
                message: format!("aaGuids holds at most {MAX_AAGUIDS} entries"),
            });
        }
        let mut seen = BTreeSet::new();
        let mut normalised = Vec::with_capacity(self.key_restrictions.aa_guids.len());
        for raw in &self.key_restrictions.aa_guids {
            let id = Uuid::parse_str(raw.trim()).map_err(|_| PolicyViolation {
                field: "keyRestrictions",
                message: format!("aaGuids entry {raw:?} is not an AAGUID (a UUID)"),
            })?;
            if seen.insert(id) {
                normalised.push(id.hyphenated().to_string());
            }
        }
        self.key_restrictions.aa_guids = normalised;
        if self.is_attestation_enforced && !roots {
            return Err(PolicyViolation {
                field: "isAttestationEnforced",
                message: "this server has no attestation roots to verify authenticators against; \
                          set [passkeys] attestation_roots first"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// Whether the configuration includes a user in `groups`.
    pub fn targets(&self, groups: &BTreeSet<GroupId>) -> bool {
        super::tap::is_targeted(&self.include_targets, &self.exclude_targets, groups)
    }

    /// Whether [`Fido2Policy::targets`] needs the user's groups.
    pub fn needs_groups(&self) -> bool {
        super::tap::needs_groups(&self.include_targets, &self.exclude_targets)
    }

    /// Whether `keyRestrictions` admit authenticator model `aaguid`.
    pub fn admits_model(&self, aaguid: Uuid) -> bool {
        let r = &self.key_restrictions;
        if !r.is_enforced {
            return true;
        }
        let listed = r
            .aa_guids
            .iter()
            .any(|a| Uuid::parse_str(a).is_ok_and(|a| a == aaguid));
        match r.enforcement_type {
            Enforcement::Allow => listed,
            Enforcement::Block => !listed,
        }
    }

    fn usable_by(&self, targeted: bool) -> Result<(), Refusal> {
        if self.state == MethodState::Disabled {
            return Err(Refusal::Disabled);
        }
        if !targeted {
            return Err(Refusal::NotTargeted);
        }
        Ok(())
    }

    /// Whether a user (`targeted` or not) may start registering a passkey
    /// themselves.
    pub fn may_register(&self, targeted: bool) -> Result<(), Refusal> {
        self.usable_by(targeted)?;
        if !self.is_self_service_registration_allowed {
            return Err(Refusal::NoSelfService);
        }
        Ok(())
    }

    /// Whether a finished registration may be kept: `attested` says the
    /// attestation chained to a configured root.
    pub fn admits_registration(
        &self,
        targeted: bool,
        aaguid: Uuid,
        attested: bool,
    ) -> Result<(), Refusal> {
        self.may_register(targeted)?;
        if self.is_attestation_enforced && !attested {
            return Err(Refusal::AttestationRequired);
        }
        self.model(aaguid)
    }

    /// Whether a registered passkey of model `aaguid` may sign in now. The
    /// key restrictions apply to passkeys registered before they changed;
    /// attestation is a registration-time check (a passkey registered
    /// unattested stays usable until its model is restricted or it is
    /// deleted), as in Entra ID.
    pub fn admits_sign_in(&self, targeted: bool, aaguid: Uuid) -> Result<(), Refusal> {
        self.usable_by(targeted)?;
        self.model(aaguid)
    }

    fn model(&self, aaguid: Uuid) -> Result<(), Refusal> {
        if self.admits_model(aaguid) {
            Ok(())
        } else {
            Err(Refusal::ModelRestricted { aaguid, name: None })
        }
    }
}

/// Graph `advancedConfigState` of the campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CampaignState {
    /// Graph's "Microsoft managed"; Gatepass treats it as disabled.
    Default,
    Enabled,
    Disabled,
}

/// Graph `authenticationMethodsRegistrationCampaignIncludeTarget`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignTarget {
    pub id: String,
    #[serde(default = "group")]
    pub target_type: String,
    pub targeted_authentication_method: String,
}

/// Graph `excludeTarget`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExcludeTarget {
    pub id: String,
    #[serde(default = "group")]
    pub target_type: String,
}

fn group() -> String {
    "group".to_owned()
}

/// Graph `authenticationMethodsRegistrationCampaign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationCampaign {
    pub state: CampaignState,
    pub snooze_duration_in_days: u32,
    pub enforce_registration_after_allowed_snoozes: bool,
    pub include_targets: Vec<CampaignTarget>,
    pub exclude_targets: Vec<ExcludeTarget>,
}

impl Default for RegistrationCampaign {
    /// Graph's defaults, with the passkey as the targeted method.
    fn default() -> Self {
        Self {
            state: CampaignState::Default,
            snooze_duration_in_days: 1,
            enforce_registration_after_allowed_snoozes: true,
            include_targets: vec![CampaignTarget {
                id: super::tap::ALL_USERS.to_owned(),
                target_type: "group".to_owned(),
                targeted_authentication_method: "fido2".to_owned(),
            }],
            exclude_targets: Vec::new(),
        }
    }
}

/// What the campaign asks of a user who just signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nudge {
    /// Nothing: continue.
    None,
    /// The interrupt, with **Not now** when `may_snooze`.
    Offer { may_snooze: bool },
}

/// A user's answers to the campaign so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snoozes {
    pub count: u32,
    /// Unix seconds of the last **Not now**.
    pub last: i64,
}

/// The passkey methods Gatepass can nudge towards: Graph's `fido2` (and
/// `passkey`, the name Entra's portal uses).
fn is_passkey_method(name: &str) -> bool {
    name.eq_ignore_ascii_case("fido2") || name.eq_ignore_ascii_case("passkey")
}

impl RegistrationCampaign {
    /// Checks the document; the first broken rule names its property.
    pub fn validate(&self) -> Result<(), PolicyViolation> {
        let (lo, hi) = SNOOZE_DAYS;
        if !(lo..=hi).contains(&self.snooze_duration_in_days) {
            return Err(PolicyViolation {
                field: "snoozeDurationInDays",
                message: format!(
                    "must be between {lo} and {hi}, got {}",
                    self.snooze_duration_in_days
                ),
            });
        }
        for t in &self.include_targets {
            check_campaign_target("includeTargets", &t.id, &t.target_type)?;
            if !is_passkey_method(&t.targeted_authentication_method) {
                return Err(PolicyViolation {
                    field: "includeTargets",
                    message: format!(
                        "targetedAuthenticationMethod {:?} is not supported; Gatepass campaigns for \"fido2\" (passkeys)",
                        t.targeted_authentication_method
                    ),
                });
            }
        }
        for t in &self.exclude_targets {
            check_campaign_target("excludeTargets", &t.id, &t.target_type)?;
        }
        Ok(())
    }

    /// Whether the campaign includes `user` (in `groups`); exclusions win.
    pub fn targets(&self, user: UserId, groups: &BTreeSet<GroupId>) -> bool {
        let hit = |id: &str, kind: &str| match kind {
            "user" => UserId::parse(id).is_some_and(|u| u == user),
            _ => {
                id == super::tap::ALL_USERS
                    || GroupId::parse(id).is_some_and(|g| groups.contains(&g))
            }
        };
        self.include_targets
            .iter()
            .any(|t| hit(&t.id, &t.target_type))
            && !self
                .exclude_targets
                .iter()
                .any(|t| hit(&t.id, &t.target_type))
    }

    /// Whether [`RegistrationCampaign::targets`] needs the user's groups.
    pub fn needs_groups(&self) -> bool {
        let group = |id: &str, kind: &str| kind == "group" && id != super::tap::ALL_USERS;
        self.include_targets
            .iter()
            .any(|t| group(&t.id, &t.target_type))
            || self
                .exclude_targets
                .iter()
                .any(|t| group(&t.id, &t.target_type))
    }

    /// The campaign's answer for a user who just signed in: `targeted` by
    /// it, `has_passkey` already, `can_register` under the passkey policy,
    /// with `snoozes` so far, at `now`.
    pub fn nudge(
        &self,
        targeted: bool,
        has_passkey: bool,
        can_register: bool,
        snoozes: Snoozes,
        now: i64,
    ) -> Nudge {
        if self.state != CampaignState::Enabled || !targeted || has_passkey || !can_register {
            return Nudge::None;
        }
        let may_snooze =
            !(self.enforce_registration_after_allowed_snoozes && snoozes.count >= ALLOWED_SNOOZES);
        // Every Not now lasts its days, the last allowed one too; the
        // prompt after it is the enforced one.
        let snoozed_until = snoozes.last + i64::from(self.snooze_duration_in_days) * 86_400;
        if snoozes.count > 0 && now < snoozed_until {
            return Nudge::None;
        }
        Nudge::Offer { may_snooze }
    }
}

fn check_campaign_target(field: &'static str, id: &str, kind: &str) -> Result<(), PolicyViolation> {
    let ok = match kind {
        "user" => UserId::parse(id).is_some(),
        "group" => id == super::tap::ALL_USERS || GroupId::parse(id).is_some(),
        other => {
            return Err(PolicyViolation {
                field,
                message: format!(
                    "targetType {other:?} is not supported; use \"group\" or \"user\""
                ),
            });
        }
    };
    if ok {
        Ok(())
    } else {
        Err(PolicyViolation {
            field,
            message: format!("{id:?} is not a valid {kind} id"),
        })
    }
}

/// The stored passkey policy and campaign, and the campaign's snoozes.
#[derive(Clone)]
pub struct PasskeyPolicies {
    store: Arc<dyn Store>,
}

impl PasskeyPolicies {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    async fn load<T: serde::de::DeserializeOwned + Default>(
        &self,
        key: &str,
        now: i64,
    ) -> Result<T, StoreError> {
        match self.store.get(POLICIES, key, now).await? {
            Some(r) => decode(POLICIES, &r.value),
            None => Ok(T::default()),
        }
    }

    async fn save<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.store
            .put(POLICIES, key, encode(value)?, None, Durability::Durable)
            .await
            .map(|_| ())
    }

    pub async fn fido2(&self, now: i64) -> Result<Fido2Policy, StoreError> {
        self.load(FIDO2_KEY, now).await
    }

    /// The passkey policy and whether it targets `user` (reading the
    /// user's groups only when a target names a group).
    pub async fn fido2_for(
        &self,
        directory: &crate::directory::Directory,
        user: &crate::directory::User,
        now: time::OffsetDateTime,
    ) -> Result<(Fido2Policy, bool), crate::directory::DirectoryError> {
        let policy = self.fido2(now.unix_timestamp()).await?;
        let groups = if policy.needs_groups() {
            directory.groups_of(user.id, now).await?
        } else {
            BTreeSet::new()
        };
        let targeted = policy.targets(&groups);
        Ok((policy, targeted))
    }

    pub async fn set_fido2(&self, policy: &Fido2Policy) -> Result<(), StoreError> {
        self.save(FIDO2_KEY, policy).await
    }

    pub async fn campaign(&self, now: i64) -> Result<RegistrationCampaign, StoreError> {
        self.load(CAMPAIGN_KEY, now).await
    }

    pub async fn set_campaign(&self, campaign: &RegistrationCampaign) -> Result<(), StoreError> {
        self.save(CAMPAIGN_KEY, campaign).await
    }

    pub async fn snoozes(&self, user: UserId, now: i64) -> Result<Snoozes, StoreError> {
        match self.store.get(SNOOZES, &user.to_string(), now).await? {
            Some(r) => decode(SNOOZES, &r.value),
            None => Ok(Snoozes::default()),
        }
    }

    /// Counts one **Not now** (compare-and-swap: two answers at once both
    /// count). Returns the new count.
    pub async fn snooze(&self, user: UserId, now: i64) -> Result<Snoozes, StoreError> {
        let key = user.to_string();
        loop {
            let current = self.store.get(SNOOZES, &key, now).await?;
            let (before, version) = match &current {
                Some(r) => (decode::<Snoozes>(SNOOZES, &r.value)?, Some(r.version)),
                None => (Snoozes::default(), None),
            };
            let after = Snoozes {
                count: before.count.saturating_add(1),
                last: now,
            };
            let done = match version {
                Some(v) => self
                    .store
                    .compare_and_swap(
                        SNOOZES,
                        &key,
                        v,
                        Some(encode(&after)?),
                        None,
                        Durability::Durable,
                        now,
                    )
                    .await?
                    .is_some(),
                None => self
                    .store
                    .insert(
                        SNOOZES,
                        &key,
                        encode(&after)?,
                        None,
                        Durability::Durable,
                        now,
                    )
                    .await?
                    .is_some(),
            };
            if done {
                return Ok(after);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const YUBI: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
    const OTHER: &str = "08987058-cadc-4b81-b6e1-30de50dcbe96";

    fn restricted(kind: Enforcement) -> Fido2Policy {
        let mut p = Fido2Policy {
            key_restrictions: KeyRestrictions {
                is_enforced: true,
                enforcement_type: kind,
                aa_guids: vec![YUBI.to_uppercase()],
            },
            ..Fido2Policy::default()
        };
        p.validate(false).unwrap();
        p
    }

    #[test]
    fn allow_and_block_lists_decide_by_model_and_normalise_case() {
        let (yubi, other) = (
            Uuid::parse_str(YUBI).unwrap(),
            Uuid::parse_str(OTHER).unwrap(),
        );
        let allow = restricted(Enforcement::Allow);
        assert_eq!(allow.key_restrictions.aa_guids, vec![YUBI.to_owned()]);
        assert!(allow.admits_registration(true, yubi, false).is_ok());
        assert!(matches!(
            allow.admits_registration(true, other, false),
            Err(Refusal::ModelRestricted { .. })
        ));
        let block = restricted(Enforcement::Block);
        assert!(block.admits_sign_in(true, other).is_ok());
        assert!(block.admits_sign_in(true, yubi).is_err());
        // Not enforced: the list is kept but decides nothing.
        let mut off = allow.clone();
        off.key_restrictions.is_enforced = false;
        assert!(off.admits_sign_in(true, other).is_ok());
    }

    #[test]
    fn state_targets_self_service_and_attestation_refuse_in_that_order() {
        let aaguid = Uuid::nil();
        let mut p = Fido2Policy::default();
        assert_eq!(p.may_register(false), Err(Refusal::NotTargeted));
        p.state = MethodState::Disabled;
        assert_eq!(p.admits_sign_in(true, aaguid), Err(Refusal::Disabled));
        p.state = MethodState::Enabled;
        p.is_self_service_registration_allowed = false;
        assert_eq!(p.may_register(true), Err(Refusal::NoSelfService));
        // Self-service is about registering, not signing in.
        assert!(p.admits_sign_in(true, aaguid).is_ok());
        p.is_self_service_registration_allowed = true;
        p.is_attestation_enforced = true;
        assert_eq!(
            p.admits_registration(true, aaguid, false),
            Err(Refusal::AttestationRequired)
        );
        assert!(p.admits_registration(true, aaguid, true).is_ok());
        assert!(p.admits_sign_in(true, aaguid).is_ok());
    }

    #[test]
    fn validation_names_the_property() {
        let mut p = Fido2Policy::default();
        p.key_restrictions.aa_guids = vec!["not-a-uuid".into()];
        assert_eq!(p.validate(true).unwrap_err().field, "keyRestrictions");
        let mut p = Fido2Policy {
            is_attestation_enforced: true,
            ..Fido2Policy::default()
        };
        assert_eq!(
            p.validate(false).unwrap_err().field,
            "isAttestationEnforced"
        );
        assert!(p.validate(true).is_ok());
        let mut c = RegistrationCampaign {
            snooze_duration_in_days: 15,
            ..RegistrationCampaign::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "snoozeDurationInDays");
        c.snooze_duration_in_days = 14;
        c.include_targets[0].targeted_authentication_method = "microsoftAuthenticator".into();
        assert_eq!(c.validate().unwrap_err().field, "includeTargets");
    }

    #[test]
    fn the_campaign_offers_snoozes_then_enforces() {
        let c = RegistrationCampaign {
            state: CampaignState::Enabled,
            snooze_duration_in_days: 1,
            ..RegistrationCampaign::default()
        };
        let day = 86_400;
        let fresh = Snoozes::default();
        assert_eq!(
            c.nudge(true, false, true, fresh, 0),
            Nudge::Offer { may_snooze: true }
        );
        // Never for a user who has a passkey, is not targeted, or could not
        // register one; never while the campaign is not enabled.
        assert_eq!(c.nudge(true, true, true, fresh, 0), Nudge::None);
        assert_eq!(c.nudge(false, false, true, fresh, 0), Nudge::None);
        assert_eq!(c.nudge(true, false, false, fresh, 0), Nudge::None);
        let default = RegistrationCampaign::default();
        assert_eq!(default.nudge(true, false, true, fresh, 0), Nudge::None);
        // Snoozed for a day, then asked again.
        let once = Snoozes { count: 1, last: 0 };
        assert_eq!(c.nudge(true, false, true, once, day - 1), Nudge::None);
        assert_eq!(
            c.nudge(true, false, true, once, day),
            Nudge::Offer { may_snooze: true }
        );
        // The last allowed snooze lasts its day too; after it, no more
        // Not now.
        let spent = Snoozes {
            count: ALLOWED_SNOOZES,
            last: 0,
        };
        assert_eq!(c.nudge(true, false, true, spent, 10), Nudge::None);
        assert_eq!(
            c.nudge(true, false, true, spent, day),
            Nudge::Offer { may_snooze: false }
        );
        let lenient = RegistrationCampaign {
            enforce_registration_after_allowed_snoozes: false,
            ..c.clone()
        };
        assert_eq!(
            lenient.nudge(true, false, true, spent, day),
            Nudge::Offer { may_snooze: true }
        );
        // Zero days: asked at every sign-in.
        let nagging = RegistrationCampaign {
            snooze_duration_in_days: 0,
            ..c
        };
        assert_eq!(
            nagging.nudge(true, false, true, once, 1),
            Nudge::Offer { may_snooze: true }
        );
    }

    #[test]
    fn campaign_targets_users_groups_and_exclusions() {
        let user = UserId::parse("6e7b1c2a-0000-4000-8000-000000000001").unwrap();
        let group = GroupId::parse("6e7b1c2a-0000-4000-8000-0000000000aa").unwrap();
        let mut c = RegistrationCampaign::default();
        let groups: BTreeSet<GroupId> = [group].into();
        assert!(c.targets(user, &groups));
        c.exclude_targets = vec![ExcludeTarget {
            id: group.to_string(),
            target_type: "group".into(),
        }];
        assert!(c.needs_groups());
        assert!(!c.targets(user, &groups));
        assert!(c.targets(user, &BTreeSet::new()));
        c.include_targets = vec![CampaignTarget {
            id: user.to_string(),
            target_type: "user".into(),
            targeted_authentication_method: "Fido2".into(),
        }];
        c.exclude_targets.clear();
        assert!(c.validate().is_ok());
        assert!(c.targets(user, &BTreeSet::new()));
        let someone_else = UserId::parse("6e7b1c2a-0000-4000-8000-000000000002").unwrap();
        assert!(!c.targets(someone_else, &BTreeSet::new()));
    }
}
