//! `buildArch` (§4.2) and `rebuildSRPM` (§4.3): one buildroot each, with kojid's hub-side
//! buildroot lifecycle (§5.1): `newBuildRoot` → `setBuildRootList` (INIT) → BUILDING →
//! [`updateBuildRootList`] → EXPIRED, on success and on failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use koji_adjutant_actors::error::{Fault, HandlerError, HubError};
use koji_adjutant_actors::handler::{TaskContext, TaskHandler, TaskRequest};
use koji_adjutant_actors::hub::{HostHub, HostInfo, TaskInfo};
use koji_adjutant_actors::snapshot::TaskPhase;
use serde_json::{Map, Value, json};

use super::arches::{canon_arch, find_arch, host_can_build, random_pick};
use super::common::{fetch_srpm, file_failure, fresh_workdir, remove_workdir};
use super::errors::{BuildFailure, build_failure_message};
use super::hubcalls::{Calls, extra, field_i64, field_str, repo_state_name, truthy};
use super::livelogs::LiveLogs;
use super::rpmheader::RpmHeader;
use super::services::{ActiveBuildroot, BuildServices, FileError, TaskFiles, task_upload_dir};
use crate::buildroot::{
    BuildrootError, BuildrootSpec, InstallGroup, InstalledRpms, TagExtra, repo_baseurls,
};

pub const BUILD_ARCH_WEIGHT: f64 = 1.5;
pub const REBUILD_SRPM_WEIGHT: f64 = 1.0;
const LIVE_LOG_PERIOD: Duration = Duration::from_secs(1);

/// An engine failure as the task's fault, in kojid's words where kojid has them: a failed
/// rpmbuild is mock's status 1, missing BuildRequires mock's status 30 (§4.2 step 6).
pub fn engine_failure(arch: &str, error: &BuildrootError) -> HandlerError {
    match error {
        BuildrootError::Cancelled { step } => {
            HandlerError::Aborted(format!("cancelled during {step}"))
        }
        BuildrootError::Rpmbuild { .. } => {
            BuildFailure::build(build_failure_message(arch, 1)).into()
        }
        BuildrootError::BuildRequires { .. } => {
            BuildFailure::build(build_failure_message(arch, 30)).into()
        }
        BuildrootError::Init { reason, .. } => BuildFailure::buildroot(format!(
            "could not init mock buildroot, {reason}; see root.log for more information"
        ))
        .into(),
        BuildrootError::Srpm { .. } => BuildFailure::build(error.to_string()).into(),
        other => BuildFailure::buildroot(other.to_string()).into(),
    }
}

/// Whatever stops a buildroot from coming up (the image, podman, the group install) is
/// kojid's "could not init mock buildroot" BuildrootError; a cancellation stays one.
pub fn init_failure(arch: &str, error: &BuildrootError) -> HandlerError {
    match error {
        BuildrootError::Init { .. } | BuildrootError::Cancelled { .. } => {
            engine_failure(arch, error)
        }
        other => BuildFailure::buildroot(format!("could not init mock buildroot, {other}")).into(),
    }
}

/// The installed-package list in `setBuildRootList` shape (§5.5): ids from the repo's
/// `rpmlist.jsonl` matched by NVRA, external repo attribution from the engine.
pub fn hub_rpm_list(
    installed: &InstalledRpms,
    rpmlist: Option<&HashMap<String, Value>>,
    external_repos: &[Value],
) -> Result<Value, BuildFailure> {
    let mut list = Vec::new();
    for rpm in installed.for_hub() {
        let mut entry = Map::new();
        entry.insert("name".into(), json!(rpm.name));
        entry.insert("version".into(), json!(rpm.version));
        entry.insert("release".into(), json!(rpm.release));
        entry.insert("epoch".into(), json!(rpm.epoch));
        entry.insert("arch".into(), json!(rpm.arch));
        entry.insert("size".into(), json!(rpm.size));
        entry.insert("buildtime".into(), json!(rpm.buildtime));
        entry.insert("payloadhash".into(), json!(rpm.payloadhash));
        if let Some(repo) = &rpm.external_repo {
            let known = external_repos
                .iter()
                .find(|e| e.get("external_repo_id").and_then(Value::as_i64) == Some(repo.id));
            let struct_ = known.cloned().unwrap_or_else(|| {
                json!({"external_repo_id": repo.id, "external_repo_name": repo.name, "url": repo.url})
            });
            entry.insert("external_repo".into(), struct_);
            entry.insert("location".into(), json!(repo.id));
        } else if let Some(known) = rpmlist.and_then(|list| list.get(&rpm.nvra())) {
            let repo_hash = known.get("payloadhash").and_then(Value::as_str);
            if repo_hash.is_some_and(|hash| hash != rpm.payloadhash) {
                return Err(BuildFailure::buildroot(format!(
                    "Installed rpm {} has payloadhash {} but the repo's rpmlist.jsonl says {}",
                    rpm.nvra(),
                    rpm.payloadhash,
                    repo_hash.unwrap_or_default()
                )));
            }
            if let Some(id) = known.get("id") {
                entry.insert("id".into(), id.clone());
            }
        }
        list.push(Value::Object(entry));
    }
    Ok(Value::Array(list))
}

