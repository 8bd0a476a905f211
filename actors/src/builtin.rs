//! kojid's built-in simple handlers (§4.12): `sleep`, `fork`, `waittest`, `someMethod`,
//! `shutdown`, `restart` and `restartVerify`. They make the worker's loop testable end to end
//! before the build pipeline exists, and `koji restart-hosts` works against them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Fault, HandlerError};
use crate::handler::{
    HandlerRegistry, TaskContext, TaskHandler, TaskRequest, WaitOptions, WorkerRequest,
};
use crate::hub::{SubtaskOptions, TaskInfo, TaskState};
use crate::runtime::{ContainerSpec, ExecSpec, NetworkMode, ResourceLimits, SelinuxLabel};
use crate::snapshot::TaskPhase;

/// Registers every handler of this module.
pub fn register_builtin(registry: &mut HandlerRegistry) {
    registry
        .register("sleep", simple(0.25, run_sleep))
        .register("fork", simple(1.0, run_fork))
        .register("waittest", simple(0.1, run_waittest))
        .register("someMethod", simple(1.0, run_some_method))
        .register("shutdown", simple(0.0, run_shutdown))
        .register("restart", simple(0.1, run_restart))
        .register("restartVerify", simple(0.1, run_restart_verify));
}

type RunFn = fn(
    TaskContext,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Value, HandlerError>> + Send>,
>;

/// A handler with a fixed weight, no host check, and a plain async function as its body.
struct Simple {
    weight: f64,
    run: RunFn,
}

#[async_trait::async_trait]
impl TaskHandler for Simple {
    fn weight(&self) -> f64 {
        self.weight
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        (self.run)(ctx).await
    }
}

fn simple(
    weight: f64,
    run: RunFn,
) -> impl Fn(&TaskRequest, &TaskInfo) -> Box<dyn TaskHandler> + Send + Sync + 'static {
    move |_: &TaskRequest, _: &TaskInfo| Box::new(Simple { weight, run }) as Box<dyn TaskHandler>
}

/// A non-negative number of seconds, as Python's `time.sleep` accepts.
fn seconds(method: &str, name: &str, value: &Value) -> Result<Duration, HandlerError> {
    value
        .as_f64()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            HandlerError::Fault(Fault::plain(format!(
                "{method}: {name} must be a non-negative number of seconds, got {value}"
            )))
        })
}

fn count(method: &str, name: &str, value: &Value) -> Result<u64, HandlerError> {
    value.as_u64().ok_or_else(|| {
        HandlerError::Fault(Fault::plain(format!(
            "{method}: {name} must be a non-negative integer, got {value}"
        )))
    })
}

fn missing(method: &str, name: &str) -> HandlerError {
    HandlerError::Fault(Fault::parameter(format!(
        "{method}() missing required argument: '{name}'"
    )))
}

async fn cancellable_sleep(ctx: &TaskContext, duration: Duration) -> Result<(), HandlerError> {
    tokio::select! {
        () = tokio::time::sleep(duration) => Ok(()),
        () = ctx.cancel.cancelled() => Err(HandlerError::Aborted("cancelled while sleeping".to_owned())),
    }
}

