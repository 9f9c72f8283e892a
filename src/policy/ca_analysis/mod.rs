//! Conditional access as code (DESIGN §2.9): offline analyses of policy
//! files, with no server and no store, on the engine every sign-in uses
//! ([`crate::policy::conditional_access::evaluate`]).
//!
//! - `gatepass ca test` ([`scenarios`]): named sign-ins with expected
//!   decisions, for CI;
//! - `gatepass ca gaps` ([`gaps`]): the whole input space — who gets in
//!   with too little, who cannot get in at all;
//! - `gatepass ca diff` ([`diff`]): what a change to the policies changes;
//! - `gatepass ca impact` ([`impact`]): a recorded sign-in log replayed
//!   against a draft.
//!
//! Inputs are read strictly ([`inputs`]): a malformed file is an error that
//! names the file, the position and the property. Findings are product sets
//! ([`product`]) over the input space ([`space`]).

pub mod cli;
pub mod diff;
pub mod gaps;
pub mod impact;
pub mod inputs;
pub mod product;
pub mod scenarios;
pub mod space;
pub mod words;
