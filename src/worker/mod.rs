//! The running worker: the supervision core of `koji-adjutant-actors` wired to the real
//! adapters (hub client, podman runtime, host probe, systemd), OS signals and the exit
//! status. Operator view: `docs/worker.md`.

pub mod hub_adapter;
pub mod notify;
pub mod run;
pub mod settings;

pub use hub_adapter::{HostHubAdapter, TaskHubAdapter};
pub use notify::SdNotifier;
pub use run::{RunOutcome, run};
