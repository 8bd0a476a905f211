//! Task handlers: one per Koji task method.
pub mod repos;
