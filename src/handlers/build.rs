//! `build(src, target, opts=None)`, the parent build task (§4.1): resolves target and repo,
//! asks the hub's policies, gets the SRPM rebuilt, spawns one `buildArch` per arch, imports
//! the result (`completeBuild` / `moveBuildToScratch`) and tags it.

use koji_adjutant_actors::error::{Fault, HandlerError};
use koji_adjutant_actors::handler::{TaskContext, TaskHandler, TaskRequest, WaitOptions};
use koji_adjutant_actors::hub::{SubtaskOptions, SubtaskResult};
use koji_adjutant_actors::snapshot::TaskPhase;
use serde_json::{Map, Value, json};

use super::arches::{ArchListInput, arch_list, choose_taskarch, random_pick};
use super::common::{fetch_srpm, fresh_workdir, is_scm_url, remove_workdir};
use super::errors::BuildFailure;
use super::hubcalls::{Calls, extra, field_i64, field_str, kwargs, repo_state_name, truthy};
use super::rpmheader::RpmHeader;
use super::services::BuildServices;
use super::waitrepo::get_repo;

pub const WEIGHT: f64 = 0.2;

pub struct BuildTask {
    pub services: BuildServices,
}

/// The merged results of the buildArch subtasks (kojid's `runBuilds` return value).
#[derive(Debug, Clone, PartialEq)]
pub struct MergedBuild {
    pub srpm: String,
    pub rpms: Vec<String>,
    pub brmap: Map<String, Value>,
    /// arch → log paths.
    pub logs: Map<String, Value>,
}

