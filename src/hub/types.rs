//! Typed request and response structs for the hub calls the worker makes. Field names are
//! kojihub's; unknown fields are ignored so newer hubs keep working. Datetimes arrive as
//! strings, so the `*_ts` doubles are the fields to use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Free-form maps the hub really does leave open (tag `extra`, build `extra`, policy data).
pub type Extra = BTreeMap<String, serde_json::Value>;

macro_rules! int_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub enum $name { $($variant = $value),+ }

        impl TryFrom<i64> for $name {
            type Error = String;
            fn try_from(value: i64) -> Result<Self, Self::Error> {
                match value {
                    $($value => Ok($name::$variant),)+
                    other => Err(format!("{} {} is not a known state", stringify!($name), other)),
                }
            }
        }

        impl From<$name> for i64 {
            fn from(value: $name) -> i64 {
                value as i64
            }
        }

        impl $name {
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant),)+ }
            }
        }
    };
}

int_enum!(
    /// `TASK_STATES` (§8.1).
    TaskState { FREE = 0, OPEN = 1, CLOSED = 2, CANCELED = 3, ASSIGNED = 4, FAILED = 5 }
);
int_enum!(
    /// `BUILD_STATES`.
    BuildState { BUILDING = 0, COMPLETE = 1, DELETED = 2, FAILED = 3, CANCELED = 4 }
);
int_enum!(
    /// `REPO_STATES`.
    RepoState { INIT = 0, READY = 1, EXPIRED = 2, DELETED = 3, PROBLEM = 4 }
);
int_enum!(
    /// `BR_STATES` (buildroots).
    BuildrootState { INIT = 0, WAITING = 1, BUILDING = 2, EXPIRED = 3 }
);

/// `getTaskInfo` / `host.openTask` (§8.1). `request` is the decoded params from
/// `getTaskInfo(request=True)` or the raw methodCall XML from `host.openTask`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TaskInfo {
    pub id: i64,
    pub state: TaskState,
    pub method: String,
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub owner: Option<i64>,
    #[serde(default)]
    pub host_id: Option<i64>,
    #[serde(default)]
    pub channel_id: Option<i64>,
    #[serde(default)]
    pub parent: Option<i64>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub waiting: Option<bool>,
    #[serde(default)]
    pub awaited: Option<bool>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub create_ts: Option<f64>,
    #[serde(default)]
    pub start_ts: Option<f64>,
    #[serde(default)]
    pub completion_ts: Option<f64>,
    #[serde(default)]
    pub request: Option<TaskRequest>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TaskRequest {
    /// `host.openTask`: the stored methodCall document; decode with
    /// [`crate::hub::xmlrpc::decode_call`].
    Xml(String),
    /// `getTaskInfo(request=True)`: the params, kwargs struct still last.
    Params(Vec<serde_json::Value>),
}

/// `host.getHost` / `getHost`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct HostInfo {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub user_id: Option<i64>,
    /// Space-separated arches, e.g. `"noarch x86_64"`.
    #[serde(default)]
    pub arches: String,
    #[serde(default)]
    pub capacity: f64,
    #[serde(default)]
    pub task_load: f64,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub update_ts: Option<f64>,
}

impl HostInfo {
    pub fn arch_list(&self) -> Vec<&str> {
        self.arches.split_whitespace().collect()
    }
}

/// A host entry of `host.getLoadData` (legacy scheduling, ≤1.33).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct LoadDataHost {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arches: String,
    #[serde(default)]
    pub capacity: f64,
    #[serde(default)]
    pub task_load: f64,
    /// Channel ids.
    #[serde(default)]
    pub channels: Vec<i64>,
}

/// `host.getHostTasks`: OPEN tasks this host owns.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct HostTask {
    pub id: i64,
    #[serde(default)]
    pub waiting: Option<bool>,
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub alert: Option<bool>,
}

