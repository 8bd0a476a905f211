//! Reads the few rpm header fields the build handlers need (kojid uses python-rpm's
//! `get_rpm_header`). The worker runs no rpm tools outside containers, so this parses the
//! on-disk format directly: a 96-byte lead, the signature header (padded to 8 bytes), then
//! the main header. Every offset read from the file is bounds-checked.

use std::path::{Path, PathBuf};

const LEAD_SIZE: usize = 96;
const HEADER_MAGIC: [u8; 3] = [0x8e, 0xad, 0xe8];
/// Headers above this are not rpms anyone builds; refuse instead of allocating.
const MAX_HEADER_BYTES: usize = 256 * 1024 * 1024;

const TAG_NAME: i32 = 1000;
const TAG_VERSION: i32 = 1001;
const TAG_RELEASE: i32 = 1002;
const TAG_EPOCH: i32 = 1003;
const TAG_DISTRIBUTION: i32 = 1010;
const TAG_VENDOR: i32 = 1011;
const TAG_PACKAGER: i32 = 1015;
const TAG_ARCH: i32 = 1022;
const TAG_SOURCERPM: i32 = 1044;
const TAG_EXCLUDEARCH: i32 = 1059;
const TAG_EXCLUSIVEARCH: i32 = 1061;
const TAG_BUILDARCHS: i32 = 1089;
const TAG_SOURCEPACKAGE: i32 = 1106;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

#[derive(Debug, thiserror::Error)]
pub enum RpmHeaderError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid rpm: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

/// The header fields the build pipeline uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RpmHeader {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub arch: String,
    pub distribution: Option<String>,
    pub vendor: Option<String>,
    pub packager: Option<String>,
    pub build_archs: Vec<String>,
    pub exclusive_arch: Vec<String>,
    pub exclude_arch: Vec<String>,
    /// rpm sets SOURCEPACKAGE in source rpms; binary rpms carry SOURCERPM instead.
    pub is_source: bool,
}

impl RpmHeader {
    pub fn nvr(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.release)
    }

    pub fn read(path: &Path) -> Result<Self, RpmHeaderError> {
        let bytes = std::fs::read(path).map_err(|source| RpmHeaderError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&bytes).map_err(|detail| RpmHeaderError::Invalid {
            path: path.to_owned(),
            detail,
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < LEAD_SIZE || bytes[..4] != [0xed, 0xab, 0xee, 0xdb] {
            return Err("no rpm lead magic (ed ab ee db) at offset 0".to_owned());
        }
        let signature = Section::parse(bytes, LEAD_SIZE)?;
        let padded = signature.end.div_ceil(8) * 8;
        let main = Section::parse(bytes, padded)?;
        let string = |tag| main.string(tag);
        let name = string(TAG_NAME)?.ok_or("the header has no NAME")?;
        let version = string(TAG_VERSION)?.ok_or("the header has no VERSION")?;
        let release = string(TAG_RELEASE)?.ok_or("the header has no RELEASE")?;
        let source_rpm = string(TAG_SOURCERPM)?;
        Ok(Self {
            name,
            version,
            release,
            epoch: main.int32(TAG_EPOCH)?.map(i64::from),
            arch: string(TAG_ARCH)?.unwrap_or_default(),
            distribution: string(TAG_DISTRIBUTION)?,
            vendor: string(TAG_VENDOR)?,
            packager: string(TAG_PACKAGER)?,
            build_archs: main.strings(TAG_BUILDARCHS)?,
            exclusive_arch: main.strings(TAG_EXCLUSIVEARCH)?,
            exclude_arch: main.strings(TAG_EXCLUDEARCH)?,
            is_source: main.has(TAG_SOURCEPACKAGE) || source_rpm.is_none(),
        })
    }
}

#[derive(Clone, Copy)]
struct Entry {
    tag: i32,
    kind: u32,
    offset: usize,
    count: usize,
}

struct Section<'a> {
    entries: Vec<Entry>,
    store: &'a [u8],
    end: usize,
}

fn be_u32(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| format!("truncated at byte {at}"))
}

