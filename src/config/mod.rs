//! Reading `kojid.conf` exactly as kojid does, plus the adjutant's own settings.
//!
//! `load` reads the file (or a directory of `*.conf` files in sorted order) with Python
//! `RawConfigParser` rules (`ini`), checks every key against the one table of definitions
//! (`keys`), resolves each value by precedence and remembers where it came from, so that
//! `check-config` can show the source of every effective value.

pub mod ini;
pub mod keys;
pub mod reference;
pub mod rlimits;
pub mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use keys::{AdjutantSettings, KeyDef, KojidSettings, Section};
pub use types::Rlimit;

use ini::{IniDocument, IniEntry, IniError};
use keys::BuildProblem;

/// Where kojid looks when no `-c` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/kojid/kojid.conf";
/// Names the config path when no `-c` is given.
pub const CONFIG_ENV_VAR: &str = "KOJI_CONFIG";
/// Prefix of the environment variables that set adjutant keys.
pub const ENV_PREFIX: &str = "KOJI_ADJUTANT_";
/// kojid's implicit defaults for `cert` and `serverca`, used only if the files exist.
pub const DEFAULT_CERT: &str = "/etc/kojid/client.crt";
pub const DEFAULT_SERVERCA: &str = "/etc/kojid/serverca.crt";

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    Default,
    File { file: PathBuf, line: usize },
    Env { var: String },
    Flag { flag: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { file, line } => write!(f, "{}:{line}", file.display()),
            Source::Env { var } => write!(f, "env {var}"),
            Source::Flag { flag } => write!(f, "flag {flag}"),
        }
    }
}

/// A value set on the command line: `key` is a table key (`maxjobs`, `log_format`, or
/// `adjutant_<key>`), `flag` is how the user wrote it, for provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub key: String,
    pub value: String,
    pub flag: String,
}

/// Everything `load` reads: the path, the command-line overrides and the environment.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// `-c PATH`; when `None`, `KOJI_CONFIG` from `env`, then `/etc/kojid/kojid.conf`.
    pub path: Option<PathBuf>,
    pub overrides: Vec<Override>,
    /// The environment; only `KOJI_CONFIG` and `KOJI_ADJUTANT_*` are read.
    pub env: BTreeMap<String, String>,
}

impl ConfigSource {
    /// A source with the process environment.
    pub fn from_process_env(path: Option<PathBuf>, overrides: Vec<Override>) -> Self {
        let env = std::env::vars()
            .filter(|(k, _)| k == CONFIG_ENV_VAR || k.starts_with(ENV_PREFIX))
            .collect();
        Self {
            path,
            overrides,
            env,
        }
    }

    /// The path that will be read, and what named it.
    pub fn resolved_path(&self) -> (PathBuf, &'static str) {
        if let Some(path) = &self.path {
            (path.clone(), "-c")
        } else if let Some(path) = self.env.get(CONFIG_ENV_VAR).filter(|p| !p.is_empty()) {
            (PathBuf::from(path), CONFIG_ENV_VAR)
        } else {
            (PathBuf::from(DEFAULT_CONFIG_PATH), "the default path")
        }
    }
}

/// One effective setting as `check-config` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveValue {
    pub section: Section,
    pub key: String,
    /// The raw value as written (or the default); `None` when unset.
    pub value: Option<String>,
    pub source: Source,
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub secret: bool,
    /// How the key maps for containers, when that differs from kojid.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub note: &'static str,
}

impl EffectiveValue {
    /// The value fit to print: secrets that are set become `********`.
    pub fn display_value(&self) -> Option<&str> {
        match (&self.value, self.secret) {
            (Some(_), true) => Some("********"),
            (Some(value), false) => Some(value),
            (None, _) => None,
        }
    }
}

/// One `RLIMIT_*` key, upper-cased as kojid's `setup_rlimits` looks them up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RlimitSetting {
    pub name: String,
    pub limit: Rlimit,
    pub raw: String,
    pub source: Source,
}

/// The loaded configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub kojid: KojidSettings,
    pub adjutant: AdjutantSettings,
    pub rlimits: Vec<RlimitSetting>,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Every key of both tables, in table order, with its source.
    pub values: Vec<EffectiveValue>,
    /// Things that load but deserve the operator's attention.
    pub warnings: Vec<String>,
}

