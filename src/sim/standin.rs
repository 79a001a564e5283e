//! Temporary stand-ins for the pure libraries of branch `simlib` not merged yet (same
//! signatures): server-side apply and Table output.

#![allow(dead_code)]

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
