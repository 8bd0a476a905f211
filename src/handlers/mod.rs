//! Task handlers: one per Koji task method.
pub mod arches;
pub mod build;
pub mod common;
pub mod errors;
pub mod hubcalls;
pub mod rpmheader;
pub mod services;
pub mod tag_build;
pub mod waitrepo;
