//! `newRepo(tag, event=None, src=None, debuginfo=None, separate_src=None, opts=None)` (§4.7).

use std::path::Path;

use koji_adjutant_actors::error::{Fault, HandlerError};
use koji_adjutant_actors::handler::{TaskContext, TaskHandler, TaskRequest, WaitOptions};
use koji_adjutant_actors::hub::{SubtaskOptions, SubtaskResult};
use koji_adjutant_actors::snapshot::TaskPhase;
use serde_json::{Map, Value, json};

use super::createrepo::copy_tree;
use super::paths::{repo_dir, task_relpath, task_workdir};
use super::tools::{clean_task_dir, prepare_task_dir};
use super::{RepoError, RepoServices};
use crate::hub::upload::UploadTarget;

const SIGNATURE: &[&str] = &["tag", "event", "src", "debuginfo", "separate_src", "opts"];

pub struct NewRepo {
    request: TaskRequest,
    services: RepoServices,
}

impl NewRepo {
    pub fn new(request: TaskRequest, services: RepoServices) -> Self {
        Self { request, services }
    }
}

/// The repo opts from either the `opts` struct or the legacy booleans (both is an error).
pub fn repo_opts(request: &TaskRequest) -> Result<Option<Map<String, Value>>, HandlerError> {
    let legacy: Vec<(&str, Option<&Value>)> = ["src", "debuginfo", "separate_src"]
        .iter()
        .enumerate()
        .map(|(i, name)| (*name, request.arg(i + 2, name)))
        .collect();
    let opts = request.arg(5, "opts");
    let any_legacy = legacy.iter().any(|(_, v)| v.is_some());
    match opts {
        Some(Value::Object(map)) => {
            if any_legacy {
                return Err(HandlerError::Fault(Fault::parameter(
                    "opts cannot be combined with the src, debuginfo or separate_src arguments",
                )));
            }
            for key in map.keys() {
                if !["src", "debuginfo", "separate_src", "maven"].contains(&key.as_str()) {
                    return Err(HandlerError::Fault(Fault::parameter(format!(
                        "Invalid repo option: {key}"
                    ))));
                }
            }
            Ok(Some(map.clone()))
        }
        Some(other) => Err(HandlerError::Fault(Fault::parameter(format!(
            "opts must be a struct, got {other}"
        )))),
        None if any_legacy => {
            let mut map = Map::new();
            for (name, value) in legacy {
                if let Some(value) = value {
                    map.insert(name.to_owned(), json!(truthy(value)));
                }
            }
            Ok(Some(map))
        }
        None => Ok(None),
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[async_trait::async_trait]
impl TaskHandler for NewRepo {
    fn weight(&self) -> f64 {
        0.1
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        self.request.check_signature("newRepo", SIGNATURE)?;
        let tag = self
            .request
            .arg(0, "tag")
            .cloned()
            .ok_or_else(|| HandlerError::Fault(Fault::parameter("newRepo() needs a tag")))?;
        // `{id, name}` as kojira sends it: getTag takes the id.
        let tag_ref = match &tag {
            Value::Object(map) => map
                .get("id")
                .cloned()
                .or_else(|| map.get("name").cloned())
                .ok_or_else(|| {
                    HandlerError::Fault(Fault::parameter("tag struct needs an id or a name"))
                })?,
            other => other.clone(),
        };
        let event = self.request.arg(1, "event").and_then(Value::as_i64);
        let opts = repo_opts(&self.request)?;
        let task_dir = task_workdir(&self.services.settings.workdir, ctx.task_id);
        let result = new_repo(&ctx, &self.services, tag_ref, event, opts, &task_dir).await;
        clean_task_dir(&task_dir);
        Ok(result?)
    }
}

async fn new_repo(
    ctx: &TaskContext,
    services: &RepoServices,
    tag_ref: Value,
    event: Option<i64>,
    opts: Option<Map<String, Value>>,
    task_dir: &Path,
) -> Result<Value, RepoError> {
    let settings = &services.settings;
    let mut kwargs = Map::new();
    kwargs.insert("strict".into(), json!(true));
    kwargs.insert("event".into(), event.map_or(Value::Null, |e| json!(e)));
    let tinfo = ctx.hub.call("getTag", vec![tag_ref], kwargs).await?;
    let tag_id = tinfo
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| RepoError::BadReply {
            call: "getTag".into(),
            detail: format!("no id in {tinfo}"),
        })?;
    let tag_name = tinfo
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    ctx.phases.describe("tag", &tag_name);
    let repos = settings.topdir.join("repos");
    if !repos.is_dir() {
        return Err(RepoError::Refuse(format!(
            "No access to repos dir {}",
            repos.display()
        )));
    }

    let mut kwargs = Map::new();
    if let Some(event) = event {
        kwargs.insert("event".into(), json!(event));
    }
    kwargs.insert("opts".into(), opts.map_or(Value::Null, Value::Object));
    kwargs.insert("task_id".into(), json!(ctx.task_id));
    let init = ctx
        .hub
        .call("host.repoInit", vec![json!(tag_id)], kwargs)
        .await?;
    let (Some(repo_id), Some(event_id)) = (
        init.get(0).and_then(Value::as_i64),
        init.get(1).and_then(Value::as_i64),
    ) else {
        return Err(RepoError::BadReply {
            call: "host.repoInit".into(),
            detail: format!("expected [repo_id, event_id], got {init}"),
        });
    };
    ctx.phases.describe("repo", &repo_id.to_string());
    let path = repo_dir(&settings.topdir, repo_id, &tag_name);
    if !path.is_dir() {
        return Err(RepoError::generic(format!(
            "Repo directory missing: {}",
            path.display()
        )));
    }
    let arches = repo_arches(&path)?;

    let oldrepo = if settings.createrepo_update {
        find_old_repo(ctx, tag_id, &tinfo).await?
    } else {
        None
    };

    let mut data = Map::new();
    let mut cloned_archs = Vec::new();
    let mut to_build = Vec::new();
    let mut cloned_from: Option<i64> = None;
    // Cloning needs the old repo on disk and no external repos on either side (their content
    // may have changed since the old repo was made).
    let clone_source = match (&oldrepo, settings.copy_old_repodata) {
        (Some(old), true) => {
            let old_path = old_repo_path(ctx, &settings.topdir, old).await?;
            let new_external = external_repos(ctx, tag_id, Some(event_id)).await?;
            let old_external = match old.get("tag_id").and_then(Value::as_i64) {
                Some(old_tag) => {
                    external_repos(
                        ctx,
                        old_tag,
                        old.get("create_event").and_then(Value::as_i64),
                    )
                    .await?
                }
                None => true,
            };
            if new_external || old_external {
                None
            } else {
                old_path
            }
        }
        _ => None,
    };
    if clone_source.is_some() {
        prepare_task_dir(settings, task_dir)?;
    }
    for arch in &arches {
        if let (Some(old), Some(old_path)) = (&oldrepo, &clone_source)
            && repos_identical(&path, old_path, arch)
        {
            let uploaded = copy_old_repodata(ctx, services, old_path, arch, task_dir).await?;
            data.insert(arch.clone(), uploaded);
            cloned_archs.push(json!(arch));
            cloned_from = old.get("id").and_then(Value::as_i64);
            continue;
        }
        to_build.push(arch.clone());
    }

    ctx.phases.enter(TaskPhase::Building);
    let mut subtasks = Vec::new();
    for arch in &to_build {
        let options = SubtaskOptions {
            label: Some(arch.clone()),
            arch: Some("noarch".into()),
            ..SubtaskOptions::default()
        };
        let id = ctx
            .hub
            .subtask(
                ctx.task_id,
                "createrepo",
                vec![
                    json!(repo_id),
                    json!(arch),
                    oldrepo.clone().unwrap_or(Value::Null),
                ],
                &options,
            )
            .await?;
        subtasks.push((id, arch.clone()));
    }
    if !subtasks.is_empty() {
        let ids: Vec<i64> = subtasks.iter().map(|(id, _)| *id).collect();
        let results = ctx
            .wait(
                Some(ids),
                WaitOptions {
                    all: true,
                    failany: true,
                    ..WaitOptions::default()
                },
            )
            .await
            .map_err(|error| match error {
                HandlerError::Fault(fault) => RepoError::Fault(fault),
                other => RepoError::generic(other.to_string()),
            })?;
        for (id, result) in results {
            let arch = subtasks
                .iter()
                .find(|(sub, _)| *sub == id)
                .map(|(_, arch)| arch.clone())
                .unwrap_or_default();
            match result {
                SubtaskResult::Closed(value) => {
                    data.insert(arch, value);
                }
                SubtaskResult::Failed(fault) => return Err(RepoError::Fault(fault)),
            }
        }
    }

    let mut kwargs = Map::new();
    if let Some(from) = cloned_from {
        kwargs.insert(
            "repo_json_updates".into(),
            json!({"cloned_from_repo_id": from, "cloned_archs": cloned_archs}),
        );
    }
    ctx.hub
        .call(
            "host.repoDone",
            vec![json!(repo_id), Value::Object(data)],
            kwargs,
        )
        .await?;
    Ok(json!([repo_id, event_id]))
}

/// Arch dirs of a fresh repo: sub-dirs (other than `groups`) holding a `pkglist`.
pub fn repo_arches(path: &Path) -> Result<Vec<String>, RepoError> {
    let mut arches = Vec::new();
    for entry in std::fs::read_dir(path).map_err(RepoError::io("cannot list", path))? {
        let entry = entry.map_err(RepoError::io("cannot list", path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "groups" && entry.path().join("pkglist").is_file() {
            arches.push(name);
        }
    }
    arches.sort();
    Ok(arches)
}

/// The repo to `--update` from: the tag's latest, else a `repo.oldrepo_hint` tag's, else the
/// nearest inherited parent's. The struct gets `tag_id` added.
async fn find_old_repo(
    ctx: &TaskContext,
    tag_id: i64,
    tinfo: &Value,
) -> Result<Option<Value>, RepoError> {
    let with_tag = |mut repo: Value, tag: i64| {
        if let Value::Object(map) = &mut repo {
            map.insert("tag_id".into(), json!(tag));
        }
        repo
    };
    let repo = ctx
        .hub
        .call("getRepo", vec![json!(tag_id)], Map::new())
        .await?;
    if !repo.is_null() {
        return Ok(Some(with_tag(repo, tag_id)));
    }
    let hints: Vec<Value> = match tinfo.pointer("/extra/repo.oldrepo_hint") {
        Some(Value::Array(list)) => list.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(single) => vec![single.clone()],
    };
    for hint in hints {
        let mut kwargs = Map::new();
        kwargs.insert("strict".into(), json!(false));
        let hinted = ctx.hub.call("getTag", vec![hint.clone()], kwargs).await?;
        let Some(hint_id) = hinted.get("id").and_then(Value::as_i64) else {
            tracing::warn!(task_id = ctx.task_id, %hint, "repo.oldrepo_hint names no tag");
            continue;
        };
        let repo = ctx
            .hub
            .call("getRepo", vec![json!(hint_id)], Map::new())
            .await?;
        if !repo.is_null() {
            return Ok(Some(with_tag(repo, hint_id)));
        }
    }
    let inheritance = ctx
        .hub
        .call("getFullInheritance", vec![json!(tag_id)], Map::new())
        .await?;
    let mut parents: Vec<Value> = inheritance.as_array().cloned().unwrap_or_default();
    parents.sort_by_key(|link| link.get("currdepth").and_then(Value::as_i64).unwrap_or(0));
    for link in parents {
        let Some(parent) = link.get("parent_id").and_then(Value::as_i64) else {
            continue;
        };
        let repo = ctx
            .hub
            .call("getRepo", vec![json!(parent)], Map::new())
            .await?;
        if !repo.is_null() {
            return Ok(Some(with_tag(repo, parent)));
        }
    }
    Ok(None)
}

/// Whether the tag has external repos at `event`.
async fn external_repos(
    ctx: &TaskContext,
    tag_id: i64,
    event: Option<i64>,
) -> Result<bool, RepoError> {
    let mut kwargs = Map::new();
    if let Some(event) = event {
        kwargs.insert("event".into(), json!(event));
    }
    let list = ctx
        .hub
        .call("getExternalRepoList", vec![json!(tag_id)], kwargs)
        .await?;
    Ok(list.as_array().is_some_and(|l| !l.is_empty()))
}

async fn old_repo_path(
    ctx: &TaskContext,
    topdir: &Path,
    old: &Value,
) -> Result<Option<std::path::PathBuf>, RepoError> {
    let Some(id) = old.get("id").and_then(Value::as_i64) else {
        return Ok(None);
    };
    let info = super::createrepo::repo_info(ctx, id).await?;
    Ok(info
        .get("tag_name")
        .and_then(Value::as_str)
        .map(|tag| repo_dir(topdir, id, tag)))
}

fn read_json(path: &Path) -> Option<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
}

/// kojid's identity rules for `copy_old_repodata` as far as the files tell: same repo options,
/// same comps, and the same `pkglist` and `blocklist` for the arch (the external-repo rule is
/// checked against the hub by the caller).
pub fn repos_identical(new: &Path, old: &Path, arch: &str) -> bool {
    let (Some(new_json), Some(old_json)) = (
        read_json(&new.join("repo.json")),
        read_json(&old.join("repo.json")),
    ) else {
        return false;
    };
    for key in ["with_debuginfo", "with_src", "with_separate_src"] {
        if new_json.get(key) != old_json.get(key) {
            return false;
        }
    }
    let same_file = |relative: &str| match (
        std::fs::read(new.join(relative)),
        std::fs::read(old.join(relative)),
    ) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if !same_file("groups/comps.xml") {
        return false;
    }
    same_file(&format!("{arch}/pkglist"))
        && same_file(&format!("{arch}/blocklist"))
        && old.join(arch).join("repodata").is_dir()
}

async fn copy_old_repodata(
    ctx: &TaskContext,
    services: &RepoServices,
    old_path: &Path,
    arch: &str,
    task_dir: &Path,
) -> Result<Value, RepoError> {
    let local = task_dir.join("repodata-copy").join(arch);
    copy_tree(&old_path.join(arch).join("repodata"), &local)?;
    let files = services.files.for_task(ctx);
    let mut names = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&local)
        .map_err(RepoError::io("cannot list", &local))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let target = UploadTarget::for_task(ctx.task_id, &[arch], &name)?;
        files.upload(&path, &target).await?;
        names.push(json!(name));
    }
    Ok(json!([
        format!("{}/{arch}", task_relpath(ctx.task_id)),
        names
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(params: Vec<Value>) -> TaskRequest {
        TaskRequest::decode(params)
    }

    #[test]
    fn legacy_booleans_become_opts() {
        let r = request(vec![json!("f42-build"), Value::Null, json!(true), json!(1)]);
        let opts = repo_opts(&r).unwrap().unwrap();
        assert_eq!(opts.get("src"), Some(&json!(true)));
        assert_eq!(opts.get("debuginfo"), Some(&json!(true)));
        assert!(!opts.contains_key("separate_src"));
        assert_eq!(repo_opts(&request(vec![json!("t")])).unwrap(), None);
    }

    #[test]
    fn opts_and_legacy_booleans_together_are_refused() {
        let r = request(vec![
            json!("t"),
            json!({"__starstar": true, "src": true, "opts": {"debuginfo": true}}),
        ]);
        assert!(matches!(repo_opts(&r), Err(HandlerError::Fault(f)) if f.fault_code == 1019));
        let bad = request(vec![
            json!("t"),
            json!({"__starstar": true, "opts": {"bogus": 1}}),
        ]);
        assert!(repo_opts(&bad).is_err());
    }

    fn repo(dir: &Path, comps: &str, pkglist: &str, debuginfo: bool) {
        std::fs::create_dir_all(dir.join("groups")).unwrap();
        std::fs::create_dir_all(dir.join("x86_64/repodata")).unwrap();
        std::fs::write(dir.join("groups/comps.xml"), comps).unwrap();
        std::fs::write(dir.join("x86_64/pkglist"), pkglist).unwrap();
        std::fs::write(dir.join("x86_64/blocklist"), "").unwrap();
        std::fs::write(
            dir.join("repo.json"),
            json!({"with_debuginfo": debuginfo, "with_src": false, "with_separate_src": false})
                .to_string(),
        )
        .unwrap();
    }

    #[test]
    fn identity_rules_compare_options_comps_and_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c, d) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
            tmp.path().join("d"),
        );
        repo(&a, "<comps/>", "toplink/x.rpm\n", false);
        repo(&b, "<comps/>", "toplink/x.rpm\n", false);
        repo(&c, "<comps/>", "toplink/y.rpm\n", false);
        repo(&d, "<comps/>", "toplink/x.rpm\n", true);
        assert!(repos_identical(&a, &b, "x86_64"));
        assert!(!repos_identical(&a, &c, "x86_64"), "pkglist differs");
        assert!(
            !repos_identical(&a, &d, "x86_64"),
            "debuginfo option differs"
        );
        assert!(
            !repos_identical(&a, &b, "aarch64"),
            "no old repodata for that arch"
        );
        std::fs::write(b.join("groups/comps.xml"), "<comps>x</comps>").unwrap();
        assert!(!repos_identical(&a, &b, "x86_64"), "comps differs");
    }

    #[test]
    fn arches_are_dirs_with_a_pkglist() {
        let tmp = tempfile::tempdir().unwrap();
        for dir in ["x86_64", "aarch64", "groups", "empty"] {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        }
        std::fs::write(tmp.path().join("x86_64/pkglist"), "").unwrap();
        std::fs::write(tmp.path().join("aarch64/pkglist"), "x").unwrap();
        std::fs::write(tmp.path().join("groups/pkglist"), "x").unwrap();
        assert_eq!(repo_arches(tmp.path()).unwrap(), ["aarch64", "x86_64"]);
    }
}
