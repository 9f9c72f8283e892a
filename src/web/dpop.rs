//! DPoP (RFC 9449) at the HTTP edge: the `DPoP` header at the token
//! endpoint, and `Authorization: DPoP` at userinfo and the Graph API.
//!
//! [`crate::protocol::dpop`] checks a proof's signature and claims; this
//! module adds what needs the server: the request URL derived from the
//! configured issuer (never the `Host` header, DESIGN §6), the clock, and
//! the "`jti` once" rule, kept in the store with an insert-if-absent so it
//! holds across every instance sharing it.
//!
//! A request's `jti` is recorded only after everything else about the
//! request checked out (the proof, the token, the binding): a refused
//! request writes nothing (DESIGN §7).
//!
//! The Graph API's handlers authenticate through
//! [`crate::graph::auth::Caller::from_headers`], which sees only headers.
//! [`graph_request_scope`] (a middleware on the Graph router) therefore
//! puts the request's method, path and proof in a task-local for it; the
//! inner requests of a `$batch` run inside the outer request's scope and
//! are authorized by the outer request's proof, recorded once.

use super::bearer::{self, BearerError, Principal};
use super::error::OAuthJsonError;
use crate::app::AppState;
use crate::config::Client;
use crate::ids::SecretDigest;
use crate::protocol::dpop::{self, Expected, Jkt, ProofError, VerifiedProof};
use crate::protocol::{ErrorCode, OAuthError};
use crate::store::{Durability, StoreError};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, OnceLock};
use time::OffsetDateTime;

/// The request header carrying the proof (§4.1).
pub const DPOP_HEADER: &str = "dpop";
/// Table of `jti`s already accepted, keyed by a digest of key and `jti`.
pub const USED_PROOFS: &str = "dpop_jti";

/// Why a request's DPoP was refused.
#[derive(Debug, thiserror::Error)]
pub enum DpopError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// `Authorization: DPoP` without a `DPoP` header, or a client with
    /// `dpop_bound_access_tokens` without one.
    #[error("a DPoP proof is required")]
    ProofMissing,
    /// A DPoP-bound token presented as a Bearer token (§7.2).
    #[error("the access token is DPoP-bound; present it with Authorization: DPoP and a DPoP proof")]
    BoundAsBearer,
    #[error("the access token is not DPoP-bound; present it with Authorization: Bearer")]
    NotBound,
    /// The proof's key is not the one the token is bound to (§7.1).
    #[error("the DPoP proof's key does not match the access token's binding")]
    KeyMismatch,
    #[error(transparent)]
    Token(#[from] BearerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The value of `algs` in a `DPoP` challenge (§7.1).
pub fn algs() -> String {
    dpop::SIGNING_ALGS.join(" ")
}

/// The single `DPoP` header's proof, if any (§4.3 step 1: exactly one).
fn proof_header(headers: &HeaderMap) -> Result<Option<&str>, ProofError> {
    single_proof(headers.get_all(DPOP_HEADER).iter())
}

fn single_proof<'a>(
    mut values: impl Iterator<Item = &'a HeaderValue>,
) -> Result<Option<&'a str>, ProofError> {
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProofError::Multiple);
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ProofError::Malformed("the header is not ASCII"))
}

/// Records the proof's `jti`; refuses a second use, by any instance,
/// within the window in which the proof would be accepted.
async fn record_jti(
    state: &AppState,
    proof: &VerifiedProof,
    now: OffsetDateTime,
) -> Result<(), DpopError> {
    // The key is part of the name: `jti`s are unique per key (§4.2), and
    // one client cannot use up another's. Hashed: the jti is client-chosen.
    let key = SecretDigest::of(&format!("{}.{}", proof.jkt, proof.jti));
    // Ephemeral: losing the record in a crash reopens a replay window of
    // at most IAT_WINDOW_SECS, and a durable write per request would cost
    // an fsync on every DPoP call.
    let fresh = state
        .store
        .insert(
            USED_PROOFS,
            key.as_str(),
            Vec::new(),
            Some(proof.replay_window_end()),
            Durability::Ephemeral,
            now.unix_timestamp(),
        )
        .await?;
    match fresh {
        Some(_) => Ok(()),
        None => Err(ProofError::Replayed.into()),
    }
}

fn expected<'a>(
    htm: &'a str,
    htu: &'a str,
    access_token: Option<&'a str>,
    now: OffsetDateTime,
) -> Expected<'a> {
    Expected {
        htm,
        htu,
        access_token,
        now: now.unix_timestamp(),
    }
}

