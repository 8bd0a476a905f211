//! The user side of the fake hub: the calls a person makes with the `koji` CLI, following
//! kojihub's `RootExports`: `build(src, target, opts, priority, channel)`, what `koji build`
//! sends after uploading its SRPM to `cli-build/<unique>/`; `tagBuild`, what `koji tag-build`
//! sends; and the reads `koji taskinfo` adds to the built-in task calls (`getUser`,
//! `listBuilds`).
//!
//! Install it with [`UserApi::install`] after [`BuildSide::install`]: the target check reads
//! the build side's targets. The task it creates is an ordinary FREE root task in the hub's
//! task table, so a builder takes it exactly as one queued with [`crate::FakeHub::create_task`].

use std::sync::Arc;

use dxr::Value;
use serde_json::{Value as Json, json};

use crate::FakeHub;
use crate::build::{BUILD_COMPLETE, BuildSide, build_state_name};
use crate::faults::{HubFault, code};
use crate::state::HubState;
use crate::tasks::NewTask;
use crate::world::describe;
use crate::xmlrpc::{python_type_name, truthy, vint, vopt_int, vstr};

/// `koji.PRIO_DEFAULT`.
pub const PRIO_DEFAULT: i64 = 20;

/// Handle to the installed user-side calls.
#[derive(Clone)]
pub struct UserApi {
    side: BuildSide,
}

/// Python's `str(value)` for the scalar values a fault message quotes.
fn python_str(value: &Value) -> String {
    match value {
        Value::Nil => "None".to_owned(),
        Value::Boolean(true) => "True".to_owned(),
        Value::Boolean(false) => "False".to_owned(),
        Value::Integer(n) => n.to_string(),
        Value::Long(n) => n.to_string(),
        Value::Double(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => crate::build::to_json(other).to_string(),
    }
}

/// kojihub's `convert_value(value, cast=str, check_only=True)`.
fn check_str(value: Option<&Value>) -> Result<String, HubFault> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Nil) => Err(HubFault::parameter(
            "Invalid type, expected type <class 'str'>",
        )),
        Some(other) => Err(HubFault::parameter(format!(
            "Invalid type for value '{}': <class '{}'>, expected type <class 'str'>",
            python_str(other),
            python_type_name(other)
        ))),
    }
}

impl UserApi {
    /// Registers `build` on `hub`; targets come from `side`.
    pub fn install(hub: &FakeHub, side: &BuildSide) -> Self {
        let api = Self { side: side.clone() };
        let this = Arc::new(api.clone());
        hub.register_method(
            "build",
            &["src", "target", "opts", "priority", "channel"],
            2,
            true,
            move |state, caller, args| this.build(state, caller, args),
        );
        hub.register_method(
            "getUser",
            &["userInfo", "strict", "krb_princs", "groups"],
            0,
            false,
            get_user,
        );
        let this = Arc::new(api.clone());
        hub.register_method(
            "tagBuild",
            &["tag", "build", "force", "fromtag"],
            2,
            true,
            move |state, caller, args| this.tag_build(state, caller, args),
        );
        let this = Arc::new(api.clone());
        hub.register_method(
            "listBuilds",
            &[
                "packageID",
                "userID",
                "taskID",
                "prefix",
                "state",
                "volumeID",
                "source",
                "createdBefore",
                "createdAfter",
                "completeBefore",
                "completeAfter",
                "type",
                "typeInfo",
                "queryOpts",
                "pattern",
                "cgID",
                "draft",
            ],
            0,
            false,
            move |state, _, args| this.list_builds(state, args),
        );
        api
    }

