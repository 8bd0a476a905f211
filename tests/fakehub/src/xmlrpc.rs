//! The XML-RPC dialect as kojihub speaks it: requests are decoded with `dxr`, responses are
//! written byte for byte in the layout of Python's `xmlrpc.client` marshaller (which kojihub
//! uses through `koji.xmlrpcplus`), so that a recorded kojihub reply and ours can be diffed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use dxr::Value;

use crate::faults::HubFault;

/// A decoded `methodCall`: positional parameters and the keyword arguments that Koji sends as a
/// trailing struct holding `"__starstar": true`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedCall {
    pub method: String,
    pub positional: Vec<Value>,
    pub keywords: BTreeMap<String, Value>,
}

/// Parse a methodCall document. Errors carry a message in the form kojihub gives for an
/// unparsable body (a plain fault 1 naming the parser exception).
pub fn decode_method_call(body: &str) -> Result<DecodedCall, HubFault> {
    let call = dxr::MethodCall::from_xml(body).map_err(|err| {
        HubFault::plain(format!(
            "<class 'xml.parsers.expat.ExpatError'>: request body is not a valid XML-RPC methodCall ({})",
            first_line(&err.to_string())
        ))
    })?;
    let (positional, keywords) = split_kwargs(call.params);
    Ok(DecodedCall {
        method: call.name.into_owned(),
        positional,
        keywords,
    })
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    if line.len() > 200 {
        line.get(..200).unwrap_or(line)
    } else {
        line
    }
}

/// `koji.decode_args`: a trailing struct with a true `__starstar` member holds keyword args.
pub fn split_kwargs(mut params: Vec<Value>) -> (Vec<Value>, BTreeMap<String, Value>) {
    let is_kwargs = matches!(
        params.last(),
        Some(Value::Struct(members)) if matches!(members.get("__starstar"), Some(Value::Boolean(true)))
    );
    if is_kwargs && let Some(Value::Struct(mut members)) = params.pop() {
        members.remove("__starstar");
        return (params, members);
    }
    (params, BTreeMap::new())
}

/// `koji.encode_args`: the inverse of [`split_kwargs`].
pub fn encode_args(mut positional: Vec<Value>, keywords: BTreeMap<String, Value>) -> Vec<Value> {
    if !keywords.is_empty() {
        let mut members = keywords;
        members.insert("__starstar".to_owned(), Value::Boolean(true));
        positional.push(Value::Struct(members));
    }
    positional
}

fn escape(text: &str, out: &mut String) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            other => out.push(other),
        }
    }
}

/// Python's `repr(float)`, which is what xmlrpc.client writes inside `<double>`.
pub fn python_float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".to_owned()
        } else {
            "-inf".to_owned()
        };
    }
    let abs = value.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Python switches to exponent notation outside this range: 1e+16, 1e-05.
        let formatted = format!("{value:e}");
        let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let mut text = format!("{value}");
    if !text.contains('.') {
        text.push_str(".0");
    }
    text
}

/// Write one `<value>` exactly as `xmlrpc.client.Marshaller` does (including its newlines).
pub fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Nil => out.push_str("<value><nil/></value>"),
        Value::Boolean(flag) => {
            out.push_str("<value><boolean>");
            out.push(if *flag { '1' } else { '0' });
            out.push_str("</boolean></value>\n");
        }
        Value::Integer(number) => {
            let _ = writeln!(out, "<value><int>{number}</int></value>");
        }
        Value::Long(number) => {
            // Python has one int type: it only writes <i8> when the number needs it.
            if i32::try_from(*number).is_ok() {
                let _ = writeln!(out, "<value><int>{number}</int></value>");
            } else {
                let _ = writeln!(out, "<value><i8>{number}</i8></value>");
            }
        }
        Value::Double(number) => {
            let _ = writeln!(
                out,
                "<value><double>{}</double></value>",
                python_float_repr(*number)
            );
        }
        Value::String(text) => {
            out.push_str("<value><string>");
            escape(text, out);
            out.push_str("</string></value>\n");
        }
        Value::Base64(bytes) => {
            // Python's base64.encodebytes: lines of at most 76 characters, each ending in \n.
            out.push_str("<value><base64>\n");
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            for line in encoded.as_bytes().chunks(76) {
                out.push_str(&String::from_utf8_lossy(line));
                out.push('\n');
            }
            out.push_str("</base64></value>\n");
        }
        Value::DateTime(stamp) => {
            let _ = writeln!(
                out,
                "<value><dateTime.iso8601>{stamp}</dateTime.iso8601></value>"
            );
        }
        Value::Array(items) => {
            out.push_str("<value><array><data>\n");
            for item in items {
                write_value(item, out);
            }
            out.push_str("</data></array></value>\n");
        }
        Value::Struct(members) => {
            out.push_str("<value><struct>\n");
            for (name, member) in members {
                out.push_str("<member>\n<name>");
                escape(name, out);
                out.push_str("</name>\n");
                write_value(member, out);
                out.push_str("</member>\n");
            }
            out.push_str("</struct></value>\n");
        }
        // dxr's Value is non-exhaustive; anything new is written as a string of its debug
        // form rather than dropped, so a mismatch shows up in the call log.
        #[allow(unreachable_patterns)]
        other => {
            out.push_str("<value><string>");
            escape(&format!("{other:?}"), out);
            out.push_str("</string></value>\n");
        }
    }
}

