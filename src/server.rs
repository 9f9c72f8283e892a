//! Running the server: first start, background upkeep, graceful shutdown.

use crate::app::AppState;
use crate::audit::{DirectoryAudit, Initiator, KeyValue, TargetResource};
use std::time::Duration;
use tokio::net::TcpListener;

/// First start on an empty store: seed the TAP policy from the
/// configuration, create `admin` (Global Administrator) with a one-time
/// Temporary Access Pass, and print the pass and the sign-in URL once.
/// Returns the pass for tests; `None` when the store was already set up.
pub async fn bootstrap(state: &AppState) -> Result<Option<String>, String> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    state
        .taps
        .seed_policy(&state.settings.tap_policy, t)
        .await
        .map_err(|e| e.to_string())?;
    let created = state
        .directory
        .bootstrap_admin("admin", None, now)
        .await
        .map_err(|e| e.to_string())?;
    // After `admin` exists, so a seed policy may name it by UPN.
    seed_conditional_access(state, now).await?;
    let Some(user) = created else {
        return Ok(None);
    };
    // The bootstrap pass ignores policy targeting (the policy may exclude
    // everyone) but keeps its lifetime bounds: the longest lifetime allowed,
    // one-time, so the operator has time to sign in and enroll a passkey.
    let mut policy = state.taps.policy(t).await.map_err(|e| e.to_string())?;
    policy.state = crate::authn::tap::MethodState::Enabled;
    let request = crate::authn::tap::IssueRequest {
        is_usable_once: Some(true),
        start_at: None,
        lifetime_in_minutes: Some(policy.maximum_lifetime_in_minutes),
    };
    let issued = state
        .taps
        .issue(&state.hasher, user.id, &policy, true, &request, t)
        .await
        .map_err(|e| e.to_string())?;
    for activity in ["Add user", "Admin registered security info"] {
        let reason = KeyValue::new("reason", "first start");
        record_system_change(state, &user, activity, vec![reason], now).await?;
    }
    let end = pass_end(&issued.pass);
    let sign_in_url = sign_in_url(state);
    // Deliberately printed, not logged: this is the one time the operator
    // sees the pass, and it must not land in log pipelines.
    let issuer = &state.settings.issuer;
    println!();
    println!("  Gatepass is set up. Open the admin console: {issuer}/admin");
    println!("    Username:                 admin (Global Administrator)");
    println!(
        "    Temporary Access Pass:    {}   (one-time, valid until {end}; shown only now)",
        issued.secret.expose()
    );
    if state.settings.demo {
        println!("  See a sign-in as an application does, with its amr and acr: {issuer}/demo");
    } else {
        println!("  A relying party's sign-in, for the demo client: {sign_in_url}");
    }
    println!("  Documentation: README.md (walkthrough, admin console, Graph API, operations)");
    println!();
    Ok(Some(issued.secret.expose().to_owned()))
}

