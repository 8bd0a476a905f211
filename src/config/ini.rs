//! A reader for INI text with Python 3's `configparser.RawConfigParser` grammar, as kojid uses
//! it (`strict=True`, no interpolation, `=`/`:` delimiters, full-line `#`/`;` comments, empty
//! lines kept inside values). The parsing is done by `rust-ini` (library `ini`); this module is
//! the layer that makes its grammar Python's. `tests/config_ini_differential.rs` holds the
//! result to Python's own reader, on a corpus, byte-level cases and generated files.
//!
//! # What rust-ini does
//!
//! `ini::Ini::load_from_str_opt` with `RUST_INI_OPTIONS` (below) reads every `[name]` header,
//! splits every option line at its first `=` or `:`, trims key and value, joins indented
//! continuation lines to their value with `\n`, keeps blank lines inside a value and drops
//! trailing ones, and groups the options under their sections in file order. It keeps a
//! section or option written twice as two entries, which is what lets the layer report
//! duplicates the way Python does.
//!
//! # What the layer does before (`Layout`)
//!
//! rust-ini's grammar differs from Python's in ways no `ParseOption` changes, so the layer
//! reads the file line by line first and hands rust-ini a re-laid-out text in which every
//! line means to rust-ini what it means to Python. A line map keeps the file line of each
//! header and option, so entries and errors name the line they were written on.
//!
//! - Line ends: Python's text mode ends lines at `\r\n`, `\r` and `\n`. rust-ini is not
//!   consistent about `\r` (inside a continued value each `\r\n` becomes two newlines, and a
//!   lone `\r` on a blank line after a value is an error). The layer splits lines itself and
//!   gives rust-ini `\n` only.
//! - Byte order mark: Python does not skip one, so `\u{feff}[kojid]` is text before the first
//!   header. The layer reports that with a hint about the BOM.
//! - Which line continues a value. Python continues the current option with any line indented
//!   deeper than the option's own line (by Python's idea of whitespace, which includes
//!   U+00A0 and U+001C..U+001F), never right after a header or a nameless `= v` line; rust-ini
//!   continues with any line that starts with a space or tab, whatever the option's indent.
//!   This rule depends on the indent of the option line, so it cannot be given to rust-ini:
//!   the layer owns it, and writes continuation lines with one leading space and every other
//!   line flush left. This is why the layer must recognise headers and option lines too.
//! - Comment lines: Python drops a `#`/`;` line wherever it stands, even inside a continued
//!   value, and indented ones too; rust-ini ends the value there (or, indented, reads the
//!   comment as a key). The layer leaves them out.
//! - Blank lines are given to rust-ini only where Python adds them to a value.
//! - Headers: Python's header runs from the first `[` to the last `]` of the line and the rest
//!   of the line is ignored (`[a] x]` is `a] x`, `[a] junk` is `a`); rust-ini stops at the
//!   first `]` and reads what follows as a key. The layer cuts the line after the last `]`
//!   and escapes the `]`s inside the name.
//! - Backslashes: even with escapes off, rust-ini treats `\` + newline as a line continuation
//!   and lets a backslash hide the next `=`, `:` or `]`; to Python a backslash is an ordinary
//!   character. With escapes on, `\\` is one literal backslash, so the layer doubles every
//!   backslash and rust-ini reads them literally. The same escape writes a key that starts
//!   with `[` (`[a = 1` is the option `[a` to Python; rust-ini would take it for a header).
//! - Lines Python rejects without stopping (no `=` or `:`, or nothing before it) are left out
//!   and collected, all of them, as Python does; rust-ini would glue a line without a
//!   delimiter to the next line's key, and it stops at the first `= v` line. A nameless
//!   option still takes part in Python's duplicate check, so its line is kept for the replay.
//! - Text before the first header: Python raises `MissingSectionHeaderError` at once, while
//!   rust-ini puts it in a "general section". The layer raises the error.
//!
//! # What the layer does after (`replay`)
//!
//! rust-ini's sections and options, zipped with the lines the layout recorded, are replayed
//! in file order the way Python's `_read` treats each header and option:
//!
//! - a section or option written twice in one file is `DuplicateSectionError` /
//!   `DuplicateOptionError` at the second occurrence (repeats across files override);
//! - keys are lower-cased (`optionxform`), section names stay case-sensitive;
//! - `[DEFAULT]` fills the defaults and may appear more than once; its options are still
//!   checked for duplicates;
//! - section names are taken from the header line as Python reads it, because rust-ini trims
//!   them (`[ s ]` is ` s ` to Python); the replay checks that rust-ini's name is that one
//!   trimmed;
//! - Python's `str.strip` also removes U+001C..U+001F, which Rust's `trim` keeps: the
//!   replay finishes trimming the end of keys and the start of values;
//! - rust-ini drops the newlines at the start of a value (`key =` followed by indented
//!   lines), Python keeps them (`"\na\nb"`); the layout counted them, the replay puts them
//!   back.
//!
//! If rust-ini ever read the re-laid-out text differently from the layout (a count or a name
//! that does not match), the file is rejected with a `ParsingError` that says so rather than
//! guessed at.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use ::ini::{Ini, ParseOption};

