//! `createrepo(repo_id, arch, oldrepo)` (§4.8): the metadata of one arch of a repo.

use std::path::{Path, PathBuf};

use koji_adjutant_actors::error::{Fault, HandlerError};
use koji_adjutant_actors::handler::{TaskContext, TaskHandler, TaskRequest};
use koji_adjutant_actors::snapshot::TaskPhase;
use serde_json::{Map, Value, json};

use super::paths::{repo_dir, task_relpath, task_workdir};
use super::tools::{ToolBox, clean_task_dir, hand_over_tree, prepare_task_dir};
use super::{RepoError, RepoServices, RepoSettings};
use crate::hub::upload::UploadTarget;

/// Repo states on the wire (`koji.REPO_STATES`).
pub const REPO_INIT: i64 = 0;

/// `mergerepo_c --arch-expand` exists from 0.15.11 on.
const ARCH_EXPAND_SINCE: (u32, u32, u32) = (0, 15, 11);

pub struct CreateRepo {
    request: TaskRequest,
    services: RepoServices,
}

impl CreateRepo {
    pub fn new(request: TaskRequest, services: RepoServices) -> Self {
        Self { request, services }
    }
}

#[async_trait::async_trait]
impl TaskHandler for CreateRepo {
    fn weight(&self) -> f64 {
        1.5
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        self.request
            .check_signature("createrepo", &["repo_id", "arch", "oldrepo"])?;
        let repo_id = self
            .request
            .arg(0, "repo_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                HandlerError::Fault(Fault::parameter("createrepo() needs an integer repo_id"))
            })?;
        let arch = self
            .request
            .arg(1, "arch")
            .and_then(Value::as_str)
            .ok_or_else(|| HandlerError::Fault(Fault::parameter("createrepo() needs an arch")))?
            .to_owned();
        if arch.is_empty() || arch.contains('/') || arch.starts_with('.') {
            return Err(HandlerError::Fault(Fault::parameter(format!(
                "invalid repo arch {arch:?}"
            ))));
        }
        let oldrepo = self.request.arg(2, "oldrepo").cloned();
        let settings = &self.services.settings;
        let task_dir = task_workdir(&settings.workdir, ctx.task_id);
        let result = create_repo(&ctx, &self.services, repo_id, &arch, oldrepo, &task_dir).await;
        ctx.containers.remove_all().await;
        clean_task_dir(&task_dir);
        Ok(result?)
    }
}

/// `repoInfo(repo_id, strict=True)`.
pub async fn repo_info(ctx: &TaskContext, repo_id: i64) -> Result<Value, RepoError> {
    let mut kwargs = Map::new();
    kwargs.insert("strict".into(), json!(true));
    Ok(ctx
        .hub
        .call("repoInfo", vec![json!(repo_id)], kwargs)
        .await?)
}

fn field<'v>(value: &'v Value, key: &str, call: &str) -> Result<&'v Value, RepoError> {
    value.get(key).ok_or_else(|| RepoError::BadReply {
        call: call.to_owned(),
        detail: format!("no {key} in {value}"),
    })
}

/// Copies a directory tree (regular files and dirs; symlinks copied as links).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), RepoError> {
    std::fs::create_dir_all(to).map_err(RepoError::io("cannot create", to))?;
    for entry in std::fs::read_dir(from).map_err(RepoError::io("cannot list", from))? {
        let entry = entry.map_err(RepoError::io("cannot list", from))?;
        let source = entry.path();
        let dest = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(RepoError::io("cannot stat", &source))?;
        if kind.is_dir() {
            copy_tree(&source, &dest)?;
        } else if kind.is_symlink() {
            let link =
                std::fs::read_link(&source).map_err(RepoError::io("cannot read", &source))?;
            std::os::unix::fs::symlink(link, &dest).map_err(RepoError::io("cannot link", &dest))?;
        } else {
            std::fs::copy(&source, &dest).map_err(RepoError::io("cannot copy", &source))?;
        }
    }
    Ok(())
}

