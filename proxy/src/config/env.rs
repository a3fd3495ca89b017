//! `${VAR}` expansion from the environment.
