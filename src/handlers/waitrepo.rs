//! Repo waiting (§4.10): `BaseTaskHandler.getRepo` for the build task, and the `waitrepo`
//! handler. Hubs ≥1.35 answer `repo.request`; older hubs fault with "Invalid method" and get
//! the old protocol (`getRepo` polling).

use std::time::Duration;

use koji_adjutant_actors::error::{Fault, HandlerError, HubError};
use koji_adjutant_actors::handler::{TaskContext, TaskHandler, TaskRequest, WaitOptions};
use koji_adjutant_actors::hub::{SubtaskOptions, TaskInfo};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::build::subtask_value;
use super::errors::BuildFailure;
use super::hubcalls::{Calls, field_i64, field_str, kwargs};
use super::services::BuildServices;

pub const WAITREPO_WEIGHT: f64 = 0.2;

/// A hub that predates repo requests answers `repo.request` with this fault.
fn is_invalid_method(error: &HubError) -> bool {
    error.fault_code() == Some(1000) && error.message.contains("Invalid method")
}

/// `name-version-release` split like `koji.parse_NVR`.
pub fn parse_nvr(nvr: &str) -> Result<(String, String, String), BuildFailure> {
    let mut parts = nvr.rsplitn(3, '-');
    let (Some(release), Some(version), Some(name)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(BuildFailure::generic(format!("invalid format: {nvr}")));
    };
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return Err(BuildFailure::generic(format!("invalid format: {nvr}")));
    }
    Ok((name.to_owned(), version.to_owned(), release.to_owned()))
}

