//! Password hashing with argon2id (RFC 9106), in PHC string format.
//!
//! Hashing is deliberately slow (≈ tens of ms at the defaults), so it runs on
//! the hasher's own threads, never on a request worker: `max_concurrent`
//! long-lived threads, one per slot. Not tokio's blocking pool: there a hash
//! lands on whichever of its threads is free, and the same argon2id
//! verification measured ≈ 12 % slower than on a thread that does nothing
//! else (most likely because its 19 MiB of working memory no longer stays
//! warm in one thread's heap), which held sign-ins at 0.80–0.87 of raw
//! argon2id at one per core. Verifying against
//! an unknown user still burns one hash (`verify_dummy`) so response time
//! does not reveal whether a username exists.
//!
//! Each hash holds `memory_kib` of memory while it runs, and anyone can ask
//! for one (a sign-in form needs no account), so hashes are *bounded*: at
//! most `max_concurrent` run at once, at most `max_queued` more wait for a
//! slot, and any request beyond that is refused at once with
//! [`PasswordError::Busy`] (HTTP 503 with `Retry-After`) instead of
//! queueing without limit. Memory for hashing therefore stays below
//! `max_concurrent × memory_kib` however many requests arrive.

use crate::config::PasswordHashing;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Shortest password a `passwordProfile` may set (DESIGN §6).
pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("password must be at most 256 characters")]
    TooLong,
    #[error("password hashing failed")]
    Hashing,
    /// Every hashing slot and queue place is taken: retry shortly.
    #[error("too many sign-ins at once; retry shortly")]
    Busy,
}

impl PasswordError {
    pub fn code(&self) -> &'static str {
        match self {
            PasswordError::TooShort => "password.too_short",
            PasswordError::TooLong => "password.too_long",
            PasswordError::Hashing => "password.hashing",
            PasswordError::Busy => "password.busy",
        }
    }
}

/// A plaintext password on its way to the hasher. No `Debug`, no `Serialize`.
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// Checks the length rules for a new password.
    pub fn validate_new(&self) -> Result<(), PasswordError> {
        let n = self.0.chars().count();
        if n < MIN_PASSWORD_LEN {
            Err(PasswordError::TooShort)
        } else if n > 256 {
            Err(PasswordError::TooLong)
        } else {
            Ok(())
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// argon2id hasher with the configured cost, behind a bounded queue.
#[derive(Clone)]
pub struct PasswordHasher {
    argon: Arc<Argon2<'static>>,
    slots: Arc<Slots>,
    /// A hash of a random value, verified against when the user is unknown.
    dummy: Arc<String>,
    /// Verifications run so far (real and dummy), for metrics and for
    /// tests that prove lockout keeps guesses away from the verifier.
    verifications: Arc<AtomicU64>,
    /// The hashing threads' work queue.
    threads: HashThreads,
}

impl PasswordHasher {
    pub fn new(cost: PasswordHashing) -> Result<Self, PasswordError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|_| PasswordError::Hashing)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut random = [0u8; 24];
        crate::ids::fill_random(&mut random).map_err(|_| PasswordError::Hashing)?;
        let dummy = hash_with(&argon, &random)?;
        Ok(Self {
            threads: HashThreads::start(cost.max_concurrent)?,
            slots: Arc::new(Slots {
                running: Arc::new(Semaphore::new(cost.max_concurrent)),
                capacity: cost.max_concurrent,
                queued: AtomicUsize::new(0),
                max_queued: cost.max_queued,
            }),
            argon: Arc::new(argon),
            dummy: Arc::new(dummy),
            verifications: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Hashes a new secret (password or TAP) into a PHC string.
    pub async fn hash(&self, secret: &str) -> Result<String, PasswordError> {
        let slot = self.slots.take().await?;
        let argon = self.argon.clone();
        let bytes = secret.as_bytes().to_vec();
        self.threads
            .run(slot, move || hash_with(&argon, &bytes))
            .await?
    }

    /// Verifies `secret` against a PHC string in constant time. Parameters
    /// come from the stored hash, so raising the cost later keeps old hashes
    /// verifiable. `Err(Busy)` when no slot is free (nothing was verified).
    pub async fn verify(&self, secret: &str, phc: &str) -> Result<bool, PasswordError> {
        let slot = self.slots.take().await?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let argon = self.argon.clone();
        let bytes = secret.as_bytes().to_vec();
        let phc = phc.to_owned();
        Ok(self
            .threads
            .run(slot, move || verify_with(&argon, &bytes, &phc))
            .await
            .unwrap_or(false))
    }

    /// Burns the same time as a real verification; `Ok(false)` unless busy.
    pub async fn verify_dummy(&self, secret: &str) -> Result<bool, PasswordError> {
        let dummy = self.dummy.clone();
        self.verify(secret, &dummy).await.map(|_| false)
    }

    /// Hashes running or waiting right now (for metrics).
    pub fn queue_depth(&self) -> usize {
        let running = self.slots.capacity - self.slots.running.available_permits();
        running + self.slots.queued.load(Ordering::Relaxed)
    }

    /// How many hashes may run or wait at once; past it, new ones are
    /// refused (503).
    pub fn queue_capacity(&self) -> usize {
        self.slots.capacity + self.slots.max_queued
    }

    /// How many verifications (real and dummy) this hasher has started.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Synchronous verification, for benchmarks.
    pub fn verify_blocking(&self, secret: &str, phc: &str) -> bool {
        verify_with(&self.argon, secret.as_bytes(), phc)
    }
}

/// The bounded hashing queue: `running` slots, and a count of waiters.
struct Slots {
    running: Arc<Semaphore>,
    capacity: usize,
    queued: AtomicUsize,
    max_queued: usize,
}

impl Slots {
    /// A running slot, waiting in the queue if there is room in it.
    async fn take(&self) -> Result<OwnedSemaphorePermit, PasswordError> {
        if let Ok(slot) = self.running.clone().try_acquire_owned() {
            return Ok(slot);
        }
        // Reserve a queue place first; give it back if there was none.
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(PasswordError::Busy);
        }
        let slot = self.running.clone().acquire_owned().await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        slot.map_err(|_| PasswordError::Hashing)
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Long-lived hashing threads fed from one queue. The slots bound what is
/// sent to as many jobs as there are threads, so a job never waits here for
/// a thread. The threads end when the last hasher clone is dropped.
#[derive(Clone)]
struct HashThreads {
    jobs: mpsc::Sender<Job>,
}

impl HashThreads {
    fn start(count: usize) -> Result<Self, PasswordError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..count.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("gatepass-hash".into())
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next
                        // job, never while hashing.
                        let next = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = next else { return };
                        job();
                    }
                })
                .map_err(|_| PasswordError::Hashing)?;
        }
        Ok(Self { jobs })
    }

    /// Runs `work` on a hashing thread, holding `slot` until it is done.
    async fn run<T: Send + 'static>(
        &self,
        slot: OwnedSemaphorePermit,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            // A panicking hash fails its caller, not the thread.
            let result = catch_unwind(AssertUnwindSafe(work));
            // The slot is free before the caller hears back, so a caller
            // that hashes again at once finds it free.
            drop(slot);
            if let Ok(value) = result {
                let _ = answer.send(value);
            }
        });
        self.jobs.send(job).map_err(|_| PasswordError::Hashing)?;
        answered.await.map_err(|_| PasswordError::Hashing)
    }
}