/// The section whose options Python merges into every other section.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// One `key = value` entry, with the line its key was written on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry {
    /// The key, lower-cased like Python's `optionxform`.
    pub key: String,
    /// The value with continuation lines joined by `\n` and trailing blank lines removed.
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
}

/// A section as read from one or more files, in first-seen order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniSection {
    /// The name exactly as written between the brackets (Python keeps its case and spaces).
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
    pub entries: Vec<IniEntry>,
}

impl IniSection {
    pub fn get(&self, key: &str) -> Option<&IniEntry> {
        self.entries.iter().find(|entry| entry.key == key)
    }

    /// Inserts or replaces, keeping the first position like a Python dict does.
    fn set(&mut self, entry: IniEntry) {
        match self.entries.iter_mut().find(|e| e.key == entry.key) {
            Some(existing) => *existing = entry,
            None => self.entries.push(entry),
        }
    }
}

/// Everything read so far: `[DEFAULT]` and the named sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IniDocument {
    pub defaults: Vec<IniEntry>,
    pub sections: Vec<IniSection>,
}

impl IniDocument {
    pub fn section(&self, name: &str) -> Option<&IniSection> {
        self.sections.iter().find(|s| s.name == name)
    }

    fn section_mut(&mut self, name: &str) -> Option<&mut IniSection> {
        self.sections.iter_mut().find(|s| s.name == name)
    }

    /// Reads one more file's text on top of what is there, as `RawConfigParser.read` does
    /// for each file of a list: later files override earlier ones, and duplicates are only
    /// errors within one file.
    pub fn read_str(&mut self, text: &str, file: &Path) -> Result<(), IniError> {
        let layout = Layout::of(text, file)?;
        let events = layout.events(file)?;
        Reader::new(self, file).replay(&layout, events)
    }
}

/// Parses one file's text into a fresh document.
pub fn parse_str(text: &str, file: &Path) -> Result<IniDocument, IniError> {
    let mut document = IniDocument::default();
    document.read_str(text, file)?;
    Ok(document)
}

/// The kinds of error Python's reader raises; the names match its exception classes so the
/// differential tests can compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IniErrorKind {
    MissingSectionHeaderError,
    DuplicateSectionError,
    DuplicateOptionError,
    ParsingError,
}

/// A line Python would reject, with why and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct IniError {
    pub kind: IniErrorKind,
    pub file: PathBuf,
    /// Every rejected line; Python reports all delimiter-less lines of a file at once.
    pub lines: Vec<BadLine>,
}

impl fmt::Display for IniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, bad) in self.lines.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}: {}: {:?}",
                self.file.display(),
                bad.line,
                bad.reason,
                bad.text
            )?;
        }
        Ok(())
    }
}

/// Python's `str.isspace()`: Unicode White_Space plus the four information separators.
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// Splits like Python's universal-newlines text mode: `\r\n`, `\r` and `\n` all end a line.
fn universal_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\n' => {
                lines.push(&text[start..index]);
                index += 1;
                start = index;
            }
            b'\r' => {
                lines.push(&text[start..index]);
                index += if bytes.get(index + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = index;
            }
            _ => index += 1,
        }
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Python's `SECTCRE`, `\[(?P<header>.+)\]` with `match`: the header runs to the last `]`.
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let close = rest.rfind(']')?;
    if close == 0 {
        return None;
    }
    Some(&rest[..close])
}

