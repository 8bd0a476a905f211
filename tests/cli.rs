//! The real binary: `check-config`, `doctor`, `run`, `version`, exit codes, and a snapshot of
//! every class of configuration error message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use koji_adjutant::config::keys;
use serde_json::Value;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary with a clean environment, so a developer's KOJI_* variables cannot leak in.
fn adjutant(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_koji-adjutant"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn check_config_json(command: &mut Command) -> Value {
    let (code, stdout, stderr) = run(command.args(["check-config", "--format", "json"]));
    assert_eq!(code, 0, "stderr: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn setting<'a>(json: &'a Value, section: &str, key: &str) -> &'a Value {
    &json["settings"][section][key]
}

fn source_text(json: &Value, section: &str, key: &str) -> String {
    setting(json, section, key)["source_text"]
        .as_str()
        .unwrap()
        .to_string()
}

fn line_of(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .position(|l| l.starts_with(needle))
        .unwrap()
        + 1
}

#[test]
fn sample_config_shows_every_key_with_value_and_source() {
    let sample = manifest_dir().join("conf/kojid.conf");
    let json = check_config_json(adjutant(&manifest_dir()).args(["-c", "conf/kojid.conf"]));
    for def in keys::all_keys() {
        let entry = setting(&json, def.section.name(), def.name);
        assert!(entry.is_object(), "{} missing from the output", def.name);
        assert_eq!(entry["type"], def.type_name);
    }
    assert_eq!(
        setting(&json, "kojid", "server")["value"],
        "http://127.0.0.1:8090/kojihub"
    );
    assert_eq!(
        source_text(&json, "kojid", "server"),
        format!("conf/kojid.conf:{}", line_of(&sample, "server="))
    );
    assert_eq!(
        setting(&json, "kojid", "server")["source"],
        serde_json::json!({"kind": "file", "file": "conf/kojid.conf", "line": line_of(&sample, "server=")})
    );
    assert_eq!(setting(&json, "kojid", "maxjobs")["value"], "10");
    assert_eq!(
        setting(&json, "kojid", "maxjobs")["source"]["kind"],
        "default"
    );
    assert_eq!(
        source_text(&json, "adjutant", "log_format"),
        format!("conf/kojid.conf:{}", line_of(&sample, "log_format"))
    );
    assert_eq!(
        setting(&json, "kojid", "allowed_scms")["value"],
        "\n127.0.0.1:/*:false\nsrc.fedoraproject.org:/*:false:fedpkg,sources"
    );
    assert_eq!(json["files"], serde_json::json!(["conf/kojid.conf"]));
    assert_eq!(json["warnings"], serde_json::json!([]));
}

#[test]
fn environment_overrides_the_file_and_names_its_variable() {
    let json = check_config_json(
        adjutant(&manifest_dir())
            .args(["-c", "conf/kojid.conf"])
            .env("KOJI_ADJUTANT_LOG_FORMAT", "json")
            .env("KOJI_ADJUTANT_MONITORING_BIND", "127.0.0.1:9999")
            .env("KOJI_ADJUTANT_PIDS_LIMIT", "2048"),
    );
    assert_eq!(setting(&json, "adjutant", "log_format")["value"], "json");
    assert_eq!(
        setting(&json, "adjutant", "log_format")["source"],
        serde_json::json!({"kind": "env", "var": "KOJI_ADJUTANT_LOG_FORMAT"})
    );
    assert_eq!(
        source_text(&json, "adjutant", "monitoring_bind"),
        "env KOJI_ADJUTANT_MONITORING_BIND"
    );
    assert_eq!(setting(&json, "adjutant", "pids_limit")["value"], "2048");
    // Keys the environment does not touch keep their file source.
    assert!(source_text(&json, "adjutant", "build_network").starts_with("conf/kojid.conf:"));
}

#[test]
fn precedence_is_flag_env_section_prefixed_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kojid.conf"),
        "[kojid]\nserver = https://hub.example/kojihub\ntopurl = https://hub.example/kojifiles\n\
         adjutant_policy_cache_ttl = 10\nadjutant_drain_timeout = 20\nadjutant_pids_limit = 30\n\
         adjutant_cpu_limit = 2\n\
         [adjutant]\npolicy_cache_ttl = 11\ndrain_timeout = 21\npids_limit = 31\n",
    )
    .unwrap();
    let mut command = adjutant(dir.path());
    command
        .args(["-c", "kojid.conf", "check-config", "--format", "json"])
        .args(["-o", "policy_cache_ttl=13"])
        .env("KOJI_ADJUTANT_POLICY_CACHE_TTL", "12")
        .env("KOJI_ADJUTANT_DRAIN_TIMEOUT", "22");
    let (code, stdout, stderr) = run(&mut command);
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let expect = [
        ("policy_cache_ttl", "13", "flag -o policy_cache_ttl"),
        ("drain_timeout", "22", "env KOJI_ADJUTANT_DRAIN_TIMEOUT"),
        ("pids_limit", "31", "kojid.conf:11"),
        ("cpu_limit", "2", "kojid.conf:7"),
        ("memory_limit", "", "default"),
    ];
    for (key, value, source) in expect {
        let entry = setting(&json, "adjutant", key);
        if value.is_empty() {
            assert!(entry["value"].is_null(), "{key}: {entry}");
        } else {
            assert_eq!(entry["value"], value, "{key}");
        }
        assert_eq!(entry["source_text"], source, "{key}");
    }
    // Set both ways in the file: the operator is warned, once per key.
    for key in ["policy_cache_ttl", "drain_timeout", "pids_limit"] {
        assert_eq!(
            stderr
                .matches(&format!("warning: {key} is set twice"))
                .count(),
            1,
            "{stderr}"
        );
    }
    assert!(!stderr.contains("cpu_limit is set twice"));
}