impl Config {
    pub fn value(&self, section: Section, key: &str) -> Option<&EffectiveValue> {
        self.values
            .iter()
            .find(|v| v.section == section && v.key == key)
    }

    /// The plugins kojid would load (`plugin` and `plugins` together).
    pub fn plugins(&self) -> Vec<String> {
        let mut all = self.kojid.plugin.0.clone();
        all.extend(self.kojid.plugins.0.iter().cloned());
        all
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    #[error(
        "{path}: config file not found (named by {named_by}); pass -c /path/to/kojid.conf or set {CONFIG_ENV_VAR}",
        path = path.display()
    )]
    NotFound { path: PathBuf, named_by: String },
    #[error("{path}: directory holds no *.conf files; put kojid.conf in it or pass -c with a file", path = path.display())]
    EmptyDirectory { path: PathBuf },
    #[error("{path}: cannot read: {reason}; check the path and its permissions", path = path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "{path}:{line}: the file is not valid UTF-8; save it as UTF-8",
        path = path.display()
    )]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("{0}")]
    Syntax(IniError),
    #[error(
        "{path}:{line}: invalid section [{section}]: only [kojid] and [adjutant] are allowed{hint}",
        path = path.display()
    )]
    InvalidSection {
        path: PathBuf,
        line: usize,
        section: String,
        hint: String,
    },
    #[error("{origin}: unknown config option {key:?} (value {value:?}){hint}")]
    UnknownKey {
        origin: Source,
        key: String,
        value: String,
        hint: String,
    },
    #[error("{origin}: invalid value {value:?} for {key}: expected {expected}")]
    InvalidValue {
        origin: Source,
        key: String,
        value: String,
        expected: String,
    },
    #[error(
        "the {key} option is required: set `{key} = {example}` in the [kojid] section of {path}{flag}",
        path = path.display()
    )]
    Missing {
        key: String,
        example: &'static str,
        path: PathBuf,
        flag: &'static str,
    },
}

impl ConfigProblem {
    /// The file and line a problem is on, when it is on one.
    pub fn location(&self) -> Option<(&Path, usize)> {
        match self {
            ConfigProblem::NotUtf8 { path, line } => Some((path, *line)),
            ConfigProblem::InvalidSection { path, line, .. } => Some((path, *line)),
            ConfigProblem::UnknownKey { origin, .. }
            | ConfigProblem::InvalidValue { origin, .. } => match origin {
                Source::File { file, line } => Some((file, *line)),
                _ => None,
            },
            ConfigProblem::Syntax(err) => err.lines.first().map(|l| (err.file.as_path(), l.line)),
            _ => None,
        }
    }
}

/// All problems found while loading; `load` reports every one it can, not only the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
    /// Warnings met on the way; they often explain a problem (e.g. an ignored [DEFAULT]).
    pub warnings: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl From<ConfigProblem> for ConfigError {
    fn from(problem: ConfigProblem) -> Self {
        Self {
            problems: vec![problem],
            warnings: Vec::new(),
        }
    }
}

/// Lists the files a path stands for: itself, or its `*.conf` files in sorted order.
pub fn config_files(path: &Path, named_by: &str) -> Result<Vec<PathBuf>, ConfigProblem> {
    let metadata = std::fs::metadata(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => ConfigProblem::NotFound {
            path: path.to_path_buf(),
            named_by: named_by.to_string(),
        },
        _ => ConfigProblem::Unreadable {
            path: path.to_path_buf(),
            reason: err.to_string(),
        },
    })?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|err| ConfigProblem::Unreadable {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "conf") && p.is_file())
        .collect();
    // Python's sorted() on str compares code points, which for UTF-8 is byte order.
    files.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    if files.is_empty() {
        return Err(ConfigProblem::EmptyDirectory {
            path: path.to_path_buf(),
        });
    }
    Ok(files)
}

/// Reads and merges the files in order, as `RawConfigParser.read` would.
pub fn read_files(files: &[PathBuf]) -> Result<IniDocument, ConfigProblem> {
    let mut document = IniDocument::default();
    for file in files {
        let bytes = std::fs::read(file).map_err(|err| ConfigProblem::Unreadable {
            path: file.clone(),
            reason: err.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|err| {
            let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
            ConfigProblem::NotUtf8 {
                path: file.clone(),
                line: valid.iter().filter(|b| **b == b'\n').count() + 1,
            }
        })?;
        document
            .read_str(&text, file)
            .map_err(ConfigProblem::Syntax)?;
    }
    Ok(document)
}

/// A raw value offered for a key by one layer.
#[derive(Debug, Clone)]
struct Candidate {
    value: String,
    source: Source,
}

fn closest(key: &str, names: impl Iterator<Item = String>) -> Option<String> {
    names
        .map(|name| (strsim::jaro_winkler(key, &name), name))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name)
}

