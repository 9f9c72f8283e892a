//! Which keys sign, which are published, which are past retention; and the
//! two operations that add keys: [`load_or_create`] and [`rotate`].

use std::fmt;
use std::path::Path;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::keydir::{self, KeyMeta, StoredKey};
use super::keyset::KeySet;
use super::material::{self, KeyMaterial};
use super::{Algorithm, KeyError};

/// How often a writer retries after losing a create-exclusive race before
/// giving up. Each loss means another writer made progress, so a handful is
/// plenty.
const CREATE_ATTEMPTS: u32 = 8;

/// The role of each key at one instant.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Plan {
    /// Index of the signing key.
    pub(super) signer: usize,
    /// Indices of published keys: the signer first, then newest first.
    pub(super) published: Vec<usize>,
    /// Indices of keys past retention, whose files `rotate` deletes.
    pub(super) expired: Vec<usize>,
}

/// Decides the role of every key at `now`.
///
/// Keys are ordered by `(created_at, kid)`. The signer is the newest key of
/// `algorithm`. A key stays published until `retention` has passed since the
/// next newer key (of any algorithm) was created, because until then tokens it
/// signed may still be valid; the newest key and the signer are always
/// published. Returns `None` if there is no key of `algorithm`.
///
/// A kid found in several files (a copied key) is published if any of its
/// entries is, and then none of its files counts as expired.
pub(super) fn plan(
    keys: &[KeyMeta],
    algorithm: Algorithm,
    now: OffsetDateTime,
    retention: Duration,
) -> Option<Plan> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&keys[a], &keys[b]);
        (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid))
    });
    let signer = *order
        .iter()
        .rev()
        .find(|&&i| keys[i].algorithm == algorithm)?;
    let retention = retention.max(Duration::ZERO);

    let mut published = vec![signer];
    // Walk newest to oldest; `next_created` is the creation time of the key
    // that superseded the current one.
    let mut next_created: Option<OffsetDateTime> = None;
    for &i in order.iter().rev() {
        let live = match next_created {
            None => true,
            Some(next) => now < next.saturating_add(retention),
        };
        if live && i != signer && !published.iter().any(|&p| keys[p].kid == keys[i].kid) {
            published.push(i);
        }
        next_created = Some(keys[i].created_at);
    }
    let expired = order
        .iter()
        .copied()
        .filter(|&i| !published.iter().any(|&p| keys[p].kid == keys[i].kid))
        .collect();
    Some(Plan {
        signer,
        published,
        expired,
    })
}

/// Loads the key set in `dir`, first creating the directory and a key of
/// `algorithm` if there is none.
///
/// Safe when several instances start together on an empty directory: each
/// tries to create the same first file name, exactly one succeeds, and the
/// others load the winner's key, so all of them sign with one kid.
pub fn load_or_create(
    dir: &Path,
    algorithm: Algorithm,
    now: OffsetDateTime,
    retention: Duration,
) -> Result<KeySet, KeyError> {
    keydir::ensure_dir(dir)?;
    for _ in 0..CREATE_ATTEMPTS {
        let stored = keydir::scan(dir)?;
        if stored.iter().any(|k| k.meta.algorithm == algorithm) {
            return KeySet::from_stored(dir, algorithm, now, retention, stored);
        }
        create_key(dir, algorithm, now, &stored)?;
        // Created or lost the race: either way the next scan finds a key.
    }
    Err(KeyError::Contention {
        dir: dir.to_owned(),
        attempts: CREATE_ATTEMPTS,
    })
}

/// What [`rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// The kid of the key just created; it is now the signing key.
    pub new_kid: String,
    /// Every kid in the JWKS after rotation, the new signer first.
    pub published: Vec<String>,
    /// Kids whose files were deleted because their retention had passed.
    pub removed: Vec<String>,
}

/// One line per fact, for `gatepass keys rotate`.
impl fmt::Display for RotationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |kids: &[String]| {
            if kids.is_empty() {
                "(none)".to_owned()
            } else {
                kids.join(", ")
            }
        };
        writeln!(f, "new signing key: {}", self.new_kid)?;
        writeln!(f, "published keys:  {}", list(&self.published))?;
        write!(f, "removed keys:    {}", list(&self.removed))
    }
}

