//! Authorization codes, grants and refresh-token families.
//!
//! A *grant* is everything one authorization produced: the code, the access
//! tokens (which name the grant), and a family of refresh tokens. Deleting
//! the grant record revokes all of it at once.
//!
//! ```text
//!   code: Issued ──redeem──▶ Redeemed{grant}      (replay ⇒ revoke grant)
//!                                │
//!   refresh: Active ──rotate──▶ Rotated  +  new Active
//!               │                 │
//!               └──────reuse of a Rotated token ⇒ revoke grant (whole family)
//! ```
//!
//! Each arrow is one atomic store step (a versioned [`Txn`]): of two
//! concurrent redemptions or rotations exactly one wins, and the loser is
//! treated as the replay it is.

use crate::authn::AuthMethod;
use crate::ids::{GrantId, OpaqueSecret, SecretDigest, UserId};
use crate::protocol::dpop::Jkt;
use crate::protocol::scope::Scope;
use crate::store::{Durability, Precondition, Store, StoreError, Txn, decode, encode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;

pub const CODES: &str = "code";
pub const GRANTS: &str = "grant";
pub const REFRESH_TOKENS: &str = "refresh";
pub const REVOKED_ACCESS_TOKENS: &str = "revoked_jti";

/// Codes are single-use and live 60 s (DESIGN §7).
pub const CODE_LIFETIME: time::Duration = time::Duration::seconds(60);
/// How long a redeemed code is remembered so a replay can revoke its grant.
const REDEEMED_MEMORY: time::Duration = time::Duration::hours(1);

/// What the user authorized, carried from the code into the grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    pub user_id: UserId,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Scope,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub methods: Vec<AuthMethod>,
    /// The browser session's `sid` and the digest of its cookie.
    pub sid: String,
    pub session: SecretDigest,
    /// The user's session epoch at sign-in ("sign out everywhere" check).
    pub epoch: u64,
    /// The latest instant any token of this authorization may be valid
    /// (a TAP sign-in ends no later than the pass).
    pub not_after: Option<i64>,
    /// The pass a TAP sign-in used: deleting or replacing it revokes every
    /// token of this authorization.
    #[serde(default)]
    pub tap_id: Option<String>,
    /// The model (AAGUID) of the passkey the sign-in used, so a refresh is
    /// judged by strengths restricted to some models as the sign-in was.
    #[serde(default)]
    pub passkey: Option<uuid::Uuid>,
}

impl Grant {
    /// A grant with refresh tokens is a credential the client holds: it
    /// must survive a crash. One without is as disposable as a code.
    fn durability(&self) -> Durability {
        if self.offline {
            Durability::Durable
        } else {
            Durability::Ephemeral
        }
    }
}

/// `txn` with `grant` written, and its first refresh token when it is
/// offline (returned, shown to the client once).
fn grant_writes(txn: Txn, grant: &Grant) -> Result<(Txn, Option<OpaqueSecret>), GrantError> {
    let txn = txn.put(
        GRANTS,
        grant.id.to_string(),
        encode(grant)?,
        Some(grant.expires_at),
    );
    if !grant.offline {
        return Ok((txn, None));
    }
    let token = OpaqueSecret::generate()?;
    let txn = txn.put(
        REFRESH_TOKENS,
        token.digest().as_str(),
        encode(&RefreshRecord {
            grant: grant.id,
            state: RefreshState::Active,
        })?,
        Some(grant.expires_at),
    );
    Ok((txn, Some(token)))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum CodeState {
    Issued {
        authorization: Box<Authorization>,
        expires_at: i64,
    },
    Redeemed {
        grant: GrantId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: GrantId,
    pub authorization: Authorization,
    /// `offline_access`: refresh tokens outlive the browser session.
    pub offline: bool,
    pub created_at: i64,
    pub expires_at: i64,
    /// RFC 9449 §5: a public client's refresh tokens are bound to the DPoP
    /// key its first token request proved; a refresh must prove the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<Jkt>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum RefreshState {
    Active,
    Rotated,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefreshRecord {
    grant: GrantId,
    state: RefreshState,
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("authorization code is invalid or expired")]
    CodeUnknown,
    #[error("authorization code has expired")]
    CodeExpired,
    #[error("authorization code was already used; the tokens issued with it are revoked")]
    CodeReplayed,
    #[error("authorization code was issued to another client")]
    ClientMismatch,
    #[error("redirect_uri does not match the authorization request")]
    RedirectMismatch,
    #[error("PKCE verification failed")]
    PkceFailed,
    #[error("code_verifier is required (the authorization request had a code_challenge)")]
    PkceMissing,
    #[error("code_verifier was sent but the authorization request had no code_challenge")]
    PkceUnexpected,
    #[error("refresh token is invalid, expired or revoked")]
    RefreshUnknown,
    #[error("refresh token was already used; the whole token family is revoked")]
    RefreshReused,
    #[error("refresh token was issued to another client")]
    RefreshClientMismatch,
    #[error("refresh token is bound to a DPoP key; present a DPoP proof signed with that key")]
    DpopKeyMismatch,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("random source failed")]
    Random,
}

impl GrantError {
    pub fn code(&self) -> &'static str {
        match self {
            GrantError::CodeUnknown => "grant.code_unknown",
            GrantError::CodeExpired => "grant.code_expired",
            GrantError::CodeReplayed => "grant.code_replayed",
            GrantError::ClientMismatch => "grant.client_mismatch",
            GrantError::RedirectMismatch => "grant.redirect_mismatch",
            GrantError::PkceFailed => "grant.pkce_failed",
            GrantError::PkceMissing => "grant.pkce_missing",
            GrantError::PkceUnexpected => "grant.pkce_unexpected",
            GrantError::RefreshUnknown => "grant.refresh_unknown",
            GrantError::RefreshReused => "grant.refresh_reused",
            GrantError::RefreshClientMismatch => "grant.refresh_client_mismatch",
            GrantError::DpopKeyMismatch => "grant.dpop_key_mismatch",
            GrantError::Store(e) => e.code(),
            GrantError::Random => "grant.random",
        }
    }
}

