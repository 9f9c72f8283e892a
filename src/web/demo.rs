//! The built-in demo relying party (`/demo`, `[demo] enabled`): what a new
//! user needs to see a sign-in succeed without writing a client. It runs
//! the authorization-code flow with PKCE as the public client
//! `gatepass-demo`, redeems the code, and shows the ID token's claims —
//! `amr`, `acr`, expiry — with a sign-out button.
//!
//! It keeps only the PKCE verifier and nonce, in the store, for ten
//! minutes, under the `state` it sent (so it works across instances).

use super::error::{PageError, render};
use super::when;
use crate::app::AppState;
use crate::config::DEMO_CLIENT_ID;
use crate::ids::OpaqueSecret;
use crate::protocol::discovery::paths;
use crate::protocol::params::Params;
use crate::store::{Durability, decode, encode};
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const DEMO_FLOWS: crate::store::Table = "demo_flows";
const FLOW_LIFETIME_SECS: i64 = 600;

#[derive(Serialize, Deserialize)]
struct DemoFlow {
    verifier: String,
    nonce: String,
}

#[derive(Template)]
#[template(path = "demo.html")]
struct DemoPage {
    signed_in: Option<SignedIn>,
    error: Option<String>,
}

struct SignedIn {
    name: String,
    username: String,
    subject: String,
    amr: String,
    acr: String,
    auth_time: String,
    expires: String,
    sign_out: String,
}

fn disabled() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "Not found",
        "The demo app is off on this server ([demo] enabled = false).",
    )
}

fn random() -> Result<String, PageError> {
    OpaqueSecret::generate()
        .map(|s| s.expose().to_owned())
        .map_err(|_| super::error::internal_page("random", "random source failed", false))
}

/// `GET /demo`: the demo app's home, with **Sign in**.
pub async fn home(State(state): State<AppState>) -> Result<Response, PageError> {
    if !state.settings.demo {
        return Err(disabled());
    }
    Ok(render(
        StatusCode::OK,
        &DemoPage {
            signed_in: None,
            error: None,
        },
    ))
}

/// `GET /demo/start`: a new code flow with PKCE (S256), a state and a nonce.
pub async fn start(State(state): State<AppState>) -> Result<Response, PageError> {
    if !state.settings.demo {
        return Err(disabled());
    }
    let flow = DemoFlow {
        verifier: random()?,
        nonce: random()?,
    };
    let flow_state = random()?;
    let now = state.clock.now().unix_timestamp();
    let bytes = encode(&flow).map_err(PageError::from)?;
    state
        .store
        .put(
            DEMO_FLOWS,
            &flow_state,
            bytes,
            Some(now + FLOW_LIFETIME_SECS),
            Durability::Ephemeral,
        )
        .await
        .map_err(PageError::from)?;
    let issuer = &state.settings.issuer;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", DEMO_CLIENT_ID)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile email")
        .append_pair("redirect_uri", &format!("{issuer}/demo/callback"))
        .append_pair("state", &flow_state)
        .append_pair("nonce", &flow.nonce)
        .append_pair(
            "code_challenge",
            &crate::protocol::pkce::s256_challenge(&flow.verifier),
        )
        .append_pair("code_challenge_method", "S256")
        .finish();
    Ok(Redirect::to(&format!("{}?{query}", paths::AUTHORIZE)).into_response())
}

/// `GET /demo/callback`: redeems the code (with the PKCE verifier) and
/// shows who signed in and how.
pub async fn callback(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    if !state.settings.demo {
        return Err(disabled());
    }
    let params = Params::parse(q.as_deref().unwrap_or("")).map_err(|e| PageError::oauth(&e))?;
    let failed = |error: String| {
        render(
            StatusCode::BAD_REQUEST,
            &DemoPage {
                signed_in: None,
                error: Some(error),
            },
        )
    };
    if let Some(error) = params.get("error") {
        let why = params.get("error_description").unwrap_or("");
        return Ok(failed(format!(
            "The sign-in did not complete: {error} {why}"
        )));
    }
    let now = state.clock.now();
    let flow = match params.get("state") {
        Some(s) => state
            .store
            .take(DEMO_FLOWS, s, Durability::Ephemeral, now.unix_timestamp())
            .await
            .map_err(PageError::from)?,
        None => None,
    };
    let Some(record) = flow else {
        return Ok(failed(
            "This sign-in is unknown or expired (the demo keeps a sign-in for ten minutes). Start again."
                .to_owned(),
        ));
    };
    let flow: DemoFlow = decode(DEMO_FLOWS, &record.value).map_err(PageError::from)?;
    let Some(client) = state
        .clients
        .get(DEMO_CLIENT_ID)
        .await
        .map_err(PageError::from)?
    else {
        return Err(disabled());
    };
    let client = client.as_ref();
    let issuer = state.settings.issuer.clone();
    let redeem = Params::parse(
        &url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", params.get("code").unwrap_or(""))
            .append_pair("redirect_uri", &format!("{issuer}/demo/callback"))
            .append_pair("code_verifier", &flow.verifier)
            .finish(),
    )
    .map_err(|e| PageError::oauth(&e))?;
    let tokens = match super::token::authorization_code(&state, client, &redeem, now).await {
        Ok(t) => t,
        Err(e) => {
            return Ok(failed(format!(
                "The code could not be redeemed: {} ({})",
                e.error.description,
                e.error.code.as_str()
            )));
        }
    };
    let Some(id_token) = tokens.id_token else {
        return Ok(failed("The token response has no ID token.".to_owned()));
    };
    let claims = claims_of(&id_token).unwrap_or(Value::Null);
    if claims["nonce"].as_str() != Some(flow.nonce.as_str()) {
        return Ok(failed(
            "The ID token's nonce does not match this sign-in.".to_owned(),
        ));
    }
    let t = now.unix_timestamp();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let sign_out = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", &id_token)
        .append_pair("post_logout_redirect_uri", &format!("{issuer}/demo"))
        .append_pair("client_id", DEMO_CLIENT_ID)
        .finish();
    let signed_in = SignedIn {
        name: text(&claims["name"]),
        username: text(&claims["preferred_username"]),
        subject: text(&claims["sub"]),
        amr: format!("[{}]", text(&claims["amr"])),
        acr: text(&claims["acr"]),
        auth_time: claims["auth_time"]
            .as_i64()
            .map(|a| when::readable(a, t))
            .unwrap_or_default(),
        expires: claims["exp"]
            .as_i64()
            .map(|e| format!("{} (in {})", when::readable(e, t), when::duration(e - t)))
            .unwrap_or_default(),
        sign_out: format!("{}?{sign_out}", paths::END_SESSION),
    };
    Ok(render(
        StatusCode::OK,
        &DemoPage {
            signed_in: Some(signed_in),
            error: None,
        },
    ))
}

/// The payload of a JWT this server just issued (its signature was made
/// here a moment ago; a real relying party verifies it against the JWKS).
fn claims_of(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
