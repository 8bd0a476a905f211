//! The versioned JSON shapes of the monitoring API (`api_version` 1).
//!
//! These are built from the actors' snapshot and the container registry, never serialised from
//! the actors' own types, so that a change inside the worker cannot silently change the API.
//! Every field is documented in `docs/monitoring.md`; a breaking change bumps [`API_VERSION`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use koji_adjutant_actors::registry::ContainerRecord;
use koji_adjutant_actors::snapshot::{
    FinishedTask, PhaseEntry, RunningTask, TaskOutcome, WorkerSnapshot,
};
use serde::Serialize;

/// Bumped on any breaking change of a JSON shape; fields may be added within a version.
pub const API_VERSION: u32 = 1;

/// Log lines of each running task included in the status document.
pub const STATUS_TAIL_LINES: usize = 10;

/// The name under which a task's live output is served by the logs endpoint.
pub const LIVE_LOG_NAME: &str = "output.log";

/// What the web layer knows about the worker beyond its snapshot.
#[derive(Debug, Clone, Default)]
pub struct StaticInfo {
    pub worker_id: String,
    pub hub_url: String,
    pub weburl: Option<String>,
    pub version: String,
}

impl StaticInfo {
    /// The hub web UI's page of a task, when the web UI's address is known.
    pub fn task_url(&self, task_id: i64) -> Option<String> {
        self.weburl
            .as_deref()
            .map(|base| format!("{}/taskinfo?taskID={task_id}", base.trim_end_matches('/')))
    }
}