impl From<crate::ids::RandomError> for GrantError {
    fn from(_: crate::ids::RandomError) -> Self {
        GrantError::Random
    }
}

/// The outcome of redeeming a code or rotating a refresh token.
pub struct Issued {
    pub grant: Grant,
    /// A fresh refresh token when the grant is `offline`.
    pub refresh_token: Option<OpaqueSecret>,
}

/// The token-endpoint inputs that must match the code.
pub struct Redemption<'a> {
    pub client_id: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    /// The DPoP key to bind the grant's refresh tokens to (public clients
    /// that sent a proof; RFC 9449 §5).
    pub dpop_jkt: Option<&'a Jkt>,
}

#[derive(Clone)]
pub struct Grants {
    store: Arc<dyn Store>,
    refresh_lifetime: time::Duration,
    access_lifetime: time::Duration,
}

impl Grants {
    pub fn new(
        store: Arc<dyn Store>,
        refresh_lifetime: time::Duration,
        access_lifetime: time::Duration,
    ) -> Self {
        Self {
            store,
            refresh_lifetime,
            access_lifetime,
        }
    }

    /// Stores a new code for `authorization`; returns the code (shown once).
    pub async fn issue_code(
        &self,
        authorization: Authorization,
        now: OffsetDateTime,
    ) -> Result<OpaqueSecret, GrantError> {
        let code = OpaqueSecret::generate()?;
        let state = CodeState::Issued {
            authorization: Box::new(authorization),
            expires_at: (now + CODE_LIFETIME).unix_timestamp(),
        };
        // The record outlives the code itself so an expired code is told
        // apart from an unknown one. Codes are cheap to lose in a crash
        // (the user signs in again), so the commit is ephemeral.
        self.store
            .put(
                CODES,
                code.digest().as_str(),
                encode(&state)?,
                Some((now + REDEEMED_MEMORY).unix_timestamp()),
                Durability::Ephemeral,
            )
            .await?;
        Ok(code)
    }

    /// Redeems a code exactly once. A second redemption, concurrent or
    /// later, fails and revokes the grant the first one created (RFC 6749
    /// §4.1.2, RFC 9700 §4.5).
    pub async fn redeem_code(
        &self,
        code: &str,
        input: Redemption<'_>,
        now: OffsetDateTime,
    ) -> Result<Issued, GrantError> {
        let (issued, ()) = self
            .redeem_code_alongside(code, input, now, async |_| {})
            .await?;
        Ok(issued)
    }

