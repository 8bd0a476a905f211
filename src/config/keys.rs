//! The one definition of every setting: name, type, default, documentation, whether it is a
//! secret, and what it means for a worker that runs tasks in containers. The parser,
//! `check-config` and the generated `docs/config-reference.md` all read these tables.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::types::{
    BuildrootMode, ContainerTimeouts, HttpUrl, ImagePullPolicy, LabelMap, LogFormat, LogLevel,
    MemorySize, MountList, RepoTools, Seconds, SelinuxLabel, SettingType, UidGid, UrlList,
    WordList,
};

/// Which section a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Kojid,
    Adjutant,
}

impl Section {
    pub fn name(self) -> &'static str {
        match self {
            Section::Kojid => "kojid",
            Section::Adjutant => "adjutant",
        }
    }
}

/// One setting's definition.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    pub name: &'static str,
    pub section: Section,
    pub type_name: &'static str,
    /// The default as it would be written in the file; `None` when the key has none.
    pub default: Option<&'static str>,
    pub doc: &'static str,
    pub secret: bool,
    /// How the key maps for containers, when that differs from what kojid does with it.
    pub container_note: &'static str,
    validate: fn(&str) -> Result<(), String>,
    optional: fn() -> bool,
}

impl KeyDef {
    /// Checks a raw value; the error says what was expected.
    pub fn validate(&self, raw: &str) -> Result<(), String> {
        (self.validate)(raw)
    }

    /// A key that has no default and must be set.
    pub fn required(&self) -> bool {
        self.default.is_none() && !(self.optional)()
    }

    /// The name of the environment variable that sets this key (adjutant keys only).
    pub fn env_var(&self) -> Option<String> {
        match self.section {
            Section::Adjutant => Some(format!("KOJI_ADJUTANT_{}", self.name.to_uppercase())),
            Section::Kojid => None,
        }
    }