/// `rpmlist.jsonl` lines keyed by `name-version-release.arch`.
pub fn parse_rpmlist(text: &str) -> Result<HashMap<String, Value>, BuildFailure> {
    let mut map = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|error| {
            BuildFailure::buildroot(format!("rpmlist.jsonl line {}: {error}", number + 1))
        })?;
        let part = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let nvra = format!(
            "{}-{}-{}.{}",
            part("name"),
            part("version"),
            part("release"),
            part("arch")
        );
        map.insert(nvra, value);
    }
    Ok(map)
}

/// The packager-visible header checks of a kept SRPM (kojid's `srpm_sanity_checks`).
pub fn srpm_sanity_checks(header: &RpmHeader) -> Result<(), BuildFailure> {
    for (tag, value) in [
        ("packager", &header.packager),
        ("vendor", &header.vendor),
        ("distribution", &header.distribution),
    ] {
        if value.as_deref().is_none_or(str::is_empty) {
            return Err(BuildFailure::build(format!(
                "The build system failed to set the {tag} tag"
            )));
        }
    }
    Ok(())
}

/// The repo and tag config a buildroot is made from (kojid's `BuildRoot._new`).
struct BuildrootBase {
    repo_id: i64,
    event: Option<i64>,
    tag_id: i64,
    tag_name: String,
    build_config: Value,
}

/// A buildroot registered with the hub, with its hub id.
struct HubBuildroot {
    id: i64,
    base: BuildrootBase,
    br_arch: String,
    buildroot: Option<Box<dyn ActiveBuildroot>>,
    expired: bool,
}

/// The steps both handlers share.
struct Pipeline<'a> {
    services: &'a BuildServices,
    /// This task's transfers, on its own session; the live logs share them.
    files: std::sync::Arc<dyn TaskFiles>,
    ctx: &'a TaskContext,
    workdir: PathBuf,
}

