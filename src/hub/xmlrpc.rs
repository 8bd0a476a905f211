//! Koji's XML-RPC dialect on top of `dxr` value types.
//!
//! Encoding is done here rather than by dxr so that the bytes match what Python's
//! `xmlrpc.client` (and thus kojid) emits: the same framing and newlines, `<int>` for values
//! within ±2³¹ and `<i8>` beyond, and the keyword-argument struct with `__starstar` written
//! *last* (dxr's struct is a BTreeMap, which would sort `__starstar` first). Decoding uses
//! dxr's parser; faults are pre-processed into an ordinary response so that extra members such
//! as `traceback` never make a fault unreadable.

use std::collections::BTreeMap;

use base64::Engine;
use dxr::{MethodResponse, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A fault as received from the hub: the numeric code and the hub's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFault {
    pub code: i32,
    pub message: String,
}

/// Errors of the XML-RPC layer: documents we cannot read or values we cannot convert.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum XmlRpcError {
    #[error(
        "hub response is not valid UTF-8 at byte {valid_up_to}; the hub or a proxy in between sent a non-XML body"
    )]
    NotUtf8 { valid_up_to: usize },
    #[error(
        "hub response is not a readable XML-RPC methodResponse ({detail}); body starts with: {snippet:?}"
    )]
    Malformed { detail: String, snippet: String },
    #[error("fault response without an integer faultCode and a string faultString: {snippet:?}")]
    MalformedFault { snippet: String },
    #[error("integer {0} does not fit in XML-RPC's largest integer type i8 (64 bit)")]
    IntegerOutOfRange(String),
    #[error("cannot convert {what}: {detail}")]
    Conversion { what: String, detail: String },
    #[error("multiCall returned {got} results for {expected} calls")]
    MulticallLength { got: usize, expected: usize },
    #[error("multiCall entry {index} is neither a one-element array nor a fault struct")]
    MulticallEntry { index: usize },
}

fn snippet(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Keyword arguments, in the order they are written (kojid's dict insertion order).
pub type Kwargs = Vec<(String, Value)>;

fn escape_into(out: &mut String, text: &str) {
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // Bare CR would be normalised to LF by any XML parser; keep it as a reference so
            // log text round-trips byte for byte.
            '\r' => out.push_str("&#13;"),
            other => out.push(other),
        }
    }
}

/// Write one value exactly as Python's `xmlrpc.client.Marshaller` does.
fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Nil => out.push_str("<value><nil/></value>"),
        Value::Boolean(flag) => out.push_str(if *flag {
            "<value><boolean>1</boolean></value>\n"
        } else {
            "<value><boolean>0</boolean></value>\n"
        }),
        Value::Integer(number) => {
            out.push_str("<value><int>");
            out.push_str(&number.to_string());
            out.push_str("</int></value>\n");
        }
        Value::Long(number) => {
            // Python only uses i8 when the value does not fit in i4; do the same so the hub
            // (and any strict peer) sees the narrowest type.
            if let Ok(narrow) = i32::try_from(*number) {
                write_value(out, &Value::Integer(narrow));
            } else {
                out.push_str("<value><i8>");
                out.push_str(&number.to_string());
                out.push_str("</i8></value>\n");
            }
        }
        Value::Double(number) => {
            out.push_str("<value><double>");
            out.push_str(&format_double(*number));
            out.push_str("</double></value>\n");
        }
        Value::String(text) => {
            out.push_str("<value><string>");
            escape_into(out, text);
            out.push_str("</string></value>\n");
        }
        Value::DateTime(stamp) => {
            out.push_str("<value><dateTime.iso8601>");
            out.push_str(&format_datetime(stamp));
            out.push_str("</dateTime.iso8601></value>\n");
        }
        Value::Base64(bytes) => {
            out.push_str("<value><base64>\n");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
            out.push_str("\n</base64></value>\n");
        }
        Value::Array(items) => {
            out.push_str("<value><array><data>\n");
            for item in items {
                write_value(out, item);
            }
            out.push_str("</data></array></value>\n");
        }
        Value::Struct(members) => write_struct(
            out,
            members.iter().map(|(key, value)| (key.as_str(), value)),
        ),
        // dxr's Value is non_exhaustive; a future variant is written as nil rather than lost
        // silently in a panic. The proptests pin the known variants.
        #[allow(unreachable_patterns)]
        _ => out.push_str("<value><nil/></value>"),
    }
}

