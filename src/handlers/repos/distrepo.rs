//! `distRepo(tag, repo_id, keys, task_opts)` and `createdistrepo(tag, repo_id, arch, keys,
//! opts)` (§4.9): repos made for distribution from signed copies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use koji_adjutant_actors::error::{Fault, HandlerError};
use koji_adjutant_actors::handler::{TaskContext, TaskHandler, TaskRequest, WaitOptions};
use koji_adjutant_actors::hub::SubtaskOptions;
use koji_adjutant_actors::snapshot::TaskPhase;
use serde_json::{Map, Value, json};

use super::createrepo::{REPO_INIT, copy_tree, repo_info};
use super::multilib::{MultilibJob, RepoRpm};
use super::paths::{
    arch_family, build_dir, canon_arch, distrepo_dir, multilib_companion, task_relpath,
    task_workdir,
};
use super::tools::{ToolBox, clean_task_dir, hand_over_tree, prepare_task_dir};
use super::{RepoError, RepoServices};
use crate::hub::upload::UploadTarget;

/// The sub-repo that `split_debuginfo` moves debuginfo and debugsource packages into.
const DEBUG_SUBREPO: &str = "debug";

/// kojid writes signed copies in batches of this many calls.
const SIGNED_BATCH: usize = 1000;

fn param_error(message: impl Into<String>) -> HandlerError {
    HandlerError::Fault(Fault::parameter(message))
}

fn opt_bool(opts: &Map<String, Value>, key: &str) -> bool {
    match opts.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

fn keys_of(value: Option<&Value>) -> Result<Vec<String>, HandlerError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|k| {
                k.as_str()
                    .map(str::to_lowercase)
                    .ok_or_else(|| param_error(format!("signing keys must be strings, got {k}")))
            })
            .collect(),
        Some(other) => Err(param_error(format!("keys must be a list, got {other}"))),
    }
}

/// `task_opts.multilib`: the multilib config's path under the work dir, or `None` when off.
fn multilib_config(opts: &Map<String, Value>) -> Result<Option<String>, RepoError> {
    match opts.get("multilib") {
        Some(Value::String(path)) if !path.is_empty() => Ok(Some(path.clone())),
        Some(value) if opt_bool(opts, "multilib") => {
            Err(RepoError::Fault(Fault::parameter(format!(
                "task_opts multilib must be the path of a multilib config under the work dir (what `koji dist-repo --multilib FILE` sends), got {value}"
            ))))
        }
        _ => Ok(None),
    }
}

pub struct DistRepo {
    request: TaskRequest,
    services: RepoServices,
}

impl DistRepo {
    pub fn new(request: TaskRequest, services: RepoServices) -> Self {
        Self { request, services }
    }
}