impl Pipeline<'_> {
    fn calls(&self) -> Calls<'_> {
        Calls::new(self.ctx.hub.as_ref())
    }

    /// `repoInfo(repo_id, strict)` with kojid's state check.
    async fn repo(&self, repo_id: i64) -> Result<Value, HandlerError> {
        let repo = self.calls().repo_info(repo_id, true).await?;
        let state = repo.get("state").and_then(Value::as_i64).unwrap_or(-1);
        match repo_state_name(state) {
            "READY" => {}
            "EXPIRED" => {
                tracing::info!(task_id = self.ctx.task_id, repo_id, "using an expired repo")
            }
            name => {
                return Err(BuildFailure::buildroot(format!(
                    "Requested repo ({repo_id}) is {name}"
                ))
                .into());
            }
        }
        Ok(repo)
    }

    async fn base(&self, repo_id: i64, tag: &Value) -> Result<BuildrootBase, HandlerError> {
        let repo = self.repo(repo_id).await?;
        let event = repo.get("create_event").and_then(Value::as_i64);
        let build_config = self.calls().get_build_config(tag, event).await?;
        let tag_id = field_i64(&build_config, "id", "the build config")?;
        if repo.get("tag_id").and_then(Value::as_i64) != Some(tag_id) {
            return Err(BuildFailure::buildroot("tag/repo mismatch").into());
        }
        Ok(BuildrootBase {
            repo_id,
            event,
            tag_id,
            tag_name: field_str(&build_config, "name", "the build config")?.to_owned(),
            build_config,
        })
    }

    /// `host.newBuildRoot`, the engine's init (mock `--init`) and `setBuildRootList`.
    async fn create(
        &self,
        base: BuildrootBase,
        arch: &str,
        group: InstallGroup,
    ) -> Result<HubBuildroot, HandlerError> {
        let br_arch = canon_arch(arch);
        let id = self
            .calls()
            .new_buildroot(base.repo_id, &br_arch, self.ctx.task_id)
            .await?;
        self.ctx.phases.describe("buildroot_id", &id.to_string());
        let mut hub_br = HubBuildroot {
            id,
            base,
            br_arch: br_arch.clone(),
            buildroot: None,
            expired: false,
        };
        let image = self
            .ctx
            .resolve_image(
                Some(hub_br.base.tag_name.clone()),
                hub_br.base.event,
                &br_arch,
            )
            .await;
        self.ctx.phases.describe("image", &image.image);
        let tag_extra = TagExtra(extra(&hub_br.base.build_config).into_iter().collect());
        let spec = BuildrootSpec {
            image: image.image,
            work_dir: self.workdir.clone(),
            arch: if arch == "armhfp" {
                "armv7hl".to_owned()
            } else {
                arch.to_owned()
            },
            tag_name: hub_br.base.tag_name.clone(),
            repo_id: Some(hub_br.base.repo_id),
            buildroot_id: Some(id),
            repo_urls: repo_baseurls(
                &self.services.topurls,
                self.services.topdir.as_deref(),
                &hub_br.base.tag_name,
                hub_br.base.repo_id,
                &br_arch,
            ),
            install_group: group,
            tag_extra,
            extra_macros: Vec::new(),
            settings: self.services.buildroot.clone(),
        };
        self.ctx.phases.enter(TaskPhase::Buildroot);
        match self.services.engine.init(self.ctx, spec).await {
            Ok(buildroot) => hub_br.buildroot = Some(buildroot),
            Err(error) => {
                self.expire(&mut hub_br).await;
                return Err(init_failure(arch, &error));
            }
        }
        let result = self.report_list(&hub_br, true).await;
        if let Err(error) = result {
            self.expire(&mut hub_br).await;
            return Err(error);
        }
        Ok(hub_br)
    }

    /// `setBuildRootList` (INIT) or `updateBuildRootList` with the buildroot's rpmdb.
    async fn report_list(&self, hub_br: &HubBuildroot, initial: bool) -> Result<(), HandlerError> {
        let Some(buildroot) = hub_br.buildroot.as_ref() else {
            return Ok(());
        };
        let installed = buildroot
            .installed_rpms()
            .await
            .map_err(|error| engine_failure(&hub_br.br_arch, &error))?;
        let external = self
            .calls()
            .get_external_repo_list(hub_br.base.tag_id, hub_br.base.event)
            .await?;
        let external: Vec<Value> = external.as_array().cloned().unwrap_or_default();
        let rpmlist = self.rpmlist(hub_br).await?;
        let list = hub_rpm_list(&installed, rpmlist.as_ref(), &external)?;
        if initial {
            self.calls().set_buildroot_list(hub_br.id, &list).await?;
        } else {
            self.calls().update_buildroot_list(hub_br.id, &list).await?;
        }
        Ok(())
    }

    /// The repo's `rpmlist.jsonl`; `None` for older repos without one (404).
    async fn rpmlist(
        &self,
        hub_br: &HubBuildroot,
    ) -> Result<Option<HashMap<String, Value>>, HandlerError> {
        let relpath = format!(
            "repos/{}/{}/{}/rpmlist.jsonl",
            hub_br.base.tag_name, hub_br.base.repo_id, hub_br.br_arch
        );
        let local = self.workdir.join("rpmlist.jsonl");
        match self.files.download(&relpath, &local).await {
            Ok(_) => {}
            Err(FileError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(file_failure(error)),
        }
        let text = std::fs::read_to_string(&local).map_err(|error| {
            HandlerError::Other(format!("cannot read {}: {error}", local.display()))
        })?;
        let _ = std::fs::remove_file(&local);
        Ok(Some(parse_rpmlist(&text)?))
    }

    async fn set_state(&self, hub_br: &HubBuildroot, state: &str) -> Result<(), HubError> {
        self.calls().set_buildroot_state(hub_br.id, state).await
    }

    /// EXPIRED on the hub and the container removed; errors are logged (the task's own error
    /// matters more, and the orphan reaper removes leftovers).
    async fn expire(&self, hub_br: &mut HubBuildroot) {
        if let Some(buildroot) = hub_br.buildroot.take()
            && let Err(error) = buildroot.release().await
        {
            tracing::warn!(task_id = self.ctx.task_id, %error, "could not remove the buildroot container");
        }
        if !hub_br.expired {
            hub_br.expired = true;
            if let Err(error) = self.set_state(hub_br, "EXPIRED").await {
                tracing::warn!(task_id = self.ctx.task_id, buildroot = hub_br.id, %error, "could not expire the buildroot");
            }
        }
    }

    async fn upload(&self, local: &Path) -> Result<String, HandlerError> {
        let name = local
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| HandlerError::Other(format!("{} has no file name", local.display())))?
            .to_owned();
        self.files
            .upload(self.ctx.task_id, local, &name)
            .await
            .map_err(file_failure)?;
        Ok(format!("{}/{name}", task_upload_dir(self.ctx.task_id)))
    }
}

