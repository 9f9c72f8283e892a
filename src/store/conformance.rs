//! The conformance suite every [`Store`] backend must pass.
//!
//! Gatepass's security rests on the atomic primitives in [`super`]; a backend
//! that gets one edge wrong (an expired record that still blocks `insert`, a
//! `take` two callers both win) breaks a protocol guarantee silently. So the
//! contract is written down once, here, as plain async functions over
//! `&dyn Store`, and each backend's tests call them (after arrow-rs
//! `object_store`'s `integration.rs`). Each check is its own `pub fn` so a
//! failure names the broken rule; [`run_all`] runs the lot.
//!
//! Checks are built to share a backend:
//!
//! - every key carries a random run id, and scans only look at their own
//!   run's keys, so checks may run concurrently against one Redis;
//! - "now" is [`NOW`], in 2096: a backend that mirrors `expires_at` into a
//!   native TTL as a backstop never drops a record the suite still reads;
//! - records other checks read expire after [`NOW`]; only
//!   [`purge_expired_removes_only_expired`] works below it, so its purge
//!   cannot remove another check's records. It does count on being the only
//!   purger while it runs.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::{Durability, Order, Precondition, Record, Store, StoreError, StoreResult, Table, Txn};

/// The suite's current time (Unix seconds, in 2096).
pub const NOW: i64 = 4_000_000_000;

/// Tasks per race: enough that a non-atomic backend loses reliably.
pub const RACERS: usize = 64;

const TABLE: Table = "conformance";
const OTHER: Table = "conformance_other";
// One name is a prefix of the other, which naive key layouts confuse.
const USER: Table = "conformance_user";
const USERS: Table = "conformance_users";
// Names a `table{sep}key` layout would confuse with `SEP` plus a key.
const SEP: Table = "conformance_sep";
const SEP_COLON: Table = "conformance_sep:x";
const SEP_SLASH: Table = "conformance_sep/x";

/// Runs every check, races included.
pub async fn run_all(store: Arc<dyn Store>) -> StoreResult<()> {
    let s = store.as_ref();
    put_then_get_roundtrips(s).await?;
    versions_are_fresh_and_never_reused(s).await?;
    insert_creates_only_when_absent(s).await?;
    take_returns_record_once(s).await?;
    compare_and_swap_requires_current_version(s).await?;
    delete_reports_live_record(s).await?;
    increment_counts_and_keeps_first_expiry(s).await?;
    expired_counter_restarts(s).await?;
    commit_applies_every_write(s).await?;
    commit_writes_nothing_when_a_precondition_fails(s).await?;
    commit_absent_accepts_expired_record(s).await?;
    scan_returns_live_records_in_key_order(s).await?;
    scan_isolates_tables(s).await?;
    similar_table_names_stay_apart(s).await?;
    scan_prefix_matches_only_keys_with_the_prefix(s).await?;
    scan_prefix_empty_is_whole_table(s).await?;
    scan_prefix_returns_only_live_records(s).await?;
    scan_page_walks_every_live_record_once_in_both_orders(s).await?;
    purge_expired_removes_only_expired(s).await?;
    durability_changes_keep_one_record(s).await?;
    ping_succeeds(s).await?;
    concurrent_takes_have_one_winner(Arc::clone(&store)).await?;
    concurrent_compare_and_swaps_have_one_winner(Arc::clone(&store)).await?;
    concurrent_inserts_have_one_winner(Arc::clone(&store)).await?;
    concurrent_commits_have_one_winner(Arc::clone(&store)).await?;
    concurrent_deletes_have_one_winner(Arc::clone(&store)).await?;
    concurrent_increments_are_exact(Arc::clone(&store)).await?;
    concurrent_mixed_durability_commits_have_one_winner(store).await?;
    Ok(())
}

pub async fn put_then_get_roundtrips(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("record");
    assert_eq!(store.get(TABLE, &key, NOW).await?, None, "fresh key");

    let v1 = store
        .put(
            TABLE,
            &key,
            b"{\"n\":1}".to_vec(),
            None,
            Durability::Durable,
        )
        .await?;
    assert_eq!(
        store.get(TABLE, &key, NOW).await?,
        Some(record(b"{\"n\":1}", v1, None))
    );

    // An overwrite replaces the value and the expiry.
    let v2 = store
        .put(
            TABLE,
            &key,
            b"{\"n\":2}".to_vec(),
            Some(NOW + 60),
            Durability::Ephemeral,
        )
        .await?;
    assert_eq!(
        store.get(TABLE, &key, NOW).await?,
        Some(record(b"{\"n\":2}", v2, Some(NOW + 60)))
    );
    assert!(store.get(TABLE, &key, NOW + 59).await?.is_some());
    assert_eq!(
        store.get(TABLE, &key, NOW + 60).await?,
        None,
        "a record is gone from the second it expires"
    );

    assert_eq!(
        store.get(OTHER, &key, NOW).await?,
        None,
        "the same key in another table is another record"
    );

    let empty = run.key("empty");
    let v = store
        .put(TABLE, &empty, Vec::new(), None, Durability::Durable)
        .await?;
    assert_eq!(
        store.get(TABLE, &empty, NOW).await?,
        Some(record(b"", v, None))
    );
    Ok(())
}