/// The DPoP key a token request proved (RFC 9449 §5), or `None` when it
/// sent no proof and the client does not require one.
pub async fn token_request_key(
    state: &AppState,
    headers: &HeaderMap,
    client: &Client,
    now: OffsetDateTime,
) -> Result<Option<Jkt>, OAuthJsonError> {
    let refuse = |e: DpopError| match e {
        DpopError::Store(s) => s.into(),
        other => OAuthJsonError::bad_request(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            other.to_string(),
        )),
    };
    let Some(proof) = proof_header(headers).map_err(|e| refuse(e.into()))? else {
        if client.dpop_bound_access_tokens {
            return Err(refuse(DpopError::ProofMissing));
        }
        return Ok(None);
    };
    let htu = format!(
        "{}{}",
        state.settings.issuer,
        crate::protocol::discovery::paths::TOKEN
    );
    let verified =
        dpop::verify(proof, &expected("POST", &htu, None, now)).map_err(|e| refuse(e.into()))?;
    record_jti(state, &verified, now).await.map_err(refuse)?;
    Ok(Some(verified.jkt))
}

/// How the access token was presented.
enum Presented<'a> {
    Bearer(&'a str),
    Dpop(&'a str),
}

fn presented_token(headers: &HeaderMap) -> Result<Presented<'_>, BearerError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(BearerError::Missing)?
        .to_str()
        .map_err(|_| BearerError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::Malformed)?;
    let token = token.trim();
    if token.is_empty() {
        return Err(BearerError::Malformed);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Presented::Bearer(token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Ok(Presented::Dpop(token))
    } else {
        Err(BearerError::Malformed)
    }
}

/// Where a resource request's proof comes from and how its `jti` is
/// recorded.
struct ResourceRequest<'a> {
    htm: &'a str,
    /// Path on the issuer (`/userinfo`, `/v1.0/users`).
    path: &'a str,
    proof: Result<Option<&'a str>, ProofError>,
    /// Set for Graph: a `$batch` runs its inner requests under one proof.
    recorded: Option<&'a tokio::sync::OnceCell<bool>>,
}

/// Authenticates the access token at a protected resource: a Bearer token
/// that is not DPoP-bound, or `Authorization: DPoP` with a proof for this
/// request by the key the token is bound to (RFC 9449 §7).
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    request: ResourceRequest<'_>,
    now: OffsetDateTime,
) -> Result<Principal, DpopError> {
    match presented_token(headers)? {
        Presented::Bearer(token) => {
            let principal = bearer::authenticate(state, token, now).await?;
            if principal.claims.cnf.is_some() {
                return Err(DpopError::BoundAsBearer);
            }
            Ok(principal)
        }
        Presented::Dpop(token) => {
            let proof = request.proof?.ok_or(DpopError::ProofMissing)?;
            let htu = format!("{}{}", state.settings.issuer, request.path);
            // The proof first: it costs one signature check and no I/O.
            let verified = dpop::verify(proof, &expected(request.htm, &htu, Some(token), now))?;
            let principal = bearer::authenticate(state, token, now).await?;
            match &principal.claims.cnf {
                None => return Err(DpopError::NotBound),
                Some(cnf) if cnf.jkt != verified.jkt => return Err(DpopError::KeyMismatch),
                Some(_) => {}
            }
            match request.recorded {
                None => record_jti(state, &verified, now).await?,
                Some(cell) => {
                    // Errors are not cached: a store failure is retried by
                    // the next inner request of the batch.
                    let fresh = cell
                        .get_or_try_init(|| async {
                            match record_jti(state, &verified, now).await {
                                Ok(()) => Ok(true),
                                Err(DpopError::Proof(ProofError::Replayed)) => Ok(false),
                                Err(e) => Err(e),
                            }
                        })
                        .await?;
                    if !*fresh {
                        return Err(ProofError::Replayed.into());
                    }
                }
            }
            Ok(principal)
        }
    }
}

/// [`authenticate`] for the UserInfo endpoint.
pub async fn authenticate_userinfo(
    state: &AppState,
    headers: &HeaderMap,
    htm: &str,
    now: OffsetDateTime,
) -> Result<Principal, OAuthJsonError> {
    let request = ResourceRequest {
        htm,
        path: crate::protocol::discovery::paths::USERINFO,
        proof: proof_header(headers),
        recorded: None,
    };
    authenticate(state, headers, request, now)
        .await
        .map_err(resource_error)
}