/// `host.getTasks` (≥1.34): tasks the scheduler assigned to this host.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AssignedTask {
    pub id: i64,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub state: Option<TaskState>,
    #[serde(default)]
    pub arch: Option<String>,
    #[serde(default)]
    pub channel_id: Option<i64>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub owner: Option<i64>,
}

/// `data` of `host.updateHost` / `host.setHostData` (≥1.35), as kojid sends it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct HostData {
    pub methods: Vec<String>,
    #[serde(flatten)]
    pub other: Extra,
}

/// `getSessionInfo()`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SessionDetails {
    pub user_id: i64,
    #[serde(default)]
    pub authtype: Option<i64>,
    #[serde(default)]
    pub exclusive: Option<bool>,
    #[serde(default)]
    pub expired: Option<bool>,
    #[serde(default)]
    pub master: Option<i64>,
    #[serde(default)]
    pub callnum: Option<i64>,
    #[serde(default)]
    pub start_ts: Option<f64>,
    #[serde(default)]
    pub update_ts: Option<f64>,
    #[serde(default)]
    pub renew_ts: Option<f64>,
}

/// `getBuildConfig(tag, event)` and `getTag`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TagInfo {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub arches: Option<String>,
    #[serde(default)]
    pub locked: bool,
    #[serde(default)]
    pub perm: Option<String>,
    #[serde(default)]
    pub perm_id: Option<i64>,
    #[serde(default)]
    pub maven_support: bool,
    #[serde(default)]
    pub maven_include_all: bool,
    #[serde(default)]
    pub extra: Extra,
    #[serde(default)]
    pub query_event: Option<i64>,
}

/// `getBuildTarget`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BuildTarget {
    pub id: i64,
    pub name: String,
    pub build_tag: i64,
    pub build_tag_name: String,
    pub dest_tag: i64,
    pub dest_tag_name: String,
}

/// `repoInfo`, `getRepo`, `repo.request`'s `repo`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RepoInfo {
    pub id: i64,
    pub state: RepoState,
    #[serde(default)]
    pub create_event: Option<i64>,
    #[serde(default)]
    pub create_ts: Option<f64>,
    #[serde(default)]
    pub tag_id: Option<i64>,
    #[serde(default)]
    pub tag_name: Option<String>,
    #[serde(default)]
    pub dist: bool,
    #[serde(default)]
    pub task_id: Option<i64>,
    #[serde(default)]
    pub begin_event: Option<i64>,
    #[serde(default)]
    pub end_event: Option<i64>,
    #[serde(default)]
    pub opts: Option<Extra>,
}

/// `repo.request` (≥1.35).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RepoRequestReply {
    #[serde(default)]
    pub repo: Option<RepoInfo>,
    #[serde(default)]
    pub request: Option<Extra>,
    #[serde(default)]
    pub duplicate: bool,
}

/// `listBuildroots` entries.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BuildrootInfo {
    pub id: i64,
    #[serde(default)]
    pub state: Option<BuildrootState>,
    #[serde(default)]
    pub arch: Option<String>,
    #[serde(default)]
    pub host_id: Option<i64>,
    #[serde(default)]
    pub repo_id: Option<i64>,
    #[serde(default)]
    pub tag_name: Option<String>,
    #[serde(default)]
    pub task_id: Option<i64>,
    #[serde(default)]
    pub retire_event_id: Option<i64>,
}

/// `getLastEvent`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct EventInfo {
    pub id: i64,
    pub ts: f64,
}

/// `listChannels`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ChannelInfo {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `checkUpload`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct UploadCheck {
    pub size: i64,
    #[serde(default)]
    pub mtime: Option<f64>,
    #[serde(default)]
    pub sumlength: Option<i64>,
    #[serde(default)]
    pub hexdigest: Option<String>,
}

/// The reply to one `rawUpload` chunk.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawUploadReply {
    pub size: i64,
    #[serde(default)]
    pub fileverify: Option<String>,
    pub offset: i64,
    #[serde(default)]
    pub hexdigest: Option<String>,
}