fn write_struct<'a>(out: &mut String, members: impl Iterator<Item = (&'a str, &'a Value)>) {
    out.push_str("<value><struct>\n");
    for (key, value) in members {
        out.push_str("<member>\n<name>");
        escape_into(out, key);
        out.push_str("</name>\n");
        write_value(out, value);
        out.push_str("</member>\n");
    }
    out.push_str("</struct></value>\n");
}

fn format_double(number: f64) -> String {
    if number.is_finite() {
        // `{:?}` is Rust's shortest round-trip form, like Python's repr(): 0.0, 1.5, 1e16.
        format!("{number:?}")
    } else if number.is_nan() {
        "nan".to_owned()
    } else if number > 0.0 {
        "inf".to_owned()
    } else {
        "-inf".to_owned()
    }
}

/// `YYYYMMDDTHH:MM:SS`, the only form xmlrpc.client writes and reads.
pub fn format_datetime(stamp: &dxr::DateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}:{:02}:{:02}",
        stamp.year(),
        stamp.month(),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second()
    )
}

/// The struct kojihub recognises as keyword arguments: kwargs in order, then `__starstar`.
fn write_kwargs(out: &mut String, kwargs: &[(String, Value)]) {
    let marker = Value::Boolean(true);
    write_struct(
        out,
        kwargs
            .iter()
            .map(|(key, value)| (key.as_str(), value))
            .chain(std::iter::once(("__starstar", &marker))),
    );
}

/// Encode a `methodCall`. Keyword arguments, when any, become the trailing `__starstar` struct.
pub fn encode_call(method: &str, args: &[Value], kwargs: &[(String, Value)]) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version='1.0'?>\n<methodCall>\n<methodName>");
    escape_into(&mut out, method);
    out.push_str("</methodName>\n<params>\n");
    for arg in args {
        out.push_str("<param>\n");
        write_value(&mut out, arg);
        out.push_str("</param>\n");
    }
    if !kwargs.is_empty() {
        out.push_str("<param>\n");
        write_kwargs(&mut out, kwargs);
        out.push_str("</param>\n");
    }
    out.push_str("</params>\n</methodCall>\n");
    out
}

/// Encode a successful `methodResponse` (used for task results sent to `host.closeTask`).
pub fn encode_response(value: &Value) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n");
    write_value(&mut out, value);
    out.push_str("</param>\n</params>\n</methodResponse>\n");
    out
}

/// Encode a fault `methodResponse` (used for task failures sent to `host.failTask`).
pub fn encode_fault(fault: &RawFault) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n");
    let members = [
        ("faultCode", Value::Integer(fault.code)),
        ("faultString", Value::String(fault.message.clone())),
    ];
    write_struct(&mut out, members.iter().map(|(key, value)| (*key, value)));
    out.push_str("</fault>\n</methodResponse>\n");
    out
}

/// One entry of a multiCall.
#[derive(Debug, Clone, PartialEq)]
pub struct MulticallEntry {
    pub method: String,
    pub args: Vec<Value>,
    pub kwargs: Kwargs,
}

/// Encode `multiCall([{methodName, params}, …])`, each params list kwargs-encoded.
pub fn encode_multicall(calls: &[MulticallEntry]) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version='1.0'?>\n<methodCall>\n<methodName>multiCall</methodName>\n<params>\n<param>\n");
    out.push_str("<value><array><data>\n");
    for call in calls {
        out.push_str("<value><struct>\n<member>\n<name>methodName</name>\n");
        write_value(&mut out, &Value::String(call.method.clone()));
        out.push_str("</member>\n<member>\n<name>params</name>\n<value><array><data>\n");
        for arg in &call.args {
            write_value(&mut out, arg);
        }
        if !call.kwargs.is_empty() {
            write_kwargs(&mut out, &call.kwargs);
        }
        out.push_str("</data></array></value>\n</member>\n</struct></value>\n");
    }
    out.push_str("</data></array></value>\n</param>\n</params>\n</methodCall>\n");
    out
}

