//! The session limiter: may this session register a passkey now?
//!
//! A pure state machine over the session's methods, its `auth_time` and
//! the clock; the store performs the atomic step that acts on the answer
//! (registration commits only if the session record is unchanged).
//!
//! ```text
//!                       sign-in
//!                          │
//!        ┌─────────────────┼──────────────────────┬──────────────────┐
//!        ▼                 ▼                      ▼                  ▼
//!  one-time TAP      multi-use TAP          passkey (MFA)       password only
//!        │                 │                      │                  │
//!  now − auth_time   ──────┴──── Allowed ─────────┘           StepUpRequired
//!   ≤ window?                                                (NoStrongMethod)
//!    │       │
//!   yes      no
//!    │       │
//! Allowed   StepUpRequired(WindowClosed)
//! ```
//!
//! A step-up is a *fresh* sign-in with a strong method (a passkey or a
//! Temporary Access Pass); its session starts a new window. Expired or
//! revoked sessions never reach the limiter: they are not sessions any more.

use crate::authn::AuthMethod;

/// Why the session must sign in again before registering a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUpReason {
    /// Signed in with a one-time pass longer ago than the window.
    WindowClosed { window_minutes: i64 },
    /// Signed in without a strong method (password only).
    NoStrongMethod,
}

impl StepUpReason {
    /// What the security-info page tells the user.
    pub fn message(self) -> String {
        match self {
            StepUpReason::WindowClosed { window_minutes } => format!(
                "A one-time Temporary Access Pass allows adding a passkey only within {window_minutes} minutes of signing in. Sign in again with a passkey or a Temporary Access Pass to continue."
            ),
            StepUpReason::NoStrongMethod => "Adding a passkey needs a strong sign-in. Sign in again with a passkey or a Temporary Access Pass to continue.".to_owned(),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            StepUpReason::WindowClosed { .. } => "limiter.window_closed",
            StepUpReason::NoStrongMethod => "limiter.no_strong_method",
        }
    }
}

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    StepUpRequired(StepUpReason),
}

/// Decides whether a session proven with `methods` at `auth_time` may
/// register a passkey at `now`, given the registration window.
pub fn admit(
    methods: &[AuthMethod],
    auth_time: i64,
    now: i64,
    window: time::Duration,
) -> Admission {
    let strong_without_window = methods.iter().any(|m| {
        matches!(
            m,
            AuthMethod::Passkey | AuthMethod::TemporaryAccessPassMultiUse
        )
    });
    if strong_without_window {
        return Admission::Allowed;
    }
    if methods.contains(&AuthMethod::TemporaryAccessPassOneTime) {
        return if now - auth_time <= window.whole_seconds() {
            Admission::Allowed
        } else {
            Admission::StepUpRequired(StepUpReason::WindowClosed {
                window_minutes: window.whole_minutes(),
            })
        };
    }
    Admission::StepUpRequired(StepUpReason::NoStrongMethod)
}

#[cfg(test)]
mod tests {
    use super::AuthMethod::*;
    use super::*;

    const WINDOW: time::Duration = time::Duration::minutes(10);

    #[test]
    fn limiter_admits_per_transition_table() {
        let closed = Admission::StepUpRequired(StepUpReason::WindowClosed { window_minutes: 10 });
        let weak = Admission::StepUpRequired(StepUpReason::NoStrongMethod);
        let table: [(&[AuthMethod], i64, Admission); 10] = [
            (&[TemporaryAccessPassOneTime], 0, Admission::Allowed),
            (&[TemporaryAccessPassOneTime], 599, Admission::Allowed),
            (&[TemporaryAccessPassOneTime], 600, Admission::Allowed),
            (&[TemporaryAccessPassOneTime], 601, closed),
            (&[TemporaryAccessPassMultiUse], 86_400, Admission::Allowed),
            (&[Passkey], 86_400, Admission::Allowed),
            (&[Password, Passkey], 86_400, Admission::Allowed),
            (&[Password], 0, weak),
            (&[Password], 86_400, weak),
            (&[], 0, weak),
        ];
        for (methods, elapsed, want) in table {
            assert_eq!(
                admit(methods, 1_000, 1_000 + elapsed, WINDOW),
                want,
                "{methods:?} after {elapsed}s"
            );
        }
    }

    #[test]
    fn limiter_window_is_configurable() {
        let five = time::Duration::minutes(5);
        assert_eq!(
            admit(&[TemporaryAccessPassOneTime], 0, 300, five),
            Admission::Allowed
        );
        assert_eq!(
            admit(&[TemporaryAccessPassOneTime], 0, 301, five),
            Admission::StepUpRequired(StepUpReason::WindowClosed { window_minutes: 5 })
        );
    }
}
