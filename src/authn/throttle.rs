//! Failed sign-in throttling, per account and per source address.
//!
//! An attempt is *counted before its credential is checked*, in one atomic
//! store step, so concurrent guesses get no extra tries: of any number of
//! simultaneous attempts at one account, at most `max_failures` per window
//! ever reach the (expensive) verifier.
//!
//! ```text
//!  attempt ──▶ locked (account or source)? ──yes──▶ refused, no hash
//!     │ no
//!     ▼
//!  n = increment(attempts in this episode)  ── n > max ──▶ refused, no hash
//!     │ n ≤ max
//!     ▼
//!  verify ──ok────▶ attempts reset (the source count forgets this one)
//!     │ failed
//!     └── n = max ──▶ lock for lockout × 2^(episodes in 24 h − 1), capped;
//!                     episode + 1 (the next window starts clean)
//! ```
//!
//! Exactly one attempt per episode sees `n = max`, so one burst is one
//! lockout and the doubling counts lockout *episodes*, never failures.
//! Attempt counters are keyed by the episode they belong to: a straggler of
//! a burst that counts after the lock was set lands in the old episode's
//! counter, already past the limit, and is refused.
//!
//! Counters and locks live in the store with their expiry as data, so every
//! instance sharing a store shares them. Attempt counters are ephemeral (a
//! crash forgets at most one window of failures); locks and episode counts
//! are durable. Accounts are keyed by the normalised username as typed, so
//! an unknown username locks exactly like a real one and lockouts reveal
//! nothing about which accounts exist.
//!
//! Attempts refused by an active lockout write nothing durable each: they
//! are counted (ephemerally), and only the first of an episode is reported
//! to the caller for the sign-in log.

use crate::store::{Durability, Store, StoreError};
use std::net::IpAddr;
use std::sync::Arc;

pub const THROTTLE: &str = "throttle";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Sign-in flows one source address may start per minute.
    pub max_flows_per_source_per_minute: i64,
    /// Passkey ceremonies (sign-in or registration) one source address may
    /// start per minute.
    pub max_ceremonies_per_source_per_minute: i64,
    /// Device-flow user codes one source address may enter per minute
    /// (RFC 8628 §5.1: a user code is short, so guessing must be bounded).
    pub max_user_codes_per_source_per_minute: i64,
    /// Attempts per account within `window` before it locks.
    pub max_failures: i64,
    /// Failed attempts per source address within `window` before it locks.
    pub max_failures_per_source: i64,
    pub window: time::Duration,
    /// First lockout; each further lockout within 24 h doubles it.
    pub lockout: time::Duration,
    pub max_lockout: time::Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            max_flows_per_source_per_minute: 300,
            max_ceremonies_per_source_per_minute: 120,
            max_user_codes_per_source_per_minute: 10,
            max_failures: 5,
            max_failures_per_source: 50,
            window: time::Duration::minutes(15),
            lockout: time::Duration::minutes(5),
            max_lockout: time::Duration::hours(4),
        }
    }
}

/// Work anyone may make Gatepass store before signing in, limited per
/// source address so no one client can fill the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    SignInFlow,
    PasskeyCeremony,
    /// A device-flow user code entered at `/device`, counted before it is
    /// looked up (right or wrong), so concurrent guesses get no extra tries.
    UserCode,
}

impl Work {
    fn key(self, ip: IpAddr) -> String {
        match self {
            Work::SignInFlow => format!("work/flow/ip/{ip}"),
            Work::PasskeyCeremony => format!("work/ceremony/ip/{ip}"),
            Work::UserCode => format!("work/user_code/ip/{ip}"),
        }
    }
}

/// What is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    Account { until: i64 },
    Source { until: i64 },
}

/// An attempt refused before its credential was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub locked: Locked,
    /// The first refusal of this lockout: the one the sign-in log records
    /// (later ones are only counted).
    pub first: bool,
}

/// A lockout that a failure just started (for the sign-in log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewLockout {
    pub locked: Locked,
    pub duration_secs: i64,
}

/// An attempt that was counted and may be verified; hand it back with the
/// outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    account: Counted,
    source: Counted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counted {
    episode: i64,
    count: i64,
}

/// The throttle's answer to a new attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Admitted(Ticket),
    Refused(Refused),
}

/// One throttled subject: an account or a source address.
struct Subject {
    /// `user/{normalised name}` or `ip/{address}`.
    id: String,
    max: i64,
    locked: fn(i64) -> Locked,
}

