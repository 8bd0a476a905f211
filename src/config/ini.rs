//! A reader for INI text that follows Python 3's `configparser.RawConfigParser` line by line, as
//! kojid uses it (`strict=True`, no interpolation, `=`/`:` delimiters, full-line `#`/`;`
//! comments, empty lines kept inside values).
//!
//! Neither `rust-ini` nor `configparser` can be configured into Python's grammar: both treat
//! any indented line as a continuation (Python compares indentation with the option's own),
//! keep comment lines inside continued values, split `[a] b]` differently, know nothing of
//! lone `\r` line ends, and report no line numbers for values. Operators point this worker at
//! files kojid already accepts, so exactness wins; the differential tests in
//! `tests/config_ini_differential.rs` hold this module to Python's behaviour.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

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
        Reader::new(self, file).read(text)
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

/// Python's `OPTCRE`: the key runs to the first `=` or `:`.
fn option_line(value: &str) -> Option<(&str, &str)> {
    let split = value.find(['=', ':'])?;
    let key = value[..split].trim_end_matches(py_isspace);
    let val = py_strip(&value[split + 1..]);
    Some((key, val))
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

    fn read(mut self, text: &str) -> Result<(), IniError> {
        let mut added_sections: HashSet<String> = HashSet::new();
        let mut added_options: HashSet<(String, String)> = HashSet::new();
        let mut cursor = Cursor::None;
        let mut section_name = String::new();
        // The option being continued, with its value lines; the key "" (a line like
        // `= x`) is stored but never continued, as in Python.
        let mut current: Option<(String, usize, Vec<String>)> = None;
        let mut indent_level = 0usize;
        let mut bad_lines: Vec<BadLine> = Vec::new();

        for (index, line) in universal_lines(text).into_iter().enumerate() {
            let lineno = index + 1;
            let stripped = py_strip(line);
            let is_comment = stripped.starts_with('#') || stripped.starts_with(';');
            if stripped.is_empty() || is_comment {
                // Python keeps blank (not comment) lines inside a value; trailing ones are
                // stripped when the value is joined.
                if !is_comment
                    && let Some((key, _, lines)) = current.as_mut()
                    && !key.is_empty()
                {
                    lines.push(String::new());
                }
                continue;
            }
            let indent = line.chars().take_while(|c| py_isspace(*c)).count();
            if let Some((key, _, lines)) = current.as_mut()
                && !key.is_empty()
                && !matches!(cursor, Cursor::None)
                && indent > indent_level
            {
                lines.push(stripped.to_string());
                continue;
            }
            indent_level = indent;
            if let Some(header) = section_header(stripped) {
                self.flush(&cursor, current.take());
                if header == DEFAULT_SECTION {
                    cursor = Cursor::Defaults;
                } else {
                    if self.document.section(header).is_some() {
                        if added_sections.contains(header) {
                            return Err(self.error(
                                IniErrorKind::DuplicateSectionError,
                                lineno,
                                line,
                                format!(
                                    "section [{header}] appears twice in this file; merge the two sections into one"
                                ),
                            ));
                        }
                    } else {
                        self.document.sections.push(IniSection {
                            name: header.to_string(),
                            file: self.file.to_path_buf(),
                            line: lineno,
                            entries: Vec::new(),
                        });
                    }
                    added_sections.insert(header.to_string());
                    cursor = Cursor::Section(header.to_string());
                }
                section_name = header.to_string();
                continue;
            }
            if matches!(cursor, Cursor::None) {
                let hint = if line.starts_with('\u{feff}') {
                    "the file starts with a UTF-8 byte order mark, which kojid's parser does not skip; save the file without a BOM"
                } else {
                    "text before the first [section] header; start the file with [kojid]"
                };
                return Err(self.error(
                    IniErrorKind::MissingSectionHeaderError,
                    lineno,
                    line,
                    hint.to_string(),
                ));
            }
            match option_line(stripped) {
                Some((raw_key, value)) => {
                    self.flush(&cursor, current.take());
                    if raw_key.is_empty() {
                        bad_lines.push(BadLine {
                            line: lineno,
                            text: line.to_string(),
                            reason: "option without a name; write `name = value`".to_string(),
                        });
                    }
                    let key = raw_key.to_lowercase();
                    if !added_options.insert((section_name.clone(), key.clone())) {
                        return Err(self.error(
                            IniErrorKind::DuplicateOptionError,
                            lineno,
                            line,
                            format!(
                                "option {key:?} is set twice in section [{section_name}] of this file; keep one of them"
                            ),
                        ));
                    }
                    current = Some((key, lineno, vec![value.to_string()]));
                }
                None => bad_lines.push(BadLine {
                    line: lineno,
                    text: line.to_string(),
                    reason: "line has no `=` or `:` delimiter; write `name = value`, indent it to continue the previous value, or start it with # to comment it out".to_string(),
                }),
            }
        }
        self.flush(&cursor, current.take());
        if bad_lines.is_empty() {
            Ok(())
        } else {
            Err(IniError {
                kind: IniErrorKind::ParsingError,
                file: self.file.to_path_buf(),
                lines: bad_lines,
            })
        }
    }

    fn flush(&mut self, cursor: &Cursor, option: Option<(String, usize, Vec<String>)>) {
        let Some((key, line, lines)) = option else {
            return;
        };
        let value = lines.join("\n").trim_end_matches(py_isspace).to_string();
        let entry = IniEntry {
            key,
            value,
            file: self.file.to_path_buf(),
            line,
        };
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

    #[test]
    fn all_delimiterless_lines_are_reported_together() {
        let err = parse("[s]\nfoo\nbar\n").unwrap_err();
        assert_eq!(err.kind, IniErrorKind::ParsingError);
        assert_eq!(err.lines.iter().map(|l| l.line).collect::<Vec<_>>(), [2, 3]);
    }
}
