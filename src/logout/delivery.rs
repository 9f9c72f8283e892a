//! Delivering the queue: every instance runs [`spawn_worker`], and each
//! logout token is POSTed by exactly one of them.
//!
//! An instance *claims* a due delivery by moving its record, in one
//! conditional transaction, from `{due}/{id}` to `{now + lease}/{id}`: of
//! several instances reading the same record, only the one whose
//! precondition (the record's version) still holds wins. The lease is
//! longer than the POST's timeout, so while the claimer lives nobody else
//! sees the record due; if it dies mid-delivery, the record falls due
//! again when the lease ends and another instance delivers it.
//!
//! Outcomes ([Back-Channel Logout 1.0 §2.8]): a 2xx deletes the record;
//! a network error, a timeout, a 5xx, 408 or 429 reschedules it with
//! exponential backoff (`retry_seconds`, doubling); another 4xx means the
//! client refused the token, and retrying would only repeat that, so it is
//! dropped at once. After `max_attempts` the record is dropped too. A drop
//! is an error log line naming the client — never the token.
//!
//! [Back-Channel Logout 1.0 §2.8]: https://openid.net/specs/openid-connect-backchannel-1_0.html#BCResponse

use super::{Backchannel, Delivery, QUEUE, due_of, queue_key};
use crate::store::{Durability, Order, Precondition, StoreResult, Txn, decode, encode};
use crate::tokens::TokenIssuer;
use serde::Serialize;
use std::time::Duration;

/// The `events` member of a logout token (§2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The JWT `typ` of a logout token (§2.4, RFC 8725 §3.11).
pub const LOGOUT_TYP: &str = "logout+jwt";
/// How long a logout token is valid: enough for the receiver's clock skew.
const TOKEN_LIFETIME_SECONDS: i64 = 120;
/// Deliveries claimed per round.
const BATCH: usize = 32;
/// The longest wait between two attempts.
const MAX_BACKOFF_SECONDS: u64 = 6 * 3600;

/// The claims of a logout token (§2.4): `iss aud iat exp jti events sid
/// sub`, and never `nonce` (so it cannot pass for an ID token).
#[derive(Serialize)]
struct LogoutTokenClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    events: serde_json::Value,
    sid: &'a str,
    sub: &'a str,
}

/// What one round did (for tests and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub retrying: usize,
    pub dropped: usize,
}

enum Outcome {
    Delivered,
    Retry(String),
    Refused(String),
}

impl Backchannel {
    /// Claims the deliveries due at `now` and delivers them, concurrently;
    /// returns once each has an outcome (at most the POST timeout).
    pub async fn deliver_due(&self, tokens: &TokenIssuer, now: i64) -> StoreResult<Round> {
        let store = &self.inner.store;
        let lease = i64::try_from(self.inner.settings.lease().as_secs()).unwrap_or(60);
        let page = store
            .scan_page(QUEUE, "", None, Order::Ascending, BATCH, now)
            .await?;
        let mut claimed = Vec::new();
        let mut round = Round::default();
        for (key, record) in page {
            if due_of(&key).is_none_or(|due| due > now) {
                break; // keys sort by due time: the rest are later
            }
            let mut d: Delivery = decode(QUEUE, &record.value)?;
            let exhausted = d.attempts >= self.inner.settings.max_attempts;
            let uri = self.uri_of(&d.client_id).await?;
            let mut txn = Txn::new(Durability::Durable)
                .require(QUEUE, key.clone(), Precondition::Version(record.version))
                .delete(QUEUE, key.clone());
            let leased = queue_key(now + lease, &d.id);
            if !exhausted && uri.is_some() {
                d.attempts += 1;
                txn = txn.put(QUEUE, leased.clone(), encode(&d)?, None);
            }
            if !store.commit(txn, now).await? {
                continue; // another instance claimed it
            }
            match uri {
                Some(uri) if !exhausted => claimed.push((leased, d, uri)),
                Some(_) => {
                    // Its last claimer died during the last attempt.
                    drop_delivery(&d, "attempts exhausted");
                    round.dropped += 1;
                }
                None => {
                    drop_delivery(&d, "the client no longer has a backchannel_logout_uri");
                    round.dropped += 1;
                }
            }
        }
        let attempts = claimed.into_iter().map(|(leased, d, uri)| async move {
            let outcome = self.post(tokens, &d, &uri, now).await;
            (leased, d, outcome)
        });
        for (leased, d, outcome) in futures_util::future::join_all(attempts).await {
            match outcome {
                Outcome::Delivered => {
                    store
                        .delete(QUEUE, &leased, Durability::Durable, now)
                        .await?;
                    metrics::counter!("gatepass_backchannel_logout_total", "result" => "delivered")
                        .increment(1);
                    tracing::info!(client_id = %d.client_id, attempt = d.attempts, "back-channel logout delivered");
                    round.delivered += 1;
                }
                Outcome::Refused(why) => {
                    store
                        .delete(QUEUE, &leased, Durability::Durable, now)
                        .await?;
                    drop_delivery(&d, &why);
                    round.dropped += 1;
                }
                Outcome::Retry(why) if d.attempts >= self.inner.settings.max_attempts => {
                    store
                        .delete(QUEUE, &leased, Durability::Durable, now)
                        .await?;
                    drop_delivery(&d, &format!("attempts exhausted; last: {why}"));
                    round.dropped += 1;
                }
                Outcome::Retry(why) => {
                    let backoff = self.backoff(d.attempts);
                    tracing::warn!(
                        client_id = %d.client_id,
                        attempt = d.attempts,
                        retry_in_seconds = backoff,
                        reason = %why,
                        "back-channel logout failed; will retry"
                    );
                    metrics::counter!("gatepass_backchannel_logout_total", "result" => "retry")
                        .increment(1);
                    self.reschedule(&leased, &d, now + backoff, now).await?;
                    round.retrying += 1;
                }
            }
        }
        Ok(round)
    }

