//! Differential tests: the Rust INI reader against Python's `configparser.RawConfigParser`
//! (what kojid uses), on a corpus of tricky files and on generated ones. Both sides are
//! reduced to the same JSON: the sections with their keys and values in order, or the
//! error class and the line numbers it names.

use std::path::{Path, PathBuf};
use std::process::Command;

use koji_adjutant::config::ini::{self, IniDocument, IniError, IniErrorKind};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};

const PYTHON_READER: &str = r#"
import configparser, json, sys
out = []
for path in sys.argv[1:]:
    cp = configparser.RawConfigParser()
    try:
        cp.read(path.split('\n'), encoding='utf-8')
    except (configparser.DuplicateSectionError, configparser.DuplicateOptionError,
            configparser.MissingSectionHeaderError) as e:
        out.append({"error": type(e).__name__, "lines": [e.lineno]})
        continue
    except configparser.ParsingError as e:
        out.append({"error": type(e).__name__, "lines": [n for n, _ in e.errors]})
        continue
    out.append({
        "defaults": [[k, v] for k, v in cp._defaults.items()],
        "sections": [[s, [[k, v] for k, v in cp._sections[s].items()]] for s in cp.sections()],
    })
print(json.dumps(out))
"#;

/// Python's view of each file group (several files joined by newlines are read as one `read`).
fn python_read(groups: &[Vec<PathBuf>]) -> Vec<Value> {
    let args: Vec<String> = groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let output = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_READER)
        .args(&args)
        .output()
        .expect("python3 must be installed for the differential tests");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap()
}

fn error_json(err: &IniError) -> Value {
    let class = match err.kind {
        IniErrorKind::MissingSectionHeaderError => "MissingSectionHeaderError",
        IniErrorKind::DuplicateSectionError => "DuplicateSectionError",
        IniErrorKind::DuplicateOptionError => "DuplicateOptionError",
        IniErrorKind::ParsingError => "ParsingError",
    };
    json!({"error": class, "lines": err.lines.iter().map(|l| l.line).collect::<Vec<_>>()})
}

fn document_json(doc: &IniDocument) -> Value {
    json!({
        "defaults": doc.defaults.iter().map(|e| json!([e.key, e.value])).collect::<Vec<_>>(),
        "sections": doc.sections.iter().map(|s| json!([
            s.name,
            s.entries.iter().map(|e| json!([e.key, e.value])).collect::<Vec<_>>(),
        ])).collect::<Vec<_>>(),
    })
}

fn rust_read(files: &[PathBuf]) -> Value {
    let mut doc = IniDocument::default();
    for file in files {
        let text = String::from_utf8(std::fs::read(file).unwrap()).unwrap();
        if let Err(err) = doc.read_str(&text, file) {
            return error_json(&err);
        }
    }
    document_json(&doc)
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config/ini")
}

#[test]
fn corpus_files_read_like_python() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus went missing");
    let groups: Vec<Vec<PathBuf>> = files.iter().map(|f| vec![f.clone()]).collect();
    let python = python_read(&groups);
    let mut errors_seen = 0;
    for (file, expected) in files.iter().zip(&python) {
        let actual = rust_read(std::slice::from_ref(file));
        if expected.get("error").is_some() {
            errors_seen += 1;
        }
        pretty_assertions::assert_eq!(&actual, expected, "{}", file.display());
    }
    // The corpus must exercise both outcomes, or the comparison proves little.
    assert!(errors_seen >= 5 && errors_seen < files.len());
}

