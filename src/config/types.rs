//! The value types a setting can have, each parsing a raw string the way kojid does (Python
//! `int()`, ConfigParser booleans) or, for adjutant settings, in one documented format.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// A value type of the settings table. `parse` gets the stripped raw value and returns what
/// was expected when it does not fit, to be put in the error message.
pub trait SettingType: Sized {
    /// The type as the config reference names it.
    const TYPE_NAME: &'static str;
    fn parse(raw: &str) -> Result<Self, String>;
    /// The value when the key is set nowhere and has no default; `None` means required.
    fn absent() -> Option<Self> {
        None
    }
}

impl<T: SettingType> SettingType for Option<T> {
    const TYPE_NAME: &'static str = T::TYPE_NAME;
    fn parse(raw: &str) -> Result<Self, String> {
        T::parse(raw).map(Some)
    }
    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl SettingType for String {
    const TYPE_NAME: &'static str = "string";
    fn parse(raw: &str) -> Result<Self, String> {
        Ok(raw.to_string())
    }
}

impl SettingType for PathBuf {
    const TYPE_NAME: &'static str = "path";
    fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("a path, not an empty value".to_string());
        }
        Ok(PathBuf::from(raw))
    }
}

/// Python's `int()` on a stripped string: optional sign, ASCII digits, single underscores
/// between digits.
pub fn python_int(raw: &str) -> Option<i128> {
    let (negative, digits) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut value: i128 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let digit = c.to_digit(10)?;
        value = value.checked_mul(10)?.checked_add(i128::from(digit))?;
    }
    Some(if negative { -value } else { value })
}

impl SettingType for i64 {
    const TYPE_NAME: &'static str = "integer";
    fn parse(raw: &str) -> Result<Self, String> {
        python_int(raw)
            .and_then(|v| i64::try_from(v).ok())
            .ok_or_else(|| "a whole number such as 10 (no units, no inline comment)".to_string())
    }
}

impl SettingType for u64 {
    const TYPE_NAME: &'static str = "non-negative integer";
    fn parse(raw: &str) -> Result<Self, String> {
        python_int(raw)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| {
                "a whole number of 0 or more such as 10 (no units, no inline comment)".to_string()
            })
    }
}

impl SettingType for f64 {
    const TYPE_NAME: &'static str = "positive number";
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
            _ => Err("a number greater than 0 such as 2 or 1.5".to_string()),
        }
    }
}

impl SettingType for bool {
    const TYPE_NAME: &'static str = "boolean";
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.to_lowercase().as_str() {
            "1" | "yes" | "true" | "on" => Ok(true),
            "0" | "no" | "false" | "off" => Ok(false),
            _ => Err("a boolean: one of 1, yes, true, on, 0, no, false, off".to_string()),
        }
    }
}

/// A number of seconds, written as a plain integer like kojid's timing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Seconds(pub u64);

impl Seconds {
    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl SettingType for Seconds {
    const TYPE_NAME: &'static str = "seconds";
    fn parse(raw: &str) -> Result<Self, String> {
        u64::parse(raw)
            .map(Seconds)
            .map_err(|_| "a whole number of seconds such as 300 (no unit suffix)".to_string())
    }
}

/// A whitespace-separated list (kojid splits `topurl`, `allowed_scms`, `plugins` this way).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WordList(pub Vec<String>);

impl SettingType for WordList {
    const TYPE_NAME: &'static str = "whitespace-separated list";
    fn parse(raw: &str) -> Result<Self, String> {
        Ok(WordList(
            raw.split_whitespace().map(str::to_string).collect(),
        ))
    }
}

/// An http(s) URL, checked early so a typo fails at start-up, not at the first hub call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpUrl(pub String);

fn check_url(raw: &str) -> Result<(), String> {
    match url::Url::parse(raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err("an http:// or https:// URL such as https://koji.example.com/kojihub".to_string()),
    }
}

impl SettingType for HttpUrl {
    const TYPE_NAME: &'static str = "URL";
    fn parse(raw: &str) -> Result<Self, String> {
        check_url(raw).map(|()| HttpUrl(raw.to_string()))
    }
}

/// `topurl`: one or more file-server URLs separated by whitespace; the first one is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UrlList(pub Vec<String>);

impl UrlList {
    /// The URL kojid uses as `topurl`; the list is never empty once parsed.
    pub fn first(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or_default()
    }
}

impl SettingType for UrlList {
    const TYPE_NAME: &'static str = "URL list";
    fn parse(raw: &str) -> Result<Self, String> {
        let urls: Vec<String> = raw.split_whitespace().map(str::to_string).collect();
        if urls.is_empty() {
            return Err("one or more http(s) URLs separated by spaces".to_string());
        }
        for url in &urls {
            check_url(url).map_err(|_| {
                format!("http:// or https:// URLs separated by spaces; {url:?} is not one")
            })?;
        }
        Ok(UrlList(urls))
    }
}

/// A `host:port` to listen on.
impl SettingType for SocketAddr {
    const TYPE_NAME: &'static str = "address:port";
    fn parse(raw: &str) -> Result<Self, String> {
        raw.parse()
            .map_err(|_| "an IP address and port such as 127.0.0.1:8080 or [::1]:8080".to_string())
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $type_name:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const CHOICES: &'static [&'static str] = &[$($text),+];
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl SettingType for $name {
            const TYPE_NAME: &'static str = $type_name;
            fn parse(raw: &str) -> Result<Self, String> {
                match raw {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(format!("one of {}", Self::CHOICES.join(", "))),
                }
            }
        }
    };
}