fn kojid_section_names() -> impl Iterator<Item = String> {
    keys::KOJID_KEYS.iter().map(|d| d.name.to_string()).chain(
        keys::ADJUTANT_KEYS
            .iter()
            .map(|d| format!("adjutant_{}", d.name)),
    )
}

fn unknown_hint(key: &str, in_adjutant: bool) -> String {
    if in_adjutant {
        if keys::find(Section::Kojid, key).is_some() {
            return format!("; {key} is a kojid key: move it to the [kojid] section");
        }
        if let Some(stripped) = key.strip_prefix("adjutant_")
            && keys::find(Section::Adjutant, stripped).is_some()
        {
            return format!("; inside [adjutant] write it without the prefix: {stripped}");
        }
        return match closest(key, keys::ADJUTANT_KEYS.iter().map(|d| d.name.to_string())) {
            Some(name) => format!("; did you mean {name}?"),
            None => "; see docs/config-reference.md for the [adjutant] keys".to_string(),
        };
    }
    if matches!(key, "keepalive" | "ca") {
        return format!(
            "; upstream documents {key} but kojid rejects it as unknown too: remove it"
        );
    }
    if keys::find(Section::Adjutant, key).is_some() {
        return format!(
            "; {key} is an adjutant key: write it as adjutant_{key} in [kojid] or as {key} in [adjutant]"
        );
    }
    match closest(key, kojid_section_names()) {
        Some(name) => format!("; did you mean {name}?"),
        None => "; remove it or see docs/config-reference.md for the known keys".to_string(),
    }
}

/// Sorts raw values into per-key layers, reporting unknown keys and rlimits on the way.
#[derive(Default)]
struct Layers {
    kojid_file: BTreeMap<&'static str, Candidate>,
    adjutant_section: BTreeMap<&'static str, Candidate>,
    adjutant_prefixed: BTreeMap<&'static str, Candidate>,
    env: BTreeMap<&'static str, Candidate>,
    flags: BTreeMap<(Section, &'static str), Candidate>,
    rlimits: Vec<(String, Candidate)>,
}

fn file_source(entry: &IniEntry) -> Source {
    Source::File {
        file: entry.file.clone(),
        line: entry.line,
    }
}

/// Loads and checks the configuration.
pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
    let (path, named_by) = source.resolved_path();
    let files = config_files(&path, named_by)?;
    let document = read_files(&files)?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut layers = Layers::default();

    for section in &document.sections {
        if section.name != "kojid" && section.name != "adjutant" {
            let lower = section.name.trim().to_lowercase();
            let hint = if lower == "kojid" || lower == "adjutant" {
                format!("; section names are case-sensitive and exact: write [{lower}]")
            } else {
                "; move these keys into [kojid] or [adjutant]".to_string()
            };
            problems.push(ConfigProblem::InvalidSection {
                path: section.file.clone(),
                line: section.line,
                section: section.name.clone(),
                hint,
            });
        }
    }

