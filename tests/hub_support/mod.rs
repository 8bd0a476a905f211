//! A scripted HTTP/1.1 responder on 127.0.0.1 for the hub client tests: it answers each
//! request with the next scripted step (XML-RPC reply, fault, HTTP error, dropped connection)
//! and records what it received, with the (virtual) time it arrived.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

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
}

impl Responder {
    pub async fn start(script: Vec<Step>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let responder = Self {
            addr: listener.local_addr().unwrap(),
            script: Arc::new(Mutex::new(script.into())),
            log: Arc::new(Mutex::new(Vec::new())),
            koji_version: Arc::new(Mutex::new(Some("1.35.3".to_owned()))),
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
            let path_and_query = request_line
                .split(' ')
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let headers = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                .collect();
            self.log.lock().unwrap().push(Recorded {
                path_and_query,
                headers,
                body,
                at: Instant::now(),
            });
            let step = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Step::Fault(1000, "test script exhausted".to_owned()));
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
