//! The cluster's state and its control plane: the type registry, the store (one lock, one
//! resource-version counter, a watch history) and the controllers that react to writes inside
//! the same lock. Synchronous and deterministic: nothing here does I/O or spawns a task; what
//! must happen later (a namespace's removal) is returned as data for the caller to schedule.

pub mod clock;
pub mod controllers;
pub mod registry;
pub mod store;