#[test]
fn kojid_flags_override_the_file() {
    let (code, stdout, stderr) = run(adjutant(&manifest_dir()).args([
        "-c",
        "conf/kojid.conf",
        "check-config",
        "--format",
        "json",
        "--maxjobs",
        "3",
        "-s",
        "https://other.example/kojihub",
        "--plugin",
        "runroot",
        "--plugin",
        "save_failed_tree",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(setting(&json, "kojid", "maxjobs")["value"], "3");
    assert_eq!(source_text(&json, "kojid", "maxjobs"), "flag --maxjobs");
    assert_eq!(
        setting(&json, "kojid", "server")["value"],
        "https://other.example/kojihub"
    );
    assert_eq!(source_text(&json, "kojid", "server"), "flag --server");
    assert_eq!(
        setting(&json, "kojid", "plugin")["value"],
        "runroot save_failed_tree"
    );
    assert!(json["warnings"][0].as_str().unwrap().contains("runroot"));
}

#[test]
fn secrets_are_redacted_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kojid.conf"),
        "[kojid]\nserver = https://hub.example/kojihub\ntopurl = https://hub.example/kojifiles\n\
         user = builder\npassword = hunter2-secret\nsmtp_user = mail\nsmtp_pass = smtp-secret\n\
         [adjutant]\nmonitoring_token = token-secret\n",
    )
    .unwrap();
    let (code, text, _) = run(adjutant(dir.path()).args(["-c", "kojid.conf", "check-config"]));
    assert_eq!(code, 0);
    let (_, json_text, _) =
        run(adjutant(dir.path()).args(["-c", "kojid.conf", "check-config", "--format", "json"]));
    for output in [&text, &json_text] {
        for secret in ["hunter2-secret", "smtp-secret", "token-secret"] {
            assert!(!output.contains(secret), "{secret} leaked");
        }
    }
    assert!(
        text.contains("password = ********  # kojid.conf:5"),
        "{text}"
    );
    let json: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(
        setting(&json, "adjutant", "monitoring_token")["value"],
        "********"
    );
    assert_eq!(
        setting(&json, "adjutant", "monitoring_token")["secret"],
        true
    );
    assert_eq!(setting(&json, "kojid", "user")["value"], "builder");
}

#[test]
fn directory_of_conf_files_is_read_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let conf_d = dir.path().join("kojid.d");
    std::fs::create_dir(&conf_d).unwrap();
    std::fs::write(
        conf_d.join("20-site.conf"),
        "[kojid]\nmaxjobs = 7\n[DEFAULT]\nsleeptime = 9\n",
    )
    .unwrap();
    std::fs::write(
        conf_d.join("10-base.conf"),
        "[kojid]\nserver = https://hub.example/kojihub\ntopurl = https://hub.example/kojifiles\nmaxjobs = 2\n",
    )
    .unwrap();
    std::fs::write(conf_d.join("30-ignored.conf.rpmsave"), "[broken").unwrap();
    let json = check_config_json(adjutant(dir.path()).env("KOJI_CONFIG", "kojid.d"));
    assert_eq!(
        json["files"],
        serde_json::json!(["kojid.d/10-base.conf", "kojid.d/20-site.conf"])
    );
    assert_eq!(setting(&json, "kojid", "maxjobs")["value"], "7");
    assert_eq!(
        source_text(&json, "kojid", "maxjobs"),
        "kojid.d/20-site.conf:2"
    );
    // [DEFAULT] merges into [kojid].
    assert_eq!(
        source_text(&json, "kojid", "sleeptime"),
        "kojid.d/20-site.conf:4"
    );
    assert_eq!(
        source_text(&json, "kojid", "server"),
        "kojid.d/10-base.conf:2"
    );
}

