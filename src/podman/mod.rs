//! The podman runtime. The only module that spawns processes.