string_enum!(
    /// When to pull a task image.
    ImagePullPolicy, "one of if-not-present, always, never", {
    IfNotPresent => "if-not-present",
    Always => "always",
    Never => "never",
});

string_enum!(
    /// The SELinux relabel option on bind mounts: shared (`z`), private (`Z`), or none.
    SelinuxLabel, "one of z, Z, none", {
    Shared => "z",
    Private => "Z",
    None => "none",
});

string_enum!(
    /// The log line format.
    LogFormat, "one of text, json", {
    Text => "text",
    Json => "json",
});

string_enum!(
    /// How a buildroot is made: from a prepared image, or by installing the build group into
    /// an empty root (mock's way).
    BuildrootMode, "one of image, installroot", {
    Image => "image",
    Installroot => "installroot",
});

string_enum!(
    /// Where the repo tools (createrepo_c, mergerepo_c, dnf) run: in the task's tool container,
    /// or directly on the host as an unprivileged user.
    RepoTools, "one of container, host", {
    Container => "container",
    Host => "host",
});

/// `log_level`: Python logging level names, any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl SettingType for LogLevel {
    const TYPE_NAME: &'static str = "one of DEBUG, INFO, WARNING, ERROR, CRITICAL";
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.to_uppercase().as_str() {
            "DEBUG" => Ok(Self::Debug),
            "INFO" => Ok(Self::Info),
            "WARNING" | "WARN" => Ok(Self::Warning),
            "ERROR" => Ok(Self::Error),
            "CRITICAL" | "FATAL" => Ok(Self::Critical),
            _ => Err("one of DEBUG, INFO, WARNING, ERROR, CRITICAL".to_string()),
        }
    }
}

/// `container_timeouts`: `pull=300,start=60,stop_grace=20`; names left out keep their default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContainerTimeouts {
    pub pull: Duration,
    pub start: Duration,
    pub stop_grace: Duration,
}

impl Default for ContainerTimeouts {
    fn default() -> Self {
        Self {
            pull: Duration::from_secs(300),
            start: Duration::from_secs(60),
            stop_grace: Duration::from_secs(20),
        }
    }
}

impl SettingType for ContainerTimeouts {
    const TYPE_NAME: &'static str = "pull=S,start=S,stop_grace=S";
    fn parse(raw: &str) -> Result<Self, String> {
        const EXPECTED: &str = "comma-separated NAME=SECONDS pairs with NAME one of pull, start, stop_grace, e.g. pull=300,start=60,stop_grace=20";
        let mut timeouts = Self::default();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or(EXPECTED)?;
            let seconds = Seconds::parse(value.trim()).map_err(|_| EXPECTED)?;
            let slot = match name.trim() {
                "pull" => &mut timeouts.pull,
                "start" => &mut timeouts.start,
                "stop_grace" => &mut timeouts.stop_grace,
                _ => return Err(EXPECTED.to_string()),
            };
            *slot = seconds.as_duration();
        }
        Ok(timeouts)
    }
}

/// One extra bind mount for every task container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
    /// Overrides `selinux_label` for this mount when set.
    pub label: Option<SelinuxLabel>,
}

/// `container_mounts`: whitespace- or comma-separated `SRC:DST[:ro|rw[:z|Z|none]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MountList(pub Vec<Mount>);

impl SettingType for MountList {
    const TYPE_NAME: &'static str = "list of SRC:DST[:ro|rw[:z|Z|none]]";
    fn parse(raw: &str) -> Result<Self, String> {
        let mut mounts = Vec::new();
        for spec in raw
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let expected = || {
                format!(
                    "mounts written as /host/path:/container/path[:ro|rw[:z|Z|none]], separated by spaces or commas; {spec:?} is not one"
                )
            };
            let parts: Vec<&str> = spec.split(':').collect();
            if !(2..=4).contains(&parts.len())
                || !parts[0].starts_with('/')
                || !parts[1].starts_with('/')
            {
                return Err(expected());
            }
            let read_only = match parts.get(2) {
                None | Some(&"rw") => false,
                Some(&"ro") => true,
                Some(_) => return Err(expected()),
            };
            let label = match parts.get(3) {
                None => None,
                Some(text) => Some(SelinuxLabel::parse(text).map_err(|_| expected())?),
            };
            mounts.push(Mount {
                source: PathBuf::from(parts[0]),
                target: PathBuf::from(parts[1]),
                read_only,
                label,
            });
        }
        Ok(MountList(mounts))
    }
}