#[test]
fn rlimits_are_read_case_insensitively() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kojid.conf"),
        "[kojid]\nserver = https://hub.example/kojihub\ntopurl = https://hub.example/kojifiles\n\
         RLIMIT_NOFILE = 4096 8192\nrlimit_core = 0\n",
    )
    .unwrap();
    let json = check_config_json(adjutant(dir.path()).args(["-c", "kojid.conf"]));
    assert_eq!(json["rlimits"]["RLIMIT_NOFILE"]["soft"], 4096);
    assert_eq!(json["rlimits"]["RLIMIT_NOFILE"]["hard"], 8192);
    assert_eq!(json["rlimits"]["RLIMIT_CORE"]["hard"], Value::Null);
    assert_eq!(
        json["rlimits"]["RLIMIT_CORE"]["source_text"],
        "kojid.conf:5"
    );
}

const VALID_HEAD: &str =
    "[kojid]\nserver = https://hub.example/kojihub\ntopurl = https://hub.example/kojifiles\n";

/// One class of configuration error: its name, the file's bytes, extra arguments and
/// environment.
type ErrorCase = (
    &'static str,
    Vec<u8>,
    Vec<&'static str>,
    Vec<(&'static str, &'static str)>,
);

fn error_cases() -> Vec<ErrorCase> {
    let head = |rest: &str| format!("{VALID_HEAD}{rest}").into_bytes();
    vec![
        ("no_delimiter", head("maxjobs 10\nsleeptime\n"), vec![], vec![]),
        ("missing_section_header", b"server = x\n[kojid]\n".to_vec(), vec![], vec![]),
        ("byte_order_mark", [b"\xef\xbb\xbf".as_slice(), VALID_HEAD.as_bytes()].concat(), vec![], vec![]),
        ("duplicate_option", head("maxjobs = 1\nMaxJobs = 2\n"), vec![], vec![]),
        ("duplicate_section", head("[adjutant]\n[adjutant]\n"), vec![], vec![]),
        ("invalid_section", head("[Kojid]\na = 1\n[mock]\nb = 2\n"), vec![], vec![]),
        ("unknown_key", head("maxjob = 10\nkeepalive = True\nadjutant_monitoring_bnd = x\n"), vec![], vec![]),
        ("unknown_adjutant_key", head("[adjutant]\nimage_pull = always\nmaxjobs = 3\nadjutant_log_format = json\n"), vec![], vec![]),
        ("adjutant_key_without_prefix", head("log_format = json\n"), vec![], vec![]),
        ("bad_integer", head("maxjobs = 10 ; ten jobs\nminspace = -5\n"), vec![], vec![]),
        ("bad_boolean", head("use_createrepo_c = maybe\n"), vec![], vec![]),
        ("bad_enum", head("[adjutant]\nimage_pull_policy = sometimes\nselinux_label = s\n"), vec![], vec![]),
        ("bad_structured_values", head("[adjutant]\ncontainer_timeouts = pull=5m\ncontainer_mounts = relative:/x\nbuild_user = mockbuild\nmonitoring_bind = localhost\n"), vec![], vec![]),
        ("bad_url", b"[kojid]\nserver = hub.example/kojihub\ntopurl = https://ok.example/files ftp://bad.example/\n".to_vec(), vec![], vec![]),
        ("bad_rlimit", head("RLIMIT_NOFILE = many\nRLIMIT_BOGUS = 1\n"), vec![], vec![]),
        ("missing_required", b"[kojid]\nmaxjobs = 2\n".to_vec(), vec![], vec![]),
        ("default_without_kojid", b"[DEFAULT]\nserver = https://hub.example/kojihub\n[adjutant]\n".to_vec(), vec![], vec![]),
        ("bad_env_value", head(""), vec![], vec![("KOJI_ADJUTANT_LOG_FORMAT", "yaml")]),
        ("bad_flag_value", head(""), vec!["--maxjobs", "lots", "-o", "cpu_limit=0"], vec![]),
        ("unknown_flag_option", head(""), vec!["-o", "maxjbos=1"], vec![]),
        ("not_utf8", [head("vendor = ok\n").as_slice(), b"packager = caf\xe9\n"].concat(), vec![], vec![]),
    ]
}

