//! A scripted HTTP/1.1 responder on 127.0.0.1 for the hub client tests: it answers each
//! request with the next scripted step (XML-RPC reply, fault, HTTP error, dropped connection)
//! and records what it received, with the (virtual) time it arrived.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use dxr::Value;
use koji_adjutant::hub::xmlrpc::decode_call;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub enum Step {
    /// 200 with this methodResponse body.
    Xml(String),
    /// A fault document.
    Fault(i32, String),
    /// An HTTP error status with a short text body.
    Status(u16),
    /// Read the request, then close the connection without answering.
    Drop,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub http_method: String,
    pub path_and_query: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn callnum(&self) -> Option<u64> {
        self.header("koji-session-callnum")
            .and_then(|value| value.parse().ok())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<methodName>` of an XML-RPC request, or "rawUpload" for octet-stream posts.
    pub fn method(&self) -> String {
        if self.header("content-type") == Some("application/octet-stream") {
            return "rawUpload".to_owned();
        }
        let text = self.body_text();
        text.split("<methodName>")
            .nth(1)
            .and_then(|rest| rest.split("</methodName>").next())
            .unwrap_or_default()
            .to_owned()
    }
}

pub fn response_xml(value_xml: &str) -> String {
    format!(
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n{value_xml}\n</param>\n</params>\n</methodResponse>\n"
    )
}

pub fn ok(value_xml: &str) -> Step {
    Step::Xml(response_xml(value_xml))
}

pub fn nil() -> Step {
    ok("<value><nil/></value>")
}

pub fn session(id: i64, key: &str, header_auth: bool) -> Step {
    let auth = if header_auth {
        "<member><name>header-auth</name><value><boolean>1</boolean></value></member>"
    } else {
        ""
    };
    ok(&format!(
        "<value><struct><member><name>session-id</name><value><int>{id}</int></value></member><member><name>session-key</name><value><string>{key}</string></value></member>{auth}</struct></value>"
    ))
}

pub fn fault(code: i32, message: &str) -> Step {
    Step::Fault(code, message.to_owned())
}

fn fault_xml(code: i32, message: &str) -> String {
    format!(
        "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n<value><int>{code}</int></value>\n</member>\n<member>\n<name>faultString</name>\n<value><string>{message}</string></value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n"
    )
}

#[derive(Clone)]
pub struct Responder {
    pub addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Step>>>,
    log: Arc<Mutex<Vec<Recorded>>>,
    /// Sent on every reply when set, like hubs ≥1.35 do.
    pub koji_version: Arc<Mutex<Option<String>>>,
    /// Uploaded files by `dir/name`, written with kojihub's rawUpload/uploadFile rules.
    pub files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Statuses to answer the next uploads with instead of storing them.
    pub upload_failures: Arc<Mutex<VecDeque<u16>>>,
    /// How many of the next rawUpload replies carry a wrong digest.
    pub corrupt_uploads: Arc<Mutex<u32>>,
    /// Files served to GET by URL path, and statuses to answer the next GETs with.
    pub downloads: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    pub get_failures: Arc<Mutex<VecDeque<u16>>>,
    /// Announce more bytes than sent on the next GET, then close.
    pub truncate_next_get: Arc<Mutex<bool>>,
    /// Answer checkUpload/uploadFile from the script instead of the upload store.
    pub scripted_uploads: Arc<Mutex<bool>>,
    /// Behave like a hub before 1.7.1, which has no checkUpload.
    pub without_check_upload: Arc<Mutex<bool>>,
}

impl Responder {
    pub async fn start(script: Vec<Step>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let responder = Self {
            addr: listener.local_addr().unwrap(),
            script: Arc::new(Mutex::new(script.into())),
            log: Arc::new(Mutex::new(Vec::new())),
            koji_version: Arc::new(Mutex::new(Some("1.35.3".to_owned()))),
            files: Arc::default(),
            upload_failures: Arc::default(),
            corrupt_uploads: Arc::default(),
            downloads: Arc::default(),
            get_failures: Arc::default(),
            truncate_next_get: Arc::default(),
            scripted_uploads: Arc::default(),
            without_check_upload: Arc::default(),
        };
        let serving = responder.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = serving.clone();
                tokio::spawn(async move { connection.serve(stream).await });
            }
        });
        responder
    }

    pub fn url(&self) -> String {
        format!("http://{}/kojihub", self.addr)
    }

    pub fn push(&self, steps: impl IntoIterator<Item = Step>) {
        self.script.lock().unwrap().extend(steps);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn methods(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::method).collect()
    }

    pub fn remaining_steps(&self) -> usize {
        self.script.lock().unwrap().len()
    }

    async fn serve(self, mut stream: TcpStream) {
        let mut buffer = Vec::new();
        loop {
            let Some((head_len, content_length)) = read_head(&mut stream, &mut buffer).await else {
                return;
            };
            while buffer.len() < head_len + content_length {
                let mut chunk = [0u8; 65536];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                }
            }
            let head = String::from_utf8_lossy(&buffer[..head_len]).into_owned();
            let body = buffer[head_len..head_len + content_length].to_vec();
            buffer.drain(..head_len + content_length);
            let mut lines = head.split("\r\n");
            let request_line = lines.next().unwrap_or_default();
            let http_method = request_line
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_owned();
            let path_and_query = request_line
                .split(' ')
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let headers = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                .collect();
            let recorded = Recorded {
                http_method,
                path_and_query,
                headers,
                body,
                at: Instant::now(),
            };
            self.log.lock().unwrap().push(recorded.clone());
            if recorded.http_method == "GET" {
                if !self.serve_get(&mut stream, &recorded).await {
                    return;
                }
                continue;
            }
            let step = match self.hub_like(&recorded) {
                Some(step) => step,
                None => self
                    .script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or_else(|| Step::Fault(1000, "test script exhausted".to_owned())),
            };
            let version = self.koji_version.lock().unwrap().clone();
            let version_header = version
                .map(|v| format!("Koji-Version: {v}\r\n"))
                .unwrap_or_default();
            let (status, content_type, payload) = match step {
                Step::Xml(body) => ("200 OK".to_owned(), "text/xml", body),
                Step::Fault(code, message) => {
                    ("200 OK".to_owned(), "text/xml", fault_xml(code, &message))
                }
                Step::Status(code) => (
                    format!("{code} Scripted"),
                    "text/plain",
                    format!("scripted status {code}"),
                ),
                Step::Drop => {
                    let _ = stream.shutdown().await;
                    return;
                }
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{version_header}Connection: keep-alive\r\n\r\n{payload}",
                payload.len()
            );
            if stream.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

impl Responder {
    /// kojihub's behaviour for the upload calls; `None` for everything else (scripted).
    fn hub_like(&self, request: &Recorded) -> Option<Step> {
        if *self.scripted_uploads.lock().unwrap() {
            return None;
        }
        let method = request.method();
        match method.as_str() {
            "rawUpload" => Some(self.raw_upload(request)),
            "checkUpload" | "uploadFile" => {
                let call = decode_call(&request.body_text()).ok()?;
                let text = |index: usize| match call.args.get(index) {
                    Some(Value::String(text)) => text.clone(),
                    _ => String::new(),
                };
                let key = format!("{}/{}", text(0), text(1));
                if method == "checkUpload" {
                    if *self.without_check_upload.lock().unwrap() {
                        return Some(fault(1000, "Invalid method: checkUpload"));
                    }
                    let files = self.files.lock().unwrap();
                    let Some(data) = files.get(&key) else {
                        return Some(nil());
                    };
                    let digest = match call.kwargs.get("verify") {
                        Some(Value::String(kind)) if kind == "adler32" => format!(
                            "<member><name>hexdigest</name><value><string>{:08x}</string></value></member>",
                            adler2::adler32_slice(data)
                        ),
                        _ => String::new(),
                    };
                    return Some(ok(&format!(
                        "<value><struct><member><name>size</name><value><int>{}</int></value></member><member><name>mtime</name><value><double>1.0</double></value></member>{digest}</struct></value>",
                        data.len()
                    )));
                }
                Some(self.upload_file(&key, &call.args))
            }
            _ => None,
        }
    }

    fn raw_upload(&self, request: &Recorded) -> Step {
        if let Some(status) = self.upload_failures.lock().unwrap().pop_front() {
            return Step::Status(status);
        }
        let query = request
            .path_and_query
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let key = format!(
            "{}/{}",
            params.get("filepath").cloned().unwrap_or_default(),
            params["filename"]
        );
        let offset: usize = params
            .get("offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let overwrite = params.get("overwrite").is_some_and(|v| !v.is_empty());
        let mut files = self.files.lock().unwrap();
        if files.contains_key(&key) && offset == 0 && !overwrite {
            return fault(1000, &format!("upload path exists: {key}"));
        }
        let file = files.entry(key).or_default();
        if overwrite {
            file.truncate(offset);
        }
        let end = offset + request.body.len();
        if file.len() < end {
            file.resize(end, 0);
        }
        file[offset..end].copy_from_slice(&request.body);
        if !overwrite && file.len() != end {
            return fault(1000, "Incorrect upload length");
        }
        let mut corrupt = self.corrupt_uploads.lock().unwrap();
        let digest = if *corrupt > 0 {
            *corrupt -= 1;
            "deadbeef".to_owned()
        } else {
            format!("{:08x}", adler2::adler32_slice(&request.body))
        };
        ok(&format!(
            "<value><struct><member><name>size</name><value><int>{}</int></value></member><member><name>fileverify</name><value><string>adler32</string></value></member><member><name>offset</name><value><int>{offset}</int></value></member><member><name>hexdigest</name><value><string>{digest}</string></value></member></struct></value>",
            request.body.len()
        ))
    }

    /// Legacy `uploadFile(path, name, size, checksum, offset, data)` with kojihub's rules.
    fn upload_file(&self, key: &str, args: &[Value]) -> Step {
        use base64::Engine;
        use sha2::Digest;
        let number = |value: Option<&Value>| match value {
            Some(Value::Integer(n)) => i64::from(*n),
            Some(Value::Long(n)) => *n,
            _ => 0,
        };
        let size = number(args.get(2));
        let offset = number(args.get(4));
        let digest = match args.get(3) {
            Some(Value::Array(pair)) => match pair.get(1) {
                Some(Value::String(hex)) => hex.clone(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        let data = match args.get(5) {
            Some(Value::String(text)) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let hex = |bytes: &[u8]| {
            sha2::Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let mut files = self.files.lock().unwrap();
        let file = files.entry(key.to_owned()).or_default();
        let accepted = if offset == -1 {
            file.extend_from_slice(&data);
            file.truncate(size as usize);
            hex(file) == digest
        } else if hex(&data) != digest || data.len() as i64 != size {
            false
        } else {
            let offset = offset as usize;
            if offset == 0 {
                file.clear();
            }
            if file.len() < offset + data.len() {
                file.resize(offset + data.len(), 0);
            }
            file[offset..offset + data.len()].copy_from_slice(&data);
            true
        };
        ok(&format!(
            "<value><boolean>{}</boolean></value>",
            u8::from(accepted)
        ))
    }

    async fn serve_get(&self, stream: &mut TcpStream, request: &Recorded) -> bool {
        let failure = self.get_failures.lock().unwrap().pop_front();
        let (status, body) = match failure {
            Some(status) => (format!("{status} Scripted"), b"error".to_vec()),
            None => match self.downloads.lock().unwrap().get(&request.path_and_query) {
                Some(data) => ("200 OK".to_owned(), data.clone()),
                None => ("404 Not Found".to_owned(), b"not found".to_vec()),
            },
        };
        let truncate = std::mem::take(&mut *self.truncate_next_get.lock().unwrap());
        let announced = if truncate {
            body.len() + 10
        } else {
            body.len()
        };
        let head = format!("HTTP/1.1 {status}\r\nContent-Length: {announced}\r\n\r\n");
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&body).await.is_err()
        {
            return false;
        }
        if truncate {
            let _ = stream.shutdown().await;
            return false;
        }
        true
    }
}

async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(usize, usize)> {
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            return Some((end + 4, length));
        }
        let mut chunk = [0u8; 65536];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
}