/// How rust-ini is asked to read the text the layout writes. Quotes are plain characters to
/// Python; escapes are on only because the layout writes every literal backslash as `\\`
/// (and `\]`, `\[` where a bracket must not end a header or start one); indented lines
/// continue a value; keys are written flush left, so their leading whitespace never matters.
const RUST_INI_OPTIONS: ParseOption = ParseOption {
    enabled_quote: false,
    enabled_escape: true,
    enabled_indented_mutiline_value: true,
    enabled_preserve_key_leading_whitespace: false,
};

/// Writes text so that rust-ini, with escapes on, reads every backslash as itself.
fn escape_backslashes(text: &str) -> String {
    text.replace('\\', "\\\\")
}

/// A `[header]` line: the name exactly as Python reads it.
struct HeaderLine {
    name: String,
    line: usize,
}

/// An option line given to rust-ini.
struct OptionLine {
    line: usize,
    /// How many newlines Python's value starts with and rust-ini's does not: when the key's
    /// own line has no value, one for it and one for each blank line before the first
    /// continuation line.
    leading_newlines: usize,
}

/// The option Python would continue with the next deeper-indented line.
struct Continued {
    /// Index into `Layout::options`.
    index: usize,
    /// While the value is still empty (nothing after the delimiter and no continuation line
    /// yet), the blank lines seen since the key.
    blank_lines_while_empty: Option<usize>,
}

/// The file as Python splits it into lines, and the text written for rust-ini from it.
struct Layout<'t> {
    lines: Vec<&'t str>,
    /// The text rust-ini reads.
    text: String,
    /// For each line of `text`, the file line it was written from.
    line_map: Vec<usize>,
    headers: Vec<HeaderLine>,
    options: Vec<OptionLine>,
    /// Lines `= value`: options without a name, which rust-ini cannot represent but which
    /// still count in Python's duplicate check.
    nameless: Vec<usize>,
    /// Lines Python rejects at the end of the file, in order.
    bad_lines: Vec<BadLine>,
}

impl<'t> Layout<'t> {
    fn of(text: &'t str, file: &Path) -> Result<Self, IniError> {
        let mut layout = Layout {
            lines: universal_lines(text),
            text: String::with_capacity(text.len() + 16),
            line_map: Vec::new(),
            headers: Vec::new(),
            options: Vec::new(),
            nameless: Vec::new(),
            bad_lines: Vec::new(),
        };
        let mut in_section = false;
        let mut current: Option<Continued> = None;
        let mut indent_level = 0usize;
        for index in 0..layout.lines.len() {
            let line = layout.lines[index];
            let lineno = index + 1;
            let stripped = py_strip(line);
            if stripped.starts_with(['#', ';']) {
                continue;
            }
            if stripped.is_empty() {
                // Python adds a blank line to the value being read; the join drops trailing
                // ones, and so does rust-ini.
                if let Some(continued) = current.as_mut() {
                    if let Some(blank) = continued.blank_lines_while_empty.as_mut() {
                        *blank += 1;
                    }
                    layout.push(String::new(), lineno);
                }
                continue;
            }
            let indent = line.chars().take_while(|c| py_isspace(*c)).count();
            if let Some(continued) = current.as_mut()
                && indent > indent_level
            {
                if let Some(blank) = continued.blank_lines_while_empty.take() {
                    layout.options[continued.index].leading_newlines = blank + 1;
                }
                layout.push(format!(" {}", escape_backslashes(stripped)), lineno);
                continue;
            }
            indent_level = indent;
            if let Some(name) = section_header(stripped) {
                // Anything after the last `]` is ignored by Python and left out here.
                let escaped = escape_backslashes(name).replace(']', "\\]");
                layout.push(format!("[{escaped}]"), lineno);
                layout.headers.push(HeaderLine {
                    name: name.to_string(),
                    line: lineno,
                });
                in_section = true;
                current = None;
                continue;
            }
            if !in_section {
                let hint = if line.starts_with('\u{feff}') {
                    "the file starts with a UTF-8 byte order mark, which kojid's parser does not skip; save the file without a BOM"
                } else {
                    "text before the first [section] header; start the file with [kojid]"
                };
                return Err(IniError {
                    kind: IniErrorKind::MissingSectionHeaderError,
                    file: file.to_path_buf(),
                    lines: vec![BadLine {
                        line: lineno,
                        text: line.to_string(),
                        reason: hint.to_string(),
                    }],
                });
            }
            // Python's `OPTCRE`: the key runs to the first `=` or `:`. `stripped` starts
            // with neither whitespace nor a comment character.
            match stripped.find(['=', ':']) {
                None => layout.bad_lines.push(BadLine {
                    line: lineno,
                    text: line.to_string(),
                    reason: "line has no `=` or `:` delimiter; write `name = value`, indent it to continue the previous value, or start it with # to comment it out".to_string(),
                }),
                Some(0) => {
                    layout.bad_lines.push(BadLine {
                        line: lineno,
                        text: line.to_string(),
                        reason: "option without a name; write `name = value`".to_string(),
                    });
                    layout.nameless.push(lineno);
                    // Python never continues a nameless option.
                    current = None;
                }
                Some(split) => {
                    let mut written = escape_backslashes(stripped);
                    if stripped.starts_with('[') {
                        // Not a header to Python (no closing `]`): a key starting with `[`.
                        written.insert(0, '\\');
                    }
                    layout.push(written, lineno);
                    layout.options.push(OptionLine {
                        line: lineno,
                        leading_newlines: 0,
                    });
                    current = Some(Continued {
                        index: layout.options.len() - 1,
                        blank_lines_while_empty: py_strip(&stripped[split + 1..])
                            .is_empty()
                            .then_some(0),
                    });
                }
            }
        }
        Ok(layout)
    }

