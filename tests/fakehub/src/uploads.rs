//! File uploads with kojihub's rules: `get_upload_path` (§3.1), `handle_upload` (rawUpload,
//! §3.2), `uploadFile` (§3.3), `checkUpload`, `listTaskOutput`, `downloadTaskOutput` (§3.4).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use dxr::Value;
use md5::Digest as _;

use crate::args::BoundArgs;
use crate::auth::{Caller, RequestMeta};
use crate::faults::HubFault;
use crate::state::HubState;
use crate::xmlrpc::{as_int, vint, vstr};

/// `<topdir>/work/tasks/<id % 10000>/<id>`, relative to the work dir.
pub fn task_rel_dir(task_id: i64) -> String {
    format!("tasks/{}/{task_id}", task_id % 10000)
}

/// The checksum kinds `fileverify`/`verify` accept.
enum Verifier {
    None,
    Adler32(adler2::Adler32),
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
}

impl Verifier {
    fn new(kind: &str) -> Result<Self, HubFault> {
        match kind {
            "" => Ok(Self::None),
            "adler32" => Ok(Self::Adler32(adler2::Adler32::new())),
            "md5" => Ok(Self::Md5(md5::Md5::new())),
            "sha256" => Ok(Self::Sha256(sha2::Sha256::new())),
            other => Err(HubFault::generic(format!(
                "Unsupported verify type: {other}"
            ))),
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            Self::None => {}
            Self::Adler32(sum) => sum.write_slice(data),
            Self::Md5(sum) => sum.update(data),
            Self::Sha256(sum) => sum.update(data),
        }
    }
    fn hexdigest(self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Adler32(sum) => Some(format!("{:08x}", sum.checksum())),
            Self::Md5(sum) => Some(hex(&sum.finalize())),
            Self::Sha256(sum) => Some(hex(&sum.finalize())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `os.path.normpath` for relative paths, keeping leading `..` so the caller can refuse it.
fn normpath(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn io_fault(context: &str, err: &std::io::Error) -> HubFault {
    HubFault::plain(format!("<class 'OSError'>: {context}: {err}"))
}

/// Holds an upload file's lock for the length of one write; kojihub uses a non-blocking
/// `lockf`, so a second writer gets `LockError` instead of waiting.
pub struct UploadLock<'a> {
    state: &'a std::sync::Mutex<HubState>,
    path: PathBuf,
}

impl Drop for UploadLock<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.lock()
            && let Some(count) = state.locked_uploads.get_mut(&self.path)
        {
            *count -= 1;
            if *count == 0 {
                state.locked_uploads.remove(&self.path);
            }
        }
    }
}

pub fn lock_upload<'a>(
    state: &'a std::sync::Mutex<HubState>,
    path: &Path,
) -> Result<UploadLock<'a>, HubFault> {
    let mut guard = state
        .lock()
        .map_err(|_| HubFault::plain("hub state lock poisoned"))?;
    if guard.locked_uploads.contains_key(path) {
        return Err(HubFault::lock(
            "[Errno 11] Resource temporarily unavailable",
        ));
    }
    guard.locked_uploads.insert(path.to_owned(), 1);
    Ok(UploadLock {
        state,
        path: path.to_owned(),
    })
}

impl HubState {
    pub fn work_dir(&self) -> PathBuf {
        self.topdir.join("work")
    }

    /// `get_upload_path(reldir, name, create, volume)`.
    pub fn upload_path(
        &self,
        caller: &Caller,
        reldir: &str,
        name: &str,
        create: bool,
        volume: Option<&str>,
    ) -> Result<PathBuf, HubFault> {
        if name.contains('/') || name.starts_with('.') || name.is_empty() || name.contains('\0') {
            return Err(HubFault::generic(format!(
                "Invalid upload filename: {name}"
            )));
        }
        let norm = normpath(reldir);
        if reldir.is_empty()
            || norm.starts_with("..")
            || norm.starts_with('/')
            || reldir.contains('\0')
        {
            return Err(HubFault::generic(format!(
                "Invalid upload directory: {reldir}"
            )));
        }
        if let Some(volume) = volume
            && volume != "DEFAULT"
        {
            return Err(HubFault::generic(format!("No such volume: {volume}")));
        }
        let parts: Vec<&str> = norm.split('/').collect();
        let mut check_user = true;
        if create && parts.first() == Some(&"tasks") {
            let task_id = parts
                .get(2)
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(|| {
                    HubFault::generic(format!("Invalid task upload directory: {reldir}"))
                })?;
            let host_id = self.verify_host(caller)?;
            self.assert_task_host(task_id, host_id)?;
            check_user = false;
        }
        let udir = self.work_dir().join(&norm);
        if create {
            std::fs::create_dir_all(&udir).map_err(|e| io_fault("cannot create upload dir", &e))?;
            if check_user {
                let user_id = Self::assert_login(caller)?;
                let marker = udir.join(".user");
                match std::fs::read_to_string(&marker) {
                    Ok(owner) if owner.trim() != user_id.to_string() => {
                        return Err(HubFault::generic(format!(
                            "Invalid upload directory, not owner: {reldir}"
                        )));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        std::fs::write(&marker, user_id.to_string())
                            .map_err(|e| io_fault("cannot write .user marker", &e))?;
                    }
                }
            }
        }
        Ok(udir.join(name))
    }

