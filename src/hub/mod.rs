//! The Koji hub client. The only module that speaks XML-RPC.
