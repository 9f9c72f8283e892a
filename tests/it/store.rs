//! The embedded store against the conformance suite, plus what only a file
//! can show: reopening, durability and the single-process lock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use gatepass::store::conformance::{self, NOW};
use gatepass::store::embedded::EmbeddedStore;
use gatepass::store::{Durability, Record, Store, StoreError, StoreResult};
use tempfile::TempDir;

const TABLE: &str = "reopen";

/// A fresh store in its own directory; keep the `TempDir` alive.
fn temp_store() -> (TempDir, Arc<dyn Store>) {
    let dir = TempDir::new().expect("temp dir");
    let store = EmbeddedStore::open(&dir.path().join("store.redb")).expect("open store");
    (dir, Arc::new(store))
}

fn store_path(dir: &TempDir) -> PathBuf {
    dir.path().join("store.redb")
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() -> StoreResult<()> {
            let (_dir, store) = temp_store();
            conformance::$check(store.as_ref()).await
        }
    )*};
}

macro_rules! race {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $check() -> StoreResult<()> {
            let (_dir, store) = temp_store();
            conformance::$check(store).await
        }
    )*};
}

conformance!(
    put_then_get_roundtrips,
    versions_are_fresh_and_never_reused,
    insert_creates_only_when_absent,
    take_returns_record_once,
    compare_and_swap_requires_current_version,
    delete_reports_live_record,
    increment_counts_and_keeps_first_expiry,
    expired_counter_restarts,
    commit_applies_every_write,
    commit_writes_nothing_when_a_precondition_fails,
    commit_absent_accepts_expired_record,
    scan_returns_live_records_in_key_order,
    scan_isolates_tables,
    similar_table_names_stay_apart,
    scan_prefix_matches_only_keys_with_the_prefix,
    scan_prefix_empty_is_whole_table,
    scan_prefix_returns_only_live_records,
    scan_page_walks_every_live_record_once_in_both_orders,
    purge_expired_removes_only_expired,
    durability_changes_keep_one_record,
    ping_succeeds,
);

race!(
    concurrent_takes_have_one_winner,
    concurrent_compare_and_swaps_have_one_winner,
    concurrent_inserts_have_one_winner,
    concurrent_commits_have_one_winner,
    concurrent_deletes_have_one_winner,
    concurrent_increments_are_exact,
    concurrent_mixed_durability_commits_have_one_winner,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_full_suite_passes() -> StoreResult<()> {
    let (_dir, store) = temp_store();
    conformance::run_all(store).await
}

#[tokio::test]
async fn embedded_store_reopened_keeps_durable_writes() {
    let dir = TempDir::new().unwrap();
    let written = {
        let store = EmbeddedStore::open(&store_path(&dir)).unwrap();
        let v = store
            .put(TABLE, "user", b"alice".to_vec(), None, Durability::Durable)
            .await
            .unwrap();
        store
            .increment(TABLE, "count", 3, None, Durability::Durable, NOW)
            .await
            .unwrap();
        v
    };

    let store = EmbeddedStore::open(&store_path(&dir)).unwrap();
    assert_eq!(
        store.get(TABLE, "user", NOW).await.unwrap(),
        Some(Record {
            value: b"alice".to_vec(),
            version: written,
            expires_at: None,
        })
    );
    assert_eq!(
        store
            .increment(TABLE, "count", 1, None, Durability::Durable, NOW)
            .await
            .unwrap(),
        4
    );
}

#[tokio::test]
async fn embedded_store_closed_cleanly_keeps_its_ephemeral_writes() {
    let dir = TempDir::new().unwrap();
    {
        let store = EmbeddedStore::open(&store_path(&dir)).unwrap();
        for i in 0..10 {
            store
                .put(
                    TABLE,
                    &format!("code-{i}"),
                    b"c".to_vec(),
                    Some(NOW + 60),
                    Durability::Ephemeral,
                )
                .await
                .unwrap();
        }
        store
            .put(TABLE, "user", b"u".to_vec(), None, Durability::Durable)
            .await
            .unwrap();
    }

    let store = EmbeddedStore::open(&store_path(&dir)).unwrap();
    let keys: Vec<String> = store
        .scan(TABLE, NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut expected: Vec<String> = (0..10).map(|i| format!("code-{i}")).collect();
    expected.push("user".to_owned());
    assert_eq!(keys, expected);
}

/// A copy of the file taken while the store is open is what a crash leaves:
/// the last durable commit, without the ephemeral ones after it.
#[tokio::test]
async fn embedded_store_after_crash_loses_ephemeral_writes_but_not_versions() {
    let dir = TempDir::new().unwrap();
    let crashed = dir.path().join("crashed.redb");
    let store = EmbeddedStore::open(&store_path(&dir)).unwrap();
    let durable = store
        .put(TABLE, "user", b"u".to_vec(), None, Durability::Durable)
        .await
        .unwrap();
    let lost = store
        .put(TABLE, "code", b"c".to_vec(), None, Durability::Ephemeral)
        .await
        .unwrap();
    std::fs::copy(store_path(&dir), &crashed).unwrap();
    drop(store);

    let store = EmbeddedStore::open(&crashed).unwrap();
    assert_eq!(
        store
            .get(TABLE, "user", NOW)
            .await
            .unwrap()
            .map(|r| r.version),
        Some(durable)
    );
    assert_eq!(store.get(TABLE, "code", NOW).await.unwrap(), None);
    let recreated = store
        .put(TABLE, "code", b"c".to_vec(), None, Durability::Ephemeral)
        .await
        .unwrap();
    assert_ne!(recreated, lost, "a version handed out before the crash");
    assert_ne!(recreated, durable);
}

#[tokio::test]
async fn embedded_store_reopened_never_reuses_versions() {
    let dir = TempDir::new().unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let store = EmbeddedStore::open(&store_path(&dir)).unwrap();
        store
            .delete(TABLE, "key", Durability::Durable, NOW)
            .await
            .unwrap();
        seen.push(
            store
                .put(TABLE, "key", b"v".to_vec(), None, Durability::Ephemeral)
                .await
                .unwrap(),
        );
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 3, "versions {seen:?}");
}

/// Concurrent writes share write transactions; one that fails must fail
/// alone and leave nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_failing_write_does_not_fail_concurrent_ones() {
    let (_dir, store) = temp_store();
    let d = Durability::Ephemeral;
    let text = store
        .put(TABLE, "not-a-counter", b"text".to_vec(), None, d)
        .await
        .unwrap();

    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.spawn(async move {
            barrier.wait().await;
            if i % 8 == 0 {
                let failed = store
                    .increment(TABLE, "not-a-counter", 1, None, Durability::Durable, NOW)
                    .await;
                assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
                None
            } else {
                let key = format!("k{i:02}");
                Some((
                    key.clone(),
                    store.put(TABLE, &key, b"v".to_vec(), None, d).await,
                ))
            }
        });
    }
    let mut written = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Some((key, version)) = joined.unwrap() {
            written.push((key, version.expect("a healthy write in the same batch")));
        }
    }
    written.sort();

    let stored: Vec<(String, u64)> = store
        .scan_prefix(TABLE, "k", NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, r)| (k, r.version))
        .collect();
    assert_eq!(stored, written);
    assert_eq!(
        store.get(TABLE, "not-a-counter", NOW).await.unwrap(),
        Some(Record {
            value: b"text".to_vec(),
            version: text,
            expires_at: None,
        })
    );
}

