//! Tasks, hosts and buildroots: kojihub's `Task` class, `HostExports` and the scheduler, with
//! the state machine of shared/koji-protocol.md §8.2.

use std::collections::BTreeMap;

use dxr::Value;

use crate::args::BoundArgs;
use crate::auth::Caller;
use crate::faults::HubFault;
use crate::state::{Buildroot, BuildrootState, HubState, Refusal, Task, TaskState};
use crate::xmlrpc::{
    StoredResult, as_int, decode_method_call, decode_response, encode_method_call, vint, vopt_int,
    vstr, vstruct,
};

/// What a test needs to create a task (`make_task`).
#[derive(Debug, Clone)]
pub struct NewTask {
    pub method: String,
    /// The request params, already kwargs-encoded (see [`crate::xmlrpc::encode_args`]).
    pub arglist: Vec<Value>,
    pub arch: String,
    pub channel: String,
    pub priority: i64,
    pub owner: Option<String>,
    pub parent: Option<i64>,
    pub label: Option<String>,
    /// Create it ASSIGNED to this host id instead of FREE.
    pub assign: Option<i64>,
    /// Set by [`NewTask::arch`]; subtasks without it take their parent's arch.
    pub arch_given: bool,
}

impl NewTask {
    pub fn new(method: impl Into<String>, arglist: Vec<Value>) -> Self {
        Self {
            method: method.into(),
            arglist,
            arch: "noarch".to_owned(),
            channel: "default".to_owned(),
            priority: 20,
            owner: None,
            parent: None,
            label: None,
            assign: None,
            arch_given: false,
        }
    }
    pub fn arch(mut self, arch: impl Into<String>) -> Self {
        self.arch = arch.into();
        self.arch_given = true;
        self
    }
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }
    pub fn priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }
    pub fn parent(mut self, parent: i64) -> Self {
        self.parent = Some(parent);
        self
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn assign(mut self, host_id: i64) -> Self {
        self.assign = Some(host_id);
        self
    }
}

fn no_such_task(id: i64) -> HubFault {
    HubFault::generic(format!("No such task: {id}"))
}

impl HubState {
    pub fn task(&self, id: i64) -> Result<&Task, HubFault> {
        self.tasks.get(&id).ok_or_else(|| no_such_task(id))
    }

    fn task_mut(&mut self, id: i64) -> Result<&mut Task, HubFault> {
        self.tasks.get_mut(&id).ok_or_else(|| no_such_task(id))
    }

    /// `make_task`.
    pub fn make_task(&mut self, new: NewTask) -> Result<i64, HubFault> {
        let mut channel_id = self.channel_id_or_create(&new.channel);
        let mut owner = match &new.owner {
            Some(name) => self
                .user_by_name(name)
                .map(|u| u.id)
                .ok_or_else(|| HubFault::generic(format!("No such user: {name}")))?,
            None => 1,
        };
        let mut priority = new.priority;
        let mut arch = new.arch.clone();
        if let Some(parent_id) = new.parent {
            let parent = self
                .tasks
                .get(&parent_id)
                .ok_or_else(|| HubFault::generic(format!("Invalid parent task: {parent_id}")))?;
            if parent.state != TaskState::Open {
                return Err(HubFault::generic(format!(
                    "Parent task (id {parent_id}) is not open"
                )));
            }
            // make_task: children default to the parent's owner, arch and priority − 1; the
            // default channel policy (`is_child_task :: parent`) keeps the parent's channel.
            owner = parent.owner;
            channel_id = parent.channel_id;
            priority = parent.priority - 1;
            if !new.arch_given {
                arch.clone_from(&parent.arch);
            }
        }
        if new.parent.is_none() && new.label.is_some() {
            return Err(HubFault::generic(
                "a task without parent cannot have a label",
            ));
        }
        if let (Some(parent), Some(label)) = (new.parent, &new.label)
            && self
                .tasks
                .values()
                .any(|t| t.parent == Some(parent) && t.label.as_deref() == Some(label))
        {
            return Err(HubFault::generic(format!(
                "task {parent} already has a child labelled {label}"
            )));
        }
        let id = self.next_task_id;
        self.next_task_id += 1;
        let (state, host_id) = match new.assign {
            Some(host) => (TaskState::Assigned, Some(host)),
            None => (TaskState::Free, None),
        };
        let now = self.now();
        self.tasks.insert(
            id,
            Task {
                id,
                state,
                method: new.method.clone(),
                arch,
                channel_id,
                host_id,
                parent: new.parent,
                label: new.label,
                owner,
                priority,
                weight: 1.0,
                request_xml: encode_method_call(&new.method, &new.arglist),
                result_xml: None,
                create_ts: now,
                start_ts: None,
                completion_ts: None,
                waiting: None,
                awaited: None,
                assign_ts: new.assign.map(|_| now),
            },
        );
        self.next_event();
        Ok(id)
    }

    /// `Task.verifyHost`: the task is OPEN and owned by this host.
    pub fn task_owned_by(&self, task_id: i64, host_id: i64) -> bool {
        self.tasks
            .get(&task_id)
            .is_some_and(|t| t.state == TaskState::Open && t.host_id == Some(host_id))
    }

    /// `Task.assertHost`.
    pub fn assert_task_host(&self, task_id: i64, host_id: i64) -> Result<(), HubFault> {
        if self.task_owned_by(task_id, host_id) {
            Ok(())
        } else {
            Err(HubFault::not_allowed(format!(
                "host {host_id} does not own task {task_id}"
            )))
        }
    }

    fn decoded_request(task: &Task) -> Value {
        match decode_method_call(&task.request_xml) {
            Ok(call) => Value::Array(crate::xmlrpc::encode_args(call.positional, call.keywords)),
            Err(_) => Value::Nil,
        }
    }

