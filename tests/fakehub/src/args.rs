//! Mapping XML-RPC params onto a Python signature, as `koji.util.call_with_argcheck` does:
//! a mismatch is a `ParameterError` (1019) carrying Python's `TypeError` text.

use std::collections::BTreeMap;

use dxr::Value;

use crate::faults::HubFault;
use crate::xmlrpc::{as_f64, as_int, python_type_name, truthy};

/// A Python signature: parameter names in order, how many of them are required, and whether
/// the function takes `*args` (extra positionals are then collected).
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    pub function: &'static str,
    pub params: &'static [&'static str],
    pub required: usize,
    pub varargs: bool,
    /// The function takes `**kwargs`: unknown keywords are collected instead of refused.
    pub varkw: bool,
}

impl Signature {
    pub const fn new(
        function: &'static str,
        params: &'static [&'static str],
        required: usize,
    ) -> Self {
        Self {
            function,
            params,
            required,
            varargs: false,
            varkw: false,
        }
    }
    pub const fn varargs(function: &'static str) -> Self {
        Self {
            function,
            params: &[],
            required: 0,
            varargs: true,
            varkw: false,
        }
    }
    pub const fn with_varkw(mut self) -> Self {
        self.varkw = true;
        self
    }
}

/// Arguments bound to their parameter names.
#[derive(Debug, Default, Clone)]
pub struct BoundArgs {
    bound: BTreeMap<&'static str, Value>,
    pub extra: Vec<Value>,
    pub extra_kw: BTreeMap<String, Value>,
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("{count} {word}")
    } else {
        format!("{count} {word}s")
    }
}

pub fn bind(
    sig: &Signature,
    positional: Vec<Value>,
    keywords: BTreeMap<String, Value>,
) -> Result<BoundArgs, HubFault> {
    let mut args = BoundArgs::default();
    let given = positional.len();
    for (index, value) in positional.into_iter().enumerate() {
        match sig.params.get(index) {
            Some(name) => {
                args.bound.insert(name, value);
            }
            None if sig.varargs => args.extra.push(value),
            None => {
                let takes = if sig.required == sig.params.len() {
                    plural(sig.params.len(), "positional argument")
                } else {
                    format!(
                        "from {} to {} positional arguments",
                        sig.required,
                        sig.params.len()
                    )
                };
                let verb = if given == 1 { "was" } else { "were" };
                return Err(HubFault::parameter(format!(
                    "{}() takes {takes} but {given} {verb} given",
                    sig.function
                )));
            }
        }
    }
    for (name, value) in keywords {
        let Some(param) = sig.params.iter().find(|p| **p == name) else {
            if sig.varkw {
                args.extra_kw.insert(name, value);
                continue;
            }
            return Err(HubFault::parameter(format!(
                "{}() got an unexpected keyword argument '{name}'",
                sig.function
            )));
        };
        if args.bound.contains_key(param) {
            return Err(HubFault::parameter(format!(
                "{}() got multiple values for argument '{name}'",
                sig.function
            )));
        }
        args.bound.insert(param, value);
    }
    let missing: Vec<&str> = sig
        .params
        .iter()
        .take(sig.required)
        .filter(|p| !args.bound.contains_key(*p))
        .copied()
        .collect();
    if !missing.is_empty() {
        let quoted: Vec<String> = missing.iter().map(|m| format!("'{m}'")).collect();
        let list = match quoted.len() {
            1 => quoted.join(""),
            _ => {
                let (last, rest) = quoted
                    .split_last()
                    .map_or((String::new(), &[][..]), |(l, r)| (l.clone(), r));
                format!("{} and {last}", rest.join(", "))
            }
        };
        return Err(HubFault::parameter(format!(
            "{}() missing {}: {list}",
            sig.function,
            plural(missing.len(), "required positional argument")
        )));
    }
    Ok(args)
}

impl BoundArgs {
    /// The value, or None when the argument was not given or was `None`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self.bound.get(name) {
            None | Some(Value::Nil) => None,
            Some(value) => Some(value),
        }
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.bound.get(name)
    }

    pub fn int(&self, name: &str) -> Result<i64, HubFault> {
        match self.get(name) {
            Some(value) => as_int(value).ok_or_else(|| type_error(name, "int", value)),
            None => Err(HubFault::parameter(format!(
                "{name} must be an int, got None"
            ))),
        }
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, HubFault> {
        self.get(name)
            .map(|v| as_int(v).ok_or_else(|| type_error(name, "int", v)))
            .transpose()
    }

    pub fn float(&self, name: &str) -> Result<f64, HubFault> {
        match self.get(name) {
            Some(value) => as_f64(value).ok_or_else(|| type_error(name, "float", value)),
            None => Err(HubFault::parameter(format!(
                "{name} must be a number, got None"
            ))),
        }
    }

    pub fn string(&self, name: &str) -> Result<String, HubFault> {
        match self.get(name) {
            Some(Value::String(text)) => Ok(text.clone()),
            Some(other) => Err(type_error(name, "str", other)),
            None => Err(HubFault::parameter(format!(
                "{name} must be a string, got None"
            ))),
        }
    }

    pub fn opt_string(&self, name: &str) -> Result<Option<String>, HubFault> {
        match self.get(name) {
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(type_error(name, "str", other)),
            None => Ok(None),
        }
    }

    /// A flag with a Python default; kojihub tests these with plain truthiness.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        match self.bound.get(name) {
            None => default,
            Some(value) => truthy(value),
        }
    }

    /// An int or a list of ints (`getTaskInfo(id|[ids])`).
    pub fn int_list(&self, name: &str) -> Result<Option<Vec<i64>>, HubFault> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| as_int(item).ok_or_else(|| type_error(name, "int", item)))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(type_error(name, "list", other)),
        }
    }
}

fn type_error(name: &str, expected: &str, got: &Value) -> HubFault {
    HubFault::parameter(format!(
        "invalid type for {name}: expected {expected}, got {}",
        python_type_name(got)
    ))
}
