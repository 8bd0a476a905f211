//! Preflight checks of the buildroot settings and of the host features the engine needs, for
//! `koji-adjutant doctor`.

use std::path::Path;

use crate::doctor::Check;

use super::BuildrootSettings;

/// `build_network` must be one the engine can give, and the host must allow the unprivileged
/// user namespaces the network isolation of the build step (and installroot mode's chroot and
/// `/proc`) rest on.
pub fn doctor_checks(config: &crate::config::Config) -> Vec<Check> {
    let mut checks = Vec::new();
    match BuildrootSettings::from_config(config) {
        Ok(settings) => {
            checks.push(Check::ok(
                "buildroot",
                format!(
                    "mode {}, dependency network {:?}, build network {:?}, build user {}:{}",
                    settings.mode,
                    settings.buildroot_network,
                    settings.build_network,
                    settings.build_user.uid,
                    settings.build_user.gid
                ),
            ));
            // installroot mode enters the root through a user namespace whatever the network.
            if settings.build_network == super::BuildNetwork::Isolated
                || settings.mode == super::BuildrootMode::Installroot
            {
                checks.push(user_namespaces_check(Path::new("/proc/sys")));
            }
        }
        Err(error) => checks.push(Check::fail(
            "buildroot",
            error.to_string(),
            "set build_network to none (the default) or to the value of buildroot_network",
        )),
    }
    checks
}

/// Reads the sysctls that gate unprivileged user namespaces below `proc_sys`.
pub(crate) fn user_namespaces_check(proc_sys: &Path) -> Check {
    let read = |relative: &str| {
        std::fs::read_to_string(proc_sys.join(relative))
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
    };
    const NAME: &str = "build isolation";
    if let Some(0) = read("user/max_user_namespaces") {
        return Check::fail(
            NAME,
            "user.max_user_namespaces is 0: the build step cannot be given an empty network namespace, so every build would be refused",
            "sysctl -w user.max_user_namespaces=15000 (and persist it in /etc/sysctl.d)",
        );
    }
    // Debian's and Ubuntu's own switch; absent on other kernels.
    if let Some(0) = read("kernel/unprivileged_userns_clone") {
        return Check::fail(
            NAME,
            "kernel.unprivileged_userns_clone is 0: the build step cannot be given an empty network namespace, so every build would be refused",
            "sysctl -w kernel.unprivileged_userns_clone=1 (and persist it in /etc/sysctl.d)",
        );
    }
    Check::ok(
        NAME,
        "unprivileged user namespaces are allowed: rpmbuild runs without network",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::CheckStatus;

    #[test]
    fn user_namespace_sysctls_decide_the_check() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("user")).unwrap();
        std::fs::create_dir_all(dir.path().join("kernel")).unwrap();
        assert_eq!(user_namespaces_check(dir.path()).status, CheckStatus::Ok);
        std::fs::write(dir.path().join("user/max_user_namespaces"), "0\n").unwrap();
        let check = user_namespaces_check(dir.path());
        assert_eq!(check.status, CheckStatus::Fail);
        assert!(check.fix.contains("max_user_namespaces"));
        std::fs::write(dir.path().join("user/max_user_namespaces"), "1000\n").unwrap();
        std::fs::write(dir.path().join("kernel/unprivileged_userns_clone"), "0\n").unwrap();
        assert_eq!(user_namespaces_check(dir.path()).status, CheckStatus::Fail);
        std::fs::write(dir.path().join("kernel/unprivileged_userns_clone"), "1\n").unwrap();
        assert_eq!(user_namespaces_check(dir.path()).status, CheckStatus::Ok);
    }

    #[test]
    fn this_host_allows_the_isolation() {
        // The machines this project runs its tests on must; the podman tests depend on it.
        assert_eq!(
            user_namespaces_check(Path::new("/proc/sys")).status,
            CheckStatus::Ok
        );
    }
}