#[test]
fn every_error_class_names_file_line_key_value_and_exits_2() {
    for (name, bytes, args, env) in error_cases() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kojid.conf"), &bytes).unwrap();
        let mut command = adjutant(dir.path());
        command
            .args(["-c", "kojid.conf", "check-config"])
            .args(&args);
        for (key, value) in env {
            command.env(key, value);
        }
        let (code, stdout, stderr) = run(&mut command);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stdout.is_empty(), "{name}: printed a config despite errors");
        insta::assert_snapshot!(format!("config_error_{name}"), stderr);
    }
}

#[test]
fn missing_config_file_exits_2_and_says_how_to_point_at_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(adjutant(dir.path()).args(["-c", "nowhere.conf", "check-config"]));
    assert_eq!(code, 2);
    insta::assert_snapshot!("config_error_not_found", stderr);
    let (code, _, stderr) = run(adjutant(dir.path())
        .env("KOJI_CONFIG", "gone.conf")
        .arg("doctor"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("gone.conf: config file not found (named by KOJI_CONFIG)"),
        "{stderr}"
    );
}

#[test]
fn unknown_flags_and_subcommands_exit_2() {
    for args in [
        vec!["run", "--no-such-flag"],
        vec!["check-config", "--format", "yaml"],
        vec!["frobnicate"],
        vec!["-o", "novalue", "check-config"],
    ] {
        let (code, _, stderr) = run(adjutant(&manifest_dir()).args(&args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
}

#[test]
fn version_names_crate_version_and_revision() {
    let (code, stdout, _) = run(adjutant(&manifest_dir()).arg("version"));
    assert_eq!(code, 0);
    let expected = format!("koji-adjutant {} (git ", env!("CARGO_PKG_VERSION"));
    assert!(stdout.starts_with(&expected), "{stdout}");
    let revision = stdout
        .trim_end()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap();
    assert!(
        revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()),
        "{revision}"
    );
}

#[test]
fn run_logs_the_config_in_kojid_shape_then_refuses() {
    // The sample config has no credentials: the worker logs its settings, then cannot log in.
    let (code, _, stderr) =
        run(adjutant(&manifest_dir()).args(["-c", "conf/kojid.conf", "run", "-v", "--fg"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot log in to the hub") && stderr.contains("no way to log in"),
        "{stderr}"
    );
    let first = stderr.lines().next().unwrap();
    let shape = first.len() > 24
        && first.as_bytes()[4] == b'-'
        && first.as_bytes()[19] == b','
        && first[23..].starts_with(" [INFO] koji_adjutant: Starting up");
    assert!(shape, "not kojid's log shape: {first}");
    assert!(
        stderr
            .contains("config kojid.server = \"http://127.0.0.1:8090/kojihub\" (conf/kojid.conf:")
    );

    // Without -v the level is kojid's default WARNING: no INFO lines.
    let (_, _, quiet) = run(adjutant(&manifest_dir()).args(["-c", "conf/kojid.conf", "run"]));
    assert!(!quiet.contains("[INFO]"), "{quiet}");
    assert!(quiet.contains("[ERROR]"), "{quiet}");

    // RUST_LOG replaces the level; --log-format json gives one object per line.
    let (_, _, json_log) = run(adjutant(&manifest_dir())
        .args(["-c", "conf/kojid.conf", "run", "--log-format", "json"])
        .env("RUST_LOG", "debug"));
    let records: Vec<Value> = json_log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["level"] == "INFO" && r["message"] == "Starting up")
    );
    assert!(records.iter().any(|r| r["level"] == "ERROR"));
}

#[test]
fn generated_config_reference_is_current() {
    let committed =
        std::fs::read_to_string(manifest_dir().join("docs/config-reference.md")).unwrap();
    assert!(
        committed == koji_adjutant::config::reference::render(),
        "docs/config-reference.md is stale: run `cargo run -- config-reference > docs/config-reference.md`"
    );
}

/// Writes a self-signed certificate with its key that expires in `days` days.
fn write_cert(path: &Path, days: u32, with_key: bool) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "builder.example").unwrap();
    let name = name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(days).unwrap())
        .unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    let mut pem = builder.build().to_pem().unwrap();
    if with_key {
        pem.extend(key.private_key_to_pem_pkcs8().unwrap());
    }
    std::fs::write(path, pem).unwrap();
}

