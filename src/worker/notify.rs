//! systemd's readiness protocol (`sd_notify`), for `Type=notify` units.

use koji_adjutant_actors::probe::Notifier;

/// Writes to `$NOTIFY_SOCKET`; does nothing when the variable is unset (not under systemd).
#[derive(Debug, Default, Clone, Copy)]
pub struct SdNotifier;

impl SdNotifier {
    /// Whether a service manager listens. Logged at start-up so that an operator can tell why
    /// systemd does (or does not) see the worker become ready.
    pub fn is_active() -> bool {
        std::env::var_os("NOTIFY_SOCKET").is_some()
    }

    fn send(state: &[sd_notify::NotifyState<'_>]) {
        // A notification that cannot be delivered must not disturb the worker; systemd will
        // report the missing READY or WATCHDOG itself.
        if let Err(error) = sd_notify::notify(state) {
            tracing::debug!(%error, "sd_notify failed");
        }
    }
}

impl Notifier for SdNotifier {
    fn ready(&self) {
        Self::send(&[sd_notify::NotifyState::Ready]);
    }

    fn status(&self, status: &str) {
        Self::send(&[sd_notify::NotifyState::Status(status)]);
    }

    fn watchdog(&self) {
        Self::send(&[sd_notify::NotifyState::Watchdog]);
    }

    fn stopping(&self) {
        Self::send(&[sd_notify::NotifyState::Stopping]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn notifications_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // SAFETY: this is the only test of the crate that touches NOTIFY_SOCKET.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        let notifier = SdNotifier;
        notifier.ready();
        notifier.status("ready, 0 tasks running");
        notifier.watchdog();
        notifier.stopping();
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let mut received = Vec::new();
        let mut buffer = [0u8; 256];
        for _ in 0..4 {
            let length = socket.recv(&mut buffer).unwrap();
            received.push(String::from_utf8_lossy(&buffer[..length]).trim().to_owned());
        }
        assert_eq!(
            received,
            [
                "READY=1",
                "STATUS=ready, 0 tasks running",
                "WATCHDOG=1",
                "STOPPING=1"
            ]
        );
    }
}
