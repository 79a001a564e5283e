//! `mc mirror`: the service-mirror controller.
pub mod names;
pub mod plan;
