//! Arch rules of the build pipeline (§4.0 "Arch helpers", §4.1 steps 8 and 10, §4.2 step 4):
//! `canonArch`, kojid's `getArchList`, `choose_taskarch` and `find_arch`. Pure functions, so
//! the rules are tested without a hub.

use std::collections::BTreeSet;

use super::errors::BuildFailure;

/// koji's `canonArch`: the arch family a builder host must support.
pub fn canon_arch(arch: &str) -> String {
    let is_i86 = arch.len() == 4
        && arch.starts_with('i')
        && arch.ends_with("86")
        && arch.as_bytes()[1].is_ascii_digit();
    if is_i86 || arch == "athlon" {
        "i386".to_owned()
    } else if arch == "ia32e" {
        "x86_64".to_owned()
    } else if arch == "ppc64le" {
        "ppc64le".to_owned()
    } else if arch.starts_with("ppc64") {
        "ppc64".to_owned()
    } else if arch.starts_with("sparc64") {
        "sparc64".to_owned()
    } else if arch.starts_with("sparc") {
        "sparc".to_owned()
    } else if arch.starts_with("alpha") {
        "alpha".to_owned()
    } else if arch.starts_with("arm") && arch[3..].contains('h') {
        "armhfp".to_owned()
    } else if arch.starts_with("arm") {
        "arm".to_owned()
    } else {
        arch.to_owned()
    }
}

/// What kojid's `getArchList` looks at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArchListInput {
    /// `getBuildConfig(build_tag).arches`, space separated.
    pub tag_arches: String,
    /// `getPackageConfig(...).extra_arches`, space separated.
    pub extra_arches: Option<String>,
    /// The SRPM header's `BuildArchs`.
    pub build_archs: Vec<String>,
    pub exclusive_arch: Vec<String>,
    pub exclude_arch: Vec<String>,
    pub scratch: bool,
    /// `opts.arch_override`, space separated.
    pub arch_override: Option<String>,
    pub tag_name: String,
    pub tag_id: i64,
}

/// kojid's `BuildTask.getArchList`: the arches to run one `buildArch` for, in kojid's order
/// (first occurrence wins, as Python's insertion-ordered dict does).
pub fn arch_list(input: &ArchListInput) -> Result<Vec<String>, BuildFailure> {
    if input.tag_arches.split_whitespace().next().is_none() {
        return Err(BuildFailure::build(format!(
            "No arches for tag {} [{}]",
            input.tag_name, input.tag_id
        )));
    }
    let tag_canon: BTreeSet<String> = input
        .tag_arches
        .split_whitespace()
        .map(canon_arch)
        .collect();
    let mut archlist: Vec<String> = input
        .tag_arches
        .split_whitespace()
        .chain(
            input
                .extra_arches
                .as_deref()
                .unwrap_or("")
                .split_whitespace(),
        )
        .map(str::to_owned)
        .collect();
    if !input.build_archs.is_empty() {
        archlist = input.build_archs.clone();
    }
    if !input.exclusive_arch.is_empty() {
        archlist.retain(|a| input.exclusive_arch.contains(a));
    }
    if !input.exclude_arch.is_empty() {
        archlist.retain(|a| !input.exclude_arch.contains(a));
    }
    let noarch_wanted = (input.build_archs.iter().any(|a| a == "noarch")
        || input.exclusive_arch.iter().any(|a| a == "noarch"))
        && !input.exclude_arch.iter().any(|a| a == "noarch");
    if noarch_wanted && !archlist.iter().any(|a| a == "noarch") {
        archlist.push("noarch".to_owned());
    }
    if let Some(over) = input
        .arch_override
        .as_deref()
        .filter(|o| !o.trim().is_empty())
    {
        if !input.scratch {
            return Err(BuildFailure::build(
                "arch_override is only allowed for scratch builds",
            ));
        }
        archlist = over.split_whitespace().map(str::to_owned).collect();
    }
    let mut result: Vec<String> = Vec::new();
    for arch in archlist {
        if (arch == "noarch" || tag_canon.contains(&canon_arch(&arch))) && !result.contains(&arch) {
            result.push(arch);
        }
    }
    if result.is_empty() {
        return Err(BuildFailure::build("No matching arches were found"));
    }
    Ok(result)
}

/// fnmatch-style glob match (`*`, `?`, `[...]`), as Python's `fnmatch` does for
/// `literal_task_arches`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    glob::Pattern::new(pattern)
        .map(|p| p.matches(text))
        .unwrap_or(false)
}