fn doctor(dir: &Path, extra: &str, args: &[&str]) -> (i32, String) {
    std::fs::create_dir_all(dir.join("topdir")).unwrap();
    std::fs::write(
        dir.join("kojid.conf"),
        format!(
            "{VALID_HEAD}workdir = {d}/work\ntopdir = {d}/topdir\nmockdir = {d}\nminspace = 1\n{extra}",
            d = dir.display()
        ),
    )
    .unwrap();
    // The config checks only: the hub checks have their own tests (tests/cli_hub.rs).
    let (code, stdout, stderr) = run(adjutant(dir)
        .args(["-c", "kojid.conf", "doctor", "--offline"])
        .args(args));
    (code, format!("{stdout}{stderr}"))
}

#[test]
fn doctor_reports_ok_warn_and_fail_with_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_cert(&d.join("good.pem"), 400, true);
    write_cert(&d.join("soon.pem"), 10, true);
    write_cert(&d.join("nokey.pem"), 400, false);
    write_cert(&d.join("ca.pem"), 400, false);

    let (code, out) = doctor(d, "cert = good.pem\nserverca = ca.pem\n", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("[ ok ] cert: good.pem (builder.example), expires on"),
        "{out}"
    );
    assert!(
        out.contains("[ ok ] serverca: ca.pem (1 certificate(s)"),
        "{out}"
    );
    assert!(
        out.contains("[ ok ] workdir:") && out.contains("will be created"),
        "{out}"
    );
    assert!(out.contains("[ ok ] minspace:"), "{out}");
    assert!(out.contains("[ ok ] topdir:"), "{out}");

    let (code, out) = doctor(d, "cert = soon.pem\n", &[]);
    assert_eq!(code, 0, "a warning alone does not fail: {out}");
    assert!(
        out.contains("[warn] cert: soon.pem (builder.example) expires on"),
        "{out}"
    );
    assert!(
        out.contains("in 9 days") || out.contains("in 10 days"),
        "{out}"
    );
    assert!(out.contains("fix: renew the host certificate"), "{out}");

    let (code, out) = doctor(d, "cert = nokey.pem\n", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FAIL] cert: nokey.pem holds a certificate but no private key"));

    let (code, out) = doctor(d, "cert = good.pem\n", &["--minspace", "999999999999"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FAIL] minspace: only"), "{out}");
    assert!(
        out.contains("fix: free disk space there, or lower minspace"),
        "{out}"
    );

    std::fs::remove_dir(d.join("topdir")).unwrap();
    let (_, out) = doctor(d, "cert = good.pem\n", &["--topdir", "/nonexistent/koji"]);
    assert!(
        out.contains("[warn] topdir: /nonexistent/koji is missing"),
        "{out}"
    );

    let (code, out) = doctor(d, "cert = good.pem\n", &["--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let checks: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(
        checks
            .iter()
            .all(|c| c["name"].is_string() && c["status"].is_string())
    );
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "cert" && c["status"] == "ok")
    );
}

