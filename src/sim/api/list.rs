//! What list, deletecollection and watch share: which objects a request selects (namespace,
//! label and field selectors) and how an object is shown in the version asked for.

use serde_json::{Value, json};

use super::context::{Ctx, RequestInfo};
use crate::sim::cluster::registry::ResourceType;
use crate::sim::cluster::store::meta_str;
use crate::sim::semantics::events;
use crate::sim::semantics::selector::{FieldSelector, LabelSelector};
use crate::sim::semantics::status::{self, ApiError};

/// The object as the client asked for it: CRD objects get the requested version's apiVersion
/// and its schema's defaults,
/// `events.k8s.io` Events their own field names.
pub fn present(obj: &Value, rt: &ResourceType, version: &str) -> Value {
    if rt.is_events_view() {
        return events::from_core(obj);
    }
    let mut out = obj.clone();
    if rt.from_crd {
        out["apiVersion"] = json!(rt.api_version(version));
        super::custom::default_on_read(rt, version, &mut out);
    }
    out
}

/// The reverse of `present`: what is stored for an object written through `rt`.
pub fn to_storage(obj: Value, rt: &ResourceType) -> Value {
    if rt.is_events_view() {
        return events::to_core(&obj);
    }
    obj
}

/// The selection of a list or watch request.
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: Option<FieldSelector>,
}

impl Filter {
    pub fn from_ctx(ctx: &Ctx, rt: &ResourceType, info: &RequestInfo) -> Result<Filter, ApiError> {
        let labels = match ctx.q("labelSelector") {
            Some(s) if !s.is_empty() => LabelSelector::parse(s)
                .map_err(|e| status::bad_request(format!("unable to parse requirement: {e}")))?,
            _ => LabelSelector::everything(),
        };
        let fields = match ctx.q("fieldSelector") {
            Some(s) if !s.is_empty() => Some(
                FieldSelector::parse(s)
                    .map_err(|e| status::bad_request(format!("invalid field selector: {e}")))?,
            ),
            _ => None,
        };
        if let Some(label) = fields
            .as_ref()
            .and_then(|f| f.unsupported_label(&rt.group, &rt.plural))
        {
            return Err(status::bad_request(format!(
                "field label not supported: {label}"
            )));
        }
        Ok(Filter {
            namespace: info.namespace.clone(),
            labels,
            fields,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && meta_str(obj, "namespace") != ns
        {
            return false;
        }
        self.labels.matches_object(obj) && self.fields.as_ref().is_none_or(|f| f.matches(obj))
    }
}