async fn create_repo(
    ctx: &TaskContext,
    services: &RepoServices,
    repo_id: i64,
    arch: &str,
    oldrepo: Option<Value>,
    task_dir: &Path,
) -> Result<Value, RepoError> {
    let settings: &RepoSettings = &services.settings;
    let rinfo = repo_info(ctx, repo_id).await?;
    let state = field(&rinfo, "state", "repoInfo")?.as_i64();
    if state != Some(REPO_INIT) {
        return Err(RepoError::generic(format!(
            "Repo {repo_id} not in INIT state (got {})",
            state.map_or_else(|| "None".to_owned(), |s| s.to_string())
        )));
    }
    let tag_name = field(&rinfo, "tag_name", "repoInfo")?
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let tag_id = field(&rinfo, "tag_id", "repoInfo")?
        .as_i64()
        .unwrap_or_default();
    let create_event = rinfo.get("create_event").and_then(Value::as_i64);
    ctx.phases.describe("tag", &tag_name);
    ctx.phases.describe("repo", &format!("{repo_id} ({arch})"));
    let toprepodir = repo_dir(&settings.topdir, repo_id, &tag_name);
    let repodir = toprepodir.join(arch);
    if !repodir.is_dir() {
        let repos = settings.topdir.join("repos");
        if !repos.is_dir() {
            return Err(RepoError::Refuse(format!(
                "No access to repos dir {}",
                repos.display()
            )));
        }
        return Err(RepoError::generic(format!(
            "Repo directory missing: {}",
            repodir.display()
        )));
    }
    prepare_task_dir(settings, task_dir)?;
    let groupdata = toprepodir.join("groups").join("comps.xml");
    let outdir = task_dir.join("repo");
    let datadir = outdir.join("repodata");
    let pkglist_path = repodir.join("pkglist");
    let pkglist = match std::fs::metadata(&pkglist_path) {
        Ok(meta) if meta.len() > 0 => Some(pkglist_path),
        _ => None,
    };
    let files = services.files.for_task(ctx);
    let mut tools = ToolBox::new(
        ctx,
        settings,
        files.clone(),
        task_dir.to_owned(),
        Some(tag_name.clone()),
        create_event,
    );
    ctx.phases.enter(TaskPhase::Building);
    create_local_repo(
        ctx,
        settings,
        &mut tools,
        &repodir,
        arch,
        pkglist.as_deref(),
        &groupdata,
        oldrepo.as_ref(),
        &outdir,
    )
    .await?;

    let mut kwargs = Map::new();
    if let Some(event) = create_event {
        kwargs.insert("event".into(), json!(event));
    }
    let external = ctx
        .hub
        .call("getExternalRepoList", vec![json!(tag_id)], kwargs)
        .await?;
    let external = external.as_array().cloned().unwrap_or_default();
    if !external.is_empty() {
        merge_repos(
            settings, &mut tools, repo_id, &external, arch, &repodir, &groupdata, &outdir,
        )
        .await?;
    } else if pkglist.is_none() {
        std::fs::create_dir_all(&datadir).map_err(RepoError::io("cannot create", &datadir))?;
        let marker = datadir.join("EMPTY_REPO");
        std::fs::write(
            &marker,
            "This repo is empty because its tag has no content for this arch\n",
        )
        .map_err(RepoError::io("cannot write", &marker))?;
    }

    // kojid fetches the tag for its postCreateRepo callback; plugins are not run here, but the
    // call stays so that the hub sees the same sequence.
    let mut kwargs = Map::new();
    if let Some(event) = create_event {
        kwargs.insert("event".into(), json!(event));
    }
    kwargs.insert("strict".into(), json!(true));
    ctx.hub.call("getTag", vec![json!(tag_id)], kwargs).await?;

    ctx.phases.enter(TaskPhase::Uploading);
    let uploadpath = task_relpath(ctx.task_id);
    let mut names = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&datadir)
        .map_err(RepoError::io("cannot list", &datadir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if !path.is_file() {
            continue;
        }
        let target = UploadTarget::for_task(ctx.task_id, &[], &name)?;
        files.upload(&path, &target).await?;
        names.push(json!(name));
    }
    Ok(json!([uploadpath, names]))
}