/// Decode a `methodResponse` body: `Ok(Ok(value))`, `Ok(Err(fault))`, or a parse error.
///
/// Never panics, whatever the bytes (proptest-checked).
pub fn decode_response(body: &[u8]) -> Result<Result<Value, RawFault>, XmlRpcError> {
    let text = std::str::from_utf8(body).map_err(|error| XmlRpcError::NotUtf8 {
        valid_up_to: error.valid_up_to(),
    })?;
    // Literal '<' cannot occur inside XML text (it is always escaped), so a `<fault>` tag is
    // markup. Turning it into a params wrapper lets dxr read the fault struct as a plain value,
    // whatever extra members (traceback) it carries.
    if let (Some(open), Some(close)) = (text.find("<fault>"), text.rfind("</fault>"))
        && open < close
    {
        let rewritten = format!(
            "{}<params><param>{}</param></params>{}",
            &text[..open],
            &text[open + "<fault>".len()..close],
            &text[close + "</fault>".len()..]
        );
        let value = parse_response_document(&rewritten, text)?;
        return fault_from_struct(&value)
            .map(Err)
            .ok_or_else(|| XmlRpcError::MalformedFault {
                snippet: snippet(text),
            });
    }
    parse_response_document(text, text).map(Ok)
}

fn parse_response_document(document: &str, original: &str) -> Result<Value, XmlRpcError> {
    // dxr's parser is serde-based; guard it so a bug there on hostile input surfaces as an
    // error instead of taking the worker down.
    let parsed = std::panic::catch_unwind(|| MethodResponse::from_xml(document));
    match parsed {
        Ok(Ok(response)) => Ok(response.value),
        Ok(Err(error)) => Err(XmlRpcError::Malformed {
            detail: first_line(&error.to_string()),
            snippet: snippet(original),
        }),
        Err(_) => Err(XmlRpcError::Malformed {
            detail: "the XML parser panicked".to_owned(),
            snippet: snippet(original),
        }),
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(160).collect()
}

/// `{faultCode: int, faultString: str, …}` → RawFault. Used for top-level faults and for
/// multiCall entries.
pub fn fault_from_struct(value: &Value) -> Option<RawFault> {
    let Value::Struct(members) = value else {
        return None;
    };
    let code = match members.get("faultCode")? {
        Value::Integer(code) => *code,
        Value::Long(code) => i32::try_from(*code).ok()?,
        _ => return None,
    };
    let message = match members.get("faultString")? {
        Value::String(message) => message.clone(),
        _ => return None,
    };
    Some(RawFault { code, message })
}

/// Split a multiCall result array into per-call results and faults.
pub fn decode_multicall_results(
    value: Value,
    expected: usize,
) -> Result<Vec<Result<Value, RawFault>>, XmlRpcError> {
    let Value::Array(entries) = value else {
        return Err(XmlRpcError::Conversion {
            what: "multiCall result".to_owned(),
            detail: "expected an array".to_owned(),
        });
    };
    if entries.len() != expected {
        return Err(XmlRpcError::MulticallLength {
            got: entries.len(),
            expected,
        });
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| match entry {
            Value::Array(mut single) if single.len() == 1 => Ok(Ok(single.remove(0))),
            other => fault_from_struct(&other)
                .map(Err)
                .ok_or(XmlRpcError::MulticallEntry { index }),
        })
        .collect()
}

/// A decoded `methodCall`: what a task's stored request is (§4.0).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedCall {
    pub method: String,
    pub args: Vec<Value>,
    /// The trailing `__starstar` struct, marker removed; empty when there was none.
    pub kwargs: BTreeMap<String, Value>,
}