pub async fn versions_are_fresh_and_never_reused(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("versioned");
    let mut seen = Versions::default();
    let d = Durability::Ephemeral;

    seen.fresh(store.put(TABLE, &key, b"a".to_vec(), None, d).await?, "put");
    // Same bytes again: still a write, still a new version.
    seen.fresh(store.put(TABLE, &key, b"a".to_vec(), None, d).await?, "put");
    assert!(store.delete(TABLE, &key, d, NOW).await?);
    seen.fresh(
        store.put(TABLE, &key, b"a".to_vec(), None, d).await?,
        "put after delete",
    );
    assert!(store.take(TABLE, &key, d, NOW).await?.is_some());

    let inserted = store
        .insert(TABLE, &key, b"b".to_vec(), None, d, NOW)
        .await?;
    assert!(inserted.is_some(), "insert after take");
    seen.fresh_opt(inserted, "insert after take");
    let swapped = store
        .compare_and_swap(TABLE, &key, seen.last, Some(b"c".to_vec()), None, d, NOW)
        .await?;
    seen.fresh_opt(swapped, "compare_and_swap");
    assert_eq!(
        store
            .compare_and_swap(TABLE, &key, seen.last, None, None, d, NOW)
            .await?,
        Some(0),
        "delete via compare_and_swap"
    );

    store
        .increment(TABLE, &key, 1, None, Durability::Durable, NOW)
        .await?;
    seen.fresh_opt(version_of(store, &key).await?, "increment creating");
    store
        .increment(TABLE, &key, 1, None, Durability::Durable, NOW)
        .await?;
    seen.fresh_opt(version_of(store, &key).await?, "increment");

    let txn = Txn::new(d).put(TABLE, key.clone(), b"d".to_vec(), None);
    assert!(store.commit(txn, NOW).await?);
    seen.fresh_opt(version_of(store, &key).await?, "commit");
    Ok(())
}

pub async fn insert_creates_only_when_absent(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("insert");
    let d = Durability::Durable;

    let first = store
        .insert(TABLE, &key, b"first".to_vec(), Some(NOW + 10), d, NOW)
        .await?;
    assert!(first.is_some(), "insert on an absent key creates it");
    assert_eq!(version_of(store, &key).await?, first);

    let second = store
        .insert(TABLE, &key, b"second".to_vec(), None, d, NOW + 9)
        .await?;
    assert_eq!(second, None, "insert on a live key");
    assert_eq!(
        store.get(TABLE, &key, NOW).await?,
        first.map(|v| record(b"first", v, Some(NOW + 10))),
        "a refused insert changes nothing"
    );

    let third = store
        .insert(TABLE, &key, b"third".to_vec(), Some(NOW + 100), d, NOW + 10)
        .await?;
    assert!(third.is_some(), "insert over an expired record");
    assert_ne!(third, first);
    assert_eq!(
        store.get(TABLE, &key, NOW + 10).await?,
        third.map(|v| record(b"third", v, Some(NOW + 100)))
    );
    Ok(())
}

pub async fn take_returns_record_once(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("code");
    let d = Durability::Ephemeral;
    assert_eq!(store.take(TABLE, &key, d, NOW).await?, None, "absent key");

    let v = store
        .put(TABLE, &key, b"code".to_vec(), Some(NOW + 10), d)
        .await?;
    assert_eq!(
        store.take(TABLE, &key, d, NOW).await?,
        Some(record(b"code", v, Some(NOW + 10)))
    );
    assert_eq!(store.take(TABLE, &key, d, NOW).await?, None, "second take");
    assert_eq!(store.get(TABLE, &key, NOW).await?, None, "get after take");

    let expired = run.key("expired-code");
    store
        .put(TABLE, &expired, b"old".to_vec(), Some(NOW + 10), d)
        .await?;
    assert_eq!(
        store.take(TABLE, &expired, d, NOW + 10).await?,
        None,
        "an expired record cannot be taken"
    );
    assert_eq!(store.get(TABLE, &expired, NOW + 10).await?, None);
    Ok(())
}

pub async fn compare_and_swap_requires_current_version(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("cas");
    let d = Durability::Durable;

    let v1 = store.put(TABLE, &key, b"a".to_vec(), None, d).await?;
    let v2 = store
        .compare_and_swap(TABLE, &key, v1, Some(b"b".to_vec()), Some(NOW + 50), d, NOW)
        .await?;
    assert!(v2.is_some(), "current version swaps");
    assert_ne!(v2, Some(v1));
    assert_eq!(
        store.get(TABLE, &key, NOW).await?,
        v2.map(|v| record(b"b", v, Some(NOW + 50)))
    );

    let stale = store
        .compare_and_swap(TABLE, &key, v1, Some(b"c".to_vec()), None, d, NOW)
        .await?;
    assert_eq!(stale, None, "stale version");
    assert_eq!(
        store.get(TABLE, &key, NOW).await?,
        v2.map(|v| record(b"b", v, Some(NOW + 50))),
        "a stale swap changes nothing"
    );

    let current = v2.unwrap_or_default();
    assert_eq!(
        store
            .compare_and_swap(TABLE, &key, current, None, None, d, NOW)
            .await?,
        Some(0),
        "None as the new value deletes"
    );
    assert_eq!(store.get(TABLE, &key, NOW).await?, None);
    assert_eq!(
        store
            .compare_and_swap(TABLE, &key, current, Some(b"d".to_vec()), None, d, NOW)
            .await?,
        None,
        "a deleted record cannot be swapped back"
    );
    assert_eq!(store.get(TABLE, &key, NOW).await?, None);

    let expiring = run.key("cas-expiring");
    let v = store
        .put(TABLE, &expiring, b"e".to_vec(), Some(NOW + 10), d)
        .await?;
    assert_eq!(
        store
            .compare_and_swap(TABLE, &expiring, v, Some(b"f".to_vec()), None, d, NOW + 10)
            .await?,
        None,
        "an expired record cannot be swapped"
    );
    // The swap would have written a record that never expires.
    assert_eq!(store.get(TABLE, &expiring, NOW + 10).await?, None);
    Ok(())
}