    pub fn task_info_value(&self, task: &Task, request: bool) -> Value {
        let mut info = self.task_info(task);
        if request {
            info.insert("request".into(), Self::decoded_request(task));
        }
        Value::Struct(info)
    }

    /// `getTaskInfo(task_id, request=False, strict=False)`.
    pub fn get_task_info(&self, args: &BoundArgs) -> Result<Value, HubFault> {
        let request = args.flag("request", false);
        let strict = args.flag("strict", false);
        let one = |id: i64| -> Result<Value, HubFault> {
            match self.tasks.get(&id) {
                Some(task) => Ok(self.task_info_value(task, request)),
                None if strict => Err(no_such_task(id)),
                None => Ok(Value::Nil),
            }
        };
        match args.get("task_id") {
            Some(Value::Array(_)) => {
                let ids = args.int_list("task_id")?.unwrap_or_default();
                ids.into_iter()
                    .map(one)
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array)
            }
            _ => one(args.int("task_id")?),
        }
    }

    pub fn get_task_children(&self, args: &BoundArgs) -> Result<Value, HubFault> {
        let id = args.int("task_id")?;
        if args.flag("strict", false) {
            self.task(id)?;
        }
        let request = args.flag("request", false);
        Ok(Value::Array(
            self.tasks
                .values()
                .filter(|t| t.parent == Some(id))
                .map(|t| self.task_info_value(t, request))
                .collect(),
        ))
    }

    /// `Task.getResult`: the stored result, or the stored fault raised again.
    pub fn task_result(&self, id: i64, raise_fault: bool) -> Result<Value, HubFault> {
        let task = self.task(id)?;
        match task.state {
            TaskState::Canceled => return Err(HubFault::generic(format!("Task {id} is canceled"))),
            TaskState::Closed | TaskState::Failed => {}
            _ => return Err(HubFault::generic(format!("Task {id} is not finished"))),
        }
        let Some(xml) = &task.result_xml else {
            return Ok(Value::Nil);
        };
        match decode_response(xml)? {
            StoredResult::Value(value) => Ok(value),
            StoredResult::Fault { code, message } if raise_fault => {
                Err(HubFault::new(code, message))
            }
            StoredResult::Fault { code, message } => Ok(vstruct([
                ("faultCode", vint(i64::from(code))),
                ("faultString", vstr(message)),
            ])),
        }
    }

    /// `Task.cancel(recurse=True)`: active tasks (and their children) become CANCELED.
    pub fn cancel_task_tree(&mut self, id: i64, recurse: bool) -> Result<bool, HubFault> {
        let now = self.now();
        let task = self.task_mut(id)?;
        if !task.state.is_active() {
            return Ok(false);
        }
        task.state = TaskState::Canceled;
        task.completion_ts = Some(now);
        if recurse {
            self.cancel_children(id);
        }
        self.next_event();
        Ok(true)
    }

    pub fn cancel_children(&mut self, parent: i64) {
        let children: Vec<i64> = self
            .tasks
            .values()
            .filter(|t| t.parent == Some(parent))
            .map(|t| t.id)
            .collect();
        for child in children {
            let _ = self.cancel_task_tree(child, true);
        }
    }

    pub fn cancel_task_call(
        &mut self,
        caller: &Caller,
        args: &BoundArgs,
    ) -> Result<Value, HubFault> {
        let id = args.int("task_id")?;
        let task = self.task(id)?;
        let is_owner = caller.logged_in && caller.user_id == Some(task.owner);
        if !is_owner && !self.is_admin(caller) {
            return Err(HubFault::not_allowed("Cannot cancel task, not owner"));
        }
        self.cancel_task_tree(id, args.flag("recurse", true))?;
        Ok(Value::Nil)
    }

    pub fn cancel_task_children_call(
        &mut self,
        caller: &Caller,
        args: &BoundArgs,
    ) -> Result<Value, HubFault> {
        let id = args.int("task_id")?;
        let task = self.task(id)?;
        let is_owner = caller.logged_in && caller.user_id == Some(task.owner);
        let host_owns = caller
            .user_id
            .and_then(|u| self.host_by_user(u))
            .is_some_and(|h| self.task_owned_by(id, h.id));
        if !is_owner && !host_owns && !self.is_admin(caller) {
            return Err(HubFault::not_allowed("Cannot cancel task, not owner"));
        }
        self.cancel_children(id);
        Ok(Value::Nil)
    }

    /// `Task.lock`/`open`: FREE or ASSIGNED-to-me → OPEN, else nil.
    pub fn open_task(&mut self, host_id: i64, id: i64) -> Result<Value, HubFault> {
        let now = self.now();
        let task = self.task_mut(id)?;
        let allowed = match task.state {
            TaskState::Free => task.host_id.is_none(),
            TaskState::Assigned => task.host_id.is_none_or(|h| h == host_id),
            _ => false,
        };
        if !allowed {
            return Ok(Value::Nil);
        }
        task.state = TaskState::Open;
        task.host_id = Some(host_id);
        task.start_ts = Some(now);
        let task = task.clone();
        let mut info = self.task_info(&task);
        info.insert("request".into(), vstr(&task.request_xml));
        Ok(Value::Struct(info))
    }

    fn finish_task(
        &mut self,
        host_id: i64,
        id: i64,
        xml: String,
        state: TaskState,
    ) -> Result<Value, HubFault> {
        self.assert_task_host(id, host_id)?;
        let now = self.now();
        let task = self.task_mut(id)?;
        task.state = state;
        task.result_xml = Some(xml);
        task.completion_ts = Some(now);
        self.next_event();
        Ok(Value::Nil)
    }

    pub fn close_task(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        self.finish_task(
            host_id,
            args.int("task_id")?,
            args.string("response")?,
            TaskState::Closed,
        )
    }

    pub fn fail_task(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        self.finish_task(
            host_id,
            args.int("task_id")?,
            args.string("response")?,
            TaskState::Failed,
        )
    }

    /// `Task.free`: back to FREE with no host. Finished tasks cannot be freed.
    pub fn free_task(&mut self, id: i64) -> Result<(), HubFault> {
        let task = self.task_mut(id)?;
        if task.state.is_finished() {
            return Err(HubFault::generic(format!(
                "Cannot free task {id}, state is {}",
                task.state.name()
            )));
        }
        // Like kojihub, start_time stays: only state and host change.
        task.state = TaskState::Free;
        task.host_id = None;
        task.assign_ts = None;
        Ok(())
    }

    pub fn free_tasks(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        for id in args.int_list("tasks")?.unwrap_or_default() {
            if self.task_owned_by(id, host_id) {
                self.free_task(id)?;
            }
        }
        Ok(Value::Nil)
    }

    pub fn refuse_task(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        let id = args.int("task_id")?;
        let soft = args.flag("soft", true);
        let msg = args.opt_string("msg")?.unwrap_or_default();
        // kojihub only checks host_id: an unrelated task is ignored (logged), and freeing a
        // finished task of ours raises "Cannot free task".
        if self.task(id)?.host_id != Some(host_id) {
            return Ok(Value::Nil);
        }
        self.free_task(id)?;
        let ts = self.now();
        self.refusals.push(Refusal {
            task_id: id,
            host_id,
            soft,
            msg,
            ts,
        });
        Ok(Value::Nil)
    }

    pub fn set_task_weight(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        let id = args.int("task_id")?;
        let weight = args.float("weight")?;
        self.assert_task_host(id, host_id)?;
        self.task_mut(id)?.weight = weight;
        Ok(Value::Nil)
    }

    pub fn update_host(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        let load = args.float("task_load")?;
        let ready = args.flag("ready", false);
        let data = args.get("data").cloned();
        let now = self.now();
        let host = self
            .hosts
            .get_mut(&host_id)
            .ok_or_else(|| HubFault::generic("No such host"))?;
        host.task_load = load;
        host.ready = ready;
        host.update_ts = Some(now);
        if data.is_some() {
            host.data = data;
        }
        Ok(Value::Nil)
    }

    pub fn set_host_data(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        let data = args.raw("hostdata").cloned().unwrap_or(Value::Nil);
        let as_struct = match (&data, self.config.version.at_least(1, 35)) {
            (Value::Struct(_), true) => data,
            (Value::String(json), _) => json_to_value(json)
                .ok_or_else(|| HubFault::generic(format!("host data is not valid JSON: {json}")))?,
            (other, _) => {
                return Err(HubFault::generic(format!(
                    "Invalid hostdata: {}",
                    crate::xmlrpc::python_type_name(other)
                )));
            }
        };
        if let Some(host) = self.hosts.get_mut(&host_id) {
            host.data = Some(as_struct);
        }
        Ok(Value::Nil)
    }

    /// `host.getHostTasks`: OPEN tasks of this host, with `alert` when a waiting task has an
    /// awaited child that finished.
    pub fn get_host_tasks(&self, host_id: i64) -> Value {
        let mut out = Vec::new();
        for task in self
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Open && t.host_id == Some(host_id))
        {
            let mut entry = BTreeMap::new();
            entry.insert("id".to_owned(), vint(task.id));
            entry.insert(
                "waiting".to_owned(),
                task.waiting.map_or(Value::Nil, Value::Boolean),
            );
            entry.insert("weight".to_owned(), Value::Double(task.weight));
            if task.waiting == Some(true)
                && self.tasks.values().any(|c| {
                    c.parent == Some(task.id) && c.awaited == Some(true) && c.state.is_finished()
                })
            {
                entry.insert("alert".to_owned(), Value::Boolean(true));
            }
            out.push(Value::Struct(entry));
        }
        Value::Array(out)
    }

    fn assigned_task_entry(task: &Task) -> Value {
        vstruct([
            ("arch", vstr(&task.arch)),
            ("channel_id", vint(task.channel_id)),
            ("create_ts", Value::Double(task.create_ts)),
            ("host_id", vopt_int(task.host_id)),
            ("id", vint(task.id)),
            ("method", vstr(&task.method)),
            ("priority", vint(task.priority)),
            ("state", vint(task.state as i64)),
        ])
    }

    fn tasks_assigned_to(&self, host_id: i64) -> Vec<&Task> {
        let mut tasks: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Assigned && t.host_id == Some(host_id))
            .collect();
        tasks.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then(a.create_ts.total_cmp(&b.create_ts))
        });
        tasks
    }

    fn maybe_run_scheduler(&mut self) {
        let Some(interval) = self.config.scheduler_run_interval else {
            return;
        };
        let due = self
            .last_scheduler_run
            .is_none_or(|last| last.elapsed() >= interval);
        if due {
            self.run_scheduler();
        }
    }

    /// `host.getTasks` [≥1.34]: ASSIGNED tasks of this host; runs the scheduler when none.
    pub fn get_tasks(&mut self, host_id: i64) -> Value {
        if self.tasks_assigned_to(host_id).is_empty() {
            self.maybe_run_scheduler();
        }
        Value::Array(
            self.tasks_assigned_to(host_id)
                .into_iter()
                .map(Self::assigned_task_entry)
                .collect(),
        )
    }

    fn host_channels_value(&self, host_id: i64) -> Value {
        let channels = self
            .hosts
            .get(&host_id)
            .map(|h| h.channels.clone())
            .unwrap_or_default();
        Value::Array(channels.into_iter().map(vint).collect())
    }

    fn load_data_host(&self, host_id: i64) -> Option<Value> {
        let host = self.hosts.get(&host_id)?;
        Some(vstruct([
            ("arches", vstr(&host.arches)),
            ("capacity", Value::Double(host.capacity)),
            ("channels", self.host_channels_value(host_id)),
            ("id", vint(host.id)),
            ("name", vstr(&host.name)),
            ("task_load", Value::Double(host.task_load)),
        ]))
    }

    fn legacy_task_entry(task: &Task) -> Value {
        vstruct([
            ("arch", vstr(&task.arch)),
            ("channel_id", vint(task.channel_id)),
            ("create_time", vstr(crate::state::format_ts(task.create_ts))),
            ("host_id", vopt_int(task.host_id)),
            ("id", vint(task.id)),
            ("method", vstr(&task.method)),
            ("priority", vint(task.priority)),
            ("state", vint(task.state as i64)),
        ])
    }

    /// `host.getLoadData`: the ≤1.33 view (all ready hosts, FREE tasks in my bins and tasks
    /// assigned to me) or the ≥1.34 shim (only me and my assigned tasks).
    pub fn get_load_data(&mut self, host_id: i64) -> Value {
        if self.config.version.has_scheduler() {
            if self.tasks_assigned_to(host_id).is_empty() {
                self.maybe_run_scheduler();
            }
            // The shim: `[[get_host(me) + channels], get_tasks_for_host(me)]`.
            let mut hosts = Vec::new();
            if let Some(host) = self.hosts.get(&host_id)
                && let Value::Struct(mut info) = self.host_struct(host)
            {
                info.insert("channels".to_owned(), self.host_channels_value(host_id));
                hosts.push(Value::Struct(info));
            }
            let tasks = self
                .tasks_assigned_to(host_id)
                .into_iter()
                .map(Self::assigned_task_entry)
                .collect();
            return Value::Array(vec![Value::Array(hosts), Value::Array(tasks)]);
        }
        let now = self.now();
        let ready_hosts: Vec<i64> = self
            .hosts
            .values()
            .filter(|h| h.enabled && h.ready && h.update_ts.is_some_and(|ts| now - ts <= 300.0))
            .map(|h| h.id)
            .collect();
        if !ready_hosts.contains(&host_id) {
            return Value::Array(vec![Value::Array(Vec::new()), Value::Array(Vec::new())]);
        }
        let Some(me) = self.hosts.get(&host_id) else {
            return Value::Array(vec![Value::Array(Vec::new()), Value::Array(Vec::new())]);
        };
        let my_arches: Vec<&str> = me.arches.split_whitespace().chain(["noarch"]).collect();
        let mut tasks: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| {
                (t.state == TaskState::Free
                    && my_arches.contains(&t.arch.as_str())
                    && me.channels.contains(&t.channel_id))
                    || (t.state == TaskState::Assigned && t.host_id == Some(host_id))
            })
            .collect();
        tasks.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then(a.create_ts.total_cmp(&b.create_ts))
        });
        tasks.truncate(100);
        let hosts = ready_hosts
            .iter()
            .filter_map(|id| self.load_data_host(*id))
            .collect();
        let tasks = tasks.into_iter().map(Self::legacy_task_entry).collect();
        Value::Array(vec![Value::Array(hosts), Value::Array(tasks)])
    }

    fn host_load(&self, host_id: i64) -> (f64, usize) {
        let active = self.tasks.values().filter(|t| {
            t.host_id == Some(host_id) && matches!(t.state, TaskState::Open | TaskState::Assigned)
        });
        let mut load = 0.0;
        let mut count = 0;
        for task in active {
            count += 1;
            if task.waiting != Some(true) {
                load += task.weight;
            }
        }
        (load, count)
    }

    fn host_max_jobs(&self, host_id: i64) -> i64 {
        self.hosts
            .get(&host_id)
            .and_then(|h| match &h.data {
                Some(Value::Struct(data)) => data.get("maxjobs").and_then(as_int),
                _ => None,
            })
            .unwrap_or(self.config.max_jobs)
    }

    /// One scheduler pass (§2.11): FREE tasks, in priority order, go ASSIGNED to the least
    /// loaded ready host whose channels and arches fit and that has not refused them.
    /// Returns the (task, host) assignments made.
    pub fn run_scheduler(&mut self) -> Vec<(i64, i64)> {
        self.last_scheduler_run = Some(std::time::Instant::now());
        let now = self.now();
        self.sweep_timeouts(now);
        let soft_refusal_timeout = 900.0;
        let mut free: Vec<(i64, i64, f64, String, i64, f64)> = self
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Free)
            .map(|t| {
                (
                    t.id,
                    t.priority,
                    t.create_ts,
                    t.arch.clone(),
                    t.channel_id,
                    t.weight,
                )
            })
            .collect();
        free.sort_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)));
        let mut assigned = Vec::new();
        for (task_id, _, _, arch, channel_id, weight) in free {
            let mut best: Option<(f64, i64)> = None;
            for host in self.hosts.values() {
                if !self.host_is_ready(host) || !host.channels.contains(&channel_id) {
                    continue;
                }
                let arch_ok = arch == "noarch" || host.arches.split_whitespace().any(|a| a == arch);
                if !arch_ok {
                    continue;
                }
                let refused = self.refusals.iter().any(|r| {
                    r.task_id == task_id
                        && r.host_id == host.id
                        && (!r.soft || now - r.ts < soft_refusal_timeout)
                });
                if refused {
                    continue;
                }
                let (load, count) = self.host_load(host.id);
                if i64::try_from(count).unwrap_or(i64::MAX) >= self.host_max_jobs(host.id) {
                    continue;
                }
                if host.capacity - load <= (weight - self.config.capacity_overcommit).max(0.0) {
                    continue;
                }
                #[allow(clippy::cast_precision_loss)]
                let rank = load + count as f64;
                if best.is_none_or(|(r, _)| rank < r) {
                    best = Some((rank, host.id));
                }
            }
            if let Some((_, host_id)) = best
                && let Some(task) = self.tasks.get_mut(&task_id)
            {
                task.state = TaskState::Assigned;
                task.host_id = Some(host_id);
                task.assign_ts = Some(now);
                assigned.push((task_id, host_id));
            }
        }
        assigned
    }

    /// The scheduler's clean-up (§2.11): ASSIGNED tasks not opened within `AssignTimeout`
    /// go back to FREE (an implicit soft refusal when the host checked in meanwhile), and
    /// OPEN tasks of hosts silent for `HostTimeout` are freed.
    fn sweep_timeouts(&mut self, now: f64) {
        let assign_timeout = self.config.assign_timeout.as_secs_f64();
        let host_timeout = self.config.host_timeout.as_secs_f64();
        let mut stale_assigned = Vec::new();
        let mut orphaned = Vec::new();
        for task in self.tasks.values() {
            let Some(host_id) = task.host_id else {
                continue;
            };
            let host_seen = self.hosts.get(&host_id).and_then(|h| h.update_ts);
            match task.state {
                TaskState::Assigned
                    if task.assign_ts.is_some_and(|ts| now - ts > assign_timeout) =>
                {
                    let checked_in =
                        matches!((host_seen, task.assign_ts), (Some(seen), Some(at)) if seen > at);
                    stale_assigned.push((task.id, host_id, checked_in));
                }
                TaskState::Open => {
                    // A host that never checked in is judged from when it got the task.
                    let last_heard = host_seen.or(task.assign_ts).or(task.start_ts);
                    if last_heard.is_some_and(|seen| now - seen > host_timeout) {
                        orphaned.push(task.id);
                    }
                }
                _ => {}
            }
        }
        for (task_id, host_id, checked_in) in stale_assigned {
            if self.free_task(task_id).is_ok() && checked_in {
                self.refusals.push(Refusal {
                    task_id,
                    host_id,
                    soft: true,
                    msg: "assignment timed out".to_owned(),
                    ts: now,
                });
            }
        }
        for task_id in orphaned {
            let _ = self.free_task(task_id);
        }
    }

    /// `host.subtask(method, arglist, parent, **opts)`.
    pub fn subtask(
        &mut self,
        host_id: i64,
        args: &BoundArgs,
        opts: &BTreeMap<String, Value>,
    ) -> Result<Value, HubFault> {
        let parent = args.int("parent")?;
        self.assert_task_host(parent, host_id)?;
        let method = args.string("method")?;
        let mut arglist = match args.get("arglist") {
            Some(Value::Array(items)) => items.clone(),
            Some(other) => {
                return Err(HubFault::parameter(format!(
                    "arglist must be a list, got {}",
                    crate::xmlrpc::python_type_name(other)
                )));
            }
            None => Vec::new(),
        };
        let mut new = NewTask::new(method, Vec::new()).parent(parent);
        for (name, value) in opts {
            match (name.as_str(), value) {
                ("label", Value::String(label)) => {
                    if let Some(existing) = self.tasks.values().find(|t| {
                        t.parent == Some(parent) && t.label.as_deref() == Some(label.as_str())
                    }) {
                        return Ok(vint(existing.id));
                    }
                    new.label = Some(label.clone());
                }
                ("label" | "arch" | "priority" | "channel" | "assign" | "kwargs", Value::Nil) => {}
                ("arch", Value::String(arch)) => {
                    new.arch.clone_from(arch);
                    new.arch_given = true;
                }
                ("kwargs", Value::Struct(kwargs)) => {
                    arglist = crate::xmlrpc::encode_args(arglist, kwargs.clone());
                }
                ("owner", _) => return Err(HubFault::generic("owner option not allowed")),
                ("parent", _) => return Err(HubFault::generic("parent option not allowed")),
                ("priority" | "channel" | "assign", _) => {}
                (other, _) => {
                    return Err(HubFault::parameter(format!(
                        "make_task() got an unexpected keyword argument '{other}'"
                    )));
                }
            }
        }
        let explicit_priority = opts.get("priority").and_then(as_int);
        let channel = opts.get("channel").and_then(|c| match c {
            Value::String(name) => Some(name.clone()),
            _ => None,
        });
        let assign = opts.get("assign").and_then(|a| match a {
            Value::String(name) => self.host_by_name(name).map(|h| h.id),
            other => as_int(other),
        });
        new.arglist = arglist;
        new.assign = assign;
        let id = self.make_task(new)?;
        if let Some(task) = self.tasks.get_mut(&id) {
            if let Some(priority) = explicit_priority {
                task.priority = priority;
            }
            if let Some(channel) = channel {
                let channel_id = self
                    .channels
                    .iter()
                    .find(|(_, n)| **n == channel)
                    .map(|(id, _)| *id);
                if let (Some(channel_id), Some(task)) = (channel_id, self.tasks.get_mut(&id)) {
                    task.channel_id = channel_id;
                }
            }
        }
        Ok(vint(id))
    }

    pub fn task_set_wait(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        // Like kojihub, the wait calls check the host's session but not that it owns the parent.
        let _ = host_id;
        let parent = args.int("parent")?;
        let wanted = args.int_list("tasks")?;
        if let Some(task) = self.tasks.get_mut(&parent) {
            task.waiting = Some(true);
        }
        for task in self.tasks.values_mut().filter(|t| t.parent == Some(parent)) {
            match &wanted {
                None => task.awaited = Some(true),
                Some(ids) if ids.contains(&task.id) => task.awaited = Some(true),
                // An empty list only marks the parent waiting (kojihub logs a warning).
                Some(ids) if !ids.is_empty() && task.awaited == Some(true) => {
                    task.awaited = Some(false)
                }
                Some(_) => {}
            }
        }
        Ok(Value::Nil)
    }

    pub fn task_wait(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        let _ = host_id;
        let parent = args.int("parent")?;
        let mut finished = Vec::new();
        let mut unfinished = Vec::new();
        for task in self
            .tasks
            .values_mut()
            .filter(|t| t.parent == Some(parent) && t.awaited == Some(true))
        {
            if task.state.is_finished() {
                finished.push(vint(task.id));
                task.awaited = Some(false);
            } else {
                unfinished.push(vint(task.id));
            }
        }
        Ok(Value::Array(vec![
            Value::Array(finished),
            Value::Array(unfinished),
        ]))
    }

    pub fn task_wait_results(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        let _ = host_id;
        let parent = args.int("parent")?;
        let canfail = args.int_list("canfail")?.unwrap_or_default();
        let ids = match args.int_list("tasks")? {
            Some(ids) => ids,
            None => self
                .tasks
                .values()
                .filter(|t| t.parent == Some(parent) && t.state.is_finished())
                .map(|t| t.id)
                .collect(),
        };
        // taskUnwait
        if let Some(task) = self.tasks.get_mut(&parent) {
            task.waiting = Some(false);
        }
        for task in self.tasks.values_mut().filter(|t| t.parent == Some(parent)) {
            task.awaited = Some(false);
        }
        let mut results = Vec::new();
        for id in ids {
            let raise = !canfail.contains(&id);
            let canceled = self
                .tasks
                .get(&id)
                .is_some_and(|t| t.state == TaskState::Canceled);
            let result = match self.task_result(id, raise) {
                Ok(value) => value,
                // Only a canceled canfail child is returned in neutral form; "not finished"
                // and "No such task" are raised even for canfail children.
                Err(fault) if !raise && canceled => vstruct([
                    ("faultCode", vint(i64::from(fault.code))),
                    ("faultString", vstr(fault.message)),
                ]),
                Err(fault) => return Err(fault),
            };
            results.push(Value::Array(vec![vint(id), result]));
        }
        Ok(Value::Array(results))
    }

    // ---- buildroots -------------------------------------------------------------------

    pub fn new_buildroot(&mut self, host_id: i64, args: &BoundArgs) -> Result<Value, HubFault> {
        let repo_id = args.int("repo")?;
        let arch = args.string("arch")?;
        let task_id = args.opt_int("task_id")?;
        if let Some(task_id) = task_id {
            self.assert_task_host(task_id, host_id)?;
        }
        let id = self.next_buildroot_id;
        self.next_buildroot_id += 1;
        let create_event = self.next_event();
        let create_ts = self.now();
        self.buildroots.insert(
            id,
            Buildroot {
                id,
                host_id,
                repo_id,
                arch,
                task_id,
                state: BuildrootState::Init,
                create_event,
                retire_event: None,
                create_ts,
                retire_ts: None,
                rpms: Vec::new(),
            },
        );
        Ok(vint(id))
    }

    fn own_buildroot(
        &self,
        host_id: i64,
        br_id: i64,
        task_id: Option<i64>,
    ) -> Result<(), HubFault> {
        let br = self
            .buildroots
            .get(&br_id)
            .ok_or_else(|| HubFault::generic(format!("No such buildroot: {br_id}")))?;
        if br.host_id != host_id {
            return Err(HubFault::not_allowed(format!(
                "Host {host_id} doesn't own buildroot {br_id}"
            )));
        }
        if let Some(task_id) = task_id {
            if br.task_id != Some(task_id) {
                return Err(HubFault::not_allowed(format!(
                    "Task {task_id} doesn't own buildroot {br_id}"
                )));
            }
            self.assert_task_host(task_id, host_id)?;
        }
        Ok(())
    }

    pub fn set_buildroot_state(
        &mut self,
        host_id: i64,
        args: &BoundArgs,
    ) -> Result<Value, HubFault> {
        let br_id = args.int("brootid")?;
        let task_id = args.opt_int("task_id")?;
        let raw_state = args.raw("state").cloned().unwrap_or(Value::Nil);
        let state = BuildrootState::from_wire(&raw_state)
            .ok_or_else(|| HubFault::generic(format!("Invalid buildroot state: {raw_state:?}")))?;
        self.own_buildroot(host_id, br_id, task_id)?;
        if state == BuildrootState::Init {
            return Err(HubFault::generic("Cannot change buildroot state to INIT"));
        }
        let event = self.next_event();
        let now = self.now();
        let br = self
            .buildroots
            .get_mut(&br_id)
            .ok_or_else(|| HubFault::generic(format!("No such buildroot: {br_id}")))?;
        if br.state == BuildrootState::Expired {
            if state == BuildrootState::Expired {
                return Ok(Value::Nil);
            }
            return Err(HubFault::generic(format!("buildroot {br_id} is expired")));
        }
        br.state = state;
        if state == BuildrootState::Expired {
            br.retire_event = Some(event);
            br.retire_ts = Some(now);
        }
        Ok(Value::Nil)
    }

    pub fn set_buildroot_list(
        &mut self,
        host_id: i64,
        args: &BoundArgs,
        update: bool,
    ) -> Result<Value, HubFault> {
        let br_id = args.int("brootid")?;
        let task_id = args.opt_int("task_id")?;
        self.own_buildroot(host_id, br_id, task_id)?;
        let rpms = match args.get("rpmlist") {
            Some(Value::Array(items)) => items.clone(),
            _ => return Err(HubFault::parameter("rpmlist must be a list")),
        };
        let br = self
            .buildroots
            .get_mut(&br_id)
            .ok_or_else(|| HubFault::generic(format!("No such buildroot: {br_id}")))?;
        if !update && br.state != BuildrootState::Init {
            return Err(HubFault::generic(format!(
                "buildroot {br_id} is not in init state"
            )));
        }
        if update {
            // kojihub's updateList adds only what the buildroot does not list yet: kojid
            // sends the whole rpmdb again after installing the BuildRequires.
            let known: std::collections::BTreeSet<String> =
                br.rpms.iter().map(listed_rpm_key).collect();
            br.rpms.extend(
                rpms.into_iter()
                    .filter(|rpm| !known.contains(&listed_rpm_key(rpm))),
            );
        } else {
            br.rpms = rpms;
        }
        Ok(Value::Nil)
    }

    pub fn buildroot_value(&self, br: &Buildroot) -> Value {
        let repo = crate::world::lock(&self.world)
            .repos
            .get(&br.repo_id)
            .cloned();
        let repo = repo.as_ref();
        let host_name = self
            .hosts
            .get(&br.host_id)
            .map(|h| h.name.clone())
            .unwrap_or_default();
        let mut info = BTreeMap::new();
        info.insert("arch".to_owned(), vstr(&br.arch));
        info.insert("br_type".to_owned(), vint(0));
        info.insert("cg_id".to_owned(), Value::Nil);
        info.insert("cg_name".to_owned(), Value::Nil);
        info.insert("cg_version".to_owned(), Value::Nil);
        info.insert(
            "create_event_time".to_owned(),
            vstr(crate::state::format_ts(br.create_ts)),
        );
        info.insert("extra".to_owned(), Value::Nil);
        info.insert(
            "repo_create_event_time".to_owned(),
            repo.map_or(Value::Nil, |r| vstr(crate::state::format_ts(r.create_ts))),
        );
        info.insert(
            "retire_event_time".to_owned(),
            br.retire_ts
                .map_or(Value::Nil, |ts| vstr(crate::state::format_ts(ts))),
        );
        info.insert("container_arch".to_owned(), vstr(&br.arch));
        info.insert("container_type".to_owned(), vstr("chroot"));
        info.insert("create_event_id".to_owned(), vint(br.create_event));
        info.insert("create_ts".to_owned(), Value::Double(br.create_ts));
        info.insert("host_arch".to_owned(), Value::Nil);
        info.insert("host_id".to_owned(), vint(br.host_id));
        info.insert("host_name".to_owned(), vstr(host_name));
        info.insert("host_os".to_owned(), Value::Nil);
        info.insert("id".to_owned(), vint(br.id));
        info.insert(
            "repo_create_event_id".to_owned(),
            vopt_int(repo.map(|r| r.create_event)),
        );
        info.insert("repo_id".to_owned(), vint(br.repo_id));
        info.insert("repo_state".to_owned(), vopt_int(repo.map(|r| r.state)));
        info.insert("retire_event_id".to_owned(), vopt_int(br.retire_event));
        info.insert(
            "retire_ts".to_owned(),
            crate::xmlrpc::vopt_f64(br.retire_ts),
        );
        info.insert("state".to_owned(), vint(br.state as i64));
        info.insert("tag_id".to_owned(), vopt_int(repo.map(|r| r.tag_id)));
        info.insert(
            "tag_name".to_owned(),
            crate::xmlrpc::vopt_str(repo.map(|r| r.tag_name.as_str())),
        );
        info.insert("task_id".to_owned(), vopt_int(br.task_id));
        Value::Struct(info)
    }

    pub fn list_buildroots(&self, args: &BoundArgs) -> Result<Value, HubFault> {
        // Each of these filters takes an int or a list of ints, as kojihub's do.
        let id_filter = |name: &str| -> Result<Option<Vec<i64>>, HubFault> {
            match args.get(name) {
                None => Ok(None),
                Some(Value::Array(_)) => args.int_list(name),
                Some(_) => args.int(name).map(|id| Some(vec![id])),
            }
        };
        let host = id_filter("hostID")?;
        let task = id_filter("taskID")?;
        let repo = id_filter("repoID")?;
        let br_id = id_filter("buildrootID")?;
        let states = match args.get("state") {
            None => None,
            Some(Value::Array(_)) => args.int_list("state")?,
            Some(other) => as_int(other).map(|s| vec![s]),
        };
        Ok(Value::Array(
            self.buildroots
                .values()
                .filter(|b| host.as_ref().is_none_or(|h| h.contains(&b.host_id)))
                .filter(|b| {
                    task.as_ref()
                        .is_none_or(|t| b.task_id.is_some_and(|id| t.contains(&id)))
                })
                .filter(|b| repo.as_ref().is_none_or(|r| r.contains(&b.repo_id)))
                .filter(|b| br_id.as_ref().is_none_or(|ids| ids.contains(&b.id)))
                .filter(|b| {
                    states
                        .as_ref()
                        .is_none_or(|s| s.contains(&(b.state as i64)))
                })
                .map(|b| self.buildroot_value(b))
                .collect(),
        ))
    }
}