#[async_trait::async_trait]
impl TaskHandler for DistRepo {
    fn weight(&self) -> f64 {
        0.1
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        let r = &self.request;
        r.check_signature("distRepo", &["tag", "repo_id", "keys", "task_opts"])?;
        let tag = r
            .arg(0, "tag")
            .cloned()
            .ok_or_else(|| param_error("distRepo() needs a tag"))?;
        let repo_id = r
            .arg(1, "repo_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| param_error("distRepo() needs an integer repo_id"))?;
        let keys = r.arg(2, "keys").cloned().unwrap_or(json!([]));
        keys_of(Some(&keys))?;
        let opts = match r.arg(3, "task_opts") {
            Some(Value::Object(map)) => map.clone(),
            None => Map::new(),
            Some(other) => {
                return Err(param_error(format!(
                    "task_opts must be a struct, got {other}"
                )));
            }
        };
        Ok(dist_repo(&ctx, &self.services, tag, repo_id, keys, opts).await?)
    }
}

async fn dist_repo(
    ctx: &TaskContext,
    services: &RepoServices,
    tag: Value,
    repo_id: i64,
    keys: Value,
    opts: Map<String, Value>,
) -> Result<Value, RepoError> {
    let mut kwargs = Map::new();
    kwargs.insert("strict".into(), json!(true));
    kwargs.insert(
        "event".into(),
        opts.get("event").cloned().unwrap_or(Value::Null),
    );
    let tinfo = ctx.hub.call("getTag", vec![tag.clone()], kwargs).await?;
    let tag_name = tinfo
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    ctx.phases.describe("tag", &tag_name);
    ctx.phases.describe("repo", &repo_id.to_string());
    let path = distrepo_dir(&services.settings.topdir, repo_id, &tag_name);
    if !path.is_dir() {
        if !services.settings.topdir.join("repos-dist").is_dir() {
            return Err(RepoError::Refuse(format!(
                "No access to dist repos dir {}",
                services.settings.topdir.join("repos-dist").display()
            )));
        }
        return Err(RepoError::generic(format!(
            "Repo path missing: {}",
            path.display()
        )));
    }
    let requested: Vec<String> = match opts.get("arch") {
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => tinfo
            .get("arches")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    };
    let mut arches: Vec<String> = Vec::new();
    for arch in requested {
        let canon = canon_arch(&arch);
        if !arches.contains(&canon) {
            arches.push(canon);
        }
    }
    if arches.is_empty() {
        return Err(RepoError::generic(format!(
            "No arches specified for dist repo of tag {tag_name}: set task_opts arch or the tag's arches"
        )));
    }
    let multilib = opt_bool(&opts, "multilib");
    // As kojid's distRepo: every arch that is not a multilib (64-bit) arch goes first; with
    // multilib they are waited for and moved into place before the 64-bit ones start, so that
    // those can resolve their multilib packages against the moved 32-bit repo.
    let (arch32s, arch64s): (Vec<String>, Vec<String>) = arches
        .iter()
        .cloned()
        .partition(|a| multilib_companion(a).is_none());
    ctx.phases.enter(TaskPhase::Building);
    let mut subtasks: Vec<(i64, String)> = Vec::new();
    for (batch, wait_and_move) in [(arch32s, multilib), (arch64s, true)] {
        let created = subtasks.len();
        for arch in &batch {
            let options = SubtaskOptions {
                label: Some(arch.clone()),
                arch: Some("noarch".into()),
                ..SubtaskOptions::default()
            };
            let id = ctx
                .hub
                .subtask(
                    ctx.task_id,
                    "createdistrepo",
                    vec![
                        tag.clone(),
                        json!(repo_id),
                        json!(arch),
                        keys.clone(),
                        Value::Object(opts.clone()),
                    ],
                    &options,
                )
                .await?;
            subtasks.push((id, arch.clone()));
        }
        if !wait_and_move || subtasks.is_empty() {
            continue;
        }
        // The second wait is on every subtask, the already finished 32-bit ones too.
        let ids: Vec<i64> = subtasks.iter().map(|(id, _)| *id).collect();
        ctx.wait(
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
        // The ones moved after the first wait are not moved again.
        let first_unmoved = if multilib { created } else { 0 };
        for (id, arch) in &subtasks[first_unmoved..] {
            ctx.hub
                .call(
                    "host.distRepoMove",
                    vec![json!(repo_id), json!(task_relpath(*id)), json!(arch)],
                    Map::new(),
                )
                .await?;
        }
    }
    ctx.hub
        .call("host.repoDone", vec![json!(repo_id), json!({})], Map::new())
        .await?;
    Ok(json!(format!(
        "Dist repository #{repo_id} successfully generated"
    )))
}

pub struct CreateDistRepo {
    request: TaskRequest,
    services: RepoServices,
}

impl CreateDistRepo {
    pub fn new(request: TaskRequest, services: RepoServices) -> Self {
        Self { request, services }
    }
}

#[async_trait::async_trait]
impl TaskHandler for CreateDistRepo {
    fn weight(&self) -> f64 {
        1.5
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        let r = &self.request;
        r.check_signature(
            "createdistrepo",
            &["tag", "repo_id", "arch", "keys", "opts"],
        )?;
        let tag = r
            .arg(0, "tag")
            .cloned()
            .ok_or_else(|| param_error("createdistrepo() needs a tag"))?;
        let repo_id = r
            .arg(1, "repo_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| param_error("createdistrepo() needs an integer repo_id"))?;
        let arch = r
            .arg(2, "arch")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty() && !a.contains('/') && !a.starts_with('.'))
            .ok_or_else(|| param_error("createdistrepo() needs a plain arch name"))?
            .to_owned();
        let keys = keys_of(r.arg(3, "keys"))?;
        let opts = match r.arg(4, "opts") {
            Some(Value::Object(map)) => map.clone(),
            None => Map::new(),
            Some(other) => return Err(param_error(format!("opts must be a struct, got {other}"))),
        };
        let task_dir = task_workdir(&self.services.settings.workdir, ctx.task_id);
        let result = create_dist_repo(
            &ctx,
            &self.services,
            tag,
            repo_id,
            &arch,
            &keys,
            &opts,
            &task_dir,
        )
        .await;
        ctx.containers.remove_all().await;
        clean_task_dir(&task_dir);
        Ok(result?)
    }
}

/// One RPM chosen for the repo.
#[derive(Debug, Clone)]
struct Chosen {
    info: Value,
    sigkey: Option<String>,
    path: PathBuf,
    basename: String,
    debuginfo: bool,
}

fn is_debuginfo(name: &str) -> bool {
    name.ends_with("-debuginfo") || name.ends_with("-debugsource") || name.contains("-debuginfo-")
}

fn rpm_str<'v>(info: &'v Value, key: &str) -> &'v str {
    info.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `keys` of a `listTaggedRPMS` row that become parts of a path under the topdir or the
/// task dir: each must be a plain file name, so that no reply can point a read or a
/// `Packages/` link outside them.
fn path_parts<'v, const N: usize>(
    row: &'v Value,
    what: &str,
    keys: [&str; N],
) -> Result<[&'v str; N], RepoError> {
    let parts = keys.map(|key| rpm_str(row, key));
    for (key, part) in keys.iter().zip(parts) {
        let plain = !part.is_empty() && part != "." && part != ".." && !part.contains(['/', '\0']);
        if !plain {
            return Err(RepoError::BadReply {
                call: "listTaggedRPMS".to_owned(),
                detail: format!("{what} has {key} {part:?}, which is not a plain file name"),
            });
        }
    }
    Ok(parts)
}

