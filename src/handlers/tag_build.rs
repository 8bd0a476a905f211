//! `tagBuild(tag_id, build_id, force=False, fromtag=None, ignore_success=False)` (§4.5): the
//! hub tags (and checks the `tag` policy), the worker sends the notification either way.

use koji_adjutant_actors::error::{Fault, HandlerError};
use koji_adjutant_actors::handler::{TaskContext, TaskHandler, TaskRequest};
use koji_adjutant_actors::hub::TaskInfo;
use serde_json::{Map, Value, json};

use super::hubcalls::{Calls, kwargs, truthy};

pub const WEIGHT: f64 = 1.0;

pub struct TagBuildTask;

/// The text kojid puts in a failed tagNotification: `"<exception class>: <message>"`.
pub fn failure_text(error: &HandlerError) -> String {
    match error {
        HandlerError::Fault(fault) => format!("{}: {}", fault.fault_class, fault.message),
        other => format!("Exception: {other}"),
    }
}

impl TagBuildTask {
    async fn tag(
        &self,
        ctx: &TaskContext,
        tag: &Value,
        build: &Value,
        force: bool,
        fromtag: &Value,
    ) -> Result<(), HandlerError> {
        let calls = Calls::new(ctx.hub.as_ref());
        ctx.hub
            .call(
                "getBuild",
                vec![build.clone()],
                kwargs([("strict", json!(true))]),
            )
            .await?;
        calls.get_tag(tag, None).await?;
        ctx.hub
            .call(
                "host.tagBuild",
                vec![json!(ctx.task_id), tag.clone(), build.clone()],
                kwargs([("force", json!(force)), ("fromtag", fromtag.clone())]),
            )
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl TaskHandler for TagBuildTask {
    fn weight(&self) -> f64 {
        WEIGHT
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        let request = &ctx.request;
        request.check_signature(
            "tagBuild",
            &["tag_id", "build_id", "force", "fromtag", "ignore_success"],
        )?;
        let tag = request
            .arg(0, "tag_id")
            .cloned()
            .ok_or_else(|| HandlerError::Fault(Fault::parameter("tagBuild() requires tag_id")))?;
        let build = request
            .arg(1, "build_id")
            .cloned()
            .ok_or_else(|| HandlerError::Fault(Fault::parameter("tagBuild() requires build_id")))?;
        let force = truthy(request.arg(2, "force"));
        let fromtag = request.arg(3, "fromtag").cloned().unwrap_or(Value::Null);
        let ignore_success = truthy(request.arg(4, "ignore_success"));
        let task_info = Calls::new(ctx.hub.as_ref())
            .get_task_info(ctx.task_id)
            .await?;
        let owner = task_info.get("owner").cloned().unwrap_or(Value::Null);
        let notify = |ok: bool, message: Option<String>| {
            let mut params = vec![
                json!(ok),
                tag.clone(),
                fromtag.clone(),
                build.clone(),
                owner.clone(),
                json!(ignore_success),
            ];
            if let Some(message) = message {
                params.push(json!(message));
            }
            params
        };
        match self.tag(&ctx, &tag, &build, force, &fromtag).await {
            Ok(()) => {
                ctx.hub
                    .call("host.tagNotification", notify(true, None), Map::new())
                    .await?;
                Ok(Value::Null)
            }
            Err(error) => {
                let text = failure_text(&error);
                if let Err(notify_error) = ctx
                    .hub
                    .call(
                        "host.tagNotification",
                        notify(false, Some(text)),
                        Map::new(),
                    )
                    .await
                {
                    tracing::warn!(task_id = ctx.task_id, %notify_error, "could not send the failed tag notification");
                }
                Err(error)
            }
        }
    }
}

pub fn factory() -> impl Fn(&TaskRequest, &TaskInfo) -> Box<dyn TaskHandler> + Send + Sync + 'static
{
    |_request, _info| Box::new(TagBuildTask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_text_names_the_fault_class() {
        let error = HandlerError::Fault(Fault::new(
            1003,
            "TagError",
            "build hello-1.0-1 already tagged (dist-dest)",
        ));
        assert_eq!(
            failure_text(&error),
            "TagError: build hello-1.0-1 already tagged (dist-dest)"
        );
    }
}
