//! Structural schemas (a CRD version's `openAPIV3Schema`) applied to custom resources the way
//! kube-apiserver applies them: pruning of undeclared fields (reported for
//! `fieldValidation=Strict|Warn`), dropping of `null`s where a field is not `nullable`,
//! `default`s, and validation with kube-openapi's wording (`spec.port in body must be of type
//! integer: "string"`), every failing field reported. Validation ratchets like the server's:
//! on an update, a subtree equal to the old object's is not checked again.
//!
//! Hand-written over `serde_json::Value` rather than a JSON Schema crate: structural schemas
//! are a small subset with Kubernetes semantics of their own (`x-kubernetes-*`, nullable,
//! pruning, defaulting, ratcheting), and the error texts must be kube-openapi's.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::validation::FieldError;

/// The fields of `ObjectMeta`: anything else under `metadata` is pruned.
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Root fields every object has whatever its schema says.
const TYPE_META: &[&str] = &["apiVersion", "kind", "metadata"];

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// The schema of a map's values (`additionalProperties: {schema}`), or None.
fn additional(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|s| s.is_object())
}

fn prune_meta(meta: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if let Some(m) = meta.as_object_mut() {
        m.retain(|k, _| {
            let known = OBJECT_META.contains(&k.as_str());
            if !known {
                unknown.push(child(path, k));
            }
            known
        });
    }
}

/// Drops what the schema does not declare and `null`s of fields that are neither nullable
/// nor defaulted. Returns the dropped fields' paths (`spec.foo`, `spec.items[0].bar`), sorted.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_object(schema, obj, "", true, &mut unknown);
    unknown.sort();
    unknown
}

fn prune_object(schema: &Value, v: &mut Value, path: &str, root: bool, out: &mut Vec<String>) {
    let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let Some(map) = v.as_object_mut() else {
        if let (Some(items), Some(list)) = (schema.get("items"), v.as_array_mut()) {
            for (i, item) in list.iter_mut().enumerate() {
                prune_object(items, item, &format!("{path}[{i}]"), false, out);
            }
        }
        return;
    };
    if embedded && let Some(meta) = map.get_mut("metadata") {
        prune_meta(meta, &child(path, "metadata"), out);
    }
    if let Some(values) = additional(schema) {
        for (k, item) in map.iter_mut() {
            prune_object(values, item, &child(path, k), false, out);
        }
        return;
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(true)) {
        return;
    }
    let props = properties(schema);
    map.retain(|k, item| {
        if embedded && TYPE_META.contains(&k.as_str()) {
            return true;
        }
        match props.and_then(|p| p.get(k)) {
            Some(prop) => {
                !(item.is_null() && !flag(prop, "nullable") && prop.get("default").is_none())
            }
            None => {
                if !preserve {
                    out.push(child(path, k));
                }
                preserve
            }
        }
    });
    if let Some(props) = props {
        for (k, item) in map.iter_mut() {
            if embedded && TYPE_META.contains(&k.as_str()) {
                continue;
            }
            if let Some(prop) = props.get(k) {
                prune_object(prop, item, &child(path, k), false, out);
            }
        }
    }
}

/// Whether any node of the schema has a `default` (reads need defaulting then).
pub fn has_defaults(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.contains_key("default") || m.values().any(has_defaults),
        Value::Array(a) => a.iter().any(has_defaults),
        _ => false,
    }
}

/// Fills in `default`s of absent fields (and of `null`s where the field is not nullable).
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    default_node(schema, obj, true);
}

