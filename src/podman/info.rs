//! What `podman info` says about the host: the facts `doctor` and `/status` show, and whether
//! memory, cpu and pids limits can be applied at all.

use serde::Serialize;
use serde_json::Value;

/// Which resource limits podman can apply on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitSupport {
    pub memory: bool,
    pub cpu: bool,
    pub pids: bool,
}

impl LimitSupport {
    pub fn all(&self) -> bool {
        self.memory && self.cpu && self.pids
    }

    /// The names of the limits that cannot be applied, e.g. `["memory", "pids"]`.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.memory {
            missing.push("memory");
        }
        if !self.cpu {
            missing.push("cpu");
        }
        if !self.pids {
            missing.push("pids");
        }
        missing
    }
}

/// The podman facts a worker depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodmanFacts {
    pub version: String,
    /// The OCI runtime podman uses (runc, crun, …).
    pub oci_runtime: String,
    /// "v1" or "v2".
    pub cgroup_version: String,
    pub cgroup_manager: String,
    pub cgroup_controllers: Vec<String>,
    pub storage_driver: String,
    pub rootless: bool,
    pub limits: LimitSupport,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read `podman info --format json`: {0}")]
pub struct FactsError(String);

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |value, key| value.get(key))
        .and_then(Value::as_str)
}

impl PodmanFacts {
    /// Parses `podman info --format json`.
    pub fn from_info_json(json: &str) -> Result<Self, FactsError> {
        let info: Value = serde_json::from_str(json).map_err(|err| FactsError(err.to_string()))?;
        let host = info
            .get("host")
            .ok_or_else(|| FactsError("no \"host\" section".to_owned()))?;
        let version = str_at(&info, &["version", "Version"])
            .ok_or_else(|| FactsError("no version.Version".to_owned()))?
            .to_owned();
        let rootless = host
            .get("security")
            .and_then(|security| security.get("rootless"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let cgroup_version = str_at(host, &["cgroupVersion"])
            .unwrap_or("unknown")
            .to_owned();
        let cgroup_controllers: Vec<String> = host
            .get("cgroupControllers")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let limits = limit_support(&cgroup_version, rootless, &cgroup_controllers);
        Ok(Self {
            version,
            oci_runtime: str_at(host, &["ociRuntime", "name"])
                .unwrap_or("unknown")
                .to_owned(),
            cgroup_version,
            cgroup_manager: str_at(host, &["cgroupManager"])
                .unwrap_or("unknown")
                .to_owned(),
            cgroup_controllers,
            storage_driver: str_at(&info, &["store", "graphDriverName"])
                .unwrap_or("unknown")
                .to_owned(),
            rootless,
            limits,
        })
    }

    /// One line for logs and doctor.
    pub fn summary(&self) -> String {
        format!(
            "podman {} ({}, cgroup {} via {}, storage {}, {})",
            self.version,
            self.oci_runtime,
            self.cgroup_version,
            self.cgroup_manager,
            self.storage_driver,
            if self.rootless { "rootless" } else { "rootful" }
        )
    }
}

/// Limits need their cgroup controller. podman lists the controllers it can use; when it does
/// not (older versions), rootless podman on cgroup v1 is known to apply none.
fn limit_support(cgroup_version: &str, rootless: bool, controllers: &[String]) -> LimitSupport {
    if controllers.is_empty() {
        let supported = !(rootless && cgroup_version == "v1");
        return LimitSupport {
            memory: supported,
            cpu: supported,
            pids: supported,
        };
    }
    let has = |name: &str| controllers.iter().any(|controller| controller == name);
    LimitSupport {
        memory: has("memory"),
        cpu: has("cpu"),
        pids: has("pids"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_INFO: &str = r#"{
        "host": {
            "cgroupManager": "cgroupfs",
            "cgroupVersion": "v1",
            "cgroupControllers": ["cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "pids"],
            "ociRuntime": {"name": "runc"},
            "security": {"rootless": false}
        },
        "store": {"graphDriverName": "overlay"},
        "version": {"Version": "4.3.1"}
    }"#;

    #[test]
    fn parses_the_facts_of_a_rootful_debian_host() {
        let facts = PodmanFacts::from_info_json(DEBIAN_INFO).unwrap();
        assert_eq!(facts.version, "4.3.1");
        assert_eq!(facts.oci_runtime, "runc");
        assert_eq!(facts.cgroup_version, "v1");
        assert_eq!(facts.storage_driver, "overlay");
        assert!(!facts.rootless);
        assert!(facts.limits.all());
        assert_eq!(
            facts.summary(),
            "podman 4.3.1 (runc, cgroup v1 via cgroupfs, storage overlay, rootful)"
        );
    }

    #[test]
    fn missing_controllers_mean_missing_limits() {
        let info = DEBIAN_INFO.replace(
            r#"["cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "pids"]"#,
            r#"["cpuset", "cpu"]"#,
        );
        let facts = PodmanFacts::from_info_json(&info).unwrap();
        assert_eq!(facts.limits.missing(), vec!["memory", "pids"]);
    }

    #[test]
    fn rootless_cgroup_v1_without_a_controller_list_applies_no_limits() {
        let info = DEBIAN_INFO
            .replace(r#""rootless": false"#, r#""rootless": true"#)
            .replace(
                r#""cgroupControllers": ["cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "pids"],"#,
                "",
            );
        let facts = PodmanFacts::from_info_json(&info).unwrap();
        assert_eq!(facts.limits.missing(), vec!["memory", "cpu", "pids"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(PodmanFacts::from_info_json("not json").is_err());
        assert!(PodmanFacts::from_info_json("{}").is_err());
    }
}
