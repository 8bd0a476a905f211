//! HTTP(S) to the hub: hyper 1 over OpenSSL.
//!
//! OpenSSL rather than rustls because upstream hubs ask for the client certificate only on
//! `/ssllogin`, after the handshake (TLS 1.3 post-handshake auth), which rustls cannot answer.

use std::error::Error as StdError;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_openssl::client::legacy::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use openssl::ssl::{SslConnector, SslConnectorBuilder, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;

use super::options::HubOptions;

/// Errors below the XML-RPC layer. Each says what failed and, where it can, what to change.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),
    #[error(
        "cannot use client certificate {path}: {detail}; `cert` must name a readable PEM file holding the certificate and its key (or set a separate key file)"
    )]
    ClientCert { path: String, detail: String },
    #[error(
        "cannot use server CA {path}: {detail}; `serverca` must name a readable PEM bundle of the CA that signed the hub's certificate"
    )]
    ServerCa { path: String, detail: String },
    #[error("invalid URL {url:?}: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("request to {url} failed: {detail}")]
    Request { url: String, detail: String },
    #[error(
        "request to {url} got no complete answer within {after:?} (raise `timeout` if the hub is just slow)"
    )]
    Timeout { url: String, after: Duration },
    #[error("{url} answered HTTP {status}: {body:?}")]
    HttpStatus {
        url: String,
        status: u16,
        body: String,
    },
}

impl TransportError {
    /// Certificate problems are never retried: waiting does not fix a wrong CA or an expired
    /// cert. Same substrings as koji's `is_requests_cert_error`.
    pub fn is_certificate_error(&self) -> bool {
        let text = match self {
            TransportError::ClientCert { .. }
            | TransportError::ServerCa { .. }
            | TransportError::TlsSetup(_) => {
                return true;
            }
            TransportError::Request { detail, .. } => detail.to_ascii_lowercase(),
            _ => return false,
        };
        [
            "certificate verify failed",
            "certificate expired",
            "certificate revoked",
            "certificate has expired",
            "certificate has been revoked",
            "permission denied",
            "doesn't match",
            "hostname mismatch",
            "ip address mismatch",
            "self-signed certificate",
            "unable to get local issuer certificate",
        ]
        .iter()
        .any(|needle| text.contains(needle))
    }

    /// A keep-alive connection the hub closed under us: worth one immediate retry on a fresh
    /// connection (koji's `is_conn_error`).
    pub fn is_dropped_connection(&self) -> bool {
        let TransportError::Request { detail, .. } = self else {
            return false;
        };
        let text = detail.to_ascii_lowercase();
        [
            "connection reset",
            "broken pipe",
            "connection aborted",
            "connection closed before message completed",
            "incomplete message",
            "unexpected end of file",
            "unexpected eof",
        ]
        .iter()
        .any(|needle| text.contains(needle))
    }
}

/// The whole error chain on one line, so that OpenSSL's reason reaches the log.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// A fully read reply.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One outgoing POST.
#[derive(Debug, Clone)]
pub struct PostRequest {
    pub url: String,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    pub timeout: Duration,
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled HTTP(S) client with kojid's TLS settings.
#[derive(Clone)]
pub struct Transport {
    client: HttpsClient,
}

/// Turn on TLS 1.3 post-handshake authentication for every connection made from `builder`.
///
/// Upstream hubs (Apache `SSLVerifyClient require` inside `<Location /kojihub/ssllogin>`) ask
/// for the client certificate only after the request path is known. Under TLS 1.3 that is a
/// post-handshake CertificateRequest, which OpenSSL clients refuse unless they announced the
/// `post_handshake_auth` extension. The openssl crate has no safe wrapper for it.
fn enable_post_handshake_auth(builder: &mut SslConnectorBuilder) {
    // SAFETY: `as_ptr` is the live SSL_CTX owned by `builder`, borrowed mutably for the call;
    // the function only sets a flag on that context and cannot fail.
    unsafe { openssl_sys::SSL_CTX_set_post_handshake_auth(builder.as_ptr(), 1) };
}

fn tls_builder(options: &HubOptions) -> Result<SslConnectorBuilder, TransportError> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())
        .map_err(|error| TransportError::TlsSetup(error.to_string()))?;
    if let Some(cert) = &options.cert {
        let display = cert.display().to_string();
        check_readable(cert).map_err(|detail| TransportError::ClientCert {
            path: display.clone(),
            detail,
        })?;
        builder
            .set_certificate_chain_file(cert)
            .map_err(|error| TransportError::ClientCert {
                path: display.clone(),
                detail: format!("no PEM certificate in it ({error})"),
            })?;
        let key = options.key.as_ref().unwrap_or(cert);
        builder
            .set_private_key_file(key, SslFiletype::PEM)
            .map_err(|error| TransportError::ClientCert {
                path: key.display().to_string(),
                detail: format!("no PEM private key in it ({error})"),
            })?;
        builder
            .check_private_key()
            .map_err(|error| TransportError::ClientCert {
                path: display,
                detail: format!("the private key does not belong to the certificate ({error})"),
            })?;
    }
    if let Some(serverca) = &options.serverca {
        // Like python-requests with verify=<file>: trust exactly this bundle, not the system's.
        let display = serverca.display().to_string();
        let pem = std::fs::read(serverca).map_err(|error| TransportError::ServerCa {
            path: display.clone(),
            detail: error.to_string(),
        })?;
        let certs = openssl::x509::X509::stack_from_pem(&pem).map_err(|error| {
            TransportError::ServerCa {
                path: display.clone(),
                detail: error.to_string(),
            }
        })?;
        if certs.is_empty() {
            return Err(TransportError::ServerCa {
                path: display,
                detail: "no PEM certificate in it".to_owned(),
            });
        }
        let mut store =
            X509StoreBuilder::new().map_err(|error| TransportError::TlsSetup(error.to_string()))?;
        for cert in certs {
            store
                .add_cert(cert)
                .map_err(|error| TransportError::ServerCa {
                    path: display.clone(),
                    detail: error.to_string(),
                })?;
        }
        builder.set_cert_store(store.build());
    } else if options.no_ssl_verify {
        builder.set_verify(SslVerifyMode::NONE);
    }
    if options.post_handshake_auth {
        enable_post_handshake_auth(&mut builder);
    }
    Ok(builder)
}