impl Subject {
    fn account(username: &str, max: i64) -> Self {
        Self {
            id: format!("user/{}", username.trim().to_lowercase()),
            max,
            locked: |until| Locked::Account { until },
        }
    }

    fn source(ip: IpAddr, max: i64) -> Self {
        Self {
            id: format!("ip/{ip}"),
            max,
            locked: |until| Locked::Source { until },
        }
    }

    fn lock_key(&self) -> String {
        format!("lock/{}", self.id)
    }

    fn episodes_key(&self) -> String {
        format!("lockouts/{}", self.id)
    }

    fn attempts_key(&self, episode: i64) -> String {
        format!("fail/{}/{episode}", self.id)
    }

    fn refused_key(&self) -> String {
        format!("refused/{}", self.id)
    }
}

#[derive(Clone)]
pub struct Throttle {
    store: Arc<dyn Store>,
    settings: ThrottleSettings,
}

impl Throttle {
    pub fn new(store: Arc<dyn Store>, settings: ThrottleSettings) -> Self {
        Self { store, settings }
    }

    fn subjects(&self, username: &str, ip: IpAddr) -> [Subject; 2] {
        [
            Subject::account(username, self.settings.max_failures),
            Subject::source(ip, self.settings.max_failures_per_source),
        ]
    }

    /// Counts an attempt at `username` from `ip`, or refuses it: a locked
    /// account or source, or an attempt past the limit of its episode.
    pub async fn admit(&self, username: &str, ip: IpAddr, now: i64) -> Result<Attempt, StoreError> {
        let subjects = self.subjects(username, ip);
        // The episode is read *before* the lock: a lock is set before its
        // episode advances, so whoever sees the new episode sees the lock,
        // and whoever read the old one counts past its limit.
        let mut episodes = [0; 2];
        for (episode, subject) in episodes.iter_mut().zip(&subjects) {
            *episode = self.episode(subject, now).await?;
        }
        for subject in &subjects {
            if let Some(lock) = self.store.get(THROTTLE, &subject.lock_key(), now).await? {
                let until = lock.expires_at.unwrap_or(now);
                return self.refuse(subject, until, now).await;
            }
        }
        let window_end = now + self.settings.window.whole_seconds();
        let mut counted = Vec::with_capacity(2);
        for (subject, episode) in subjects.iter().zip(episodes) {
            let key = subject.attempts_key(episode);
            let count = self.count(&key, 1, window_end, now).await?;
            if count > subject.max {
                // Part of a burst past the limit (its lock is being set).
                // Attempts that never reach the verifier must not count
                // against the other subject: a locked source could
                // otherwise lock any account it names, and a locked
                // account every address behind a shared proxy.
                for (done, earlier) in counted.iter().zip(&subjects) {
                    let Counted { episode, .. } = *done;
                    self.count(&earlier.attempts_key(episode), -1, window_end, now)
                        .await?;
                }
                return self.refuse(subject, window_end, now).await;
            }
            counted.push(Counted { episode, count });
        }
        match counted[..] {
            [account, source] => Ok(Attempt::Admitted(Ticket { account, source })),
            _ => Err(StoreError::Corrupt(format!("{THROTTLE}: attempt count"))),
        }
    }

    /// Counts a new piece of `work` from `ip`; `false` when the source has
    /// started too many this minute (answer 429 and store nothing).
    pub async fn admit_work(&self, work: Work, ip: IpAddr, now: i64) -> Result<bool, StoreError> {
        let limit = match work {
            Work::SignInFlow => self.settings.max_flows_per_source_per_minute,
            Work::PasskeyCeremony => self.settings.max_ceremonies_per_source_per_minute,
            Work::UserCode => self.settings.max_user_codes_per_source_per_minute,
        };
        // Fixed one-minute windows, aligned so every instance agrees.
        let window_end = now - now.rem_euclid(60) + 60;
        let started = self
            .store
            .increment(
                THROTTLE,
                &work.key(ip),
                1,
                Some(window_end),
                Durability::Ephemeral,
                now,
            )
            .await?;
        Ok(started <= limit)
    }

    /// Adds `delta` to an attempt counter (ephemeral, expiring with the
    /// window).
    async fn count(
        &self,
        key: &str,
        delta: i64,
        window_end: i64,
        now: i64,
    ) -> Result<i64, StoreError> {
        self.store
            .increment(
                THROTTLE,
                key,
                delta,
                Some(window_end),
                Durability::Ephemeral,
                now,
            )
            .await
    }

