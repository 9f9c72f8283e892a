//! The registration campaign's interrupt (Graph's
//! `authenticationMethodsRegistrationCampaign`, DESIGN §2.11): after an
//! interactive sign-in to an application, a user the campaign targets who
//! has no passkey — and who could register one under the passkey policy —
//! is offered to set one up before continuing.
//!
//! The interrupt holds the sign-in's destination in the store, bound to
//! the user who signed in (a step-up on the way to registering makes a new
//! session, so not to the session), so nothing is issued until the user
//! answers: **Not now** (a snooze, counted in the store) or **Set up a
//! passkey** (the security-info page, with the registration window rules,
//! then **Continue**). Either way the destination is reached through the
//! ordinary gate, so conditional access is evaluated again and a fresh code
//! is issued. When the campaign enforces registration and the allowed
//! snoozes are spent, only the passkey way is offered.

use super::error::{PageError, render};
use super::signin::{FlowTarget, current_session, gate_and_go};
use crate::app::AppState;
use crate::authn::passkey_policy::Nudge;
use crate::authn::session::Session;
use crate::directory::User;
use crate::ids::{OpaqueSecret, SecretDigest};
use crate::store::{Durability, decode, encode};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Pending interrupts, by random id.
pub const INTERRUPTS: &str = "campaign_interrupt";
/// A user's pending interrupt id (the security-info page offers Continue).
pub const PENDING: &str = "campaign_pending";
/// How long an answer may take (registering a passkey included).
const LIFETIME: time::Duration = time::Duration::minutes(30);

#[derive(Serialize, Deserialize)]
struct Interrupt {
    /// The user who signed in; only their sessions may answer.
    user: crate::ids::UserId,
    target: FlowTarget,
    may_snooze: bool,
}

#[derive(Template)]
#[template(path = "signin/campaign.html")]
struct CampaignPage<'a> {
    id: &'a str,
    csrf: &'a str,
    may_snooze: bool,
    app: &'a str,
}

/// What the campaign asks of `user` now: the answer of
/// [`crate::authn::passkey_policy::RegistrationCampaign::nudge`] with what
/// the store knows of the user.
pub async fn nudge_for(
    state: &AppState,
    user: &User,
    now: OffsetDateTime,
) -> Result<Nudge, PageError> {
    let t = now.unix_timestamp();
    let campaign = state.passkey_policy.campaign(t).await?;
    if campaign.state != crate::authn::passkey_policy::CampaignState::Enabled
        || !state.passkeys.enabled()
    {
        return Ok(Nudge::None);
    }
    let groups = if campaign.needs_groups() {
        state.directory.groups_of(user.id, now).await?
    } else {
        Default::default()
    };
    let targeted = campaign.targets(user.id, &groups);
    if !targeted {
        return Ok(Nudge::None);
    }
    let (policy, in_policy) = state
        .passkey_policy
        .fido2_for(&state.directory, user, now)
        .await?;
    let can_register = policy.may_register(in_policy).is_ok();
    let has_passkey = !state
        .passkeys
        .list(user.id, t)
        .await
        .map_err(|e| super::error::internal_page(e.code(), &e.to_string(), false))?
        .is_empty();
    let snoozes = state.passkey_policy.snoozes(user.id, t).await?;
    Ok(campaign.nudge(targeted, has_passkey, can_register, snoozes, t))
}

/// The interrupt page for a sign-in to `target`, when the campaign asks for
/// one; `None` to continue.
pub async fn interrupt(
    state: &AppState,
    target: &FlowTarget,
    session: &Session,
    user: &User,
    now: OffsetDateTime,
) -> Result<Option<Response>, PageError> {
    if matches!(target, FlowTarget::Account { .. }) {
        // Already on the way to the security-info page.
        return Ok(None);
    }
    let Nudge::Offer { may_snooze } = nudge_for(state, user, now).await? else {
        return Ok(None);
    };
    let id = OpaqueSecret::generate()
        .map_err(|_| super::error::internal_page("random", "the random source failed", false))?;
    let record = Interrupt {
        user: user.id,
        target: target.clone(),
        may_snooze,
    };
    let expires = Some((now + LIFETIME).unix_timestamp());
    state
        .store
        .put(
            INTERRUPTS,
            id.expose(),
            encode(&record)?,
            expires,
            Durability::Ephemeral,
        )
        .await?;
    state
        .store
        .put(
            PENDING,
            &user.id.to_string(),
            id.expose().as_bytes().to_vec(),
            expires,
            Durability::Ephemeral,
        )
        .await?;
    Ok(Some(
        page(state, id.expose(), &session.csrf, &record).await?,
    ))
}

/// The client's display name, or its id if it is not known.
async fn client_name(state: &AppState, client_id: &str) -> Result<String, PageError> {
    Ok(state
        .clients
        .get(client_id)
        .await?
        .map_or_else(|| client_id.to_owned(), |c| c.display_name.clone()))
}