/// Picks, per RPM, the first key of `keys` it is signed with (rows come one per signature).
fn choose_signatures(rows: &[Value], keys: &[String]) -> BTreeMap<i64, (Value, Option<String>)> {
    let mut sigs: BTreeMap<i64, (Value, Vec<String>)> = BTreeMap::new();
    for row in rows {
        let Some(id) = row.get("id").and_then(Value::as_i64) else {
            continue;
        };
        let entry = sigs.entry(id).or_insert_with(|| (row.clone(), Vec::new()));
        if let Some(key) = row
            .get("sigkey")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
        {
            entry.1.push(key.to_lowercase());
        }
    }
    sigs.into_iter()
        .map(|(id, (info, have))| {
            let chosen = keys.iter().find(|k| have.contains(k)).cloned();
            (id, (info, chosen))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn create_dist_repo(
    ctx: &TaskContext,
    services: &RepoServices,
    tag: Value,
    repo_id: i64,
    arch: &str,
    keys: &[String],
    opts: &Map<String, Value>,
    task_dir: &Path,
) -> Result<Value, RepoError> {
    let settings = &services.settings;
    let rinfo = repo_info(ctx, repo_id).await?;
    if rinfo.get("state").and_then(Value::as_i64) != Some(REPO_INIT) {
        return Err(RepoError::generic(format!(
            "Repo {repo_id} not in INIT state (got {})",
            rinfo.get("state").cloned().unwrap_or(Value::Null)
        )));
    }
    let tag_name = rpm_str(&rinfo, "tag_name").to_owned();
    let event = opts
        .get("event")
        .and_then(Value::as_i64)
        .or_else(|| rinfo.get("create_event").and_then(Value::as_i64));
    // kojid checks the delta base repos first, before any work is done.
    let delta_dirs = delta_sources(ctx, &settings.topdir, arch, opts.get("delta")).await?;
    let multilib_config = multilib_config(opts)?;
    prepare_task_dir(settings, task_dir)?;
    let files = services.files.for_task(ctx);

    // What the tag holds for each arch of the family, with signatures.
    let mut rows = Vec::new();
    // Build id → its dir in the topdir. Files live under the build's name, which for
    // subpackages (foo-debuginfo, foo-devel) is not the RPM's own.
    let mut build_dirs: BTreeMap<i64, PathBuf> = BTreeMap::new();
    for family_arch in arch_family(arch) {
        let mut kwargs = Map::new();
        kwargs.insert("event".into(), json!(event));
        kwargs.insert("arch".into(), json!(family_arch));
        kwargs.insert("latest".into(), json!(opt_bool(opts, "latest")));
        kwargs.insert("inherit".into(), json!(opt_bool(opts, "inherit")));
        kwargs.insert("rpmsigs".into(), json!(true));
        let listed = ctx
            .hub
            .call("listTaggedRPMS", vec![tag.clone()], kwargs)
            .await?;
        if let Some(builds) = listed.get(1).and_then(Value::as_array) {
            for build in builds {
                if let Some(id) = build.get("id").and_then(Value::as_i64) {
                    let [name, version, release] =
                        path_parts(build, "a build", ["name", "version", "release"])?;
                    build_dirs
                        .entry(id)
                        .or_insert_with(|| build_dir(&settings.topdir, name, version, release));
                }
            }
            let drafts: Vec<&str> = builds
                .iter()
                .filter(|b| b.get("draft").and_then(Value::as_bool).unwrap_or(false))
                .map(|b| rpm_str(b, "nvr"))
                .collect();
            if !drafts.is_empty() {
                return Err(RepoError::Fault(Fault::new(
                    1005,
                    "BuildError",
                    format!(
                        "Draft builds are not allowed in dist repos: {}",
                        drafts.join(", ")
                    ),
                )));
            }
        }
        rows.extend(
            listed
                .get(0)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
    }
    let chosen_keys = choose_signatures(&rows, keys);

    if opt_bool(opts, "write_signed_rpms") {
        write_signed_rpms(ctx, files.as_ref(), task_dir, &chosen_keys).await?;
    }

    let skip_missing = opt_bool(opts, "skip_missing_signatures");
    let allow_missing = opt_bool(opts, "allow_missing_signatures");
    let split_debuginfo = opt_bool(opts, "split_debuginfo");
    let mut chosen = Vec::new();
    let mut missing_sigs = Vec::new();
    let mut missing_files = Vec::new();
    for (info, sigkey) in chosen_keys.values() {
        let [name, version, release, rpm_arch] =
            path_parts(info, "an rpm", ["name", "version", "release", "arch"])?;
        if let Some(key) = sigkey {
            path_parts(&json!({ "sigkey": key }), "an rpm's signature", ["sigkey"])?;
        }
        let basename = format!("{name}-{version}-{release}.{rpm_arch}.rpm");
        if sigkey.is_none() && !keys.is_empty() {
            missing_sigs.push(format!(
                "{basename} (rpm id {})",
                info.get("id").cloned().unwrap_or(Value::Null)
            ));
            if skip_missing {
                continue;
            }
        }
        let build_id = info.get("build_id").and_then(Value::as_i64);
        let Some(builddir) = build_id.and_then(|id| build_dirs.get(&id)) else {
            return Err(RepoError::BadReply {
                call: "listTaggedRPMS".to_owned(),
                detail: format!(
                    "rpm {basename} came without its build ({})",
                    build_id.map_or_else(|| "no build_id".to_owned(), |id| id.to_string())
                ),
            });
        };
        let path = match sigkey {
            Some(key) => builddir
                .join("data/signed")
                .join(key)
                .join(rpm_arch)
                .join(&basename),
            None => builddir.join(rpm_arch).join(&basename),
        };
        if !path.is_file() {
            missing_files.push(path.display().to_string());
            continue;
        }
        chosen.push(Chosen {
            info: info.clone(),
            sigkey: sigkey.clone(),
            path,
            basename,
            debuginfo: is_debuginfo(name),
        });
    }
    if !missing_sigs.is_empty() {
        let log = task_dir.join("missing_signatures.log");
        let text = format!(
            "Missing signatures for keys {}:\n{}\n",
            keys.join(", "),
            missing_sigs.join("\n")
        );
        std::fs::write(&log, text).map_err(RepoError::io("cannot write", &log))?;
        files
            .upload(
                &log,
                &UploadTarget::for_task(ctx.task_id, &[], "missing_signatures.log")?,
            )
            .await?;
        if !skip_missing && !allow_missing {
            return Err(RepoError::generic(format!(
                "Unsigned packages found ({}). See missing_signatures.log; use --allow-missing-signatures or --skip-missing-signatures to go on",
                missing_sigs.len()
            )));
        }
    }
    if !missing_files.is_empty() {
        let log = task_dir.join("missing_files.log");
        std::fs::write(&log, missing_files.join("\n") + "\n")
            .map_err(RepoError::io("cannot write", &log))?;
        files
            .upload(
                &log,
                &UploadTarget::for_task(ctx.task_id, &[], "missing_files.log")?,
            )
            .await?;
        return Err(RepoError::generic(format!(
            "Missing {} rpm files in {}: see missing_files.log (a signed copy may need `koji write-signed-rpm`)",
            missing_files.len(),
            settings.topdir.display()
        )));
    }

    if let Some(config) = multilib_config.as_deref()
        && multilib_companion(arch).is_some()
    {
        let job = MultilibJob {
            ctx,
            settings,
            files: files.clone(),
            task_dir,
            tag_name: &tag_name,
            repo_id,
            event,
            arch,
            config,
        };
        let own: Vec<RepoRpm> = chosen
            .iter()
            .map(|rpm| RepoRpm {
                basename: rpm.basename.clone(),
                path: rpm.path.clone(),
            })
            .collect();
        for extra in job.resolve(&own).await? {
            let name = rpm_str(&extra.info, "name").to_owned();
            chosen.push(Chosen {
                info: extra.info,
                sigkey: extra.sigkey,
                path: extra.path,
                basename: extra.basename,
                debuginfo: is_debuginfo(&name),
            });
        }
    }

    // The repo layout: Packages/<l>/<file> links into the topdir, pkglist, kojipkgs.
    let repodir = task_dir.join("repo");
    let mut kojipkgs = Map::new();
    let mut main_list = String::new();
    let mut debug_list = String::new();
    for rpm in &chosen {
        let letter = rpm
            .basename
            .chars()
            .next()
            .map_or('_', |c| c.to_ascii_lowercase())
            .to_string();
        let link_dir = repodir.join("Packages").join(&letter);
        std::fs::create_dir_all(&link_dir).map_err(RepoError::io("cannot create", &link_dir))?;
        let link = link_dir.join(&rpm.basename);
        if !link.exists() {
            std::os::unix::fs::symlink(&rpm.path, &link)
                .map_err(RepoError::io("cannot link", &link))?;
        }
        let to_debug = rpm.debuginfo && split_debuginfo;
        let mut info = rpm.info.clone();
        if let Value::Object(map) = &mut info {
            map.insert("sigkey".into(), json!(rpm.sigkey));
            // kojid marks the split-off packages in kojipkgs the same way.
            if to_debug {
                map.insert("_subrepo".into(), json!(DEBUG_SUBREPO));
            }
            // kojid's get_rpms and do_multilib record the file each link points to.
            map.insert("_pkgpath".into(), json!(rpm.path.display().to_string()));
        }
        kojipkgs.insert(rpm.basename.clone(), info);
        if to_debug {
            // The debug sub-repo shares the arch's Packages/ dir, one level up.
            debug_list.push_str(&format!("../Packages/{letter}/{}\n", rpm.basename));
        } else {
            main_list.push_str(&format!("Packages/{letter}/{}\n", rpm.basename));
        }
    }
    std::fs::create_dir_all(&repodir).map_err(RepoError::io("cannot create", &repodir))?;
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text).map_err(RepoError::io("cannot write", &path))
    };
    write(repodir.join("pkglist"), main_list)?;
    write(
        repodir.join("kojipkgs"),
        serde_json::to_string_pretty(&Value::Object(kojipkgs)).unwrap_or_default(),
    )?;
    let mut subrepos = vec![(repodir.clone(), repodir.join("pkglist"), "createrepo.log")];
    // As in kojid, the sub-repo exists only when some package went into it.
    if !debug_list.is_empty() {
        let debug = repodir.join(DEBUG_SUBREPO);
        std::fs::create_dir_all(&debug).map_err(RepoError::io("cannot create", &debug))?;
        write(debug.join("pkglist"), debug_list)?;
        subrepos.push((debug.clone(), debug.join("pkglist"), "createrepo_debug.log"));
    }

    // Old repodata for --update.
    let old = {
        let mut kwargs = Map::new();
        kwargs.insert("dist".into(), json!(true));
        kwargs.insert("state".into(), json!(1));
        ctx.hub
            .call(
                "getRepo",
                vec![json!(rinfo.get("tag_id").and_then(Value::as_i64))],
                kwargs,
            )
            .await?
    };
    let groupdata = distrepo_dir(&settings.topdir, repo_id, &tag_name).join("groups/comps.xml");
    hand_over_tree(settings, &repodir)?;
    let mut tools = ToolBox::new(
        ctx,
        settings,
        files.clone(),
        task_dir.to_owned(),
        Some(tag_name.clone()),
        event,
    );
    ctx.phases.enter(TaskPhase::Building);
    for (dir, pkglist, log_name) in &subrepos {
        let mut cmd: Vec<String> = vec![
            "/usr/bin/createrepo_c".into(),
            "--error-exit-val".into(),
            "-vd".into(),
            "-i".into(),
            pkglist.display().to_string(),
        ];
        if groupdata.is_file() {
            cmd.extend(["-g".into(), groupdata.display().to_string()]);
        }
        if let Some(old_id) = old.get("id").and_then(Value::as_i64) {
            let old_tag = rpm_str(&old, "tag_name");
            let old_tag = if old_tag.is_empty() {
                tag_name.as_str()
            } else {
                old_tag
            };
            let sub = dir.strip_prefix(&repodir).unwrap_or(Path::new(""));
            let olddata = distrepo_dir(&settings.topdir, old_id, old_tag)
                .join(arch)
                .join(sub)
                .join("repodata");
            if olddata.is_dir() {
                copy_tree(&olddata, &dir.join("repodata"))?;
                hand_over_tree(settings, &dir.join("repodata"))?;
                cmd.push("--update".into());
                let skip_stat = match opts.get("createrepo_skip_stat") {
                    Some(Value::Bool(b)) => *b,
                    _ => settings.distrepo_skip_stat,
                };
                if skip_stat {
                    cmd.push("--skip-stat".into());
                }
            }
        }
        if !delta_dirs.is_empty() {
            cmd.push("--deltas".into());
            for delta in &delta_dirs {
                cmd.extend(["--oldpackagedirs".into(), delta.display().to_string()]);
            }
        }
        if opt_bool(opts, "zck") {
            cmd.push("--zck".into());
            // kojid skips an empty dir as it skips None.
            if let Some(dict) = opts
                .get("zck_dict_dir")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
            {
                cmd.extend(["--zck-dict-dir".into(), dict.to_owned()]);
            }
        }
        cmd.push(dir.display().to_string());
        let joined = cmd.join(" ");
        tracing::info!(task_id = ctx.task_id, command = %joined, "running createrepo for a dist repo");
        let status = tools.run("createrepo", cmd, log_name, false).await?;
        if status != 0 {
            return Err(RepoError::generic(format!(
                "failed to create repo: {joined} exited with status {status}"
            )));
        }
    }

    ctx.phases.enter(TaskPhase::Uploading);
    let mut manifest = Vec::new();
    upload_tree(ctx, files.as_ref(), &repodir, &repodir, &mut manifest).await?;
    let manifest_path = task_dir.join("repo_manifest");
    std::fs::write(
        &manifest_path,
        serde_json::to_string(&manifest).unwrap_or_default(),
    )
    .map_err(RepoError::io("cannot write", &manifest_path))?;
    files
        .upload(
            &manifest_path,
            &UploadTarget::for_task(ctx.task_id, &[], "repo_manifest")?,
        )
        .await?;
    Ok(Value::Null)
}

/// The directories that hold the RPMs of the dist repos named in the `delta` option, for
/// `--oldpackagedirs`. kojid checks each repo as below and then passes the repo's top dir,
/// but createrepo_c looks for `*.rpm` only directly inside each directory it is given, and a
/// moved dist repo keeps its RPMs in `<arch>/Packages/<letter>/`; so every letter dir of this
/// arch is passed instead, which is what makes deltas appear. The split-off debuginfo shares
/// those dirs, so the same list serves the `debug` sub-repo.
async fn delta_sources(
    ctx: &TaskContext,
    topdir: &Path,
    arch: &str,
    delta: Option<&Value>,
) -> Result<Vec<PathBuf>, RepoError> {
    let ids: Vec<i64> = match delta {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_i64().ok_or_else(|| {
                    RepoError::Fault(Fault::parameter(format!(
                        "delta must be a list of dist repo ids, got {item}"
                    )))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(RepoError::Fault(Fault::parameter(format!(
                "delta must be a list of dist repo ids, got {other}"
            ))));
        }
    };
    let mut dirs = Vec::new();
    for id in ids {
        let info = repo_info(ctx, id).await?;
        if !info.get("dist").and_then(Value::as_bool).unwrap_or(false) {
            return Err(RepoError::generic(format!(
                "Base repo for deltas must also be a dist repo (repo {id} is not)"
            )));
        }
        let top = distrepo_dir(topdir, id, rpm_str(&info, "tag_name"));
        if !top.exists() {
            return Err(RepoError::generic(format!(
                "Base drpm repo missing: {}",
                top.display()
            )));
        }
        let packages = top.join(arch).join("Packages");
        let mut letters: Vec<PathBuf> = match std::fs::read_dir(&packages) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect(),
            Err(error) => {
                // The old repo may simply not have had this arch: no deltas from it.
                tracing::warn!(task_id = ctx.task_id, dir = %packages.display(), %error,
                    "no packages of this arch in the delta base repo");
                Vec::new()
            }
        };
        letters.sort();
        dirs.extend(letters);
    }
    Ok(dirs)
}

/// Uploads every regular file under `dir` (not the symlinks into the topdir) to the task's
/// upload dir, keeping sub-dirs, and records the relative paths.
async fn upload_tree(
    ctx: &TaskContext,
    files: &dyn super::TaskFiles,
    root: &Path,
    dir: &Path,
    manifest: &mut Vec<String>,
) -> Result<(), RepoError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(RepoError::io("cannot list", dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let meta = std::fs::symlink_metadata(&path).map_err(RepoError::io("cannot stat", &path))?;
        if meta.is_dir() {
            Box::pin(upload_tree(ctx, files, root, &path, manifest)).await?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let parts: Vec<String> = rel
                .parent()
                .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            let name = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files
                .upload(&path, &UploadTarget::for_task(ctx.task_id, &parts, &name)?)
                .await?;
            manifest.push(rel.display().to_string());
        }
    }
    Ok(())
}

async fn write_signed_rpms(
    ctx: &TaskContext,
    files: &dyn super::TaskFiles,
    task_dir: &Path,
    chosen: &BTreeMap<i64, (Value, Option<String>)>,
) -> Result<(), RepoError> {
    let calls: Vec<(i64, String)> = chosen
        .iter()
        .filter_map(|(id, (_, key))| key.clone().map(|k| (*id, k)))
        .collect();
    let mut log = String::new();
    for batch in calls.chunks(SIGNED_BATCH) {
        let multicall: Vec<Value> = batch
            .iter()
            .map(|(id, key)| json!({"methodName": "host.writeSignedRPM", "params": [id, key]}))
            .collect();
        let results = ctx
            .hub
            .call("multiCall", vec![json!(multicall)], Map::new())
            .await?;
        for ((id, key), result) in batch
            .iter()
            .zip(results.as_array().cloned().unwrap_or_default())
        {
            match result.get("faultString") {
                Some(fault) => log.push_str(&format!("rpm {id} key {key}: FAILED {fault}\n")),
                None => log.push_str(&format!("rpm {id} key {key}: written\n")),
            }
        }
    }
    let path = task_dir.join("written_signed_rpms.log");
    std::fs::write(&path, log).map_err(RepoError::io("cannot write", &path))?;
    files
        .upload(
            &path,
            &UploadTarget::for_task(ctx.task_id, &[], "written_signed_rpms.log")?,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hub_names_that_are_not_plain_file_names_are_refused() {
        let row =
            serde_json::json!({"name": "foo", "version": "1.0", "release": "1", "arch": "x86_64"});
        assert_eq!(
            super::path_parts(&row, "an rpm", ["name", "version", "release", "arch"]).unwrap(),
            ["foo", "1.0", "1", "x86_64"]
        );
        for (key, hostile) in [
            ("name", "../../etc"),
            ("version", ".."),
            ("release", ""),
            ("arch", "x/y"),
            ("name", "a\0b"),
        ] {
            let mut row = row.clone();
            row[key] = serde_json::json!(hostile);
            let error = super::path_parts(&row, "an rpm", ["name", "version", "release", "arch"])
                .unwrap_err();
            assert!(
                error.to_string().contains("not a plain file name")
                    && error.to_string().contains(key),
                "{key}={hostile:?}: {error}"
            );
        }
    }

    use super::*;

    #[test]
    fn the_first_preferred_key_wins_case_insensitively() {
        let rows = vec![
            json!({"id": 1, "sigkey": "BBBB"}),
            json!({"id": 1, "sigkey": "aaaa"}),
            json!({"id": 2, "sigkey": "bbbb"}),
            json!({"id": 3, "sigkey": null}),
        ];
        let keys = vec!["aaaa".to_owned(), "bbbb".to_owned()];
        let chosen = choose_signatures(&rows, &keys);
        assert_eq!(chosen[&1].1.as_deref(), Some("aaaa"));
        assert_eq!(chosen[&2].1.as_deref(), Some("bbbb"));
        assert_eq!(chosen[&3].1, None);
    }
}