fn default_node(schema: &Value, v: &mut Value, root: bool) {
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array_mut()) {
        for item in list {
            if item.is_null()
                && !flag(items, "nullable")
                && let Some(d) = items.get("default")
            {
                *item = d.clone();
            }
            default_node(items, item, false);
        }
        return;
    }
    let Some(map) = v.as_object_mut() else {
        return;
    };
    if let Some(props) = properties(schema) {
        for (k, prop) in props {
            if root && TYPE_META.contains(&k.as_str()) {
                continue;
            }
            let Some(d) = prop.get("default") else {
                continue;
            };
            match map.get(k) {
                None => {
                    map.insert(k.clone(), d.clone());
                }
                Some(Value::Null) if !flag(prop, "nullable") => {
                    map.insert(k.clone(), d.clone());
                }
                Some(_) => {}
            }
        }
        for (k, item) in map.iter_mut() {
            if root && TYPE_META.contains(&k.as_str()) {
                continue;
            }
            if let Some(prop) = props.get(k) {
                default_node(prop, item, false);
            }
        }
    } else if let Some(values) = additional(schema) {
        for item in map.values_mut() {
            default_node(values, item, false);
        }
    }
}

/// Every failure of `obj` against the schema. With `old` (an update), subtrees equal to the
/// old object's are skipped, as kube-apiserver's validation ratcheting does.
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    let (Some(map), Some(props)) = (obj.as_object(), properties(schema)) else {
        return out;
    };
    for key in required(schema) {
        if !TYPE_META.contains(&key) && !map.contains_key(key) {
            out.push(required_error(key));
        }
    }
    for (k, v) in map {
        if TYPE_META.contains(&k.as_str()) {
            continue;
        }
        if let Some(prop) = props.get(k) {
            check(prop, v, old.and_then(|o| o.get(k)), k, &mut out);
        }
    }
    out
}

fn required(schema: &Value) -> impl Iterator<Item = &str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn required_error(field: &str) -> FieldError {
    FieldError {
        reason: "FieldValueRequired",
        field: field.to_string(),
        message: "Required value".into(),
    }
}

fn invalid(field: &str, value: String, detail: String) -> FieldError {
    FieldError {
        reason: "FieldValueInvalid",
        field: field.to_string(),
        message: format!("Invalid value: {value}: {detail}"),
    }
}

/// The JSON type name kube-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &Number) -> bool {
    n.is_i64() || n.is_u64()
}

fn type_ok(want: &str, v: &Value) -> bool {
    match want {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => v
            .as_number()
            .is_some_and(|n| is_integer(n) || n.as_f64().is_some_and(|f| f.fract() == 0.0)),
        _ => true,
    }
}

/// Go's `%v` of a float64: shortest form, exponent from 1e+06 on (`4.294967295e+09`).
pub fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let exp = f.abs().log10().floor() as i32;
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let s = format!("{f:e}");
    let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let sign = if e < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", e.abs())
}

fn number_text(n: &Number) -> String {
    if is_integer(n) {
        n.to_string()
    } else {
        go_float(n.as_f64().unwrap_or(0.0))
    }
}

/// A bad value as `field.Error` prints it: strings quoted, numbers and booleans bare.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => number_text(n),
        Value::Bool(b) => b.to_string(),
        Value::Null => "\"null\"".into(),
        other => other.to_string(),
    }
}

fn limit(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn count(schema: &Value, key: &str) -> Option<usize> {
    schema.get(key).and_then(Value::as_u64).map(|n| n as usize)
}

thread_local! {
    static PATTERNS: RefCell<HashMap<String, Result<regex::Regex, String>>> = RefCell::new(HashMap::new());
}

/// Whether `s` matches the schema pattern (RE2 syntax, unanchored, as Go's `regexp`); Err
/// carries the compile error.
fn matches_pattern(pattern: &str, s: &str) -> Result<bool, String> {
    PATTERNS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let re = cache
            .entry(pattern.to_string())
            .or_insert_with(|| regex::Regex::new(pattern).map_err(|e| e.to_string()));
        re.as_ref().map(|r| r.is_match(s)).map_err(Clone::clone)
    })
}