/// Adds a new key of `algorithm` to `dir` (it becomes the signer) and deletes
/// the files of keys past retention.
///
/// Running instances pick the new key up on their next
/// [`KeySet::reload`]; until then they keep signing with the previous key,
/// which stays published for `retention`, so nothing they issue breaks.
pub fn rotate(
    dir: &Path,
    algorithm: Algorithm,
    now: OffsetDateTime,
    retention: Duration,
) -> Result<RotationReport, KeyError> {
    keydir::ensure_dir(dir)?;
    let mut created = None;
    for _ in 0..CREATE_ATTEMPTS {
        let stored = keydir::scan(dir)?;
        if let Some(path) = create_key(dir, algorithm, now, &stored)? {
            created = Some(path);
            break;
        }
    }
    let Some(created) = created else {
        return Err(KeyError::Contention {
            dir: dir.to_owned(),
            attempts: CREATE_ATTEMPTS,
        });
    };

    let stored = keydir::scan(dir)?;
    let new_kid = stored
        .iter()
        .find(|k| k.path == created)
        .map(|k| k.meta.kid.clone())
        .ok_or_else(|| KeyError::corrupt(&created, "the new key file disappeared"))?;
    let metas: Vec<KeyMeta> = stored.iter().map(|k| k.meta.clone()).collect();
    let plan = plan(&metas, algorithm, now, retention).ok_or_else(|| KeyError::NoSigningKey {
        dir: dir.to_owned(),
        algorithm,
    })?;

    let mut removed = Vec::new();
    for &i in &plan.expired {
        let key = &stored[i];
        if keydir::remove(&key.path)? {
            tracing::info!(kid = %key.meta.kid, path = %key.path.display(), "deleted a key past retention");
        }
        if !removed.contains(&key.meta.kid) {
            removed.push(key.meta.kid.clone());
        }
    }
    let published = plan
        .published
        .iter()
        .map(|&i| metas[i].kid.clone())
        .collect();
    tracing::info!(kid = %new_kid, %algorithm, "rotated the signing key");
    Ok(RotationReport {
        new_kid,
        published,
        removed,
    })
}