/// Host data arrives as a JSON string on 1.34; keep it as an XML-RPC struct internally.
fn json_to_value(json: &str) -> Option<Value> {
    fn convert(value: serde_json::Value) -> Value {
        match value {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Boolean(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => vint(i),
                None => Value::Double(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(convert).collect())
            }
            serde_json::Value::Object(map) => {
                Value::Struct(map.into_iter().map(|(k, v)| (k, convert(v))).collect())
            }
        }
    }
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .map(convert)
}

impl HubState {
    /// `listTasks(opts=None, queryOpts=None)`: the filters kojid and the CLI use (`state`,
    /// `method`, `owner`, `host_id`, `parent`, `arch`, `channel_id`, `id`, `decode`) and the
    /// query options `order`, `limit`, `offset`, `countOnly`.
    pub fn list_tasks(&self, args: &BoundArgs) -> Result<Value, HubFault> {
        let empty = BTreeMap::new();
        let opts = match args.get("opts") {
            Some(Value::Struct(opts)) => opts,
            None => &empty,
            Some(other) => {
                return Err(HubFault::parameter(format!(
                    "opts must be a dict, got {}",
                    crate::xmlrpc::python_type_name(other)
                )));
            }
        };
        let query_opts = match args.get("queryOpts") {
            Some(Value::Struct(q)) => q,
            _ => &empty,
        };
        let ints = |name: &str| -> Option<Vec<i64>> {
            match opts.get(name) {
                None | Some(Value::Nil) => None,
                Some(Value::Array(items)) => Some(items.iter().filter_map(as_int).collect()),
                Some(other) => as_int(other).map(|n| vec![n]),
            }
        };
        let strings = |name: &str| -> Option<Vec<String>> {
            match opts.get(name) {
                None | Some(Value::Nil) => None,
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .filter_map(|v| match v {
                            Value::String(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
                Some(Value::String(s)) => Some(vec![s.clone()]),
                Some(_) => None,
            }
        };
        let (states, owners, hosts, ids, channels) = (
            ints("state"),
            ints("owner"),
            ints("host_id"),
            ints("id"),
            ints("channel_id"),
        );
        let (methods, arches) = (strings("method"), strings("arch"));
        let parent_filter = opts.get("parent").map(as_int);
        let decode = opts.get("decode").is_some_and(crate::xmlrpc::truthy);
        let keep =
            |set: &Option<Vec<i64>>, value: i64| set.as_ref().is_none_or(|s| s.contains(&value));
        let mut tasks: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| keep(&states, t.state as i64))
            .filter(|t| keep(&owners, t.owner))
            .filter(|t| keep(&ids, t.id))
            .filter(|t| keep(&channels, t.channel_id))
            .filter(|t| {
                hosts
                    .as_ref()
                    .is_none_or(|h| t.host_id.is_some_and(|id| h.contains(&id)))
            })
            .filter(|t| methods.as_ref().is_none_or(|m| m.contains(&t.method)))
            .filter(|t| arches.as_ref().is_none_or(|a| a.contains(&t.arch)))
            .filter(|t| parent_filter.is_none_or(|p| t.parent == p))
            .collect();
        let order = match query_opts.get("order") {
            Some(Value::String(order)) => order.clone(),
            _ => "id".to_owned(),
        };
        for key in order.split(',').rev() {
            let (desc, key) = key.strip_prefix('-').map_or((false, key), |k| (true, k));
            tasks.sort_by(|a, b| {
                let ordering = match key.trim() {
                    "priority" => a.priority.cmp(&b.priority),
                    "create_time" | "create_ts" => a.create_ts.total_cmp(&b.create_ts),
                    "state" => (a.state as i64).cmp(&(b.state as i64)),
                    _ => a.id.cmp(&b.id),
                };
                if desc { ordering.reverse() } else { ordering }
            });
        }
        if query_opts
            .get("countOnly")
            .is_some_and(crate::xmlrpc::truthy)
        {
            return Ok(vint(i64::try_from(tasks.len()).unwrap_or(i64::MAX)));
        }
        let offset = query_opts.get("offset").and_then(as_int).unwrap_or(0);
        let limit = query_opts.get("limit").and_then(as_int);
        let tasks = tasks
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(0))
            .take(
                limit
                    .and_then(|l| usize::try_from(l).ok())
                    .unwrap_or(usize::MAX),
            );
        let mut out = Vec::new();
        for task in tasks {
            let mut info = self.task_info(task);
            let owner = self.users.get(&task.owner);
            info.insert(
                "owner_name".into(),
                crate::xmlrpc::vopt_str(owner.map(|u| u.name.as_str())),
            );
            info.insert(
                "owner_type".into(),
                vint(owner.map_or(0, |u| i64::from(u.host))),
            );
            let host_name = task
                .host_id
                .and_then(|h| self.hosts.get(&h))
                .map(|h| h.name.as_str());
            info.insert("host_name".into(), crate::xmlrpc::vopt_str(host_name));
            if decode {
                info.insert("request".into(), Self::decoded_request(task));
                let result = match &task.result_xml {
                    Some(xml) => match decode_response(xml) {
                        Ok(StoredResult::Value(value)) => value,
                        Ok(StoredResult::Fault { code, message }) => vstruct([
                            ("faultCode", vint(i64::from(code))),
                            ("faultString", vstr(message)),
                        ]),
                        Err(_) => Value::Nil,
                    },
                    None => Value::Nil,
                };
                info.insert("result".into(), result);
            } else {
                info.insert("request".into(), vstr(&task.request_xml));
                info.insert(
                    "result".into(),
                    crate::xmlrpc::vopt_str(task.result_xml.as_deref()),
                );
            }
            out.push(Value::Struct(info));
        }
        Ok(Value::Array(out))
    }
}

/// What identifies an entry of a buildroot list: the rpm id where kojid sent one, else its
/// name-version-release.arch (and the external repo, which may carry the same NVRA).
fn listed_rpm_key(rpm: &Value) -> String {
    let Value::Struct(members) = rpm else {
        return String::new();
    };
    let text = |key: &str| match members.get(key) {
        Some(Value::String(value)) => value.clone(),
        Some(Value::Integer(value)) => value.to_string(),
        _ => String::new(),
    };
    match members.get("id") {
        Some(Value::Integer(id)) => format!("id:{id}"),
        _ => format!(
            "{}-{}-{}.{}@{}",
            text("name"),
            text("version"),
            text("release"),
            text("arch"),
            text("location")
        ),
    }
}