/// Decode a `methodCall` document, splitting off the keyword-argument struct.
pub fn decode_call(xml: &str) -> Result<DecodedCall, XmlRpcError> {
    let parsed = std::panic::catch_unwind(|| dxr::MethodCall::from_xml(xml));
    let call = match parsed {
        Ok(Ok(call)) => call,
        Ok(Err(error)) => {
            return Err(XmlRpcError::Malformed {
                detail: first_line(&error.to_string()),
                snippet: snippet(xml),
            });
        }
        Err(_) => {
            return Err(XmlRpcError::Malformed {
                detail: "the XML parser panicked".to_owned(),
                snippet: snippet(xml),
            });
        }
    };
    let mut args = call.params;
    let mut kwargs = BTreeMap::new();
    if let Some(Value::Struct(members)) = args.last()
        && matches!(members.get("__starstar"), Some(Value::Boolean(true)))
        && let Some(Value::Struct(mut members)) = args.pop()
    {
        members.remove("__starstar");
        kwargs = members;
    }
    Ok(DecodedCall {
        method: call.name.into_owned(),
        args,
        kwargs,
    })
}

/// XML-RPC value → JSON. Datetimes become their ISO text, base64 its standard encoding.
pub fn value_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Nil => serde_json::Value::Null,
        Value::Boolean(flag) => serde_json::Value::Bool(*flag),
        Value::Integer(number) => serde_json::Value::from(*number),
        Value::Long(number) => serde_json::Value::from(*number),
        Value::Double(number) => serde_json::Number::from_f64(*number)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::String(text) => serde_json::Value::String(text.clone()),
        Value::DateTime(stamp) => serde_json::Value::String(format_datetime(stamp)),
        Value::Base64(bytes) => {
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Value::Array(items) => serde_json::Value::Array(items.iter().map(value_to_json).collect()),
        Value::Struct(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|(key, value)| (key.clone(), value_to_json(value)))
                .collect(),
        ),
        #[allow(unreachable_patterns)]
        _ => serde_json::Value::Null,
    }
}

/// JSON → XML-RPC value. Integers take the narrowest XML-RPC type; integers beyond i64 are an
/// error (Python's marshaller refuses them too).
pub fn json_to_value(json: &serde_json::Value) -> Result<Value, XmlRpcError> {
    Ok(match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(flag) => Value::Boolean(*flag),
        serde_json::Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                i32::try_from(integer).map_or(Value::Long(integer), Value::Integer)
            } else if number.is_u64() {
                return Err(XmlRpcError::IntegerOutOfRange(number.to_string()));
            } else {
                Value::Double(number.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(text) => Value::String(text.clone()),
        serde_json::Value::Array(items) => {
            Value::Array(items.iter().map(json_to_value).collect::<Result<_, _>>()?)
        }
        serde_json::Value::Object(members) => Value::Struct(
            members
                .iter()
                .map(|(key, value)| Ok((key.clone(), json_to_value(value)?)))
                .collect::<Result<BTreeMap<_, _>, XmlRpcError>>()?,
        ),
    })
}

/// Serialize any serde value into an XML-RPC value (through JSON, which matches XML-RPC's data
/// model closely enough: maps with string keys, sequences, scalars, null).
pub fn to_value<T: Serialize + ?Sized>(item: &T) -> Result<Value, XmlRpcError> {
    let json = serde_json::to_value(item).map_err(|error| XmlRpcError::Conversion {
        what: std::any::type_name::<T>().to_owned(),
        detail: error.to_string(),
    })?;
    json_to_value(&json)
}

