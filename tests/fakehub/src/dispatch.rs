//! The method table (names, Python signatures, hub versions) and the dispatcher that runs one
//! XML-RPC call the way `kojixmlrpc.ModXMLRPCRequestHandler._dispatch` does.

use std::sync::Mutex;

use dxr::Value;

use crate::args::{BoundArgs, Signature, bind};
use crate::auth::{Caller, RequestMeta};
use crate::config::HubVersion;
use crate::faults::HubFault;
use crate::state::HubState;
use crate::xmlrpc::{DecodedCall, split_kwargs, vint, vstr, vstruct};

/// A method the fake hub serves.
#[derive(Debug, Clone, Copy)]
pub struct MethodSpec {
    pub name: &'static str,
    pub signature: Signature,
    /// First hub version (major, minor) that has it.
    pub since: (u32, u32),
    /// Whether a successful call commits data (and therefore the session's callnum).
    pub mutating: bool,
}

const fn spec(
    name: &'static str,
    signature: Signature,
    since: (u32, u32),
    mutating: bool,
) -> MethodSpec {
    MethodSpec {
        name,
        signature,
        since,
        mutating,
    }
}

const S: fn(&'static str, &'static [&'static str], usize) -> Signature = Signature::new;

fn methods() -> Vec<MethodSpec> {
    vec![
        spec("echo", Signature::varargs("echo"), (1, 0), false),
        spec(
            "getKojiVersion",
            S("getKojiVersion", &[], 0),
            (1, 23),
            false,
        ),
        spec("getAPIVersion", S("getAPIVersion", &[], 0), (1, 0), false),
        spec(
            "system.listMethods",
            S("system_listMethods", &[], 0),
            (1, 0),
            false,
        ),
        spec(
            "getLastEvent",
            S("getLastEvent", &["before", "strict"], 0),
            (1, 0),
            false,
        ),
        spec(
            "login",
            S(
                "login",
                &["user", "password", "opts", "renew", "exclusive"],
                2,
            ),
            (1, 0),
            true,
        ),
        spec(
            "sslLogin",
            S(
                "sslLogin",
                &["proxyuser", "proxyauthtype", "renew", "exclusive"],
                0,
            ),
            (1, 0),
            true,
        ),
        spec("logout", S("logout", &["session_id"], 0), (1, 0), true),
        spec(
            "logoutChild",
            S("logoutChild", &["session_id"], 1),
            (1, 0),
            true,
        ),
        spec("subsession", S("subsession", &[], 0), (1, 0), true),
        spec(
            "exclusiveSession",
            S("makeExclusive", &["force"], 0),
            (1, 0),
            true,
        ),
        spec("sharedSession", S("makeShared", &[], 0), (1, 0), true),
        spec(
            "getSessionInfo",
            S("getSessionInfo", &["details"], 0),
            (1, 0),
            false,
        ),
        spec(
            "getLoggedInUser",
            S("getLoggedInUser", &[], 0),
            (1, 0),
            false,
        ),
        spec(
            "getTaskInfo",
            S("getTaskInfo", &["task_id", "request", "strict"], 1),
            (1, 0),
            false,
        ),
        spec(
            "getTaskRequest",
            S("getTaskRequest", &["taskId"], 1),
            (1, 0),
            false,
        ),
        spec(
            "getTaskResult",
            S("getTaskResult", &["taskId", "raise_fault"], 1),
            (1, 0),
            false,
        ),
        spec(
            "getTaskChildren",
            S("getTaskChildren", &["task_id", "request", "strict"], 1),
            (1, 0),
            false,
        ),
        spec(
            "listTasks",
            S("listTasks", &["opts", "queryOpts"], 0),
            (1, 0),
            false,
        ),
        spec(
            "taskFinished",
            S("taskFinished", &["taskId"], 1),
            (1, 0),
            false,
        ),
        spec(
            "cancelTask",
            S("cancelTask", &["task_id", "recurse"], 1),
            (1, 0),
            true,
        ),
        spec(
            "cancelTaskChildren",
            S("cancelTaskChildren", &["task_id"], 1),
            (1, 0),
            true,
        ),
        spec(
            "listBuildroots",
            S(
                "listBuildroots",
                &[
                    "hostID",
                    "tagID",
                    "state",
                    "rpmID",
                    "archiveID",
                    "taskID",
                    "buildrootID",
                    "repoID",
                    "queryOpts",
                ],
                0,
            ),
            (1, 0),
            false,
        ),
        spec(
            "getBuildroot",
            S("getBuildroot", &["buildrootID", "strict"], 1),
            (1, 0),
            false,
        ),
        spec(
            "getHost",
            S("getHost", &["hostInfo", "strict", "event"], 1),
            (1, 0),
            false,
        ),
        spec(
            "listChannels",
            S("listChannels", &["hostID", "event", "enabled"], 0),
            (1, 0),
            false,
        ),
        spec(
            "listTaskOutput",
            S(
                "listTaskOutput",
                &["taskID", "stat", "all_volumes", "strict"],
                1,
            ),
            (1, 0),
            false,
        ),
        spec(
            "downloadTaskOutput",
            S(
                "downloadTaskOutput",
                &["taskID", "fileName", "offset", "size", "volume"],
                2,
            ),
            (1, 0),
            false,
        ),
        spec(
            "checkUpload",
            S(
                "checkUpload",
                &["path", "name", "verify", "tail", "volume"],
                2,
            ),
            (1, 0),
            false,
        ),
        spec(
            "uploadFile",
            S(
                "uploadFile",
                &[
                    "path", "name", "size", "md5sum", "offset", "data", "volume", "checksum",
                ],
                6,
            ),
            (1, 0),
            true,
        ),
        spec("host.getID", S("getID", &[], 0), (1, 0), false),
        spec("host.getHost", S("getHost", &[], 0), (1, 0), false),
        spec("host.isEnabled", S("isEnabled", &[], 0), (1, 0), false),
        spec(
            "host.updateHost",
            S("updateHost", &["task_load", "ready", "data"], 2),
            (1, 0),
            true,
        ),
        spec(
            "host.setHostData",
            S("setHostData", &["hostdata"], 1),
            (1, 34),
            true,
        ),
        spec("host.getLoadData", S("getLoadData", &[], 0), (1, 0), true),
        spec("host.getTasks", S("getTasks", &[], 0), (1, 34), true),
        spec(
            "host.getHostTasks",
            S("getHostTasks", &[], 0),
            (1, 0),
            false,
        ),
        spec(
            "host.openTask",
            S("openTask", &["task_id"], 1),
            (1, 0),
            true,
        ),
        spec(
            "host.closeTask",
            S("closeTask", &["task_id", "response"], 2),
            (1, 0),
            true,
        ),
        spec(
            "host.failTask",
            S("failTask", &["task_id", "response"], 2),
            (1, 0),
            true,
        ),
        spec(
            "host.freeTasks",
            S("freeTasks", &["tasks"], 1),
            (1, 0),
            true,
        ),
        spec(
            "host.refuseTask",
            S("refuseTask", &["task_id", "soft", "msg"], 1),
            (1, 34),
            true,
        ),
        spec(
            "host.setTaskWeight",
            S("setTaskWeight", &["task_id", "weight"], 2),
            (1, 0),
            true,
        ),
        spec(
            "host.subtask",
            S("subtask", &["method", "arglist", "parent"], 3).with_varkw(),
            (1, 0),
            true,
        ),
        spec(
            "host.taskSetWait",
            S("taskSetWait", &["parent", "tasks"], 2),
            (1, 0),
            true,
        ),
        spec("host.taskWait", S("taskWait", &["parent"], 1), (1, 0), true),
        spec(
            "host.taskWaitResults",
            S("taskWaitResults", &["parent", "tasks", "canfail"], 2),
            (1, 0),
            true,
        ),
        spec(
            "host.newBuildRoot",
            S("newBuildRoot", &["repo", "arch", "task_id"], 2),
            (1, 0),
            true,
        ),
        spec(
            "host.setBuildRootState",
            S("setBuildRootState", &["brootid", "state", "task_id"], 2),
            (1, 0),
            true,
        ),
        spec(
            "host.setBuildRootList",
            S("setBuildRootList", &["brootid", "rpmlist", "task_id"], 2),
            (1, 0),
            true,
        ),
        spec(
            "host.updateBuildRootList",
            S("updateBuildRootList", &["brootid", "rpmlist", "task_id"], 2),
            (1, 0),
            true,
        ),
    ]
}

/// The method table for a hub version, with version-dependent signatures applied.
pub fn method_table(version: HubVersion) -> Vec<MethodSpec> {
    methods()
        .into_iter()
        .filter(|m| version.at_least(m.since.0, m.since.1))
        .map(|mut m| {
            if m.name == "host.updateHost" && !version.has_host_data_arg() {
                m.signature = S("updateHost", &["task_load", "ready"], 2);
            }
            m
        })
        .collect()
}

pub fn lookup(version: HubVersion, name: &str) -> Option<MethodSpec> {
    method_table(version).into_iter().find(|m| m.name == name)
}

fn invalid_method(name: &str) -> HubFault {
    HubFault::generic(format!("Invalid method: {name}"))
}

/// Run one call (top level, or one entry of a multicall) under `caller`.
pub fn dispatch(
    state: &Mutex<HubState>,
    caller: &mut Caller,
    meta: &RequestMeta,
    call: DecodedCall,
) -> Result<Value, HubFault> {
    let version = lock(state)?.config.version;
    if matches!(call.method.as_str(), "multiCall" | "system.multicall") {
        let params = crate::xmlrpc::encode_args(call.positional, call.keywords);
        let Some(Value::Array(calls)) = params.into_iter().next() else {
            return Err(HubFault::parameter(
                "multiCall() missing 1 required positional argument: 'calls'",
            ));
        };
        let mut results = Vec::with_capacity(calls.len());
        for entry in calls {
            let outcome = match entry {
                Value::Struct(mut members) => {
                    let name = match members.remove("methodName") {
                        Some(Value::String(name)) => name,
                        _ => String::new(),
                    };
                    let params = match members.remove("params") {
                        Some(Value::Array(params)) => params,
                        _ => Vec::new(),
                    };
                    let (positional, keywords) = split_kwargs(params);
                    dispatch(
                        state,
                        caller,
                        meta,
                        DecodedCall {
                            method: name,
                            positional,
                            keywords,
                        },
                    )
                }
                _ => Err(HubFault::plain(
                    "<class 'TypeError'>: multicall entries must be structs",
                )),
            };
            results.push(match outcome {
                Ok(value) => Value::Array(vec![value]),
                Err(fault) => vstruct([
                    ("faultCode", vint(i64::from(fault.code))),
                    ("faultString", vstr(fault.message)),
                ]),
            });
        }
        return Ok(Value::Array(results));
    }
    let custom = lock(state)?.custom_methods.get(&call.method).cloned();
    if let Some(custom) = custom {
        let args = bind(&custom.signature, call.positional, call.keywords)?;
        let mut guard = lock(state)?;
        let result = (custom.handler)(&mut guard, caller, &args);
        if result.is_ok() && custom.mutating {
            guard.commit_callnum(caller);
        }
        return result;
    }
    let spec = lookup(version, &call.method).ok_or_else(|| invalid_method(&call.method))?;
    let args = bind(&spec.signature, call.positional, call.keywords)?;
    let result = if spec.name == "uploadFile" {
        crate::uploads::upload_file(state, caller, &args)
    } else {
        let mut guard = lock(state)?;
        run_method(&mut guard, caller, meta, spec.name, &args)
    };
    if result.is_ok() && spec.mutating {
        lock(state)?.commit_callnum(caller);
    }
    result
}

pub fn lock(state: &Mutex<HubState>) -> Result<std::sync::MutexGuard<'_, HubState>, HubFault> {
    state
        .lock()
        .map_err(|_| HubFault::plain("<class 'RuntimeError'>: fake hub state lock poisoned"))
}

/// The session checks kojixmlrpc makes before every call (`check_session`).
pub fn open_session(
    state: &Mutex<HubState>,
    meta: &RequestMeta,
    method: &str,
) -> Result<Caller, HubFault> {
    let mut guard = lock(state)?;
    let caller = guard.load_session(meta, method)?;
    if let Some(lockerror) = &caller.lockerror
        && !matches!(method, "exclusiveSession" | "login" | "logout")
    {
        return Err(HubFault::auth_lock(lockerror.clone()));
    }
    Ok(caller)
}

fn run_method(
    hub: &mut HubState,
    caller: &mut Caller,
    meta: &RequestMeta,
    name: &str,
    args: &BoundArgs,
) -> Result<Value, HubFault> {
    if let Some(host_method) = name.strip_prefix("host.") {
        let host_id = hub.verify_host(caller)?;
        return run_host_method(hub, host_id, host_method, args);
    }
    match name {
        "echo" => Ok(Value::Array(args.extra.clone())),
        "getKojiVersion" => Ok(vstr(hub.config.version.to_string())),
        "getAPIVersion" => Ok(vint(1)),
        "system.listMethods" => {
            let mut names: Vec<Value> = method_table(hub.config.version)
                .into_iter()
                .map(|m| vstr(m.name))
                .collect();
            names.extend(hub.custom_methods.keys().map(vstr));
            names.push(vstr("multiCall"));
            names.push(vstr("system.multicall"));
            Ok(Value::Array(names))
        }
        "getLastEvent" => Ok(vstruct([
            ("id", vint(hub.event_id)),
            ("ts", Value::Double(hub.now())),
        ])),
        "login" => hub.login(caller, args),
        "sslLogin" => hub.ssl_login(caller, meta, args),
        "logout" => hub.logout(caller, args),
        "logoutChild" => hub.logout_child(caller, args),
        "subsession" => hub.subsession(caller),
        "exclusiveSession" => {
            hub.make_exclusive(caller, args.flag("force", false))?;
            Ok(Value::Nil)
        }
        "sharedSession" => hub.shared_session(caller),
        "getSessionInfo" => Ok(hub.get_session_info(caller, args)),
        "getLoggedInUser" => Ok(hub.get_logged_in_user(caller)),
        "getTaskInfo" => hub.get_task_info(args),
        "getTaskRequest" => {
            let task = hub.task(args.int("taskId")?)?.clone();
            match hub.task_info_value(&task, true) {
                Value::Struct(mut info) => Ok(info.remove("request").unwrap_or(Value::Nil)),
                _ => Ok(Value::Nil),
            }
        }
        "getTaskResult" => hub.task_result(args.int("taskId")?, args.flag("raise_fault", true)),
        "getTaskChildren" => hub.get_task_children(args),
        "listTasks" => hub.list_tasks(args),
        "taskFinished" => Ok(Value::Boolean(
            hub.task(args.int("taskId")?)?.state.is_finished(),
        )),
        "cancelTask" => hub.cancel_task_call(caller, args),
        "cancelTaskChildren" => hub.cancel_task_children_call(caller, args),
        "listBuildroots" => hub.list_buildroots(args),
        "getBuildroot" => {
            let id = args.int("buildrootID")?;
            match hub.buildroots.get(&id) {
                Some(br) => Ok(hub.buildroot_value(br)),
                None if args.flag("strict", false) => {
                    Err(HubFault::generic(format!("No such buildroot: {id}")))
                }
                None => Ok(Value::Nil),
            }
        }
        "getHost" => {
            let host = match args.get("hostInfo") {
                Some(Value::String(name)) => hub.host_by_name(name).cloned(),
                Some(other) => {
                    crate::xmlrpc::as_int(other).and_then(|id| hub.hosts.get(&id).cloned())
                }
                None => None,
            };
            match host {
                Some(host) => Ok(hub.host_struct(&host)),
                None if args.flag("strict", false) => Err(HubFault::generic("Invalid hostInfo")),
                None => Ok(Value::Nil),
            }
        }
        // kojihub's listChannels: every channel, or a host's (by id or name); all are enabled.
        "listChannels" => {
            let only: Option<Vec<i64>> = match args.get("hostID") {
                None | Some(Value::Nil) => None,
                Some(Value::String(name)) => Some(
                    hub.host_by_name(name)
                        .map(|host| host.channels.clone())
                        .ok_or_else(|| HubFault::generic(format!("No such host: {name}")))?,
                ),
                Some(other) => {
                    let id = crate::xmlrpc::as_int(other)
                        .ok_or_else(|| HubFault::generic("Invalid type for hostInfo"))?;
                    Some(
                        hub.hosts
                            .get(&id)
                            .map(|host| host.channels.clone())
                            .ok_or_else(|| HubFault::generic(format!("No such host: {id}")))?,
                    )
                }
            };
            let wanted_enabled = match args.get("enabled") {
                Some(Value::Boolean(flag)) => Some(*flag),
                _ => None,
            };
            Ok(Value::Array(
                hub.channels
                    .iter()
                    .filter(|(id, _)| only.as_ref().is_none_or(|ids| ids.contains(id)))
                    .filter(|_| wanted_enabled.is_none_or(|flag| flag))
                    .map(|(id, name)| {
                        vstruct([
                            ("id", vint(*id)),
                            ("name", vstr(name.clone())),
                            ("description", Value::Nil),
                            ("enabled", Value::Boolean(true)),
                            ("comment", Value::Nil),
                        ])
                    })
                    .collect(),
            ))
        }
        "listTaskOutput" => hub.list_task_output(args),
        "downloadTaskOutput" => hub.download_task_output(args),
        "checkUpload" => hub.check_upload(caller, args),
        other => Err(invalid_method(other)),
    }
}

fn run_host_method(
    hub: &mut HubState,
    host_id: i64,
    name: &str,
    args: &BoundArgs,
) -> Result<Value, HubFault> {
    match name {
        "getID" => Ok(vint(host_id)),
        "getHost" => {
            let host = hub
                .hosts
                .get(&host_id)
                .cloned()
                .ok_or_else(|| HubFault::generic("No such host"))?;
            Ok(hub.host_struct(&host))
        }
        "isEnabled" => Ok(Value::Boolean(
            hub.hosts.get(&host_id).is_some_and(|h| h.enabled),
        )),
        "updateHost" => hub.update_host(host_id, args),
        "setHostData" => hub.set_host_data(host_id, args),
        "getLoadData" => Ok(hub.get_load_data(host_id)),
        "getTasks" => Ok(hub.get_tasks(host_id)),
        "getHostTasks" => Ok(hub.get_host_tasks(host_id)),
        "openTask" => hub.open_task(host_id, args.int("task_id")?),
        "closeTask" => hub.close_task(host_id, args),
        "failTask" => hub.fail_task(host_id, args),
        "freeTasks" => hub.free_tasks(host_id, args),
        "refuseTask" => hub.refuse_task(host_id, args),
        "setTaskWeight" => hub.set_task_weight(host_id, args),
        "subtask" => hub.subtask(host_id, args, &args.extra_kw),
        "taskSetWait" => hub.task_set_wait(host_id, args),
        "taskWait" => hub.task_wait(host_id, args),
        "taskWaitResults" => hub.task_wait_results(host_id, args),
        "newBuildRoot" => hub.new_buildroot(host_id, args),
        "setBuildRootState" => hub.set_buildroot_state(host_id, args),
        "setBuildRootList" => hub.set_buildroot_list(host_id, args, false),
        "updateBuildRootList" => hub.set_buildroot_list(host_id, args, true),
        other => Err(invalid_method(&format!("host.{other}"))),
    }
}