/// A valid value for any key: its default, or a sample for keys without one.
fn sample_value(def: &keys::KeyDef) -> String {
    match (def.default, def.name) {
        (Some(default), _) if !default.is_empty() => default.to_string(),
        (_, "server") => "https://hub.example/kojihub".to_string(),
        (_, "topurl") => "https://hub.example/kojifiles".to_string(),
        (_, "memory_limit") => "4g".to_string(),
        (_, "cpu_limit") => "1.5".to_string(),
        (_, "pids_limit") | (_, "timeout") => "100".to_string(),
        (_, "log_level") => "INFO".to_string(),
        (_, "container_mounts") => "/srv:/srv:ro".to_string(),
        (_, "container_labels") => "a=b".to_string(),
        (_, name) => format!("sample-{name}"),
    }
}

#[test]
fn every_key_can_be_set_every_supported_way() {
    let dir = tempfile::tempdir().unwrap();
    let mut prefixed = String::from("[kojid]\n");
    let mut sectioned = String::from("[adjutant]\n");
    for def in keys::all_keys() {
        match def.section {
            keys::Section::Kojid => {
                prefixed.push_str(&format!("{} = {}\n", def.name, sample_value(def)));
            }
            keys::Section::Adjutant => {
                prefixed.push_str(&format!("adjutant_{} = {}\n", def.name, sample_value(def)));
                sectioned.push_str(&format!("{} = {}\n", def.name, sample_value(def)));
            }
        }
    }
    std::fs::write(dir.path().join("prefixed.conf"), &prefixed).unwrap();
    std::fs::write(
        dir.path().join("both.conf"),
        format!("{prefixed}{sectioned}"),
    )
    .unwrap();

    let json = check_config_json(adjutant(dir.path()).args(["-c", "prefixed.conf"]));
    for def in keys::all_keys() {
        let written = if def.section == keys::Section::Kojid {
            format!("{} = ", def.name)
        } else {
            format!("adjutant_{} = ", def.name)
        };
        let line = line_of(&dir.path().join("prefixed.conf"), &written);
        let entry = setting(&json, def.section.name(), def.name);
        assert_eq!(
            entry["source_text"],
            format!("prefixed.conf:{line}"),
            "{}",
            def.name
        );
        let expected = if def.secret {
            "********".to_string()
        } else {
            sample_value(def)
        };
        assert_eq!(entry["value"], expected, "{}", def.name);
    }

    // [adjutant] beats adjutant_*, and the environment beats both, for every adjutant key.
    let sectioned_path = dir.path().join("both.conf");
    let mut command = adjutant(dir.path());
    command.args(["-c", "both.conf"]);
    let adjutant_keys: Vec<_> = keys::all_keys()
        .filter(|d| d.section == keys::Section::Adjutant)
        .collect();
    for def in adjutant_keys.iter().step_by(2) {
        command.env(def.env_var().unwrap(), sample_value(def));
    }
    let json = check_config_json(&mut command);
    for (index, def) in adjutant_keys.iter().enumerate() {
        let entry = setting(&json, "adjutant", def.name);
        if index % 2 == 0 {
            assert_eq!(
                entry["source_text"],
                format!("env {}", def.env_var().unwrap())
            );
        } else {
            let text = std::fs::read_to_string(&sectioned_path).unwrap();
            let section_start = text.lines().position(|l| l == "[adjutant]").unwrap();
            let line = text
                .lines()
                .enumerate()
                .skip(section_start)
                .find(|(_, l)| l.starts_with(&format!("{} = ", def.name)))
                .unwrap()
                .0
                + 1;
            assert_eq!(
                entry["source_text"],
                format!("both.conf:{line}"),
                "{}",
                def.name
            );
        }
    }
    let set_twice = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w.as_str().unwrap().contains("is set twice"))
        .count();
    assert_eq!(
        set_twice,
        adjutant_keys.len(),
        "one set-twice warning per adjutant key"
    );
}

