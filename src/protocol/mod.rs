//! OAuth 2.0 / OpenID Connect wire types and pure logic.
//!
//! Nothing here does I/O or knows HTTP frameworks: requests come in as
//! parameter lists, decisions go out as values. The web layer turns them into
//! pages, redirects and JSON.

pub mod authorize;
pub mod client_assertion;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod par;
pub mod params;
pub mod pkce;
pub mod registration;
pub mod scope;

pub use error::{ErrorCode, OAuthError};