    /// The wait after attempt `n` (1-based): `retry`, then doubling.
    fn backoff(&self, attempt: u32) -> i64 {
        let base = self.inner.settings.retry.as_secs().max(1);
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        i64::try_from(base.saturating_mul(factor).min(MAX_BACKOFF_SECONDS)).unwrap_or(60)
    }

    /// Moves our claimed record to `due`, unless our lease ran out and
    /// another instance took it meanwhile (then it is theirs).
    async fn reschedule(&self, leased: &str, d: &Delivery, due: i64, now: i64) -> StoreResult<()> {
        let store = &self.inner.store;
        let Some(record) = store.get(QUEUE, leased, now).await? else {
            return Ok(());
        };
        let txn = Txn::new(Durability::Durable)
            .require(
                QUEUE,
                leased.to_owned(),
                Precondition::Version(record.version),
            )
            .delete(QUEUE, leased.to_owned())
            .put(QUEUE, queue_key(due, &d.id), encode(d)?, None);
        store.commit(txn, now).await?;
        Ok(())
    }

    /// Signs a fresh logout token for `d` and POSTs it (§2.5).
    async fn post(&self, tokens: &TokenIssuer, d: &Delivery, uri: &str, now: i64) -> Outcome {
        let jti = match crate::ids::random_uuid() {
            Ok(u) => u.simple().to_string(),
            Err(_) => return Outcome::Retry("random source failed".into()),
        };
        let claims = LogoutTokenClaims {
            iss: &self.inner.issuer,
            aud: &d.client_id,
            iat: now,
            exp: now + TOKEN_LIFETIME_SECONDS,
            jti,
            events: serde_json::json!({ LOGOUT_EVENT: {} }),
            sid: &d.sid,
            sub: &d.sub,
        };
        let token = match tokens.keys().sign(LOGOUT_TYP, &claims) {
            Ok(t) => t,
            Err(e) => return Outcome::Retry(format!("signing failed: {e}")),
        };
        let sent = self
            .inner
            .http
            .post(uri)
            .form(&[("logout_token", token.as_str())])
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Outcome::Delivered,
            Ok(r) => {
                let status = r.status();
                let transient = status.is_server_error()
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status.is_redirection();
                if transient {
                    Outcome::Retry(format!("HTTP {status}"))
                } else {
                    Outcome::Refused(format!("the client answered HTTP {status}"))
                }
            }
            // reqwest's error names the URL (configuration), never the body.
            Err(e) if e.is_timeout() => Outcome::Retry("timed out".into()),
            Err(e) => Outcome::Retry(format!("request failed: {e}")),
        }
    }
}

fn drop_delivery(d: &Delivery, why: &str) {
    metrics::counter!("gatepass_backchannel_logout_total", "result" => "dropped").increment(1);
    tracing::error!(
        client_id = %d.client_id,
        attempts = d.attempts,
        reason = %why,
        "back-channel logout dropped: the client was not told that the session ended"
    );
}

/// Delivers the queue every second until aborted (one per instance).
pub fn spawn_worker(state: crate::app::AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = state.clock.now().unix_timestamp();
            if let Err(e) = state.backchannel.deliver_due(&state.tokens, now).await {
                tracing::warn!(error = %e, "back-channel logout queue unavailable");
            }
        }
    })
}
