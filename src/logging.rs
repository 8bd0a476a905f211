//! Logging set-up with `tracing`.