pub async fn delete_reports_live_record(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("delete");
    let d = Durability::Durable;
    assert!(!store.delete(TABLE, &key, d, NOW).await?, "absent key");

    store.put(TABLE, &key, b"x".to_vec(), None, d).await?;
    assert!(store.delete(TABLE, &key, d, NOW).await?);
    assert_eq!(store.get(TABLE, &key, NOW).await?, None);
    assert!(!store.delete(TABLE, &key, d, NOW).await?, "second delete");

    store
        .put(TABLE, &key, b"x".to_vec(), Some(NOW + 10), d)
        .await?;
    assert!(
        !store.delete(TABLE, &key, d, NOW + 10).await?,
        "an expired record does not count as deleted"
    );
    assert_eq!(store.get(TABLE, &key, NOW + 10).await?, None);
    Ok(())
}

pub async fn increment_counts_and_keeps_first_expiry(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("failures");

    assert_eq!(
        store
            .increment(TABLE, &key, 1, Some(NOW + 100), Durability::Durable, NOW)
            .await?,
        1
    );
    assert_eq!(
        store
            .increment(
                TABLE,
                &key,
                4,
                Some(NOW + 999),
                Durability::Durable,
                NOW + 1
            )
            .await?,
        5
    );
    assert_eq!(
        store
            .increment(TABLE, &key, -2, None, Durability::Durable, NOW + 2)
            .await?,
        3
    );
    let counter = store.get(TABLE, &key, NOW + 2).await?;
    assert_eq!(
        counter.as_ref().map(|r| (r.value.as_slice(), r.expires_at)),
        Some((&b"3"[..], Some(NOW + 100))),
        "ASCII decimal, first expiry kept"
    );
    assert_eq!(store.get(TABLE, &key, NOW + 100).await?, None);

    let forever = run.key("forever");
    assert_eq!(
        store
            .increment(TABLE, &forever, -7, None, Durability::Durable, NOW)
            .await?,
        -7
    );
    let counter = store.get(TABLE, &forever, NOW).await?;
    assert_eq!(
        counter.as_ref().map(|r| (r.value.as_slice(), r.expires_at)),
        Some((&b"-7"[..], None))
    );
    Ok(())
}

pub async fn expired_counter_restarts(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("window");

    assert_eq!(
        store
            .increment(TABLE, &key, 5, Some(NOW + 10), Durability::Durable, NOW)
            .await?,
        5
    );
    assert_eq!(
        store
            .increment(
                TABLE,
                &key,
                1,
                Some(NOW + 20),
                Durability::Durable,
                NOW + 10
            )
            .await?,
        1,
        "an expired counter starts again from 0"
    );
    let counter = store.get(TABLE, &key, NOW + 10).await?;
    assert_eq!(
        counter.as_ref().map(|r| (r.value.as_slice(), r.expires_at)),
        Some((&b"1"[..], Some(NOW + 20))),
        "and takes the new expiry"
    );
    Ok(())
}

pub async fn commit_applies_every_write(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let (kept, removed, created) = (run.key("kept"), run.key("removed"), run.key("created"));
    let d = Durability::Durable;

    let v_kept = store.put(TABLE, &kept, b"old".to_vec(), None, d).await?;
    let v_removed = store.put(TABLE, &removed, b"x".to_vec(), None, d).await?;

    let txn = Txn::new(d)
        .require(TABLE, kept.clone(), Precondition::Version(v_kept))
        .require(TABLE, removed.clone(), Precondition::Version(v_removed))
        .require(OTHER, created.clone(), Precondition::Absent)
        .put(TABLE, kept.clone(), b"new".to_vec(), Some(NOW + 50))
        .delete(TABLE, removed.clone())
        .put(OTHER, created.clone(), b"made".to_vec(), None);
    assert!(store.commit(txn, NOW).await?);

    let now_kept = store.get(TABLE, &kept, NOW).await?;
    assert_eq!(
        now_kept
            .as_ref()
            .map(|r| (r.value.as_slice(), r.expires_at)),
        Some((&b"new"[..], Some(NOW + 50)))
    );
    let v_new = now_kept.map(|r| r.version).unwrap_or(v_kept);
    assert_ne!(v_new, v_kept, "a committed put is a new version");
    assert_eq!(store.get(TABLE, &removed, NOW).await?, None);
    assert_eq!(
        store
            .get(OTHER, &created, NOW)
            .await?
            .map(|r| (r.value, r.expires_at)),
        Some((b"made".to_vec(), None))
    );

    // A transaction of checks alone asserts a snapshot is still current.
    let check = Txn::new(Durability::Ephemeral)
        .require(TABLE, kept.clone(), Precondition::Version(v_new))
        .require(TABLE, removed.clone(), Precondition::Absent);
    assert!(store.commit(check, NOW).await?);
    assert!(store.commit(Txn::new(d), NOW).await?, "empty transaction");
    Ok(())
}