fn opts_repo_id(request: &TaskRequest, position: usize) -> Result<i64, HandlerError> {
    request
        .arg(position, "opts")
        .and_then(|opts| opts.get("repo_id"))
        .and_then(Value::as_i64)
        .ok_or_else(|| BuildFailure::build("A repo id must be provided").into())
}

/// kojid's `checkHost`: the tag's arches and the host's must meet.
async fn tag_fits_host(
    root: Option<&Value>,
    host: &HostInfo,
    hub: &dyn HostHub,
) -> Result<bool, HubError> {
    let Some(root) = root else {
        return Ok(false);
    };
    let tag = match root {
        Value::String(name) => name.clone(),
        other => other.to_string(),
    };
    let config = hub.get_build_config(&tag, None).await?;
    let arches = config.get("arches").and_then(Value::as_str).unwrap_or("");
    Ok(host_can_build(&host.arches, arches))
}

fn host_arches(host: &Value) -> Vec<String> {
    host.get("arches")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `buildArch(pkg, root, arch, keep_srpm, opts=None)`.
pub struct BuildArchTask {
    pub services: BuildServices,
    pub request: TaskRequest,
}

impl BuildArchTask {
    async fn build(
        &self,
        ctx: &TaskContext,
        logs: &mut Option<LiveLogs>,
    ) -> Result<Value, HandlerError> {
        let request = &ctx.request;
        request.check_signature("buildArch", &["pkg", "root", "arch", "keep_srpm", "opts"])?;
        let pkg = request
            .arg(0, "pkg")
            .and_then(Value::as_str)
            .ok_or_else(|| HandlerError::Fault(Fault::parameter("buildArch() requires pkg")))?
            .to_owned();
        let root = request
            .arg(1, "root")
            .cloned()
            .ok_or_else(|| HandlerError::Fault(Fault::parameter("buildArch() requires root")))?;
        let arch = request
            .arg(2, "arch")
            .and_then(Value::as_str)
            .ok_or_else(|| HandlerError::Fault(Fault::parameter("buildArch() requires arch")))?
            .to_owned();
        let keep_srpm = truthy(request.arg(3, "keep_srpm"));
        let repo_id = opts_repo_id(request, 4)?;
        let workdir = fresh_workdir(&self.services, ctx.task_id)?;
        let files = self.services.files.for_task(ctx);
        *logs = Some(LiveLogs::start(
            std::sync::Arc::clone(&files),
            ctx.task_id,
            workdir.clone(),
            LIVE_LOG_PERIOD,
        ));
        let pipeline = Pipeline {
            services: &self.services,
            files,
            ctx,
            workdir: workdir.clone(),
        };
        let calls = pipeline.calls();
        let repo = calls.repo_info(repo_id, true).await?;
        let event = repo.get("create_event").and_then(Value::as_i64);
        let (srpm_path, header) = fetch_srpm(pipeline.files.as_ref(), &workdir, &pkg).await?;
        ctx.phases.describe("nvr", &header.nvr());
        if let Some(average) = calls.get_average_build_duration(&header.name).await?
            && average > 0.0
        {
            ctx.hub
                .call(
                    "host.setTaskWeight",
                    vec![
                        json!(ctx.task_id),
                        json!(super::arches::build_arch_weight(average)),
                    ],
                    Map::new(),
                )
                .await?;
        }
        let br_arch = if arch == "noarch" {
            let task = calls.get_task_info(ctx.task_id).await?;
            let preferred = task.get("arch").and_then(Value::as_str).map(str::to_owned);
            let host = calls.get_host().await?;
            let config = calls.get_build_config(&root, event).await?;
            find_arch(
                "noarch",
                &host_arches(&host),
                config.get("arches").and_then(Value::as_str).unwrap_or(""),
                preferred.as_deref(),
                &random_pick,
            )?
        } else {
            arch.clone()
        };
        let base = pipeline.base(repo_id, &root).await?;
        let mut hub_br = pipeline.create(base, &br_arch, InstallGroup::Build).await?;
        let outcome = self
            .build_in(&pipeline, &mut hub_br, &srpm_path, &arch, keep_srpm)
            .await;
        pipeline.expire(&mut hub_br).await;
        let (rpms, srpms) = outcome?;
        let log_paths = match logs.take() {
            Some(live) => live.finish().await,
            None => Vec::new(),
        };
        Ok(json!({
            "rpms": rpms,
            "srpms": srpms,
            "logs": log_paths,
            "brootid": hub_br.id,
        }))
    }

    async fn build_in(
        &self,
        pipeline: &Pipeline<'_>,
        hub_br: &mut HubBuildroot,
        srpm: &Path,
        arch: &str,
        keep_srpm: bool,
    ) -> Result<(Vec<String>, Vec<String>), HandlerError> {
        let ctx = pipeline.ctx;
        pipeline.set_state(hub_br, "BUILDING").await?;
        ctx.phases.enter(TaskPhase::Building);
        let built = match hub_br.buildroot.as_mut() {
            Some(buildroot) => buildroot.build_rpms(srpm).await,
            None => return Err(HandlerError::Other("the buildroot is gone".to_owned())),
        };
        // kojid updates the list whether or not the build worked.
        let listed = pipeline.report_list(hub_br, false).await;
        let output = built.map_err(|error| engine_failure(arch, &error))?;
        listed?;
        for unexpected in &output.unexpected {
            tracing::warn!(task_id = ctx.task_id, file = %unexpected.display(), "unexpected file in the build results");
        }
        ctx.phases.enter(TaskPhase::Uploading);
        let mut rpms = Vec::new();
        for rpm in &output.rpms {
            rpms.push(pipeline.upload(rpm).await?);
        }
        let mut srpms = Vec::new();
        if keep_srpm {
            let kept = match output.srpms.as_slice() {
                [] => {
                    return Err(BuildFailure::build(format!(
                        "no srpm files found for task {}",
                        ctx.task_id
                    ))
                    .into());
                }
                [one] => one,
                many => {
                    let names: Vec<String> = many
                        .iter()
                        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
                        .collect();
                    return Err(BuildFailure::build(format!(
                        "multiple srpm files found for task {}: {names:?}",
                        ctx.task_id
                    ))
                    .into());
                }
            };
            let header = RpmHeader::read(kept)
                .map_err(|error| HandlerError::from(BuildFailure::build(error.to_string())))?;
            srpm_sanity_checks(&header)?;
            srpms.push(pipeline.upload(kept).await?);
        }
        Ok((rpms, srpms))
    }
}

#[async_trait::async_trait]
impl TaskHandler for BuildArchTask {
    fn weight(&self) -> f64 {
        BUILD_ARCH_WEIGHT
    }

    async fn check_host(&self, host: &HostInfo, hub: &dyn HostHub) -> Result<bool, HubError> {
        tag_fits_host(self.request.arg(1, "root"), host, hub).await
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        let mut logs = None;
        let outcome = self.build(&ctx, &mut logs).await;
        // Logs reach the hub even when the build failed.
        if let Some(live) = logs {
            live.finish().await;
        }
        remove_workdir(&self.services, ctx.task_id);
        outcome
    }
}

/// `rebuildSRPM(srpm, build_tag, opts=None)`.
pub struct RebuildSrpmTask {
    pub services: BuildServices,
    pub request: TaskRequest,
}

impl RebuildSrpmTask {
    async fn rebuild(
        &self,
        ctx: &TaskContext,
        logs: &mut Option<LiveLogs>,
    ) -> Result<Value, HandlerError> {
        let request = &ctx.request;
        request.check_signature("rebuildSRPM", &["srpm", "build_tag", "opts"])?;
        let src = request
            .arg(0, "srpm")
            .and_then(Value::as_str)
            .ok_or_else(|| HandlerError::Fault(Fault::parameter("rebuildSRPM() requires srpm")))?
            .to_owned();
        let build_tag = request.arg(1, "build_tag").cloned().ok_or_else(|| {
            HandlerError::Fault(Fault::parameter("rebuildSRPM() requires build_tag"))
        })?;
        let repo_id = opts_repo_id(request, 2)?;
        let workdir = fresh_workdir(&self.services, ctx.task_id)?;
        let files = self.services.files.for_task(ctx);
        *logs = Some(LiveLogs::start(
            std::sync::Arc::clone(&files),
            ctx.task_id,
            workdir.clone(),
            LIVE_LOG_PERIOD,
        ));
        let pipeline = Pipeline {
            services: &self.services,
            files,
            ctx,
            workdir: workdir.clone(),
        };
        let calls = pipeline.calls();
        let repo = calls.repo_info(repo_id, true).await?;
        let event = repo.get("create_event").and_then(Value::as_i64);
        let tag = calls.get_tag(&build_tag, event).await?;
        let tag_id = tag.get("id").cloned().unwrap_or(Value::Null);
        let host = calls.get_host().await?;
        let config = calls.get_build_config(&tag_id, event).await?;
        let br_arch = find_arch(
            "noarch",
            &host_arches(&host),
            config.get("arches").and_then(Value::as_str).unwrap_or(""),
            None,
            &random_pick,
        )?;
        let base = pipeline.base(repo_id, &tag_id).await?;
        let mut hub_br = pipeline
            .create(base, &br_arch, InstallGroup::SrpmBuild)
            .await?;
        let outcome = self
            .rebuild_in(&pipeline, &mut hub_br, &src, &workdir)
            .await;
        pipeline.expire(&mut hub_br).await;
        let srpm = outcome?;
        let log_paths = match logs.take() {
            Some(live) => live.finish().await,
            None => Vec::new(),
        };
        let basename = src.rsplit('/').next().unwrap_or(&src).to_owned();
        Ok(json!({
            "srpm": srpm,
            "logs": log_paths,
            "brootid": hub_br.id,
            "source": {"source": basename, "url": basename},
        }))
    }

    async fn rebuild_in(
        &self,
        pipeline: &Pipeline<'_>,
        hub_br: &mut HubBuildroot,
        src: &str,
        workdir: &Path,
    ) -> Result<String, HandlerError> {
        let ctx = pipeline.ctx;
        let (local, _) = fetch_srpm(pipeline.files.as_ref(), workdir, src).await?;
        pipeline.set_state(hub_br, "BUILDING").await?;
        ctx.phases.enter(TaskPhase::Building);
        let output = match hub_br.buildroot.as_mut() {
            Some(buildroot) => buildroot.build_srpm(&local).await,
            None => return Err(HandlerError::Other("the buildroot is gone".to_owned())),
        }
        .map_err(|error| engine_failure("noarch", &error))?;
        let header = RpmHeader::read(&output.srpm)
            .map_err(|error| HandlerError::from(BuildFailure::build(error.to_string())))?;
        let expected = format!("{}.src.rpm", header.nvr());
        let actual = output
            .srpm
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if actual != expected {
            return Err(
                BuildFailure::build(format!("srpm name mismatch: {actual} != {expected}")).into(),
            );
        }
        ctx.phases.enter(TaskPhase::Uploading);
        pipeline.upload(&output.srpm).await
    }
}

#[async_trait::async_trait]
impl TaskHandler for RebuildSrpmTask {
    fn weight(&self) -> f64 {
        REBUILD_SRPM_WEIGHT
    }

    async fn check_host(&self, host: &HostInfo, hub: &dyn HostHub) -> Result<bool, HubError> {
        tag_fits_host(self.request.arg(1, "build_tag"), host, hub).await
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        let mut logs = None;
        let outcome = self.rebuild(&ctx, &mut logs).await;
        if let Some(live) = logs {
            live.finish().await;
        }
        remove_workdir(&self.services, ctx.task_id);
        outcome
    }
}

pub fn build_arch_factory(
    services: BuildServices,
) -> impl Fn(&TaskRequest, &TaskInfo) -> Box<dyn TaskHandler> + Send + Sync + 'static {
    move |request, _info| {
        Box::new(BuildArchTask {
            services: services.clone(),
            request: request.clone(),
        })
    }
}

