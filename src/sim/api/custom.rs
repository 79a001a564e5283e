//! What kube-apiserver does to a custom resource beyond storing it, by the structural schema
//! of the version a request names (`semantics::schema`): on decode, undeclared fields are
//! pruned (a 400 under `fieldValidation=Strict`, a `Warning:` under `Warn`, the default) and
//! defaults filled in; before storing, the object is validated with every failure in one 422;
//! on read, defaults are filled in again (a schema may have gained some). Also the decode
//! errors of built-in types whose fields the rest of the server relies on (Leases).

use serde_json::Value;

use super::context::{Ctx, RequestInfo};
use crate::sim::cluster::registry::ResourceType;
use crate::sim::cluster::store::meta_str;
use crate::sim::semantics::status::{self, ApiError};
use crate::sim::semantics::{schema, validation};

/// Which handler decodes the body: kube-apiserver words decode errors differently for them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// POST and PUT: the body is the object.
    Object,
    /// JSON, merge and strategic patches: the object is the patched live one.
    Patch,
}

/// `Kind in version "v1" cannot be handled as a Kind: ...`, kube-apiserver's 400 for a body
/// it cannot decode.
fn cannot_handle(rt: &ResourceType, version: &str, detail: &str) -> ApiError {
    status::bad_request(format!(
        "{} in version {version:?} cannot be handled as a {}: {detail}",
        rt.kind, rt.kind
    ))
}

/// Decoding the body of a write: prunes what a custom resource's schema does not declare
/// (refused under `fieldValidation=Strict`, warned about under `Warn`, the default), drops
/// `null`s where not nullable and fills in defaults; refuses Leases the server's decoder could
/// not read.
pub fn decode(
    ctx: &Ctx,
    rt: &ResourceType,
    info: &RequestInfo,
    obj: &mut Value,
    write: Write,
) -> Result<(), ApiError> {
    if rt.key() == "coordination.k8s.io/leases"
        && let Some(err) = validation::lease_decode(obj)
    {
        return Err(match write {
            Write::Object => cannot_handle(rt, &info.version, &err),
            // The patcher reports a patched object it cannot decode as an invalid `patch`.
            Write::Patch => ApiError::new(
                422,
                "Invalid",
                format!(
                    " \"\" is invalid: patch: Invalid value: {:?}: {err}",
                    obj.to_string()
                ),
            ),
        });
    }
    let Some(schema) = rt.schema(&info.version).filter(|_| rt.from_crd) else {
        return Ok(());
    };
    let unknown = schema::prune(schema, obj);
    if !unknown.is_empty() {
        let each: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        match ctx.q("fieldValidation").unwrap_or("Warn") {
            "Strict" => {
                let detail = format!("strict decoding error: {}", each.join(", "));
                return Err(match write {
                    Write::Object => cannot_handle(rt, &info.version, &detail),
                    Write::Patch => status::bad_request(detail),
                });
            }
            "Ignore" => {}
            _ => {
                for w in each {
                    ctx.warnings.add(w);
                }
            }
        }
    }
    schema::apply_defaults(schema, obj);
    Ok(())
}

/// Server-side apply converts the applied configuration to the schema's type first; a field
/// the schema does not declare fails that conversion, whatever `fieldValidation` says (and
/// kube-apiserver 1.32 reports it as an internal error).
pub fn check_applied(
    rt: &ResourceType,
    info: &RequestInfo,
    applied: &Value,
) -> Result<(), ApiError> {
    let Some(schema) = rt.schema(&info.version).filter(|_| rt.from_crd) else {
        return Ok(());
    };
    let unknown = schema::prune(schema, &mut applied.clone());
    if unknown.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = unknown
        .iter()
        .map(|f| format!(".{f}: field not declared in schema"))
        .collect();
    let errors = if lines.len() == 1 {
        lines[0].clone()
    } else {
        let mut all = vec!["errors:".to_string()];
        all.extend(lines.iter().map(|l| format!("  {l}")));
        all.join("\n")
    };
    let ns = meta_str(applied, "namespace");
    let name = meta_str(applied, "name");
    Err(ApiError::new(
        500,
        "",
        format!(
            "failed to create typed patch object ({ns}/{name}; {}, Kind={}): {errors}",
            rt.api_version(&info.version),
            rt.kind
        ),
    ))
}

/// Schema validation of a custom resource about to be stored; `old` on updates (unchanged
/// parts are not checked again).
pub fn validate(
    rt: &ResourceType,
    info: &RequestInfo,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let Some(schema) = rt.schema(&info.version).filter(|_| rt.from_crd) else {
        return Ok(());
    };
    let errors = schema::validate(schema, obj, old);
    status::all_valid(&rt.group, &rt.kind, meta_str(obj, "name"), &errors)
}

/// Defaults on read, as kube-apiserver applies them when it decodes from storage.
pub fn default_on_read(rt: &ResourceType, version: &str, obj: &mut Value) {
    if rt.defaults_on_read
        && let Some(schema) = rt.schema(version)
    {
        schema::apply_defaults(schema, obj);
    }
}
