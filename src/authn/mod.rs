//! Authentication: credentials, the methods a session was proven with, and
//! what those methods mean on the wire (`amr`, `acr`).

pub mod authenticators;
pub mod client_keys;
pub mod methods;
pub mod passkey;
pub mod passkey_policy;
pub mod password;
pub mod session;
pub mod tap;
pub mod throttle;
pub mod verify;

pub use methods::{Acr, AuthMethod};