    fn push(&mut self, line: String, lineno: usize) {
        self.text.push_str(&line);
        self.text.push('\n');
        self.line_map.push(lineno);
    }

    fn text_of(&self, line: usize) -> &str {
        self.lines.get(line.wrapping_sub(1)).copied().unwrap_or("")
    }

    /// An error for a place where rust-ini read the laid-out text other than the layout
    /// meant; it would be a bug here, and the file is refused rather than misread.
    fn disagreement(&self, file: &Path, line: usize, what: &str) -> IniError {
        IniError {
            kind: IniErrorKind::ParsingError,
            file: file.to_path_buf(),
            lines: vec![BadLine {
                line,
                text: self.text_of(line).to_string(),
                reason: format!(
                    "rust-ini read this line differently from Python's grammar ({what}); this is a bug in koji-adjutant, please report it with the file"
                ),
            }],
        }
    }

    /// Runs rust-ini on the laid-out text and pairs what it read with the file lines, in
    /// file order, with the nameless options put back in their place.
    fn events(&self, file: &Path) -> Result<Vec<Event>, IniError> {
        let ini = Ini::load_from_str_opt(&self.text, RUST_INI_OPTIONS).map_err(|err| {
            let line = self
                .line_map
                .get(err.line.wrapping_sub(1))
                .copied()
                .unwrap_or(0);
            self.disagreement(file, line, &err.msg)
        })?;
        let mut headers = self.headers.iter();
        let mut options = self.options.iter();
        let last_line = self.lines.len();
        let mut events = Vec::with_capacity(self.headers.len() + self.options.len());
        for (name, properties) in &ini {
            let Some(name) = name else {
                // rust-ini's "general section" always exists; the layout gives it nothing.
                if let Some((key, _)) = properties.iter().next() {
                    return Err(self.disagreement(
                        file,
                        1,
                        &format!("key {key:?} outside a section"),
                    ));
                }
                continue;
            };
            let Some(header) = headers.next() else {
                return Err(self.disagreement(
                    file,
                    last_line,
                    &format!("an extra section [{name}]"),
                ));
            };
            if name != header.name.trim() {
                return Err(self.disagreement(
                    file,
                    header.line,
                    &format!("section name {name:?}"),
                ));
            }
            events.push(Event::Header {
                name: header.name.clone(),
                line: header.line,
            });
            for (key, value) in properties.iter() {
                let Some(option) = options.next() else {
                    return Err(self.disagreement(
                        file,
                        last_line,
                        &format!("an extra key {key:?}"),
                    ));
                };
                let value = value.trim_start_matches(py_isspace);
                let mut full = "\n".repeat(if value.is_empty() {
                    0
                } else {
                    option.leading_newlines
                });
                full.push_str(value);
                events.push(Event::Option {
                    key: key.trim_end_matches(py_isspace).to_lowercase(),
                    value: full,
                    line: option.line,
                });
            }
        }
        if let Some(header) = headers.next() {
            return Err(self.disagreement(file, header.line, "a missing section"));
        }
        if let Some(option) = options.next() {
            return Err(self.disagreement(file, option.line, "a missing option"));
        }
        events.extend(self.nameless.iter().map(|&line| Event::Nameless { line }));
        events.sort_by_key(Event::line);
        Ok(events)
    }
}

