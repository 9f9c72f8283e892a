//! `gatepass import users`: JSON lines and CSV, on both store backends,
//! through the library (exact summaries, the directory afterwards, the
//! audit log) and through the binary (exit code, messages).

use crate::harness::*;
use crate::redis::on_both_backends;
use gatepass::clock::Clock;
use gatepass::directory::roles::BuiltinRole;
use gatepass::import::{BadRow, Format, Options, Summary};
use std::collections::BTreeSet;

async fn import(app: &TestApp, text: &str, format: Format, create_groups: bool) -> Summary {
    gatepass::import::users(
        &app.state,
        text.as_bytes(),
        format,
        &Options { create_groups },
        &mut (),
    )
    .await
    .expect("the import runs to the end")
}

fn bad(line: u64, reason: &str) -> BadRow {
    BadRow {
        line,
        reason: reason.to_owned(),
    }
}

async fn group_names(app: &TestApp, upn: &str) -> BTreeSet<String> {
    let now = app.clock.now();
    let user = app
        .state
        .directory
        .find_user(upn, now)
        .await
        .unwrap()
        .unwrap();
    let ids = app.state.directory.groups_of(user.id, now).await.unwrap();
    let mut names = BTreeSet::new();
    for g in app.state.directory.list_groups(now).await.unwrap() {
        if ids.contains(&g.id) {
            names.insert(g.display_name);
        }
    }
    names
}

async fn roles(app: &TestApp, upn: &str) -> BTreeSet<BuiltinRole> {
    let now = app.clock.now();
    let user = app
        .state
        .directory
        .find_user(upn, now)
        .await
        .unwrap()
        .unwrap();
    app.state.directory.roles_of(user.id, now).await.unwrap()
}