fn check(schema: &Value, v: &Value, old: Option<&Value>, path: &str, out: &mut Vec<FieldError>) {
    if old == Some(v) {
        return;
    }
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if v.is_null() && flag(schema, "nullable") {
        return;
    }
    let want = if int_or_string {
        Some("integer,string")
    } else {
        schema.get("type").and_then(Value::as_str)
    };
    if let Some(want) = want {
        let ok = want.split(',').any(|t| type_ok(t, v));
        if !ok {
            let actual = type_name(v);
            out.push(FieldError {
                reason: "FieldValueTypeInvalid",
                field: path.to_string(),
                message: format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {want}: \"{actual}\""
                ),
            });
        }
    }
    match v {
        Value::String(s) => check_string(schema, s, v, path, out),
        Value::Number(n) => check_number(schema, n, v, path, out),
        Value::Array(items) => {
            if let Some(min) = count(schema, "minItems")
                && items.len() < min
            {
                out.push(invalid(
                    path,
                    items.len().to_string(),
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = count(schema, "maxItems")
                && items.len() > max
            {
                out.push(too_many(path, items.len(), max));
            }
        }
        Value::Object(map) => {
            if let Some(min) = count(schema, "minProperties")
                && map.len() < min
            {
                out.push(invalid(
                    path,
                    map.len().to_string(),
                    format!("{path} in body should have at least {min} properties"),
                ));
            }
            if let Some(max) = count(schema, "maxProperties")
                && map.len() > max
            {
                out.push(too_many(path, map.len(), max));
            }
        }
        _ => {}
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        out.push(FieldError {
            reason: "FieldValueNotSupported",
            field: path.to_string(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                shown(v),
                list.join(", ")
            ),
        });
    }
    match v {
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, None, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => {
            for key in required(schema) {
                if !map.contains_key(key) {
                    out.push(required_error(&child(path, key)));
                }
            }
            let props = properties(schema);
            let values = additional(schema);
            for (k, item) in map {
                let sub = props.and_then(|p| p.get(k)).or(values);
                if let Some(sub) = sub {
                    check(sub, item, old.and_then(|o| o.get(k)), &child(path, k), out);
                }
            }
        }
        _ => {}
    }
}

fn too_many(path: &str, actual: usize, max: usize) -> FieldError {
    FieldError {
        reason: "FieldValueTooMany",
        field: path.to_string(),
        message: format!("Too many: {actual}: must have at most {max} items"),
    }
}

fn check_string(schema: &Value, s: &str, v: &Value, path: &str, out: &mut Vec<FieldError>) {
    let len = s.chars().count();
    if let Some(min) = count(schema, "minLength")
        && len < min
    {
        out.push(invalid(
            path,
            shown(v),
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(max) = count(schema, "maxLength")
        && len > max
    {
        let unit = if max == 1 { "byte" } else { "bytes" };
        out.push(FieldError {
            reason: "FieldValueTooLong",
            field: path.to_string(),
            message: format!("Too long: may not be more than {max} {unit}"),
        });
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match matches_pattern(pattern, s) {
            Ok(true) => {}
            Ok(false) => out.push(invalid(
                path,
                shown(v),
                format!("{path} in body should match '{pattern}'"),
            )),
            Err(e) => out.push(invalid(
                path,
                shown(v),
                format!(
                    "{path} in body should match '{pattern}, but pattern is invalid: error parsing regexp: {e}'"
                ),
            )),
        }
    }
}

fn check_number(schema: &Value, n: &Number, v: &Value, path: &str, out: &mut Vec<FieldError>) {
    let x = n.as_f64().unwrap_or(0.0);
    if let Some(min) = limit(schema, "minimum") {
        let exclusive = flag(schema, "exclusiveMinimum");
        if x < min || (exclusive && x == min) {
            let rel = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(invalid(
                path,
                shown(v),
                format!("{path} in body should be {rel} {}", go_float(min)),
            ));
        }
    }
    if let Some(max) = limit(schema, "maximum") {
        let exclusive = flag(schema, "exclusiveMaximum");
        if x > max || (exclusive && x == max) {
            let rel = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(invalid(
                path,
                shown(v),
                format!("{path} in body should be {rel} {}", go_float(max)),
            ));
        }
    }
    if let Some(m) = limit(schema, "multipleOf")
        && m > 0.0
        && (x / m).fract() != 0.0
    {
        out.push(invalid(
            path,
            shown(v),
            format!("{path} in body should be a multiple of {}", go_float(m)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["name", "port"], "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "target": {"x-kubernetes-int-or-string": true},
                "note": {"type": "string", "nullable": true},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "weight": {"type": "integer", "default": 1}}}},
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        }})
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn every_failing_field_is_reported_in_kube_openapi_words() {
        let obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"name": "ABCDEFG", "port": "80", "mode": "warp", "ratio": 0,
                     "tags": ["a", "b", "c"], "labels": {"a": 1}, "target": true,
                     "items": [{"weight": "x"}]}});
        assert_eq!(
            messages(&validate(&schema(), &obj, None)),
            vec![
                "spec.items[0].weight: Invalid value: \"string\": spec.items[0].weight in body must be of type integer: \"string\"",
                "spec.labels.a: Invalid value: \"integer\": spec.labels.a in body must be of type string: \"integer\"",
                "spec.mode: Unsupported value: \"warp\": supported values: \"fast\", \"slow\"",
                "spec.name: Too long: may not be more than 5 bytes",
                "spec.name: Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'",
                "spec.port: Invalid value: \"string\": spec.port in body must be of type integer: \"string\"",
                "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
                "spec.tags: Too many: 3: must have at most 2 items",
                "spec.target: Invalid value: \"boolean\": spec.target in body must be of type integer,string: \"boolean\"",
            ]
        );
        let obj = json!({"spec": {"port": 0, "name": ""}});
        assert_eq!(
            messages(&validate(&schema(), &obj, None)),
            vec![
                "spec.name: Invalid value: \"\": spec.name in body should be at least 1 chars long",
                "spec.name: Invalid value: \"\": spec.name in body should match '^[a-z]+$'",
                "spec.port: Invalid value: 0: spec.port in body should be greater than or equal to 1",
            ]
        );
        assert_eq!(
            messages(&validate(&schema(), &json!({"spec": {}}), None)),
            vec!["spec.name: Required value", "spec.port: Required value"]
        );
        let ok = json!({"spec": {"name": "a", "port": 80, "target": "http", "note": null}});
        assert!(validate(&schema(), &ok, None).is_empty());
    }

    #[test]
    fn unchanged_subtrees_are_not_checked_again_on_update() {
        let old = json!({"spec": {"name": "a", "port": 0}, "status": {}});
        let new = json!({"spec": {"name": "a", "port": 0}, "status": {"ready": true}});
        assert!(validate(&schema(), &new, Some(&old)).is_empty());
        assert_eq!(validate(&schema(), &new, None).len(), 1);
    }

    #[test]
    fn pruning_reports_undeclared_fields_and_keeps_preserved_ones() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K",
            "metadata": {"name": "n", "bogus": 1}, "top": 1,
            "spec": {"name": "a", "port": 1, "foo": 2, "extra": {"anything": {"x": 1}},
                     "labels": {"free": "form"}, "items": [{"weight": 2, "bar": 3}],
                     "mode": null, "note": null, "ratio": null}});
        let unknown = prune(&schema(), &mut obj);
        assert_eq!(
            unknown,
            vec!["metadata.bogus", "spec.foo", "spec.items[0].bar", "top"]
        );
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
                "spec": {"name": "a", "port": 1, "extra": {"anything": {"x": 1}},
                         "labels": {"free": "form"}, "items": [{"weight": 2}],
                         "mode": null, "note": null}})
        );
        apply_defaults(&schema(), &mut obj);
        assert_eq!(obj["spec"]["mode"], "fast");
        assert_eq!(obj["spec"]["note"], Value::Null);
        let mut obj = json!({"spec": {"items": [{}]}});
        apply_defaults(&schema(), &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"mode": "fast", "items": [{"weight": 1}]}})
        );
        assert!(has_defaults(&schema()));
    }

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(65535.0), "65535");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(4294967295.0), "4.294967295e+09");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(-3.0), "-3");
    }
}
