//! The Prometheus recorder behind `/metrics`, and the process metrics added at scrape time.
//!
//! The recorder is global (the `metrics` facade has one), so [`install_metrics`] installs it
//! once per process and hands the same handle to every later caller: tests and a re-executed
//! worker share it safely.

use std::sync::Mutex;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Build and phase durations: a `sleep` task takes seconds, a kernel build hours.
pub const BUILD_DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0, 57600.0,
];

/// Hub calls, podman operations and the live-log lag: milliseconds to minutes.
pub const CALL_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Image pulls: seconds to tens of minutes.
pub const PULL_DURATION_BUCKETS: &[f64] = &[
    0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0,
];

/// How often histogram summaries are drained; without it idle histograms grow without bound.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "could not configure the Prometheus exporter: {0}. This is a bug in koji-adjutant's bucket tables; please report it"
    )]
    Build(#[from] BuildError),
    #[error(
        "another metrics recorder is already installed in this process, so /metrics would stay empty; install koji-adjutant's recorder first"
    )]
    AlreadyInstalled,
}

/// Guarded by a mutex, not only a `OnceLock`: two callers racing to install would otherwise both
/// try to set the global recorder and one would fail.
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("adjutant_task_duration_seconds".into()),
            BUILD_DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("adjutant_task_phase_duration_seconds".into()),
            BUILD_DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("adjutant_image_pull_duration_seconds".into()),
            PULL_DURATION_BUCKETS,
        )?
        // Everything else timed in seconds is a call: hub calls, podman operations, log lag.
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), CALL_DURATION_BUCKETS)
}

/// Installs the global Prometheus recorder (once) and returns its handle. Call it before the
/// worker starts so that no early metric is lost.
pub fn install_metrics() -> Result<PrometheusHandle, MetricsError> {
    let mut installed = match HANDLE.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let recorder = builder()?.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
    describe_metrics();
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Drives the recorder's upkeep every [`UPKEEP_INTERVAL`] until `shutdown`.
pub async fn run_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => handle.run_upkeep(),
        }
    }
}

/// HELP texts: promtool and operators both read them.
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "adjutant_tasks_started_total",
        "TaskActors started, by method"
    );
    describe_counter!(
        "adjutant_tasks_finished_total",
        "Tasks finished, by method and outcome"
    );
    describe_histogram!(
        "adjutant_task_duration_seconds",
        Unit::Seconds,
        "Task duration from openTask to the end of clean-up"
    );
    describe_counter!(
        "adjutant_task_phase_entered_total",
        "Task phase changes, by method and phase"
    );
    describe_histogram!(
        "adjutant_task_phase_duration_seconds",
        Unit::Seconds,
        "Time tasks spent in each phase"
    );
    describe_gauge!("adjutant_tasks_running", "Running TaskActors");
    describe_gauge!(
        "adjutant_task_load",
        "Task load sent with the last host.updateHost"
    );
    describe_gauge!("adjutant_capacity", "The host's capacity from host.getHost");
    describe_gauge!(
        "adjutant_ready",
        "1 when the last heartbeat told the hub the worker is ready"
    );
    describe_counter!("adjutant_poll_errors_total", "Failed poll cycles, by class");
    describe_counter!(
        "adjutant_actor_restarts_total",
        "Restarts of long-lived actors, by actor"
    );
    describe_counter!(
        "adjutant_policy_cache_total",
        "Image policy lookups, by result (hit or miss)"
    );
    describe_counter!(
        "adjutant_container_removals_total",
        "Task containers removed by their TaskActor, by outcome"
    );
    describe_counter!(
        "adjutant_orphans_reaped_total",
        "Orphaned containers of this worker removed by the registry's sweep"
    );
    describe_counter!(
        "adjutant_hub_calls_total",
        "Hub XML-RPC calls, by method and outcome (ok, fault, transport, decode, cancelled)"
    );
    describe_histogram!(
        "adjutant_hub_call_duration_seconds",
        Unit::Seconds,
        "Hub call latency including retries and offline waits, by method"
    );
    describe_counter!(
        "adjutant_hub_retries_total",
        "Hub call retries after a transport or decode error, by method"
    );
    describe_counter!(
        "adjutant_hub_offline_waits_total",
        "Waits because the hub reported ServerOffline"
    );
    describe_counter!(
        "adjutant_hub_relogins_total",
        "Session renewals after AuthExpired"
    );
    describe_counter!(
        "adjutant_upload_bytes_total",
        Unit::Bytes,
        "Bytes uploaded to the hub (files and live logs)"
    );
    describe_counter!(
        "adjutant_upload_retries_total",
        "rawUpload chunks that needed more than one send"
    );
    describe_histogram!(
        "adjutant_log_upload_lag_seconds",
        Unit::Seconds,
        "Age of the oldest unsent live-log line when a chunk is uploaded"
    );
    describe_counter!(
        "adjutant_container_operations_total",
        "podman operations, by operation and outcome"
    );
    describe_histogram!(
        "adjutant_container_operation_duration_seconds",
        Unit::Seconds,
        "podman operation latency, by operation"
    );
    describe_counter!("adjutant_image_pulls_total", "Image pulls, by outcome");
    describe_histogram!(
        "adjutant_image_pull_duration_seconds",
        Unit::Seconds,
        "Image pull duration"
    );
    describe_gauge!(
        "adjutant_policy_cache_hit_ratio",
        "Share of image policy lookups answered from the cache since start"
    );
    describe_gauge!(
        "adjutant_logged_in",
        "1 while the worker holds a hub session"
    );
    describe_gauge!(
        "adjutant_build_info",
        "Always 1; the version label is the running koji-adjutant version"
    );
    describe_counter!(
        "adjutant_http_requests_total",
        "Monitoring HTTP requests, by endpoint and status class"
    );
}