    /// [`Grants::redeem_code`], running `alongside` — given the code's
    /// authorization once the code has checked out — at the same time as
    /// the write that redeems it. The token endpoint reads the grant's user
    /// this way: on Redis the read and the redeeming script travel
    /// together instead of one round trip after the other. What `alongside`
    /// returns is dropped if the redemption loses a race.
    pub async fn redeem_code_alongside<T>(
        &self,
        code: &str,
        input: Redemption<'_>,
        now: OffsetDateTime,
        alongside: impl AsyncFnOnce(&Authorization) -> T,
    ) -> Result<(Issued, T), GrantError> {
        let key = SecretDigest::of(code);
        let t = now.unix_timestamp();
        let record = self
            .store
            .get(CODES, key.as_str(), t)
            .await?
            .ok_or(GrantError::CodeUnknown)?;
        let (authorization, expires_at) = match decode::<CodeState>(CODES, &record.value)? {
            CodeState::Redeemed { grant } => {
                self.revoke(grant, now).await?;
                return Err(GrantError::CodeReplayed);
            }
            CodeState::Issued {
                authorization,
                expires_at,
            } => (*authorization, expires_at),
        };
        if t >= expires_at {
            return Err(GrantError::CodeExpired);
        }
        if authorization.client_id != input.client_id {
            return Err(GrantError::ClientMismatch);
        }
        if input.redirect_uri != Some(authorization.redirect_uri.as_str()) {
            return Err(GrantError::RedirectMismatch);
        }
        match (&authorization.code_challenge, input.code_verifier) {
            (Some(challenge), Some(verifier)) => {
                if !crate::protocol::pkce::verify_s256(verifier, challenge) {
                    return Err(GrantError::PkceFailed);
                }
            }
            (Some(_), None) => return Err(GrantError::PkceMissing),
            (None, Some(_)) => return Err(GrantError::PkceUnexpected),
            (None, None) => {}
        }

        let grant = self.new_grant(authorization, input.dpop_jkt, now)?;
        let redeemed = CodeState::Redeemed { grant: grant.id };
        let txn = Txn::new(grant.durability())
            .require(CODES, key.as_str(), Precondition::Version(record.version))
            .put(
                CODES,
                key.as_str(),
                encode(&redeemed)?,
                Some((now + REDEEMED_MEMORY).unix_timestamp()),
            );
        let (txn, refresh_token) = grant_writes(txn, &grant)?;
        let (committed, beside) =
            tokio::join!(self.store.commit(txn, t), alongside(&grant.authorization));
        if committed? {
            let issued = Issued {
                grant,
                refresh_token,
            };
            return Ok((issued, beside));
        }
        // Lost a race with a concurrent redemption: that is a replay too.
        if let Some(r) = self.store.get(CODES, key.as_str(), t).await? {
            if let CodeState::Redeemed { grant } = decode::<CodeState>(CODES, &r.value)? {
                self.revoke(grant, now).await?;
            }
        }
        Err(GrantError::CodeReplayed)
    }