pub fn rebuild_srpm_factory(
    services: BuildServices,
) -> impl Fn(&TaskRequest, &TaskInfo) -> Box<dyn TaskHandler> + Send + Sync + 'static {
    move |request, _info| {
        Box::new(RebuildSrpmTask {
            services: services.clone(),
            request: request.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildroot::{ExternalRepoRef, InstalledRpm};

    fn rpm(name: &str, hash: &str, from_image: bool) -> InstalledRpm {
        InstalledRpm {
            name: name.into(),
            version: "1.0".into(),
            release: "1.stub".into(),
            epoch: None,
            arch: "noarch".into(),
            payloadhash: hash.into(),
            size: 100,
            buildtime: 1767225600,
            external_repo: None,
            from_image,
        }
    }

    #[test]
    fn rpm_list_gets_repo_ids_and_leaves_out_unattributed_image_rpms() {
        let rpmlist = parse_rpmlist(
            "{\"arch\": \"noarch\", \"id\": 2, \"name\": \"bash\", \"payloadhash\": \"aa\", \"release\": \"1.stub\", \"version\": \"1.0\"}\n",
        )
        .unwrap();
        let mut glibc = rpm("glibc", "cc", true);
        let mut attributed = rpm("coreutils", "dd", true);
        attributed.external_repo = Some(ExternalRepoRef {
            id: 9,
            name: "image-f40".into(),
            url: "http://mirror/f40/$arch/".into(),
        });
        glibc.size = 5;
        let installed = InstalledRpms {
            all: vec![
                rpm("bash", "aa", false),
                glibc,
                attributed,
                rpm("tar", "ee", false),
            ],
            image: None,
        };
        let external = [
            json!({"external_repo_id": 9, "external_repo_name": "image-f40", "url": "http://mirror/f40/$arch/", "merge_mode": "koji"}),
        ];
        let list = hub_rpm_list(&installed, Some(&rpmlist), &external).unwrap();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 3, "the unattributed image rpm is left out");
        assert_eq!(list[0]["id"], json!(2));
        assert_eq!(list[1]["location"], json!(9));
        assert_eq!(list[1]["external_repo"]["merge_mode"], json!("koji"));
        assert!(list[2].get("id").is_none(), "tar is not in rpmlist.jsonl");
        assert_eq!(list[0]["payloadhash"], json!("aa"));
    }

    #[test]
    fn payloadhash_mismatch_is_a_buildroot_error() {
        let rpmlist = parse_rpmlist(
            "{\"arch\": \"noarch\", \"id\": 2, \"name\": \"bash\", \"payloadhash\": \"aa\", \"release\": \"1.stub\", \"version\": \"1.0\"}",
        )
        .unwrap();
        let installed = InstalledRpms {
            all: vec![rpm("bash", "bb", false)],
            image: None,
        };
        let error = hub_rpm_list(&installed, Some(&rpmlist), &[]).unwrap_err();
        assert_eq!(error.fault_code, 1012);
        assert!(error.message.contains("bash-1.0-1.stub.noarch"));
    }

    #[test]
    fn kept_srpms_need_packager_vendor_distribution() {
        let mut header = RpmHeader {
            packager: Some("Koji".into()),
            vendor: Some("Koji".into()),
            distribution: Some("Koji".into()),
            ..RpmHeader::default()
        };
        assert!(srpm_sanity_checks(&header).is_ok());
        header.vendor = Some(String::new());
        assert_eq!(
            srpm_sanity_checks(&header).unwrap_err().message,
            "The build system failed to set the vendor tag"
        );
    }

    #[test]
    fn engine_failures_use_kojis_words() {
        let HandlerError::Fault(fault) = engine_failure(
            "x86_64",
            &BuildrootError::Rpmbuild {
                arch: "x86_64".into(),
                status: 1,
            },
        ) else {
            panic!()
        };
        assert_eq!(
            fault.message,
            "error building package (arch x86_64), mock exited with status 1; see build.log or root.log for more information"
        );
        let HandlerError::Fault(fault) = engine_failure(
            "noarch",
            &BuildrootError::BuildRequires {
                arch: "noarch".into(),
                status: 1,
            },
        ) else {
            panic!()
        };
        assert!(
            fault
                .message
                .ends_with("mock exited with status 30; see root.log for more information")
        );
        assert!(matches!(
            engine_failure(
                "noarch",
                &BuildrootError::Cancelled {
                    step: "rpmbuild".into()
                }
            ),
            HandlerError::Aborted(_)
        ));
    }
}