/// `true` when every NVR is tagged in the tag (with inheritance) at `event`.
async fn builds_tagged(
    calls: &Calls<'_>,
    tag_id: i64,
    nvrs: &[String],
    event: Option<i64>,
) -> Result<bool, HandlerError> {
    for nvr in nvrs {
        let (name, version, release) = parse_nvr(nvr)?;
        let tagged = calls.list_tagged(tag_id, &name, event).await?;
        let present = tagged.as_array().is_some_and(|builds| {
            builds.iter().any(|b| {
                b.get("version").and_then(Value::as_str) == Some(&version)
                    && b.get("release").and_then(Value::as_str) == Some(&release)
            })
        });
        if !present {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A repo from `repo.request` is usable when it is the tag's, new enough and holds the builds.
async fn acceptable(
    calls: &Calls<'_>,
    repo: &Value,
    tag_id: i64,
    min_event: Option<i64>,
    nvrs: &[String],
) -> Result<bool, HandlerError> {
    if repo.get("tag_id").and_then(Value::as_i64) != Some(tag_id) {
        return Ok(false);
    }
    let create_event = repo.get("create_event").and_then(Value::as_i64);
    if let Some(min) = min_event
        && create_event.is_none_or(|event| event < min)
    {
        return Ok(false);
    }
    if nvrs.is_empty() {
        return Ok(true);
    }
    builds_tagged(calls, tag_id, nvrs, create_event).await
}

/// `BaseTaskHandler.getRepo(tag, builds, wait)`: a usable repo now, or a `waitrepo` subtask's.
pub async fn get_repo(
    ctx: &TaskContext,
    tag: &Value,
    builds: &[String],
    wait: bool,
) -> Result<Value, HandlerError> {
    let calls = Calls::new(ctx.hub.as_ref());
    let taginfo = calls.get_tag(tag, None).await?;
    let tag_id = field_i64(&taginfo, "id", "the tag")?;
    let tag_name = field_str(&taginfo, "name", "the tag")?.to_owned();
    let min_event = if wait {
        Some(calls.tag_last_change_event(tag_id).await?)
    } else {
        None
    };
    let nvrs_arg = if builds.is_empty() {
        Value::Null
    } else {
        json!(builds)
    };
    let mut arglist = vec![json!(tag_name), Value::Null, nvrs_arg.clone()];
    let builds_ready = builds.is_empty() || builds_tagged(&calls, tag_id, builds, None).await?;
    if builds_ready {
        match calls.repo_request(tag_id, min_event).await {
            Ok(check) => {
                let repo = check.get("repo").cloned().unwrap_or(Value::Null);
                if !repo.is_null() && acceptable(&calls, &repo, tag_id, min_event, builds).await? {
                    return Ok(repo);
                }
                let request_min = check
                    .get("request")
                    .and_then(|r| r.get("min_event"))
                    .cloned()
                    .unwrap_or(Value::Null);
                arglist.push(min_event.map(|e| json!(e)).unwrap_or(request_min));
            }
            Err(error) if is_invalid_method(&error) => {
                return old_get_repo(ctx, &calls, tag_id, &tag_name, builds, wait, nvrs_arg).await;
            }
            Err(error) => return Err(error.into()),
        }
    } else {
        arglist.push(json!(min_event));
    }
    waitrepo_subtask(ctx, arglist).await
}

async fn waitrepo_subtask(ctx: &TaskContext, arglist: Vec<Value>) -> Result<Value, HandlerError> {
    let child = ctx
        .hub
        .subtask(
            ctx.task_id,
            "waitrepo",
            arglist,
            &SubtaskOptions {
                label: Some("waitrepo".to_owned()),
                ..SubtaskOptions::default()
            },
        )
        .await?;
    let results = ctx.wait(Some(vec![child]), WaitOptions::default()).await?;
    subtask_value(&results, child)
}

/// kojid ≤1.34's `getRepo` against a hub without repo requests.
async fn old_get_repo(
    ctx: &TaskContext,
    calls: &Calls<'_>,
    tag_id: i64,
    tag_name: &str,
    builds: &[String],
    mut wait: bool,
    nvrs_arg: Value,
) -> Result<Value, HandlerError> {
    let repo = ctx
        .hub
        .call("getRepo", vec![json!(tag_id)], Map::new())
        .await?;
    if repo.is_null() {
        let targets = ctx
            .hub
            .call(
                "getBuildTargets",
                vec![],
                kwargs([("buildTagID", json!(tag_id))]),
            )
            .await?;
        if targets.as_array().is_none_or(Vec::is_empty) {
            return Err(
                BuildFailure::build(format!("no repo (and no target) for tag {tag_name}")).into(),
            );
        }
        wait = true;
    } else if !builds.is_empty() {
        let event = repo.get("create_event").and_then(Value::as_i64);
        if !builds_tagged(calls, tag_id, builds, event).await? {
            wait = true;
        }
    }
    if !wait {
        return Ok(repo);
    }
    waitrepo_subtask(ctx, vec![json!(tag_name), Value::Null, nvrs_arg]).await
}

/// `waitrepo(tag, newer_than=None, nvrs=None, min_event=None)`.
pub struct WaitrepoTask {
    pub services: BuildServices,
}

impl WaitrepoTask {
    async fn pause(&self, ctx: &TaskContext) -> Result<(), HandlerError> {
        tokio::select! {
            () = tokio::time::sleep(self.services.settings.waitrepo_pause) => Ok(()),
            () = ctx.cancel.cancelled() => Err(HandlerError::Aborted("cancelled while waiting for a repo".to_owned())),
        }
    }

    async fn run_wait(&self, ctx: &TaskContext) -> Result<Value, HandlerError> {
        let request: &TaskRequest = &ctx.request;
        request.check_signature("waitrepo", &["tag", "newer_than", "nvrs", "min_event"])?;
        let tag = request
            .arg(0, "tag")
            .cloned()
            .ok_or_else(|| HandlerError::Fault(Fault::parameter("waitrepo() requires a tag")))?;
        let newer_than = request.arg(1, "newer_than").cloned();
        let nvrs: Vec<String> = request
            .arg(2, "nvrs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let min_event_arg = request.arg(3, "min_event").cloned();
        if newer_than.is_some() && min_event_arg.is_some() {
            return Err(
                BuildFailure::generic("newer_than and min_event are mutually exclusive").into(),
            );
        }
        let calls = Calls::new(ctx.hub.as_ref());
        let taginfo = calls.get_tag(&tag, None).await?;
        let tag_id = field_i64(&taginfo, "id", "the tag")?;
        let tag_name = field_str(&taginfo, "name", "the tag")?.to_owned();
        let newer_than_ts = newer_than.as_ref().and_then(Value::as_f64);
        let wants_last = newer_than.as_ref().and_then(Value::as_str) == Some("now")
            || min_event_arg.as_ref().and_then(Value::as_str) == Some("last");
        let mut min_event = min_event_arg.as_ref().and_then(Value::as_i64);
        if wants_last {
            min_event = Some(calls.tag_last_change_event(tag_id).await?);
        } else if let Some(ts) = newer_than_ts {
            let before = ctx
                .hub
                .call("getLastEvent", vec![], kwargs([("before", json!(ts))]))
                .await?;
            let after = before.get("id").cloned().unwrap_or(Value::Null);
            let first = ctx
                .hub
                .call(
                    "tagFirstChangeEvent",
                    vec![json!(tag_id)],
                    kwargs([("after", after)]),
                )
                .await?;
            min_event = match first.as_i64() {
                Some(event) => Some(event),
                None => Some(calls.tag_last_change_event(tag_id).await?),
            };
        }
        let started = Instant::now();
        let timeout = self.services.settings.waitrepo_timeout;
        let mut request_id: Option<i64> = None;
        let mut old_hub = false;
        loop {
            if started.elapsed() > timeout {
                return Err(BuildFailure::generic(format!(
                    "Unsuccessfully waited {} for a new {tag_name} repo",
                    humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()))
                ))
                .into());
            }
            if !nvrs.is_empty() && !builds_tagged(&calls, tag_id, &nvrs, None).await? {
                self.pause(ctx).await?;
                continue;
            }
            if old_hub {
                let repo = ctx
                    .hub
                    .call("getRepo", vec![json!(tag_id)], Map::new())
                    .await?;
                if !repo.is_null() {
                    let new_enough = newer_than_ts.is_none_or(|ts| {
                        repo.get("create_ts")
                            .and_then(Value::as_f64)
                            .is_some_and(|c| c > ts)
                    });
                    let event = repo.get("create_event").and_then(Value::as_i64);
                    if new_enough && builds_tagged(&calls, tag_id, &nvrs, event).await? {
                        return Ok(repo);
                    }
                }
                self.pause(ctx).await?;
                continue;
            }
            let check = match request_id {
                None => match calls.repo_request(tag_id, min_event).await {
                    Ok(check) => check,
                    Err(error) if is_invalid_method(&error) => {
                        old_hub = true;
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                },
                Some(id) => calls.repo_check_request(id).await?,
            };
            let repo = check.get("repo").cloned().unwrap_or(Value::Null);
            if !repo.is_null() && acceptable(&calls, &repo, tag_id, min_event, &nvrs).await? {
                return Ok(repo);
            }
            if let Some(req) = check.get("request").filter(|r| !r.is_null()) {
                if req.get("active").and_then(Value::as_bool) == Some(false) {
                    return Err(BuildFailure::generic(format!(
                        "Repo request no longer active: {}",
                        req.get("id").unwrap_or(&Value::Null)
                    ))
                    .into());
                }
                request_id = req.get("id").and_then(Value::as_i64).or(request_id);
            }
            self.pause(ctx).await?;
        }
    }
}

#[async_trait::async_trait]
impl TaskHandler for WaitrepoTask {
    fn weight(&self) -> f64 {
        WAITREPO_WEIGHT
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        self.run_wait(&ctx).await
    }
}

pub fn waitrepo_factory(
    services: BuildServices,
) -> impl Fn(&TaskRequest, &TaskInfo) -> Box<dyn TaskHandler> + Send + Sync + 'static {
    move |_request, _info| {
        Box::new(WaitrepoTask {
            services: services.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvrs_split_from_the_right() {
        assert_eq!(
            parse_nvr("python-foo-1.2-3.fc40").unwrap(),
            ("python-foo".into(), "1.2".into(), "3.fc40".into())
        );
        assert!(parse_nvr("foo-1").is_err());
        assert!(parse_nvr("-1-2").is_err());
    }
}
