//! The admin console in real Chromium, driven by accessible names (labels,
//! button and link text) as a person — or a test outside this repository
//! — would: the helpdesk journey (search → Add authentication method →
//! one-time pass → the member signs in with it in a second browser, amr
//! `["tap","otp","mfa"]` → a reload never shows it again), an
//! Authentication Administrator refused on an administrator, a Global
//! Reader with no control that changes anything, the pass policy refusing
//! an invalid value, a conditional-access policy created and switched to
//! report-only, and What If with a pass.
//!
//! Every page is photographed at desktop and phone width into the folder
//! the test prints (`$CARGO_TARGET_TMPDIR/console-screenshots`).

use crate::browser::{Cdp, Chromium, app_with_browser_rp, browser_rp, wait_for_callback};
use crate::harness::*;
use base64::Engine;
use gatepass::clock::Clock;
use gatepass::directory::roles::BuiltinRole;
use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const WIDTHS: [(&str, u32, u32, bool); 2] =
    [("desktop", 1280, 860, false), ("phone", 390, 844, true)];

/// JavaScript that finds a control by its accessible name.
fn by_label(label: &str) -> String {
    format!(
        "(() => {{ const l = [...document.querySelectorAll('label')].find(l => l.textContent.trim() === {label:?}); return l && document.getElementById(l.htmlFor); }})()"
    )
}

fn button(text: &str) -> String {
    format!("[...document.querySelectorAll('button')].find(b => b.textContent.trim() === {text:?})")
}

fn link(text: &str) -> String {
    format!("[...document.querySelectorAll('a')].find(a => a.textContent.trim() === {text:?})")
}

async fn fill(cdp: &mut Cdp, label: &str, value: &str) {
    cdp.wait_for(&by_label(label), label).await;
    cdp.eval(&format!("{}.value = {value:?}; true", by_label(label)))
        .await;
}

async fn click(cdp: &mut Cdp, control: &str, what: &str) {
    // Loaded, deferred scripts included: a click before admin.js listens
    // (Copy) would do nothing.
    cdp.wait_for(
        &format!("document.readyState === 'complete' && {control}"),
        what,
    )
    .await;
    cdp.eval(&format!("{control}.click(); true")).await;
}