    /// `list_builds` with the filters `koji taskinfo` and tests use (`taskID`, −1 meaning
    /// "any task"; `state`, `prefix`, `userID`, `packageID`); any other filter is refused
    /// rather than silently ignored.
    fn list_builds(
        &self,
        state: &HubState,
        args: &crate::args::BoundArgs,
    ) -> Result<Value, HubFault> {
        for unsupported in [
            "volumeID",
            "source",
            "createdBefore",
            "createdAfter",
            "completeBefore",
            "completeAfter",
            "type",
            "typeInfo",
            "queryOpts",
            "pattern",
            "cgID",
            "draft",
        ] {
            if args.get(unsupported).is_some() {
                return Err(HubFault::generic(format!(
                    "the fake hub's listBuilds does not implement the {unsupported} filter"
                )));
            }
        }
        let task = args.opt_int("taskID")?;
        let build_state = args.opt_int("state")?;
        let prefix = args.opt_string("prefix")?;
        let user = args.opt_int("userID")?;
        let package = args.get("packageID").cloned();
        let list: Vec<Json> = self.side.with_world(|w| {
            w.builds
                .values()
                .filter(|b| match task {
                    None => true,
                    Some(-1) => b.task_id.is_some(),
                    Some(id) => b.task_id == Some(id),
                })
                .filter(|b| build_state.is_none_or(|s| b.state == s))
                .filter(|b| {
                    prefix
                        .as_ref()
                        .is_none_or(|p| b.name.starts_with(p.as_str()))
                })
                .filter(|b| user.is_none_or(|u| b.owner == u))
                .filter(|b| match &package {
                    None => true,
                    Some(Value::String(name)) => &b.name == name,
                    // The fake build side has no package ids: a build's package is its name.
                    Some(_) => false,
                })
                .map(|b| {
                    let mut value = w.build_value(b);
                    value["owner_name"] = json!(state.users.get(&b.owner).map(|u| u.name.clone()));
                    value
                })
                .collect()
        });
        Ok(crate::build::to_value(&Json::Array(list)))
    }

    /// `RootExports.build` + `make_task('build', [src, target, opts], **taskOpts)`, in
    /// kojihub's order of checks: login, `src` type, negative priority, channel, target.
    fn build(
        &self,
        state: &mut HubState,
        caller: &crate::auth::Caller,
        args: &crate::args::BoundArgs,
    ) -> Result<Value, HubFault> {
        let user_id = HubState::assert_login(caller)?;
        let user = state
            .users
            .get(&user_id)
            .cloned()
            .ok_or_else(|| HubFault::generic(format!("No such user: {user_id}")))?;
        // `if not opts: opts = {}`: every falsy value becomes an empty struct.
        let opts = match args.raw("opts") {
            Some(value) if truthy(value) => value.clone(),
            _ => Value::Struct(Default::default()),
        };
        let src = check_str(args.raw("src"))?;
        let mut task = NewTask::new("build", Vec::new()).owner(user.name.clone());
        if let Some(priority) = args.opt_int("priority")?
            && priority != 0
        {
            if priority < 0 && !user.admin {
                return Err(HubFault::not_allowed(
                    "only admins may create high-priority tasks",
                ));
            }
            task = task.priority(PRIO_DEFAULT + priority);
        }
        if let Some(channel) = args.get("channel").filter(|c| truthy(c)) {
            let name = python_str(channel);
            if !state.channels.values().any(|c| *c == name) {
                return Err(HubFault::generic(format!("No such channel: {name}")));
            }
            // The default channel policy's `has req_channel :: req`.
            task = task.channel(name);
        }
        // policy_data_from_task_args: the target must exist (by name or id) unless it is None;
        // its `opts.get('scratch')` is Python's AttributeError for a non-dict opts.
        let target = args.raw("target").cloned().unwrap_or(Value::Nil);
        match &target {
            Value::Nil => {}
            value => {
                let known = self.side.with_world(|w| {
                    w.targets.iter().any(|(name, (id, _, _))| match value {
                        Value::String(s) => s == name,
                        Value::Integer(n) => i64::from(*n) == *id,
                        Value::Long(n) => n == id,
                        _ => false,
                    })
                });
                if !known {
                    return Err(HubFault::generic(format!(
                        "No such build target: {}",
                        python_str(value)
                    )));
                }
            }
        }
        if !matches!(opts, Value::Struct(_)) {
            return Err(HubFault::plain(format!(
                "<class 'AttributeError'>: '{}' object has no attribute 'get'",
                python_type_name(&opts)
            )));
        }
        task.arglist = vec![Value::String(src), target, opts];
        state.make_task(task).map(vint)
    }
}

