//! What several benchmarks build the same way.

#![allow(clippy::unwrap_used, dead_code)]

use gatepass::authn::AuthMethod;
use gatepass::ids::{SecretDigest, UserId};
use gatepass::protocol::scope::Scope;
use gatepass::tokens::grants::Authorization;

/// A password sign-in's authorization for `client_id` at `redirect_uri`,
/// as a code carries it to the token endpoint.
pub fn password_authorization(
    user_id: UserId,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    nonce: Option<&str>,
    auth_time: i64,
) -> Authorization {
    Authorization {
        user_id,
        client_id: client_id.into(),
        redirect_uri: redirect_uri.into(),
        scope: Scope::parse(scope).unwrap(),
        nonce: nonce.map(str::to_owned),
        code_challenge: None,
        auth_time,
        methods: vec![AuthMethod::Password],
        sid: "bench-session".into(),
        session: SecretDigest::of("bench-session-cookie"),
        epoch: 0,
        not_after: None,
        tap_id: None,
        passkey: None,
    }
}
