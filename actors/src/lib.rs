//! The supervision core of koji-adjutant.
//!
//! Written against small traits (hub, runtime, handler, host probe) so that it can be tested with
//! in-memory fakes. It knows nothing of XML-RPC or the podman CLI.
//!
//! A [`supervisor::Supervisor`] actor spawns the [`poller::HubPoller`] (kojid's main loop), the
//! [`policy::PolicyCache`] (image selection), the [`registry::ContainerRegistry`] and one
//! [`task::TaskActor`] per task. See `docs/worker.md` for the behaviour.

pub mod builtin;
pub mod error;
pub mod handler;
pub mod hub;
pub mod logs;
pub mod policy;
pub mod poller;
pub mod probe;
pub mod registry;
pub mod runtime;
pub mod settings;
pub mod snapshot;
pub mod supervisor;
pub mod task;

pub use error::{ErrorClass, Fault, HandlerError, HubError};
pub use handler::{HandlerRegistry, TaskContext, TaskHandler, TaskRequest};
pub use supervisor::{Supervisor, WorkerDeps, WorkerExit, WorkerHandle, WorkerSignal};