#[test]
fn byte_level_cases_read_like_python() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[u8])] = &[
        (
            "crlf",
            b"[kojid]\r\nmaxjobs = 1\r\nallowed_scms =\r\n  a\r\n  b\r\n",
        ),
        ("lone_cr", b"[kojid]\rmaxjobs = 1\r  more\r"),
        ("mixed_endings", b"[kojid]\r\na = 1\rb = 2\nc = 3"),
        ("bom", b"\xef\xbb\xbf[kojid]\nmaxjobs = 1\n"),
        ("bom_comment_first", b"\xef\xbb\xbf# comment\n[kojid]\n"),
        ("bom_in_value", b"[kojid]\nkey = \xef\xbb\xbfvalue\n"),
        ("no_final_newline", b"[kojid]\nkey = value"),
        ("trailing_blank_lines", b"[kojid]\nkey = value\n\n\n   \n"),
        (
            "whitespace_only_lines_in_value",
            b"[kojid]\nkey = a\n   \n  b\n",
        ),
        // Characters that are special to rust-ini but plain to Python.
        (
            "backslashes",
            b"[kojid]\npath = C:\\dir\\\nnext = 2\nk\\=x : 1\nv = a\\\n  \\b\\\n\\lead = \\\\\n",
        ),
        ("backslash_in_header", b"[a\\]\nk = 1\n[b\\] x\\]\nk = 2\n"),
        ("bracket_key", b"[kojid]\n[a = 1\n[b] = 2\nc = 3\n[]=4\n"),
        (
            "quotes",
            b"[kojid]\na = \"quoted\"\nb = 'single' tail\nc = \"open\n  more\"\n",
        ),
        (
            "empty_first_line",
            b"[kojid]\na =\n\n  x\n\n  y\nb:\n# c\n\n\t z\nc =\n\n",
        ),
        (
            "separators_around_delimiter",
            b"[kojid]\na\x1c = \x1f b\x1d\nc \x1e: \x1c\n  \x1fd\x1f\n",
        ),
        ("nameless_twice", b"[kojid]\n= a\nfoo\n= b\n"),
        ("nameless_then_duplicate", b"[kojid]\n= a\nb = 1\nb = 2\n"),
        (
            "header_spaces_and_junk",
            b"[ s ]\nk = 1\n[s] junk = 2\nk = 2\n[ DEFAULT ]\nk = 3\n",
        ),
        (
            "inline_comment_chars",
            b"[kojid]\na = 1 ; not a comment\nb = # x\n  ; dropped\n  c # kept\n",
        ),
    ];
    let mut groups = Vec::new();
    for (name, bytes) in cases {
        let path = dir.path().join(format!("{name}.conf"));
        std::fs::write(&path, bytes).unwrap();
        groups.push(vec![path]);
    }
    let python = python_read(&groups);
    for (group, expected) in groups.iter().zip(&python) {
        pretty_assertions::assert_eq!(&rust_read(group), expected, "{}", group[0].display());
    }
}

#[test]
fn several_files_merge_like_python() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("10-base.conf");
    let second = dir.path().join("20-site.conf");
    // The same section and key in two files is an override, not a duplicate.
    std::fs::write(
        &first,
        "[kojid]\nmaxjobs = 1\nsleeptime = 2\n[DEFAULT]\nx = 1\n",
    )
    .unwrap();
    std::fs::write(
        &second,
        "[kojid]\nmaxjobs = 9\n[DEFAULT]\nx = 2\n[adjutant]\na = b\n",
    )
    .unwrap();
    let group = vec![first, second];
    let python = python_read(std::slice::from_ref(&group));
    pretty_assertions::assert_eq!(rust_read(&group), python[0]);
}

#[test]
fn bom_error_tells_how_to_fix_it() {
    let err = ini::parse_str("\u{feff}[kojid]\n", Path::new("k.conf")).unwrap_err();
    assert!(err.to_string().contains("byte order mark"), "{err}");
}

fn line_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[kojid]".to_string()),
        Just("[DEFAULT]".to_string()),
        Just("[adjutant]".to_string()),
        Just("[ s ]".to_string()),
        Just("[a] x]".to_string()),
        Just("[]".to_string()),
        Just("# comment".to_string()),
        Just("; comment".to_string()),
        Just(String::new()),
        Just("   ".to_string()),
        Just("no delimiter".to_string()),
        Just("= v".to_string()),
        "[a-cA-C]{1,2} {0,2}[=:] {0,2}[a-c%:=;# ]{0,5}",
        "[a-c]{1,3}",
        // Characters where Python's idea of whitespace differs from a naive one.
        "[a-c]{1,2}[ \u{a0}\u{1c}\u{0c}\u{0b}]?=[ \u{a0}\u{1c}\u{2003}]?[a-c]?[ \u{a0}\u{1f}\u{feff}]?",
        "[\u{a0}\u{0c}\u{1d}][a-c]=[a-c]",
    ]
}

fn file_strategy() -> impl Strategy<Value = String> {
    let indent = prop_oneof![
        Just(""),
        Just(""),
        Just(" "),
        Just("  "),
        Just("\t"),
        Just("\u{a0}")
    ];
    let ending = prop_oneof![Just("\n"), Just("\n"), Just("\r\n"), Just("\r")];
    prop::collection::vec((indent, line_strategy(), ending), 0..14).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(indent, line, ending)| format!("{indent}{line}{ending}"))
            .collect()
    })
}

/// Generated files, checked in one batch: starting Python once per case would make this
/// the slowest test of the crate. Each failure prints the generated input.
#[test]
fn generated_files_read_like_python() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = file_strategy();
    let dir = tempfile::tempdir().unwrap();
    let mut groups = Vec::new();
    let mut texts = Vec::new();
    for index in 0..400 {
        let text = ValueTree::current(&strategy.new_tree(&mut runner).unwrap());
        let path = dir.path().join(format!("generated-{index}.conf"));
        std::fs::write(&path, &text).unwrap();
        groups.push(vec![path]);
        texts.push(text);
    }
    let python = python_read(&groups);
    let mut errors = 0;
    for ((group, text), expected) in groups.iter().zip(&texts).zip(&python) {
        errors += usize::from(expected.get("error").is_some());
        pretty_assertions::assert_eq!(&rust_read(group), expected, "input: {:?}", text);
    }
    // Both outcomes must be well represented for the comparison to mean something.
    assert!(
        errors > 40 && errors < 360,
        "{errors} of 400 generated files were errors"
    );
}