/// Generates a key and writes it under the next free sequence number.
/// Returns `Ok(None)` if another writer took that number first.
fn create_key(
    dir: &Path,
    algorithm: Algorithm,
    now: OffsetDateTime,
    existing: &[StoredKey],
) -> Result<Option<std::path::PathBuf>, KeyError> {
    let pkcs8 = material::generate(algorithm)?;
    let material = KeyMaterial::from_pkcs8(algorithm, &pkcs8.0)
        .map_err(|_| KeyError::Generate { algorithm })?;
    // A new key must sort after every existing one, or it would not become
    // the signer; if another host's clock ran ahead, step just past its key.
    let newest = existing.iter().map(|k| k.meta.created_at).max();
    let created_at = match newest {
        Some(newest) if newest >= now => newest.saturating_add(Duration::SECOND),
        _ => now,
    };
    let meta = KeyMeta {
        kid: material.kid().to_owned(),
        algorithm,
        created_at,
    };
    let seq = existing
        .iter()
        .map(|k| k.seq)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let path = keydir::write_new(dir, seq, &meta, &pkcs8)?;
    if let Some(path) = &path {
        tracing::info!(kid = %meta.kid, path = %path.display(), %algorithm, "created a signing key");
    }
    Ok(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-01-01 00:00 UTC);

    fn meta(kid: &str, algorithm: Algorithm, minutes: i64) -> KeyMeta {
        KeyMeta {
            kid: kid.to_owned(),
            algorithm,
            created_at: T0 + Duration::minutes(minutes),
        }
    }

    fn kids(keys: &[KeyMeta], idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| keys[i].kid.clone()).collect()
    }

    struct Case {
        name: &'static str,
        keys: Vec<KeyMeta>,
        algorithm: Algorithm,
        /// `now`, in minutes after T0.
        now: i64,
        retention_minutes: i64,
        signer: &'static str,
        published: Vec<&'static str>,
        expired: Vec<&'static str>,
    }

    #[test]
    fn plan_decides_signer_publication_and_expiry() {
        use Algorithm::{Es256, Rs256};
        let a = meta("a", Es256, 0);
        let b = meta("b", Es256, 60);
        let c = meta("c", Es256, 120);
        let r = meta("r", Rs256, 90);
        let case = |name,
                    keys: &[&KeyMeta],
                    algorithm,
                    now,
                    retention_minutes,
                    signer,
                    published: &[&'static str],
                    expired: &[&'static str]| Case {
            name,
            keys: keys.iter().map(|k| (*k).clone()).collect(),
            algorithm,
            now,
            retention_minutes,
            signer,
            published: published.to_vec(),
            expired: expired.to_vec(),
        };
        let cases = [
            case("single key", &[&a], Es256, 1000, 10, "a", &["a"], &[]),
            case(
                "within retention",
                &[&a, &b],
                Es256,
                65,
                10,
                "b",
                &["b", "a"],
                &[],
            ),
            case(
                "retention ends exactly",
                &[&a, &b],
                Es256,
                70,
                10,
                "b",
                &["b"],
                &["a"],
            ),
            case(
                "file order is irrelevant",
                &[&c, &a, &b],
                Es256,
                125,
                10,
                "c",
                &["c", "b"],
                &["a"],
            ),
            case(
                "chain within retention",
                &[&a, &b, &c],
                Es256,
                121,
                100,
                "c",
                &["c", "b", "a"],
                &[],
            ),
            case(
                "newer key of another algorithm",
                &[&a, &r],
                Es256,
                95,
                10,
                "a",
                &["a", "r"],
                &[],
            ),
            case(
                "signer kept past retention",
                &[&a, &r],
                Es256,
                500,
                10,
                "a",
                &["a", "r"],
                &[],
            ),
            case(
                "switch to RS256",
                &[&a, &b, &r],
                Rs256,
                95,
                10,
                "r",
                &["r", "b"],
                &["a"],
            ),
            case(
                "zero retention",
                &[&a, &b],
                Es256,
                60,
                0,
                "b",
                &["b"],
                &["a"],
            ),
            case(
                "negative retention is zero",
                &[&a, &b],
                Es256,
                60,
                -10,
                "b",
                &["b"],
                &["a"],
            ),
            case(
                "key from the future signs",
                &[&a, &b],
                Es256,
                30,
                10,
                "b",
                &["b", "a"],
                &[],
            ),
        ];
        for Case {
            name,
            keys,
            algorithm,
            now,
            retention_minutes,
            signer,
            published,
            expired,
        } in cases
        {
            let plan = plan(
                &keys,
                algorithm,
                T0 + Duration::minutes(now),
                Duration::minutes(retention_minutes),
            )
            .unwrap();
            assert_eq!(keys[plan.signer].kid, signer, "{name}: signer");
            assert_eq!(kids(&keys, &plan.published), published, "{name}: published");
            assert_eq!(kids(&keys, &plan.expired), expired, "{name}: expired");
        }
    }

    #[test]
    fn plan_without_key_of_algorithm_is_none() {
        let keys = vec![meta("a", Algorithm::Es256, 0)];
        assert!(plan(&keys, Algorithm::EdDsa, T0, Duration::HOUR).is_none());
        assert!(plan(&[], Algorithm::Es256, T0, Duration::HOUR).is_none());
    }

    #[test]
    fn plan_ties_on_created_at_are_broken_by_kid() {
        let keys = vec![
            meta("y", Algorithm::Es256, 0),
            meta("x", Algorithm::Es256, 0),
        ];
        let plan = plan(&keys, Algorithm::Es256, T0, Duration::HOUR).unwrap();
        assert_eq!(keys[plan.signer].kid, "y");
        assert_eq!(kids(&keys, &plan.published), vec!["y", "x"]);
    }

    #[test]
    fn plan_duplicate_kid_is_published_once_and_never_expired() {
        let keys = vec![
            meta("a", Algorithm::Es256, 0),
            meta("b", Algorithm::Es256, 60),
            meta("a", Algorithm::Es256, 120),
        ];
        let plan = plan(
            &keys,
            Algorithm::Es256,
            T0 + Duration::minutes(500),
            Duration::minutes(10),
        )
        .unwrap();
        assert_eq!(kids(&keys, &plan.published), vec!["a"]);
        assert_eq!(kids(&keys, &plan.expired), vec!["b"]);
    }
}