    // [DEFAULT] merges into [kojid] only: kojid reads nothing else, and merging it into
    // [adjutant] would turn every kojid key there into an unknown adjutant key. Like kojid
    // (`if config.has_section('kojid')`), without a [kojid] section nothing is read.
    let mut kojid_entries: Vec<&IniEntry> = Vec::new();
    match document.section("kojid") {
        Some(section) => {
            kojid_entries.extend(section.entries.iter());
            for default in &document.defaults {
                if !kojid_entries.iter().any(|e| e.key == default.key) {
                    kojid_entries.push(default);
                }
            }
        }
        None => {
            if let Some(first) = document.defaults.first() {
                warnings.push(format!(
                    "{}: [DEFAULT] is ignored because there is no [kojid] section (kojid does the same); add a [kojid] section",
                    file_source(first)
                ));
            }
        }
    }
    for entry in kojid_entries {
        let candidate = Candidate {
            value: entry.value.clone(),
            source: file_source(entry),
        };
        if let Some(def) = keys::find(Section::Kojid, &entry.key) {
            layers.kojid_file.insert(def.name, candidate);
        } else if entry.key.starts_with("rlimit_") {
            let name = entry.key.to_uppercase();
            if types::RLIMIT_NAMES.contains(&name.as_str()) {
                layers.rlimits.push((name, candidate));
            } else {
                problems.push(ConfigProblem::UnknownKey {
                    origin: candidate.source,
                    key: entry.key.clone(),
                    value: entry.value.clone(),
                    hint: format!(
                        "; not a resource limit; known ones are {}",
                        types::RLIMIT_NAMES.join(", ")
                    ),
                });
            }
        } else if let Some(def) = entry
            .key
            .strip_prefix("adjutant_")
            .and_then(|k| keys::find(Section::Adjutant, k))
        {
            layers.adjutant_prefixed.insert(def.name, candidate);
        } else if let Some((old, replacement)) = entry.key.strip_prefix("adjutant_").and_then(|k| {
            keys::LEGACY_ADJUTANT_KEYS
                .iter()
                .find(|(name, _)| *name == k)
        }) {
            warnings.push(format!(
                "{}: adjutant_{old} is ignored: {replacement}",
                candidate.source
            ));
        } else {
            problems.push(ConfigProblem::UnknownKey {
                origin: candidate.source,
                key: entry.key.clone(),
                value: entry.value.clone(),
                hint: unknown_hint(&entry.key, false),
            });
        }
    }
    if let Some(section) = document.section("adjutant") {
        for entry in &section.entries {
            let candidate = Candidate {
                value: entry.value.clone(),
                source: file_source(entry),
            };
            if let Some(def) = keys::find(Section::Adjutant, &entry.key) {
                layers.adjutant_section.insert(def.name, candidate);
            } else if let Some((old, replacement)) = keys::LEGACY_ADJUTANT_KEYS
                .iter()
                .find(|(name, _)| *name == entry.key)
            {
                warnings.push(format!(
                    "{}: {old} is ignored: {replacement}",
                    candidate.source
                ));
            } else {
                problems.push(ConfigProblem::UnknownKey {
                    origin: candidate.source,
                    key: entry.key.clone(),
                    value: entry.value.clone(),
                    hint: unknown_hint(&entry.key, true),
                });
            }
        }
    }
    for (var, value) in &source.env {
        let Some(name) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        match keys::find(Section::Adjutant, &name.to_lowercase()) {
            Some(def) if name == name.to_uppercase() => {
                layers.env.insert(
                    def.name,
                    Candidate {
                        value: value.trim().to_string(),
                        source: Source::Env { var: var.clone() },
                    },
                );
            }
            _ => {
                let hint = closest(
                    &name.to_lowercase(),
                    keys::ADJUTANT_KEYS.iter().map(|d| d.name.to_string()),
                )
                .map(|n| format!(" (did you mean {ENV_PREFIX}{}?)", n.to_uppercase()))
                .unwrap_or_default();
                warnings.push(format!(
                    "environment variable {var} sets no known adjutant key and is ignored{hint}"
                ));
            }
        }
    }
    for flag in &source.overrides {
        let key = flag.key.to_lowercase();
        let candidate = Candidate {
            value: flag.value.trim().to_string(),
            source: Source::Flag {
                flag: flag.flag.clone(),
            },
        };
        let def = keys::find(Section::Kojid, &key)
            .or_else(|| keys::find(Section::Adjutant, &key))
            .or_else(|| {
                key.strip_prefix("adjutant_")
                    .and_then(|k| keys::find(Section::Adjutant, k))
            });
        match def {
            Some(def) => {
                layers.flags.insert((def.section, def.name), candidate);
            }
            None => problems.push(ConfigProblem::UnknownKey {
                origin: candidate.source,
                key: flag.key.clone(),
                value: flag.value.clone(),
                hint: unknown_hint(&key, false),
            }),
        }
    }

    for (name, prefixed) in &layers.adjutant_prefixed {
        if let Some(plain) = layers.adjutant_section.get(name) {
            warnings.push(format!(
                "{name} is set twice: in [adjutant] at {} and as adjutant_{name} in [kojid] at {}; the [adjutant] value wins, remove one of them",
                plain.source, prefixed.source
            ));
        }
    }

