//! Failed sign-in throttling, per account and per source address.
//!
//! ```text
//!  failure ──▶ count(user) ≥ max_failures?  ──yes──▶ lock user for
//!          └─▶ count(source) ≥ max_per_source? ─yes─▶ lock source for
//!                  lockout × 2^(lockouts in the last 24 h − 1), capped
//! ```
//!
//! Counters and locks live in the store with their expiry as data, so every
//! instance sharing a store shares them, and each count is one atomic
//! increment. Accounts are keyed by the normalised username as typed, so an
//! unknown username locks exactly like a real one and lockouts reveal
//! nothing about which accounts exist. A locked account or source is refused
//! before any password hash is computed.

use crate::store::{Durability, Store, StoreError};
use std::net::IpAddr;
use std::sync::Arc;

pub const THROTTLE: &str = "throttle";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures per account within `window` before it locks.
    pub max_failures: i64,
    /// Failures per source address within `window` before it locks.
    pub max_failures_per_source: i64,
    pub window: time::Duration,
    /// First lockout; each further lockout within 24 h doubles it.
    pub lockout: time::Duration,
    pub max_lockout: time::Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            max_failures: 5,
            max_failures_per_source: 50,
            window: time::Duration::minutes(15),
            lockout: time::Duration::minutes(5),
            max_lockout: time::Duration::hours(4),
        }
    }
}

/// Why a sign-in attempt is refused before checking credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    Account { until: i64 },
    Source { until: i64 },
}

/// A lockout that a failure just started (for the sign-in log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewLockout {
    pub locked: Locked,
    pub duration_secs: i64,
}

#[derive(Clone)]
pub struct Throttle {
    store: Arc<dyn Store>,
    settings: ThrottleSettings,
}

fn account_key(kind: &str, username: &str) -> String {
    format!("{kind}/user/{}", username.trim().to_lowercase())
}

fn source_key(kind: &str, ip: IpAddr) -> String {
    format!("{kind}/ip/{ip}")
}

impl Throttle {
    pub fn new(store: Arc<dyn Store>, settings: ThrottleSettings) -> Self {
        Self { store, settings }
    }

    /// Refuses the attempt if the account or the source is locked.
    pub async fn check(
        &self,
        username: &str,
        ip: IpAddr,
        now: i64,
    ) -> Result<Option<Locked>, StoreError> {
        if let Some(r) = self
            .store
            .get(THROTTLE, &account_key("lock", username), now)
            .await?
        {
            return Ok(Some(Locked::Account {
                until: r.expires_at.unwrap_or(now),
            }));
        }
        if let Some(r) = self
            .store
            .get(THROTTLE, &source_key("lock", ip), now)
            .await?
        {
            return Ok(Some(Locked::Source {
                until: r.expires_at.unwrap_or(now),
            }));
        }
        Ok(None)
    }

    /// Counts a failure; starts a lockout when a threshold is reached.
    pub async fn record_failure(
        &self,
        username: &str,
        ip: IpAddr,
        now: i64,
    ) -> Result<Option<NewLockout>, StoreError> {
        let window_end = now + self.settings.window.whole_seconds();
        let user_failures = self
            .store
            .increment(
                THROTTLE,
                &account_key("fail", username),
                1,
                Some(window_end),
                now,
            )
            .await?;
        let source_failures = self
            .store
            .increment(THROTTLE, &source_key("fail", ip), 1, Some(window_end), now)
            .await?;
        if user_failures >= self.settings.max_failures {
            return self
                .lock(
                    account_key("lock", username),
                    account_key("fail", username),
                    account_key("lockouts", username),
                    now,
                    |until| Locked::Account { until },
                )
                .await;
        }
        if source_failures >= self.settings.max_failures_per_source {
            return self
                .lock(
                    source_key("lock", ip),
                    source_key("fail", ip),
                    source_key("lockouts", ip),
                    now,
                    |until| Locked::Source { until },
                )
                .await;
        }
        Ok(None)
    }

    async fn lock(
        &self,
        lock_key: String,
        fail_key: String,
        lockouts_key: String,
        now: i64,
        kind: impl Fn(i64) -> Locked,
    ) -> Result<Option<NewLockout>, StoreError> {
        // Escalate: the n-th lockout within 24 h lasts lockout × 2^(n−1).
        let n = self
            .store
            .increment(THROTTLE, &lockouts_key, 1, Some(now + 86_400), now)
            .await?;
        let base = self.settings.lockout.whole_seconds();
        let shift = u32::try_from((n - 1).clamp(0, 20)).unwrap_or(20);
        let duration = base
            .saturating_mul(1i64 << shift)
            .min(self.settings.max_lockout.whole_seconds());
        let until = now + duration;
        // Only the first concurrent failure past the threshold creates the
        // lock; the counter restarts so the next window starts clean.
        let created = self
            .store
            .insert(
                THROTTLE,
                &lock_key,
                Vec::new(),
                Some(until),
                Durability::Durable,
                now,
            )
            .await?;
        self.store
            .delete(THROTTLE, &fail_key, Durability::Durable, now)
            .await?;
        Ok(created.map(|_| NewLockout {
            locked: kind(until),
            duration_secs: duration,
        }))
    }

    /// A successful sign-in clears the account's failure count.
    pub async fn record_success(&self, username: &str, now: i64) -> Result<(), StoreError> {
        let key = account_key("fail", username);
        if self.store.get(THROTTLE, &key, now).await?.is_some() {
            self.store
                .delete(THROTTLE, &key, Durability::Durable, now)
                .await?;
        }
        Ok(())
    }
}
