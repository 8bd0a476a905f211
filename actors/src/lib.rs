//! The supervision core of koji-adjutant.
//!
//! Written against small traits (hub, runtime, handler) so that it can be tested with in-memory
//! fakes. It knows nothing of XML-RPC or the podman CLI.

pub mod registry;
pub mod runtime;