fn check_readable(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

impl Transport {
    pub fn new(options: &HubOptions) -> Result<Self, TransportError> {
        let builder = tls_builder(options)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(options.timeout));
        http.set_nodelay(true);
        let mut https = HttpsConnector::with_connector(http, builder)
            .map_err(|error| TransportError::TlsSetup(error.to_string()))?;
        if options.no_ssl_verify && options.serverca.is_none() {
            https.set_callback(|config, _| {
                config.set_verify_hostname(false);
                Ok(())
            });
        }
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            // The hub closes idle keep-alive connections after 5 s (Apache's default); dropping
            // ours first avoids most "connection reset" races.
            .pool_idle_timeout(Duration::from_secs(4))
            .build(https);
        Ok(Self { client })
    }

    fn parse_uri(url: &str) -> Result<Uri, TransportError> {
        url.parse::<Uri>().map_err(|error| TransportError::BadUrl {
            url: url.to_owned(),
            detail: error.to_string(),
        })
    }

    /// POST and read the whole reply. Non-2xx is an error (retried by the session layer).
    pub async fn post(&self, request: &PostRequest) -> Result<HttpReply, TransportError> {
        let uri = Self::parse_uri(&request.url)?;
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(USER_AGENT, "koji/1")
            .header(CONTENT_TYPE, request.content_type);
        for (name, value) in &request.headers {
            let value = HeaderValue::from_str(value).map_err(|error| TransportError::BadUrl {
                url: request.url.clone(),
                detail: format!("header {name}: {error}"),
            })?;
            builder = builder.header(HeaderName::from_static(name), value);
        }
        let http_request = builder
            .body(Full::new(request.body.clone()))
            .map_err(|error| TransportError::BadUrl {
                url: request.url.clone(),
                detail: error.to_string(),
            })?;
        let url = request.url.clone();
        let exchange = async {
            let response = self.client.request(http_request).await.map_err(|error| {
                TransportError::Request {
                    url: url.clone(),
                    detail: error_chain(&error),
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|error| TransportError::Request {
                    url: url.clone(),
                    detail: error_chain(&error),
                })?
                .to_bytes();
            Ok::<_, TransportError>(HttpReply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let reply = tokio::time::timeout(request.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout {
                url: request.url.clone(),
                after: request.timeout,
            })??;
        if !reply.status.is_success() {
            return Err(TransportError::HttpStatus {
                url: request.url.clone(),
                status: reply.status.as_u16(),
                body: String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)])
                    .into_owned(),
            });
        }
        Ok(reply)
    }

    /// GET with the body left to stream (downloads).
    pub async fn get(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<Response<Incoming>, TransportError> {
        let uri = Self::parse_uri(url)?;
        let request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(USER_AGENT, "koji/1")
            .body(Full::new(Bytes::new()))
            .map_err(|error| TransportError::BadUrl {
                url: url.to_owned(),
                detail: error.to_string(),
            })?;
        tokio::time::timeout(timeout, self.client.request(request))
            .await
            .map_err(|_| TransportError::Timeout {
                url: url.to_owned(),
                after: timeout,
            })?
            .map_err(|error| TransportError::Request {
                url: url.to_owned(),
                detail: error_chain(&error),
            })
    }
}