fn hash_with(argon: &Argon2<'_>, secret: &[u8]) -> Result<String, PasswordError> {
    let mut salt_bytes = [0u8; 16];
    crate::ids::fill_random(&mut salt_bytes).map_err(|_| PasswordError::Hashing)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| PasswordError::Hashing)?;
    argon
        .hash_password(secret, &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hashing)
}

fn verify_with(argon: &Argon2<'_>, secret: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon.verify_password(secret, &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(PasswordHashing {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
            max_queued: 4,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn password_hash_verifies_and_wrong_password_fails() {
        let h = cheap();
        let phc = h.hash("correct horse").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!phc.contains("correct horse"));
        assert!(h.verify("correct horse", &phc).await.unwrap());
        assert!(!h.verify("correct hors", &phc).await.unwrap());
        assert!(!h.verify("x", "not a phc string").await.unwrap());
        assert!(!h.verify_dummy("correct horse").await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_beyond_slots_and_queue_is_busy_and_bounded() {
        let h = PasswordHasher::new(PasswordHashing {
            memory_kib: 8 * 1024,
            iterations: 4,
            parallelism: 1,
            max_concurrent: 2,
            max_queued: 3,
        })
        .unwrap();
        let phc = h.hash("secret").await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let (h, phc) = (h.clone(), phc.clone());
            tasks.spawn(async move { h.verify("secret", &phc).await });
        }
        let (mut ok, mut busy) = (0, 0);
        while let Some(r) = tasks.join_next().await {
            match r.unwrap() {
                Ok(true) => ok += 1,
                Err(PasswordError::Busy) => busy += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(ok >= 5, "slots and queue were served: {ok}");
        assert!(busy >= 1, "the rest were refused, not queued without limit");
        assert_eq!(ok + busy, 40);
        assert_eq!(h.queue_depth(), 0);
    }

    #[tokio::test]
    async fn hashes_run_on_the_hashers_own_threads_which_survive_a_panicking_job() {
        let threads = HashThreads::start(1).unwrap();
        let slots = Arc::new(Semaphore::new(1));
        let slot = || slots.clone().try_acquire_owned().unwrap();
        let name = threads
            .run(slot(), || std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("gatepass-hash"));
        let failed = threads.run(slot(), || -> u8 { panic!("boom") }).await;
        assert!(matches!(failed, Err(PasswordError::Hashing)));
        assert_eq!(slots.available_permits(), 1, "the slot came back");
        // The one thread is still there to take the next job.
        assert_eq!(threads.run(slot(), || 7).await.unwrap(), 7);
    }

    #[test]
    fn password_new_length_rules() {
        assert!(Password::new("short").validate_new().is_err());
        assert!(Password::new("eightch!").validate_new().is_ok());
    }
}