/// kojid's `choose_taskarch`: the task arch of a `buildArch`/`rebuildSRPM` subtask. The
/// scheduler only gives a task to hosts that have this arch, so it must be an arch a host can
/// report. `pick` chooses one element of a non-empty sorted list (kojid uses
/// `random.choice`; tests pass a deterministic one).
pub fn choose_taskarch(
    arch: &str,
    literal_task_arches: &str,
    tag_arches: &str,
    exclusive_arch: &[String],
    exclude_arch: &[String],
    noarch_arches: Option<&str>,
    pick: &dyn Fn(&[String]) -> usize,
) -> String {
    if arch != "noarch" {
        if literal_task_arches
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .any(|pattern| glob_match(pattern, arch))
        {
            return arch.to_owned();
        }
        return canon_arch(arch);
    }
    let tag_set: BTreeSet<String> = tag_arches.split_whitespace().map(canon_arch).collect();
    let mut allowed = tag_set.clone();
    if !exclusive_arch.is_empty() {
        let exclusive: BTreeSet<String> = exclusive_arch.iter().map(|a| canon_arch(a)).collect();
        allowed = allowed.intersection(&exclusive).cloned().collect();
    }
    if !exclude_arch.is_empty() {
        let excluded: BTreeSet<String> = exclude_arch.iter().map(|a| canon_arch(a)).collect();
        allowed = allowed.difference(&excluded).cloned().collect();
    }
    if let Some(noarch_arches) = noarch_arches.filter(|n| !n.trim().is_empty()) {
        let limited: BTreeSet<String> = noarch_arches.split_whitespace().map(canon_arch).collect();
        allowed = allowed.intersection(&limited).cloned().collect();
    }
    // Unrestricted noarch tasks stay noarch so that any host may take them.
    if allowed == tag_set || allowed.is_empty() {
        return "noarch".to_owned();
    }
    let candidates: Vec<String> = allowed.into_iter().collect();
    let index = pick(&candidates).min(candidates.len() - 1);
    candidates[index].clone()
}

/// kojid's `find_arch(arch, host, tag, preferred)`: the buildroot arch for a task. Non-noarch
/// arches are returned unchanged.
pub fn find_arch(
    arch: &str,
    host_arches: &[String],
    tag_arches: &str,
    preferred: Option<&str>,
    pick: &dyn Fn(&[String]) -> usize,
) -> Result<String, BuildFailure> {
    if arch != "noarch" {
        return Ok(arch.to_owned());
    }
    let host: BTreeSet<String> = host_arches.iter().map(|a| canon_arch(a)).collect();
    if host.is_empty() {
        return Err(BuildFailure::build("No arch list for this host"));
    }
    let tag: BTreeSet<String> = tag_arches.split_whitespace().map(canon_arch).collect();
    if tag.is_empty() {
        return Err(BuildFailure::build("No arch list for tag"));
    }
    let common: Vec<String> = host.intersection(&tag).cloned().collect();
    if common.is_empty() {
        return Err(BuildFailure::build(format!(
            "host {} and tag {} do not have any arches in common",
            host.iter().cloned().collect::<Vec<_>>().join(" "),
            tag.iter().cloned().collect::<Vec<_>>().join(" ")
        )));
    }
    if let Some(preferred) = preferred.filter(|p| *p != "noarch")
        && common.iter().any(|a| a == preferred)
    {
        return Ok(preferred.to_owned());
    }
    let index = pick(&common).min(common.len() - 1);
    Ok(common[index].clone())
}

/// A `pick` for production: uniform random, like `random.choice`.
pub fn random_pick(candidates: &[String]) -> usize {
    use rand::Rng;
    if candidates.is_empty() {
        0
    } else {
        rand::rng().random_range(0..candidates.len())
    }
}

/// `buildArch` weight from `getAverageBuildDuration` (§4.0 table).
pub fn build_arch_weight(average_seconds: f64) -> f64 {
    1.5 + (average_seconds / 4800.0).min(18.0)
}

