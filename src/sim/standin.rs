//! Temporary stand-ins for the pure libraries of branch `simlib` (same signatures), replaced
//! module by module as they are merged.

#![allow(dead_code)]

pub mod patch {
    use serde_json::Value;

    #[derive(Debug, thiserror::Error)]
    pub enum PatchError {
        #[error("{0}")]
        Invalid(String),
    }

    pub fn merge_patch(target: &mut Value, patch: &Value) {
        json_patch::merge(target, patch);
    }

    pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
        let p: json_patch::Patch = serde_json::from_value(patch.clone())
            .map_err(|e| PatchError::Invalid(e.to_string()))?;
        json_patch::patch(target, &p).map_err(|e| PatchError::Invalid(e.to_string()))
    }

    pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
        json_patch::merge(target, patch);
        Ok(())
    }
}

pub mod apply {
    use serde_json::Value;

    #[derive(Debug, thiserror::Error)]
    pub enum ApplyError {
        #[error("apply conflict")]
        Conflict { causes: Vec<ApplyConflict> },
        #[error("{0}")]
        Invalid(String),
    }

    #[derive(Debug)]
    pub struct ApplyConflict {
        pub manager: String,
        pub field: String,
        pub message: String,
    }

    pub fn server_side_apply(
        live: Option<&Value>,
        applied: &Value,
        _manager: &str,
        _force: bool,
        _now: &str,
    ) -> Result<Value, ApplyError> {
        let mut out = live
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        json_patch::merge(&mut out, applied);
        Ok(out)
    }

    pub fn track_update(_old: Option<&Value>, _new: &mut Value, _manager: &str, _now: &str) {}
}

pub mod selector {
    use std::collections::BTreeMap;

    use serde_json::Value;

    #[derive(Debug, thiserror::Error)]
    pub enum SelectorError {
        #[error("unable to parse requirement: {0}")]
        Parse(String),
    }

    #[derive(Debug, Clone)]
    enum Req {
        Eq(String, String),
        Ne(String, String),
        Exists(String),
        NotExists(String),
    }

    #[derive(Debug, Clone, Default)]
    pub struct LabelSelector {
        reqs: Vec<Req>,
    }

    impl LabelSelector {
        pub fn parse(s: &str) -> Result<Self, SelectorError> {
            let mut reqs = Vec::new();
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if let Some((k, v)) = part.split_once("!=") {
                    reqs.push(Req::Ne(k.trim().into(), v.trim().into()));
                } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('='))
                {
                    reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
                } else if let Some(k) = part.strip_prefix('!') {
                    reqs.push(Req::NotExists(k.trim().into()));
                } else if part.contains(' ') {
                    return Err(SelectorError::Parse(part.into()));
                } else {
                    reqs.push(Req::Exists(part.into()));
                }
            }
            Ok(LabelSelector { reqs })
        }

        pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
            self.reqs.iter().all(|r| match r {
                Req::Eq(k, v) => labels.get(k) == Some(v),
                Req::Ne(k, v) => labels.get(k) != Some(v),
                Req::Exists(k) => labels.contains_key(k),
                Req::NotExists(k) => !labels.contains_key(k),
            })
        }

        pub fn matches_object(&self, obj: &Value) -> bool {
            let labels: BTreeMap<String, String> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            self.matches(&labels)
        }

        pub fn everything() -> Self {
            LabelSelector::default()
        }

        pub fn is_everything(&self) -> bool {
            self.reqs.is_empty()
        }
    }

    #[derive(Debug, Clone, Default)]
    pub struct FieldSelector {
        reqs: Vec<(String, String, bool)>,
    }

    impl FieldSelector {
        pub fn parse(s: &str) -> Result<Self, SelectorError> {
            let mut reqs = Vec::new();
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if let Some((k, v)) = part.split_once("!=") {
                    reqs.push((k.into(), v.into(), false));
                } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('='))
                {
                    reqs.push((k.into(), v.into(), true));
                } else {
                    return Err(SelectorError::Parse(part.into()));
                }
            }
            Ok(FieldSelector { reqs })
        }

        pub fn matches(&self, obj: &Value) -> bool {
            self.reqs.iter().all(|(k, v, eq)| {
                let ptr = format!("/{}", k.replace('.', "/"));
                let actual = match obj.pointer(&ptr) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                (actual == *v) == *eq
            })
        }
    }
}

pub mod rbac {
    use serde_json::Value;

    #[derive(Debug, Clone)]
    pub struct UserInfo {
        pub username: String,
        pub groups: Vec<String>,
    }