/// Lines built from what rust-ini, which does the parsing, treats specially and Python does
/// not: backslashes (escapes, `\` + newline), brackets, quotes, empty values continued on the
/// next lines, comments between continuation lines.
fn rust_ini_hazard_line_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[kojid]".to_string()),
        Just("[DEFAULT]".to_string()),
        r"\[[a-b\\\] ]{1,4}\][a-b \]]{0,3}",
        Just("# comment".to_string()),
        Just("  ; comment".to_string()),
        Just(String::new()),
        Just("[a = 1".to_string()),
        r#"[a-cA-C\\\["']{1,3} ?[=:] ?[a-c\\"'\[\]=:]{0,4}"#,
        "[a-c]{1,2} ?[=:]",
        r#"[a-c\\"']{1,3}"#,
        "= ?[a-c]?",
    ]
}

fn rust_ini_hazard_file_strategy() -> impl Strategy<Value = String> {
    let indent = prop_oneof![Just(""), Just(""), Just(" "), Just("  "), Just("\t")];
    let ending = prop_oneof![Just("\n"), Just("\n"), Just("\r\n"), Just("\r")];
    prop::collection::vec((indent, rust_ini_hazard_line_strategy(), ending), 0..14).prop_map(
        |lines| {
            lines
                .into_iter()
                .map(|(indent, line, ending)| format!("{indent}{line}{ending}"))
                .collect()
        },
    )
}

/// Generated files full of what rust-ini reads differently from Python, so that the layer
/// around it is checked where it matters most.
#[test]
fn generated_rust_ini_hazards_read_like_python() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = rust_ini_hazard_file_strategy();
    let dir = tempfile::tempdir().unwrap();
    let mut groups = Vec::new();
    let mut texts = Vec::new();
    for index in 0..300 {
        let text = ValueTree::current(&strategy.new_tree(&mut runner).unwrap());
        let path = dir.path().join(format!("hazard-{index}.conf"));
        std::fs::write(&path, &text).unwrap();
        groups.push(vec![path]);
        texts.push(text);
    }
    let python = python_read(&groups);
    let mut errors = 0;
    for ((group, text), expected) in groups.iter().zip(&texts).zip(&python) {
        errors += usize::from(expected.get("error").is_some());
        pretty_assertions::assert_eq!(&rust_read(group), expected, "input: {:?}", text);
    }
    assert!(
        errors > 30 && errors < 270,
        "{errors} of 300 generated files were errors"
    );
}

/// kojid converts integer keys with Python's `int()` and booleans with ConfigParser's
/// `getboolean`; the typed layer must accept and reject exactly the same strings.
#[test]
fn integer_and_boolean_conversion_match_python() {
    use koji_adjutant::config::types::{SettingType, python_int};
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = "[ +_0-9a-z\\-]{0,7}";
    let mut samples: Vec<String> = [
        "0", "+1", "-1", "1_000", "1__0", "_1", "1_", "007", "0x10", "1e3", "1.0", " 5 ", "",
        "yes", "No", "TRUE", "off", "On", "y", "2", "tru",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for _ in 0..400 {
        samples.push(ValueTree::current(&strategy.new_tree(&mut runner).unwrap()));
    }
    // ConfigParser strips values before they are converted; so does our reader.
    let samples: Vec<String> = samples.iter().map(|s| s.trim().to_string()).collect();
    let script = r#"
import configparser, json, sys
out = []
cp = configparser.RawConfigParser()
for s in json.load(sys.stdin):
    try:
        i = int(s)
    except ValueError:
        i = None
    b = cp.BOOLEAN_STATES.get(s.lower())
    out.append([i, b])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &samples).unwrap();
    let output = child.wait_with_output().unwrap();
    let python: Vec<(Option<i64>, Option<bool>)> = serde_json::from_slice(&output.stdout).unwrap();
    let mut accepted = 0;
    for (sample, (int, boolean)) in samples.iter().zip(python) {
        let ours = python_int(sample).map(|v| i64::try_from(v).unwrap());
        assert_eq!(ours, int, "int({sample:?})");
        assert_eq!(bool::parse(sample).ok(), boolean, "getboolean({sample:?})");
        accepted += usize::from(int.is_some());
    }
    assert!(
        accepted > 20,
        "too few valid integers generated to prove anything"
    );
}
