//! Browser sessions.
//!
//! The session cookie holds a random 256-bit secret; the store keeps only its
//! SHA-256 digest, so a copy of the store cannot be replayed as a cookie. A
//! session is live while (a) its record has not expired, (b) its user exists
//! and is enabled, and (c) its `epoch` equals the user's `session_epoch`:
//! "sign out everywhere" bumps the epoch, which ends every session and grant
//! of the user in one atomic write.

use super::methods::{self, Acr, AuthMethod};
use super::tap::PASSES;
use super::tap::{Taps, TemporaryAccessPass};
use crate::directory::USERS;
use crate::directory::{Directory, DirectoryError, User};
use crate::ids::{OpaqueSecret, SecretDigest};
use crate::store::{Durability, Precondition, Store, StoreError, decode, encode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;

pub const SESSIONS: &str = "session";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The public session id (`sid` claim); not the cookie secret.
    pub sid: String,
    pub user_id: crate::ids::UserId,
    pub methods: Vec<AuthMethod>,
    /// Unix seconds of the last interactive authentication.
    pub auth_time: i64,
    pub expires_at: i64,
    pub epoch: u64,
    /// For a session signed in with a Temporary Access Pass: the pass id.
    /// The session lives only while that pass is the user's current pass
    /// and has not ended (deleting or replacing it ends the session).
    #[serde(default)]
    pub tap_id: Option<String>,
    /// CSRF token for the account pages of this session.
    #[serde(default)]
    pub csrf: String,
    /// The passkey the session was signed in with, when it was: for the
    /// sign-in log and for authentication strengths restricted to some
    /// authenticator models.
    #[serde(default)]
    pub passkey: Option<PasskeyUse>,
}

/// What a session knows of the passkey it was signed in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyUse {
    /// The authenticator model (AAGUID) registered with the passkey.
    pub aaguid: uuid::Uuid,
    /// The assertion's BE flag: a synced (multi-device) passkey.
    pub synced: bool,
}

impl Session {
    pub fn acr(&self) -> Acr {
        methods::acr(&self.methods)
    }

    pub fn amr(&self) -> Vec<&'static str> {
        methods::amr(&self.methods)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("random source failed")]
    Random,
}

impl From<crate::ids::RandomError> for SessionError {
    fn from(_: crate::ids::RandomError) -> Self {
        SessionError::Random
    }
}