pub async fn commit_writes_nothing_when_a_precondition_fails(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let (a, b, c) = (run.key("a"), run.key("b"), run.key("c"));
    let d = Durability::Durable;

    let va = store.put(TABLE, &a, b"a".to_vec(), None, d).await?;
    let vb_stale = store.put(TABLE, &b, b"b0".to_vec(), None, d).await?;
    let vb = store.put(TABLE, &b, b"b".to_vec(), None, d).await?;
    let untouched = async || -> StoreResult<()> {
        assert_eq!(
            store.get(TABLE, &a, NOW).await?,
            Some(record(b"a", va, None))
        );
        assert_eq!(
            store.get(TABLE, &b, NOW).await?,
            Some(record(b"b", vb, None))
        );
        assert_eq!(store.get(TABLE, &c, NOW).await?, None);
        assert_eq!(store.get(OTHER, &a, NOW).await?, None);
        Ok(())
    };
    let writes = |txn: Txn| {
        txn.put(TABLE, a.clone(), b"changed".to_vec(), None)
            .delete(TABLE, b.clone())
            .put(TABLE, c.clone(), b"created".to_vec(), None)
            .put(OTHER, a.clone(), b"elsewhere".to_vec(), None)
    };

    // The failing check sits between two that hold.
    let stale = Txn::new(d)
        .require(TABLE, a.clone(), Precondition::Version(va))
        .require(TABLE, b.clone(), Precondition::Version(vb_stale))
        .require(TABLE, c.clone(), Precondition::Absent);
    assert!(!store.commit(writes(stale), NOW).await?, "stale version");
    untouched().await?;

    let present = Txn::new(d).require(TABLE, a.clone(), Precondition::Absent);
    assert!(
        !store.commit(writes(present), NOW).await?,
        "Absent on a live key"
    );
    untouched().await?;

    let gone = run.key("gone");
    let v_gone = store.put(TABLE, &gone, b"g".to_vec(), None, d).await?;
    assert!(store.delete(TABLE, &gone, d, NOW).await?);
    let deleted = Txn::new(d).require(TABLE, gone.clone(), Precondition::Version(v_gone));
    assert!(!store.commit(writes(deleted), NOW).await?, "deleted record");
    untouched().await?;

    let expiring = run.key("expiring");
    let v_exp = store
        .put(TABLE, &expiring, b"e".to_vec(), Some(NOW + 10), d)
        .await?;
    let expired = Txn::new(d).require(TABLE, expiring.clone(), Precondition::Version(v_exp));
    assert!(
        !store.commit(writes(expired), NOW + 10).await?,
        "Version on an expired record"
    );
    untouched().await?;
    Ok(())
}

pub async fn commit_absent_accepts_expired_record(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("first-admin");
    let d = Durability::Durable;

    store
        .put(TABLE, &key, b"stale".to_vec(), Some(NOW + 10), d)
        .await?;
    let claim = || {
        Txn::new(d)
            .require(TABLE, key.clone(), Precondition::Absent)
            .put(TABLE, key.clone(), b"fresh".to_vec(), None)
    };
    assert!(!store.commit(claim(), NOW + 9).await?, "still live");
    assert!(
        store.commit(claim(), NOW + 10).await?,
        "expired counts as absent"
    );
    assert_eq!(
        store
            .get(TABLE, &key, NOW + 10)
            .await?
            .map(|r| (r.value, r.expires_at)),
        Some((b"fresh".to_vec(), None))
    );
    Ok(())
}

pub async fn scan_returns_live_records_in_key_order(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let d = Durability::Ephemeral;
    // Inserted out of order; "b" < "b0" < "b~" checks byte order, not length.
    let live = ["m", "b0", "z", "a", "b~", "b", "d"];
    let mut written = Vec::new();
    for name in live {
        let expires_at = (name == "d").then_some(NOW + 100);
        let key = run.key(name);
        let v = store
            .put(TABLE, &key, name.as_bytes().to_vec(), expires_at, d)
            .await?;
        written.push((key, record(name.as_bytes(), v, expires_at)));
    }
    store
        .put(TABLE, &run.key("c"), b"c".to_vec(), Some(NOW + 10), d)
        .await?;
    written.sort_by(|x, y| x.0.cmp(&y.0));

    let scanned = store.scan(TABLE, NOW + 10).await?;
    assert!(
        scanned.windows(2).all(|w| w[0].0 < w[1].0),
        "scan is ordered by key"
    );
    assert!(
        scanned
            .iter()
            .all(|(_, r)| r.expires_at.is_none_or(|at| at > NOW + 10)),
        "scan returns only live records"
    );
    assert_eq!(run.only_mine(scanned), written);
    Ok(())
}

pub async fn scan_isolates_tables(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let d = Durability::Ephemeral;
    let x = run.key("x");
    let y = run.key("y");

    let vx = store.put(USER, &x, b"user".to_vec(), None, d).await?;
    let vx2 = store.put(USERS, &x, b"users".to_vec(), None, d).await?;
    let vy = store.put(USERS, &y, b"users".to_vec(), None, d).await?;

    assert_eq!(
        run.only_mine(store.scan(USER, NOW).await?),
        vec![(x.clone(), record(b"user", vx, None))]
    );
    assert_eq!(
        run.only_mine(store.scan(USERS, NOW).await?),
        vec![
            (x, record(b"users", vx2, None)),
            (y, record(b"users", vy, None))
        ]
    );
    assert_eq!(run.only_mine(store.scan(OTHER, NOW).await?), vec![]);
    Ok(())
}

/// Keys that a separator-joined layout (`table:key`, `table/key`) would
/// map to one storage key must stay two records.
pub async fn similar_table_names_stay_apart(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let d = Durability::Ephemeral;
    for (table, joined, sep) in [(SEP, SEP_COLON, ':'), (SEP, SEP_SLASH, '/')] {
        let inner = run.key(&format!("k{}", u32::from(sep)));
        let outer = format!("x{sep}{inner}");
        let v_outer = store.put(table, &outer, b"outer".to_vec(), None, d).await?;
        let v_inner = store
            .put(joined, &inner, b"inner".to_vec(), None, d)
            .await?;

        assert_eq!(
            store.get(table, &outer, NOW).await?,
            Some(record(b"outer", v_outer, None)),
            "{table} vs {joined}"
        );
        assert_eq!(
            store.get(joined, &inner, NOW).await?,
            Some(record(b"inner", v_inner, None)),
            "{joined} vs {table}"
        );
        assert_eq!(store.get(table, &inner, NOW).await?, None);
        assert_eq!(
            run.only_mine(store.scan(joined, NOW).await?),
            vec![(inner, record(b"inner", v_inner, None))]
        );
    }
    Ok(())
}

