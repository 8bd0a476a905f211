//! Renders `docs/config-reference.md` from the key tables, so the reference cannot drift from
//! the parser. A test fails when the committed file differs; regenerate it with
//! `koji-adjutant config-reference > docs/config-reference.md`.

use std::fmt::Write;

use super::keys::{ADJUTANT_KEYS, KOJID_KEYS, KeyDef, LEGACY_ADJUTANT_KEYS};
use super::types::RLIMIT_NAMES;

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn default_cell(def: &KeyDef) -> String {
    match def.default {
        Some("") => "(empty)".to_string(),
        Some(value) => format!("`{}`", cell(value)),
        None if def.required() => "**required**".to_string(),
        None => "(unset)".to_string(),
    }
}

fn table(out: &mut String, defs: &[KeyDef], with_env: bool) {
    if with_env {
        out.push_str("| key | environment variable | type | default | meaning |\n");
        out.push_str("|---|---|---|---|---|\n");
    } else {
        out.push_str("| key | type | default | meaning | in containers |\n");
        out.push_str("|---|---|---|---|---|\n");
    }
    for def in defs {
        let secret = if def.secret {
            " Secret: redacted by `check-config`."
        } else {
            ""
        };
        if with_env {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} | {} | {}{} |",
                def.name,
                def.env_var().unwrap_or_default(),
                cell(def.type_name),
                default_cell(def),
                cell(&def.doc_text()),
                secret
            );
        } else {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {}{} | {} |",
                def.name,
                cell(def.type_name),
                default_cell(def),
                cell(&def.doc_text()),
                secret,
                cell(def.container_note)
            );
        }
    }
}

/// The whole reference page.
pub fn render() -> String {
    let mut out = String::new();
    out.push_str("# Configuration reference\n\n");
    out.push_str(
        "<!-- Generated from src/config/keys.rs by `koji-adjutant config-reference`; do not edit. -->\n\n",
    );
    out.push_str(
        "How the file is read, the precedence rules and examples are in \
         [configuration.md](configuration.md).\n\n",
    );
    out.push_str("## `[kojid]`\n\n");
    out.push_str(
        "The keys of upstream kojid, with kojid's types and defaults. Integers are read like \
         Python's `int()`; booleans accept `1 yes true on 0 no false off` in any case.\n\n",
    );
    table(&mut out, KOJID_KEYS, false);
    out.push_str("\n### `RLIMIT_*`\n\n");
    let _ = writeln!(
        out,
        "`SOFT [HARD]` resource limits applied to the worker process at start-up, as kojid \
         does; the key is case-insensitive. Known names: {}.\n",
        RLIMIT_NAMES
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str("## `[adjutant]`\n\n");
    out.push_str(
        "Each key can be written as `key` in `[adjutant]`, as `adjutant_key` in `[kojid]`, or \
         as the environment variable shown. Precedence: command-line flag > environment > \
         `[adjutant]` > `adjutant_*` in `[kojid]` > default.\n\n",
    );
    table(&mut out, ADJUTANT_KEYS, true);
    out.push_str("\n### Keys of the earlier Python adjutant\n\n");
    out.push_str("Accepted with a warning and otherwise ignored:\n\n");
    for (name, replacement) in LEGACY_ADJUTANT_KEYS {
        let _ = writeln!(out, "- `{name}`: {replacement}.");
    }
    out
}