impl UserApi {
    /// kojihub's `tagBuild` (what `koji tag-build` calls): the build must exist and be
    /// COMPLETE, the tag (and `fromtag`) exist, the package be listed and not blocked in the tag
    /// (with inheritance), and the `tag` policy allow it; then a `tagBuild` task
    /// `[tag_id, build_id, force, fromtag_id]` at priority 10, which a builder runs with
    /// `host.tagBuild`. `force` is passed on but does not override the checks here (the fake
    /// hub has no permissions to force with).
    fn tag_build(
        &self,
        state: &mut HubState,
        caller: &crate::auth::Caller,
        args: &crate::args::BoundArgs,
    ) -> Result<Value, HubFault> {
        let user_id = HubState::assert_login(caller)?;
        let owner = state
            .users
            .get(&user_id)
            .map(|u| u.name.clone())
            .ok_or_else(|| HubFault::generic(format!("No such user: {user_id}")))?;
        let force = args.flag("force", false);
        let (tag_id, build_id, fromtag_id) = self.side.with_world(|w| {
            let build = w
                .build_by_value(args.get("build"))
                .cloned()
                .ok_or_else(|| {
                    HubFault::generic(format!("No such build: {}", describe(args.get("build"))))
                })?;
            let tag = w.tag_or_fault(args.get("tag"))?.clone();
            let fromtag_id = match args.get("fromtag") {
                None | Some(Value::Nil) => None,
                Some(value) => Some(w.tag_or_fault(Some(value))?.id),
            };
            if build.state != BUILD_COMPLETE {
                return Err(HubFault::new(
                    code::TAG,
                    format!(
                        "build {} not complete: state {}",
                        build.nvr(),
                        build_state_name(build.state)
                    ),
                ));
            }
            match w.package_listing(tag.id, &build.name) {
                None => {
                    return Err(HubFault::new(
                        code::TAG,
                        format!("Package {} not in list for {}", build.name, tag.name),
                    ));
                }
                Some(true) => {
                    return Err(HubFault::new(
                        code::TAG,
                        format!("Package {} blocked in {}", build.name, tag.name),
                    ));
                }
                Some(false) => {}
            }
            let operation = if fromtag_id.is_some() { "move" } else { "tag" };
            let data = json!({"tag": tag.id, "build": build.id, "fromtag": fromtag_id,
                              "operation": operation});
            w.policy_checks.push(("tag".to_owned(), data));
            if w.denied_policies.contains("tag") {
                return Err(HubFault::not_allowed("policy violation (tag)"));
            }
            Ok((tag.id, build.id, fromtag_id))
        })?;
        let task = NewTask::new(
            "tagBuild",
            vec![
                vint(tag_id),
                vint(build_id),
                Value::Boolean(force),
                vopt_int(fromtag_id),
            ],
        )
        .owner(owner)
        .priority(10);
        state.make_task(task).map(vint)
    }
}

/// kojihub's `get_user`: by id or name, the logged-in user when `userInfo` is None (None when
/// nobody is logged in); `strict` makes a miss a GenericError.
fn get_user(
    state: &mut HubState,
    caller: &crate::auth::Caller,
    args: &crate::args::BoundArgs,
) -> Result<Value, HubFault> {
    let wanted = args.get("userInfo").cloned();
    let user = match &wanted {
        None => match caller.user_id.filter(|_| caller.logged_in) {
            Some(id) => state.users.get(&id),
            None => return Ok(Value::Nil),
        },
        Some(Value::Integer(id)) => state.users.get(&i64::from(*id)),
        Some(Value::Long(id)) => state.users.get(id),
        Some(Value::String(name)) => state.user_by_name(name),
        Some(other) => {
            return Err(HubFault::generic(format!(
                "Invalid type for userInfo: {}",
                python_type_name(other)
            )));
        }
    };
    let Some(user) = user else {
        return match wanted {
            Some(value) if args.flag("strict", false) => {
                let shown = match &value {
                    Value::String(s) => format!("'{s}'"),
                    other => python_str(other),
                };
                Err(HubFault::generic(format!("No such user: {shown}")))
            }
            _ => Ok(Value::Nil),
        };
    };
    let mut fields = vec![
        ("id", vint(user.id)),
        ("name", vstr(&user.name)),
        ("status", vint(i64::from(user.blocked))),
        ("usertype", vint(i64::from(user.host))),
    ];
    if args.flag("krb_princs", true) {
        fields.push(("krb_principals", Value::Array(Vec::new())));
    }
    if args.flag("groups", false) {
        fields.push(("groups", Value::Array(Vec::new())));
    }
    Ok(Value::Struct(
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    ))
}