async fn text(cdp: &mut Cdp) -> String {
    cdp.eval("document.body.innerText")
        .await
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn wait_path(cdp: &mut Cdp, path: &str) {
    cdp.wait_for(
        &format!("location.pathname === {path:?} && document.readyState === 'complete'"),
        path,
    )
    .await;
}

/// Signs in at `path` through the ordinary pages with a password.
async fn sign_in(cdp: &mut Cdp, app: &TestApp, path: &str, upn: &str, password: &str) {
    cdp.navigate(&app.url(path)).await;
    fill(cdp, "Username", upn).await;
    click(cdp, &button("Next"), "Next").await;
    fill(cdp, "Password", password).await;
    click(cdp, &button("Sign in"), "Sign in").await;
    wait_path(cdp, path).await;
}

/// The page at both widths, as `{name}-{width}.png`.
async fn photograph(cdp: &mut Cdp, dir: &Path, name: &str) {
    for (label, width, height, mobile) in WIDTHS {
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
        // A tab that is still laying out (a navigation just committed, the
        // machine busy) has no size yet: wait for it rather than fail.
        let mut shot = Value::Null;
        for _ in 0..50 {
            match cdp
                .try_call(
                    "Page.captureScreenshot",
                    json!({"format": "png", "captureBeyondViewport": true}),
                )
                .await
            {
                Ok(s) => {
                    shot = s;
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        assert!(
            shot["data"].is_string(),
            "no screenshot of {name} at {label}"
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join(format!("{name}-{label}.png")), png).unwrap();
    }
    cdp.call("Emulation.clearDeviceMetricsOverride", json!({}))
        .await;
}

/// The page in dark mode (`prefers-color-scheme: dark`), at both widths.
async fn photograph_dark(cdp: &mut Cdp, dir: &Path, name: &str) {
    cdp.call(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .await;
    // Buttons fade between colours (a CSS transition): let it finish.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    photograph(cdp, dir, &format!("{name}-dark")).await;
    cdp.call("Emulation.setEmulatedMedia", json!({"features": []}))
        .await;
}

async fn buttons(cdp: &mut Cdp) -> Vec<String> {
    let v = cdp
        .eval("[...document.querySelectorAll('button')].map(b => b.textContent.trim())")
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_owned())
        .collect()
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_console_helpdesk_journey_and_each_role_sees_what_the_rules_allow() {
    let Some(chromium) = Chromium::launch(
        "browser_console_helpdesk_journey_and_each_role_sees_what_the_rules_allow",
    )
    .await
    else {
        return;
    };
    let shots = screenshot_dir();
    println!("console screenshots: {}", shots.display());
    let (app, hits) = app_with_browser_rp().await;
    let password = "a long enough password 1";
    for (upn, role) in [
        (
            "helpdesk@contoso.com",
            BuiltinRole::AuthenticationAdministrator,
        ),
        ("boss@contoso.com", BuiltinRole::GlobalAdministrator),
        ("reader@contoso.com", BuiltinRole::GlobalReader),
    ] {
        let u = app.create_user(upn, Some(password)).await;
        app.grant_role(&u, role).await;
    }
    let boss = app
        .state
        .directory
        .find_user("boss@contoso.com", app.clock.now())
        .await
        .unwrap()
        .unwrap();
    let member = app.create_user("newhire@contoso.com", None).await;

    // --- the helpdesk (Authentication Administrator) ------------------------
    let mut helpdesk = chromium.page(Some(&chromium.new_context().await)).await;
    sign_in(
        &mut helpdesk,
        &app,
        "/admin/users",
        "helpdesk@contoso.com",
        password,
    )
    .await;
    photograph(&mut helpdesk, &shots, "users").await;
    photograph_dark(&mut helpdesk, &shots, "users").await;
    fill(&mut helpdesk, "Search users", "newhire").await;
    click(&mut helpdesk, &button("Search"), "Search").await;
    // The results page, not the list the click left (it has the link too).
    helpdesk
        .wait_for(
            "location.search.includes('search=newhire') && document.readyState === 'complete'",
            "the search results",
        )
        .await;
    click(
        &mut helpdesk,
        &link("Test newhire@contoso.com"),
        "the member's link",
    )
    .await;
    wait_path(&mut helpdesk, &format!("/admin/users/{}", member.id)).await;
    click(
        &mut helpdesk,
        &link("Add authentication method"),
        "Add authentication method",
    )
    .await;
    fill(&mut helpdesk, "Choose method", "temporaryAccessPass").await;
    fill(&mut helpdesk, "Activation duration", "120").await;
    helpdesk
        .eval(&format!(
            "{}.checked = true; true",
            by_label("One-time use")
        ))
        .await;
    photograph(&mut helpdesk, &shots, "add-method").await;
    click(&mut helpdesk, &button("Add"), "Add").await;
    helpdesk
        .wait_for(&by_label("Temporary Access Pass"), "the pass")
        .await;
    let pass = helpdesk
        .eval(&format!("{}.value", by_label("Temporary Access Pass")))
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pass.len() >= 8, "{pass}");
    let shown = text(&mut helpdesk).await;
    assert!(shown.contains("will not be shown again"), "{shown}");
    assert!(shown.contains("for 2 hours"), "{shown}");
    assert!(
        helpdesk
            .eval(&format!("{}.readOnly", by_label("Temporary Access Pass")))
            .await
            == json!(true)
    );
    click(&mut helpdesk, &button("Copy"), "Copy").await;
    helpdesk
        .wait_for(
            "document.getElementById('copy-status').textContent.length > 0",
            "the copy status",
        )
        .await;
    photograph(&mut helpdesk, &shots, "pass-shown").await;
    // A reload shows the user's page, never the pass again.
    // Mark this document, so the wait below sees the reloaded one.
    helpdesk.eval("window.beforeReload = true; true").await;
    helpdesk.call("Page.reload", json!({})).await;
    wait_path(&mut helpdesk, &format!("/admin/users/{}", member.id)).await;
    helpdesk
        .wait_for(
            "!window.beforeReload && document.readyState === 'complete' && document.getElementById('methods-heading')",
            "the user's page",
        )
        .await;
    let after_reload = text(&mut helpdesk).await;
    assert!(!after_reload.contains(&pass), "{after_reload}");
    assert!(after_reload.contains("One-time"), "{after_reload}");
    photograph(&mut helpdesk, &shots, "user").await;

    // Refused on an administrator: the rule, in an alert.
    helpdesk
        .navigate(&app.url(&format!("/admin/users/{}", boss.id)))
        .await;
    helpdesk
        .wait_for(
            "document.body.innerText.includes('Authentication methods')",
            "boss",
        )
        .await;
    assert!(
        !buttons(&mut helpdesk)
            .await
            .iter()
            .any(|b| b == "Delete user"),
        "an Authentication Administrator may not delete an administrator"
    );
    assert_eq!(
        helpdesk.eval(&link("Add authentication method")).await,
        Value::Null,
        "no Add authentication method on an administrator"
    );
    helpdesk
        .navigate(&app.url(&format!("/admin/users/{}/methods/new", boss.id)))
        .await;
    click(&mut helpdesk, &button("Add"), "Add").await;
    helpdesk
        .wait_for("document.querySelector('[role=alert]')", "the refusal")
        .await;
    let refusal = text(&mut helpdesk).await;
    assert!(
        refusal.contains("Authentication Administrators may manage Temporary Access Passes only for users without an administrator role"),
        "{refusal}"
    );
    photograph(&mut helpdesk, &shots, "refused").await;

    // --- the member, in a second browser, signs in with the pass ------------
    let mut newhire = chromium.page(Some(&chromium.new_context().await)).await;
    let rp = browser_rp(&app, &hits).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    newhire.navigate(url.as_str()).await;
    newhire.wait_for(&by_label("Username"), "Username").await;
    photograph(&mut newhire, &shots, "signin-username").await;
    photograph_dark(&mut newhire, &shots, "signin-username").await;
    fill(&mut newhire, "Username", "newhire@contoso.com").await;
    click(&mut newhire, &button("Next"), "Next").await;
    newhire
        .wait_for(&by_label("Temporary Access Pass"), "the pass field")
        .await;
    photograph(&mut newhire, &shots, "signin-tap").await;
    fill(&mut newhire, "Temporary Access Pass", &pass).await;
    click(&mut newhire, &button("Sign in"), "Sign in").await;
    let back = wait_for_callback(&hits, 1).await;
    let code = url::form_urlencoded::parse(back.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens = redeem(&app, &rp, code, verifier).await;
    let claims = id_claims(&rp, &tokens, &nonce);
    assert_eq!(amr(&claims), ["tap", "otp", "mfa"]);
    // Their security info, right after: the pass (used) and Add passkey.
    newhire.navigate(&app.url("/account/security-info")).await;
    wait_path(&mut newhire, "/account/security-info").await;
    photograph(&mut newhire, &shots, "security-info").await;
    photograph_dark(&mut newhire, &shots, "security-info").await;
    // `/` leads a user without a role to their security info.
    newhire.navigate(&app.url("/")).await;
    wait_path(&mut newhire, "/account/security-info").await;

    // --- a Global Reader sees everything but no control that changes it ----
    let mut reader = chromium.page(Some(&chromium.new_context().await)).await;
    sign_in(
        &mut reader,
        &app,
        "/admin/users",
        "reader@contoso.com",
        password,
    )
    .await;
    assert_eq!(buttons(&mut reader).await, ["Search"]);
    for path in [
        format!("/admin/users/{}", member.id),
        "/admin/methods/tap".to_owned(),
        "/admin/ca".to_owned(),
        "/admin/roles".to_owned(),
        "/admin/groups".to_owned(),
    ] {
        reader.navigate(&app.url(&path)).await;
        wait_path(&mut reader, &path).await;
        let b = buttons(&mut reader).await;
        assert!(b.is_empty(), "{path} offers {b:?} to a Global Reader");
    }
    reader
        .navigate(&app.url(&format!("/admin/users/{}", member.id)))
        .await;
    wait_path(&mut reader, &format!("/admin/users/{}", member.id)).await;
    photograph(&mut reader, &shots, "user-as-reader").await;

    // --- a Global Administrator: the pass policy, conditional access, What If
    let mut boss_page = chromium.page(Some(&chromium.new_context().await)).await;
    sign_in(
        &mut boss_page,
        &app,
        "/admin/methods/tap",
        "boss@contoso.com",
        password,
    )
    .await;
    fill(&mut boss_page, "Minimum lifetime", "5").await;
    click(&mut boss_page, &button("Save"), "Save").await;
    boss_page
        .wait_for(
            "document.getElementById('minimum-error')",
            "the field's error",
        )
        .await;
    let invalid = boss_page
        .eval(&format!(
            "{}.getAttribute('aria-invalid')",
            by_label("Minimum lifetime")
        ))
        .await;
    assert_eq!(invalid, json!("true"));
    let described = boss_page
        .eval(&format!(
            "{}.getAttribute('aria-describedby')",
            by_label("Minimum lifetime")
        ))
        .await;
    assert!(described.as_str().unwrap().contains("minimum-error"));
    photograph(&mut boss_page, &shots, "tap-policy-invalid").await;

    boss_page.navigate(&app.url("/admin/ca")).await;
    click(&mut boss_page, &link("New policy"), "New policy").await;
    let policy = r#"{"displayName":"Require MFA for the RP","state":"enabled","conditions":{"users":{"includeUsers":["All"]},"applications":{"includeApplications":["browser-rp"]}},"grantControls":{"operator":"OR","builtInControls":["mfa"]}}"#;
    fill(&mut boss_page, "Policy JSON", policy).await;
    click(&mut boss_page, &button("Create"), "Create").await;
    boss_page
        .wait_for(&by_label("State"), "the policy's page")
        .await;
    fill(&mut boss_page, "State", "report").await;
    click(&mut boss_page, &button("Save"), "Save").await;
    boss_page
        .wait_for("document.body.innerText.includes('Saved.')", "saved")
        .await;
    assert_eq!(
        boss_page
            .eval(&format!("{}.value", by_label("State")))
            .await,
        json!("report")
    );
    photograph(&mut boss_page, &shots, "ca-policy").await;
    boss_page.navigate(&app.url("/admin/ca")).await;
    boss_page
        .wait_for(
            "document.body.innerText.includes('Report-only')",
            "the list",
        )
        .await;
    photograph(&mut boss_page, &shots, "ca-list").await;

    boss_page.navigate(&app.url("/admin/what-if")).await;
    fill(&mut boss_page, "User", "newhire@contoso.com").await;
    fill(&mut boss_page, "Application", "browser-rp").await;
    boss_page
        .eval(&format!(
            "{}.checked = true; true",
            by_label("Temporary Access Pass (one-time)")
        ))
        .await;
    click(&mut boss_page, &button("What If"), "What If").await;
    boss_page
        .wait_for("document.getElementById('decision')", "the decision")
        .await;
    let result = text(&mut boss_page).await;
    assert!(result.contains("Require MFA for the RP"), "{result}");
    assert!(result.contains("Decision: Allow"), "{result}");
    photograph(&mut boss_page, &shots, "what-if").await;

    for (path, name) in [
        ("/admin/sign-ins", "sign-ins"),
        ("/admin/audit", "audit"),
        ("/admin/roles", "roles"),
    ] {
        boss_page.navigate(&app.url(path)).await;
        wait_path(&mut boss_page, path).await;
        photograph(&mut boss_page, &shots, name).await;
    }
    boss_page.navigate(&app.url("/admin/sign-ins")).await;
    wait_path(&mut boss_page, "/admin/sign-ins").await;
    let signins = text(&mut boss_page).await;
    assert!(signins.contains("newhire@contoso.com"), "{signins}");
    assert!(!signins.contains(&pass));
    chromium.close().await;
}