/// `container_labels`: `key=value,key2=value2`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LabelMap(pub BTreeMap<String, String>);

impl SettingType for LabelMap {
    const TYPE_NAME: &'static str = "list of KEY=VALUE";
    fn parse(raw: &str) -> Result<Self, String> {
        let mut labels = BTreeMap::new();
        for part in raw
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match part.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    labels.insert(key.trim().to_string(), value.trim().to_string());
                }
                _ => {
                    return Err(format!(
                        "comma-separated KEY=VALUE pairs such as team=infra,site=brq; {part:?} is not one"
                    ));
                }
            }
        }
        Ok(LabelMap(labels))
    }
}

/// `build_user`: numeric `UID:GID` the build runs as inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UidGid {
    pub uid: u32,
    pub gid: u32,
}

impl SettingType for UidGid {
    const TYPE_NAME: &'static str = "UID:GID";
    fn parse(raw: &str) -> Result<Self, String> {
        let expected = || "numeric UID:GID such as 1000:1000".to_string();
        let (uid, gid) = raw.split_once(':').ok_or_else(expected)?;
        Ok(Self {
            uid: uid.parse().map_err(|_| expected())?,
            gid: gid.parse().map_err(|_| expected())?,
        })
    }
}

/// `memory_limit`: a podman `--memory` size: a number with an optional b, k, m or g unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemorySize(pub String);

impl SettingType for MemorySize {
    const TYPE_NAME: &'static str = "size (e.g. 4g)";
    fn parse(raw: &str) -> Result<Self, String> {
        let lower = raw.to_lowercase();
        let digits = lower.trim_end_matches(['b', 'k', 'm', 'g']);
        let unit_len = lower.len() - digits.len();
        if digits.is_empty() || unit_len > 1 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err("a size such as 4g, 512m or 1073741824 (units b, k, m, g)".to_string());
        }
        Ok(MemorySize(lower))
    }
}

/// One `RLIMIT_*` setting: `soft [hard]`, as kojid applies with `setrlimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rlimit {
    pub soft: u64,
    pub hard: Option<u64>,
}

/// The resource names Python's `resource` module knows on Linux.
pub const RLIMIT_NAMES: &[&str] = &[
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_CPU",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "RLIMIT_RSS",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING",
    "RLIMIT_STACK",
];

impl SettingType for Rlimit {
    const TYPE_NAME: &'static str = "SOFT [HARD]";
    fn parse(raw: &str) -> Result<Self, String> {
        let expected =
            || "one or two whole numbers, `SOFT` or `SOFT HARD`, such as 4096 8192".to_string();
        let numbers: Vec<&str> = raw.split_whitespace().collect();
        let number = |text: &str| u64::parse(text).map_err(|_| expected());
        match numbers.as_slice() {
            [soft] => Ok(Self {
                soft: number(soft)?,
                hard: None,
            }),
            [soft, hard] => {
                let (soft, hard) = (number(soft)?, number(hard)?);
                if soft > hard {
                    return Err("a soft limit no larger than the hard limit".to_string());
                }
                Ok(Self {
                    soft,
                    hard: Some(hard),
                })
            }
            _ => Err(expected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_accepts_what_int_accepts() {
        assert_eq!(python_int("+1_000"), Some(1000));
        assert_eq!(python_int("-5"), Some(-5));
        assert_eq!(python_int("1__0"), None);
        assert_eq!(python_int("0x10"), None);
        assert_eq!(python_int("10 ; comment"), None);
    }

    #[test]
    fn timeouts_keep_defaults_for_missing_names() {
        let t = ContainerTimeouts::parse("pull=10").unwrap();
        assert_eq!(t.pull, Duration::from_secs(10));
        assert_eq!(t.stop_grace, Duration::from_secs(20));
        assert!(ContainerTimeouts::parse("pull=10s").is_err());
    }

    #[test]
    fn mounts_parse_modes_and_labels() {
        let m = MountList::parse("/a:/b:ro:Z, /c:/d").unwrap();
        assert!(m.0[0].read_only);
        assert_eq!(m.0[0].label, Some(SelinuxLabel::Private));
        assert!(!m.0[1].read_only);
        assert!(MountList::parse("a:/b").is_err());
    }

    #[test]
    fn rlimit_rejects_soft_above_hard() {
        assert!(Rlimit::parse("10 5").is_err());
        assert_eq!(Rlimit::parse("5").unwrap().hard, None);
    }
}