async fn page(
    state: &AppState,
    id: &str,
    csrf: &str,
    record: &Interrupt,
) -> Result<Response, PageError> {
    let app = match &record.target {
        FlowTarget::Authorize(r) => client_name(state, &r.client_id).await?,
        FlowTarget::Console { .. } => "the admin console".to_owned(),
        FlowTarget::Account { .. } => "your security info".to_owned(),
        FlowTarget::Device { client_id, .. } => client_name(state, client_id).await?,
    };
    Ok(render(
        StatusCode::OK,
        &CampaignPage {
            id,
            csrf,
            may_snooze: record.may_snooze,
            app: &app,
        },
    ))
}

#[derive(Deserialize)]
pub struct Answer {
    id: String,
}

type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

/// The interrupt named `id`, if it belongs to the session of this browser.
async fn load(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    now: OffsetDateTime,
) -> Result<Option<(Interrupt, SecretDigest, Session, User)>, PageError> {
    let Some((digest, session, user)) = current_session(state, headers, now).await? else {
        return Ok(None);
    };
    let Some(r) = state
        .store
        .get(INTERRUPTS, id, now.unix_timestamp())
        .await?
    else {
        return Ok(None);
    };
    let record: Interrupt = decode(INTERRUPTS, &r.value)?;
    if record.user != user.id {
        return Ok(None);
    }
    Ok(Some((record, digest, session, user)))
}

/// The sign-in this interrupt paused, continued through the gate.
async fn resume(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    id: &str,
    (record, digest, session, user): (Interrupt, SecretDigest, Session, User),
    now: OffsetDateTime,
) -> Result<Response, PageError> {
    let t = now.unix_timestamp();
    state
        .store
        .delete(INTERRUPTS, id, Durability::Ephemeral, t)
        .await?;
    state
        .store
        .delete(PENDING, &user.id.to_string(), Durability::Ephemeral, t)
        .await?;
    if let FlowTarget::Console { return_to } = &record.target {
        return Ok(Redirect::to(return_to).into_response());
    }
    let gated = gate_and_go(
        state,
        headers,
        &record.target,
        &session,
        &digest,
        &user,
        ip,
        now,
        super::signin::Arrival::CampaignAnswered,
        super::signin::new_correlation_id().as_deref(),
    )
    .await?;
    Ok(gated.response)
}

fn expired() -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This page has expired",
        "Sign in to the application again.",
    )
}

/// `POST /signin/campaign` (**Not now**): counts a snooze and continues.
pub async fn not_now(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::ClientIp(ip): super::ClientIp,
    body: Body,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let Some((_, session, _)) = current_session(&state, &headers, now).await? else {
        return Err(expired());
    };
    let form = super::form::Form::checked(&headers, &body, &session.csrf)?;
    let id = form.get("id").unwrap_or_default().to_owned();
    let Some(found) = load(&state, &headers, &id, now).await? else {
        return Err(expired());
    };
    if !found.0.may_snooze {
        // Enforced: the only way on is a passkey.
        return page(&state, &id, &found.2.csrf, &found.0).await;
    }
    state
        .passkey_policy
        .snooze(found.3.id, now.unix_timestamp())
        .await?;
    resume(&state, &headers, ip, &id, found, now).await
}

/// `GET /signin/campaign/continue?id=…`: back from the security-info page.
/// With a passkey now, or a snooze left (counted), the sign-in continues;
/// otherwise the interrupt is shown again.
pub async fn continue_after(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::ClientIp(ip): super::ClientIp,
    query: Result<Query<Answer>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let Ok(Query(answer)) = query else {
        return Err(expired());
    };
    let Some(found) = load(&state, &headers, &answer.id, now).await? else {
        return Err(expired());
    };
    match nudge_for(&state, &found.3, now).await? {
        Nudge::None => {}
        Nudge::Offer { .. } if found.0.may_snooze => {
            state
                .passkey_policy
                .snooze(found.3.id, now.unix_timestamp())
                .await?;
        }
        Nudge::Offer { .. } => return page(&state, &answer.id, &found.2.csrf, &found.0).await,
    }
    resume(&state, &headers, ip, &answer.id, found, now).await
}

/// Where **Continue** on the security-info page goes when `user` has a
/// sign-in waiting on the campaign.
pub async fn pending(
    state: &AppState,
    user: &User,
    now: OffsetDateTime,
) -> Result<Option<String>, PageError> {
    let t = now.unix_timestamp();
    let Some(r) = state.store.get(PENDING, &user.id.to_string(), t).await? else {
        return Ok(None);
    };
    let id = String::from_utf8_lossy(&r.value).into_owned();
    Ok(state
        .store
        .get(INTERRUPTS, &id, t)
        .await?
        .map(|_| format!("/signin/campaign/continue?id={id}")))
}