/// A successful methodResponse document.
pub fn encode_response(value: &Value) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n");
    write_value(value, &mut out);
    out.push_str("</param>\n</params>\n</methodResponse>\n");
    out
}

/// A fault methodResponse document.
pub fn encode_fault(code: i32, message: &str) -> String {
    let mut members = BTreeMap::new();
    members.insert("faultCode".to_owned(), Value::Integer(code));
    members.insert("faultString".to_owned(), Value::String(message.to_owned()));
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n");
    write_value(&Value::Struct(members), &mut out);
    out.push_str("</fault>\n</methodResponse>\n");
    out
}

/// A methodCall document, as `koji.xmlrpcplus.dumps(args, methodname=...)` writes task
/// requests into the task table.
pub fn encode_method_call(method: &str, params: &[Value]) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodCall>\n<methodName>");
    escape(method, &mut out);
    out.push_str("</methodName>\n<params>\n");
    for param in params {
        out.push_str("<param>\n");
        write_value(param, &mut out);
        out.push_str("</param>\n");
    }
    out.push_str("</params>\n</methodCall>\n");
    out
}

/// The outcome stored in a task's result column: a value or a fault.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredResult {
    Value(Value),
    Fault { code: i32, message: String },
}

/// Parse a methodResponse document (a task result as sent to `host.closeTask`/`failTask`).
pub fn decode_response(body: &str) -> Result<StoredResult, HubFault> {
    if body.contains("<fault>") {
        let fault = dxr::FaultResponse::from_xml(body).map_err(|err| {
            HubFault::generic(format!(
                "task result is not a valid XML-RPC fault document: {err}"
            ))
        })?;
        return Ok(StoredResult::Fault {
            code: fault.fault.code(),
            message: fault.fault.string().to_owned(),
        });
    }
    let response = dxr::MethodResponse::from_xml(body).map_err(|err| {
        HubFault::generic(format!(
            "task result is not a valid XML-RPC methodResponse document: {}",
            first_line(&err.to_string())
        ))
    })?;
    Ok(StoredResult::Value(response.value))
}

/// Small constructors that keep handler code readable.
pub fn vstr(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

pub fn vint(number: i64) -> Value {
    match i32::try_from(number) {
        Ok(small) => Value::Integer(small),
        Err(_) => Value::Long(number),
    }
}

pub fn vopt_int(number: Option<i64>) -> Value {
    number.map_or(Value::Nil, vint)
}

pub fn vopt_str(text: Option<&str>) -> Value {
    text.map_or(Value::Nil, |t| Value::String(t.to_owned()))
}

pub fn vopt_f64(number: Option<f64>) -> Value {
    number.map_or(Value::Nil, Value::Double)
}

pub fn vstruct<const N: usize>(members: [(&str, Value); N]) -> Value {
    Value::Struct(
        members
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// Read an integer argument the way Python would accept it (int, or a long).
pub fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(i64::from(*n)),
        Value::Long(n) => Some(*n),
        Value::Boolean(b) => Some(i64::from(*b)),
        _ => None,
    }
}

pub fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Double(n) => Some(*n),
        Value::Integer(n) => Some(f64::from(*n)),
        #[allow(clippy::cast_precision_loss)]
        Value::Long(n) => Some(*n as f64),
        _ => None,
    }
}

/// Python truthiness, for flags that kojihub tests with a plain `if`.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Nil => false,
        Value::Boolean(b) => *b,
        Value::Integer(n) => *n != 0,
        Value::Long(n) => *n != 0,
        Value::Double(n) => *n != 0.0,
        Value::String(s) => !s.is_empty(),
        Value::Base64(b) => !b.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Struct(s) => !s.is_empty(),
        #[allow(unreachable_patterns)]
        _ => true,
    }
}

/// The Python `type(x).__name__` of a value, for TypeError-style messages.
pub fn python_type_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "NoneType",
        Value::Boolean(_) => "bool",
        Value::Integer(_) | Value::Long(_) => "int",
        Value::Double(_) => "float",
        Value::String(_) => "str",
        Value::Base64(_) => "bytes",
        Value::DateTime(_) => "datetime",
        Value::Array(_) => "list",
        Value::Struct(_) => "dict",
        #[allow(unreachable_patterns)]
        _ => "object",
    }
}
