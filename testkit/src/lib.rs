//! Test support: a small OpenID provider, an echo upstream and a private redis-server, on ephemeral ports.
pub mod upstream;
pub mod redis;
pub mod provider;
pub use provider::*;