#[test]
fn existing_kojid_configs_load_unchanged() {
    let compat = manifest_dir().join("tests/data/config/compat");
    let json = check_config_json(adjutant(&compat).args(["-c", "production-kojid.conf"]));
    assert_eq!(setting(&json, "kojid", "maxjobs")["value"], "6");
    assert_eq!(
        setting(&json, "kojid", "topurl")["value"],
        "https://kojipkgs.example.org/\nhttps://kojipkgs-mirror.example.org/"
    );
    assert_eq!(
        setting(&json, "kojid", "host_principal_format")["value"],
        "compile/%s@EXAMPLE.ORG"
    );
    assert_eq!(setting(&json, "kojid", "retry_interval")["value"], "30");
    assert_eq!(json["rlimits"]["RLIMIT_AS"]["soft"], 17179869184_u64);
    assert_eq!(json["rlimits"]["RLIMIT_NOFILE"]["hard"], 16384);
    let warnings = json["warnings"].to_string();
    assert!(
        warnings.contains("runroot, save_failed_tree cannot be loaded"),
        "{warnings}"
    );

    // The earlier Python adjutant's adjutant_* keys load; its dead keys only warn.
    let json = check_config_json(adjutant(&compat).args(["-c", "python-adjutant-kojid.conf"]));
    assert_eq!(
        setting(&json, "adjutant", "task_image_default")["value"],
        "docker.io/almalinux/9-minimal:latest"
    );
    assert_eq!(
        setting(&json, "adjutant", "monitoring_bind")["value"],
        "0.0.0.0:8080"
    );
    let warnings: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    for old in ["network_enabled", "buildroot_enabled", "podman_socket"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&format!("adjutant_{old} is ignored")))
        );
    }
}

#[test]
fn run_applies_rlimits_like_kojid_before_refusing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kojid.conf"),
        format!("{VALID_HEAD}rlimit_core = 0\n"),
    )
    .unwrap();
    let (code, _, stderr) = run(adjutant(dir.path()).args(["-c", "kojid.conf", "run"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("[WARNING] koji_adjutant: Setting resource limit: RLIMIT_CORE = [0, "),
        "{stderr}"
    );
}
