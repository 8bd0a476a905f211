//! The XML-RPC dialect: proptest round trips, a never-panics property for the response
//! decoder, differential tests against Python's koji.xmlrpcplus / xmlrpc.client (both ways),
//! and the golden transcripts (every recorded response decodes; our requests for the same calls
//! encode byte for byte like kojid's).
//!
//! Needs `pip install --no-deps koji==1.36.1 requests python-dateutil six defusedxml`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use dxr::Value;
use koji_adjutant::hub::xmlrpc::{
    RawFault, decode_call, decode_response, encode_call, encode_fault, encode_response,
    value_to_json,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn datetime() -> impl Strategy<Value = dxr::DateTime> {
    (1900u16..2200, 1u8..=12, 1u8..=28, 0u8..24, 0u8..60, 0u8..60).prop_map(
        |(y, mo, d, h, mi, s)| {
            format!("{y:04}{mo:02}{d:02}T{h:02}:{mi:02}:{s:02}")
                .parse()
                .expect("valid datetime")
        },
    )
}

/// Text XML 1.0 can carry: no control characters except tab, newline and carriage return.
fn xml_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "[ \\t\\n\\r&<>'\"a-z]{0,12}",
        Just(String::new()),
        Just("  leading and trailing  ".to_owned()),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<i32>().prop_map(Value::Integer),
        prop_oneof![
            i64::MIN..(i64::from(i32::MIN)),
            (i64::from(i32::MAX) + 1)..=i64::MAX
        ]
        .prop_map(Value::Long),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Double),
        xml_text().prop_map(Value::String),
        datetime().prop_map(Value::DateTime),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Base64),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_ -]{0,10}", inner, 0..6)
                .prop_map(Value::Struct),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn responses_round_trip(original in value()) {
        let decoded = decode_response(encode_response(&original).as_bytes()).unwrap().unwrap();
        prop_assert_eq!(decoded, original);
    }

    #[test]
    fn calls_round_trip_with_kwargs(
        args in proptest::collection::vec(value(), 0..4),
        kwargs in proptest::collection::btree_map("[a-z_]{1,8}", value(), 0..4),
    ) {
        let kwargs: Vec<(String, Value)> = kwargs.into_iter().filter(|(k, _)| k != "__starstar").collect();
        let decoded = decode_call(&encode_call("host.subtask", &args, &kwargs)).unwrap();
        prop_assert_eq!(decoded.method, "host.subtask");
        prop_assert_eq!(decoded.args, args);
        prop_assert_eq!(decoded.kwargs, kwargs.into_iter().collect::<BTreeMap<_, _>>());
    }

    #[test]
    fn faults_round_trip(code in any::<i32>(), message in xml_text()) {
        let fault = RawFault { code, message };
        prop_assert_eq!(decode_response(encode_fault(&fault).as_bytes()).unwrap(), Err(fault));
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_response(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_damaged_documents(
        original in value(),
        cut in any::<prop::sample::Index>(),
        junk in "[<>/&a-z;# ]{0,8}",
    ) {
        let document = encode_response(&original);
        let position = cut.index(document.len() + 1);
        let position = (0..=position).rev().find(|p| document.is_char_boundary(*p)).unwrap_or(0);
        let damaged = format!("{}{}{}", &document[..position], junk, &document[position..]);
        let _ = decode_response(damaged.as_bytes());
        let _ = decode_response(&document.as_bytes()[..position]);
        let _ = decode_call(&damaged);
    }
}

/// JSON for comparing with Python's view: doubles as their exact bits (JSON float text does
/// not round-trip exactly through serde_json's parser), everything else as `value_to_json`.
fn canonical(value: &Value) -> serde_json::Value {
    match value {
        Value::Double(number) => {
            let bits: String = number
                .to_le_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            serde_json::json!({ "double-bits": bits })
        }
        Value::Array(items) => serde_json::Value::Array(items.iter().map(canonical).collect()),
        Value::Struct(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect(),
        ),
        other => value_to_json(other),
    }
}

fn python(script: &str, input: &str) -> String {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed for the differential tests");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "python failed (is koji installed? pip install --no-deps koji==1.36.1 requests python-dateutil six defusedxml): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

const PY_JSON: &str = r#"
import base64, datetime, json, struct, sys, xmlrpc.client
import koji.xmlrpcplus
def plain(v):
    if isinstance(v, float): return {"double-bits": struct.pack('<d', v).hex()}
    if isinstance(v, (bytes, bytearray)): return base64.b64encode(bytes(v)).decode()
    if isinstance(v, xmlrpc.client.Binary): return base64.b64encode(v.data).decode()
    if isinstance(v, (datetime.datetime, xmlrpc.client.DateTime)):
        return v.strftime('%Y%m%dT%H:%M:%S') if isinstance(v, datetime.datetime) else v.value
    if isinstance(v, dict): return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)): return [plain(x) for x in v]
    return v