/// `true` when tag and host share an arch (buildArch/rebuildSRPM `checkHost`).
pub fn host_can_build(host_arches: &[String], tag_arches: &str) -> bool {
    let host: BTreeSet<String> = host_arches.iter().map(|a| canon_arch(a)).collect();
    tag_arches
        .split_whitespace()
        .map(canon_arch)
        .any(|a| host.contains(&a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn first(_: &[String]) -> usize {
        0
    }

    #[test]
    fn canon_arch_follows_koji() {
        for (arch, canon) in [
            ("i686", "i386"),
            ("i586", "i386"),
            ("athlon", "i386"),
            ("ia32e", "x86_64"),
            ("x86_64", "x86_64"),
            ("ppc64le", "ppc64le"),
            ("ppc64p7", "ppc64"),
            ("sparc64v", "sparc64"),
            ("sparcv9", "sparc"),
            ("alphaev6", "alpha"),
            ("armv7hl", "armhfp"),
            ("armv5tel", "arm"),
            ("aarch64", "aarch64"),
            ("s390x", "s390x"),
            ("noarch", "noarch"),
        ] {
            assert_eq!(canon_arch(arch), canon, "{arch}");
        }
    }

    fn input(tag: &str) -> ArchListInput {
        ArchListInput {
            tag_arches: tag.to_owned(),
            tag_name: "dist-build".to_owned(),
            tag_id: 2,
            ..ArchListInput::default()
        }
    }

    #[test]
    fn arch_list_is_the_tag_arches_plus_extra() {
        let mut i = input("x86_64 i686");
        i.extra_arches = Some("aarch64 i586".to_owned());
        // aarch64 is not a tag arch, i586 canonicalises to a tag arch.
        assert_eq!(arch_list(&i).unwrap(), v(&["x86_64", "i686", "i586"]));
    }

    #[test]
    fn build_archs_noarch_gives_noarch_only() {
        let mut i = input("x86_64");
        i.build_archs = v(&["noarch"]);
        assert_eq!(arch_list(&i).unwrap(), v(&["noarch"]));
    }

    #[test]
    fn exclusive_and_exclude_filter() {
        let mut i = input("x86_64 aarch64 ppc64le");
        i.exclusive_arch = v(&["x86_64", "aarch64"]);
        i.exclude_arch = v(&["aarch64"]);
        assert_eq!(arch_list(&i).unwrap(), v(&["x86_64"]));
        let mut none = input("x86_64");
        none.exclude_arch = v(&["x86_64"]);
        let error = arch_list(&none).unwrap_err();
        assert_eq!(error.message, "No matching arches were found");
        assert_eq!(error.fault_code, 1005);
    }

    #[test]
    fn exclusive_noarch_is_kept_unless_excluded() {
        let mut i = input("x86_64");
        i.exclusive_arch = v(&["noarch"]);
        assert_eq!(arch_list(&i).unwrap(), v(&["noarch"]));
        i.exclude_arch = v(&["noarch"]);
        assert!(arch_list(&i).is_err());
    }

    #[test]
    fn arch_override_only_for_scratch() {
        let mut i = input("x86_64 aarch64");
        i.arch_override = Some("aarch64 s390x".to_owned());
        assert!(arch_list(&i).unwrap_err().message.contains("scratch"));
        i.scratch = true;
        assert_eq!(arch_list(&i).unwrap(), v(&["aarch64"]));
    }

    #[test]
    fn empty_tag_arches_is_a_build_error() {
        let error = arch_list(&input(" ")).unwrap_err();
        assert_eq!(error.message, "No arches for tag dist-build [2]");
    }

    #[test]
    fn choose_taskarch_canonicalises_unless_literal() {
        let pick = |_: &[String]| 0;
        assert_eq!(
            choose_taskarch("i686", "", "x86_64 i686", &[], &[], None, &pick),
            "i386"
        );
        assert_eq!(
            choose_taskarch("i686", "i?86", "x86_64 i686", &[], &[], None, &pick),
            "i686"
        );
        assert_eq!(
            choose_taskarch("x86_64", "", "x86_64", &[], &[], None, &pick),
            "x86_64"
        );
    }

    #[test]
    fn choose_taskarch_for_noarch() {
        // Unrestricted: stays noarch.
        assert_eq!(
            choose_taskarch("noarch", "", "x86_64 aarch64", &[], &[], None, &first),
            "noarch"
        );
        // ExcludeArch restricts the tag arches: a concrete arch is picked.
        assert_eq!(
            choose_taskarch(
                "noarch",
                "",
                "x86_64 aarch64",
                &[],
                &v(&["x86_64"]),
                None,
                &first
            ),
            "aarch64"
        );
        assert_eq!(
            choose_taskarch(
                "noarch",
                "",
                "x86_64 aarch64",
                &[],
                &[],
                Some("x86_64"),
                &first
            ),
            "x86_64"
        );
    }

    #[test]
    fn find_arch_prefers_the_task_arch_and_needs_overlap() {
        let host = v(&["x86_64", "aarch64"]);
        assert_eq!(
            find_arch("x86_64", &host, "", None, &first).unwrap(),
            "x86_64"
        );
        assert_eq!(
            find_arch("noarch", &host, "aarch64 x86_64", Some("x86_64"), &first).unwrap(),
            "x86_64"
        );
        assert_eq!(
            find_arch("noarch", &host, "aarch64 x86_64", Some("noarch"), &first).unwrap(),
            "aarch64"
        );
        let error = find_arch("noarch", &host, "s390x", None, &first).unwrap_err();
        assert!(error.message.contains("do not have any arches in common"));
    }

    #[test]
    fn weights_and_check_host() {
        assert_eq!(build_arch_weight(0.0), 1.5);
        assert_eq!(build_arch_weight(4800.0), 2.5);
        assert_eq!(build_arch_weight(1e9), 19.5);
        assert!(host_can_build(&v(&["noarch", "x86_64"]), "x86_64"));
        assert!(host_can_build(&v(&["x86_64"]), "i686 x86_64"));
        assert!(!host_can_build(&v(&["aarch64"]), "x86_64"));
    }
}