#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    directory: Directory,
    taps: Taps,
    /// Told when a session ends by logout (back-channel logout).
    backchannel: Option<crate::logout::Backchannel>,
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, directory: Directory, taps: Taps) -> Self {
        Self {
            store,
            directory,
            taps,
            backchannel: None,
        }
    }

    pub fn with_backchannel(mut self, backchannel: crate::logout::Backchannel) -> Self {
        self.backchannel = Some(backchannel);
        self
    }

    /// Starts a session for `user` proven with `methods`; returns the cookie
    /// secret (shown once) and the session. A session signed in with a pass
    /// ends no later than the pass.
    pub async fn start(
        &self,
        user: &User,
        methods: Vec<AuthMethod>,
        now: OffsetDateTime,
        lifetime: time::Duration,
        tap: Option<&TemporaryAccessPass>,
        passkey: Option<PasskeyUse>,
    ) -> Result<(OpaqueSecret, Session), SessionError> {
        let secret = OpaqueSecret::generate()?;
        let mut expires_at = (now + lifetime).unix_timestamp();
        if let Some(pass) = tap {
            expires_at = expires_at.min(pass.end_at());
        }
        let session = Session {
            sid: crate::ids::random_uuid()?.simple().to_string(),
            user_id: user.id,
            methods,
            auth_time: now.unix_timestamp(),
            expires_at,
            epoch: user.session_epoch,
            tap_id: tap.map(|p| p.id.clone()),
            csrf: OpaqueSecret::generate()?.expose().to_owned(),
            passkey,
        };
        self.store
            .put(
                SESSIONS,
                secret.digest().as_str(),
                encode(&session)?,
                Some(session.expires_at),
                Durability::Durable,
            )
            .await?;
        Ok((secret, session))
    }

    /// The live session behind a cookie value, with its user.
    pub async fn resume(
        &self,
        cookie: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Session, User)>, SessionError> {
        self.resume_digest(&SecretDigest::of(cookie), now).await
    }

    /// Like [`Sessions::resume`], by digest (grants remember the digest).
    pub async fn resume_digest(
        &self,
        digest: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<(Session, User)>, SessionError> {
        let Some(record) = self
            .store
            .get(SESSIONS, digest.as_str(), now.unix_timestamp())
            .await?
        else {
            return Ok(None);
        };
        let session: Session = decode(SESSIONS, &record.value)?;
        let Some(user) = self.directory.user(session.user_id, now).await? else {
            return Ok(None);
        };
        Ok(self
            .holds_for(&session, &user, now)
            .await?
            .then_some((session, user)))
    }

    /// Whether the session under `digest` is still live for `user`, whom the
    /// caller has just read (bearer auth for a grant tied to its browser
    /// session): the same rules as [`Sessions::resume_digest`] without
    /// reading the user again.
    pub async fn is_live_for(
        &self,
        digest: &SecretDigest,
        user: &User,
        now: OffsetDateTime,
    ) -> Result<bool, SessionError> {
        let Some(record) = self
            .store
            .get(SESSIONS, digest.as_str(), now.unix_timestamp())
            .await?
        else {
            return Ok(false);
        };
        let session: Session = decode(SESSIONS, &record.value)?;
        Ok(session.user_id == user.id && self.holds_for(&session, user, now).await?)
    }

    /// The session's user is enabled, not signed out everywhere since, and
    /// any pass the session is bound to still runs.
    async fn holds_for(
        &self,
        session: &Session,
        user: &User,
        now: OffsetDateTime,
    ) -> Result<bool, SessionError> {
        if !user.account_enabled || user.session_epoch != session.epoch {
            return Ok(false);
        }
        match &session.tap_id {
            Some(tap) => Ok(self
                .taps
                .binding_is_live(user.id, tap, now.unix_timestamp())
                .await?),
            None => Ok(true),
        }
    }

    /// Preconditions that hold while the session under `digest`, its user
    /// record and the pass it rests on are exactly as they are now. A change
    /// that must not outlive a check of the session (registering a passkey)
    /// commits with these, so signing out, disabling the user, changing the
    /// user or replacing the pass in between makes it fail. Read them
    /// *before* the check. `None` when there is no session.
    pub async fn unchanged(
        &self,
        digest: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<Vec<(crate::store::Table, String, Precondition)>>, SessionError> {
        let t = now.unix_timestamp();
        let Some(record) = self.store.get(SESSIONS, digest.as_str(), t).await? else {
            return Ok(None);
        };
        let session: Session = decode(SESSIONS, &record.value)?;
        let mut guards = vec![(
            SESSIONS,
            digest.as_str().to_owned(),
            Precondition::Version(record.version),
        )];
        let user_key = session.user_id.to_string();
        match self.store.get(USERS, &user_key, t).await? {
            Some(user) => guards.push((USERS, user_key, Precondition::Version(user.version))),
            None => return Ok(None),
        }
        if session.tap_id.is_some() {
            match self.taps.pass(session.user_id, t).await? {
                Some((_, version)) => guards.push((
                    PASSES,
                    session.user_id.to_string(),
                    Precondition::Version(version),
                )),
                None => return Ok(None),
            }
        }
        Ok(Some(guards))
    }

    /// Ends the session behind a cookie value (logout), and tells the
    /// clients it signed in to (back-channel logout).
    pub async fn end(&self, cookie: &str, now: OffsetDateTime) -> Result<bool, SessionError> {
        let t = now.unix_timestamp();
        let Some(record) = self
            .store
            .take(
                SESSIONS,
                SecretDigest::of(cookie).as_str(),
                Durability::Durable,
                t,
            )
            .await?
        else {
            return Ok(false);
        };
        if let Some(b) = &self.backchannel {
            let session: Session = decode(SESSIONS, &record.value)?;
            b.ended(
                session.user_id,
                crate::logout::Ended::Session(&session.sid),
                t,
            )
            .await;
        }
        Ok(true)
    }
}
