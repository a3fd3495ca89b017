//! The signed identity assertion (`X-Auth-Assertion`).
pub struct AssertionSigner;
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("cannot sign the identity assertion: {0}")]
    Sign(String),
}
