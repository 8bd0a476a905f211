//! The TaskActor: one per task. It runs the task's handler, reports the result exactly once
//! (§2.7), and removes the task's containers when it ends, however it ends.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::FutureExt;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorClass, Fault, HandlerError};
use crate::handler::{TaskContext, TaskHandler, WorkerRequest};
use crate::hub::TaskHub;
use crate::registry::panic_message;
use crate::snapshot::{TaskOutcome, TaskPhase};

/// Why a task is aborted. Nothing is reported to the hub for an aborted task: it is either not
/// ours any more, or the Supervisor frees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortReason {
    Canceled,
    /// Freed by an admin or the scheduler.
    Freed,
    /// Now assigned to or opened by another host.
    Reassigned,
    /// The worker is shutting down; the Supervisor frees the task.
    Shutdown,
}

impl AbortReason {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Canceled => "the task was cancelled",
            Self::Freed => "the task was freed",
            Self::Reassigned => "the task was reassigned to another host",
            Self::Shutdown => "the worker is shutting down",
        }
    }

    /// Time the handler gets to flush its logs after the cancellation token fires: only when the
    /// task is still ours, so the uploads can still succeed.
    fn flush_grace(self) -> Duration {
        match self {
            Self::Shutdown => Duration::from_secs(5),
            _ => Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct AbortTask {
    pub reason: AbortReason,
}

/// An awaited subtask finished (the hub's `alert`): wake the handler's `wait`.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct AlertTask;

/// Sent to the Supervisor when the actor has finished: reported, cleaned up and logged out.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct TaskEnded {
    pub task_id: i64,
    pub subsession_id: i64,
    pub outcome: TaskOutcome,
}

/// What the actor needs beyond the handler's context.
pub struct TaskActorLinks {
    pub ended: Recipient<TaskEnded>,
    pub worker: Recipient<WorkerRequest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Running,
    Reporting,
    Aborting,
    Finished,
}

pub struct TaskActor {
    task_id: i64,
    method: String,
    handler: Option<Box<dyn TaskHandler>>,
    context: TaskContext,
    hub: Arc<dyn TaskHub>,
    cancel: CancellationToken,
    alerts: Arc<Notify>,
    links: TaskActorLinks,
    stage: Stage,
    run: Option<tokio::task::AbortHandle>,
    /// Fires when the handler returns (not when it panics), to cut the flush grace short.
    handler_done: CancellationToken,
}

impl TaskActor {
    pub fn new(handler: Box<dyn TaskHandler>, context: TaskContext, links: TaskActorLinks) -> Self {
        Self {
            task_id: context.task_id,
            method: context.info.method.clone(),
            hub: Arc::clone(&context.hub),
            cancel: context.cancel.clone(),
            alerts: Arc::clone(&context.alerts),
            handler: Some(handler),
            context,
            links,
            stage: Stage::Running,
            run: None,
            handler_done: CancellationToken::new(),
        }
    }

    fn handler_finished(
        &mut self,
        result: Result<Result<Value, HandlerError>, tokio::task::JoinError>,
        ctx: &mut Context<Self>,
    ) {
        if self.stage != Stage::Running {
            // Aborted meanwhile: the abort path owns the clean-up and reports nothing.
            return;
        }
        self.stage = Stage::Reporting;
        self.context.phases.enter(TaskPhase::Closing);
        let report = match result {
            Ok(Ok(value)) => Report::Close(value),
            Ok(Err(error)) => Report::from_error(error),
            Err(join) if join.is_panic() => {
                let message = panic_message(&join.into_panic());
                tracing::error!(task_id = self.task_id, method = %self.method, panic = %message, "task handler panicked");
                Report::Fail(Fault::plain(format!(
                    "koji-adjutant internal error: the {} handler panicked ({message}). The task's \
                     containers are removed. This is a bug in the build worker, not in your \
                     package: please report it to the builder's operators and resubmit the task.",
                    self.method
                )))
            }
            Err(_) => Report::Nothing(TaskOutcome::Aborted {
                reason: "the task's handler was stopped".to_owned(),
            }),
        };
        let task_id = self.task_id;
        let hub = Arc::clone(&self.hub);
        let containers = self.context.containers.clone();
        let worker = self.links.worker.clone();
        async move {
            let outcome = AssertUnwindSafe(report.send(task_id, hub.as_ref(), &worker))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    let message = panic_message(&panic);
                    tracing::error!(task_id, panic = %message, "reporting the task's result panicked");
                    TaskOutcome::Aborted {
                        reason: format!("reporting the result panicked: {message}"),
                    }
                });
            // Not guarded: if removal itself panics, this actor dies and the Supervisor's
            // liveness check removes the containers from the registry's records instead.
            containers.remove_all().await;
            let _ = AssertUnwindSafe(hub.logout()).catch_unwind().await;
            outcome
        }
        .into_actor(self)
        .map(|outcome, act, ctx| act.finish(outcome, ctx))
        .wait(ctx);
    }

    fn finish(&mut self, outcome: TaskOutcome, ctx: &mut Context<Self>) {
        self.stage = Stage::Finished;
        self.context.phases.enter(TaskPhase::Done);
        metrics::counter!("adjutant_tasks_finished_total", "method" => self.method.clone(), "outcome" => outcome.label()).increment(1);
        self.links.ended.do_send(TaskEnded {
            task_id: self.task_id,
            subsession_id: self.hub.session_id(),
            outcome,
        });
        ctx.stop();
    }
}

enum Report {
    Close(Value),
    Fail(Fault),
    Refuse {
        soft: bool,
        message: String,
    },
    Free,
    /// The handler gave up on its own (it saw a cancellation this actor did not order): the
    /// task is freed, which the hub ignores when it is not ours any more.
    FreeAborted(String),
    Exit,
    Nothing(TaskOutcome),
}

