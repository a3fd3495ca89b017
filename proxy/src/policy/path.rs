//! Path normalization.
