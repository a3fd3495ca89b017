//! The serde-facing shape of the config file.
