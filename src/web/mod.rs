//! The monitoring web layer: dashboard, JSON API, metrics and health endpoints.