/// Deserialize an XML-RPC value into a typed struct.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, XmlRpcError> {
    serde_json::from_value(value_to_json(value)).map_err(|error| XmlRpcError::Conversion {
        what: std::any::type_name::<T>().to_owned(),
        detail: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(inner: &str) -> String {
        format!(
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n{inner}\n</param>\n</params>\n</methodResponse>\n"
        )
    }

    #[test]
    fn kwargs_struct_is_written_last_like_kojid() {
        let body = encode_call("sslLogin", &[], &[("proxyuser".to_owned(), Value::Nil)]);
        let expected = "<?xml version='1.0'?>\n<methodCall>\n<methodName>sslLogin</methodName>\n<params>\n<param>\n<value><struct>\n<member>\n<name>proxyuser</name>\n<value><nil/></value></member>\n<member>\n<name>__starstar</name>\n<value><boolean>1</boolean></value>\n</member>\n</struct></value>\n</param>\n</params>\n</methodCall>\n";
        assert_eq!(body, expected);
    }

    #[test]
    fn integers_use_the_narrowest_type() {
        let body = encode_call("x", &[Value::Long(5), Value::Long(1 << 40)], &[]);
        assert!(body.contains("<int>5</int>"));
        assert!(body.contains("<i8>1099511627776</i8>"));
    }

    #[test]
    fn decodes_untyped_i4_i8_nil_and_datetime() {
        let body = response(
            "<value><array><data><value>plain</value><value><i4>-3</i4></value><value><i8>8589934592</i8></value><value><nil/></value><value><dateTime.iso8601>20250131T12:00:03</dateTime.iso8601></value><value><base64>aGk=</base64></value><value></value></data></array></value>",
        );
        let value = decode_response(body.as_bytes()).unwrap().unwrap();
        assert_eq!(
            value_to_json(&value),
            serde_json::json!([
                "plain",
                -3,
                8589934592i64,
                null,
                "20250131T12:00:03",
                "aGk=",
                ""
            ])
        );
    }

    #[test]
    fn decodes_fault_with_traceback_member() {
        let body = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n<value><int>1007</int></value>\n</member>\n<member>\n<name>faultString</name>\n<value><string>session expired</string></value>\n</member>\n<member><name>traceback</name><value><array><data></data></array></value></member>\n</struct></value>\n</fault>\n</methodResponse>\n";
        let fault = decode_response(body.as_bytes()).unwrap().unwrap_err();
        assert_eq!(
            fault,
            RawFault {
                code: 1007,
                message: "session expired".to_owned()
            }
        );
    }

    #[test]
    fn encoded_fault_decodes_back() {
        let fault = RawFault {
            code: 1005,
            message: "error <building> & failing".to_owned(),
        };
        assert_eq!(
            decode_response(encode_fault(&fault).as_bytes()).unwrap(),
            Err(fault)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            decode_response(b"<html>502 Bad Gateway</html>"),
            Err(XmlRpcError::Malformed { .. })
        ));
        assert!(matches!(
            decode_response(&[0xff, 0xfe]),
            Err(XmlRpcError::NotUtf8 { .. })
        ));
        assert!(matches!(
            decode_response(b"<methodResponse><fault><value><string>x</string></value></fault></methodResponse>"),
            Err(XmlRpcError::MalformedFault { .. })
        ));
    }

    #[test]
    fn multicall_splits_results_and_faults() {
        let value = Value::Array(vec![
            Value::Array(vec![Value::Integer(7)]),
            Value::Struct(BTreeMap::from([
                ("faultCode".to_owned(), Value::Integer(1000)),
                ("faultString".to_owned(), Value::String("nope".to_owned())),
            ])),
        ]);
        let results = decode_multicall_results(value, 2).unwrap();
        assert_eq!(results[0], Ok(Value::Integer(7)));
        assert_eq!(
            results[1],
            Err(RawFault {
                code: 1000,
                message: "nope".to_owned()
            })
        );
        assert!(matches!(
            decode_multicall_results(Value::Array(vec![]), 1),
            Err(XmlRpcError::MulticallLength {
                got: 0,
                expected: 1
            })
        ));
    }

    #[test]
    fn task_request_kwargs_are_split_off() {
        let xml = encode_call(
            "buildArch",
            &[Value::String("pkg.src.rpm".to_owned()), Value::Integer(1)],
            &[("opts".to_owned(), Value::Nil)],
        );
        let call = decode_call(&xml).unwrap();
        assert_eq!(call.method, "buildArch");
        assert_eq!(call.args.len(), 2);
        assert_eq!(call.kwargs.get("opts"), Some(&Value::Nil));
        assert!(!call.kwargs.contains_key("__starstar"));
        let plain = decode_call(&encode_call("x", &[Value::Integer(3)], &[])).unwrap();
        assert!(plain.kwargs.is_empty());
    }

    #[test]
    fn json_beyond_i64_is_refused() {
        let json: serde_json::Value = serde_json::from_str("18446744073709551615").unwrap();
        assert!(matches!(
            json_to_value(&json),
            Err(XmlRpcError::IntegerOutOfRange(_))
        ));
    }
}