/// What Python's `_read` reacts to, in file order.
enum Event {
    Header {
        name: String,
        line: usize,
    },
    Option {
        key: String,
        value: String,
        line: usize,
    },
    /// `= value`: already a parsing error, but a second one in a section is a duplicate.
    Nameless {
        line: usize,
    },
}

impl Event {
    fn line(&self) -> usize {
        match self {
            Event::Header { line, .. } | Event::Option { line, .. } | Event::Nameless { line } => {
                *line
            }
        }
    }
}

enum Cursor {
    None,
    Defaults,
    Section(String),
}

struct Reader<'a> {
    document: &'a mut IniDocument,
    file: &'a Path,
}

impl<'a> Reader<'a> {
    fn new(document: &'a mut IniDocument, file: &'a Path) -> Self {
        Self { document, file }
    }

    fn error(&self, kind: IniErrorKind, line: usize, text: &str, reason: String) -> IniError {
        IniError {
            kind,
            file: self.file.to_path_buf(),
            lines: vec![BadLine {
                line,
                text: text.to_string(),
                reason,
            }],
        }
    }

    /// Applies one file's events as Python's `_read` does: a section or option seen twice in
    /// this file stops the read at once; the rejected lines are reported together at the end.
    fn replay(mut self, layout: &Layout<'_>, events: Vec<Event>) -> Result<(), IniError> {
        let mut added_sections: HashSet<String> = HashSet::new();
        let mut added_options: HashSet<(String, String)> = HashSet::new();
        let mut cursor = Cursor::None;
        let mut section_name = String::new();
        for event in events {
            match event {
                Event::Header { name, line } => {
                    if name == DEFAULT_SECTION {
                        cursor = Cursor::Defaults;
                    } else {
                        if self.document.section(&name).is_some() {
                            if added_sections.contains(&name) {
                                return Err(self.error(
                                    IniErrorKind::DuplicateSectionError,
                                    line,
                                    layout.text_of(line),
                                    format!(
                                        "section [{name}] appears twice in this file; merge the two sections into one"
                                    ),
                                ));
                            }
                        } else {
                            self.document.sections.push(IniSection {
                                name: name.clone(),
                                file: self.file.to_path_buf(),
                                line,
                                entries: Vec::new(),
                            });
                        }
                        added_sections.insert(name.clone());
                        cursor = Cursor::Section(name.clone());
                    }
                    section_name = name;
                }
                Event::Option { key, value, line } => {
                    self.check_duplicate(&mut added_options, &section_name, &key, line, layout)?;
                    let entry = IniEntry {
                        key,
                        value,
                        file: self.file.to_path_buf(),
                        line,
                    };
                    self.store(&cursor, entry);
                }
                // Python stores it under the key "", but the file is a ParsingError anyway.
                Event::Nameless { line } => {
                    self.check_duplicate(&mut added_options, &section_name, "", line, layout)?;
                }
            }
        }
        if layout.bad_lines.is_empty() {
            Ok(())
        } else {
            Err(IniError {
                kind: IniErrorKind::ParsingError,
                file: self.file.to_path_buf(),
                lines: layout.bad_lines.clone(),
            })
        }
    }

    /// Python's `strict` check: an option may be set once per section name in one file.
    fn check_duplicate(
        &self,
        added_options: &mut HashSet<(String, String)>,
        section_name: &str,
        key: &str,
        line: usize,
        layout: &Layout<'_>,
    ) -> Result<(), IniError> {
        if added_options.insert((section_name.to_string(), key.to_string())) {
            return Ok(());
        }
        Err(self.error(
            IniErrorKind::DuplicateOptionError,
            line,
            layout.text_of(line),
            format!(
                "option {key:?} is set twice in section [{section_name}] of this file; keep one of them"
            ),
        ))
    }

