//! Test support: a small OpenID provider and an echo upstream on ephemeral ports.
pub mod upstream;
pub mod provider;
pub use provider::*;