impl Report {
    fn from_error(error: HandlerError) -> Self {
        match error {
            HandlerError::Fault(fault) => Self::Fail(fault),
            HandlerError::Other(message) => Self::Fail(Fault::plain(message)),
            HandlerError::Refuse { soft, message } => Self::Refuse { soft, message },
            HandlerError::ServerRestart => Self::Free,
            HandlerError::ServerExit => Self::Exit,
            HandlerError::Aborted(reason) => Self::FreeAborted(reason),
        }
    }

    /// Sends the one report this task gets. A failed report is logged; it is never retried with
    /// another kind of report.
    async fn send(
        self,
        task_id: i64,
        hub: &dyn TaskHub,
        worker: &Recipient<WorkerRequest>,
    ) -> TaskOutcome {
        let (call, outcome, result) = match self {
            Self::Close(value) => (
                "host.closeTask",
                TaskOutcome::Closed,
                hub.close_task(task_id, &value).await,
            ),
            Self::Fail(fault) => {
                let result = hub.fail_task(task_id, &fault).await;
                (
                    "host.failTask",
                    TaskOutcome::Failed {
                        fault_code: fault.fault_code,
                        message: fault.message,
                    },
                    result,
                )
            }
            Self::Refuse { soft, message } => {
                let result = hub.refuse_task(task_id, soft, &message).await;
                ("host.refuseTask", TaskOutcome::Refused { message }, result)
            }
            Self::Free => (
                "host.freeTasks",
                TaskOutcome::Freed {
                    reason: "freed for a pending restart".to_owned(),
                },
                hub.free_tasks(&[task_id]).await,
            ),
            Self::FreeAborted(reason) => (
                "host.freeTasks",
                TaskOutcome::Freed { reason },
                hub.free_tasks(&[task_id]).await,
            ),
            Self::Exit => {
                // Closing the shutdown task first keeps it from being retaken after the worker
                // comes back (kojid leaves it OPEN, so it is freed and runs again).
                let result = hub.close_task(task_id, &Value::Null).await;
                worker.do_send(WorkerRequest::Shutdown);
                ("host.closeTask", TaskOutcome::Closed, result)
            }
            Self::Nothing(outcome) => return outcome,
        };
        match result {
            Ok(()) => outcome,
            Err(error) if error.class == ErrorClass::FreeTask => {
                tracing::info!(task_id, call, %error, "the task is no longer ours; nothing reported");
                TaskOutcome::Aborted {
                    reason: format!("{call} refused: {error}"),
                }
            }
            Err(error) => {
                tracing::error!(task_id, call, %error, "could not report the task's result");
                TaskOutcome::Aborted {
                    reason: format!("{call} failed: {error}"),
                }
            }
        }
    }
}

impl Actor for TaskActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::counter!("adjutant_tasks_started_total", "method" => self.method.clone())
            .increment(1);
        self.context.phases.enter(TaskPhase::Opened);
        let Some(handler) = self.handler.take() else {
            return;
        };
        let context = self.context.clone();
        let done = self.handler_done.clone();
        // The handler runs as its own task so that a panic in it surfaces as a JoinError here
        // instead of unwinding through the actor.
        let run = tokio::task::spawn_local(async move {
            let result = handler.run(context).await;
            done.cancel();
            result
        });
        self.run = Some(run.abort_handle());
        run.into_actor(self)
            .map(|result, act, ctx| act.handler_finished(result, ctx))
            .spawn(ctx);
    }
}

impl Handler<AbortTask> for TaskActor {
    type Result = ();

    fn handle(&mut self, message: AbortTask, ctx: &mut Context<Self>) {
        if self.stage != Stage::Running {
            // Already reporting (the task finished first) or already aborting: never report or
            // clean up twice.
            return;
        }
        self.stage = Stage::Aborting;
        let reason = message.reason;
        tracing::warn!(task_id = self.task_id, method = %self.method, reason = reason.describe(), "aborting task");
        self.cancel.cancel();
        let containers = self.context.containers.clone();
        let hub = Arc::clone(&self.hub);
        let grace = reason.flush_grace();
        let run_abort = self.run.clone();
        let handler_done = self.handler_done.clone();
        async move {
            if !grace.is_zero() {
                tokio::select! {
                    () = handler_done.cancelled() => {}
                    () = tokio::time::sleep(grace) => {}
                }
            }
            // Stop the handler first, so that it cannot create a container after the sweep;
            // removing the containers then ends whatever step ran in them.
            if let Some(run) = run_abort {
                run.abort();
            }
            let removed = containers.remove_all().await;
            // A `podman create` that was in flight when the handler stopped may still finish
            // after the sweep: remove those names once more a little later (removal by name is
            // idempotent). Detached, because this actor is about to stop.
            let remembered = containers.removed_names_for_resweep(removed);
            if !remembered.is_empty() {
                let runtime = containers.runtime();
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    for handle in remembered {
                        let _ = runtime.remove(&handle, true).await;
                    }
                });
            }
            let _ = AssertUnwindSafe(hub.logout()).catch_unwind().await;
        }
        .into_actor(self)
        .map(move |(), act, ctx| {
            act.finish(
                TaskOutcome::Aborted {
                    reason: reason.describe().to_owned(),
                },
                ctx,
            )
        })
        .wait(ctx);
    }
}

impl Handler<AlertTask> for TaskActor {
    type Result = ();

    fn handle(&mut self, _: AlertTask, _ctx: &mut Context<Self>) {
        self.alerts.notify_one();
    }
}
