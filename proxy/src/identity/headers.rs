//! Headers the upstream receives.