/// Stores the `[conditional_access]` seed objects that are not there yet,
/// once per store (a marker makes later starts leave Graph edits alone).
/// Users a seed policy names by UPN are resolved to object ids first; an
/// unknown one refuses the start rather than seed a policy that silently
/// matches nobody.
async fn seed_conditional_access(state: &AppState, at: time::OffsetDateTime) -> Result<(), String> {
    use crate::policy::ca_store::{CaKind, resolve_user_names};
    const MARKER: (&str, &str) = ("meta", "conditional_access_seeded");
    let now = at.unix_timestamp();
    let seeded = state
        .store
        .get(MARKER.0, MARKER.1, now)
        .await
        .map_err(|e| e.to_string())?;
    if seeded.is_some() {
        return Ok(());
    }
    let seed = &state.settings.conditional_access_seed;
    let mut objects = Vec::new();
    for (kind, items) in [
        (CaKind::Strength, &seed.strengths),
        (CaKind::NamedLocation, &seed.named_locations),
        (CaKind::Policy, &seed.policies),
    ] {
        for item in items {
            let mut item = item.clone();
            if kind == CaKind::Policy {
                resolve_user_names(&mut item, &state.directory, at)
                    .await
                    .map_err(|e| format!("[conditional_access] policies: {e}"))?;
            }
            objects.push((kind, item));
        }
    }
    let marker = state
        .store
        .insert(
            MARKER.0,
            MARKER.1,
            Vec::new(),
            None,
            crate::store::Durability::Durable,
            now,
        )
        .await
        .map_err(|e| e.to_string())?;
    if marker.is_none() {
        return Ok(()); // another instance seeded first
    }
    for (kind, item) in objects {
        if let Some(id) = item.get("id").and_then(serde_json::Value::as_str) {
            state
                .ca
                .insert(kind, id, &item, now)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Issues a pass for `upn` from the command line, bypassing policy
/// targeting (but not the lifetime bounds), records it in the directory
/// audit, and prints it once.
pub async fn issue_recovery_tap(
    state: &AppState,
    upn: &str,
    lifetime: Option<u32>,
    one_time: bool,
) -> Result<(), String> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let user = state
        .directory
        .user_by_upn(upn, now)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user with userPrincipalName {upn:?}"))?;
    let mut policy = state.taps.policy(t).await.map_err(|e| e.to_string())?;
    policy.state = crate::authn::tap::MethodState::Enabled;
    let request = crate::authn::tap::IssueRequest {
        is_usable_once: Some(one_time),
        start_at: None,
        lifetime_in_minutes: lifetime,
    };
    let issued = state
        .taps
        .issue(&state.hasher, user.id, &policy, true, &request, t)
        .await
        .map_err(|e| e.to_string())?;
    let details = vec![
        KeyValue::new("methodType", "TemporaryAccessPass"),
        KeyValue::new("reason", "issued from the command line"),
    ];
    record_system_change(state, &user, "Admin registered security info", details, now).await?;
    let end = pass_end(&issued.pass);
    println!(
        "Temporary Access Pass for {upn} ({}, valid until {end}): {}",
        if issued.pass.is_usable_once {
            "one-time"
        } else {
            "multi-use"
        },
        issued.secret.expose()
    );
    println!("Sign in: {}", sign_in_url(state));
    Ok(())
}

fn sign_in_url(state: &AppState) -> String {
    let issuer = &state.settings.issuer;
    // The configured clients: on a first start nothing is registered yet.
    let mut clients: Vec<_> = state
        .clients
        .configured()
        .filter(|c| !c.redirect_uris.is_empty())
        .collect();
    clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    match clients.first() {
        Some(c) => {
            let mut url = format!("{issuer}/authorize");
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", &c.client_id)
                .append_pair("response_type", "code")
                .append_pair("scope", "openid profile")
                .append_pair("redirect_uri", &c.redirect_uris[0])
                .append_pair("state", "walkthrough")
                .finish();
            url.push('?');
            url.push_str(&query);
            url
        }
        None => format!("{issuer}/.well-known/openid-configuration"),
    }
}

/// Serves until SIGTERM or Ctrl-C, then drains in-flight requests for at
/// most `[server] shutdown_grace_seconds`, and returns only once every
/// connection and background job has let go of the state, so the store is
/// closed (the embedded store saves its memory tier) when the caller drops
/// it.
pub async fn serve(state: AppState) -> std::io::Result<()> {
    let listener = bind(&state.settings).await?;
    serve_listener(listener, state).await
}

/// Binds `listen`; the error names the address and the setting, so a
/// second instance on a taken port says so before doing anything else.
pub async fn bind(settings: &crate::config::Settings) -> std::io::Result<TcpListener> {
    TcpListener::bind(settings.listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {} (the `listen` setting): {e}",
                settings.listen
            ),
        )
    })
}

/// [`serve`] on an already-bound listener.
pub async fn serve_listener(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    for warning in startup_warnings(&state).await {
        tracing::warn!("{warning}");
    }
    tracing::info!(listen = %state.settings.listen, issuer = %state.settings.issuer, "Gatepass is listening");
    let upkeep = spawn_upkeep(state.clone());
    // Every instance delivers back-channel logout tokens from the shared queue.
    let backchannel = state
        .backchannel
        .is_active()
        .then(|| crate::logout::delivery::spawn_worker(state.clone()));
    let metrics = match state.settings.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} (`[metrics] listen`): {e}"),
                )
            })?;
            tracing::info!(listen = %addr, "metrics are served on their own address");
            let router = crate::web::metrics_router(state.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            }))
        }
        None => None,
    };
    serve_on(listener, state, shutdown_signal()).await;
    if let Some(m) = metrics {
        m.abort();
        let _ = m.await;
    }
    upkeep.abort();
    let _ = upkeep.await;
    if let Some(worker) = backchannel {
        worker.abort();
        let _ = worker.await;
    }
    Ok(())
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, with the
/// limits of `[server]`:
/// - a request's headers must arrive within `header_read_timeout` (an idle
///   keep-alive connection is closed after it too), so a connection that
///   sends half a header cannot hold a slot or stall shutdown;
/// - at most `max_connections` connections are served at once; further ones
///   wait in the kernel's accept backlog;
/// - body and whole-request timeouts are layers of the router
///   ([`crate::web::router`]);
/// - on `shutdown`, accepting stops, open connections finish their current
///   request, and after `shutdown_grace` whatever is left is closed.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use std::sync::Arc;
    let limits = state.settings.server.clone();
    let router = crate::router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, and
                    // keep serving the connections already open.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request.map(axum::body::Body::new)
            },
        );
        let connection = http.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(
        connections = open,
        "shutting down: draining in-flight requests"
    );
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            "shutdown grace period over: closing the remaining connections"
        );
    }
    connections.shutdown().await;
}

