//! The ContainerRegistry: live containers and recent history, read concurrently by the web layer.
