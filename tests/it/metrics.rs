//! `GET /metrics` as Prometheus scrapes it: each family counts what it
//! says, labels are route templates and fixed names — never a username,
//! a raw path or a secret.
//!
//! The recorder is process-wide and tests run concurrently, so each check
//! reads a counter before and after its own action and expects it to grow.

use crate::harness::*;
use reqwest::StatusCode;
use serde_json::json;

async fn scrape(app: &TestApp) -> String {
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().await.unwrap()
}

/// The sum of the samples of `name` whose labels include every one of
/// `labels` (`key="value"`).
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

#[tokio::test]
async fn metrics_count_sign_ins_passes_lockouts_decisions_requests_and_store_work() {
    let app = TestApp::spawn().await;
    let probe = "metrics-probe-7f3a@contoso.com";
    let password = "metrics probe password 1";
    let user = app.create_user(probe, Some(password)).await;
    let before = scrape(&app).await;

    // A password sign-in through the code flow, a pass, a lockout.
    app.user_tokens(probe, password, "openid").await;
    let tap = app.issue_tap(&user, json!({})).await;
    assert!(tap["temporaryAccessPass"].is_string());
    let locked = app
        .create_user("metrics-locked@contoso.com", Some(password))
        .await;
    for _ in 0..6 {
        let url = pkce_authorize_url(&app.issuer, "openid", PKCE_CHALLENGE, "");
        let _ = app
            .browser()
            .sign_in(&url, &locked.user_principal_name, "wrong password 1")
            .await;
    }
    let users = app
        .http
        .get(app.url(&format!("/v1.0/users/{}", user.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), StatusCode::UNAUTHORIZED);
    let _ = app.http.get(app.url("/no/such/page")).send().await.unwrap();

    let after = scrape(&app).await;
    let grew = |name: &str, labels: &[&str]| {
        let (b, a) = (sample(&before, name, labels), sample(&after, name, labels));
        assert!(a > b, "{name}{labels:?} did not grow: {b} → {a}\n{after}");
    };
    grew(
        "gatepass_signins_total",
        &["method=\"password\"", "result=\"success\""],
    );
    grew("gatepass_signins_total", &["result=\"failure\""]);
    grew("gatepass_tap_issued_total", &[]);
    grew("gatepass_lockouts_total", &["subject=\"account\""]);
    grew("gatepass_ca_decisions_total", &["decision=\"allow\""]);
    grew("gatepass_http_requests_total", &["route=\"/authorize\""]);
    grew(
        "gatepass_http_requests_total",
        &["route=\"/v1.0/users/{id}\"", "status=\"401\""],
    );
    grew(
        "gatepass_http_requests_total",
        &["route=\"unmatched\"", "status=\"404\""],
    );
    grew(
        "gatepass_http_request_duration_seconds_count",
        &["route=\"/token\""],
    );
    grew(
        "gatepass_store_operation_duration_seconds_count",
        &["backend=\"embedded\"", "op=\"get\""],
    );
    assert!(
        after.contains("gatepass_password_hash_in_flight "),
        "{after}"
    );
    assert!(
        after.contains("gatepass_password_hash_capacity "),
        "{after}"
    );
    assert!(after.contains("# HELP gatepass_signins_total"), "{after}");

    // Bounded labels: no username, no raw path, no object id, no secret.
    for leak in [
        probe,
        "metrics-locked",
        "/no/such/page",
        &user.id.to_string(),
        tap["temporaryAccessPass"].as_str().unwrap(),
        password,
    ] {
        assert!(!after.contains(leak), "/metrics shows {leak:?}");
    }
}

#[tokio::test]
async fn metrics_on_their_own_address_leave_the_main_listener() {
    let app = TestApp::spawn_with("[metrics]\nlisten = \"127.0.0.1:9464\"\n").await;
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // And the address is checked at start-up.
    let bad = gatepass::config::Settings::from_toml(
        &format!(
            "{}\n[metrics]\nlisten = \"not an address\"\n",
            config_text("http://localhost:8080", app.dir.path())
        ),
        std::path::Path::new("t.toml"),
        std::iter::empty(),
    )
    .unwrap_err();
    assert!(bad.to_string().contains("metrics.listen"), "{bad}");
}

/// `gatepass serve` with `[metrics] listen`: the metrics on their own
/// address, not on the public one.
#[tokio::test]
async fn gatepass_serve_answers_metrics_on_the_metrics_address_only() {
    let port = crate::process::free_port();
    let server =
        crate::process::Process::start(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"), &[])
            .await;
    let http = reqwest::Client::new();
    let main = http
        .get(format!("{}/metrics", server.issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
    let own = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let text = own.text().await.unwrap();
    assert!(
        text.contains("gatepass_store_operation_duration_seconds"),
        "{text}"
    );
}