/// `a/` must not match `ab/`: a prefix is bytes, not a path segment, and
/// only the table asked for is read.
pub async fn scan_prefix_matches_only_keys_with_the_prefix(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let d = Durability::Ephemeral;
    let mut written = Vec::new();
    // Out of order; "a" < "a/1" < "a/2" < "ab/1" < "b/1" in byte order.
    for name in ["ab/1", "a/2", "b/1", "a", "a/1"] {
        let key = run.key(name);
        let v = store
            .put(TABLE, &key, name.as_bytes().to_vec(), None, d)
            .await?;
        written.push((name, (key, record(name.as_bytes(), v, None))));
    }
    let expect = |names: &[&str]| -> Vec<(String, Record)> {
        names
            .iter()
            .filter_map(|n| written.iter().find(|(w, _)| w == n))
            .map(|(_, entry)| entry.clone())
            .collect()
    };
    // The same keys elsewhere: another table, and one whose name extends
    // this one's.
    store
        .put(OTHER, &run.key("a/3"), b"other".to_vec(), None, d)
        .await?;
    store
        .put(USERS, &run.key("a/4"), b"users".to_vec(), None, d)
        .await?;
    let v_user = store
        .put(USER, &run.key("a/5"), b"user".to_vec(), None, d)
        .await?;

    assert_eq!(
        store.scan_prefix(TABLE, &run.key("a/"), NOW).await?,
        expect(&["a/1", "a/2"]),
        "a/ matches a/1 and a/2, not ab/1"
    );
    assert_eq!(
        store.scan_prefix(TABLE, &run.key("a"), NOW).await?,
        expect(&["a", "a/1", "a/2", "ab/1"]),
        "a matches every key that starts with it, in key order"
    );
    assert_eq!(
        store.scan_prefix(TABLE, &run.key("ab/"), NOW).await?,
        expect(&["ab/1"])
    );
    assert_eq!(
        store.scan_prefix(TABLE, &run.key("a/1"), NOW).await?,
        expect(&["a/1"]),
        "a whole key is its own prefix"
    );
    assert_eq!(
        store.scan_prefix(TABLE, &run.key("c"), NOW).await?,
        vec![],
        "no key has the prefix"
    );
    assert_eq!(
        store.scan_prefix(TABLE, &run.key("a/1/"), NOW).await?,
        vec![],
        "a prefix longer than the key"
    );
    assert_eq!(
        store.scan_prefix(USER, &run.key("a/"), NOW).await?,
        vec![(run.key("a/5"), record(b"user", v_user, None))],
        "a table whose name is a prefix of another's sees only its own keys"
    );

    // A `table:key` layout maps `SEP` plus a key starting "x" onto
    // `SEP_COLON`; the scan must not reach into that table.
    let inner = run.key("joined");
    store
        .put(SEP_COLON, &inner, b"inner".to_vec(), None, d)
        .await?;
    assert_eq!(
        run.only_mine(store.scan_prefix(SEP, "x", NOW).await?),
        vec![],
        "{SEP} must not see {SEP_COLON}"
    );
    Ok(())
}

pub async fn scan_prefix_empty_is_whole_table(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let d = Durability::Ephemeral;
    for name in ["z", "a/1", "m"] {
        store
            .put(TABLE, &run.key(name), name.as_bytes().to_vec(), None, d)
            .await?;
    }
    store
        .put(OTHER, &run.key("o"), b"o".to_vec(), None, d)
        .await?;
    // Other checks may write to the table between two scans, so compare
    // this run's records only.
    let whole = run.only_mine(store.scan_prefix(TABLE, "", NOW).await?);
    let scanned = run.only_mine(store.scan(TABLE, NOW).await?);
    assert_eq!(whole.len(), 3, "{whole:?}");
    assert_eq!(whole, scanned, "the empty prefix is the whole table");
    Ok(())
}

/// Paging through a prefix, ascending and descending, from both tiers,
/// yields every live record exactly once and in order, and nothing else.
pub async fn scan_page_walks_every_live_record_once_in_both_orders(
    store: &dyn Store,
) -> StoreResult<()> {
    let run = Run::new();
    let mut live = Vec::new();
    for i in 0..13 {
        let key = run.key(&format!("log/{i:02}"));
        // Both tiers, and an expired record in the middle.
        let durability = if i % 2 == 0 {
            Durability::Durable
        } else {
            Durability::Ephemeral
        };
        let expires = (i == 6).then_some(NOW);
        store
            .put(TABLE, &key, vec![b'x'; i], expires, durability)
            .await?;
        if i != 6 {
            live.push(key);
        }
    }
    // Neighbours that must never show up.
    store
        .put(
            TABLE,
            &run.key("log0"),
            b"x".to_vec(),
            None,
            Durability::Durable,
        )
        .await?;
    store
        .put(
            OTHER,
            &run.key("log/99"),
            b"x".to_vec(),
            None,
            Durability::Durable,
        )
        .await?;
    let prefix = run.key("log/");
    for (order, want) in [
        (Order::Ascending, live.clone()),
        (Order::Descending, live.iter().rev().cloned().collect()),
    ] {
        for limit in [1, 5, 12, 50] {
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .scan_page(TABLE, &prefix, after.as_deref(), order, limit, NOW)
                    .await?;
                assert!(page.len() <= limit, "{order:?} page of {limit}");
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                seen.extend(page.into_iter().map(|(k, _)| k));
            }
            assert_eq!(seen, want, "{order:?} in pages of {limit}");
        }
    }
    assert!(
        store
            .scan_page(TABLE, &prefix, None, Order::Ascending, 0, NOW)
            .await?
            .is_empty()
    );
    Ok(())
}

