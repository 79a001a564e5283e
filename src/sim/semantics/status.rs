//! `Status` bodies as kube-apiserver words them (k8s-api-surface.md §8). Every error path of the
//! simulator goes through [`ApiError`] so that the HTTP code always equals `code`.

use serde_json::{Value, json};

use super::validation::FieldError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429 faults).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn body(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut d = json!({"name": name, "kind": kind});
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

pub fn not_found(group: &str, plural: &str, name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", qualified(group, plural)),
    )
    .with_details(details(name, group, plural))
}

/// Unknown path: no details, the generic message.
pub fn no_resource() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
    .with_details(json!({}))
}

pub fn already_exists(group: &str, plural: &str, name: &str) -> ApiError {
    ApiError::new(
        409,
        "AlreadyExists",
        format!("{} \"{name}\" already exists", qualified(group, plural)),
    )
    .with_details(details(name, group, plural))
}

pub fn conflict(group: &str, plural: &str, name: &str) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            qualified(group, plural)
        ),
    )
    .with_details(details(name, group, plural))
}

/// 422 with one cause, e.g. `FieldValueRequired` on `metadata.name`.
pub fn invalid(
    group: &str,
    kind: &str,
    name: &str,
    cause_reason: &str,
    field: &str,
    cause_message: &str,
) -> ApiError {
    invalid_all(
        group,
        kind,
        name,
        &[FieldError {
            reason: static_reason(cause_reason),
            field: field.to_string(),
            message: cause_message.to_string(),
        }],
    )
}

/// The cause reasons kube-apiserver uses, as `'static` strings.
fn static_reason(reason: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "FieldValueRequired",
        "FieldValueInvalid",
        "FieldValueNotSupported",
        "FieldValueDuplicate",
        "FieldValueForbidden",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
        "FieldValueNotFound",
    ];
    KNOWN
        .iter()
        .find(|k| **k == reason)
        .copied()
        .unwrap_or("FieldValueInvalid")
}

/// 422 listing every failed rule, worded as kube-apiserver's `NewInvalid`: one cause is
/// `Kind "x" is invalid: field: message`, several are bracketed and comma-separated.
/// `Ok` when no field failed, else the one 422 that lists them all.
pub fn all_valid(
    group: &str,
    kind: &str,
    name: &str,
    errors: &[FieldError],
) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid_all(group, kind, name, errors))
    }
}

pub fn invalid_all(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> ApiError {
    // kube-apiserver names the group kind: `Deployment.apps "web" is invalid`.
    let shown = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut lines: Vec<String> = Vec::new();
    for e in errors {
        let line = format!("{}: {}", e.field, e.message);
        // The aggregate drops repeated messages.
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    let message = match lines.as_slice() {
        [] => format!("{shown} \"{name}\" is invalid"),
        [one] => format!("{shown} \"{name}\" is invalid: {one}"),
        many => format!("{shown} \"{name}\" is invalid: [{}]", many.join(", ")),
    };
    let mut d = details(name, group, kind);
    d["causes"] = errors
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
        .collect();
    ApiError::new(422, "Invalid", message).with_details(d)
}

pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

pub fn forbidden(message: impl Into<String>, name: &str, group: &str, plural: &str) -> ApiError {
    ApiError::new(403, "Forbidden", message).with_details(details(name, group, plural))
}

pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

pub fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
    .with_details(json!({}))
}

/// 415 for a PATCH content type the resource does not take (custom resources have no
/// strategic merge patch).
pub fn unsupported_media_type(strategic: bool) -> ApiError {
    let mut accepted =
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            .to_string();
    if strategic {
        accepted.push_str(", application/strategic-merge-patch+json");
    }
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {accepted}"
        ),
    )
}

pub fn expired(message: impl Into<String>) -> ApiError {
    ApiError::new(410, "Expired", message)
}

pub fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(500, "InternalError", message)
}

/// The 2xx reply to a DELETE when the object is gone (`Either::Right` in kube-rs).
pub fn delete_success(group: &str, plural: &str, name: &str, uid: &str) -> Value {
    let mut d = details(name, group, plural);
    d["uid"] = json!(uid);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_qualified_resource() {
        let e = not_found("apps", "deployments", "web");
        assert_eq!(e.code, 404);
        assert_eq!(e.body()["message"], "deployments.apps \"web\" not found");
        assert_eq!(e.body()["details"]["group"], "apps");
        assert_eq!(
            not_found("", "services", "web").body()["message"],
            "services \"web\" not found"
        );
    }

    #[test]
    fn conflict_message_matches_the_api_server() {
        let e = conflict("", "configmaps", "c");
        assert_eq!(
            e.body()["message"],
            "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
        );
    }
}