/// One installed package for `host.setBuildRootList` / `host.updateBuildRootList`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BuildrootRpm {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub arch: String,
    pub payloadhash: String,
    pub size: i64,
    pub buildtime: i64,
    /// The rpm's id on the hub, for packages from the tag's own repo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The external repo's name, for packages from an external repo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// `host.initBuild(data)`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BuildData {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub task_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Extra>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft: Option<bool>,
}

/// Build info returned by `host.completeBuild` / `getBuild`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BuildInfo {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub release: String,
    pub nvr: String,
    pub state: BuildState,
    #[serde(default)]
    pub epoch: Option<i64>,
    #[serde(default)]
    pub task_id: Option<i64>,
    #[serde(default)]
    pub owner_name: Option<String>,
    #[serde(default)]
    pub extra: Option<Extra>,
}

/// `getPackageConfig`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PackageConfig {
    pub package_id: i64,
    pub package_name: String,
    #[serde(default)]
    pub tag_id: Option<i64>,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub owner_id: Option<i64>,
    #[serde(default)]
    pub owner_name: Option<String>,
    #[serde(default)]
    pub extra_arches: Option<String>,
}

/// `getExternalRepoList` entries.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExternalRepo {
    pub external_repo_id: i64,
    pub external_repo_name: String,
    pub url: String,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub merge_mode: Option<String>,
    #[serde(default)]
    pub arches: Option<String>,
}

/// `getFullInheritance` entries.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InheritanceEntry {
    pub parent_id: i64,
    pub child_id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub currdepth: Option<i64>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub maxdepth: Option<i64>,
    #[serde(default)]
    pub intransitive: bool,
    #[serde(default)]
    pub noconfig: bool,
    #[serde(default)]
    pub pkg_filter: Option<String>,
}

/// Options of `host.subtask(method, arglist, parent, **opts)`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SubtaskOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::xmlrpc::{decode_response, from_value};

    #[test]
    fn task_info_from_the_transcript_shape() {
        let body = "<?xml version='1.0'?><methodResponse><params><param><value><struct><member><name>arch</name><value><string>noarch</string></value></member><member><name>awaited</name><value><nil/></value></member><member><name>channel_id</name><value><int>1</int></value></member><member><name>create_time</name><value><string>2026-11-26 20:03:32.601172+00:00</string></value></member><member><name>create_ts</name><value><double>1795723412.601172</double></value></member><member><name>host_id</name><value><int>1</int></value></member><member><name>id</name><value><int>13</int></value></member><member><name>label</name><value><nil/></value></member><member><name>method</name><value><string>build</string></value></member><member><name>owner</name><value><int>1</int></value></member><member><name>parent</name><value><nil/></value></member><member><name>priority</name><value><int>20</int></value></member><member><name>state</name><value><int>4</int></value></member><member><name>waiting</name><value><nil/></value></member><member><name>weight</name><value><double>1.0</double></value></member><member><name>request</name><value><string>&lt;?xml version='1.0'?&gt;</string></value></member></struct></value></param></params></methodResponse>";
        let value = decode_response(body.as_bytes()).unwrap().unwrap();
        let task: TaskInfo = from_value(&value).unwrap();
        assert_eq!(task.id, 13);
        assert_eq!(task.state, TaskState::ASSIGNED);
        assert_eq!(task.parent, None);
        assert_eq!(
            task.request,
            Some(TaskRequest::Xml("<?xml version='1.0'?>".to_owned()))
        );
    }

    #[test]
    fn unknown_state_is_an_error() {
        let error = serde_json::from_value::<TaskState>(serde_json::json!(9)).unwrap_err();
        assert!(error.to_string().contains("TaskState 9"));
        assert_eq!(i64::from(BuildrootState::EXPIRED), 3);
        assert_eq!(RepoState::READY.name(), "READY");
    }
}