    /// The documentation as one line per paragraph line, without rustdoc's leading space.
    pub fn doc_text(&self) -> String {
        self.doc
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn validate_as<T: SettingType>(raw: &str) -> Result<(), String> {
    T::parse(raw).map(|_| ())
}

fn optional_as<T: SettingType>() -> bool {
    T::absent().is_some()
}

/// A problem met while building a settings struct from raw values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildProblem {
    Invalid {
        key: &'static str,
        raw: String,
        expected: String,
    },
    Missing {
        key: &'static str,
    },
}

fn build_field<T: SettingType>(
    def: &KeyDef,
    raw: Option<&str>,
    problems: &mut Vec<BuildProblem>,
) -> Option<T> {
    match raw.or(def.default) {
        Some(raw) => match T::parse(raw) {
            Ok(value) => Some(value),
            Err(expected) => {
                problems.push(BuildProblem::Invalid {
                    key: def.name,
                    raw: raw.to_string(),
                    expected,
                });
                None
            }
        },
        None => {
            let absent = T::absent();
            if absent.is_none() {
                problems.push(BuildProblem::Missing { key: def.name });
            }
            absent
        }
    }
}

macro_rules! settings {
    (
        $(#[$smeta:meta])*
        pub struct $name:ident in $section:expr, table $table:ident;
        $(
            $(#[doc = $doc:literal])+
            $field:ident : $ty:ty = $default:expr, secret $secret:literal, containers $note:literal;
        )*
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
        }

        pub static $table: &[KeyDef] = &[
            $( KeyDef {
                name: stringify!($field),
                section: $section,
                type_name: <$ty as SettingType>::TYPE_NAME,
                default: $default,
                doc: concat!($($doc, "\n"),+),
                secret: $secret,
                container_note: $note,
                validate: validate_as::<$ty>,
                optional: optional_as::<$ty>,
            }, )*
        ];

        impl $name {
            /// Builds the settings from each key's winning raw value (`None` = not set),
            /// falling back to the defaults of the table.
            pub fn build<'a>(
                raw: impl Fn(&'static str) -> Option<&'a str>,
            ) -> Result<Self, Vec<BuildProblem>> {
                let mut problems = Vec::new();
                let mut defs = $table.iter();
                $(
                    let def = defs.next();
                    let $field: Option<$ty> = match def {
                        Some(def) => build_field::<$ty>(def, raw(stringify!($field)), &mut problems),
                        None => None,
                    };
                )*
                match ($($field,)*) {
                    ($(Some($field),)*) if problems.is_empty() => Ok(Self { $($field,)* }),
                    _ => Err(problems),
                }
            }
        }
    };
}

settings! {
    /// The `[kojid]` keys kojid itself reads, with kojid's types and defaults.
    pub struct KojidSettings in Section::Kojid, table KOJID_KEYS;

    /// URL of the hub's XML-RPC endpoint (required).
    server: HttpUrl = None, secret false, containers "";
    /// File server URL(s), separated by whitespace; the first is used (required).
    topurl: UrlList = None, secret false, containers "";
    /// Local mount of the Koji volume, needed by createrepo, newRepo and distRepo.
    topdir: PathBuf = Some("/mnt/koji"), secret false, containers "";
    /// Local scratch root; task work directories live under `tasks/<id % 10000>/<id>`.
    workdir: PathBuf = Some("/var/tmp/koji"), secret false, containers "Bind-mounted into each task container as the task's work directory.";
    /// Temporary directory inside the buildroot.
    chroot_tmpdir: PathBuf = Some("/chroot_tmpdir"), secret false, containers "Created inside the task container.";
    /// mock's base directory.
    mockdir: PathBuf = Some("/var/lib/mock"), secret false, containers "No mock runs; this path is where free space is checked against `minspace` (put it on the filesystem that holds container storage).";
    /// User mock runs as.
    mockuser: String = Some("kojibuilder"), secret false, containers "Ignored: builds run as `build_user` inside the container.";
    /// Suffix of the `%_host` rpm macro.
    mockhost: String = Some("koji-linux-gnu"), secret false, containers "Written into the container's rpm macros as `%_host` suffix.";
    /// Default `%vendor` rpm macro.
    vendor: String = Some("Koji"), secret false, containers "Written into the container's rpm macros.";
    /// Default `%packager` rpm macro.
    packager: String = Some("Koji"), secret false, containers "Written into the container's rpm macros.";
    /// Default `%distribution` rpm macro.
    distribution: String = Some("Koji"), secret false, containers "Written into the container's rpm macros.";
    /// Seconds rpmbuild may run.
    rpmbuild_timeout: Seconds = Some("86400"), secret false, containers "The build step inside the container is killed after this long.";
    /// `proxy=` for the buildroot's package manager.
    yum_proxy: Option<String> = None, secret false, containers "Passed to dnf in the container as its proxy.";
    /// Allow a tag's `mock.bootstrap_image` extra (kojid treats any non-empty value as true).
    mock_bootstrap_image: String = Some("False"), secret false, containers "Ignored: there is no mock bootstrap; the task image is the buildroot base.";
    /// Seconds between polls when no task was taken.
    sleeptime: Seconds = Some("15"), secret false, containers "";
    /// Maximum number of concurrent tasks (also sent to the hub's scheduler).
    maxjobs: u64 = Some("10"), secret false, containers "";
    /// MiB that must be free in `mockdir` to take a task.
    minspace: u64 = Some("8192"), secret false, containers "Checked on the filesystem of `mockdir`.";
    /// Seconds after a buildroot retires before its root is emptied.
    buildroot_basic_cleanup_delay: Seconds = Some("120"), secret false, containers "Containers are removed when their task ends; kept for compatibility.";
    /// Seconds after a buildroot retires before it is removed entirely.
    buildroot_final_cleanup_delay: Seconds = Some("86400"), secret false, containers "Containers are removed when their task ends; kept for compatibility.";
    /// Seconds to keep the buildroots of failed tasks.
    failed_buildroot_lifetime: Seconds = Some("14400"), secret false, containers "Containers are removed when their task ends; kept for compatibility.";
    /// Globs of arches that are not canonicalised for buildArch.
    literal_task_arches: String = Some(""), secret false, containers "";
    /// Do not cancel sibling buildArch tasks on the first failure.
    build_arch_can_fail: bool = Some("False"), secret false, containers "";
    /// Legacy scheduling delay in seconds; unused with the hub scheduler.
    task_avail_delay: Seconds = Some("300"), secret false, containers "";
    /// SCM allow-list, whitespace-separated (empty means nothing is allowed when `allowed_scms_use_config`).
    allowed_scms: WordList = Some(""), secret false, containers "";
    /// Apply `allowed_scms`.
    allowed_scms_use_config: bool = Some("True"), secret false, containers "";
    /// Apply the hub policy `build_from_scm`.
    allowed_scms_use_policy: bool = Some("False"), secret false, containers "";
    /// Accept `user:password@` in SCM URLs.
    allow_password_in_scm_url: bool = Some("False"), secret false, containers "";
    /// Directory of SCM credentials, mounted at `/credentials` for SRPM-from-SCM.
    scm_credentials_dir: Option<PathBuf> = None, secret false, containers "Bind-mounted read-only at `/credentials` in SRPM-from-SCM containers.";
    /// Accept the `SPECS/` + `SOURCES/` source layout.
    support_rpm_source_layout: bool = Some("True"), secret false, containers "";
    /// Use createrepo_c and mergerepo_c rather than the legacy tools.
    use_createrepo_c: bool = Some("True"), secret false, containers "The task image must provide the chosen tools.";
    /// Reuse previous repodata (`--update`).
    createrepo_update: bool = Some("True"), secret false, containers "";
    /// Pass `--skip-stat` to createrepo for createrepo tasks.
    createrepo_skip_stat: bool = Some("True"), secret false, containers "";
    /// Pass `--skip-stat` for dist repos (overridable per task).
    distrepo_skip_stat: bool = Some("False"), secret false, containers "";
    /// newRepo may copy unchanged arch repodata.
    copy_old_repodata: bool = Some("False"), secret false, containers "";
    /// Upload `*-ts.log` companions with timestamps.
    log_timestamps: bool = Some("False"), secret false, containers "";
    /// Files the maven handlers ignore.
    maven_repo_ignore: String = Some("*.md5 *.sha1 maven-metadata*.xml _maven.repositories _remote.repositories resolver-status.properties *.lastUpdated"), secret false, containers "Ignored: maven tasks are not supported.";
    /// Seconds an oz image install may take.
    oz_install_timeout: Seconds = Some("0"), secret false, containers "Ignored: image tasks are not supported.";
    /// xz options for image builds.
    xz_options: String = Some("-z6T0"), secret false, containers "Ignored: image tasks are not supported.";
    /// Allow image tasks to skip TLS verification.
    allow_noverifyssl: bool = Some("False"), secret false, containers "Ignored: image tasks are not supported.";
    /// Mail relay for notifications.
    smtphost: String = Some("example.com"), secret false, containers "";
    /// SMTP user (needs `smtp_pass`).
    smtp_user: Option<String> = None, secret false, containers "";
    /// SMTP password (needs `smtp_user`).
    smtp_pass: Option<String> = None, secret true, containers "";
    /// From address of notification mails.
    from_addr: String = Some("Koji Build System <buildsys@example.com>"), secret false, containers "";
    /// Comma-separated addresses that get error log records by mail.
    admin_emails: Option<String> = None, secret false, containers "Accepted; error log records are not mailed yet.";
    /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (unset means WARNING).
    log_level: Option<LogLevel> = None, secret false, containers "";
    /// SSL login certificate, PEM with the key (default `/etc/kojid/client.crt` if that file exists).
    cert: Option<PathBuf> = None, secret false, containers "";
    /// CA bundle for the hub (default `/etc/kojid/serverca.crt` if that file exists).
    serverca: Option<PathBuf> = None, secret false, containers "";
    /// Disable TLS verification of the hub (ignored when `serverca` is set).
    no_ssl_verify: bool = Some("False"), secret false, containers "";
    /// User for password login.
    user: Option<String> = None, secret false, containers "";
    /// Password for password login.
    password: Option<String> = None, secret true, containers "";
    /// Explicit Kerberos principal.
    krb_principal: Option<String> = None, secret false, containers "";
    /// Kerberos host principal; `%s` is the FQDN.
    host_principal_format: String = Some("compile/%s@EXAMPLE.COM"), secret false, containers "";
    /// Kerberos keytab.
    keytab: PathBuf = Some("/etc/kojid/kojid.keytab"), secret false, containers "";
    /// Kerberos credential cache.
    ccache: PathBuf = Some("/var/tmp/kojid.ccache"), secret false, containers "";
    /// Retries of a failed hub call.
    max_retries: u64 = Some("120"), secret false, containers "";
    /// Seconds between retries of a failed hub call.
    retry_interval: Seconds = Some("60"), secret false, containers "";
    /// Retry for ever while the hub reports it is offline.
    offline_retry: bool = Some("True"), secret false, containers "";
    /// Seconds between retries while the hub is offline.
    offline_retry_interval: Seconds = Some("120"), secret false, containers "";
    /// Per-request timeout in seconds (unset means 43200).
    timeout: Option<Seconds> = None, secret false, containers "";
    /// Upload with `rawUpload` rather than base64 `uploadFile`.
    use_fast_upload: bool = Some("True"), secret false, containers "";
    /// Builder plugins to load, whitespace-separated.
    plugin: WordList = Some(""), secret false, containers "Python builder plugins cannot be loaded; a non-empty list is reported by `check-config` and `doctor`.";
    /// Same as `plugin`.
    plugins: WordList = Some(""), secret false, containers "Python builder plugins cannot be loaded; a non-empty list is reported by `check-config` and `doctor`.";
    /// Colon-separated plugin search path.
    pluginpath: String = Some("/usr/lib/koji-builder-plugins"), secret false, containers "Ignored: Python builder plugins cannot be loaded.";
    /// Obsolete; kojid only warns.
    pkgurl: Option<String> = None, secret false, containers "Obsolete: only a warning is logged.";
}

settings! {
    /// The adjutant's own settings, from `[adjutant]`, `adjutant_<key>` in `[kojid]`, or
    /// `KOJI_ADJUTANT_<KEY>`.
    pub struct AdjutantSettings in Section::Adjutant, table ADJUTANT_KEYS;

    /// Image for tasks whose tag has no image policy.
    task_image_default: String = Some("localhost/koji-adjutant-builder:latest"), secret false, containers "The image scripts/build-image.sh builds locally; production uses a Fedora/RHEL image.";
    /// When to pull task images: if-not-present, always or never.
    image_pull_policy: ImagePullPolicy = Some("if-not-present"), secret false, containers "";
    /// Container timeouts in seconds: `pull` (image pull), `start` (until running), `stop_grace` (SIGTERM before SIGKILL).
    container_timeouts: ContainerTimeouts = Some("pull=300,start=60,stop_grace=20"), secret false, containers "";
    /// Choose task images from the hub's tag policy (`adjutant_image_policy` tag extra).
    policy_enabled: bool = Some("true"), secret false, containers "";
    /// Seconds a tag's image policy is cached.
    policy_cache_ttl: Seconds = Some("300"), secret false, containers "";
    /// podman network for the build step (`none` cuts builds off the network).
    build_network: String = Some("none"), secret false, containers "";
    /// podman network for installing the buildroot's dependencies.
    buildroot_network: String = Some("host"), secret false, containers "";
    /// Extra bind mounts for every task container: `SRC:DST[:ro|rw[:z|Z|none]]`, separated by spaces or commas.
    container_mounts: MountList = Some(""), secret false, containers "";
    /// Extra labels for every task container: `key=value,key2=value2`.
    container_labels: LabelMap = Some(""), secret false, containers "";
    /// SELinux relabelling of bind mounts: `z` (shared), `Z` (private) or `none`.
    selinux_label: SelinuxLabel = Some("z"), secret false, containers "";
    /// Numeric `UID:GID` the build runs as inside the container.
    build_user: UidGid = Some("1000:1000"), secret false, containers "";
    /// Memory limit per task container (podman `--memory`, e.g. `4g`); unset means none.
    memory_limit: Option<MemorySize> = None, secret false, containers "";
    /// CPU limit per task container (podman `--cpus`); unset means none.
    cpu_limit: Option<f64> = None, secret false, containers "";
    /// Process limit per task container (podman `--pids-limit`); unset means podman's default.
    pids_limit: Option<u64> = None, secret false, containers "";
    /// The podman binary.
    podman: PathBuf = Some("podman"), secret false, containers "";
    /// Name of this worker on containers and in monitoring; unset means the host name the hub knows this worker by.
    worker_id: Option<String> = None, secret false, containers "";
    /// How buildroots are made: `image` (from the task image) or `installroot` (install the build group into an empty root, as mock does).
    buildroot_mode: BuildrootMode = Some("image"), secret false, containers "";
    /// `installroot` mode: give the build steps the container's `/proc` and `/sys` in the root, as mock does (a bind mount in the build user's own namespaces; no capability is added). `false` leaves them empty directories, for a host whose security policy refuses that mount (init says so).
    installroot_proc: bool = Some("true"), secret false, containers "";
    /// Where the repo tasks run createrepo_c, mergerepo_c and dnf: `container` (a read-only-topdir tool container) or `host` (the host's binaries, as the unprivileged tool user, without container isolation).
    repo_tools: RepoTools = Some("container"), secret false, containers "`host` needs createrepo_c/mergerepo_c on the worker; see docs/repo-tasks.md for the trade-off.";
    /// `image` mode: report the rpms that came with the task image in setBuildRootList as rpms of this hub external repo, given as `ID:NAME[:URL]` (`koji list-external-repos`); unset leaves them out of the list and only in `image_rpms.log`.
    image_rpms_external_repo: Option<String> = None, secret false, containers "";
    /// Keep a cache of downloaded packages between buildroots.
    buildroot_cache_enabled: bool = Some("true"), secret false, containers "";
    /// Directory of the buildroot package cache.
    buildroot_cache_dir: PathBuf = Some("/var/cache/koji-adjutant/buildroot"), secret false, containers "";
    /// Seconds a cached package is kept after its last use.
    buildroot_cache_max_age: Seconds = Some("604800"), secret false, containers "";
    /// Serve the status page, API and metrics.
    monitoring_enabled: bool = Some("true"), secret false, containers "";
    /// Address and port of the monitoring server.
    monitoring_bind: SocketAddr = Some("127.0.0.1:8080"), secret false, containers "";
    /// Bearer token required by the monitoring API; unset means no authentication.
    monitoring_token: Option<String> = None, secret true, containers "";
    /// The hub's web UI (e.g. https://koji.example.com/koji); task ids on /status link to it.
    weburl: Option<String> = None, secret false, containers "";
    /// Seconds a finished task stays listed in monitoring.
    monitoring_task_history_ttl: Seconds = Some("86400"), secret false, containers "";
    /// Seconds a removed container stays listed in monitoring.
    monitoring_container_history_ttl: Seconds = Some("3600"), secret false, containers "";
    /// Seconds to let running tasks finish after SIGTERM before they are freed; 0 frees them at once, as kojid does.
    drain_timeout: Seconds = Some("0"), secret false, containers "";
    /// Log format: `text` (kojid's shape) or `json` (one object per line).
    log_format: LogFormat = Some("text"), secret false, containers "";
}

/// Keys of the earlier Python adjutant that have no meaning here: accepted with a warning so
/// an old `kojid.conf` still loads. Each maps to what replaces it.
pub static LEGACY_ADJUTANT_KEYS: &[(&str, &str)] = &[
    (
        "network_enabled",
        "use `build_network` (`none` or a podman network) instead",
    ),
    (
        "podman_socket",
        "podman is driven through its CLI; set `podman` to the binary if it is not on PATH",
    ),
    (
        "buildroot_enabled",
        "buildroots are always prepared; see `buildroot_mode`",
    ),
];

/// All definitions, `[kojid]` first.
pub fn all_keys() -> impl Iterator<Item = &'static KeyDef> {
    KOJID_KEYS.iter().chain(ADJUTANT_KEYS.iter())
}

pub fn find(section: Section, name: &str) -> Option<&'static KeyDef> {
    let table = match section {
        Section::Kojid => KOJID_KEYS,
        Section::Adjutant => ADJUTANT_KEYS,
    };
    table.iter().find(|def| def.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_valid_for_its_type() {
        for def in all_keys() {
            if let Some(default) = def.default {
                assert!(
                    def.validate(default).is_ok(),
                    "default of {} does not parse",
                    def.name
                );
            }
        }
    }

    #[test]
    fn only_server_and_topurl_are_required() {
        let required: Vec<_> = all_keys()
            .filter(|d| d.required())
            .map(|d| d.name)
            .collect();
        assert_eq!(required, ["server", "topurl"]);
    }

    #[test]
    fn build_reports_bad_and_missing_values() {
        let err = KojidSettings::build(|key| (key == "maxjobs").then_some("ten")).unwrap_err();
        assert!(err.contains(&BuildProblem::Missing { key: "server" }));
        assert!(
            err.iter()
                .any(|p| matches!(p, BuildProblem::Invalid { key: "maxjobs", .. }))
        );
    }
}