    pub fn check_upload(&self, caller: &Caller, args: &BoundArgs) -> Result<Value, HubFault> {
        let path = args.string("path")?;
        let name = args.string("name")?;
        let volume = args.opt_string("volume")?;
        let file = self.upload_path(caller, &path, &name, false, volume.as_deref())?;
        let Ok(meta) = std::fs::symlink_metadata(&file) else {
            return Ok(Value::Nil);
        };
        if !meta.is_file() {
            return Err(HubFault::generic(format!(
                "Not a regular file: {}",
                file.display()
            )));
        }
        if self.locked_uploads.contains_key(&file) {
            return Err(HubFault::lock(
                "[Errno 11] Resource temporarily unavailable",
            ));
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        let size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
        let mut info = BTreeMap::new();
        info.insert("size".to_owned(), vint(size));
        info.insert("mtime".to_owned(), Value::Double(mtime));
        if let Some(verify) = args.opt_string("verify")? {
            let mut verifier = Verifier::new(&verify)?;
            let mut handle =
                std::fs::File::open(&file).map_err(|e| io_fault("cannot open upload", &e))?;
            let mut offset = 0;
            if let Some(tail) = args.opt_int("tail")? {
                if tail < 0 {
                    return Err(HubFault::generic(format!("invalid tail value: {tail}")));
                }
                offset = (size - tail).max(0);
                handle
                    .seek(SeekFrom::Start(u64::try_from(offset).unwrap_or(0)))
                    .map_err(|e| io_fault("cannot seek upload", &e))?;
            }
            let mut data = Vec::new();
            handle
                .read_to_end(&mut data)
                .map_err(|e| io_fault("cannot read upload", &e))?;
            verifier.update(&data);
            info.insert("sumlength".to_owned(), vint(size - offset));
            info.insert(
                "hexdigest".to_owned(),
                vstr(verifier.hexdigest().unwrap_or_default()),
            );
        }
        Ok(Value::Struct(info))
    }

    pub fn list_task_output(&self, args: &BoundArgs) -> Result<Value, HubFault> {
        let task_id = args.int("taskID")?;
        let stat = args.flag("stat", false);
        let all_volumes = args.flag("all_volumes", false);
        if args.flag("strict", false) {
            self.task(task_id)?;
        }
        let base = self.work_dir().join(task_rel_dir(task_id));
        let mut files = Vec::new();
        collect_files(&base, &base, &mut files);
        files.sort_by(|a, b| a.0.cmp(&b.0));
        if !stat && !all_volumes {
            return Ok(Value::Array(
                files.into_iter().map(|(rel, _)| vstr(rel)).collect(),
            ));
        }
        let mut out = BTreeMap::new();
        for (rel, meta) in files {
            let ts = |t: std::io::Result<std::time::SystemTime>| {
                t.ok()
                    .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0.0, |d| d.as_secs_f64())
            };
            // kojihub sends st_size as a string so sizes over 2 GiB survive XML-RPC.
            let stat_value = crate::xmlrpc::vstruct([
                ("st_atime", Value::Double(ts(meta.accessed()))),
                ("st_ctime", Value::Double(ts(meta.modified()))),
                ("st_mtime", Value::Double(ts(meta.modified()))),
                ("st_size", vstr(meta.len().to_string())),
            ]);
            let value = match (stat, all_volumes) {
                (true, true) => crate::xmlrpc::vstruct([("DEFAULT", stat_value)]),
                (true, false) => stat_value,
                (false, _) => Value::Array(vec![vstr("DEFAULT")]),
            };
            out.insert(rel, value);
        }
        Ok(Value::Struct(out))
    }

