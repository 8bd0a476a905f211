//! The build handlers' hub calls, with exactly the positional and keyword arguments kojid
//! sends (checked against the golden transcripts), over the task's subsession.

use koji_adjutant_actors::error::HubError;
use koji_adjutant_actors::hub::TaskHub;
use serde_json::{Map, Value, json};

use super::errors::BuildFailure;

/// A keyword-argument map from `(name, value)` pairs, in the given order.
pub fn kwargs<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

/// Thin typed wrappers; each returns the hub's value untouched.
pub struct Calls<'a> {
    pub hub: &'a dyn TaskHub,
}

impl<'a> Calls<'a> {
    pub fn new(hub: &'a dyn TaskHub) -> Self {
        Self { hub }
    }

    async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        kw: Map<String, Value>,
    ) -> Result<Value, HubError> {
        self.hub.call(method, params, kw).await
    }

    pub async fn get_task_info(&self, task_id: i64) -> Result<Value, HubError> {
        self.call("getTaskInfo", vec![json!(task_id)], Map::new())
            .await
    }

    pub async fn get_build_target(
        &self,
        target: &Value,
        event: Option<i64>,
    ) -> Result<Value, HubError> {
        self.call(
            "getBuildTarget",
            vec![target.clone()],
            kwargs([("event", json!(event))]),
        )
        .await
    }

    pub async fn assert_policy(&self, policy: &str, data: &Value) -> Result<Value, HubError> {
        self.call(
            "host.assertPolicy",
            vec![json!(policy), data.clone()],
            Map::new(),
        )
        .await
    }

    /// `getTag(tag, strict=True[, event=…])`: kojid passes `event` only where it has one.
    pub async fn get_tag(&self, tag: &Value, event: Option<i64>) -> Result<Value, HubError> {
        let mut kw = kwargs([("strict", json!(true))]);
        if let Some(event) = event {
            kw.insert("event".to_owned(), json!(event));
        }
        self.call("getTag", vec![tag.clone()], kw).await
    }

    pub async fn get_last_event(&self) -> Result<i64, HubError> {
        let value = self.call("getLastEvent", vec![], Map::new()).await?;
        value
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad_reply("getLastEvent", &value))
    }

    pub async fn get_build_config(
        &self,
        tag: &Value,
        event: Option<i64>,
    ) -> Result<Value, HubError> {
        self.call(
            "getBuildConfig",
            vec![tag.clone()],
            kwargs([("event", json!(event))]),
        )
        .await
    }

    pub async fn repo_info(&self, repo_id: i64, strict: bool) -> Result<Value, HubError> {
        let kw = if strict {
            kwargs([("strict", json!(true))])
        } else {
            Map::new()
        };
        self.call("repoInfo", vec![json!(repo_id)], kw).await
    }

    pub async fn get_host(&self) -> Result<Value, HubError> {
        self.call("host.getHost", vec![], Map::new()).await
    }

    pub async fn new_buildroot(
        &self,
        repo_id: i64,
        arch: &str,
        task_id: i64,
    ) -> Result<i64, HubError> {
        let value = self
            .call(
                "host.newBuildRoot",
                vec![json!(repo_id), json!(arch)],
                kwargs([("task_id", json!(task_id))]),
            )
            .await?;
        value
            .as_i64()
            .ok_or_else(|| bad_reply("host.newBuildRoot", &value))
    }

    pub async fn set_buildroot_state(&self, buildroot: i64, state: &str) -> Result<(), HubError> {
        self.call(
            "host.setBuildRootState",
            vec![json!(buildroot), json!(state)],
            Map::new(),
        )
        .await
        .map(drop)
    }

    pub async fn set_buildroot_list(&self, buildroot: i64, rpms: &Value) -> Result<(), HubError> {
        self.call(
            "host.setBuildRootList",
            vec![json!(buildroot), rpms.clone()],
            Map::new(),
        )
        .await
        .map(drop)
    }

    pub async fn update_buildroot_list(
        &self,
        buildroot: i64,
        rpms: &Value,
    ) -> Result<(), HubError> {
        self.call(
            "host.updateBuildRootList",
            vec![json!(buildroot), rpms.clone()],
            Map::new(),
        )
        .await
        .map(drop)
    }

    pub async fn get_external_repo_list(
        &self,
        tag_id: i64,
        event: Option<i64>,
    ) -> Result<Value, HubError> {
        self.call(
            "getExternalRepoList",
            vec![json!(tag_id)],
            kwargs([("event", json!(event))]),
        )
        .await
    }

    /// `getAverageBuildDuration(name, age=6)`, retried without `age` on hubs that do not know
    /// it (ParameterError), as kojid does.
    pub async fn get_average_build_duration(&self, name: &str) -> Result<Option<f64>, HubError> {
        let first = self
            .call(
                "getAverageBuildDuration",
                vec![json!(name)],
                kwargs([("age", json!(6))]),
            )
            .await;
        let value = match first {
            Err(error) if error.fault_code() == Some(1019) => {
                self.call("getAverageBuildDuration", vec![json!(name)], Map::new())
                    .await?
            }
            other => other?,
        };
        Ok(value.as_f64())
    }

    pub async fn get_package_config(
        &self,
        tag: &Value,
        name: &str,
        event: Option<i64>,
    ) -> Result<Value, HubError> {
        self.call(
            "getPackageConfig",
            vec![tag.clone(), json!(name)],
            kwargs([("event", json!(event))]),
        )
        .await
    }

    pub async fn repo_request(
        &self,
        tag_id: i64,
        min_event: Option<i64>,
    ) -> Result<Value, HubError> {
        self.call(
            "repo.request",
            vec![json!(tag_id)],
            kwargs([
                ("min_event", json!(min_event)),
                ("at_event", Value::Null),
                ("opts", Value::Null),
            ]),
        )
        .await
    }

    pub async fn repo_check_request(&self, request_id: i64) -> Result<Value, HubError> {
        self.call("repo.checkRequest", vec![json!(request_id)], Map::new())
            .await
    }

    pub async fn tag_last_change_event(&self, tag_id: i64) -> Result<i64, HubError> {
        let value = self
            .call("tagLastChangeEvent", vec![json!(tag_id)], Map::new())
            .await?;
        Ok(value.as_i64().unwrap_or(0))
    }

    /// `listTagged(tag, event=None, inherit=True, package=name)`.
    pub async fn list_tagged(
        &self,
        tag_id: i64,
        package: &str,
        event: Option<i64>,
    ) -> Result<Value, HubError> {
        self.call(
            "listTagged",
            vec![json!(tag_id)],
            kwargs([
                ("event", json!(event)),
                ("inherit", json!(true)),
                ("package", json!(package)),
            ]),
        )
        .await
    }
}

