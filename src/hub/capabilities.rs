//! What the hub supports, derived from its version (§1.10).

// One definition of the version, shared with the actors crate (which the
// worker's scheduling loop is built on); re-exported so `hub::capabilities::HubVersion`
// keeps working for callers in this crate.
pub use koji_adjutant_actors::hub::HubVersion;

/// Features of the hub that change what the worker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubCapabilities {
    pub version: HubVersion,
    /// Session in `Koji-Session-*` headers (≥1.31); older hubs read URL parameters.
    pub session_headers: bool,
    /// `logout(session_id=…)` keyword (≥1.31).
    pub logout_kwarg: bool,
    /// Forced expiry and the `renew` login path (≥1.33).
    pub session_renewal: bool,
    /// Hub-side scheduler: `host.getTasks`, `host.refuseTask`, `host.setHostData` (≥1.34).
    pub scheduler: bool,
    /// `host.updateHost(task_load, ready, data)` third argument (≥1.35).
    pub update_host_data: bool,
    /// `host.setHostData` takes a struct (≥1.35); 1.34 wants a JSON string.
    pub host_data_struct: bool,
    /// `repo.request` / `repo.checkRequest` / `repo.get` (≥1.35).
    pub repo_requests: bool,
}

impl HubCapabilities {
    pub fn for_version(version: HubVersion) -> Self {
        Self {
            version,
            session_headers: version.at_least(1, 31),
            logout_kwarg: version.at_least(1, 31),
            session_renewal: version.at_least(1, 33),
            scheduler: version.at_least(1, 34),
            update_host_data: version.at_least(1, 35),
            host_data_struct: version.at_least(1, 35),
            repo_requests: version.at_least(1, 35),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_matrix() {
        let old = HubCapabilities::for_version(HubVersion::new(1, 22, 0));
        assert!(
            !old.session_headers && !old.scheduler && !old.update_host_data && !old.repo_requests
        );
        let v133 = HubCapabilities::for_version(HubVersion::new(1, 33, 1));
        assert!(v133.session_headers && v133.session_renewal && !v133.scheduler);
        let v134 = HubCapabilities::for_version(HubVersion::new(1, 34, 0));
        assert!(v134.scheduler && !v134.update_host_data && !v134.host_data_struct);
        let v135 = HubCapabilities::for_version(HubVersion::new(1, 35, 3));
        assert!(v135.scheduler && v135.update_host_data && v135.repo_requests && v135.logout_kwarg);
        let v2 = HubCapabilities::for_version(HubVersion::new(2, 0, 0));
        assert!(v2.repo_requests);
    }
}
