//! Task handlers: one per Koji task method.
pub mod arches;
pub mod errors;
pub mod rpmheader;
