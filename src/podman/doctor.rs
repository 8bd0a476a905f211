//! The podman part of `koji-adjutant doctor`.

use koji_adjutant_actors::runtime::{ContainerRuntime, PullPolicy, RuntimeError};

use super::{PodmanRuntime, cli, policy_name};
use crate::doctor::Check;

impl PodmanRuntime {
    /// Preflight checks: podman present and its version, OCI runtime, storage driver, rootful or
    /// rootless, the configured images present (or pullable by policy), resource limits
    /// supported, and containers of this worker already on the host.
    pub async fn doctor_checks(
        &self,
        worker_id: &str,
        images: &[(String, PullPolicy)],
    ) -> Vec<Check> {
        let mut checks = Vec::new();
        let facts = match self.probe().await {
            Ok(facts) => facts.clone(),
            Err(err) => {
                let fix = match err {
                    RuntimeError::Spawn { .. } => {
                        "install podman (scripts/setup-host.sh on Debian, `dnf install podman` on \
                         Fedora/RHEL) or set the podman path"
                    }
                    _ => "run `podman info` as the worker's user and fix what it reports",
                };
                checks.push(Check::fail("podman", err.to_string(), fix));
                return checks;
            }
        };
        checks.push(Check::ok(
            "podman",
            format!("{} at {}", facts.version, self.options().podman.display()),
        ));
        let major: u32 = facts
            .version
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .unwrap_or(0);
        if major < 4 {
            checks.push(Check::warn(
                "podman version",
                format!("podman {} is older than the tested 4.x", facts.version),
                "upgrade podman to 4.3 or later",
            ));
        }
        let runtime_detail = format!(
            "OCI runtime {}, cgroup {} ({})",
            facts.oci_runtime, facts.cgroup_version, facts.cgroup_manager
        );
        if facts.oci_runtime == "crun" && facts.cgroup_version == "v1" {
            checks.push(Check::warn(
                "podman runtime",
                runtime_detail,
                "crun 1.8 cannot start containers on hybrid cgroup v1 hosts; set \
                 [engine] runtime = \"runc\" in /etc/containers/containers.conf \
                 (conf/containers.conf)",
            ));
        } else {
            checks.push(Check::ok("podman runtime", runtime_detail));
        }
        if facts.storage_driver == "overlay" {
            checks.push(Check::ok("podman storage", "overlay"));
        } else {
            checks.push(Check::warn(
                "podman storage",
                format!("storage driver {}", facts.storage_driver),
                "use the overlay driver: vfs copies the whole image for every container",
            ));
        }
        checks.push(Check::ok(
            "podman mode",
            if facts.rootless {
                "rootless"
            } else {
                "rootful"
            },
        ));
        if facts.limits.all() {
            checks.push(Check::ok(
                "resource limits",
                "memory, cpu and pids limits can be applied",
            ));
        } else {
            checks.push(Check::warn(
                "resource limits",
                format!(
                    "podman cannot apply {} limits here; tasks run without them",
                    facts.limits.missing().join(", ")
                ),
                "run podman rootful, or on cgroup v2 with the cpu, memory and pids controllers \
                 delegated",
            ));
        }
        for (image, policy) in images {
            checks.push(self.image_check(image, *policy).await);
        }
        match self.list_owned(worker_id).await {
            Ok(found) if found.is_empty() => checks.push(Check::ok(
                "containers",
                format!("no containers labelled for worker {worker_id}"),
            )),
            Ok(found) => {
                let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
                checks.push(Check::warn(
                    "containers",
                    format!(
                        "{} container(s) labelled for worker {worker_id}: {}",
                        found.len(),
                        names.join(", ")
                    ),
                    "if no worker with this id is running, they are orphans: the worker removes \
                     them at start-up, or run `podman rm -f` on them",
                ));
            }
            Err(err) => checks.push(Check::fail(
                "containers",
                err.to_string(),
                "run `podman ps -a` and fix what it reports",
            )),
        }
        checks
    }

    async fn image_check(&self, image: &str, policy: PullPolicy) -> Check {
        let name = format!("image {image}");
        let exists = cli::run(
            self.program(),
            "image exists",
            ["image", "exists", image],
            self.options().command_timeout,
            self.podman_cwd(),
        )
        .await;
        match (exists, policy) {
            (Ok(output), _) if output.status == 0 => Check::ok(
                name,
                format!("present (pull policy {})", policy_name(policy)),
            ),
            (Ok(output), PullPolicy::Never) if output.status == 1 => Check::fail(
                name,
                "missing, and the pull policy is never",
                "build it (scripts/build-image.sh) or `podman load` it, or allow pulling",
            ),
            (Ok(output), _) if output.status == 1 => Check::warn(
                name,
                format!(
                    "missing; it will be pulled on first use (pull policy {})",
                    policy_name(policy)
                ),
                format!("pre-pull it with `podman pull {image}` to save the first task's time"),
            ),
            (Ok(output), _) => Check::fail(
                name,
                output.message(),
                "run `podman image exists` by hand and fix what it reports",
            ),
            (Err(err), _) => Check::fail(name, err.to_string(), "check the podman installation"),
        }
    }
}
