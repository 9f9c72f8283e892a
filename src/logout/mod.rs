//! OpenID Connect Back-Channel Logout 1.0: telling relying parties, server
//! to server, that a session they signed in with has ended.
//!
//! This module owns three things, all in the store so that every instance
//! sharing it (Redis) acts as one provider and a restart loses nothing:
//!
//! - **Participation** (`backchannel_session`, key `{user_id}/{sid}`): which
//!   clients with a `backchannel_logout_uri` a session has given a code to.
//!   It expires with the session (a session that merely expires logs
//!   nobody out). Keyed by user, so "every session of this user" is one
//!   prefix scan.
//! - **Fan-out** ([`Backchannel::ended`]): when sessions end — logout, sign
//!   out everywhere, `revokeSignInSessions`, the pass they rest on deleted
//!   or replaced, the user disabled or deleted — each session's record is
//!   deleted and one delivery per client is queued *in the same atomic
//!   step*, so two triggers racing for one session queue it once.
//! - **The queue** (`backchannel_queue`, key `{due:012}/{id}`): keys sort
//!   by due time, so the due deliveries are the first page of the table.
//!   See [`delivery`] for how instances claim and deliver them.
//!
//! ```text
//!  code issued ──▶ participation {user}/{sid} += client
//!  session ends ──▶ [delete participation + put queue {now}/{id} ×clients]   (one Txn)
//!  worker: {due ≤ now}/{id} ──claim (Txn: move to {now+lease}/{id})──▶ POST
//!            2xx ──▶ delete      fail ──▶ move to {now+backoff}/{id}
//!            attempts exhausted / 4xx ──▶ delete + error log (client named)
//!  instance dies mid-POST ──▶ {now+lease}/{id} falls due ──▶ another claims it
//! ```
//!
//! Only clients with a `backchannel_logout_uri` are recorded, so a
//! deployment where no client can have one (none configured, registration
//! off) pays nothing at sign-in. A client's URI is looked up in the client
//! registry at each step, so registered clients take part like configured
//! ones, and a deleted client's pending deliveries are dropped.

pub mod delivery;
pub mod settings;

pub use settings::BackchannelSettings;

use crate::authn::session::Session;
use crate::clients::Clients;
use crate::ids::UserId;
use crate::store::{Durability, Precondition, Store, StoreResult, Txn, decode, encode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Which clients each live session signed in to.
pub const PARTICIPATION: &str = "backchannel_session";
/// Logout tokens waiting to be delivered, keyed by due time.
pub const QUEUE: &str = "backchannel_queue";

/// A session's participation record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Participation {
    sid: String,
    user_id: UserId,
    /// The user's `session_epoch` when the session started: signing out
    /// everywhere ends only the sessions from before it.
    epoch: u64,
    /// The pass the session was signed in with, if any.
    tap_id: Option<String>,
    clients: BTreeSet<String>,
}

/// One logout token to deliver. The token itself is signed at each attempt
/// (fresh `iat`, `exp` and `jti`), so nothing secret sits in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Delivery {
    pub id: String,
    pub client_id: String,
    pub sub: String,
    pub sid: String,
    /// Attempts started so far (counted when claimed, so a claimer that
    /// dies still uses one up).
    pub attempts: u32,
    pub enqueued_at: i64,
}

/// Which sessions of a user have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended<'a> {
    /// One session, by its `sid` (RP-initiated logout).
    Session(&'a str),
    /// Every session started before the user's epoch became this one (sign
    /// out everywhere, disabling, a password reset).
    EpochBefore(u64),
    /// Every session signed in with this pass (deleted or replaced).
    Pass(&'a str),
    /// Every session (the user was deleted).
    All,
}

impl Ended<'_> {
    fn covers(&self, p: &Participation) -> bool {
        match self {
            Ended::Session(sid) => p.sid == *sid,
            Ended::EpochBefore(epoch) => p.epoch < *epoch,
            Ended::Pass(id) => p.tap_id.as_deref() == Some(*id),
            Ended::All => true,
        }
    }

    fn trigger(&self) -> &'static str {
        match self {
            Ended::Session(_) => "logout",
            Ended::EpochBefore(_) => "sessions_revoked",
            Ended::Pass(_) => "pass_ended",
            Ended::All => "user_deleted",
        }
    }
}

/// Records participation, fans out session ends, and delivers the queue.
/// Cheap to clone.
#[derive(Clone)]
pub struct Backchannel {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    issuer: String,
    /// Where each client's `backchannel_logout_uri` is: configured or
    /// registered, asked at each step (a registered client may change or
    /// lose its URI, or be deleted, at any time).
    clients: Clients,
    /// Some client may have a `backchannel_logout_uri`: a configured one
    /// has one, or clients may register one. Otherwise every step is a
    /// no-op.
    active: bool,
    settings: BackchannelSettings,
    http: reqwest::Client,
}