pub async fn scan_prefix_returns_only_live_records(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let d = Durability::Ephemeral;
    let forever = run.key("p/forever");
    let later = run.key("p/later");
    let soon = run.key("p/soon");
    let v_forever = store.put(TABLE, &forever, b"f".to_vec(), None, d).await?;
    let v_later = store
        .put(TABLE, &later, b"l".to_vec(), Some(NOW + 100), d)
        .await?;
    let v_soon = store
        .put(TABLE, &soon, b"s".to_vec(), Some(NOW + 10), d)
        .await?;

    let prefix = run.key("p/");
    assert_eq!(
        store.scan_prefix(TABLE, &prefix, NOW + 9).await?,
        vec![
            (forever.clone(), record(b"f", v_forever, None)),
            (later.clone(), record(b"l", v_later, Some(NOW + 100))),
            (soon, record(b"s", v_soon, Some(NOW + 10))),
        ]
    );
    assert_eq!(
        store.scan_prefix(TABLE, &prefix, NOW + 10).await?,
        vec![
            (forever.clone(), record(b"f", v_forever, None)),
            (later, record(b"l", v_later, Some(NOW + 100))),
        ],
        "a record is gone from the second it expires"
    );
    assert_eq!(
        store.scan_prefix(TABLE, &prefix, NOW + 100).await?,
        vec![(forever, record(b"f", v_forever, None))]
    );
    Ok(())
}

pub async fn purge_expired_removes_only_expired(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let (gone, kept, forever) = (run.key("gone"), run.key("kept"), run.key("forever"));
    let d = Durability::Durable;
    // Below NOW, so no other check's records expire by `purge_at`.
    let purge_at = NOW - 50;

    store
        .put(TABLE, &gone, b"g".to_vec(), Some(purge_at - 50), d)
        .await?;
    let v_kept = store
        .put(TABLE, &kept, b"k".to_vec(), Some(purge_at + 50), d)
        .await?;
    let v_forever = store.put(TABLE, &forever, b"f".to_vec(), None, d).await?;

    assert!(store.purge_expired(purge_at).await? >= 1);
    assert_eq!(
        store.get(TABLE, &gone, purge_at - 100).await?,
        None,
        "purged physically: not even visible at a time it was live"
    );
    assert_eq!(
        store.get(TABLE, &kept, purge_at - 100).await?,
        Some(record(b"k", v_kept, Some(purge_at + 50)))
    );
    assert_eq!(
        store.get(TABLE, &forever, purge_at).await?,
        Some(record(b"f", v_forever, None))
    );
    Ok(())
}

/// A key written with one durability and then the other is still one
/// record: every read and scan sees its latest write, once. (A backend may
/// keep ephemeral records apart from durable ones, as the embedded one
/// does.)
pub async fn durability_changes_keep_one_record(store: &dyn Store) -> StoreResult<()> {
    let run = Run::new();
    let (key, other, made) = (run.key("code"), run.key("grant"), run.key("made"));
    let (e, d) = (Durability::Ephemeral, Durability::Durable);
    let only_key = |scanned: Vec<(String, Record)>| -> Vec<(String, Record)> {
        scanned.into_iter().filter(|(k, _)| *k == key).collect()
    };
    let expect_one = |scanned: Vec<(String, Record)>, v: u64, value: &[u8]| {
        assert_eq!(
            only_key(scanned),
            vec![(key.clone(), record(value, v, None))]
        );
    };

    let v1 = store.put(TABLE, &key, b"issued".to_vec(), None, e).await?;
    expect_one(store.scan(TABLE, NOW).await?, v1, b"issued");
    let v2 = store
        .compare_and_swap(TABLE, &key, v1, Some(b"redeemed".to_vec()), None, d, NOW)
        .await?;
    let v2 = required(v2, "durable swap of an ephemeral record");
    assert_eq!(
        store.get(TABLE, &key, NOW).await?,
        Some(record(b"redeemed", v2, None))
    );
    expect_one(store.scan_prefix(TABLE, &key, NOW).await?, v2, b"redeemed");
    let v3 = store
        .compare_and_swap(TABLE, &key, v2, Some(b"again".to_vec()), None, e, NOW)
        .await?;
    let v3 = required(v3, "ephemeral swap of a durable record");
    assert_eq!(
        store.get(TABLE, &key, NOW).await?,
        Some(record(b"again", v3, None))
    );
    expect_one(store.scan(TABLE, NOW).await?, v3, b"again");
    assert!(v1 < v2 && v2 < v3);

    // An ephemeral transaction that checks a durable record and writes
    // both kinds of key, then a durable one over the same keys.
    let v_other = store.put(OTHER, &other, b"g".to_vec(), None, d).await?;
    let txn = Txn::new(e)
        .require(OTHER, other.clone(), Precondition::Version(v_other))
        .require(TABLE, key.clone(), Precondition::Version(v3))
        .require(TABLE, made.clone(), Precondition::Absent)
        .put(TABLE, key.clone(), b"txn".to_vec(), None)
        .put(TABLE, made.clone(), b"new".to_vec(), None)
        .put(OTHER, other.clone(), b"g2".to_vec(), None);
    assert!(store.commit(txn, NOW).await?);
    let v4 = required(version_of(store, &key).await?, "written by the txn");
    let v_made = required(version_of(store, &made).await?, "written by the txn");
    let txn = Txn::new(d)
        .require(TABLE, key.clone(), Precondition::Version(v4))
        .require(TABLE, made.clone(), Precondition::Version(v_made))
        .delete(TABLE, made.clone())
        .put(TABLE, key.clone(), b"durable".to_vec(), None);
    assert!(store.commit(txn, NOW).await?);
    assert_eq!(store.get(TABLE, &made, NOW).await?, None);
    let v5 = required(version_of(store, &key).await?, "written by the txn");
    expect_one(store.scan(TABLE, NOW).await?, v5, b"durable");

    // Taken once, whichever durability the take asks for.
    assert!(store.take(TABLE, &key, e, NOW).await?.is_some());
    assert_eq!(store.take(TABLE, &key, d, NOW).await?, None);
    assert_eq!(only_key(store.scan(TABLE, NOW).await?), vec![]);
    Ok(())
}

