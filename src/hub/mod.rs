//! The Koji hub client. The only module that speaks XML-RPC.
//!
//! Layers, bottom up: [`xmlrpc`] (Koji's dialect on dxr values), [`fault`] (typed faults and
//! what to do about them), [`transport`] (hyper over OpenSSL), [`session`] (login, callnum,
//! retries, renewal), [`client`] (typed calls), [`upload`] and [`download`] (files).
//! Operator documentation: `docs/hub-client.md`.

pub mod capabilities;
pub mod client;
pub mod download;
pub mod fault;
pub mod ops;
pub mod options;
pub mod session;
pub mod transport;
pub mod types;
pub mod upload;
pub mod xmlrpc;