    /// Creates the grant for `authorization` in the same atomic step that
    /// replaces the one-time record `(table, key)`, still at `version`, by
    /// `replacement(grant id)` — how an approved device code (RFC 8628)
    /// turns into tokens exactly once. `None`: the record changed first
    /// (a concurrent poll won), and nothing was written. `dpop_jkt` binds
    /// the grant's refresh tokens to a DPoP key (RFC 9449 §5).
    #[allow(clippy::too_many_arguments)]
    pub async fn grant_replacing(
        &self,
        authorization: Authorization,
        dpop_jkt: Option<&Jkt>,
        table: crate::store::Table,
        key: &str,
        version: u64,
        replacement: impl FnOnce(GrantId) -> Result<Vec<u8>, StoreError>,
        replacement_expires_at: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<Option<Issued>, GrantError> {
        let t = now.unix_timestamp();
        let grant = self.new_grant(authorization, dpop_jkt, now)?;
        let txn = Txn::new(grant.durability())
            .require(table, key, Precondition::Version(version))
            .put(table, key, replacement(grant.id)?, replacement_expires_at);
        let (txn, refresh_token) = grant_writes(txn, &grant)?;
        if !self.store.commit(txn, t).await? {
            return Ok(None);
        }
        Ok(Some(Issued {
            grant,
            refresh_token,
        }))
    }

    /// A new grant for `authorization`: it lasts the refresh lifetime with
    /// `offline_access`, else the access-token lifetime, and never beyond the
    /// authorization's `not_after`.
    fn new_grant(
        &self,
        authorization: Authorization,
        dpop_jkt: Option<&Jkt>,
        now: OffsetDateTime,
    ) -> Result<Grant, GrantError> {
        let offline = authorization.scope.contains("offline_access");
        let lifetime = if offline {
            self.refresh_lifetime
        } else {
            self.access_lifetime
        };
        let mut expires_at = (now + lifetime).unix_timestamp();
        if let Some(limit) = authorization.not_after {
            expires_at = expires_at.min(limit);
        }
        Ok(Grant {
            id: GrantId::generate()?,
            authorization,
            offline,
            created_at: now.unix_timestamp(),
            expires_at,
            dpop_jkt: dpop_jkt.cloned(),
        })
    }

    /// Rotates a refresh token: the presented one becomes `Rotated`, a new
    /// one is issued. Presenting a `Rotated` token revokes the family.
    /// A grant bound to a DPoP key rotates only for a proof by that key
    /// (`dpop_jkt`, already verified by the caller); otherwise nothing is
    /// written. With `bind`, an unbound grant presented with a proof is
    /// bound to its key from now on, in the same step (a public client
    /// that starts using DPoP after the code exchange, RFC 9449 §5).
    pub async fn rotate_refresh(
        &self,
        token: &str,
        client_id: &str,
        dpop_jkt: Option<&Jkt>,
        bind: bool,
        now: OffsetDateTime,
    ) -> Result<Issued, GrantError> {
        let key = SecretDigest::of(token);
        let t = now.unix_timestamp();
        let record = self
            .store
            .get(REFRESH_TOKENS, key.as_str(), t)
            .await?
            .ok_or(GrantError::RefreshUnknown)?;
        let current: RefreshRecord = decode(REFRESH_TOKENS, &record.value)?;
        if let RefreshState::Rotated = current.state {
            self.revoke(current.grant, now).await?;
            return Err(GrantError::RefreshReused);
        }
        let (grant, grant_version) = self
            .grant_versioned(current.grant, now)
            .await?
            .ok_or(GrantError::RefreshUnknown)?;
        if grant.authorization.client_id != client_id {
            return Err(GrantError::RefreshClientMismatch);
        }
        if grant.dpop_jkt.is_some() && grant.dpop_jkt.as_ref() != dpop_jkt {
            return Err(GrantError::DpopKeyMismatch);
        }
        let mut grant = grant;
        let binds = bind && grant.dpop_jkt.is_none() && dpop_jkt.is_some();
        if binds {
            grant.dpop_jkt = dpop_jkt.cloned();
        }
        let new_token = OpaqueSecret::generate()?;
        let mut txn = Txn::new(Durability::Durable)
            .require(
                REFRESH_TOKENS,
                key.as_str(),
                Precondition::Version(record.version),
            )
            .require(
                GRANTS,
                grant.id.to_string(),
                Precondition::Version(grant_version),
            )
            .put(
                REFRESH_TOKENS,
                key.as_str(),
                encode(&RefreshRecord {
                    grant: grant.id,
                    state: RefreshState::Rotated,
                })?,
                Some(grant.expires_at),
            )
            .put(
                REFRESH_TOKENS,
                new_token.digest().as_str(),
                encode(&RefreshRecord {
                    grant: grant.id,
                    state: RefreshState::Active,
                })?,
                Some(grant.expires_at),
            );
        if binds {
            txn = txn.put(
                GRANTS,
                grant.id.to_string(),
                encode(&grant)?,
                Some(grant.expires_at),
            );
        }
        if self.store.commit(txn, t).await? {
            return Ok(Issued {
                grant,
                refresh_token: Some(new_token),
            });
        }
        // Someone rotated the same token first (or revoked the grant): reuse.
        self.revoke(grant.id, now).await?;
        Err(GrantError::RefreshReused)
    }

    async fn grant_versioned(
        &self,
        id: GrantId,
        now: OffsetDateTime,
    ) -> Result<Option<(Grant, u64)>, GrantError> {
        match self
            .store
            .get(GRANTS, &id.to_string(), now.unix_timestamp())
            .await?
        {
            Some(r) => Ok(Some((decode(GRANTS, &r.value)?, r.version))),
            None => Ok(None),
        }
    }

    /// The live grant, if not revoked or expired.
    pub async fn grant(
        &self,
        id: GrantId,
        now: OffsetDateTime,
    ) -> Result<Option<Grant>, GrantError> {
        Ok(self.grant_versioned(id, now).await?.map(|(g, _)| g))
    }

    /// Revokes a grant: its access tokens, refresh tokens and code all die.
    pub async fn revoke(&self, id: GrantId, now: OffsetDateTime) -> Result<(), GrantError> {
        self.store
            .delete(
                GRANTS,
                &id.to_string(),
                Durability::Durable,
                now.unix_timestamp(),
            )
            .await?;
        Ok(())
    }

    /// The grant a refresh token belongs to, if the token is still active.
    pub async fn refresh_token_grant(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Grant>, GrantError> {
        let Some(record) = self
            .store
            .get(
                REFRESH_TOKENS,
                SecretDigest::of(token).as_str(),
                now.unix_timestamp(),
            )
            .await?
        else {
            return Ok(None);
        };
        let r: RefreshRecord = decode(REFRESH_TOKENS, &record.value)?;
        match r.state {
            RefreshState::Active => self.grant(r.grant, now).await,
            RefreshState::Rotated => Ok(None),
        }
    }

    /// Remembers a revoked access token (by `jti`) until it expires.
    pub async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), GrantError> {
        self.store
            .put(
                REVOKED_ACCESS_TOKENS,
                jti,
                Vec::new(),
                Some(expires_at),
                Durability::Durable,
            )
            .await?;
        Ok(())
    }

    pub async fn is_access_token_revoked(
        &self,
        jti: &str,
        now: OffsetDateTime,
    ) -> Result<bool, GrantError> {
        Ok(self
            .store
            .get(REVOKED_ACCESS_TOKENS, jti, now.unix_timestamp())
            .await?
            .is_some())
    }
}
