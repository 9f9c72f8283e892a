//! Policy decisions that are pure functions of a session and the clock:
//! what a session may do (`session_limiter`). Conditional access joins it.

pub mod session_limiter;