pub async fn ping_succeeds(store: &dyn Store) -> StoreResult<()> {
    store.ping().await
}

pub async fn concurrent_takes_have_one_winner(store: Arc<dyn Store>) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("code");
    let d = Durability::Ephemeral;
    store
        .put(TABLE, &key, b"code".to_vec(), Some(NOW + 60), d)
        .await?;

    let taken = race(&store, |store, _| {
        let key = key.clone();
        async move { store.take(TABLE, &key, d, NOW).await }
    })
    .await?;
    assert_eq!(taken.iter().flatten().count(), 1, "take-once winners");
    Ok(())
}

pub async fn concurrent_compare_and_swaps_have_one_winner(
    store: Arc<dyn Store>,
) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("refresh");
    let d = Durability::Durable;
    let v = store.put(TABLE, &key, b"start".to_vec(), None, d).await?;

    let swapped = race(&store, |store, i| {
        let key = key.clone();
        async move {
            let value = format!("writer-{i}").into_bytes();
            let new = store
                .compare_and_swap(TABLE, &key, v, Some(value), None, d, NOW)
                .await?;
            Ok(new.map(|new| (i, new)))
        }
    })
    .await?;
    let winners: Vec<(usize, u64)> = swapped.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "compare_and_swap winners");
    let (i, version) = winners[0];
    assert_eq!(
        store.get(TABLE, &key, NOW).await?,
        Some(record(format!("writer-{i}").as_bytes(), version, None))
    );
    Ok(())
}

pub async fn concurrent_inserts_have_one_winner(store: Arc<dyn Store>) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("username");
    let d = Durability::Durable;

    let inserted = race(&store, |store, i| {
        let key = key.clone();
        async move {
            let value = format!("writer-{i}").into_bytes();
            let new = store.insert(TABLE, &key, value, None, d, NOW).await?;
            Ok(new.map(|new| (i, new)))
        }
    })
    .await?;
    let winners: Vec<(usize, u64)> = inserted.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "insert winners");
    let (i, version) = winners[0];
    assert_eq!(
        store.get(TABLE, &key, NOW).await?,
        Some(record(format!("writer-{i}").as_bytes(), version, None))
    );
    Ok(())
}

/// The first-admin pattern: many claims on one `Absent` key, each also
/// writing a key of its own, so a loser's partial write would show.
pub async fn concurrent_commits_have_one_winner(store: Arc<dyn Store>) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("first-admin");
    let d = Durability::Durable;

    let committed = race(&store, |store, i| {
        let txn = Txn::new(d)
            .require(TABLE, key.clone(), Precondition::Absent)
            .put(TABLE, key.clone(), format!("writer-{i}").into_bytes(), None)
            .put(OTHER, run.key(&format!("side-{i}")), b"side".to_vec(), None);
        async move { store.commit(txn, NOW).await }
    })
    .await?;
    let winners: Vec<usize> = (0..RACERS).filter(|&i| committed[i]).collect();
    assert_eq!(winners.len(), 1, "commit winners");
    let winner = winners[0];
    assert_eq!(
        store.get(TABLE, &key, NOW).await?.map(|r| r.value),
        Some(format!("writer-{winner}").into_bytes())
    );
    let sides: Vec<String> = run
        .only_mine(store.scan(OTHER, NOW).await?)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(sides, vec![run.key(&format!("side-{winner}"))]);
    Ok(())
}

pub async fn concurrent_deletes_have_one_winner(store: Arc<dyn Store>) -> StoreResult<()> {
    let run = Run::new();
    let key = run.key("session");
    let d = Durability::Durable;
    store.put(TABLE, &key, b"s".to_vec(), None, d).await?;

    let deleted = race(&store, |store, _| {
        let key = key.clone();
        async move { store.delete(TABLE, &key, d, NOW).await }
    })
    .await?;
    assert_eq!(deleted.iter().filter(|&&d| d).count(), 1, "delete winners");
    Ok(())
}

/// Each increment's result is unique, so together they are exactly 1..=n,
/// at either durability (lockout counters count attempts ephemerally).
pub async fn concurrent_increments_are_exact(store: Arc<dyn Store>) -> StoreResult<()> {
    for durability in [Durability::Durable, Durability::Ephemeral] {
        concurrent_increments_are_exact_at(Arc::clone(&store), durability).await?;
    }
    Ok(())
}

