//! mc links Kubernetes clusters: trust, install manifests, service mirroring and an mTLS gateway.
//!
//! Modules that may touch the network: `sim` (serves), `gateway` (serves and dials), `kube`
//! helpers. Pure modules: `identity` (certificates, files only), `render` (templates).
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod demo;
pub mod gateway;
pub mod identity;
pub mod k8s;
pub mod link;
pub mod mirror;
pub mod render;
pub mod runtime;
pub mod sim;
pub mod yaml;
