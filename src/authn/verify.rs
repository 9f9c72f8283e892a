//! Verifying a first-factor credential (password or Temporary Access Pass)
//! for a username, with throttling. The sign-in pages call this; so does the
//! TAP benchmark, so what is measured is what runs.
//!
//! Order matters for security and cost: a locked account or source is
//! refused before any hash is computed; every other attempt costs exactly
//! one argon2id verification (a dummy one when there is nothing to verify
//! against), so timing reveals neither whether the user exists nor which
//! part failed; a one-time pass is consumed by one compare-and-swap.

use super::password::{PasswordError, PasswordHasher};
use super::tap::{RedeemError, Redeemed, TapPolicy, Taps, TemporaryAccessPass, UsabilityReason};
use super::throttle::{Attempt, NewLockout, Refused, Throttle, Ticket};
use crate::directory::{Directory, DirectoryError, User};
use crate::policy::session_limiter::MethodInventory;
use crate::store::StoreError;
use std::net::IpAddr;
use time::OffsetDateTime;

/// What the user presented.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    Password(&'a str),
    TemporaryAccessPass(&'a str),
}

/// The outcome of one attempt.
#[derive(Debug)]
pub enum Verdict {
    Accepted {
        user: User,
        pass: Option<TemporaryAccessPass>,
    },
    /// Refused before checking the credential (a lockout).
    Locked(Refused),
    /// Wrong credential, unknown or disabled user, unusable pass. `reason`
    /// is for the sign-in log only; `error_code` is Entra's AADSTS number.
    Failed {
        user: Option<User>,
        reason: &'static str,
        error_code: u32,
        /// Lockouts this failure started (of the account, the source).
        lockouts: Vec<NewLockout>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Every hashing slot and queue place is taken; nothing was verified
    /// (and the attempt was not counted).
    #[error("too many sign-ins at once; retry shortly")]
    Busy,
    #[error("hashing failed")]
    Hashing,
}

impl From<PasswordError> for VerifyError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => VerifyError::Busy,
            PasswordError::TooShort | PasswordError::TooLong | PasswordError::Hashing => {
                VerifyError::Hashing
            }
        }
    }
}

impl From<RedeemError> for VerifyError {
    fn from(e: RedeemError) -> Self {
        match e {
            RedeemError::Store(s) => VerifyError::Store(s),
            RedeemError::Hashing(h) => h.into(),
        }
    }
}

impl VerifyError {
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            VerifyError::Store(StoreError::Unavailable(_))
                | VerifyError::Directory(DirectoryError::Store(StoreError::Unavailable(_)))
        )
    }
}

/// Why the method inventory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Passkey(#[from] super::passkey::PasskeyError),
}

impl InventoryError {
    pub fn is_unavailable(&self) -> bool {
        match self {
            InventoryError::Verify(e) => e.is_unavailable(),
            InventoryError::Directory(DirectoryError::Store(StoreError::Unavailable(_)))
            | InventoryError::Passkey(super::passkey::PasskeyError::Store(
                StoreError::Unavailable(_),
            )) => true,
            InventoryError::Directory(_) | InventoryError::Passkey(_) => false,
        }
    }
}

/// A checked credential: the pass it used (if any), or the log's reason
/// and Entra error code for a failure.
type CheckOutcome = Result<Option<TemporaryAccessPass>, (&'static str, u32)>;

/// The services one verification needs.
#[derive(Clone, Copy)]
pub struct Verifier<'a> {
    pub directory: &'a Directory,
    pub taps: &'a Taps,
    pub throttle: &'a Throttle,
    pub hasher: &'a PasswordHasher,
}

