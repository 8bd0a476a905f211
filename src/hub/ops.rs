//! Operator entry points: `koji-adjutant hub-call` and the hub part of `doctor`.
//!
//! Both log in with the worker's credentials but never *force* the exclusive lock, so running
//! them next to a live worker cannot kick the worker's session out.

use std::sync::Arc;

use dxr::Value;
use tokio_util::sync::CancellationToken;

use super::capabilities::HubVersion;
use super::fault::FaultKind;
use super::options::HubOptions;
use super::session::{HubConnection, HubError, Session};
use super::transport::TransportError;
use super::types::{ChannelInfo, HostInfo};
use super::xmlrpc::{self, Kwargs};
use crate::doctor::Check;

/// Split JSON arguments into positional args and kwargs. `json_args` is an array (a trailing
/// object with `"__starstar": true` holds the keyword arguments, as on the wire), a single
/// non-array value (one positional argument), or null (no arguments).
pub fn split_json_args(json_args: &serde_json::Value) -> Result<(Vec<Value>, Kwargs), HubError> {
    let mut items = match json_args {
        serde_json::Value::Null => vec![],
        serde_json::Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut kwargs = Kwargs::new();
    if let Some(serde_json::Value::Object(members)) = items.last()
        && members.get("__starstar") == Some(&serde_json::Value::Bool(true))
    {
        let members = members.clone();
        items.pop();
        for (key, value) in members {
            if key != "__starstar" {
                kwargs.push((key, xmlrpc::json_to_value(&value)?));
            }
        }
    }
    let args = items
        .iter()
        .map(xmlrpc::json_to_value)
        .collect::<Result<_, _>>()?;
    Ok((args, kwargs))
}

/// Log in like the worker, make one call, print-ready JSON back, log out. `host.*` methods get
/// an exclusive session first (not forced: if the worker holds it, this fails with
/// AuthLockError instead of stealing it).
pub async fn hub_call(
    options: &HubOptions,
    method: &str,
    json_args: &serde_json::Value,
) -> Result<serde_json::Value, HubError> {
    let (args, kwargs) = split_json_args(json_args)?;
    let hub = HubConnection::new(options.clone(), CancellationToken::new())?;
    let session = Session::new(hub);
    session.login_shared().await?;
    let outcome = async {
        if method.starts_with("host.") {
            session.acquire_exclusive(false).await?;
        }
        session.call(method, args, kwargs).await
    }
    .await;
    if let Err(error) = session.logout().await {
        tracing::warn!(%error, "logout after hub-call failed");
    }
    outcome.map(|value| xmlrpc::value_to_json(&value))
}

fn server_fix() -> &'static str {
    "check `server` in kojid.conf (the XML-RPC URL, e.g. https://koji.example.com/kojihub), DNS, firewall and `serverca`"
}