/// A hub answer of the wrong shape: a fault-code-1 failure that names the call.
pub fn bad_reply(call: &str, value: &Value) -> HubError {
    let mut shown = value.to_string();
    shown.truncate(200);
    HubError::new(
        call,
        koji_adjutant_actors::error::ErrorClass::FailTask,
        format!("unexpected answer {shown}"),
    )
}

/// A required field of a hub struct.
pub fn field_i64(value: &Value, key: &str, what: &str) -> Result<i64, BuildFailure> {
    value
        .get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| BuildFailure::generic(format!("{what} has no integer {key:?}: {value}")))
}

pub fn field_str<'v>(value: &'v Value, key: &str, what: &str) -> Result<&'v str, BuildFailure> {
    value
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| BuildFailure::generic(format!("{what} has no string {key:?}: {value}")))
}

/// A tag config's `extra` map (empty when missing).
pub fn extra(config: &Value) -> Map<String, Value> {
    config
        .get("extra")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Python truthiness of a JSON value (what `if opts.get(x):` means).
pub fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// REPO_STATES names.
pub fn repo_state_name(state: i64) -> &'static str {
    match state {
        0 => "INIT",
        1 => "READY",
        2 => "EXPIRED",
        3 => "DELETED",
        4 => "PROBLEM",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness_follows_python() {
        assert!(!truthy(None));
        assert!(!truthy(Some(&json!(null))));
        assert!(!truthy(Some(&json!(0))));
        assert!(!truthy(Some(&json!(""))));
        assert!(!truthy(Some(&json!([]))));
        assert!(truthy(Some(&json!(true))));
        assert!(truthy(Some(&json!("x86_64"))));
        assert!(truthy(Some(&json!({"a": 1}))));
    }

    #[test]
    fn kwargs_keep_the_given_names() {
        let map = kwargs([("min_event", json!(null)), ("at_event", json!(5))]);
        assert_eq!(map.get("at_event"), Some(&json!(5)));
        assert_eq!(map.len(), 2);
    }
}
