//! The Graph API as a script calls it: a bearer token, JSON (or raw)
//! bodies, and the response read back as status, JSON and text. Shared by
//! the Graph suites (`graph`, `tap_graph`).

use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;

/// A Graph response: status, parsed JSON (`Null` when empty) and raw text.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

/// Sends one request. `path` is absolute (a nextLink) or relative to the
/// issuer; `body` is raw text with its content type, so an empty or
/// malformed body can be sent exactly as a script would.
pub async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<(&str, &str)>,
) -> Resp {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        app.url(path)
    };
    let mut req = app.http.request(method, url).bearer_auth(token);
    if let Some((content_type, text)) = body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(text.to_owned());
    }
    let r = req.send().await.expect("graph request");
    let status = r.status();
    let text = r.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON body")
    };
    Resp { status, body, text }
}

/// Sends one request with an optional JSON body.
pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Resp {
    let text = body.map(Value::to_string);
    let raw = text.as_deref().map(|t| ("application/json", t));
    send_raw(app, method, path, token, raw).await
}

pub async fn get(app: &TestApp, path: &str, token: &str) -> Resp {
    send(app, Method::GET, path, token, None).await
}

pub async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Resp {
    send(app, Method::POST, path, token, Some(&body)).await
}

pub async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> Resp {
    send(app, Method::PATCH, path, token, Some(&body)).await
}

pub async fn delete(app: &TestApp, path: &str, token: &str) -> Resp {
    send(app, Method::DELETE, path, token, None).await
}

/// A fresh token for the automation app. Fetch one after moving the clock:
/// access tokens live ten minutes.
pub async fn automation(app: &TestApp) -> String {
    app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await
}

/// The keys of a JSON object.
pub fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}
