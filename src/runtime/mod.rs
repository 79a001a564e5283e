//! The shared runtime of mc's long-running commands (`mc gateway`, `mc mirror`, `mc sim serve`):
//! everything a program that serves or watches needs, written once.
//!
//! ```text
//! ClientArgs ─connect()─▶ kube::Client          shutdown_token() ─▶ CancellationToken
//! net::listen + net::accept_loop (back-off)     admin::serve: /live /ready(gates) /metrics
//! backoff::exponential() (backon)               watch::drive(stream, Index) ─▶ on_change
//! ```
//!
//! A new long-running command is assembled from these parts (see docs/architecture.md); it
//! never copies another command's loop. May touch the network: `client`, `net`, `admin`,
//! `watch` (through the streams it is given). `backoff` and `signal` are local.

pub mod admin;
pub mod backoff;
pub mod client;
pub mod kubeconfig;
pub mod net;
pub mod signal;
pub mod watch;

pub use admin::{AdminServer, Readiness};
pub use client::{ClientArgs, ClientError};
pub use net::{accept_loop, listen};
pub use signal::shutdown_token;
pub use watch::{Index, drive};

/// Tokio runtime for subcommands that do network I/O.
pub fn tokio() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