/// RFC 3339 in UTC, to the second; what every timestamp of the API looks like.
pub fn timestamp(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusDocument {
    pub api_version: u32,
    pub generated_at: String,
    pub worker: WorkerView,
    pub tasks: Vec<TaskView>,
    pub recent_tasks: Vec<FinishedView>,
    pub containers: Vec<ContainerView>,
    pub container_history: Vec<ContainerView>,
    pub policy_cache: PolicyView,
    pub actor_restarts: RestartsView,
    pub warnings: Vec<WarningView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerView {
    pub worker_id: String,
    pub host_id: Option<i64>,
    pub host_name: Option<String>,
    pub hub_url: String,
    pub hub_version: Option<String>,
    pub hub_weburl: Option<String>,
    pub logged_in: bool,
    pub last_heartbeat: Option<String>,
    pub last_heartbeat_age_seconds: Option<f64>,
    pub state: String,
    pub ready: bool,
    pub not_ready_reason: Option<String>,
    pub task_load: f64,
    pub capacity: Option<f64>,
    pub running_tasks: usize,
    pub maxjobs: usize,
    pub free_space_mib: Option<u64>,
    pub minspace_mib: u64,
    pub started_at: String,
    pub uptime_seconds: f64,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseView {
    pub phase: &'static str,
    pub since: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub task_id: i64,
    pub url: Option<String>,
    pub method: String,
    pub arch: String,
    pub owner: Option<i64>,
    pub parent: Option<i64>,
    pub tag: Option<String>,
    pub nvr: Option<String>,
    pub details: BTreeMap<String, String>,
    pub weight: f64,
    pub waiting: bool,
    pub phase: &'static str,
    pub started_at: String,
    pub elapsed_seconds: f64,
    pub timeline: Vec<PhaseView>,
    pub containers: Vec<String>,
    pub logs: Vec<&'static str>,
    pub log_tail: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FinishedView {
    pub task_id: i64,
    pub url: Option<String>,
    pub method: String,
    pub tag: Option<String>,
    pub nvr: Option<String>,
    pub details: BTreeMap<String, String>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    pub outcome: &'static str,
    pub fault_code: Option<i32>,
    pub reason: Option<String>,
    pub timeline: Vec<PhaseView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainerView {
    pub name: String,
    pub id: String,
    pub task_id: i64,
    pub image: String,
    pub state: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub removed_at: Option<String>,
    pub current_step: Option<String>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_limit: Option<f64>,
    pub pids_limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyEntryView {
    pub tag: String,
    pub event: Option<i64>,
    pub age_seconds: u64,
    pub status: String,
    pub rules: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    pub hits: u64,
    pub misses: u64,
    pub hit_ratio: Option<f64>,
    pub hub_errors: u64,
    pub entries: Vec<PolicyEntryView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestartsView {
    pub hub_poller: u64,
    pub policy_cache: u64,
    pub container_registry: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WarningView {
    pub at: String,
    pub source: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListDocument<T: Serialize> {
    pub api_version: u32,
    pub generated_at: String,
    pub items: Vec<T>,
}

impl<T: Serialize> ListDocument<T> {
    pub fn new(items: Vec<T>) -> Self {
        Self {
            api_version: API_VERSION,
            generated_at: timestamp(SystemTime::now()),
            items,
        }
    }
}

/// One running or finished task, as `/api/v1/tasks/{id}` returns it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AnyTask {
    Running(TaskView),
    Finished(FinishedView),
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemDocument<T: Serialize> {
    pub api_version: u32,
    pub generated_at: String,
    pub item: T,
}

impl<T: Serialize> ItemDocument<T> {
    pub fn new(item: T) -> Self {
        Self {
            api_version: API_VERSION,
            generated_at: timestamp(SystemTime::now()),
            item,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LogDocument {
    pub api_version: u32,
    pub task_id: i64,
    pub name: String,
    pub lines: Vec<String>,
}

fn timeline(entries: &[PhaseEntry], end: SystemTime) -> Vec<PhaseView> {
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let until = entries.get(i + 1).map_or(end, |next| next.since);
            PhaseView {
                phase: entry.phase.name(),
                since: timestamp(entry.since),
                seconds: seconds_between(entry.since, until),
            }
        })
        .collect()
}

fn outcome_parts(outcome: &TaskOutcome) -> (Option<i32>, Option<String>) {
    match outcome {
        TaskOutcome::Closed => (None, None),
        TaskOutcome::Failed {
            fault_code,
            message,
        } => (Some(*fault_code), Some(message.clone())),
        TaskOutcome::Refused { message } => (None, Some(message.clone())),
        TaskOutcome::Freed { reason } | TaskOutcome::Aborted { reason } => {
            (None, Some(reason.clone()))
        }
    }
}

pub fn task_view(
    info: &StaticInfo,
    task: &RunningTask,
    containers: &[ContainerRecord],
    log_tail: Vec<String>,
    now: SystemTime,
) -> TaskView {
    TaskView {
        task_id: task.task_id,
        url: info.task_url(task.task_id),
        method: task.method.clone(),
        arch: task.arch.clone(),
        owner: task.owner,
        parent: task.parent,
        tag: task.details.get("tag").cloned(),
        nvr: task.details.get("nvr").cloned(),
        details: task.details.clone(),
        weight: task.weight,
        waiting: task.waiting,
        phase: task.phase.name(),
        started_at: timestamp(task.started),
        elapsed_seconds: seconds_between(task.started, now),
        timeline: timeline(&task.timeline, now),
        containers: containers
            .iter()
            .filter(|c| c.task_id == task.task_id)
            .map(|c| c.name.clone())
            .collect(),
        logs: vec![LIVE_LOG_NAME],
        log_tail,
    }
}

pub fn finished_view(info: &StaticInfo, task: &FinishedTask) -> FinishedView {
    let (fault_code, reason) = outcome_parts(&task.outcome);
    FinishedView {
        task_id: task.task_id,
        url: info.task_url(task.task_id),
        method: task.method.clone(),
        tag: task.details.get("tag").cloned(),
        nvr: task.details.get("nvr").cloned(),
        details: task.details.clone(),
        started_at: timestamp(task.started),
        finished_at: timestamp(task.finished),
        duration_seconds: seconds_between(task.started, task.finished),
        outcome: task.outcome.label(),
        fault_code,
        reason,
        timeline: timeline(&task.timeline, task.finished),
    }
}

pub fn container_view(record: &ContainerRecord) -> ContainerView {
    let state = serde_json::to_value(record.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", record.state).to_lowercase());
    ContainerView {
        name: record.name.clone(),
        id: record.id.clone(),
        task_id: record.task_id,
        image: record.image.clone(),
        state,
        created_at: timestamp(record.created),
        started_at: record.started.map(timestamp),
        removed_at: record.removed.map(timestamp),
        current_step: record.current_step.clone(),
        memory_limit_bytes: record.limits.memory,
        cpu_limit: record.limits.cpus,
        pids_limit: record.limits.pids,
    }
}

pub fn worker_view(info: &StaticInfo, snapshot: &WorkerSnapshot, now: SystemTime) -> WorkerView {
    let state = serde_json::to_value(snapshot.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", snapshot.state).to_lowercase());
    WorkerView {
        worker_id: info.worker_id.clone(),
        host_id: snapshot.host_id,
        host_name: snapshot.host_name.clone(),
        hub_url: info.hub_url.clone(),
        hub_version: snapshot.hub_version.map(|v| v.to_string()),
        hub_weburl: info.weburl.clone(),
        logged_in: snapshot.logged_in,
        last_heartbeat: snapshot.last_heartbeat.map(timestamp),
        last_heartbeat_age_seconds: snapshot.last_heartbeat.map(|at| seconds_between(at, now)),
        state,
        ready: snapshot.readiness.ready,
        not_ready_reason: snapshot.readiness.reason.clone(),
        task_load: snapshot.task_load,
        capacity: snapshot.capacity,
        running_tasks: snapshot.running.len(),
        maxjobs: snapshot.maxjobs,
        free_space_mib: snapshot.free_space_mib,
        minspace_mib: snapshot.minspace_mib,
        started_at: timestamp(snapshot.started),
        uptime_seconds: seconds_between(snapshot.started, now),
        version: info.version.clone(),
    }
}

pub fn status_document(
    info: &StaticInfo,
    snapshot: &WorkerSnapshot,
    live: Vec<ContainerRecord>,
    history: Vec<ContainerRecord>,
    tail_of: impl Fn(i64) -> Vec<String>,
) -> StatusDocument {
    let now = SystemTime::now();
    let policy = &snapshot.policy;
    let lookups = policy.hits + policy.misses;
    StatusDocument {
        api_version: API_VERSION,
        generated_at: timestamp(now),
        worker: worker_view(info, snapshot, now),
        tasks: snapshot
            .running
            .iter()
            .map(|task| task_view(info, task, &live, tail_of(task.task_id), now))
            .collect(),
        // The snapshot keeps them newest first already.
        recent_tasks: snapshot
            .recent
            .iter()
            .map(|task| finished_view(info, task))
            .collect(),
        containers: live.iter().map(container_view).collect(),
        container_history: history.iter().map(container_view).collect(),
        policy_cache: PolicyView {
            hits: policy.hits,
            misses: policy.misses,
            hit_ratio: (lookups > 0).then(|| policy.hits as f64 / lookups as f64),
            hub_errors: policy.hub_errors,
            entries: policy
                .entries
                .iter()
                .map(|e| PolicyEntryView {
                    tag: e.tag.clone(),
                    event: e.event,
                    age_seconds: e.age_seconds,
                    status: e.status.clone(),
                    rules: e.rules.len(),
                })
                .collect(),
        },
        actor_restarts: RestartsView {
            hub_poller: snapshot.restarts.hub_poller,
            policy_cache: snapshot.restarts.policy_cache,
            container_registry: snapshot.restarts.container_registry,
        },
        warnings: snapshot
            .warnings
            .iter()
            .rev()
            .map(|w| WarningView {
                at: timestamp(w.at),
                source: w.source.clone(),
                message: w.message.clone(),
            })
            .collect(),
    }
}

/// Seconds since the epoch, for the process start time metric.
pub fn epoch_seconds(at: SystemTime) -> f64 {
    unix_seconds(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use koji_adjutant_actors::snapshot::{TaskPhase, Warning};

    fn finished(task_id: i64, finished: SystemTime, outcome: TaskOutcome) -> FinishedTask {
        FinishedTask {
            task_id,
            method: "buildArch".into(),
            details: BTreeMap::from([("nvr".to_owned(), "pkg-1-1".to_owned())]),
            started: finished - Duration::from_secs(90),
            finished,
            outcome,
            timeline: vec![
                PhaseEntry {
                    phase: TaskPhase::Opened,
                    since: finished - Duration::from_secs(90),
                },
                PhaseEntry {
                    phase: TaskPhase::Building,
                    since: finished - Duration::from_secs(60),
                },
            ],
        }
    }

    #[test]
    fn recent_tasks_and_warnings_are_newest_first_with_their_reasons() {
        let now = SystemTime::now();
        let mut snapshot = WorkerSnapshot::new(10, 8192);
        // The Supervisor publishes its history newest first.
        snapshot.recent = vec![
            finished(
                2,
                now,
                TaskOutcome::Failed {
                    fault_code: 1,
                    message: "rpmbuild failed".into(),
                },
            ),
            finished(1, now - Duration::from_secs(300), TaskOutcome::Closed),
        ];
        // Warnings are kept oldest first.
        snapshot.warnings = vec![
            Warning {
                at: now - Duration::from_secs(60),
                source: "policy".into(),
                message: "older".into(),
            },
            Warning {
                at: now,
                source: "supervisor".into(),
                message: "newer".into(),
            },
        ];
        let info = StaticInfo {
            weburl: Some("https://koji.example/koji/".into()),
            ..StaticInfo::default()
        };
        let doc = status_document(&info, &snapshot, vec![], vec![], |_| vec![]);
        let ids: Vec<i64> = doc.recent_tasks.iter().map(|t| t.task_id).collect();
        assert_eq!(ids, [2, 1]);
        let failed = &doc.recent_tasks[0];
        assert_eq!(failed.outcome, "failed");
        assert_eq!(failed.fault_code, Some(1));
        assert_eq!(failed.reason.as_deref(), Some("rpmbuild failed"));
        assert_eq!(failed.duration_seconds, 90.0);
        assert_eq!(
            failed.url.as_deref(),
            Some("https://koji.example/koji/taskinfo?taskID=2")
        );
        let phases: Vec<(&str, f64)> = failed
            .timeline
            .iter()
            .map(|p| (p.phase, p.seconds))
            .collect();
        assert_eq!(phases, [("opened", 30.0), ("building", 60.0)]);
        assert_eq!(doc.warnings[0].message, "newer");
        assert_eq!(doc.policy_cache.hit_ratio, None);
    }
}
