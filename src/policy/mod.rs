//! Policy decisions that are pure functions of a session and the clock:
//! what a session may do (`session_limiter`). Conditional access joins it.

pub mod ca_analysis;
pub mod ca_store;
pub mod conditional_access;
pub mod session_limiter;
pub mod what_if_cli;