/// `sleep(n)`: sleeps n seconds, returns nil.
fn run_sleep(
    ctx: TaskContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, HandlerError>> + Send>> {
    Box::pin(async move {
        ctx.request.check_signature("sleep", &["n"])?;
        let n = ctx
            .request
            .arg(0, "n")
            .ok_or_else(|| missing("sleep", "n"))?;
        let duration = seconds("sleep", "n", n)?;
        ctx.phases.enter(TaskPhase::Building);
        tracing::info!(
            task_id = ctx.task_id,
            "Sleeping for {} seconds",
            duration.as_secs_f64()
        );
        cancellable_sleep(&ctx, duration).await?;
        tracing::info!(task_id = ctx.task_id, "Finished sleeping");
        Ok(Value::Null)
    })
}

/// `fork(n=5, m=37)`: n processes of `sleep m`. kojid spawns them on the host; here they run
/// inside the task's container through the runtime (only the runtime spawns processes).
fn run_fork(
    ctx: TaskContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, HandlerError>> + Send>> {
    Box::pin(async move {
        ctx.request.check_signature("fork", &["n", "m"])?;
        let n = match ctx.request.arg(0, "n") {
            Some(value) => count("fork", "n", value)?,
            None => 5,
        };
        let m = match ctx.request.arg(1, "m") {
            Some(value) => seconds("fork", "m", value)?,
            None => Duration::from_secs(37),
        };
        ctx.phases.enter(TaskPhase::Image);
        let image = ctx.resolve_image(None, None, &ctx.info.arch).await;
        let spec = ContainerSpec {
            image: image.image,
            name: ctx.containers.next_name(),
            labels: ctx.containers.labels(),
            user: None,
            workdir: None,
            mounts: Vec::new(),
            selinux_label: SelinuxLabel::None,
            env: BTreeMap::new(),
            network: NetworkMode::None,
            cap_add: Vec::new(),
            limits: ResourceLimits::default(),
        };
        let container = ctx
            .containers
            .create_and_start(&spec, ctx.pull_policy)
            .await?;
        ctx.phases.enter(TaskPhase::Building);
        let steps = (0..n).map(|i| {
            let exec = ExecSpec {
                step: format!("sleep-{i}"),
                argv: vec!["sleep".to_owned(), format!("{}", m.as_secs_f64())],
                env: BTreeMap::new(),
                user: None,
                workdir: None,
                stdin: None,
                timeout: None,
            };
            let containers = ctx.containers.clone();
            let container = container.clone();
            let logs = Arc::clone(&ctx.logs);
            async move { containers.exec(&container, &exec, logs).await }
        });
        for outcome in futures::future::join_all(steps).await {
            let outcome = outcome?;
            if outcome.exit_code != 0 {
                return Err(HandlerError::Other(format!(
                    "fork: sleep exited with status {}",
                    outcome.exit_code
                )));
            }
        }
        Ok(Value::Null)
    })
}

/// `waittest(count, seconds=10)`: `count` sleep subtasks and one with a bad argument that may
/// fail; waits for all of them.
fn run_waittest(
    ctx: TaskContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, HandlerError>> + Send>> {
    Box::pin(async move {
        ctx.request
            .check_signature("waittest", &["count", "seconds"])?;
        let how_many = count(
            "waittest",
            "count",
            ctx.request
                .arg(0, "count")
                .ok_or_else(|| missing("waittest", "count"))?,
        )?;
        let seconds = ctx
            .request
            .arg(1, "seconds")
            .cloned()
            .unwrap_or(Value::from(10));
        ctx.phases.enter(TaskPhase::Building);
        let mut tasks = Vec::new();
        for i in 0..how_many {
            let options = SubtaskOptions {
                label: Some(i.to_string()),
                ..SubtaskOptions::default()
            };
            tasks.push(
                ctx.hub
                    .subtask(ctx.task_id, "sleep", vec![seconds.clone()], &options)
                    .await?,
            );
        }
        let bad = ctx
            .hub
            .subtask(
                ctx.task_id,
                "sleep",
                vec![Value::from("BAD_ARG")],
                &SubtaskOptions {
                    label: Some("bad".to_owned()),
                    ..SubtaskOptions::default()
                },
            )
            .await?;
        tasks.push(bad);
        let results = ctx
            .wait(
                Some(tasks),
                WaitOptions {
                    all: true,
                    failany: true,
                    canfail: vec![bad],
                    timeout: None,
                },
            )
            .await?;
        tracing::info!(task_id = ctx.task_id, results = ?results, "waittest results");
        Ok(Value::Null)
    })
}

/// `someMethod(*args)`: kojid's fake task, returns 42.
fn run_some_method(
    ctx: TaskContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, HandlerError>> + Send>> {
    Box::pin(async move {
        tracing::info!(task_id = ctx.task_id, args = ?ctx.request.params, "This is a fake task.");
        Ok(Value::from(42))
    })
}

/// `shutdown()`: the worker shuts down (kojid's `ServerExit`).
fn run_shutdown(
    ctx: TaskContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, HandlerError>> + Send>> {
    Box::pin(async move {
        ctx.request.check_signature("shutdown", &[])?;
        Err(HandlerError::ServerExit)
    })
}

fn host_id_of(method: &str, host: Option<&Value>) -> Result<i64, HandlerError> {
    let host = host.ok_or_else(|| missing(method, "host"))?;
    host.get("id").and_then(Value::as_i64).ok_or_else(|| {
        HandlerError::Fault(Fault::plain(format!(
            "{method}: host must be a host struct with an integer id, got {host}"
        )))
    })
}

/// `restart(host)`: a graceful restart once no task runs; the host must be this one.
fn run_restart(
    ctx: TaskContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, HandlerError>> + Send>> {
    Box::pin(async move {
        ctx.request.check_signature("restart", &["host"])?;
        let host = host_id_of("restart", ctx.request.arg(0, "host"))?;
        if host != ctx.hub.get_id().await? {
            return Err(HandlerError::Fault(Fault::generic("Host mismatch")));
        }
        ctx.request_worker(WorkerRequest::RestartWhenIdle);
        Ok(Value::from("graceful restart initiated"))
    })
}

/// `restartVerify(task_id, host)`: the restart task is CLOSED and this worker's session started
/// after it completed.
fn run_restart_verify(
    ctx: TaskContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, HandlerError>> + Send>> {
    Box::pin(async move {
        ctx.request
            .check_signature("restartVerify", &["task_id", "host"])?;
        let task_id = ctx
            .request
            .arg(0, "task_id")
            .ok_or_else(|| missing("restartVerify", "task_id"))?
            .as_i64()
            .ok_or_else(|| {
                HandlerError::Fault(Fault::plain("restartVerify: task_id must be an integer"))
            })?;
        let host = host_id_of("restartVerify", ctx.request.arg(1, "host"))?;
        let info = ctx.hub.get_task_info(task_id, false).await?;
        if info.state != TaskState::Closed {
            return Err(HandlerError::Fault(Fault::generic(format!(
                "Stage one restart task is {}",
                info.state.name()
            ))));
        }
        if host != ctx.hub.get_id().await? {
            return Err(HandlerError::Fault(Fault::generic("Host mismatch")));
        }
        if let Some(completed) = info.completion_ts
            && ctx.session_start_ts < completed
        {
            return Err(HandlerError::Fault(Fault::generic(format!(
                "Restart failed - start time is {}",
                asctime_utc(ctx.session_start_ts)
            ))));
        }
        Ok(Value::Null)
    })
}

/// Python's `time.asctime` layout ("Thu Nov 26 20:00:53 2026"), in UTC.
pub fn asctime_utc(timestamp: f64) -> String {
    let secs = timestamp.floor() as i64;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asctime_matches_python() {
        // python3 -c 'import time; print(time.asctime(time.gmtime(1795723412)))'
        assert_eq!(asctime_utc(1_795_723_412.59), "Thu Nov 26 20:03:32 2026");
        assert_eq!(asctime_utc(0.0), "Thu Jan  1 00:00:00 1970");
    }
}