impl Verifier<'_> {
    /// The TAP policy and whether it targets `user` (group lookups only when
    /// the policy names groups).
    pub async fn tap_policy_for(
        &self,
        user: &User,
        now: OffsetDateTime,
    ) -> Result<(TapPolicy, bool), VerifyError> {
        let policy = self.taps.policy(now.unix_timestamp()).await?;
        let groups = if policy.needs_groups() {
            self.directory.groups_of(user.id, now).await?
        } else {
            Default::default()
        };
        let targeted = policy.targets(&groups);
        Ok((policy, targeted))
    }

    /// The user's pass if it would be accepted right now.
    pub async fn usable_pass(
        &self,
        user: &User,
        now: OffsetDateTime,
    ) -> Result<Option<TemporaryAccessPass>, VerifyError> {
        let t = now.unix_timestamp();
        let Some((pass, _)) = self.taps.pass(user.id, t).await? else {
            return Ok(None);
        };
        let (policy, targeted) = self.tap_policy_for(user, now).await?;
        Ok(
            (pass.usability(&policy, targeted, t) == UsabilityReason::EnabledByPolicy)
                .then_some(pass),
        )
    }

    /// What the user could sign in with right now, as the removal rule
    /// ([`crate::policy::session_limiter::admit_removal`]) counts it: a
    /// passkey the passkey policy no longer admits signs nobody in, so it
    /// does not count.
    pub async fn inventory(
        &self,
        passkeys: &super::passkey::Passkeys,
        policies: &super::passkey_policy::PasskeyPolicies,
        user: &User,
        now: OffsetDateTime,
    ) -> Result<MethodInventory, InventoryError> {
        let (policy, targeted) = policies.fido2_for(self.directory, user, now).await?;
        let usable_passkeys = passkeys
            .list(user.id, now.unix_timestamp())
            .await?
            .iter()
            .filter(|p| {
                let model = uuid::Uuid::parse_str(&p.aaguid).unwrap_or_default();
                policy.admits_sign_in(targeted, model).is_ok()
            })
            .count();
        Ok(MethodInventory {
            password: self.directory.password_hash(user.id, now).await?.is_some(),
            usable_pass: self.usable_pass(user, now).await?.is_some(),
            passkeys: usable_passkeys,
        })
    }

    /// One sign-in attempt.
    pub async fn verify(
        &self,
        username: &str,
        ip: IpAddr,
        credential: Credential<'_>,
        now: OffsetDateTime,
    ) -> Result<Verdict, VerifyError> {
        let t = now.unix_timestamp();
        // Counted before any hash runs: concurrent guesses get no extra tries.
        let ticket = match self.throttle.admit(username, ip, t).await? {
            Attempt::Admitted(ticket) => ticket,
            Attempt::Refused(refused) => return Ok(Verdict::Locked(refused)),
        };
        match self.check(username, credential, now).await {
            Ok((outcome, user)) => self.settle(&ticket, username, ip, outcome, user, t).await,
            Err(e) => {
                // Not verified (busy, store down): the attempt never happened.
                self.throttle.forget(&ticket, username, ip, t).await?;
                Err(e)
            }
        }
    }

    /// Checks the credential: exactly one argon2id verification.
    async fn check(
        &self,
        username: &str,
        credential: Credential<'_>,
        now: OffsetDateTime,
    ) -> Result<(CheckOutcome, Option<User>), VerifyError> {
        let t = now.unix_timestamp();
        let user = self.directory.user_by_upn(username, now).await?;
        let secret = match credential {
            Credential::Password(s) | Credential::TemporaryAccessPass(s) => s,
        };
        let outcome: CheckOutcome = match (&user, credential) {
            (None, _) => {
                self.hasher.verify_dummy(secret).await?;
                Err(("User account not found", 50034))
            }
            // Checked before the credential so a disabled account never
            // consumes a one-time pass.
            (Some(u), _) if !u.account_enabled => {
                self.hasher.verify_dummy(secret).await?;
                Err(("User account is disabled", 50057))
            }
            (Some(u), Credential::Password(password)) => {
                match self.directory.password_hash(u.id, now).await? {
                    Some(phc) if !password.is_empty() => {
                        if self.hasher.verify(password, &phc).await? {
                            Ok(None)
                        } else {
                            Err(("Invalid username or password", 50126))
                        }
                    }
                    _ => {
                        self.hasher.verify_dummy(password).await?;
                        Err(("Invalid username or password", 50126))
                    }
                }
            }
            (Some(u), Credential::TemporaryAccessPass(tap)) => {
                let (policy, targeted) = self.tap_policy_for(u, now).await?;
                match self
                    .taps
                    .redeem(self.hasher, u.id, &policy, targeted, tap, t)
                    .await?
                {
                    Redeemed::Accepted(pass) => Ok(Some(pass)),
                    Redeemed::Rejected => Err(("Invalid Temporary Access Pass", 130507)),
                    Redeemed::Unusable(reason) => Err(match reason {
                        UsabilityReason::Expired => ("Temporary Access Pass has expired", 130504),
                        UsabilityReason::NotYetValid => {
                            ("Temporary Access Pass is not yet valid", 130507)
                        }
                        UsabilityReason::OneTimeUsed => {
                            ("Temporary Access Pass was already used", 130507)
                        }
                        UsabilityReason::DisabledByPolicy | UsabilityReason::EnabledByPolicy => (
                            "Temporary Access Pass sign-in was blocked by the Temporary Access Pass policy",
                            130507,
                        ),
                    }),
                }
            }
        };
        Ok((outcome, user))
    }

    /// Tells the throttle how the attempt went and builds the verdict.
    async fn settle(
        &self,
        ticket: &Ticket,
        username: &str,
        ip: IpAddr,
        outcome: CheckOutcome,
        user: Option<User>,
        t: i64,
    ) -> Result<Verdict, VerifyError> {
        match (outcome, user) {
            (Ok(pass), Some(user)) => {
                self.throttle
                    .record_success(ticket, username, ip, t)
                    .await?;
                Ok(Verdict::Accepted { user, pass })
            }
            (Err((reason, error_code)), user) => {
                let lockouts = self
                    .throttle
                    .record_failure(ticket, username, ip, t)
                    .await?;
                Ok(Verdict::Failed {
                    user,
                    reason,
                    error_code,
                    lockouts,
                })
            }
            (Ok(_), None) => Ok(Verdict::Failed {
                user: None,
                reason: "User account not found",
                error_code: 50034,
                lockouts: Vec::new(),
            }),
        }
    }
}
