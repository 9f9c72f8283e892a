//! A [`Store`] that reports each operation's latency and failures to the
//! metrics (`gatepass_store_operation_duration_seconds`,
//! `gatepass_store_errors_total`), labelled by backend and operation, then
//! answers exactly as the store it wraps.

use super::{Durability, Order, Record, Store, StoreError, StoreResult, Table, Txn};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Instant;

/// The operations, as their `op` label reads.
const OPS: [&str; 12] = [
    "get",
    "put",
    "insert",
    "take",
    "compare_and_swap",
    "delete",
    "increment",
    "commit",
    "scan",
    "purge",
    "ping",
    "other",
];

pub struct MeteredStore {
    inner: Arc<dyn Store>,
    backend: &'static str,
    /// One latency histogram per operation, registered once: recording is
    /// then a lookup in this array, not in the metrics registry.
    durations: Vec<metrics::Histogram>,
}

impl MeteredStore {
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        let backend = inner.backend();
        let durations = OPS
            .iter()
            .map(|op| {
                metrics::histogram!(
                    "gatepass_store_operation_duration_seconds",
                    "backend" => backend,
                    "op" => *op,
                )
            })
            .collect();
        Arc::new(MeteredStore {
            inner,
            backend,
            durations,
        })
    }

    fn observe<T>(&self, op: &'static str, started: Instant, result: &StoreResult<T>) {
        let index = OPS.iter().position(|o| *o == op).unwrap_or(OPS.len() - 1);
        if let Some(h) = self.durations.get(index) {
            h.record(started.elapsed().as_secs_f64());
        }
        if let Err(e) = result {
            let kind = match e {
                StoreError::Unavailable(_) => "unavailable",
                StoreError::Corrupt(_) => "corrupt",
            };
            metrics::counter!(
                "gatepass_store_errors_total",
                "backend" => self.backend,
                "op" => op,
                "kind" => kind,
            )
            .increment(1);
        }
    }
}

/// Times `$call` on the inner store as operation `$op`.
macro_rules! metered {
    ($self:ident, $op:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.observe($op, started, &result);
        result
    }};
}

#[async_trait]
impl Store for MeteredStore {
    async fn get(&self, table: Table, key: &str, now: i64) -> StoreResult<Option<Record>> {
        metered!(self, "get", self.inner.get(table, key, now))
    }

    async fn put(
        &self,
        table: Table,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<i64>,
        durability: Durability,
    ) -> StoreResult<u64> {
        metered!(
            self,
            "put",
            self.inner.put(table, key, value, expires_at, durability)
        )
    }

    async fn insert(
        &self,
        table: Table,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<i64>,
        durability: Durability,
        now: i64,
    ) -> StoreResult<Option<u64>> {
        metered!(
            self,
            "insert",
            self.inner
                .insert(table, key, value, expires_at, durability, now)
        )
    }

    async fn take(
        &self,
        table: Table,
        key: &str,
        durability: Durability,
        now: i64,
    ) -> StoreResult<Option<Record>> {
        metered!(self, "take", self.inner.take(table, key, durability, now))
    }

    async fn compare_and_swap(
        &self,
        table: Table,
        key: &str,
        expected: u64,
        new_value: Option<Vec<u8>>,
        expires_at: Option<i64>,
        durability: Durability,
        now: i64,
    ) -> StoreResult<Option<u64>> {
        metered!(
            self,
            "compare_and_swap",
            self.inner
                .compare_and_swap(table, key, expected, new_value, expires_at, durability, now)
        )
    }

    async fn delete(
        &self,
        table: Table,
        key: &str,
        durability: Durability,
        now: i64,
    ) -> StoreResult<bool> {
        metered!(
            self,
            "delete",
            self.inner.delete(table, key, durability, now)
        )
    }

    async fn increment(
        &self,
        table: Table,
        key: &str,
        delta: i64,
        expires_at: Option<i64>,
        durability: Durability,
        now: i64,
    ) -> StoreResult<i64> {
        metered!(
            self,
            "increment",
            self.inner
                .increment(table, key, delta, expires_at, durability, now)
        )
    }

    async fn commit(&self, txn: Txn, now: i64) -> StoreResult<bool> {
        metered!(self, "commit", self.inner.commit(txn, now))
    }

    async fn scan(&self, table: Table, now: i64) -> StoreResult<Vec<(String, Record)>> {
        metered!(self, "scan", self.inner.scan(table, now))
    }

    async fn scan_prefix(
        &self,
        table: Table,
        prefix: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, Record)>> {
        metered!(self, "scan", self.inner.scan_prefix(table, prefix, now))
    }

    async fn scan_page(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        order: Order,
        limit: usize,
        now: i64,
    ) -> StoreResult<Vec<(String, Record)>> {
        metered!(
            self,
            "scan",
            self.inner
                .scan_page(table, prefix, after, order, limit, now)
        )
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        metered!(self, "purge", self.inner.purge_expired(now))
    }

    async fn ping(&self) -> StoreResult<()> {
        metered!(self, "ping", self.inner.ping())
    }

    async fn startup_warnings(&self) -> Vec<String> {
        self.inner.startup_warnings().await
    }

    fn backend(&self) -> &'static str {
        self.backend
    }
}
