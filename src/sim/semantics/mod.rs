//! Request semantics: what the Kubernetes API means, as pure functions over JSON values, with
//! no I/O and nothing imported from the rest of the simulator (label/field selectors, JSON,
//! merge and strategic patches, server-side apply, RBAC rules, CRD structural schemas, protobuf encoding, service
//! account tokens, server-side tables, `Status` errors, and the conversion between the two
//! Event APIs).

pub mod apply;
pub mod events;
pub mod patch;
pub mod proto;
pub mod quantity;
pub mod rbac;
pub mod schema;
pub mod selector;
pub mod status;
pub mod table;
pub mod token;
pub mod validation;

use serde_json::Value;

/// The strings of a JSON array (`finalizers`, `verbs`, `values`, ...): empty when absent or not
/// an array; non-strings are skipped.
pub fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}
