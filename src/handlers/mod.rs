//! Task handlers: one per Koji task method.
pub mod arches;
pub mod build;
pub mod build_arch;
pub mod common;
pub mod errors;
pub mod hubcalls;
pub mod hubfiles;
pub mod livelogs;
pub mod register;
pub mod repos;
pub mod rpmheader;
pub mod services;
pub mod tag_build;
pub mod waitrepo;