#[allow(clippy::too_many_arguments)]
async fn create_local_repo(
    ctx: &TaskContext,
    settings: &RepoSettings,
    tools: &mut ToolBox<'_>,
    repodir: &Path,
    arch: &str,
    pkglist: Option<&Path>,
    groupdata: &Path,
    oldrepo: Option<&Value>,
    outdir: &Path,
) -> Result<(), RepoError> {
    std::fs::create_dir_all(outdir).map_err(RepoError::io("cannot create", outdir))?;
    let datadir = outdir.join("repodata");
    let mut cmd: Vec<String> = if settings.use_createrepo_c {
        vec!["/usr/bin/createrepo_c".into(), "--error-exit-val".into()]
    } else {
        vec!["/usr/bin/createrepo".into()]
    };
    cmd.extend(["-vd".into(), "-o".into(), outdir.display().to_string()]);
    if let Some(pkglist) = pkglist {
        cmd.extend(["-i".into(), pkglist.display().to_string()]);
    }
    if groupdata.is_file() {
        cmd.extend(["-g".into(), groupdata.display().to_string()]);
    }
    if let (Some(_), Some(old)) = (pkglist, oldrepo.filter(|o| !o.is_null()))
        && settings.createrepo_update
    {
        let old_id = old
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| RepoError::generic(format!("oldrepo has no id: {old}")))?;
        let oldinfo = repo_info(ctx, old_id).await?;
        let old_tag = oldinfo
            .get("tag_name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let olddatadir = repo_dir(&settings.topdir, old_id, old_tag)
            .join(arch)
            .join("repodata");
        if olddatadir.is_dir() {
            copy_tree(&olddatadir, &datadir)?;
            // pkgorigins belongs to the old merge; a stale one would misattribute packages.
            // kojid removes `pkgorigins.gz`; with unique metadata file names (createrepo_c's
            // default) it is `<checksum>-pkgorigins.gz`, so both are removed.
            remove_pkgorigins(&datadir)?;
            hand_over_tree(settings, outdir)?;
            cmd.push("--update".into());
            if settings.createrepo_skip_stat {
                cmd.push("--skip-stat".into());
            }
        } else {
            tracing::warn!(task_id = ctx.task_id, dir = %olddatadir.display(), "old repodata is missing");
        }
    } else {
        super::tools::hand_over(settings, outdir)?;
    }
    cmd.push(match pkglist {
        Some(_) => repodir.display().to_string(),
        None => outdir.display().to_string(),
    });
    let joined = cmd.join(" ");
    tracing::info!(task_id = ctx.task_id, command = %joined, "running createrepo");
    let status = tools
        .run("createrepo", cmd, "createrepo.log", false)
        .await?;
    if status != 0 {
        return Err(RepoError::generic(format!(
            "failed to create repo: {joined} exited with status {status}"
        )));
    }
    Ok(())
}