/// kojid's merge of `buildArch` results, in subtask order.
pub fn merge_build_results(
    task_id: i64,
    results: &[(String, Value)],
) -> Result<MergedBuild, BuildFailure> {
    let mut rpms = Vec::new();
    let mut brmap = Map::new();
    let mut logs = Map::new();
    let mut built_srpm: Option<String> = None;
    for (arch, result) in results {
        let brootid = result.get("brootid").cloned().unwrap_or(Value::Null);
        for path in strings(result.get("rpms")) {
            brmap.insert(path.clone(), brootid.clone());
            rpms.push(path);
        }
        let arch_logs: Vec<Value> = strings(result.get("logs"))
            .into_iter()
            .map(Value::String)
            .collect();
        if !arch_logs.is_empty() {
            match logs.entry(arch.clone()) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(Value::Array(arch_logs));
                }
                serde_json::map::Entry::Occupied(mut slot) => {
                    if let Value::Array(list) = slot.get_mut() {
                        list.extend(arch_logs);
                    }
                }
            }
        }
        if let Some(srpm) = strings(result.get("srpms")).into_iter().next() {
            if built_srpm.is_some() {
                return Err(BuildFailure::build(format!(
                    "multiple builds returned a srpm.  task {task_id}"
                )));
            }
            brmap.insert(srpm.clone(), brootid.clone());
            built_srpm = Some(srpm);
        }
    }
    let srpm = built_srpm.ok_or_else(|| BuildFailure::build("could not find a built srpm"))?;
    Ok(MergedBuild {
        srpm,
        rpms,
        brmap,
        logs,
    })
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The `data` of `host.initBuild` (kojid key order: name, version, release, epoch, task_id,
/// source, extra, draft).
pub fn init_build_data(
    header: &RpmHeader,
    task_id: i64,
    source: Option<&Value>,
    opts: &Map<String, Value>,
) -> Result<Value, BuildFailure> {
    let mut data = Map::new();
    data.insert("name".to_owned(), json!(header.name));
    data.insert("version".to_owned(), json!(header.version));
    data.insert("release".to_owned(), json!(header.release));
    data.insert("epoch".to_owned(), json!(header.epoch));
    data.insert("task_id".to_owned(), json!(task_id));
    let mut extra_map = Map::new();
    if let Some(source) = source {
        data.insert(
            "source".to_owned(),
            source.get("source").cloned().unwrap_or(Value::Null),
        );
        extra_map.insert(
            "source".to_owned(),
            json!({"original_url": source.get("url").cloned().unwrap_or(Value::Null)}),
        );
    }
    // kojid tests truthiness: the CLI always sends `{}`, which records nothing.
    if let Some(metadata) = opts.get("custom_user_metadata").filter(|v| truthy(Some(v))) {
        if !metadata.is_object() {
            return Err(BuildFailure::generic(
                "custom_user_metadata must be a dictionary (a JSON object)",
            ));
        }
        extra_map.insert("custom_user_metadata".to_owned(), metadata.clone());
    }
    if !extra_map.is_empty() {
        data.insert("extra".to_owned(), Value::Object(extra_map));
    }
    if truthy(opts.get("draft")) {
        data.insert("draft".to_owned(), json!(true));
    }
    Ok(Value::Object(data))
}

struct Resolved {
    task_info: Value,
    build_tag: Value,
    dest_tag: Value,
    dest_tag_name: String,
    target_name: Option<String>,
    repo_info: Option<Value>,
    skip_tag: bool,
}

impl BuildTask {
    async fn resolve(
        &self,
        ctx: &TaskContext,
        target: Option<&Value>,
        opts: &Map<String, Value>,
        event_id: &mut Option<i64>,
    ) -> Result<Resolved, HandlerError> {
        let calls = Calls::new(ctx.hub.as_ref());
        let mut repo_info = None;
        if let Some(repo_id) = opts.get("repo_id").filter(|v| !v.is_null()) {
            let repo_id = repo_id.as_i64().ok_or_else(|| {
                BuildFailure::generic(format!("repo_id must be an integer, got {repo_id}"))
            })?;
            let info = calls.repo_info(repo_id, false).await?;
            if info.is_null() {
                return Err(BuildFailure::build(format!("No such repo: {repo_id}")).into());
            }
            let state = repo_state_name(info.get("state").and_then(Value::as_i64).unwrap_or(-1));
            if state != "READY" && state != "EXPIRED" {
                return Err(BuildFailure::build(format!(
                    "Bad repo: {} ({state})",
                    info.get("id").unwrap_or(&Value::Null)
                ))
                .into());
            }
            *event_id = info.get("create_event").and_then(Value::as_i64);
            repo_info = Some(info);
        }
        let task_info = calls.get_task_info(ctx.task_id).await?;
        let target_info = match target {
            Some(target) => {
                let info = calls.get_build_target(target, *event_id).await?;
                (!info.is_null()).then_some(info)
            }
            None => None,
        };
        let mut skip_tag = truthy(opts.get("skip_tag"));
        if let Some(info) = &target_info {
            let build_tag = info.get("build_tag").cloned().unwrap_or(Value::Null);
            if let Some(repo) = &repo_info
                && repo.get("tag_id") != Some(&build_tag)
            {
                return Err(BuildFailure::build(format!(
                    "Repo/Target mismatch: {}/{}",
                    repo.get("tag_name").and_then(Value::as_str).unwrap_or("?"),
                    info.get("build_tag_name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                ))
                .into());
            }
            return Ok(Resolved {
                task_info,
                build_tag,
                dest_tag: info.get("dest_tag").cloned().unwrap_or(Value::Null),
                dest_tag_name: info
                    .get("dest_tag_name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                target_name: info.get("name").and_then(Value::as_str).map(str::to_owned),
                repo_info,
                skip_tag,
            });
        }
        let Some(repo) = repo_info else {
            let shown = target.map(|t| t.to_string()).unwrap_or("None".to_owned());
            return Err(BuildFailure::generic(format!(
                "unknown build target: {}",
                shown.trim_matches('"')
            ))
            .into());
        };
        let build_tag = repo.get("tag_id").cloned().unwrap_or(Value::Null);
        let (dest_tag, dest_tag_name) = match target {
            None => {
                skip_tag = true;
                let name = repo
                    .get("tag_name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                (build_tag.clone(), name)
            }
            Some(target) => {
                let mut kw = Map::new();
                kw.insert("event".to_owned(), json!(*event_id));
                let tag = ctx.hub.call("getTag", vec![target.clone()], kw).await?;
                if tag.is_null() {
                    return Err(BuildFailure::generic(format!(
                        "neither tag nor target: {}",
                        target.as_str().unwrap_or(&target.to_string())
                    ))
                    .into());
                }
                (
                    tag.get("id").cloned().unwrap_or(Value::Null),
                    tag.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                )
            }
        };
        Ok(Resolved {
            task_info,
            build_tag,
            dest_tag,
            dest_tag_name,
            target_name: None,
            repo_info: Some(repo),
            skip_tag,
        })
    }

    /// kojid's `choose_taskarch(arch, srpm, build_tag)`; reads the build config only for
    /// noarch, as kojid does.
    async fn choose_taskarch(
        &self,
        ctx: &TaskContext,
        arch: &str,
        header: Option<&RpmHeader>,
        build_tag: &Value,
        event_id: Option<i64>,
    ) -> Result<String, HandlerError> {
        let literal = &self.services.settings.literal_task_arches;
        if arch != "noarch" {
            return Ok(choose_taskarch(
                arch,
                literal,
                "",
                &[],
                &[],
                None,
                &random_pick,
            ));
        }
        let config = Calls::new(ctx.hub.as_ref())
            .get_build_config(build_tag, event_id)
            .await?;
        let tag_arches = config.get("arches").and_then(Value::as_str).unwrap_or("");
        let extra = extra(&config);
        let noarch_arches = extra.get("noarch_arches").and_then(Value::as_str);
        let (exclusive, exclude) = header
            .map(|h| (h.exclusive_arch.clone(), h.exclude_arch.clone()))
            .unwrap_or_default();
        Ok(choose_taskarch(
            arch,
            literal,
            tag_arches,
            &exclusive,
            &exclude,
            noarch_arches,
            &random_pick,
        ))
    }

    async fn run_build(&self, ctx: &TaskContext) -> Result<Value, HandlerError> {
        let request = &ctx.request;
        request.check_signature("build", &["src", "target", "opts"])?;
        let src = request
            .arg(0, "src")
            .and_then(Value::as_str)
            .ok_or_else(|| Fault::parameter("build() requires a source (src) string"))
            .map_err(HandlerError::Fault)?
            .to_owned();
        let target = request.arg(1, "target").cloned();
        let opts: Map<String, Value> = match request.arg(2, "opts") {
            None => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(HandlerError::Fault(Fault::parameter(format!(
                    "build() opts must be a struct, got {other}"
                ))));
            }
        };
        let scratch = truthy(opts.get("scratch"));
        if truthy(opts.get("arch_override")) && !scratch {
            return Err(
                BuildFailure::build("arch_override is only allowed for scratch builds").into(),
            );
        }
        let calls = Calls::new(ctx.hub.as_ref());
        let workdir = fresh_workdir(&self.services, ctx.task_id)?;
        let mut event_id = None;
        let resolved = self
            .resolve(ctx, target.as_ref(), &opts, &mut event_id)
            .await?;
        let mut resolved = resolved;
        let task_info = std::mem::take(&mut resolved.task_info);
        let from_scm = is_scm_url(&src);
        let mut policy = Map::new();
        policy.insert(
            "user_id".to_owned(),
            task_info.get("owner").cloned().unwrap_or(Value::Null),
        );
        policy.insert("source".to_owned(), json!(src));
        policy.insert("task_id".to_owned(), json!(ctx.task_id));
        policy.insert("build_tag".to_owned(), resolved.build_tag.clone());
        policy.insert("skip_tag".to_owned(), json!(resolved.skip_tag));
        policy.insert(
            "scratch".to_owned(),
            opts.get("scratch").cloned().unwrap_or(Value::Null),
        );
        policy.insert(
            "draft".to_owned(),
            opts.get("draft").cloned().unwrap_or(Value::Null),
        );
        policy.insert("from_scm".to_owned(), json!(from_scm));
        policy.insert(
            "repo_id".to_owned(),
            opts.get("repo_id").cloned().unwrap_or(Value::Null),
        );
        if let Some(name) = &resolved.target_name {
            policy.insert("target".to_owned(), json!(name));
        }
        if !resolved.skip_tag {
            policy.insert("tag".to_owned(), resolved.dest_tag.clone());
        }
        let policy = Value::Object(policy);
        if !from_scm && !scratch {
            calls.assert_policy("build_from_srpm", &policy).await?;
        }
        if opts.get("repo_id").is_some_and(|v| !v.is_null()) {
            calls.assert_policy("build_from_repo_id", &policy).await?;
        }
        calls.assert_policy("build_rpm", &policy).await?;
        let repo_info = match resolved.repo_info.take() {
            Some(info) => info,
            None => {
                let builds: Vec<String> = strings(opts.get("wait_builds"));
                let info = get_repo(
                    ctx,
                    &resolved.build_tag,
                    &builds,
                    truthy(opts.get("wait_repo")),
                )
                .await?;
                event_id = Some(calls.get_last_event().await?);
                info
            }
        };
        let repo_id = field_i64(&repo_info, "id", "the repo")?;
        ctx.phases.describe("repo_id", &repo_id.to_string());

        // The SRPM.
        let (srpm, source) = if from_scm {
            let arch = self
                .choose_taskarch(ctx, "noarch", None, &resolved.build_tag, event_id)
                .await?;
            self.srpm_subtask(
                ctx,
                "buildSRPMFromSCM",
                &src,
                &resolved.build_tag,
                repo_id,
                &opts,
                &arch,
            )
            .await?
        } else {
            let rebuild = if scratch && opts.contains_key("rebuild_srpm") {
                truthy(opts.get("rebuild_srpm"))
            } else {
                let config = calls
                    .get_build_config(&resolved.build_tag, event_id)
                    .await?;
                extra(&config)
                    .get("rebuild_srpm")
                    .map(|v| truthy(Some(v)))
                    .unwrap_or(true)
            };
            if rebuild {
                let arch = self
                    .choose_taskarch(ctx, "noarch", None, &resolved.build_tag, event_id)
                    .await?;
                self.srpm_subtask(
                    ctx,
                    "rebuildSRPM",
                    &src,
                    &resolved.build_tag,
                    repo_id,
                    &opts,
                    &arch,
                )
                .await?
            } else {
                (src.clone(), None)
            }
        };
        let (_, header) =
            fetch_srpm(self.services.files.for_task(ctx).as_ref(), &workdir, &srpm).await?;
        ctx.phases.describe("nvr", &header.nvr());
        let data = init_build_data(&header, ctx.task_id, source.as_ref(), &opts)?;

        let package_config = calls
            .get_package_config(&resolved.dest_tag, &header.name, event_id)
            .await?;
        let extra_arches = package_config
            .get("extra_arches")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if !resolved.skip_tag && !scratch {
            if package_config.is_null() {
                return Err(BuildFailure::build(format!(
                    "package {} not in list for tag {}",
                    header.name, resolved.dest_tag_name
                ))
                .into());
            }
            if truthy(package_config.get("blocked")) {
                return Err(BuildFailure::build(format!(
                    "package {} is blocked for tag {}",
                    header.name, resolved.dest_tag_name
                ))
                .into());
            }
        }
        let build_config = calls
            .get_build_config(&resolved.build_tag, event_id)
            .await?;
        let archlist = arch_list(&ArchListInput {
            tag_arches: build_config
                .get("arches")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            extra_arches,
            build_archs: header.build_archs.clone(),
            exclusive_arch: header.exclusive_arch.clone(),
            exclude_arch: header.exclude_arch.clone(),
            scratch,
            arch_override: opts
                .get("arch_override")
                .and_then(Value::as_str)
                .map(str::to_owned),
            tag_name: build_config
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            tag_id: build_config.get("id").and_then(Value::as_i64).unwrap_or(0),
        })?;

        let build_id = if scratch {
            None
        } else {
            let value = ctx
                .hub
                .call("host.initBuild", vec![data], Map::new())
                .await?;
            Some(value.as_i64().ok_or_else(|| {
                BuildFailure::generic(format!("host.initBuild returned {value}, not a build id"))
            })?)
        };
        if let Some(id) = build_id {
            ctx.phases.describe("build_id", &id.to_string());
        }
        let failany = truthy(opts.get("fail_fast")) || !self.services.settings.build_arch_can_fail;
        let outcome = self
            .run_builds(
                ctx,
                &srpm,
                &header,
                &resolved.build_tag,
                &archlist,
                repo_id,
                failany,
                event_id,
            )
            .await;
        let imported = match outcome {
            Ok(merged) => self.import(ctx, build_id, &merged).await,
            Err(error) => Err(error),
        };
        if let Err(error) = imported {
            if let Some(build_id) = build_id
                && !matches!(error, HandlerError::Aborted(_))
            {
                ctx.hub
                    .call(
                        "host.failBuild",
                        vec![json!(ctx.task_id), json!(build_id)],
                        Map::new(),
                    )
                    .await?;
            }
            return Err(error);
        }
        if let Some(build_id) = build_id
            && !resolved.skip_tag
        {
            let child = ctx
                .hub
                .subtask(
                    ctx.task_id,
                    "tagBuild",
                    vec![
                        resolved.dest_tag.clone(),
                        json!(build_id),
                        json!(false),
                        Value::Null,
                        json!(true),
                    ],
                    &SubtaskOptions {
                        label: Some("tag".to_owned()),
                        arch: Some("noarch".to_owned()),
                        ..SubtaskOptions::default()
                    },
                )
                .await?;
            ctx.wait(Some(vec![child]), WaitOptions::default()).await?;
        }
        Ok(Value::Null)
    }

    #[allow(clippy::too_many_arguments)]
    async fn srpm_subtask(
        &self,
        ctx: &TaskContext,
        method: &str,
        src: &str,
        build_tag: &Value,
        repo_id: i64,
        opts: &Map<String, Value>,
        arch: &str,
    ) -> Result<(String, Option<Value>), HandlerError> {
        let child = ctx
            .hub
            .subtask(
                ctx.task_id,
                method,
                vec![
                    json!(src),
                    build_tag.clone(),
                    json!({"repo_id": repo_id, "scratch": opts.get("scratch").cloned().unwrap_or(Value::Null)}),
                ],
                &SubtaskOptions {
                    label: Some("srpm".to_owned()),
                    arch: Some(arch.to_owned()),
                    ..SubtaskOptions::default()
                },
            )
            .await?;
        let results = ctx.wait(Some(vec![child]), WaitOptions::default()).await?;
        let result = subtask_value(&results, child)?;
        let srpm = field_str(&result, "srpm", &format!("the {method} result"))?.to_owned();
        Ok((srpm, result.get("source").cloned()))
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_builds(
        &self,
        ctx: &TaskContext,
        srpm: &str,
        header: &RpmHeader,
        build_tag: &Value,
        archlist: &[String],
        repo_id: i64,
        failany: bool,
        event_id: Option<i64>,
    ) -> Result<MergedBuild, HandlerError> {
        let mut children: Vec<(String, i64)> = Vec::new();
        let mut keep_srpm = true;
        for arch in archlist {
            let taskarch = self
                .choose_taskarch(ctx, arch, Some(header), build_tag, event_id)
                .await?;
            let child = ctx
                .hub
                .subtask(
                    ctx.task_id,
                    "buildArch",
                    vec![
                        json!(srpm),
                        build_tag.clone(),
                        json!(arch),
                        json!(keep_srpm),
                        json!({"repo_id": repo_id}),
                    ],
                    &SubtaskOptions {
                        label: Some(arch.clone()),
                        arch: Some(taskarch),
                        ..SubtaskOptions::default()
                    },
                )
                .await?;
            keep_srpm = false;
            children.push((arch.clone(), child));
        }
        ctx.phases.enter(TaskPhase::Building);
        let ids: Vec<i64> = children.iter().map(|(_, id)| *id).collect();
        let results = ctx
            .wait(
                Some(ids),
                WaitOptions {
                    all: true,
                    failany,
                    ..WaitOptions::default()
                },
            )
            .await?;
        let mut ordered = Vec::new();
        for (arch, child) in &children {
            ordered.push((arch.clone(), subtask_value(&results, *child)?));
        }
        Ok(merge_build_results(ctx.task_id, &ordered)?)
    }

    async fn import(
        &self,
        ctx: &TaskContext,
        build_id: Option<i64>,
        merged: &MergedBuild,
    ) -> Result<(), HandlerError> {
        ctx.phases.enter(TaskPhase::Uploading);
        let logs = kwargs([("logs", Value::Object(merged.logs.clone()))]);
        match build_id {
            None => {
                ctx.hub
                    .call(
                        "host.moveBuildToScratch",
                        vec![json!(ctx.task_id), json!(merged.srpm), json!(merged.rpms)],
                        logs,
                    )
                    .await?;
            }
            Some(build_id) => {
                ctx.hub
                    .call(
                        "host.completeBuild",
                        vec![
                            json!(ctx.task_id),
                            json!(build_id),
                            json!(merged.srpm),
                            json!(merged.rpms),
                            Value::Object(merged.brmap.clone()),
                        ],
                        logs,
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

/// One subtask's result out of `wait`; a failed child (only possible with `canfail`) fails
/// the parent with its fault, as kojid re-raises it.
pub fn subtask_value(results: &[(i64, SubtaskResult)], child: i64) -> Result<Value, HandlerError> {
    match results.iter().find(|(id, _)| *id == child) {
        Some((_, SubtaskResult::Closed(value))) => Ok(value.clone()),
        Some((_, SubtaskResult::Failed(fault))) => Err(HandlerError::Fault(fault.clone())),
        None => Err(HandlerError::Other(format!(
            "the hub returned no result for subtask {child}"
        ))),
    }
}

#[async_trait::async_trait]
impl TaskHandler for BuildTask {
    fn weight(&self) -> f64 {
        WEIGHT
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        let outcome = self.run_build(&ctx).await;
        remove_workdir(&self.services, ctx.task_id);
        outcome
    }
}

/// Creates `build` handlers.
pub fn factory(
    services: BuildServices,
) -> impl Fn(&TaskRequest, &koji_adjutant_actors::hub::TaskInfo) -> Box<dyn TaskHandler>
+ Send
+ Sync
+ 'static {
    move |_request, _info| {
        Box::new(BuildTask {
            services: services.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch_result(arch: &str, brootid: i64, srpm: bool) -> (String, Value) {
        let id = brootid + 10;
        let mut result = json!({
            "rpms": [format!("tasks/{id}/{id}/hello-1.0-1.{arch}.rpm")],
            "srpms": [],
            "logs": [format!("tasks/{id}/{id}/build.log")],
            "brootid": brootid,
        });
        if srpm {
            result["srpms"] = json!([format!("tasks/{id}/{id}/hello-1.0-1.src.rpm")]);
        }
        (arch.to_owned(), result)
    }

    #[test]
    fn merges_like_kojid_run_builds() {
        let merged = merge_build_results(
            6,
            &[
                arch_result("x86_64", 4, true),
                arch_result("aarch64", 5, false),
            ],
        )
        .unwrap();
        assert_eq!(merged.srpm, "tasks/14/14/hello-1.0-1.src.rpm");
        assert_eq!(
            merged.rpms,
            [
                "tasks/14/14/hello-1.0-1.x86_64.rpm",
                "tasks/15/15/hello-1.0-1.aarch64.rpm"
            ]
        );
        assert_eq!(merged.brmap["tasks/14/14/hello-1.0-1.src.rpm"], json!(4));
        assert_eq!(
            merged.brmap["tasks/15/15/hello-1.0-1.aarch64.rpm"],
            json!(5)
        );
        assert_eq!(merged.logs["aarch64"], json!(["tasks/15/15/build.log"]));
    }

    #[test]
    fn exactly_one_srpm_is_required() {
        let none = merge_build_results(6, &[arch_result("x86_64", 4, false)]).unwrap_err();
        assert_eq!(none.message, "could not find a built srpm");
        let two = merge_build_results(
            6,
            &[
                arch_result("x86_64", 4, true),
                arch_result("aarch64", 5, true),
            ],
        )
        .unwrap_err();
        assert_eq!(two.message, "multiple builds returned a srpm.  task 6");
    }

    #[test]
    fn init_build_data_matches_the_transcript() {
        let header = RpmHeader {
            name: "hello".into(),
            version: "1.0".into(),
            release: "1".into(),
            ..RpmHeader::default()
        };
        let source = json!({"source": "hello-1.0-1.src.rpm", "url": "hello-1.0-1.src.rpm"});
        let data = init_build_data(&header, 6, Some(&source), &Map::new()).unwrap();
        assert_eq!(
            data,
            json!({"name": "hello", "version": "1.0", "release": "1", "epoch": null,
                   "task_id": 6, "source": "hello-1.0-1.src.rpm",
                   "extra": {"source": {"original_url": "hello-1.0-1.src.rpm"}}})
        );
        let mut opts = Map::new();
        opts.insert("custom_user_metadata".into(), json!("nope"));
        assert!(init_build_data(&header, 6, None, &opts).is_err());
        opts.insert("custom_user_metadata".into(), json!({"k": 1}));
        opts.insert("draft".into(), json!(true));
        let data = init_build_data(&header, 6, None, &opts).unwrap();
        assert_eq!(data["extra"]["custom_user_metadata"], json!({"k": 1}));
        assert_eq!(data["draft"], json!(true));
    }
}