    fn store(&mut self, cursor: &Cursor, entry: IniEntry) {
        match cursor {
            Cursor::None => {}
            Cursor::Defaults => match self
                .document
                .defaults
                .iter_mut()
                .find(|e| e.key == entry.key)
            {
                Some(existing) => *existing = entry,
                None => self.document.defaults.push(entry),
            },
            Cursor::Section(name) => {
                if let Some(section) = self.document.section_mut(name) {
                    section.set(entry);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IniDocument, IniError> {
        parse_str(text, Path::new("test.conf"))
    }

    #[test]
    fn continuation_needs_deeper_indent_than_the_option() {
        let doc = parse("[s]\n  a = 1\n  b = 2\n    more\n").unwrap();
        let section = doc.section("s").unwrap();
        assert_eq!(section.get("a").unwrap().value, "1");
        assert_eq!(section.get("b").unwrap().value, "2\nmore");
    }

    #[test]
    fn blank_lines_inside_a_value_are_kept_but_trailing_ones_dropped() {
        let doc = parse("[s]\na = 1\n\n  x\n\n\nb = 2\n").unwrap();
        assert_eq!(doc.section("s").unwrap().get("a").unwrap().value, "1\n\nx");
    }

    #[test]
    fn lone_carriage_return_ends_a_line() {
        let doc = parse("[s]\ra = 1\rb: 2").unwrap();
        assert_eq!(doc.section("s").unwrap().get("b").unwrap().line, 3);
    }

    #[test]
    fn section_header_runs_to_the_last_bracket() {
        assert_eq!(section_header("[a] x]"), Some("a] x"));
        assert_eq!(section_header("[a] junk"), Some("a"));
        assert_eq!(section_header("[]"), None);
        assert_eq!(section_header("[]]"), Some("]"));
    }

    fn laid_out(text: &str) -> String {
        Layout::of(text, Path::new("test.conf")).unwrap().text
    }

    #[test]
    fn the_layout_marks_continuations_by_the_options_own_indent() {
        // rust-ini would continue `b` with ` c = 3`; Python reads it as an option because it
        // is not indented deeper than `b`.
        assert_eq!(
            laid_out("[s]\n a = 1\n   more\n b = 2\n c = 3\n"),
            "[s]\na = 1\n more\nb = 2\nc = 3\n"
        );
    }

    #[test]
    fn the_layout_drops_comments_and_rejected_lines_and_escapes_for_rust_ini() {
        assert_eq!(
            laid_out("[a] x] junk\nk\\ = v\\\n  # c\n  w\nnope\n[b = 1\n= v\n"),
            "[a\\] x]\nk\\\\ = v\\\\\n w\n\\[b = 1\n"
        );
    }

    #[test]
    fn rust_ini_reads_the_layout_as_python_reads_the_file() {
        let doc = parse("[a] x]\nk\\ = v\\\n  # c\n  w\n[b = 1\n").unwrap();
        let section = doc.section("a] x").unwrap();
        assert_eq!(section.get("k\\").unwrap().value, "v\\\nw");
        assert_eq!(section.get("[b").unwrap().line, 5);
    }

    #[test]
    fn a_value_that_starts_on_the_next_line_keeps_its_leading_newlines() {
        let doc = parse("[s]\na =\n\n  x\n  y\nb =\nc =\n\n").unwrap();
        let section = doc.section("s").unwrap();
        assert_eq!(section.get("a").unwrap().value, "\n\nx\ny");
        assert_eq!(section.get("b").unwrap().value, "");
        assert_eq!(section.get("c").unwrap().value, "");
    }

    #[test]
    fn section_names_keep_their_spaces_and_keys_lose_pythons_separators() {
        let doc = parse("[ s ]\nKey\u{1c} =\u{1f} v\n").unwrap();
        let entry = doc.section(" s ").unwrap().get("key").unwrap();
        assert_eq!(entry.value, "v");
    }

    #[test]
    fn a_second_nameless_option_is_a_duplicate_as_in_python() {
        let err = parse("[s]\n= a\nfoo\n= b\n").unwrap_err();
        assert_eq!(err.kind, IniErrorKind::DuplicateOptionError);
        assert_eq!(err.lines[0].line, 4);
    }

    #[test]
    fn all_delimiterless_lines_are_reported_together() {
        let err = parse("[s]\nfoo\nbar\n").unwrap_err();
        assert_eq!(err.kind, IniErrorKind::ParsingError);
        assert_eq!(err.lines.iter().map(|l| l.line).collect::<Vec<_>>(), [2, 3]);
    }
}