/// What an operator should fix before trusting this deployment: backend
/// settings that lose data, and demo secrets left in place.
pub async fn startup_warnings(state: &AppState) -> Vec<String> {
    let mut warnings = state.store.startup_warnings().await;
    warnings.extend(state.settings.warnings());
    warnings.extend(seed_drift(state).await);
    warnings
}

/// `[tap]` and `[conditional_access]` seed the store at the first start;
/// after it the console and the Graph API own those objects, so a later
/// edit of the file changes nothing. Say so, naming the section, when the
/// file and the store disagree.
async fn seed_drift(state: &AppState) -> Vec<String> {
    use crate::policy::ca_store::CaKind;
    let now = state.clock.now().unix_timestamp();
    let mut warnings = Vec::new();
    if let Ok(stored) = state.taps.policy(now).await {
        if stored != state.settings.tap_policy {
            warnings.push(
                "`[tap]` in the configuration differs from the stored Temporary Access Pass policy: \
                 the file only seeds the first start; change the policy in the admin console \
                 (Authentication methods) or through the Graph API"
                    .to_owned(),
            );
        }
    }
    let seed = &state.settings.conditional_access_seed;
    if !seed.policies.is_empty() {
        if let Ok(stored) = state.ca.list(CaKind::Policy, now).await {
            let same = |a: &serde_json::Value, b: &serde_json::Value| {
                ["displayName", "state", "grantControls", "sessionControls"]
                    .iter()
                    .all(|k| a.get(*k) == b.get(*k))
            };
            let drifted = seed.policies.iter().any(|p| {
                !stored
                    .iter()
                    .any(|s| s.get("displayName") == p.get("displayName") && same(s, p))
            });
            if drifted {
                warnings.push(
                    "`[conditional_access]` files differ from the stored policies: they only seed the \
                     first start; manage policies in the admin console or through the Graph API"
                        .to_owned(),
                );
            }
        }
    }
    warnings
}

/// Periodic jobs: pick up rotated keys, purge expired records.
pub fn spawn_upkeep(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        let mut rounds: u64 = 0;
        loop {
            tick.tick().await;
            let now = state.clock.now();
            // A key added by `gatepass keys rotate` reaches every instance
            // within a minute.
            if let Err(e) = state.tokens.keys().reload(now) {
                tracing::warn!(error = %e, "could not reload signing keys");
            }
            rounds += 1;
            if rounds % 10 == 0 {
                match state.store.purge_expired(now.unix_timestamp()).await {
                    Ok(n) if n > 0 => tracing::debug!(purged = n, "expired records purged"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "purge of expired records failed"),
                }
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Records a change Gatepass made itself (first start, the command line) to
/// `user` in the directory audit.
async fn record_system_change(
    state: &AppState,
    user: &crate::directory::User,
    activity: &str,
    details: Vec<KeyValue>,
    now: time::OffsetDateTime,
) -> Result<(), String> {
    let entry = DirectoryAudit::success(
        activity,
        "UserManagement",
        Initiator::System,
        TargetResource::user(user),
        details,
        now,
    )
    .map_err(|e| e.to_string())?;
    state
        .audit
        .record_directory(&entry)
        .await
        .map_err(|e| e.to_string())
}

/// When a pass ends, as RFC 3339 (empty if out of range).
fn pass_end(pass: &crate::authn::tap::TemporaryAccessPass) -> String {
    time::OffsetDateTime::from_unix_timestamp(pass.end_at())
        .ok()
        .and_then(|e| {
            e.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