/// Versions grow in the order writes are applied, so of many concurrent
/// puts to one key the record left is the one with the highest version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_concurrent_puts_leave_the_last_applied() {
    let (_dir, store) = temp_store();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let value = format!("writer-{i}").into_bytes();
            let version = store
                .put(TABLE, "key", value.clone(), None, Durability::Ephemeral)
                .await
                .unwrap();
            (version, value)
        });
    }
    let mut written = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        written.push(joined.unwrap());
    }
    written.sort();
    written.dedup_by_key(|(v, _)| *v);
    assert_eq!(written.len(), 64, "every put got its own version");
    let (last_version, last_value) = written.pop().unwrap();
    assert_eq!(
        store.get(TABLE, "key", NOW).await.unwrap(),
        Some(Record {
            value: last_value,
            version: last_version,
            expires_at: None,
        })
    );
}

/// The writer thread holds the file; the last handle going away must
/// release it before `drop` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_reopens_once_the_last_clone_is_dropped() {
    let dir = TempDir::new().unwrap();
    let store = EmbeddedStore::open(&store_path(&dir)).unwrap();
    let clone = store.clone();
    let version = clone
        .put(TABLE, "user", b"u".to_vec(), None, Durability::Durable)
        .await
        .unwrap();
    drop(store);
    assert!(
        EmbeddedStore::open(&store_path(&dir)).is_err(),
        "a clone still has it open"
    );
    drop(clone);

    let reopened = EmbeddedStore::open(&store_path(&dir)).unwrap();
    assert_eq!(
        reopened
            .get(TABLE, "user", NOW)
            .await
            .unwrap()
            .map(|r| r.version),
        Some(version)
    );
    reopened.ping().await.unwrap();
}

#[test]
fn embedded_store_opened_twice_is_rejected() {
    let dir = TempDir::new().unwrap();
    let path = store_path(&dir);
    let _first = EmbeddedStore::open(&path).unwrap();

    let err = EmbeddedStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("already open"), "{message}");
}

#[test]
fn embedded_store_in_missing_directory_is_created() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("nested/deeper/store.redb");
    EmbeddedStore::open(&path).unwrap();
    assert!(path.is_file());
}

#[test]
fn embedded_store_on_a_non_database_file_is_rejected() {
    let dir = TempDir::new().unwrap();
    let path = store_path(&dir);
    std::fs::write(&path, b"not a redb file, just some text").unwrap();

    let err = EmbeddedStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}
