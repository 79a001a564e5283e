//! The HTTP API: the shared per-cluster context and per-request types, the TLS server and
//! router, authentication and authorization, the resource handlers, watches, discovery,
//! OpenAPI and fault injection. The only layer that touches the network.
//!
//! ```text
//! server (TLS accept, route) ─▶ auth ─▶ handlers / watch / discovery / openapi ─▶ cluster
//! ```

pub mod auth;
pub mod context;
pub mod custom;
pub mod discovery;
pub mod faults;
pub mod handlers;
pub mod list;
pub mod openapi;
pub mod pki;
pub mod server;
pub mod watch;