    // Pick each key's winner by precedence and check it.
    let mut values = Vec::new();
    let mut winners: BTreeMap<(Section, &'static str), String> = BTreeMap::new();
    for def in keys::all_keys() {
        let winner = match def.section {
            Section::Kojid => layers
                .flags
                .get(&(Section::Kojid, def.name))
                .or_else(|| layers.kojid_file.get(def.name)),
            Section::Adjutant => layers
                .flags
                .get(&(Section::Adjutant, def.name))
                .or_else(|| layers.env.get(def.name))
                .or_else(|| layers.adjutant_section.get(def.name))
                .or_else(|| layers.adjutant_prefixed.get(def.name)),
        };
        let (value, source) = match winner {
            Some(candidate) => {
                if let Err(expected) = def.validate(&candidate.value) {
                    problems.push(ConfigProblem::InvalidValue {
                        origin: candidate.source.clone(),
                        key: def.name.to_string(),
                        value: candidate.value.clone(),
                        expected,
                    });
                }
                winners.insert((def.section, def.name), candidate.value.clone());
                (Some(candidate.value.clone()), candidate.source.clone())
            }
            None => (def.default.map(str::to_string), Source::Default),
        };
        values.push(EffectiveValue {
            section: def.section,
            key: def.name.to_string(),
            value,
            source,
            type_name: def.type_name,
            secret: def.secret,
            note: def.container_note,
        });
    }

    // kojid's implicit cert/serverca: the well-known files, but only when they exist.
    for (key, default) in [("cert", DEFAULT_CERT), ("serverca", DEFAULT_SERVERCA)] {
        if !winners.contains_key(&(Section::Kojid, key)) && Path::new(default).is_file() {
            winners.insert((Section::Kojid, key), default.to_string());
            if let Some(v) = values
                .iter_mut()
                .find(|v| v.section == Section::Kojid && v.key == key)
            {
                v.value = Some(default.to_string());
            }
        }
    }

    let mut rlimits = Vec::new();
    for (name, candidate) in layers.rlimits {
        match <Rlimit as types::SettingType>::parse(&candidate.value) {
            Ok(limit) => rlimits.push(RlimitSetting {
                name,
                limit,
                raw: candidate.value,
                source: candidate.source,
            }),
            Err(expected) => problems.push(ConfigProblem::InvalidValue {
                origin: candidate.source,
                key: name,
                value: candidate.value,
                expected,
            }),
        }
    }

    let kojid = KojidSettings::build(|key| winners.get(&(Section::Kojid, key)).map(String::as_str));
    let adjutant =
        AdjutantSettings::build(|key| winners.get(&(Section::Adjutant, key)).map(String::as_str));
    let first_file = files.first().cloned().unwrap_or(path);
    for result_problems in [kojid.as_ref().err(), adjutant.as_ref().err()]
        .into_iter()
        .flatten()
    {
        for problem in result_problems {
            // Invalid values were reported above with their source; only missing ones remain.
            if let BuildProblem::Missing { key } = problem {
                let (example, flag) = match *key {
                    "server" => ("https://koji.example.com/kojihub", " or pass --server URL"),
                    "topurl" => (
                        "https://koji.example.com/kojifiles",
                        " or pass --topurl URL",
                    ),
                    _ => ("VALUE", ""),
                };
                problems.push(ConfigProblem::Missing {
                    key: key.to_string(),
                    example,
                    path: first_file.clone(),
                    flag,
                });
            }
        }
    }
    match (kojid, adjutant) {
        (Ok(kojid), Ok(adjutant)) if problems.is_empty() => {
            if kojid.pkgurl.is_some() {
                warnings.push("pkgurl is obsolete and ignored; remove it".to_string());
            }
            let plugins: Vec<&str> = kojid
                .plugin
                .0
                .iter()
                .chain(kojid.plugins.0.iter())
                .map(String::as_str)
                .collect();
            if !plugins.is_empty() {
                warnings.push(format!(
                    "builder plugins {} cannot be loaded by koji-adjutant and are ignored",
                    plugins.join(", ")
                ));
            }
            Ok(Config {
                kojid,
                adjutant,
                rlimits,
                files,
                values,
                warnings,
            })
        }
        _ => {
            // Report in reading order, so the list walks down the files; problems without a
            // line (environment, flags, missing keys) come last.
            problems.sort_by_key(|problem| match problem.location() {
                Some((file, line)) => (files.iter().position(|f| f == file).unwrap_or(0), line),
                None => (usize::MAX, 0),
            });
            Err(ConfigError { problems, warnings })
        }
    }
}
