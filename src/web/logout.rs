//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
//!
//! With a valid `id_token_hint` *for this browser's session* (its `sub`
//! and `sid` match the session) the session ends at once;
//! otherwise the user confirms first, so neither a cross-site link nor
//! someone else's ID token can sign them out silently. The
//! `post_logout_redirect_uri` must be registered for the client named by the
//! hint's `aud` or by `client_id`; otherwise nothing is redirected.

use super::error::{PageError, render};
use super::{Cookie, cookie, set_cookie};
use crate::app::AppState;
use crate::protocol::params::Params;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

#[derive(Template)]
#[template(path = "logout/confirm.html")]
struct LogoutConfirmPage<'a> {
    post_logout_redirect_uri: Option<&'a str>,
    client_id: Option<&'a str>,
    state: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "logout/done.html")]
struct LogoutDonePage;

#[utoipa::path(get, path = "/logout", operation_id = "oauth.endSession", tag = "oauth",
    description = "RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).",
    params(
        ("id_token_hint" = Option<String>, Query),
        ("client_id" = Option<String>, Query),
        ("post_logout_redirect_uri" = Option<String>, Query),
        ("state" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "Signed out (or a page asking to confirm)", content_type = "text/html"),
        (status = 303, description = "Signed out, back to the client's `post_logout_redirect_uri`"),
        (status = 400, description = "An invalid request: an error page", content_type = "text/html"),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    match Params::parse(q.as_deref().unwrap_or("")) {
        Ok(p) => handle(state, headers, p, false).await,
        Err(e) => PageError::oauth(&e).into_response(),
    }
}

#[utoipa::path(post, path = "/logout", operation_id = "oauth.endSessionPost", tag = "oauth",
    description = "RP-initiated logout with the parameters as a form.",
    request_body(content = Option<crate::openapi::schemas::LogoutRequest>, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Signed out (or a page asking to confirm)", content_type = "text/html"),
        (status = 303, description = "Signed out, back to the client's `post_logout_redirect_uri`"),
        (status = 400, description = "An invalid request: an error page", content_type = "text/html"),
    ))]
pub async fn logout_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Ok(body) = body else {
        return PageError::bad_request("The request body is too large.").into_response();
    };
    match Params::parse(&String::from_utf8_lossy(&body)) {
        Ok(p) => handle(state, headers, p, true).await,
        Err(e) => PageError::oauth(&e).into_response(),
    }
}

async fn handle(state: AppState, headers: HeaderMap, params: Params, posted: bool) -> Response {
    let now = state.clock.now();
    let hint = match params.get("id_token_hint") {
        Some(t) => match state.tokens.check_id_token_hint(t) {
            Ok(c) => Some(c),
            Err(_) => {
                return PageError::bad_request(
                    "The id_token_hint is not a valid ID token from this provider.",
                )
                .into_response();
            }
        },
        None => None,
    };
    let client_id = match (
        hint.as_ref().map(|h| h.aud.as_str()),
        params.get("client_id"),
    ) {
        (Some(a), Some(c)) if a != c => {
            return PageError::bad_request("client_id does not match the id_token_hint.")
                .into_response();
        }
        (Some(a), _) => Some(a.to_owned()),
        (None, c) => c.map(str::to_owned),
    };
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = match client_id.as_deref() {
                Some(c) => match state.clients.get(c).await {
                    Ok(found) => found,
                    Err(e) => return super::error::PageError::from(e).into_response(),
                },
                None => None,
            };
            let registered =
                client.is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
            if !registered {
                return PageError::bad_request(
                    "post_logout_redirect_uri is not registered for this client (or no client was named).",
                )
                .into_response();
            }
            Some(uri.to_owned())
        }
    };
    let current = match cookie(&state, &headers, Cookie::Session) {
        Some(c) => match state.sessions.resume(c, now).await {
            Ok(found) => found,
            Err(e) => {
                return super::error::internal_page("session", &e.to_string(), false)
                    .into_response();
            }
        },
        None => None,
    };
    // The hint speaks for this session only if it was issued for it.
    let hint_matches = match (&hint, &current) {
        (Some(h), Some((session, user))) => {
            // Gatepass's ID tokens always carry `sid`.
            h.sub == user.id.to_string() && h.sid == session.sid
        }
        // Nothing to end: the hint cannot do harm.
        (Some(_), None) => true,
        (None, _) => false,
    };
    let confirmed = hint_matches || (posted && params.get("confirm") == Some("yes"));
    if !confirmed {
        let mut page = render(
            StatusCode::OK,
            &LogoutConfirmPage {
                post_logout_redirect_uri: redirect.as_deref(),
                client_id: client_id.as_deref(),
                state: params.get("state"),
            },
        );
        // Confirming redirects to the registered post-logout URI.
        page.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            super::content_security_policy(redirect.as_deref().into_iter()),
        );
        return page;
    }
    if let Some(c) = cookie(&state, &headers, Cookie::Session) {
        if let Err(e) = state.sessions.end(c, now).await {
            return super::error::internal_page("session", &e.to_string(), false).into_response();
        }
    }
    let mut response = match redirect.and_then(|r| url::Url::parse(&r).ok()) {
        Some(mut url) => {
            if let Some(s) = params.get("state") {
                url.query_pairs_mut().append_pair("state", s);
            }
            Redirect::to(url.as_str()).into_response()
        }
        None => render(StatusCode::OK, &LogoutDonePage),
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, Cookie::Session, "", Some(0)),
    );
    response
}