async fn concurrent_increments_are_exact_at(
    store: Arc<dyn Store>,
    durability: Durability,
) -> StoreResult<()> {
    const PER_TASK: usize = 4;
    let run = Run::new();
    let key = run.key("attempts");

    let results = race(&store, |store, _| {
        let key = key.clone();
        async move {
            let mut seen = Vec::with_capacity(PER_TASK);
            for _ in 0..PER_TASK {
                seen.push(
                    store
                        .increment(TABLE, &key, 1, Some(NOW + 600), durability, NOW)
                        .await?,
                );
            }
            Ok(seen)
        }
    })
    .await?;
    let mut all: Vec<i64> = results.into_iter().flatten().collect();
    all.sort_unstable();
    let total = i64::try_from(RACERS * PER_TASK).unwrap_or(i64::MAX);
    assert_eq!(all, (1..=total).collect::<Vec<_>>());
    assert_eq!(
        store
            .get(TABLE, &key, NOW)
            .await?
            .map(|r| (r.value, r.expires_at)),
        Some((total.to_string().into_bytes(), Some(NOW + 600)))
    );
    Ok(())
}

/// Code redemption's shape: an ephemeral code, redeemed by durable
/// transactions (offline grants) and ephemeral ones (online grants) at
/// once, each also writing a key of its own. One wins, and only its write
/// lands. The ephemeral racers yield a few times first, so some arrive
/// while a durable one is being committed (a backend that commits
/// ephemeral work by another path must not let them in then).
pub async fn concurrent_mixed_durability_commits_have_one_winner(
    store: Arc<dyn Store>,
) -> StoreResult<()> {
    // The overlap this looks for is short; several rounds make missing it
    // every time unlikely.
    for round in 0..10 {
        let run = Run::new();
        let code = run.key("code");
        let issued = store
            .put(
                TABLE,
                &code,
                b"issued".to_vec(),
                Some(NOW + 60),
                Durability::Ephemeral,
            )
            .await?;

        let committed = race(&store, |store, i| {
            let durability = if i % 2 == 0 {
                Durability::Durable
            } else {
                Durability::Ephemeral
            };
            let txn = Txn::new(durability)
                .require(TABLE, code.clone(), Precondition::Version(issued))
                .put(
                    TABLE,
                    code.clone(),
                    format!("redeemed-{i}").into_bytes(),
                    None,
                )
                .put(
                    OTHER,
                    run.key(&format!("grant-{i}")),
                    b"grant".to_vec(),
                    None,
                );
            let yields = match durability {
                Durability::Durable => 0,
                Durability::Ephemeral => 20 * i,
            };
            async move {
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
                store.commit(txn, NOW).await
            }
        })
        .await?;
        let winners: Vec<usize> = (0..RACERS).filter(|&i| committed[i]).collect();
        assert_eq!(
            winners.len(),
            1,
            "mixed-durability commit winners, round {round}"
        );
        let winner = winners[0];
        assert_eq!(
            store.get(TABLE, &code, NOW).await?.map(|r| r.value),
            Some(format!("redeemed-{winner}").into_bytes())
        );
        let grants: Vec<String> = run
            .only_mine(store.scan(OTHER, NOW).await?)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(grants, vec![run.key(&format!("grant-{winner}"))]);
    }
    Ok(())
}

/// Starts [`RACERS`] tasks at once (a barrier lines them up) and returns
/// their results in task order.
async fn race<T, F, Fut>(store: &Arc<dyn Store>, task: F) -> StoreResult<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Arc<dyn Store>, usize) -> Fut,
    Fut: Future<Output = StoreResult<T>> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = JoinSet::new();
    for i in 0..RACERS {
        let barrier = Arc::clone(&barrier);
        let work = task(Arc::clone(store), i);
        tasks.spawn(async move {
            barrier.wait().await;
            (i, work.await)
        });
    }
    let mut results: Vec<Option<T>> = (0..RACERS).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) =
            joined.map_err(|e| StoreError::Unavailable(format!("racing task failed: {e}")))?;
        results[i] = Some(result?);
    }
    Ok(results.into_iter().flatten().collect())
}

/// Namespaces one check's keys so runs sharing a backend never collide.
struct Run {
    id: String,
}

impl Run {
    fn new() -> Self {
        let mut bytes = [0u8; 8];
        assert!(
            SystemRandom::new().fill(&mut bytes).is_ok(),
            "the system random source failed"
        );
        Run {
            id: format!("{:016x}", u64::from_be_bytes(bytes)),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.id)
    }

    /// The entries of a scan that mention this run's id anywhere, so a key
    /// leaking in from another table shows even if mangled.
    fn only_mine(&self, scanned: Vec<(String, Record)>) -> Vec<(String, Record)> {
        scanned
            .into_iter()
            .filter(|(k, _)| k.contains(&self.id))
            .collect()
    }
}

#[derive(Default)]
struct Versions {
    seen: HashSet<u64>,
    last: u64,
}

impl Versions {
    fn fresh(&mut self, version: u64, what: &str) {
        assert!(self.seen.insert(version), "{what} reused version {version}");
        self.last = version;
    }

    fn fresh_opt(&mut self, version: Option<u64>, what: &str) {
        assert!(version.is_some(), "{what} wrote no record");
        self.fresh(version.unwrap_or_default(), what);
    }
}

fn record(value: &[u8], version: u64, expires_at: Option<i64>) -> Record {
    Record {
        value: value.to_vec(),
        version,
        expires_at,
    }
}

/// The value a check cannot go on without (this module is not test-only,
/// so it asserts rather than unwraps).
fn required<T: Default>(value: Option<T>, what: &str) -> T {
    assert!(value.is_some(), "missing: {what}");
    value.unwrap_or_default()
}

async fn version_of(store: &dyn Store, key: &str) -> StoreResult<Option<u64>> {
    Ok(store.get(TABLE, key, NOW).await?.map(|r| r.version))
}