fn remove_pkgorigins(datadir: &Path) -> Result<(), RepoError> {
    for entry in std::fs::read_dir(datadir).map_err(RepoError::io("cannot list", datadir))? {
        let path = entry.map_err(RepoError::io("cannot list", datadir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "pkgorigins.gz" || name.ends_with("-pkgorigins.gz") {
            std::fs::remove_file(&path).map_err(RepoError::io("cannot remove", &path))?;
        }
    }
    Ok(())
}

/// `mergerepo_c --version` → (major, minor, patch).
pub fn parse_mergerepo_version(text: &str) -> Option<(u32, u32, u32)> {
    let word = text
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut parts = word.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
    });
    let major = parts.next()?.ok()?;
    let minor = parts.next().and_then(Result::ok).unwrap_or(0);
    let patch = parts.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

/// The mergerepo_c command line for one merge mode (§4.8 step 5).
#[allow(clippy::too_many_arguments)]
pub fn mergerepo_command(
    merge_mode: &str,
    arch: &str,
    blocklist: &Path,
    outdir: &Path,
    arch_expand: bool,
    groupdata: Option<&Path>,
    repos: &[String],
) -> Vec<String> {
    let mut cmd: Vec<String> = vec!["/usr/bin/mergerepo_c".into()];
    match merge_mode {
        "bare" => cmd.extend(["--pkgorigins".into(), "--all".into()]),
        "simple" => {
            cmd.extend(["--koji".into(), "--simple".into()]);
            cmd.extend(["-b".into(), blocklist.display().to_string()]);
        }
        _ => {
            cmd.push("--koji".into());
            cmd.extend(["-b".into(), blocklist.display().to_string()]);
        }
    }
    cmd.extend([
        "-a".into(),
        arch.to_owned(),
        "-o".into(),
        outdir.display().to_string(),
    ]);
    if arch_expand {
        cmd.push("--arch-expand".into());
    }
    if let Some(groupdata) = groupdata {
        cmd.extend(["-g".into(), groupdata.display().to_string()]);
    }
    for repo in repos {
        cmd.extend(["-r".into(), repo.clone()]);
    }
    cmd
}

#[allow(clippy::too_many_arguments)]
async fn merge_repos(
    settings: &RepoSettings,
    tools: &mut ToolBox<'_>,
    repo_id: i64,
    external: &[Value],
    arch: &str,
    repodir: &Path,
    groupdata: &Path,
    outdir: &Path,
) -> Result<(), RepoError> {
    let task_dir = tools.task_dir().to_owned();
    let localdir = task_dir.join(format!("repo_{repo_id}_premerge"));
    std::fs::rename(outdir, &localdir).map_err(RepoError::io("cannot move", outdir))?;
    std::fs::create_dir_all(outdir).map_err(RepoError::io("cannot create", outdir))?;
    super::tools::hand_over(settings, outdir)?;
    let mut repos = vec![format!("file://{}/", localdir.display())];
    let mut merge_mode: Option<String> = None;
    let mut needs_network = false;
    for repo in external {
        let mode = repo
            .get("merge_mode")
            .and_then(Value::as_str)
            .unwrap_or("koji")
            .to_owned();
        match &merge_mode {
            None => merge_mode = Some(mode),
            Some(known) if *known != mode => {
                let modes: Vec<String> = external
                    .iter()
                    .map(|r| {
                        format!(
                            "{}: {}",
                            r.get("external_repo_name")
                                .and_then(Value::as_str)
                                .unwrap_or("?"),
                            r.get("merge_mode")
                                .and_then(Value::as_str)
                                .unwrap_or("koji")
                        )
                    })
                    .collect();
                return Err(RepoError::generic(format!(
                    "Found multiple merge modes for external repos: {}",
                    modes.join(", ")
                )));
            }
            Some(_) => {}
        }
        if let Some(arches) = repo.get("arches").and_then(Value::as_str)
            && !arches.split_whitespace().any(|a| a == arch)
        {
            continue;
        }
        let url = repo
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .replace("$arch", arch);
        if !url.starts_with("file:") {
            needs_network = true;
        }
        repos.push(url);
    }
    let merge_mode = merge_mode.unwrap_or_else(|| "koji".to_owned());
    let (status, version) = tools
        .output(vec!["/usr/bin/mergerepo_c".into(), "--version".into()])
        .await?;
    let arch_expand =
        status == 0 && parse_mergerepo_version(&version).is_some_and(|v| v >= ARCH_EXPAND_SINCE);
    let cmd = mergerepo_command(
        &merge_mode,
        arch,
        &repodir.join("blocklist"),
        outdir,
        arch_expand,
        groupdata.is_file().then_some(groupdata),
        &repos,
    );
    let joined = cmd.join(" ");
    tracing::info!(command = %joined, "merging external repos");
    let status = tools
        .run("mergerepo", cmd, "mergerepos.log", needs_network)
        .await?;
    if status != 0 {
        return Err(RepoError::generic(format!(
            "failed to merge repos: {joined} exited with status {status}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mergerepo_versions_parse() {
        assert_eq!(
            parse_mergerepo_version("Version: 0.17.3 (Features: DeltaRPM )"),
            Some((0, 17, 3))
        );
        assert_eq!(parse_mergerepo_version("Version: 1.0"), Some((1, 0, 0)));
        assert_eq!(parse_mergerepo_version("nothing"), None);
        assert!(parse_mergerepo_version("Version: 0.15.11").unwrap() >= ARCH_EXPAND_SINCE);
        assert!(parse_mergerepo_version("Version: 0.15.10").unwrap() < ARCH_EXPAND_SINCE);
    }

    #[test]
    fn merge_modes_build_kojids_command_lines() {
        let repos = vec!["file:///w/pre/".to_owned(), "http://x/$arch".to_owned()];
        let b = Path::new("/r/x86_64/blocklist");
        let o = Path::new("/w/repo");
        let koji = mergerepo_command("koji", "x86_64", b, o, true, None, &repos).join(" ");
        assert_eq!(
            koji,
            "/usr/bin/mergerepo_c --koji -b /r/x86_64/blocklist -a x86_64 -o /w/repo --arch-expand -r file:///w/pre/ -r http://x/$arch"
        );
        let simple = mergerepo_command("simple", "x86_64", b, o, false, None, &repos).join(" ");
        assert!(simple.starts_with("/usr/bin/mergerepo_c --koji --simple -b /r/x86_64/blocklist"));
        let bare = mergerepo_command(
            "bare",
            "x86_64",
            b,
            o,
            false,
            Some(Path::new("/c.xml")),
            &repos,
        )
        .join(" ");
        assert!(bare.starts_with("/usr/bin/mergerepo_c --pkgorigins --all -a x86_64"));
        assert!(
            !bare.contains("blocklist"),
            "bare mode ignores the blocklist"
        );
        assert!(bare.contains("-g /c.xml"));
    }
}