    pub fn download_task_output(&self, args: &BoundArgs) -> Result<Value, HubFault> {
        let task_id = args.int("taskID")?;
        let name = args.string("fileName")?;
        let offset = match args.get("offset") {
            Some(Value::String(text)) => text
                .parse::<i64>()
                .map_err(|_| HubFault::parameter("offset must be an int"))?,
            Some(other) => as_int(other).unwrap_or(0),
            None => 0,
        };
        let size = match args.get("size") {
            Some(Value::String(text)) => text
                .parse::<i64>()
                .map_err(|_| HubFault::parameter("size must be an int"))?,
            Some(other) => as_int(other).unwrap_or(-1),
            None => -1,
        };
        if name.contains("..") {
            return Err(HubFault::generic(format!("Invalid file name: {name}")));
        }
        let path = self.work_dir().join(task_rel_dir(task_id)).join(&name);
        if !path.is_file() {
            return Err(HubFault::generic(format!(
                "no file \"{name}\" output by task {task_id}"
            )));
        }
        let data = std::fs::read(&path).map_err(|e| io_fault("cannot read task output", &e))?;
        let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let start = match offset {
            o if o > 0 => o.min(len),
            o if o < 0 => (len + o).max(0),
            _ => 0,
        };
        let end = if size < 0 {
            len
        } else {
            (start + size).min(len)
        };
        let slice = data
            .get(usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0))
            .unwrap_or(&[]);
        Ok(vstr(
            base64::engine::general_purpose::STANDARD.encode(slice),
        ))
    }
}

fn collect_files(base: &Path, dir: &Path, out: &mut Vec<(String, std::fs::Metadata)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            collect_files(base, &path, out);
        } else if meta.is_file()
            && let Ok(rel) = path.strip_prefix(base)
        {
            let rel: Vec<String> = rel
                .components()
                .filter_map(|c| match c {
                    Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
            let rel = rel.join("/");
            if rel != ".user" {
                out.push((rel, meta));
            }
        }
    }
}

/// `handle_upload`: one rawUpload chunk. Checks happen under the state lock; the write happens
/// outside it, holding only the file's upload lock.
pub fn raw_upload(
    state: &std::sync::Mutex<HubState>,
    caller: &Caller,
    meta: &RequestMeta,
    body: &[u8],
) -> Result<Value, HubFault> {
    if !caller.logged_in {
        return Err(HubFault::not_allowed(
            "you must be logged-in to upload a file",
        ));
    }
    let name = meta
        .query_param("filename")
        .ok_or_else(|| HubFault::plain("<class 'KeyError'>: 'filename'"))?
        .to_owned();
    let reldir = meta.query_param("filepath").unwrap_or("").to_owned();
    let verify = meta.query_param("fileverify").unwrap_or("").to_owned();
    let overwrite = !meta.query_param("overwrite").unwrap_or("").is_empty();
    let offset_text = meta.query_param("offset").unwrap_or("0");
    let offset: i64 = offset_text.parse().map_err(|_| {
        HubFault::plain(format!(
            "<class 'ValueError'>: invalid literal for int() with base 10: '{offset_text}'"
        ))
    })?;
    let volume = meta.query_param("volume").unwrap_or("DEFAULT").to_owned();
    let path = {
        let guard = state
            .lock()
            .map_err(|_| HubFault::plain("hub state lock poisoned"))?;
        guard.upload_path(caller, &reldir, &name, true, Some(&volume))?
    };
    if let Ok(existing) = std::fs::symlink_metadata(&path) {
        if !existing.is_file() {
            return Err(HubFault::generic(format!(
                "destination not a file: {}",
                path.display()
            )));
        }
        if offset == 0 && !overwrite {
            return Err(HubFault::generic(format!(
                "upload path exists: {}",
                path.display()
            )));
        }
    }
    let mut verifier = Verifier::new(&verify)?;
    let _lock = lock_upload(state, &path)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_fault("cannot open upload", &e))?;
    let actual_offset = if offset == -1 {
        file.seek(SeekFrom::End(0))
            .map_err(|e| io_fault("cannot seek upload", &e))?
    } else {
        let start = u64::try_from(offset)
            .map_err(|_| HubFault::generic(format!("Invalid offset: {offset}")))?;
        if overwrite {
            file.set_len(start)
                .map_err(|e| io_fault("cannot truncate upload", &e))?;
        }
        file.seek(SeekFrom::Start(start))
            .map_err(|e| io_fault("cannot seek upload", &e))?
    };
    file.write_all(body)
        .map_err(|e| io_fault("cannot write upload", &e))?;
    verifier.update(body);
    let written = u64::try_from(body.len()).unwrap_or(u64::MAX);
    if !overwrite {
        let len = file
            .metadata()
            .map_err(|e| io_fault("cannot stat upload", &e))?
            .len();
        if len != actual_offset + written {
            return Err(HubFault::generic(format!(
                "Incorrect upload length for {}",
                path.display()
            )));
        }
    }
    let mut reply = BTreeMap::new();
    reply.insert(
        "size".to_owned(),
        vint(i64::try_from(written).unwrap_or(i64::MAX)),
    );
    reply.insert("fileverify".to_owned(), vstr(verify));
    reply.insert(
        "offset".to_owned(),
        vint(i64::try_from(actual_offset).unwrap_or(i64::MAX)),
    );
    if let Some(digest) = verifier.hexdigest() {
        reply.insert("hexdigest".to_owned(), vstr(digest));
    }
    Ok(Value::Struct(reply))
}