async fn exists(app: &TestApp, upn: &str) -> bool {
    app.state
        .directory
        .find_user(upn, app.clock.now())
        .await
        .unwrap()
        .is_some()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn imports_json_lines(app: TestApp) {
    let now = app.clock.now();
    let pilots = app
        .state
        .directory
        .create_group("Pilots".into(), None, None, now)
        .await
        .unwrap();
    app.state
        .directory
        .create_group("Engineers".into(), None, None, now)
        .await
        .unwrap();
    let file = format!(
        r#"{{"userPrincipalName": "ada@example.test", "displayName": "Ada", "groups": ["pilots", "Engineers"], "roles": ["Global Reader"]}}

{{"userPrincipalName": "grace@example.test", "displayName": "Grace", "groups": ["{pilots}"], "accountEnabled": false}}
{{"userPrincipalName": "eve@example.test", "displayName": "Eve", "roles": ["Emperor"]}}
{{"userPrincipalName": "mallory@example.test", "displayName": "Mallory", "groups": ["Pilots", "Nowhere"]}}
{{"userPrincipalName": "trudy@example.test", "displayName": "Trudy", "password": "x"}}
not json at all
{{"userPrincipalName": "ada@example.test", "displayName": "Ada again", "groups": ["Pilots"], "roles": ["62e90394-69f5-4237-9190-012177145e10"]}}
{{"userPrincipalName": "bad upn@example.test", "displayName": "Spaces"}}
"#,
        pilots = pilots.id
    );
    let summary = import(&app, &file, Format::JsonLines, false).await;
    assert_eq!(summary.rows, 8, "the blank line is not a row");
    assert_eq!(summary.created, 2);
    assert_eq!(summary.existing, 1);
    assert_eq!(summary.groups_created, 0);
    assert_eq!(summary.memberships_added, 3);
    assert_eq!(summary.roles_assigned, 2);
    let lines: Vec<u64> = summary.bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, [4, 5, 6, 7, 9], "{:#?}", summary.bad);
    assert_eq!(summary.bad[0], bad(4, "unknown role \"Emperor\""));
    assert_eq!(
        summary.bad[1],
        bad(
            5,
            "no group \"Nowhere\" (create it first, or import with --create-groups)"
        )
    );
    assert!(
        summary.bad[2].reason.contains("password"),
        "{:?}",
        summary.bad[2]
    );

    // Bad rows left nothing behind; good rows are whole.
    for upn in [
        "eve@example.test",
        "mallory@example.test",
        "trudy@example.test",
    ] {
        assert!(!exists(&app, upn).await, "{upn}");
    }
    assert_eq!(
        group_names(&app, "ada@example.test").await,
        set(&["Engineers", "Pilots"])
    );
    assert_eq!(
        roles(&app, "ada@example.test").await,
        [BuiltinRole::GlobalReader, BuiltinRole::GlobalAdministrator].into()
    );
    assert_eq!(
        group_names(&app, "grace@example.test").await,
        set(&["Pilots"])
    );
    let grace = app
        .state
        .directory
        .find_user("grace@example.test", now)
        .await
        .unwrap()
        .unwrap();
    assert!(!grace.account_enabled);
    assert_eq!(
        app.state
            .directory
            .password_hash(grace.id, now)
            .await
            .unwrap(),
        None,
        "imported accounts have no password"
    );

    // The audit log names the importer, once per change.
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let audits: serde_json::Value = app
        .http
        .get(app.url("/v1.0/auditLogs/directoryAudits?$top=50"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_importer: Vec<&str> = audits["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["initiatedBy"]["app"]["appId"] == gatepass::import::IMPORTER)
        .map(|a| a["activityDisplayName"].as_str().unwrap())
        .collect();
    assert_eq!(by_importer.iter().filter(|a| **a == "Add user").count(), 2);
    assert_eq!(
        by_importer
            .iter()
            .filter(|a| **a == "Add member to group")
            .count(),
        3
    );
    assert_eq!(
        by_importer
            .iter()
            .filter(|a| **a == "Add member to role")
            .count(),
        2
    );

    // A re-run changes nothing and reports the same bad rows.
    let again = import(&app, &file, Format::JsonLines, false).await;
    assert_eq!(
        (
            again.created,
            again.existing,
            again.memberships_added,
            again.roles_assigned
        ),
        (0, 3, 0, 0)
    );
    assert_eq!(again.bad, summary.bad);
}

on_both_backends!(imports_json_lines => import_json_lines_embedded, import_json_lines_redis);

async fn imports_csv(app: TestApp) {
    let file = "userPrincipalName,displayName,mail,accountEnabled,groups,roles\n\
                ada@example.test,\"Lovelace, Ada\",ada@mail.test,,Pilots; Engineers ,\n\
                grace@example.test , Grace ,,FALSE,Pilots,Authentication Administrator\n\
                eve@example.test,Eve,,maybe,,\n\
                \"bob@example.test\",Bob\n\
                dave@example.test,Dave,,,,\n";
    let refused = import(&app, file, Format::Csv, false).await;
    assert_eq!(refused.created, 1, "only dave needs no group: {refused:#?}");
    let summary = import(&app, file, Format::Csv, true).await;
    assert_eq!(summary.rows, 5);
    assert_eq!(
        (summary.created, summary.existing, summary.groups_created),
        (2, 1, 2)
    );
    assert_eq!((summary.memberships_added, summary.roles_assigned), (3, 1));
    let lines: Vec<u64> = summary.bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, [4, 5], "{:#?}", summary.bad);
    assert!(summary.bad[0].reason.contains("accountEnabled"));

    let now = app.clock.now();
    let ada = app
        .state
        .directory
        .find_user("ada@example.test", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ada.display_name, "Lovelace, Ada");
    assert_eq!(ada.mail.as_deref(), Some("ada@mail.test"));
    assert_eq!(
        group_names(&app, "ada@example.test").await,
        set(&["Engineers", "Pilots"])
    );
    let grace = app
        .state
        .directory
        .find_user("grace@example.test", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grace.display_name, "Grace");
    assert!(!grace.account_enabled);
    assert_eq!(
        roles(&app, "grace@example.test").await,
        [BuiltinRole::AuthenticationAdministrator].into()
    );
    // Groups are made once, however many rows name them.
    let groups = app.state.directory.list_groups(now).await.unwrap();
    assert_eq!(groups.len(), 2);
}

on_both_backends!(imports_csv => import_csv_embedded, import_csv_redis);

/// A user an interrupted run created without its group is completed by
/// the next run; two groups with one name make a row ambiguous.
#[tokio::test]
async fn a_rerun_completes_a_half_done_row_and_ambiguous_groups_are_refused() {
    let app = TestApp::spawn().await;
    let now = app.clock.now();
    app.create_user("ada@example.test", None).await;
    app.state
        .directory
        .create_group("Pilots".into(), None, None, now)
        .await
        .unwrap();
    let file =
        r#"{"userPrincipalName": "ada@example.test", "displayName": "Ada", "groups": ["Pilots"]}"#;
    let summary = import(&app, file, Format::JsonLines, false).await;
    assert_eq!((summary.existing, summary.memberships_added), (1, 1));
    assert_eq!(
        group_names(&app, "ada@example.test").await,
        set(&["Pilots"])
    );

    app.state
        .directory
        .create_group("Pilots".into(), None, None, now)
        .await
        .unwrap();
    let file =
        r#"{"userPrincipalName": "bob@example.test", "displayName": "Bob", "groups": ["Pilots"]}"#;
    let summary = import(&app, file, Format::JsonLines, false).await;
    assert_eq!(summary.bad.len(), 1);
    assert!(
        summary.bad[0].reason.contains("by its id"),
        "{:?}",
        summary.bad
    );
    assert!(!exists(&app, "bob@example.test").await);
}

/// The binary: a summary on stdout, each bad row on stderr, exit 1 when
/// any row was bad and 0 when none was.
#[test]
fn the_import_command_reports_and_exits_by_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatepass.toml");
    std::fs::write(&config, config_text("http://localhost:8080", dir.path())).unwrap();
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        "userPrincipalName,displayName,roles\nada@example.test,Ada,Global Reader\neve@example.test,Eve,Emperor\n",
    )
    .unwrap();
    let run = |path: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
            .args(["import", "users", "--config"])
            .arg(&config)
            .arg(path)
            .output()
            .unwrap()
    };
    let out = run(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("2 rows: 1 users created"), "{stdout}");
    assert!(stdout.contains("1 bad rows skipped"), "{stdout}");
    assert!(
        stderr.contains("line 3: unknown role \"Emperor\""),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\r'),
        "no progress line off a terminal: {stderr:?}"
    );

    std::fs::write(
        &file,
        "userPrincipalName,displayName\nada@example.test,Ada\n",
    )
    .unwrap();
    let out = run(&file);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 rows: 0 users created, 1 already there")
    );

    let unknown = dir.path().join("users.txt");
    std::fs::write(&unknown, "").unwrap();
    let out = run(&unknown);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));
}