    #[derive(Debug, Clone, Default)]
    pub struct Attributes {
        pub verb: String,
        pub api_group: String,
        pub resource: String,
        pub subresource: String,
        pub name: String,
        pub namespace: String,
        pub path: String,
        pub resource_request: bool,
    }

    pub struct RbacSnapshot {
        pub roles: Vec<Value>,
        pub cluster_roles: Vec<Value>,
        pub role_bindings: Vec<Value>,
        pub cluster_role_bindings: Vec<Value>,
    }

    pub struct Decision {
        pub allowed: bool,
        pub reason: String,
    }

    pub fn authorize(_rbac: &RbacSnapshot, user: &UserInfo, attrs: &Attributes) -> Decision {
        let allowed = user.groups.iter().any(|g| g == "system:masters")
            || (!attrs.resource_request && user.groups.iter().any(|g| g == "system:authenticated"));
        Decision {
            allowed,
            reason: String::new(),
        }
    }

    pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
        let scope = if attrs.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", attrs.namespace)
        };
        let resource = if attrs.subresource.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}/{}", attrs.resource, attrs.subresource)
        };
        let subject = if attrs.name.is_empty() {
            resource.clone()
        } else {
            format!("{resource} \"{}\"", attrs.name)
        };
        format!(
            "{subject} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
            user.username, attrs.verb, attrs.api_group
        )
    }

    pub fn default_objects() -> Vec<Value> {
        Vec::new()
    }
}

pub mod proto {
    use serde_json::Value;

    #[derive(Debug, thiserror::Error)]
    pub enum ProtoError {
        #[error("protobuf bodies are not supported yet")]
        Unsupported,
    }

    pub const PROTOBUF_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

    pub fn decode_self_subject_access_review(_body: &[u8]) -> Result<Value, ProtoError> {
        Err(ProtoError::Unsupported)
    }

    pub fn decode_token_request(_body: &[u8]) -> Result<Value, ProtoError> {
        Err(ProtoError::Unsupported)
    }
}

pub mod token {
    #[derive(Debug, thiserror::Error)]
    pub enum TokenError {
        #[error("invalid token")]
        Invalid,
    }

    #[derive(Debug, Clone)]
    pub struct ServiceAccountClaims {
        pub issuer: String,
        pub audiences: Vec<String>,
        pub expires_at: i64,
        pub issued_at: i64,
        pub namespace: String,
        pub service_account_name: String,
        pub service_account_uid: String,
        pub secret_name: Option<String>,
        pub secret_uid: Option<String>,
    }

    /// Stand-in: opaque random tokens remembered in memory.
    pub struct TokenSigner {
        issued: std::sync::Mutex<std::collections::HashMap<String, ServiceAccountClaims>>,
    }

    impl TokenSigner {
        pub fn generate(_issuer: &str) -> Result<Self, TokenError> {
            Ok(TokenSigner {
                issued: Default::default(),
            })
        }

        pub fn sign(&self, claims: &ServiceAccountClaims) -> Result<String, TokenError> {
            let token = format!("sa-{}", uuid::Uuid::new_v4().simple());
            self.issued
                .lock()
                .map_err(|_| TokenError::Invalid)?
                .insert(token.clone(), claims.clone());
            Ok(token)
        }

        pub fn verify(
            &self,
            token: &str,
            now_unix: i64,
        ) -> Result<ServiceAccountClaims, TokenError> {
            let c = self
                .issued
                .lock()
                .map_err(|_| TokenError::Invalid)?
                .get(token)
                .cloned()
                .ok_or(TokenError::Invalid)?;
            if c.expires_at < now_unix {
                return Err(TokenError::Invalid);
            }
            Ok(c)
        }
    }
}

pub mod table {
    use serde_json::{Value, json};

    pub fn table_for(
        _group: &str,
        _resource: &str,
        _crd_printer_columns: Option<&Value>,
        objects: &[Value],
        list_resource_version: &str,
        _now_unix: i64,
    ) -> Value {
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| {
                json!({
                    "cells": [o.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
                              o.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null)],
                    "object": {"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1",
                               "metadata": o.get("metadata").cloned().unwrap_or(Value::Null)},
                })
            })
            .collect();
        json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": list_resource_version},
            "columnDefinitions": [
                {"name":"Name","type":"string","format":"name","description":"Name","priority":0},
                {"name":"Age","type":"string","format":"","description":"Age","priority":0},
            ],
            "rows": rows,
        })
    }
}

pub use token::TokenError;