fn decode_int_arg(value: Option<&Value>, name: &str) -> Result<Option<i64>, HubFault> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => {
            text.trim().parse().map(Some).map_err(|_| {
                HubFault::parameter(format!("{name} must be an int or a decimal string"))
            })
        }
        Some(other) => as_int(other).map(Some).ok_or_else(|| {
            HubFault::parameter(format!("{name} must be an int or a decimal string"))
        }),
    }
}

/// The legacy `uploadFile(path, name, size, md5sum, offset, data, volume=None, checksum=None)`.
pub fn upload_file(
    state: &std::sync::Mutex<HubState>,
    caller: &Caller,
    args: &BoundArgs,
) -> Result<Value, HubFault> {
    HubState::assert_login(caller)?;
    let reldir = args.string("path")?;
    let name = args.string("name")?;
    let data = args.string("data")?;
    let contents = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| HubFault::plain(format!("<class 'binascii.Error'>: {e}")))?;
    let offset = decode_int_arg(args.get("offset"), "offset")?.unwrap_or(0);
    let size = decode_int_arg(args.get("size"), "size")?;
    let (verify, digest) = match args.get("md5sum") {
        None => (String::new(), None),
        Some(Value::String(md5)) => ("md5".to_owned(), Some(md5.clone())),
        Some(Value::Array(pair)) => match (pair.first(), pair.get(1)) {
            (Some(Value::String(kind)), Some(Value::String(hexdigest))) => {
                (kind.clone(), Some(hexdigest.clone()))
            }
            _ => {
                return Err(HubFault::parameter(
                    "checksum must be a [type, hexdigest] pair",
                ));
            }
        },
        Some(_) => {
            return Err(HubFault::parameter(
                "checksum must be a string or a [type, hexdigest] pair",
            ));
        }
    };
    let digest_of = |bytes: &[u8]| -> Result<Option<String>, HubFault> {
        let mut v = Verifier::new(&verify)?;
        v.update(bytes);
        Ok(v.hexdigest())
    };
    let content_len = i64::try_from(contents.len()).unwrap_or(i64::MAX);
    if offset != -1 {
        if size.is_some_and(|s| s != content_len) {
            return Ok(Value::Boolean(false));
        }
        if digest.is_some() && digest_of(&contents)? != digest {
            return Ok(Value::Boolean(false));
        }
    }
    let volume = args.opt_string("volume")?;
    let path = {
        let guard = state
            .lock()
            .map_err(|_| HubFault::plain("hub state lock poisoned"))?;
        guard.upload_path(caller, &reldir, &name, true, volume.as_deref())?
    };
    if let Ok(existing) = std::fs::symlink_metadata(&path) {
        if !existing.is_file() {
            return Err(HubFault::generic(format!(
                "destination not a file: {}",
                path.display()
            )));
        }
        if offset == 0 && !name.ends_with(".log") {
            return Err(HubFault::generic(format!(
                "file already exists: {}",
                path.display()
            )));
        }
    }
    let _lock = lock_upload(state, &path)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_fault("cannot open upload", &e))?;
    if offset == 0 || (offset == -1 && size == Some(content_len)) {
        file.set_len(0)
            .map_err(|e| io_fault("cannot truncate upload", &e))?;
    }
    if offset == -1 {
        file.seek(SeekFrom::End(0))
            .map_err(|e| io_fault("cannot seek upload", &e))?;
    } else {
        file.seek(SeekFrom::Start(u64::try_from(offset).unwrap_or(0)))
            .map_err(|e| io_fault("cannot seek upload", &e))?;
    }
    file.write_all(&contents)
        .map_err(|e| io_fault("cannot write upload", &e))?;
    if offset == -1 {
        if let Some(size) = size {
            file.set_len(u64::try_from(size).unwrap_or(0))
                .map_err(|e| io_fault("cannot truncate upload", &e))?;
        }
        if digest.is_some() {
            drop(file);
            let whole = std::fs::read(&path).map_err(|e| io_fault("cannot read upload", &e))?;
            if digest_of(&whole)? != digest {
                return Ok(Value::Boolean(false));
            }
        }
    }
    Ok(Value::Boolean(true))
}