/// Rows are written many at a time; a group named by many rows is made
/// once, and a user named again while its first row is in flight is
/// created once and then found.
#[tokio::test]
async fn rows_in_flight_make_each_group_and_user_once() {
    let app = TestApp::spawn().await;
    let mut file = String::new();
    for i in 0..300 {
        // Every fifth row names a user from three rows before.
        let n = if i % 5 == 4 { i - 3 } else { i };
        let group = if i % 2 == 0 { "Staff" } else { "Crew" };
        file.push_str(&format!(
            "{{\"userPrincipalName\": \"user{n}@example.test\", \"displayName\": \"User {n}\", \"groups\": [\"{group}\"]}}\n"
        ));
    }
    let summary = import(&app, &file, Format::JsonLines, true).await;
    assert!(summary.bad.is_empty(), "{:#?}", summary.bad);
    assert_eq!((summary.created, summary.existing), (240, 60));
    assert_eq!(summary.groups_created, 2);
    // Users named twice are in both rows' groups when the rows differ.
    let twice: u64 = (0..300)
        .filter(|i| i % 5 == 4 && (i % 2) != ((i - 3) % 2))
        .count() as u64;
    assert_eq!(summary.memberships_added, 240 + twice);
    assert_eq!(
        app.state
            .directory
            .list_users(app.clock.now())
            .await
            .unwrap()
            .len(),
        240
    );
}
