//! Task handlers: one per Koji task method.