/// `process_*` metrics in the Prometheus client conventions, read from `/proc/self`.
/// Rendered by hand because the facade has no float counters (`process_cpu_seconds_total`).
pub fn render_process_metrics(out: &mut String) {
    use std::fmt::Write;
    let Some(stat) = ProcessStat::read() else {
        return;
    };
    let mut family = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
        let _ = writeln!(out);
    };
    family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        stat.cpu_seconds,
    );
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        stat.resident_bytes,
    );
    family(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        stat.virtual_bytes,
    );
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        stat.start_time_seconds,
    );
    family(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        stat.threads,
    );
    if let Some(fds) = stat.open_fds {
        family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds,
        );
    }
    if let Some(max) = stat.max_fds {
        family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        );
    }
}

/// The fields of `/proc/self/stat` and friends that the process metrics need.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStat {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub start_time_seconds: f64,
    pub threads: f64,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
}

impl ProcessStat {
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())?;
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
        let mut parsed = Self::parse_stat(&stat, ticks, page, boot_time)?;
        parsed.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as f64);
        parsed.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                limits
                    .lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse::<f64>().ok())
            });
        Some(parsed)
    }

    /// Parses `/proc/<pid>/stat`. The command name may hold spaces and parentheses, so the
    /// fields are counted from the last `)`.
    pub fn parse_stat(stat: &str, ticks: f64, page_size: f64, boot_time: f64) -> Option<Self> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state is field 3 of proc(5), so field N is fields[N - 3].
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        if ticks <= 0.0 {
            return None;
        }
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            threads: field(20)?,
            start_time_seconds: boot_time + field(22)? / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page_size,
            open_fds: None,
            max_fds: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_hostile_command_name() {
        let line = "4242 (koji (adj) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 7 0 5000 104857600 2560 18446744073709551615";
        let stat = ProcessStat::parse_stat(line, 100.0, 4096.0, 1_700_000_000.0).unwrap();
        assert_eq!(stat.cpu_seconds, 4.0);
        assert_eq!(stat.threads, 7.0);
        assert_eq!(stat.start_time_seconds, 1_700_000_050.0);
        assert_eq!(stat.virtual_bytes, 104_857_600.0);
        assert_eq!(stat.resident_bytes, 2560.0 * 4096.0);
    }

    #[test]
    fn reads_this_process() {
        let stat = ProcessStat::read().expect("/proc/self is readable on Linux");
        assert!(stat.resident_bytes > 0.0);
        assert!(stat.threads >= 1.0);
        assert!(stat.open_fds.unwrap_or(0.0) >= 3.0);
    }

    #[test]
    fn the_bucket_tables_are_accepted() {
        builder().expect("bucket tables are valid");
    }
}
