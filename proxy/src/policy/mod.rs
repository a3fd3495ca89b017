//! Policy: which host and route a request belongs to, and whether a caller's claims satisfy it.
pub mod path;