impl<'a> Section<'a> {
    fn parse(bytes: &'a [u8], start: usize) -> Result<Self, String> {
        if bytes.get(start..start + 3) != Some(&HEADER_MAGIC[..]) {
            return Err(format!("no header magic (8e ad e8) at byte {start}"));
        }
        let count = be_u32(bytes, start + 8)? as usize;
        let store_len = be_u32(bytes, start + 12)? as usize;
        let index_start = start + 16;
        let store_start = count
            .checked_mul(16)
            .and_then(|n| n.checked_add(index_start))
            .filter(|n| n - index_start <= MAX_HEADER_BYTES && store_len <= MAX_HEADER_BYTES)
            .ok_or("the header index is implausibly large")?;
        let end = store_start + store_len;
        let store = bytes
            .get(store_start..end)
            .ok_or_else(|| format!("the header data ends after the file (byte {end})"))?;
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let at = index_start + i * 16;
            entries.push(Entry {
                tag: be_u32(bytes, at)? as i32,
                kind: be_u32(bytes, at + 4)?,
                offset: be_u32(bytes, at + 8)? as usize,
                count: be_u32(bytes, at + 12)? as usize,
            });
        }
        Ok(Self {
            entries,
            store,
            end,
        })
    }

    fn find(&self, tag: i32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    fn has(&self, tag: i32) -> bool {
        self.find(tag).is_some()
    }

    fn c_strings(&self, entry: &Entry) -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(entry.count);
        let mut at = entry.offset;
        for _ in 0..entry.count {
            let rest = self
                .store
                .get(at..)
                .ok_or_else(|| format!("tag {} points past the header data", entry.tag))?;
            let len = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| format!("tag {} has an unterminated string", entry.tag))?;
            out.push(String::from_utf8_lossy(&rest[..len]).into_owned());
            at += len + 1;
        }
        Ok(out)
    }

    fn string(&self, tag: i32) -> Result<Option<String>, String> {
        match self.find(tag) {
            None => Ok(None),
            Some(entry) if matches!(entry.kind, TYPE_STRING | TYPE_I18NSTRING) => {
                let one = Entry { count: 1, ..*entry };
                Ok(self.c_strings(&one)?.into_iter().next())
            }
            Some(entry) => Err(format!("tag {tag} has type {}, not a string", entry.kind)),
        }
    }

    fn strings(&self, tag: i32) -> Result<Vec<String>, String> {
        match self.find(tag) {
            None => Ok(Vec::new()),
            Some(entry) if entry.kind == TYPE_STRING_ARRAY => self.c_strings(entry),
            Some(entry) if entry.kind == TYPE_STRING => Ok(self.string(tag)?.into_iter().collect()),
            Some(entry) => Err(format!(
                "tag {tag} has type {}, not a string array",
                entry.kind
            )),
        }
    }

    fn int32(&self, tag: i32) -> Result<Option<i32>, String> {
        match self.find(tag) {
            None => Ok(None),
            Some(entry) if entry.kind == TYPE_INT32 => {
                Ok(Some(be_u32(self.store, entry.offset)? as i32))
            }
            Some(entry) => Err(format!("tag {tag} has type {}, not int32", entry.kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a header section from (tag, type, data, count) entries.
    fn section(entries: &[(i32, u32, Vec<u8>, u32)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut store = Vec::new();
        for (tag, kind, data, count) in entries {
            if *kind == TYPE_INT32 {
                while store.len() % 4 != 0 {
                    store.push(0);
                }
            }
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&kind.to_be_bytes());
            index.extend_from_slice(&(store.len() as u32).to_be_bytes());
            index.extend_from_slice(&count.to_be_bytes());
            store.extend_from_slice(data);
        }
        let mut out = vec![0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(store.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(store);
        out
    }

    fn s(text: &str) -> Vec<u8> {
        let mut v = text.as_bytes().to_vec();
        v.push(0);
        v
    }

    fn rpm(main: &[(i32, u32, Vec<u8>, u32)]) -> Vec<u8> {
        let mut bytes = vec![0xed, 0xab, 0xee, 0xdb];
        bytes.resize(LEAD_SIZE, 0);
        let sig = section(&[(1000, TYPE_INT32, 7u32.to_be_bytes().to_vec(), 1)]);
        bytes.extend(sig);
        while bytes.len() % 8 != 0 {
            bytes.push(0);
        }
        bytes.extend(section(main));
        bytes
    }

    #[test]
    fn reads_a_source_rpm_header() {
        let mut archs = s("x86_64");
        archs.extend(s("aarch64"));
        let bytes = rpm(&[
            (TAG_NAME, TYPE_STRING, s("hello"), 1),
            (TAG_VERSION, TYPE_STRING, s("1.0"), 1),
            (TAG_RELEASE, TYPE_STRING, s("1"), 1),
            (TAG_EPOCH, TYPE_INT32, 2u32.to_be_bytes().to_vec(), 1),
            (TAG_VENDOR, TYPE_STRING, s("Koji"), 1),
            (TAG_EXCLUSIVEARCH, TYPE_STRING_ARRAY, archs, 2),
            (
                TAG_SOURCEPACKAGE,
                TYPE_INT32,
                1u32.to_be_bytes().to_vec(),
                1,
            ),
        ]);
        let header = RpmHeader::parse(&bytes).unwrap();
        assert_eq!(header.nvr(), "hello-1.0-1");
        assert_eq!(header.epoch, Some(2));
        assert_eq!(header.vendor.as_deref(), Some("Koji"));
        assert_eq!(header.packager, None);
        assert_eq!(header.exclusive_arch, ["x86_64", "aarch64"]);
        assert!(header.is_source);
    }

    #[test]
    fn binary_rpms_are_not_source() {
        let bytes = rpm(&[
            (TAG_NAME, TYPE_STRING, s("hello"), 1),
            (TAG_VERSION, TYPE_STRING, s("1.0"), 1),
            (TAG_RELEASE, TYPE_STRING, s("1"), 1),
            (TAG_SOURCERPM, TYPE_STRING, s("hello-1.0-1.src.rpm"), 1),
        ]);
        assert!(!RpmHeader::parse(&bytes).unwrap().is_source);
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        assert!(RpmHeader::parse(b"not an rpm").is_err());
        let mut bytes = rpm(&[(TAG_NAME, TYPE_STRING, s("x"), 1)]);
        assert!(RpmHeader::parse(&bytes).unwrap_err().contains("VERSION"));
        bytes.truncate(bytes.len() - 1);
        assert!(RpmHeader::parse(&bytes).is_err());
        // An index entry pointing far past the store.
        let bad = rpm(&[(TAG_NAME, TYPE_STRING_ARRAY, s("x"), 1_000_000)]);
        assert!(RpmHeader::parse(&bad).is_err());
    }
}