    /// The attempt's credential was wrong: the one attempt that reached the
    /// limit starts a lockout of its account or source (or both).
    pub async fn record_failure(
        &self,
        ticket: &Ticket,
        username: &str,
        ip: IpAddr,
        now: i64,
    ) -> Result<Vec<NewLockout>, StoreError> {
        let [account, source] = self.subjects(username, ip);
        let mut started = Vec::new();
        for (c, subject) in [(ticket.account, account), (ticket.source, source)] {
            if c.count == subject.max {
                started.extend(self.lock(&subject, now).await?);
            }
        }
        Ok(started)
    }

    /// The attempt succeeded: the account's attempts start over, and the
    /// source's count forgets this one (successes must not lock a shared
    /// address).
    pub async fn record_success(
        &self,
        ticket: &Ticket,
        username: &str,
        ip: IpAddr,
        now: i64,
    ) -> Result<(), StoreError> {
        let [account, source] = self.subjects(username, ip);
        let window_end = now + self.settings.window.whole_seconds();
        self.store
            .delete(
                THROTTLE,
                &account.attempts_key(ticket.account.episode),
                Durability::Ephemeral,
                now,
            )
            .await?;
        self.count(
            &source.attempts_key(ticket.source.episode),
            -1,
            window_end,
            now,
        )
        .await?;
        Ok(())
    }

    /// The attempt was never verified (no hashing slot, store trouble):
    /// it must not count.
    pub async fn forget(
        &self,
        ticket: &Ticket,
        username: &str,
        ip: IpAddr,
        now: i64,
    ) -> Result<(), StoreError> {
        let window_end = now + self.settings.window.whole_seconds();
        let [account, source] = self.subjects(username, ip);
        for (c, subject) in [(ticket.account, account), (ticket.source, source)] {
            self.count(&subject.attempts_key(c.episode), -1, window_end, now)
                .await?;
        }
        Ok(())
    }

    /// The subject's current episode: how many lockouts it had in 24 h.
    async fn episode(&self, subject: &Subject, now: i64) -> Result<i64, StoreError> {
        match self
            .store
            .get(THROTTLE, &subject.episodes_key(), now)
            .await?
        {
            Some(r) => std::str::from_utf8(&r.value)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("{THROTTLE}: episode counter"))),
            None => Ok(0),
        }
    }

    async fn lock(&self, subject: &Subject, now: i64) -> Result<Option<NewLockout>, StoreError> {
        // Escalate: the n-th lockout within 24 h lasts lockout × 2^(n−1).
        let n = self.episode(subject, now).await? + 1;
        let base = self.settings.lockout.whole_seconds();
        let shift = u32::try_from((n - 1).clamp(0, 20)).unwrap_or(20);
        let duration = base
            .saturating_mul(1i64 << shift)
            .min(self.settings.max_lockout.whole_seconds());
        let until = now + duration;
        // The lock first, then the episode (see `admit`).
        let created = self
            .store
            .insert(
                THROTTLE,
                &subject.lock_key(),
                Vec::new(),
                Some(until),
                Durability::Durable,
                now,
            )
            .await?;
        if created.is_none() {
            return Ok(None);
        }
        let kind = if subject.id.starts_with("ip/") {
            "source"
        } else {
            "account"
        };
        metrics::counter!("gatepass_lockouts_total", "subject" => kind).increment(1);
        self.store
            .increment(
                THROTTLE,
                &subject.episodes_key(),
                1,
                Some(now + 86_400),
                Durability::Durable,
                now,
            )
            .await?;
        Ok(Some(NewLockout {
            locked: (subject.locked)(until),
            duration_secs: duration,
        }))
    }

    /// Counts a refused attempt (ephemerally); only the first of a lockout
    /// is `first`.
    async fn refuse(&self, subject: &Subject, until: i64, now: i64) -> Result<Attempt, StoreError> {
        let refusals = self
            .store
            .increment(
                THROTTLE,
                &subject.refused_key(),
                1,
                Some(until.max(now + 1)),
                Durability::Ephemeral,
                now,
            )
            .await?;
        Ok(Attempt::Refused(Refused {
            locked: (subject.locked)(until),
            first: refusals == 1,
        }))
    }
}