impl Backchannel {
    /// Delivers to the clients of `clients` that have a
    /// `backchannel_logout_uri`, while `[backchannel_logout]` is enabled.
    pub fn new(
        store: Arc<dyn Store>,
        settings: &crate::config::Settings,
        clients: Clients,
    ) -> Result<Self, reqwest::Error> {
        let active = settings.backchannel_logout.enabled
            && (clients.registration_enabled()
                || clients
                    .configured()
                    .any(|c| c.backchannel_logout_uri.is_some()));
        // Never follow a redirect: the token goes to the registered URI only.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.backchannel_logout.timeout)
            .user_agent(concat!("Gatepass/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                issuer: settings.issuer.clone(),
                clients,
                active,
                settings: settings.backchannel_logout.clone(),
                http,
            }),
        })
    }

    /// Whether any client receives logout tokens (else every step is a no-op).
    pub fn is_active(&self) -> bool {
        self.inner.active
    }

    /// The `backchannel_logout_uri` of `client_id`, if it (still) has one.
    pub(crate) async fn uri_of(&self, client_id: &str) -> StoreResult<Option<String>> {
        if !self.inner.active {
            return Ok(None);
        }
        Ok(self
            .inner
            .clients
            .get(client_id)
            .await?
            .and_then(|c| c.backchannel_logout_uri.clone()))
    }

    /// Records that `session` signed in to `client_id` (a code or tokens
    /// were issued for it). Only clients with a `backchannel_logout_uri`
    /// are recorded.
    pub async fn participate(
        &self,
        session: &Session,
        client_id: &str,
        now: i64,
    ) -> StoreResult<()> {
        if self.uri_of(client_id).await?.is_none() {
            return Ok(());
        }
        let store = &self.inner.store;
        let key = format!("{}/{}", session.user_id, session.sid);
        for _ in 0..16 {
            let current = store.get(PARTICIPATION, &key, now).await?;
            let written = match current {
                Some(r) => {
                    let mut p: Participation = decode(PARTICIPATION, &r.value)?;
                    if !p.clients.insert(client_id.to_owned()) {
                        return Ok(());
                    }
                    store
                        .compare_and_swap(
                            PARTICIPATION,
                            &key,
                            r.version,
                            Some(encode(&p)?),
                            Some(session.expires_at),
                            Durability::Durable,
                            now,
                        )
                        .await?
                }
                None => {
                    let p = Participation {
                        sid: session.sid.clone(),
                        user_id: session.user_id,
                        epoch: session.epoch,
                        tap_id: session.tap_id.clone(),
                        clients: BTreeSet::from([client_id.to_owned()]),
                    };
                    store
                        .insert(
                            PARTICIPATION,
                            &key,
                            encode(&p)?,
                            Some(session.expires_at),
                            Durability::Durable,
                            now,
                        )
                        .await?
                }
            };
            if written.is_some() {
                return Ok(());
            }
        }
        Err(crate::store::StoreError::Unavailable(
            "too much contention recording the session's clients; retry".into(),
        ))
    }

    /// Queues a logout token for every client that `which` sessions of
    /// `user` signed in to, and forgets those sessions. Never fails the
    /// caller: the session has already ended, so an error is logged.
    pub async fn ended(&self, user: UserId, which: Ended<'_>, now: i64) {
        if !self.is_active() {
            return;
        }
        match self.fan_out(user, which, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                trigger = which.trigger(),
                deliveries = n,
                "back-channel logout queued"
            ),
            Err(e) => tracing::error!(
                trigger = which.trigger(),
                user = %user,
                error = %e,
                "could not queue back-channel logout"
            ),
        }
    }

    async fn fan_out(&self, user: UserId, which: Ended<'_>, now: i64) -> StoreResult<usize> {
        let store = &self.inner.store;
        let records = match which {
            Ended::Session(sid) => {
                let key = format!("{user}/{sid}");
                store
                    .get(PARTICIPATION, &key, now)
                    .await?
                    .map(|r| (key, r))
                    .into_iter()
                    .collect()
            }
            _ => {
                store
                    .scan_prefix(PARTICIPATION, &format!("{user}/"), now)
                    .await?
            }
        };
        let mut queued = 0;
        // Whether each client met still has a URI, asked once per fan-out.
        let mut has_uri: HashMap<String, bool> = HashMap::new();
        for (key, mut record) in records {
            // A concurrent `participate` may add a client between our read
            // and our write: re-read and retry, so no client is missed.
            for _ in 0..16 {
                let p: Participation = decode(PARTICIPATION, &record.value)?;
                if !which.covers(&p) {
                    break;
                }
                for client in &p.clients {
                    if !has_uri.contains_key(client) {
                        let known = self.uri_of(client).await?.is_some();
                        has_uri.insert(client.clone(), known);
                    }
                }
                let mut txn = Txn::new(Durability::Durable)
                    .require(
                        PARTICIPATION,
                        key.clone(),
                        Precondition::Version(record.version),
                    )
                    .delete(PARTICIPATION, key.clone());
                let mut n = 0;
                for client in p
                    .clients
                    .iter()
                    .filter(|c| has_uri.get(*c).copied().unwrap_or(false))
                {
                    let d = Delivery {
                        id: crate::ids::random_uuid()
                            .map_err(|_| {
                                crate::store::StoreError::Unavailable("random source failed".into())
                            })?
                            .simple()
                            .to_string(),
                        client_id: client.clone(),
                        sub: p.user_id.to_string(),
                        sid: p.sid.clone(),
                        attempts: 0,
                        enqueued_at: now,
                    };
                    txn = txn.put(QUEUE, queue_key(now, &d.id), encode(&d)?, None);
                    n += 1;
                }
                if store.commit(txn, now).await? {
                    queued += n;
                    break;
                }
                match store.get(PARTICIPATION, &key, now).await? {
                    Some(r) => record = r,
                    // Another trigger fanned this session out first.
                    None => break,
                }
            }
        }
        Ok(queued)
    }
}

/// Queue keys sort by due time (zero-padded Unix seconds), then id.
fn queue_key(due: i64, id: &str) -> String {
    format!("{:012}/{id}", due.max(0))
}

/// The due time in a queue key.
fn due_of(key: &str) -> Option<i64> {
    key.split_once('/').and_then(|(due, _)| due.parse().ok())
}
