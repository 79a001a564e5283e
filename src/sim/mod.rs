//! `mc sim`: an in-process Kubernetes API server simulator.
//!
//! The pure building blocks (no I/O, no async) live in the modules below; the server wires them in.

pub mod apply;
pub mod patch;
pub mod proto;
pub mod rbac;
pub mod selector;
pub mod table;
pub mod token;