/// The hub checks of `doctor`: reachable, version, login, `host.getID` after
/// `exclusiveSession`, and the host's arches and channels.
pub async fn doctor_checks(options: &HubOptions) -> Vec<Check> {
    let mut checks = Vec::new();
    let hub = match HubConnection::new(options.clone(), CancellationToken::new()) {
        Ok(hub) => hub,
        Err(error @ HubError::Transport(TransportError::BadUrl { .. })) => {
            checks.push(Check::fail(
                "hub-reachable",
                error.to_string(),
                server_fix(),
            ));
            return checks;
        }
        Err(error) => {
            checks.push(Check::fail(
                "hub-tls",
                error.to_string(),
                "fix `cert`/`serverca` in kojid.conf",
            ));
            return checks;
        }
    };
    let session = Session::new(Arc::clone(&hub));

    // Reachable, and which version: an anonymous getKojiVersion (no login needed).
    let version = match session
        .call_anonymous("getKojiVersion", vec![], vec![])
        .await
    {
        Ok(Value::String(text)) => {
            checks.push(Check::ok(
                "hub-reachable",
                format!("{} answers XML-RPC", options.server),
            ));
            HubVersion::parse(hub.version_header().as_deref().unwrap_or(&text))
        }
        Ok(other) => {
            checks.push(Check::warn(
                "hub-reachable",
                format!("{} answered getKojiVersion with {other:?}", options.server),
                "make sure `server` points at kojihub, not at the web UI",
            ));
            None
        }
        Err(HubError::Fault(fault)) if fault.is_invalid_method() => {
            checks.push(Check::ok(
                "hub-reachable",
                format!("{} answers XML-RPC", options.server),
            ));
            Some(HubVersion::new(1, 22, 0))
        }
        Err(error) => {
            checks.push(Check::fail(
                "hub-reachable",
                format!("cannot reach the hub at {}: {error}", options.server),
                server_fix(),
            ));
            return checks;
        }
    };
    match version {
        Some(version) if version >= HubVersion::new(1, 34, 0) => {
            checks.push(Check::ok("hub-version", format!("kojihub {version}")));
        }
        Some(version) => checks.push(Check::warn(
            "hub-version",
            format!("kojihub {version}: no hub-side scheduler, the worker picks tasks itself (legacy protocol)"),
            "upgrade the hub to 1.34 or later for hub-side scheduling",
        )),
        None => checks.push(Check::warn("hub-version", "the hub did not tell its version", "check that `server` is a kojihub")),
    }

    if let Err(error) = session.login_shared().await {
        let fix = match &error {
            HubError::NoLoginMethod => {
                "set `cert` (PEM with the host certificate and key) in kojid.conf"
            }
            _ => {
                "check that `cert` is the host's certificate, signed by a CA the hub trusts, and that its CN is the host name"
            }
        };
        checks.push(Check::fail("hub-login", error.to_string(), fix));
        return checks;
    }
    checks.push(Check::ok("hub-login", "logged in"));

    match session.acquire_exclusive(false).await {
        Ok(()) => {}
        Err(error) if error.is_fault(FaultKind::AuthLockError) => {
            checks.push(Check::warn(
                "hub-host",
                "another session holds this host's exclusive lock (is the worker or kojid running?)",
                "stop the other worker, or ignore this if it is this host's running worker",
            ));
            let _ = session.logout().await;
            return checks;
        }
        Err(error) => {
            checks.push(Check::fail(
                "hub-host",
                format!("exclusiveSession failed: {error}"),
                "check the hub logs",
            ));
            let _ = session.logout().await;
            return checks;
        }
    }
    let host_id = match session.call("host.getID", vec![], vec![]).await {
        Ok(value) => match xmlrpc::from_value::<i64>(&value) {
            Ok(id) => id,
            Err(error) => {
                checks.push(Check::fail(
                    "hub-host",
                    format!("host.getID: {error}"),
                    "check the hub version",
                ));
                let _ = session.logout().await;
                return checks;
            }
        },
        Err(error) => {
            checks.push(Check::fail(
                "hub-host",
                format!("host.getID failed: {error}"),
                "create the host on the hub: `koji add-host <name> <arches>` with the certificate's CN as name",
            ));
            let _ = session.logout().await;
            return checks;
        }
    };
    checks.push(Check::ok("hub-host", format!("host id {host_id}")));

    let host: Result<Option<HostInfo>, HubError> = match session
        .call("getHost", vec![Value::Long(host_id)], vec![])
        .await
    {
        Ok(value) => xmlrpc::from_value(&value).map_err(HubError::from),
        Err(error) => Err(error),
    };
    let channels: Result<Vec<ChannelInfo>, HubError> = match session
        .call(
            "listChannels",
            vec![],
            vec![("hostID".to_owned(), Value::Long(host_id))],
        )
        .await
    {
        Ok(value) => xmlrpc::from_value(&value).map_err(HubError::from),
        Err(error) => Err(error),
    };
    match (host, channels) {
        (Ok(Some(host)), Ok(channels)) => {
            let names: Vec<&str> = channels
                .iter()
                .map(|channel| channel.name.as_str())
                .collect();
            let detail = format!(
                "{}: arches {}, capacity {}, channels {}",
                host.name,
                host.arch_list().join(" "),
                host.capacity,
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            );
            if !host.enabled {
                checks.push(Check::warn(
                    "hub-host-config",
                    detail,
                    format!("enable the host: `koji enable-host {}`", host.name),
                ));
            } else if names.is_empty() {
                checks.push(Check::warn(
                    "hub-host-config",
                    detail,
                    format!(
                        "add a channel: `koji add-host-to-channel {} default`",
                        host.name
                    ),
                ));
            } else if host.arch_list().is_empty() {
                checks.push(Check::warn(
                    "hub-host-config",
                    detail,
                    format!(
                        "set arches: `koji edit-host --arches=\"x86_64 noarch\" {}`",
                        host.name
                    ),
                ));
            } else {
                checks.push(Check::ok("hub-host-config", detail));
            }
        }
        (Ok(None), _) => checks.push(Check::fail(
            "hub-host-config",
            format!("getHost({host_id}) returned nothing"),
            "check the hub",
        )),
        (Err(error), _) | (_, Err(error)) => {
            checks.push(Check::warn(
                "hub-host-config",
                format!("cannot read the host's arches and channels: {error}"),
                "check the hub logs",
            ));
        }
    }
    if let Err(error) = session.logout().await {
        tracing::warn!(%error, "logout after doctor failed");
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_args_split_like_the_wire() {
        let (args, kwargs) =
            split_json_args(&serde_json::json!([5, {"request": true, "__starstar": true}]))
                .unwrap();
        assert_eq!(args, vec![Value::Integer(5)]);
        assert_eq!(kwargs, vec![("request".to_owned(), Value::Boolean(true))]);
        let (args, kwargs) = split_json_args(&serde_json::json!([{"a": 1}])).unwrap();
        assert_eq!(
            args.len(),
            1,
            "an object without __starstar is a positional struct"
        );
        assert!(kwargs.is_empty());
        let (args, _) = split_json_args(&serde_json::json!("dist-build")).unwrap();
        assert_eq!(args, vec![Value::String("dist-build".to_owned())]);
        assert!(
            split_json_args(&serde_json::Value::Null)
                .unwrap()
                .0
                .is_empty()
        );
    }
}