"#;

#[test]
fn python_reads_what_rust_writes() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        proptest::collection::vec(value(), 0..4),
        proptest::collection::vec(("[a-z_]{1,8}", value()), 0..3),
    );
    let mut cases = Vec::new();
    for _ in 0..150 {
        let (args, kwargs) = strategy.new_tree(&mut runner).unwrap().current();
        let kwargs: Vec<(String, Value)> = kwargs
            .into_iter()
            .filter(|(k, _)| k != "__starstar")
            .collect();
        cases.push((args, kwargs));
    }
    let input: String = cases
        .iter()
        .map(|(args, kwargs)| {
            serde_json::to_string(&encode_call("echo", args, kwargs)).unwrap() + "\n"
        })
        .collect();
    let script = format!(
        "{PY_JSON}\nfor line in sys.stdin:\n    params, method = xmlrpc.client.loads(json.loads(line).encode('utf-8'), use_builtin_types=True)\n    print(json.dumps([method, plain(list(params))]))\n"
    );
    let output = python(&script, &input);
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), cases.len());
    for ((args, kwargs), line) in cases.iter().zip(lines) {
        let seen: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut expected: Vec<serde_json::Value> = args.iter().map(canonical).collect();
        if !kwargs.is_empty() {
            let mut members: serde_json::Map<String, serde_json::Value> = kwargs
                .iter()
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect();
            members.insert("__starstar".to_owned(), serde_json::Value::Bool(true));
            expected.push(serde_json::Value::Object(members));
        }
        assert_eq!(
            seen,
            serde_json::json!(["echo", expected]),
            "python read {line}"
        );
    }
}

#[test]
fn rust_reads_what_python_writes() {
    let script = format!(
        r#"{PY_JSON}
values = [
    None, True, False, 0, -1, 2**31 - 1, -2**31, 2**31, -2**31 - 1, 2**63 - 1, -2**63,
    0.0, -1.5, 1e300, 1795723412.601172, "", "plain", "  spaced  ", "tab\there\nnewline",
    "<xml> & 'quotes' \"double\"", "unicode: žluťoučký kůň 🐎", b"\x00\x01binary\xff",
    datetime.datetime(2025, 1, 31, 12, 0, 3),
    [], [1, [2, [3, None]]], {{}}, {{"nested": {{"list": [1, "a", None], "big": 2**40}}}},
    {{"session-id": 900001, "session-key": "1-abc", "header-auth": True}},
]
for v in values:
    xml = koji.xmlrpcplus.dumps((v,), methodresponse=1, allow_none=1)
    print(json.dumps({{"xml": xml, "expected": plain(v)}}))
for code, msg in [(1007, "session expired"), (1000, "Invalid method: x & <y>"), (1, "ValueError: bad")]:
    xml = koji.xmlrpcplus.dumps(xmlrpc.client.Fault(code, msg), allow_none=1)
    print(json.dumps({{"xml": xml, "fault": [code, msg]}}))
"#
    );
    let output = python(&script, "");
    let mut count = 0;
    for line in output.lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let xml = case["xml"].as_str().unwrap();
        let decoded = decode_response(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}: {xml}"));
        if let Some(fault) = case.get("fault") {
            let fault_decoded = decoded.expect_err("a fault");
            assert_eq!(i64::from(fault_decoded.code), fault[0].as_i64().unwrap());
            assert_eq!(fault_decoded.message, fault[1].as_str().unwrap());
        } else {
            let value = decoded.expect("a value");
            assert_eq!(canonical(&value), case["expected"], "{xml}");
        }
        count += 1;
    }
    assert_eq!(count, 31);
}

fn transcript_records() -> Vec<serde_json::Value> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/hub-transcripts");
    let dir = if dir.exists() {
        dir
    } else {
        std::path::PathBuf::from("/work/shared/fixtures/hub-transcripts")
    };
    let mut records = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("hub transcripts") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                records.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    assert!(records.len() > 1000, "expected the six golden transcripts");
    records
}

