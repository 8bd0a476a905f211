//! What the hub supports, derived from its version (§1.10).

use std::fmt;

/// A hub version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HubVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl HubVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Reads `1.35.3`, `1.35`, and tolerates suffixes such as `1.36.0rc1`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let number = |part: Option<&str>| -> Option<u32> {
            let digits: String = part?.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = number(parts.next()).unwrap_or(0);
        Some(Self {
            major,
            minor,
            patch,
        })
    }

    const fn at_least(self, major: u32, minor: u32) -> bool {
        self.major > major || (self.major == major && self.minor >= minor)
    }
}

impl fmt::Display for HubVersion {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

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
    fn parses_versions() {
        assert_eq!(HubVersion::parse("1.35.3"), Some(HubVersion::new(1, 35, 3)));
        assert_eq!(HubVersion::parse("1.36"), Some(HubVersion::new(1, 36, 0)));
        assert_eq!(
            HubVersion::parse(" 1.36.0rc1\n"),
            Some(HubVersion::new(1, 36, 0))
        );
        assert_eq!(HubVersion::parse("koji"), None);
        assert_eq!(HubVersion::parse(""), None);
    }

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
