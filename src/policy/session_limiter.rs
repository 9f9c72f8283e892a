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

/// The sign-in methods a user holds, as the removal rule counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MethodInventory {
    pub password: bool,
    /// A Temporary Access Pass that could sign in right now.
    pub usable_pass: bool,
    pub passkeys: usize,
}

impl MethodInventory {
    fn strong(&self) -> usize {
        self.passkeys + usize::from(self.usable_pass)
    }

    fn total(&self) -> usize {
        self.strong() + usize::from(self.password)
    }
}

/// The method a user asks to remove from their own account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Password,
    Pass,
    Passkey,
}

/// Why a user may not remove one of their own methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalRefusal {
    /// It is the only way the user can sign in.
    OnlyMethod,
    /// It is the last passkey or usable pass: removing it is as sensitive
    /// as adding one, so it needs the same fresh strong sign-in.
    LastStrongMethod(StepUpReason),
}

impl RemovalRefusal {
    pub fn message(self) -> &'static str {
        match self {
            RemovalRefusal::OnlyMethod => "You cannot delete your only sign-in method.",
            RemovalRefusal::LastStrongMethod(_) => {
                "Deleting your last passkey or Temporary Access Pass needs a fresh sign-in with one of them first."
            }
        }
    }
}

/// May a session proven with `methods` at `auth_time` remove `removing`
/// from a user holding `inventory`? The security-info page and Graph's
/// `DELETE /me/...` both ask this. A method that could not sign in anyway
/// (an expired or used pass) may always go.
pub fn admit_removal(
    inventory: MethodInventory,
    removing: Removal,
    methods: &[AuthMethod],
    auth_time: i64,
    now: i64,
    window: time::Duration,
) -> Result<(), RemovalRefusal> {
    let (counted, strong) = match removing {
        Removal::Password => (inventory.password, false),
        Removal::Pass => (inventory.usable_pass, true),
        Removal::Passkey => (inventory.passkeys > 0, true),
    };
    if !counted {
        return Ok(());
    }
    if inventory.total() <= 1 {
        return Err(RemovalRefusal::OnlyMethod);
    }
    if strong && inventory.strong() == 1 {
        if let Admission::StepUpRequired(reason) = admit(methods, auth_time, now, window) {
            return Err(RemovalRefusal::LastStrongMethod(reason));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::AuthMethod::*;
    use super::*;

    #[test]
    fn removal_admits_per_transition_table() {
        let inv = |password, usable_pass, passkeys| MethodInventory {
            password,
            usable_pass,
            passkeys,
        };
        let weak = RemovalRefusal::LastStrongMethod(StepUpReason::NoStrongMethod);
        type Row = (
            MethodInventory,
            Removal,
            &'static [AuthMethod],
            Result<(), RemovalRefusal>,
        );
        let table: [Row; 10] = [
            // The only method never goes, whatever the session.
            (
                inv(true, false, 0),
                Removal::Password,
                &[Passkey],
                Err(RemovalRefusal::OnlyMethod),
            ),
            (
                inv(false, false, 1),
                Removal::Passkey,
                &[Passkey],
                Err(RemovalRefusal::OnlyMethod),
            ),
            (
                inv(false, true, 0),
                Removal::Pass,
                &[TemporaryAccessPassMultiUse],
                Err(RemovalRefusal::OnlyMethod),
            ),
            // The last strong method needs a strong session.
            (inv(true, true, 0), Removal::Pass, &[Password], Err(weak)),
            (
                inv(true, false, 1),
                Removal::Passkey,
                &[Password],
                Err(weak),
            ),
            (
                inv(true, true, 0),
                Removal::Pass,
                &[TemporaryAccessPassMultiUse],
                Ok(()),
            ),
            (
                inv(true, false, 1),
                Removal::Passkey,
                &[Password, Passkey],
                Ok(()),
            ),
            // Not the last strong one, or not strong at all.
            (inv(true, true, 1), Removal::Pass, &[Password], Ok(())),
            (inv(true, false, 1), Removal::Password, &[Password], Ok(())),
            // A pass that cannot sign in anyway may always go.
            (inv(true, false, 0), Removal::Pass, &[Password], Ok(())),
        ];
        for (inventory, removing, methods, want) in table {
            assert_eq!(
                admit_removal(inventory, removing, methods, 1_000, 1_100, WINDOW),
                want,
                "{inventory:?} {removing:?} {methods:?}"
            );
        }
    }

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