#[test]
fn every_transcript_response_decodes_and_faults_match() {
    let mut responses = 0;
    for record in transcript_records() {
        if record["direction"] != "response" {
            continue;
        }
        let Some(xml) = record["body_xml"].as_str() else {
            continue;
        };
        let decoded = decode_response(xml.as_bytes())
            .unwrap_or_else(|e| panic!("seq {}: {e}", record["seq"]));
        match (&record["fault"], decoded) {
            (serde_json::Value::Null, Ok(_)) => {}
            (fault, Err(raw)) if !fault.is_null() => {
                assert_eq!(i64::from(raw.code), fault["faultCode"].as_i64().unwrap());
                assert_eq!(raw.message, fault["faultString"].as_str().unwrap());
            }
            (fault, other) => panic!("seq {}: fault {fault} but decoded {other:?}", record["seq"]),
        }
        responses += 1;
    }
    assert!(responses > 500);
}

#[test]
fn our_requests_encode_like_kojids() {
    // Decode every recorded request and re-encode it. Where the only struct is the kwargs
    // struct, the bytes must be kojid's exactly (framing, newlines, nil, int/i8, doubles,
    // __starstar last). Structs inside arguments come back in sorted key order (dxr's
    // BTreeMap), not Python's insertion order, so those are compared decoded.
    let mut exact = 0;
    let mut decoded_equal = 0;
    for record in transcript_records() {
        if record["direction"] != "request" {
            continue;
        }
        let Some(xml) = record["body_xml"].as_str() else {
            continue;
        };
        let call = decode_call(xml).unwrap_or_else(|e| panic!("seq {}: {e}", record["seq"]));
        let structs = xml.matches("<struct>").count();
        let kwargs_struct = usize::from(!call.kwargs.is_empty());
        if structs == kwargs_struct {
            // Recover kojid's kwarg order from the document.
            let tail = xml.rfind("<param>").map_or("", |at| &xml[at..]);
            let kwargs: Vec<(String, Value)> = tail
                .match_indices("<name>")
                .map(|(at, _)| tail[at + 6..].split("</name>").next().unwrap().to_owned())
                .filter(|name| name != "__starstar" && call.kwargs.contains_key(name))
                .map(|name| {
                    let value = call.kwargs[&name].clone();
                    (name, value)
                })
                .collect();
            assert_eq!(
                encode_call(&call.method, &call.args, &kwargs),
                xml,
                "seq {} ({})",
                record["seq"],
                call.method
            );
            exact += 1;
        } else {
            let kwargs: Vec<(String, Value)> = call.kwargs.clone().into_iter().collect();
            let again = decode_call(&encode_call(&call.method, &call.args, &kwargs)).unwrap();
            assert_eq!(again, call, "seq {}", record["seq"]);
            decoded_equal += 1;
        }
    }
    assert!(exact > 500, "compared {exact} byte for byte");
    assert!(decoded_equal > 10, "compared {decoded_equal} decoded");
}

#[test]
fn python_reads_our_multicall_and_we_read_its_results() {
    use koji_adjutant::hub::xmlrpc::{MulticallEntry, decode_multicall_results, encode_multicall};
    let calls = vec![
        MulticallEntry {
            method: "host.writeSignedRPM".to_owned(),
            args: vec![Value::Integer(12), Value::String("abcd1234".to_owned())],
            kwargs: vec![("force".to_owned(), Value::Boolean(true))],
        },
        MulticallEntry {
            method: "getTaskInfo".to_owned(),
            args: vec![Value::Long(1 << 40)],
            kwargs: vec![],
        },
    ];
    let script = format!(
        r#"{PY_JSON}
params, method = xmlrpc.client.loads(sys.stdin.read().encode('utf-8'), use_builtin_types=True)
print(json.dumps([method, plain(list(params))]))
results = [[True], {{"faultCode": 1000, "faultString": "No such task"}}]
print(json.dumps(koji.xmlrpcplus.dumps((results,), methodresponse=1, allow_none=1)))
"#
    );
    let output = python(&script, &encode_multicall(&calls));
    let mut lines = output.lines();
    let seen: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        seen,
        serde_json::json!(["multiCall", [[
            {"methodName": "host.writeSignedRPM", "params": [12, "abcd1234", {"force": true, "__starstar": true}]},
            {"methodName": "getTaskInfo", "params": [1099511627776i64]}
        ]]])
    );
    let reply: String = serde_json::from_str(lines.next().unwrap()).unwrap();
    let value = decode_response(reply.as_bytes()).unwrap().unwrap();
    let results = decode_multicall_results(value, 2).unwrap();
    assert_eq!(results[0], Ok(Value::Boolean(true)));
    assert_eq!(results[1].as_ref().unwrap_err().message, "No such task");
}