/// A refusal at a resource as OAuth words it: 401 with a `DPoP` challenge
/// (RFC 9449 §7.1), except for plain Bearer failures, which keep theirs.
pub fn resource_error(e: DpopError) -> OAuthJsonError {
    let (code, description) = match e {
        DpopError::Token(b) => return super::userinfo::bearer_error(b),
        DpopError::Store(s) => return s.into(),
        DpopError::Proof(p) => (ErrorCode::InvalidDpopProof, p.to_string()),
        e @ DpopError::ProofMissing => (ErrorCode::InvalidDpopProof, e.to_string()),
        e @ (DpopError::BoundAsBearer | DpopError::NotBound | DpopError::KeyMismatch) => {
            (ErrorCode::InvalidToken, e.to_string())
        }
    };
    OAuthJsonError {
        status: StatusCode::UNAUTHORIZED,
        error: OAuthError::new(code, description),
        challenge: Some("DPoP"),
    }
}

/// The Graph request being served, for [`authenticate_graph`].
struct GraphRequest {
    htm: String,
    path: String,
    proofs: Vec<HeaderValue>,
    recorded: tokio::sync::OnceCell<bool>,
    /// The error code for the `DPoP` challenge of a 401, when DPoP caused it.
    challenge: OnceLock<ErrorCode>,
}

tokio::task_local! {
    static GRAPH_REQUEST: Arc<GraphRequest>;
}

/// Middleware on the Graph router: keeps the request's method, path and
/// proof for [`authenticate_graph`], and adds `WWW-Authenticate`
/// challenges (`Bearer` and `DPoP algs=…`) to a 401 that has none.
pub async fn graph_request_scope(request: Request, next: Next) -> Response {
    // A `$batch`'s inner request: authorized by the outer request's proof.
    if GRAPH_REQUEST.try_with(|_| ()).is_ok() {
        return next.run(request).await;
    }
    let context = Arc::new(GraphRequest {
        htm: request.method().as_str().to_owned(),
        path: request.uri().path().to_owned(),
        proofs: request
            .headers()
            .get_all(DPOP_HEADER)
            .iter()
            .cloned()
            .collect(),
        recorded: tokio::sync::OnceCell::new(),
        challenge: OnceLock::new(),
    });
    let mut response = GRAPH_REQUEST
        .scope(Arc::clone(&context), next.run(request))
        .await;
    if response.status() == StatusCode::UNAUTHORIZED
        && !response.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        let dpop = match context.challenge.get() {
            Some(code) => format!("DPoP algs=\"{}\", error=\"{}\"", algs(), code.as_str()),
            None => format!("DPoP algs=\"{}\"", algs()),
        };
        let headers = response.headers_mut();
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"gatepass\""),
        );
        if let Ok(v) = HeaderValue::from_str(&dpop) {
            headers.append(header::WWW_AUTHENTICATE, v);
        }
    }
    response
}

/// [`authenticate`] for a Graph API call, with the request kept by
/// [`graph_request_scope`]. Outside that middleware no proof is known, so
/// only Bearer tokens authenticate.
pub async fn authenticate_graph(
    state: &AppState,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Result<Principal, DpopError> {
    let context = GRAPH_REQUEST.try_with(Arc::clone).ok();
    let request = match &context {
        Some(c) => ResourceRequest {
            htm: &c.htm,
            path: &c.path,
            proof: single_proof(c.proofs.iter()),
            recorded: Some(&c.recorded),
        },
        None => ResourceRequest {
            htm: "",
            path: "",
            proof: Ok(None),
            recorded: None,
        },
    };
    let result = authenticate(state, headers, request, now).await;
    if let (Err(e), Some(c)) = (&result, &context) {
        let code = match e {
            DpopError::Proof(_) | DpopError::ProofMissing => Some(ErrorCode::InvalidDpopProof),
            DpopError::BoundAsBearer | DpopError::NotBound | DpopError::KeyMismatch => {
                Some(ErrorCode::InvalidToken)
            }
            DpopError::Token(_) | DpopError::Store(_) => None,
        };
        if let Some(code) = code {
            // First refusal wins; a later one in a batch is the same story.
            let _ = c.challenge.set(code);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn two_dpop_headers_are_refused() {
        let mut h = HeaderMap::new();
        h.append(DPOP_HEADER, HeaderValue::from_static("a.b.c"));
        assert_eq!(proof_header(&h), Ok(Some("a.b.c")));
        h.append(DPOP_HEADER, HeaderValue::from_static("d.e.f"));
        assert_eq!(proof_header(&h), Err(ProofError::Multiple));
    }

    #[test]
    fn authorization_schemes_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("DPoP tok"));
        assert!(matches!(presented_token(&h), Ok(Presented::Dpop("tok"))));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer tok"),
        );
        assert!(matches!(presented_token(&h), Ok(Presented::Bearer("tok"))));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic tok"));
        assert!(matches!(presented_token(&h), Err(BearerError::Malformed)));
    }
}
