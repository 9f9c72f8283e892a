//! Prometheus metrics (DESIGN §2.10): what operators watch — requests by
//! route template and status, sign-ins by method and result, passes issued,
//! lockouts, conditional-access decisions, the password-hash queue, and
//! store latency and errors by backend.
//!
//! Labels have bounded cardinality: route *templates* (never raw paths),
//! method and result names from fixed sets, the backend's name. Never a
//! username, UPN, address, token or secret.
//!
//! The recorder is process-wide (the `metrics` facade); it is installed
//! once, on first use, and every [`crate::app::AppState`] in the process
//! reports to it.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Seconds buckets for request and store latencies: 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the Prometheus recorder (once per process) and returns its
/// handle; `None` if another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &LATENCY_BUCKETS,
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "gatepass_http_requests_total",
        "HTTP requests answered, by route template and status code."
    );
    describe_histogram!(
        "gatepass_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route template."
    );
    describe_counter!(
        "gatepass_signins_total",
        "Interactive sign-ins recorded in the sign-in log, by method (password, tap, passkey, none) and result (success, failure)."
    );
    describe_counter!(
        "gatepass_tap_issued_total",
        "Temporary Access Passes issued."
    );
    describe_counter!(
        "gatepass_lockouts_total",
        "Lockouts started, by subject (account or source address)."
    );
    describe_counter!(
        "gatepass_ca_decisions_total",
        "Conditional-access decisions at sign-in and page access, by decision (allow, step_up, block)."
    );
    describe_gauge!(
        "gatepass_password_hash_in_flight",
        "Password and pass hashes running or waiting for a slot."
    );
    describe_gauge!(
        "gatepass_password_hash_capacity",
        "Hashes that may run or wait at once before new ones are refused (503)."
    );
    describe_histogram!(
        "gatepass_store_operation_duration_seconds",
        Unit::Seconds,
        "Time of one store operation, by backend and operation."
    );
    describe_counter!(
        "gatepass_store_errors_total",
        "Store operations that failed, by backend, operation and kind (unavailable, corrupt)."
    );
}

/// The metrics in Prometheus' text format, after reading the gauges that
/// are sampled rather than counted.
pub fn render(state: &crate::app::AppState) -> Option<String> {
    let handle = install()?;
    let hasher = &state.hasher;
    metrics::gauge!("gatepass_password_hash_in_flight").set(hasher.queue_depth() as f64);
    metrics::gauge!("gatepass_password_hash_capacity").set(hasher.queue_capacity() as f64);
    Some(handle.render())
}

/// The request counter and latency histogram of one (route, status): the
/// handles are looked up once and kept, so counting a request is an atomic
/// add and a histogram record, not a registry lookup with label strings.
#[derive(Clone)]
struct RouteHandles {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

type RouteKey = (std::sync::Arc<str>, u16);

static ROUTES: OnceLock<std::sync::RwLock<std::collections::HashMap<RouteKey, RouteHandles>>> =
    OnceLock::new();

/// Counts one answered request of `route` (a template) with `status`,
/// which took `seconds`.
pub fn record_request(route: &std::sync::Arc<str>, status: u16, seconds: f64) {
    let routes = ROUTES.get_or_init(Default::default);
    let key: RouteKey = (route.clone(), status);
    let cached = routes
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
        .cloned();
    let handles = match cached {
        Some(h) => h,
        None => {
            let h = RouteHandles {
                requests: metrics::counter!(
                    "gatepass_http_requests_total",
                    "route" => route.to_string(),
                    "status" => status.to_string(),
                ),
                duration: metrics::histogram!(
                    "gatepass_http_request_duration_seconds",
                    "route" => route.to_string(),
                ),
            };
            routes
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, h.clone());
            h
        }
    };
    handles.requests.increment(1);
    handles.duration.record(seconds);
}
