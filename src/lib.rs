//! koji-adjutant: a kojid-compatible Koji build worker that runs each task in its own podman
//! container.
//!
//! This crate holds the adapters around the supervision core in `koji-adjutant-actors`:
//! configuration, the hub client, the podman runtime, task handlers and the web layer.
//! See ARCHITECTURE.md for the code map and the invariants.

pub mod buildroot;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod handlers;
pub mod hub;
pub mod logging;
pub mod podman;
pub mod web;
pub mod worker;
