//! The registration campaign through the real pages (DESIGN §2.11): after
//! an interactive sign-in to an application, a targeted user without a
//! passkey meets the interrupt, **Not now** is counted and snoozes it, the
//! campaign enforces registration after the allowed snoozes, setting a
//! passkey up continues to the application, and the interrupt never shows
//! to a user who has a passkey, is not targeted, or could not register one.

use crate::authenticator::KeyAuthenticator;
use crate::graph_client::*;
use crate::harness::*;
use crate::passkey::account_sign_in_with_tap;
use gatepass::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

const METHODS_POLICY: &str = "/v1.0/policies/authenticationMethodsPolicy";
const PASSWORD: &str = "correct horse battery";
const DAY: time::Duration = time::Duration::days(1);

async fn campaign(app: &TestApp, body: Value) {
    let token = automation(app).await;
    let r = patch(
        app,
        METHODS_POLICY,
        &token,
        json!({"registrationEnforcement": {"authenticationMethodsRegistrationCampaign": body}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

fn enabled() -> Value {
    json!({"state": "enabled", "snoozeDurationInDays": 1, "enforceRegistrationAfterAllowedSnoozes": true})
}

/// A password sign-in to the RP in a new browser: the redirect to the RP,
/// or the page that stopped it (and the browser, to answer it).
async fn sign_in(app: &TestApp, username: &str) -> (Browser, Result<String, Page>) {
    let browser = app.browser();
    let url = pkce_authorize_url(&app.issuer, "openid", PKCE_CHALLENGE, "");
    let answer = browser.sign_in(&url, username, PASSWORD).await;
    (browser, answer)
}

fn is_interrupt(page: &Page) -> bool {
    page.html.contains("<h1>Set up a passkey</h1>") && page.html.contains(">Set up a passkey</a>")
}

/// The interrupt's id, from its Set up a passkey link.
fn interrupt_id(page: &Page) -> String {
    page.html
        .split("href=\"")
        .find_map(|s| s.strip_prefix("/account/security-info?campaign="))
        .and_then(|s| s.split('"').next())
        .expect("the Set up a passkey link")
        .to_owned()
}

/// Answers the interrupt with Not now. An enforced interrupt has no such
/// form; the session's CSRF token is then read from the security-info page,
/// as a hand-made request would.
async fn not_now(browser: &Browser, page: &Page) -> Page {
    let csrf = match page.hidden("csrf") {
        Some(csrf) => csrf,
        None => meta_csrf(&browser.get("/account/security-info").await),
    };
    browser
        .post_form(
            "/signin/campaign",
            &[("id", &interrupt_id(page)), ("csrf", &csrf)],
        )
        .await
}

async fn snoozes(app: &TestApp, user: &gatepass::directory::User) -> u32 {
    app.state
        .passkey_policy
        .snoozes(user.id, app.clock.now().unix_timestamp())
        .await
        .unwrap()
        .count
}

#[tokio::test]
async fn not_now_snoozes_the_interrupt_until_the_allowed_snoozes_are_spent() {
    let app = TestApp::spawn().await;
    let user = app.create_user("nudged", Some(PASSWORD)).await;
    // Off by default ("default" is Microsoft-managed in Entra; off here).
    let (_, answer) = sign_in(&app, "nudged").await;
    assert!(answer.is_ok(), "no campaign, no interrupt");

    campaign(&app, enabled()).await;
    for round in 1..=3 {
        let (browser, answer) = sign_in(&app, "nudged").await;
        let page = answer.expect_err("the interrupt");
        assert!(is_interrupt(&page), "round {round}: {}", page.html);
        assert!(page.has_button("Not now"), "round {round}");
        // Nothing was issued yet: Not now continues to the application.
        let done = not_now(&browser, &page).await;
        let location = done.location.clone().expect("continues to the app");
        assert!(location.starts_with(RP_REDIRECT), "{location}");
        let tokens = app.redeem_as_rp(&location).await;
        assert!(tokens["id_token"].is_string(), "{tokens}");
        assert_eq!(snoozes(&app, &user).await, round);
        // Snoozed: the next sign-in within the day goes straight through.
        let (_, answer) = sign_in(&app, "nudged").await;
        assert!(answer.is_ok(), "round {round}: snoozed for a day");
        app.clock.advance(DAY);
    }

    // Enforced: no Not now, and posting it anyway continues nowhere.
    let (browser, answer) = sign_in(&app, "nudged").await;
    let page = answer.expect_err("the interrupt");
    assert!(is_interrupt(&page));
    assert!(!page.has_button("Not now"), "{}", page.html);
    let forced = not_now(&browser, &page).await;
    assert!(forced.location.is_none(), "no way on without a passkey");
    assert!(is_interrupt(&forced), "{}", forced.html);
    assert_eq!(snoozes(&app, &user).await, 3);

    // Without enforcement the user may go on snoozing.
    campaign(
        &app,
        json!({"enforceRegistrationAfterAllowedSnoozes": false}),
    )
    .await;
    let (browser, answer) = sign_in(&app, "nudged").await;
    let page = answer.expect_err("the interrupt");
    assert!(page.has_button("Not now"));
    assert!(not_now(&browser, &page).await.location.is_some());
    assert_eq!(snoozes(&app, &user).await, 4);
}

#[tokio::test]
async fn set_up_a_passkey_from_the_interrupt_then_continue_to_the_app() {
    let app = TestApp::spawn().await;
    campaign(&app, enabled()).await;
    let user = app.create_user("enrolling", None).await;
    let created = app.issue_tap(&user, json!({"isUsableOnce": false})).await;
    let browser = app.browser();
    let url = pkce_authorize_url(&app.issuer, "openid", PKCE_CHALLENGE, "");
    let page = browser
        .sign_in_with_tap(
            &url,
            "enrolling",
            created["temporaryAccessPass"].as_str().unwrap(),
        )
        .await
        .expect_err("the interrupt");
    assert!(is_interrupt(&page), "{}", page.html);
    let set_up = interrupt_id(&page);
    let info = browser
        .get(&format!("/account/security-info?campaign={set_up}"))
        .await;
    assert!(info.has_button("Add passkey"), "{}", info.html);
    assert!(info.html.contains(">Continue</a>"), "{}", info.html);
    let mut key = KeyAuthenticator::new(&app.issuer, uuid::Uuid::new_v4());
    let (status, body) = add_passkey(&app, &browser, &mut key, "Laptop").await;
    assert_eq!(status, 201, "{body}");
    // Another user's session cannot answer it (the id is bound to the user).
    app.create_user("other", Some(PASSWORD)).await;
    let (stranger, answer) = sign_in(&app, "other").await;
    assert!(answer.is_err(), "other meets their own interrupt");
    let foreign = stranger
        .get(&format!("/signin/campaign/continue?id={set_up}"))
        .await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    assert!(foreign.location.is_none());
    let done = browser
        .get(&format!("/signin/campaign/continue?id={set_up}"))
        .await;
    let location = done
        .location
        .clone()
        .unwrap_or_else(|| panic!("{}", done.html));
    assert!(location.starts_with(RP_REDIRECT), "{location}");
    let tokens = app.redeem_as_rp(&location).await;
    assert!(tokens["id_token"].is_string());
    assert_eq!(snoozes(&app, &user).await, 0, "registering is no snooze");
    // Answered: the interrupt is gone, and the page no longer offers it.
    let again = browser
        .get(&format!("/signin/campaign/continue?id={set_up}"))
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    let info = browser.get("/account/security-info").await;
    assert!(!info.html.contains(">Continue</a>"));
}

#[tokio::test]
async fn never_shown_to_users_with_a_passkey_untargeted_or_unable_to_register() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    // A user with a passkey (onboarded with a one-time pass) and a password.
    let enrolled = app.create_user("enrolled", Some(PASSWORD)).await;
    let created = app
        .issue_tap(&enrolled, json!({"isUsableOnce": true}))
        .await;
    let browser = app.browser();
    account_sign_in_with_tap(
        &app,
        &browser,
        "enrolled",
        created["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    let mut key = KeyAuthenticator::new(&app.issuer, uuid::Uuid::new_v4());
    assert_eq!(add_passkey(&app, &browser, &mut key, "Key").await.0, 201);
    // A user in an excluded group, and one the campaign would target.
    let excluded = app.create_user("excluded", Some(PASSWORD)).await;
    let group = post(
        &app,
        "/v1.0/groups",
        &token,
        json!({"displayName": "Campaign opt-out", "mailEnabled": false, "mailNickname": "optout", "securityEnabled": true}),
    )
    .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
    let group_id = group.body["id"].as_str().unwrap().to_owned();
    let r = post(
        &app,
        &format!("/v1.0/groups/{group_id}/members/$ref"),
        &token,
        json!({"@odata.id": format!("{}/v1.0/directoryObjects/{}", app.issuer, excluded.id)}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.create_user("targeted", Some(PASSWORD)).await;
    let mut body = enabled();
    body["excludeTargets"] = json!([{"id": group_id, "targetType": "group"}]);
    campaign(&app, body).await;

    let (_, answer) = sign_in(&app, "enrolled").await;
    assert!(answer.is_ok(), "has a passkey");
    let (_, answer) = sign_in(&app, "excluded").await;
    assert!(answer.is_ok(), "excluded");
    let (_, answer) = sign_in(&app, "targeted").await;
    assert!(answer.is_err(), "the control case does see it");

    // Could not register one: self-service off in the passkey policy.
    let r = patch(
        &app,
        "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Fido2",
        &token,
        json!({"isSelfServiceRegistrationAllowed": false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (_, answer) = sign_in(&app, "targeted").await;
    assert!(answer.is_ok(), "cannot register: not nagged");
}

#[tokio::test]
async fn single_sign_on_meets_the_interrupt_again_but_prompt_none_never_does() {
    let app = TestApp::spawn().await;
    campaign(&app, enabled()).await;
    app.create_user("ignorer", Some(PASSWORD)).await;
    let (browser, answer) = sign_in(&app, "ignorer").await;
    assert!(is_interrupt(&answer.expect_err("the interrupt")));
    // Ignoring it and opening the application again (single sign-on with
    // the session the sign-in made) does not get past it...
    let url = pkce_authorize_url(&app.issuer, "openid", PKCE_CHALLENGE, "");
    let again = browser.get(&url).await;
    assert!(again.location.is_none(), "{:?}", again.location);
    assert!(is_interrupt(&again), "{}", again.html);
    // ... and a silent request shows no page: it is told to interact.
    let silent = browser
        .get(&pkce_authorize_url(
            &app.issuer,
            "openid",
            PKCE_CHALLENGE,
            "&prompt=none",
        ))
        .await;
    let location = silent.location.expect("a redirect, never a page");
    assert!(location.starts_with(RP_REDIRECT), "{location}");
    // Not now, then single sign-on is quiet for the snooze.
    let done = not_now(&browser, &again).await;
    assert!(done.location.is_some());
    let quiet = browser.get(&url).await;
    assert!(quiet.location.is_some_and(|l| l.contains("code=")));
}
