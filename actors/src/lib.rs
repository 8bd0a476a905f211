//! The supervision core of koji-adjutant.
//!
//! Written against small traits (hub, runtime, handler, host probe) so that it can be tested with
//! in-memory fakes. It knows nothing of XML-RPC or the podman CLI.
//!
//! A [`supervisor::Supervisor`] actor spawns the [`poller::HubPoller`] (kojid's main loop), the
//! [`policy::PolicyCache`] (image selection), the [`registry::ContainerRegistry`] and one
//! [`task::TaskActor`] per task. See `docs/worker.md` for the behaviour.
//!
//! Wiring, inside an actix `System` (TaskActors use `spawn_local`):
//!
//! ```text
//! let mut handlers = HandlerRegistry::new();
//! koji_adjutant_actors::builtin::register_builtin(&mut handlers);
//! let worker = Supervisor::start_worker(WorkerDeps {
//!     hub,                 // Arc<dyn HostHub>, logged in
//!     runtime,             // Arc<dyn ContainerRuntime>
//!     probe: Arc::new(SystemProbe),
//!     handlers: Arc::new(handlers),
//!     notifier,            // Arc<dyn Notifier> (sd_notify)
//!     settings,            // WorkerSettings from the config
//! });
//! // OS signals → worker.supervisor.do_send(WorkerSignal::Terminate | Interrupt | …);
//! // the web layer reads worker.snapshot, worker.containers and worker.logs;
//! // worker.exit resolves to WorkerExit::Shutdown (exit 0), ::Restart (re-exec) or
//! // ::Fatal(message) (exit 1).
//! ```

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
pub mod testing;

pub use error::{ErrorClass, Fault, HandlerError, HubError};
pub use handler::{HandlerRegistry, TaskContext, TaskHandler, TaskRequest};
pub use supervisor::{Supervisor, WorkerDeps, WorkerExit, WorkerHandle, WorkerSignal};
