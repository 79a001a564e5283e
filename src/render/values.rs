//! Install values: the defaults in `templates/values.yaml`, overridden by `--values FILE` and then
//! `--set key=value`. The defaults file is the schema: a key it does not list is rejected, and
//! an overriding value must have the default's type. A map written `{}` in the defaults is
//! free-form (annotations, node selectors), and a list is replaced as a whole.

use serde_json::{Map, Value};

use crate::yaml::YamlError;

/// The defaults, embedded at build time.
pub const DEFAULT_VALUES: &str = include_str!("../../templates/values.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    #[error("the built-in templates/values.yaml is not valid YAML")]
    Defaults(#[source] YamlError),
    #[error("the values file {file} is invalid")]
    File {
        file: String,
        #[source]
        source: YamlError,
    },
    #[error("unknown value {key:?} (from {origin}); {}", unknown_key_hint(key))]
    UnknownKey { key: String, origin: String },
    #[error("value {key:?} (from {origin}) must be {expected}, not {found}")]
    WrongType {
        key: String,
        origin: String,
        expected: &'static str,
        found: String,
    },
    #[error("--set {0:?} is not key=value; example: --set image.tag=0.2.0")]
    SetSyntax(String),
    #[error("the top level of {0} must be a map of values")]
    NotAMap(String),
    #[error("value {key:?} is {found:?}; it must be one of {allowed}")]
    NotOneOf {
        key: &'static str,
        found: String,
        allowed: String,
    },
    #[error(
        "value \"gateway.outboundPortRange\" is {0:?}; it must be FIRST-LAST with 1024 <= FIRST <= LAST <= 65535, clear of ports 4143, 4191 and 9990"
    )]
    PortRange(String),
    #[error(
        "value \"gateway.resources.limits.memory\" ({limit:?}) is too small for \"gateway.maxStreamsPerPeer\" ({streams}): that needs {needed_mib} MiB at 75% of the limit; {advice} (docs/performance.md, \"Memory budget\")"
    )]
    MemoryBudget {
        limit: String,
        streams: u64,
        needed_mib: u64,
        /// What to change: a lower stream limit when one fits, else the smallest memory limit.
        advice: String,
    },
    #[error("value {key:?} is {found:?}, not a Kubernetes memory quantity such as 256Mi")]
    Quantity { key: &'static str, found: String },
}

/// Keys other tools' charts have and mc spells differently, with what to write instead.
const SPELLED_DIFFERENTLY: &[(&str, &str)] = &[
    (
        "image.registry",
        "the registry is part of image.repository (--set image.repository=localhost:5000/mc)",
    ),
    (
        "image.name",
        "the image name is image.repository (--set image.repository=ghcr.io/mc-dev/mc)",
    ),
];

fn unknown_key_hint(key: &str) -> &'static str {
    SPELLED_DIFFERENTLY.iter().find(|(k, _)| *k == key).map_or(
        "known values are listed in docs/installation.md (see `mc install --help`)",
        |(_, hint)| *hint,
    )
}

/// Values whose every legal spelling is known: refused here with the list, not by the API server.
const ENUMS: &[(&str, &[&str])] = &[
    ("image.pullPolicy", &["Always", "IfNotPresent", "Never"]),
    (
        "gateway.service.type",
        &["LoadBalancer", "NodePort", "ClusterIP"],
    ),
];

fn check(values: &Value) -> Result<(), ValuesError> {
    for (key, allowed) in ENUMS {
        let found = key
            .split('.')
            .fold(values, |v, k| &v[k])
            .as_str()
            .unwrap_or_default();
        if !allowed.contains(&found) {
            return Err(ValuesError::NotOneOf {
                key,
                found: found.to_owned(),
                allowed: allowed.join(", "),
            });
        }
    }
    let range = values["gateway"]["outboundPortRange"]
        .as_str()
        .unwrap_or_default();
    if parse_port_range(range).is_none() {
        return Err(ValuesError::PortRange(range.to_owned()));
    }
    check_gateway_memory(&values["gateway"])
}

/// The stream limit must fit the memory limit (a limit removed from the values is not checked).
fn check_gateway_memory(gateway: &Value) -> Result<(), ValuesError> {
    const KEY: &str = "gateway.resources.limits.memory";
    let streams = gateway["maxStreamsPerPeer"].as_u64().unwrap_or_default();
    let Some(raw) = gateway["resources"]["limits"]["memory"].as_str() else {
        return Ok(());
    };
    let limit = parse_memory(raw).ok_or_else(|| ValuesError::Quantity {
        key: KEY,
        found: raw.to_owned(),
    })?;
    let budget = crate::gateway::budget::needed(streams);
    if budget > limit / 100 * crate::gateway::budget::USABLE_PERCENT {
        const MIB: u64 = 1024 * 1024;
        let smallest_limit = budget.div_ceil(crate::gateway::budget::USABLE_PERCENT) * 100;
        let raise = format!(
            "raise the limit to at least {}Mi",
            smallest_limit.div_ceil(MIB)
        );
        let advice = match crate::gateway::budget::max_streams_for(limit) {
            0 => {
                format!("the limit is below what the gateway needs with any stream limit; {raise}")
            }
            fits => format!("lower maxStreamsPerPeer to at most {fits}, or {raise}"),
        };
        return Err(ValuesError::MemoryBudget {
            limit: raw.to_owned(),
            streams,
            needed_mib: budget / MIB,
            advice,
        });
    }
    Ok(())
}

/// Bytes of a Kubernetes memory quantity (`256Mi`, `1G`, `268435456`, `1.5Gi`).
pub fn parse_memory(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit: u64 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000_u64.pow(2),
        "G" => 1000_u64.pow(3),
        "T" => 1000_u64.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    (number.is_finite() && number >= 0.0).then_some((number * unit as f64) as u64)
}

/// `first-last` outbound pool, clear of mc's own listening ports.
pub fn parse_port_range(range: &str) -> Option<(u16, u16)> {
    let (first, last) = range.split_once('-')?;
    let (first, last): (u16, u16) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    let own = [
        crate::k8s::GATEWAY_PORT,
        crate::k8s::GATEWAY_PROBE_PORT,
        crate::k8s::MIRROR_ADMIN_PORT,
    ];
    (1024 <= first && first <= last && !own.iter().any(|p| (first..=last).contains(p)))
        .then_some((first, last))
}

/// Parses `key=value` (value may be empty or contain `=`).
pub fn parse_set(arg: &str) -> Result<(String, String), ValuesError> {
    match arg.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.split('.').any(str::is_empty) => {
            Ok((key.to_owned(), value.to_owned()))
        }
        _ => Err(ValuesError::SetSyntax(arg.to_owned())),
    }
}

pub fn defaults() -> Result<Value, ValuesError> {
    serde_saphyr::from_str(DEFAULT_VALUES)
        .map_err(|e| ValuesError::Defaults(YamlError(Box::new(e))))
}

/// Defaults, then each values file in order, then each `--set` in order.
pub fn resolve(
    files: &[(String, String)],
    sets: &[(String, String)],
) -> Result<Value, ValuesError> {
    let schema = defaults()?;
    let mut values = schema.clone();
    for (file, text) in files {
        let overlay = parse_file(text, &schema).map_err(|source| ValuesError::File {
            file: file.clone(),
            source: YamlError(Box::new(source)),
        })?;
        match overlay {
            Value::Null => {}
            Value::Object(_) => merge(&mut values, overlay, &schema, "", file)?,
            _ => return Err(ValuesError::NotAMap(file.clone())),
        }
    }
    for (key, raw) in sets {
        set(&mut values, &schema, key, raw)?;
    }
    check(&values)?;
    Ok(values)
}

/// Parses a values file guided by the schema, so that a plain scalar where the defaults hold a
/// string keeps its spelling: `tag: 0.10` is the string "0.10", where untyped YAML reads the
/// number 0.1 (and `1.20` becomes `1.2`, `010` becomes `10`). Elsewhere the YAML types stand,
/// and `merge` checks them against the schema.
fn parse_file(text: &str, schema: &Value) -> Result<Value, serde_saphyr::Error> {
    use serde::de::DeserializeSeed as _;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::with_deserializer_from_str(text, |de| Guided(schema, "").deserialize(de))
}

/// A [`serde::de::DeserializeSeed`] that reads one node of a values file the way the schema node
/// says: a string as written, a fixed map key by key, anything else untyped.
struct Guided<'a>(&'a Value, &'a str);

/// The values of free-form maps (`{}` in the defaults) are strings, as Kubernetes labels are.
static STRING: Value = Value::String(String::new());

impl<'de> serde::de::DeserializeSeed<'de> for Guided<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        match self.0 {
            // `deserialize_option` first: `key: null` (or `key:`) keeps the default.
            Value::String(_) => de.deserialize_option(AsWritten),
            Value::Object(_) => de.deserialize_any(MapVisitor(self.0, self.1)),
            _ => serde::Deserialize::deserialize(de),
        }
    }
}

/// A scalar as written in the file; a map or list is kept as such, for `conform` to refuse with
/// the key's name.
struct AsWritten;

impl<'de> serde::de::Visitor<'de> for AsWritten {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        // serde-saphyr hands a string target any plain scalar exactly as written.
        de.deserialize_string(self)
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
    }
}

/// A map whose keys are looked up in the schema map; unknown keys are read untyped and refused
/// later by `merge`, which names them.
struct MapVisitor<'a>(&'a Value, &'a str);

impl<'de> serde::de::Visitor<'de> for MapVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map of values")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(self.1, &key);
            let schema = match self.0.get(&key) {
                Some(schema) => schema,
                None if is_free_form(self.0) => &STRING,
                None => {
                    out.insert(key, map.next_value::<Value>()?);
                    continue;
                }
            };
            // serde-saphyr refuses a map or list where a string is read; name the key.
            let value = map.next_value_seed(Guided(schema, &path));
            let value = if schema.is_string() {
                // Its message would repeat the location that serde-saphyr appends to ours.
                value.map_err(|_| {
                    serde::de::Error::custom(format_args!(
                        "value {path:?} must be a string, not a map or a list,"
                    ))
                })?
            } else {
                value?
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
    // Anything but a map is kept as read, for `merge` and `conform` to refuse with the key's name.
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn is_free_form(schema: &Value) -> bool {
    matches!(schema, Value::Object(map) if map.is_empty())
}

/// Converts `value` to the schema's type where that is lossless and unsurprising (numbers and
/// booleans where a string is expected, as YAML users write `cpu: 1`), else refuses.
fn conform(schema: &Value, value: Value, key: &str, origin: &str) -> Result<Value, ValuesError> {
    let wrong = |value: &Value, expected| ValuesError::WrongType {
        key: key.to_owned(),
        origin: origin.to_owned(),
        expected,
        found: type_name(value).to_owned(),
    };
    match (schema, value) {
        (Value::String(_), Value::String(s)) => Ok(Value::String(s)),
        (Value::String(_), Value::Number(n)) => Ok(Value::String(n.to_string())),
        (Value::String(_), Value::Bool(b)) => Ok(Value::String(b.to_string())),
        (Value::Number(d), Value::Number(n)) => {
            if d.is_u64() && !n.is_u64() {
                Err(wrong(&Value::Number(n), "a whole number of at least 0"))
            } else {
                Ok(Value::Number(n))
            }
        }
        (Value::Bool(_), v @ Value::Bool(_)) => Ok(v),
        (Value::Array(_), v @ Value::Array(_)) => Ok(v),
        (s, v @ Value::Object(_)) if is_free_form(s) => {
            // Free-form maps (labels, annotations, nodeSelector) hold strings only.
            if let Value::Object(map) = &v {
                for (k, item) in map {
                    if !item.is_string() {
                        return Err(ValuesError::WrongType {
                            key: join(key, k),
                            origin: origin.to_owned(),
                            expected: "a string",
                            found: type_name(item).to_owned(),
                        });
                    }
                }
            }
            Ok(v)
        }
        (schema, value) => Err(wrong(&value, type_name(schema))),
    }
}

fn merge(
    target: &mut Value,
    overlay: Value,
    schema: &Value,
    prefix: &str,
    origin: &str,
) -> Result<(), ValuesError> {
    let (Value::Object(target_map), Value::Object(overlay_map), Value::Object(schema_map)) =
        (&mut *target, overlay, schema)
    else {
        return Ok(());
    };
    for (key, value) in overlay_map {
        let path = join(prefix, &key);
        let Some(schema_value) = schema_map.get(&key) else {
            return Err(ValuesError::UnknownKey {
                key: path,
                origin: origin.to_owned(),
            });
        };
        match (schema_value, value) {
            (Value::Object(s), Value::Object(o)) if !s.is_empty() => {
                let slot = target_map
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                merge(slot, Value::Object(o), schema_value, &path, origin)?;
            }
            // `key: null` in a values file means "keep the default".
            (_, Value::Null) => {}
            (_, value) => {
                let value = conform(schema_value, value, &path, origin)?;
                target_map.insert(key, value);
            }
        }
    }
    Ok(())
}

fn set(values: &mut Value, schema: &Value, key: &str, raw: &str) -> Result<(), ValuesError> {
    let origin = format!("--set {key}={raw}");
    let parts: Vec<&str> = key.split('.').collect();
    let mut schema_node = schema;
    let mut node = values;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let path = parts[..=i].join(".");
        if is_free_form(schema_node) {
            // Inside a free-form map the rest of the key is one map key (`podAnnotations.a.b/c`).
            let rest = parts[i..].join(".");
            if let Value::Object(map) = node {
                map.insert(rest, Value::String(raw.to_owned()));
            }
            return Ok(());
        }
        let Some(child_schema) = schema_node.get(part) else {
            return Err(ValuesError::UnknownKey { key: path, origin });
        };
        let Value::Object(map) = node else {
            return Err(ValuesError::UnknownKey { key: path, origin });
        };
        if last {
            let value = match child_schema {
                Value::String(_) => Value::String(raw.to_owned()),
                Value::Bool(_) => raw
                    .parse::<bool>()
                    .map(Value::Bool)
                    .map_err(|_| wrong_set(&path, &origin, "true or false", raw))?,
                Value::Number(n) if n.is_u64() => raw
                    .parse::<u64>()
                    .map(|v| Value::Number(v.into()))
                    .map_err(|_| wrong_set(&path, &origin, "a whole number of at least 0", raw))?,
                Value::Number(_) => raw
                    .parse::<i64>()
                    .map(|v| Value::Number(v.into()))
                    .map_err(|_| wrong_set(&path, &origin, "a whole number", raw))?,
                other => {
                    return Err(ValuesError::WrongType {
                        key: path,
                        origin,
                        expected: if other.is_array() {
                            "a list (set it in a --values file)"
                        } else {
                            "a map (set its keys one by one, or use a --values file)"
                        },
                        found: "a single value".to_owned(),
                    });
                }
            };
            map.insert((*part).to_owned(), value);
            return Ok(());
        }
        schema_node = child_schema;
        node = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

fn wrong_set(key: &str, origin: &str, expected: &'static str, raw: &str) -> ValuesError {
    ValuesError::WrongType {
        key: key.to_owned(),
        origin: origin.to_owned(),
        expected,
        found: format!("{raw:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(pairs: &[&str]) -> Vec<(String, String)> {
        pairs.iter().map(|p| parse_set(p).unwrap()).collect()
    }

    #[test]
    fn a_stream_limit_that_does_not_fit_the_memory_limit_is_refused() {
        assert!(resolve(&[], &[]).is_ok(), "the defaults must fit");
        let err = resolve(&[], &sets(&["gateway.resources.limits.memory=128Mi"])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("maxStreamsPerPeer") && text.contains("at most"),
            "{text}"
        );
        assert!(
            resolve(
                &[],
                &sets(&[
                    "gateway.resources.limits.memory=128Mi",
                    "gateway.maxStreamsPerPeer=2000"
                ])
            )
            .is_ok()
        );
        // Below what the gateway needs with any stream limit: only a larger limit helps, and
        // the message says how large, not "at most 0 streams".
        let text = resolve(&[], &sets(&["gateway.resources.limits.memory=32Mi"]))
            .unwrap_err()
            .to_string();
        assert!(!text.contains("at most 0"), "{text}");
        let min_mib: u64 = text
            .split("at least ")
            .nth(1)
            .and_then(|t| t.split("Mi").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{text}"));
        let at = |mib: u64| format!("gateway.resources.limits.memory={mib}Mi");
        assert!(resolve(&[], &sets(&[&at(min_mib)])).is_ok(), "{text}");
        assert!(resolve(&[], &sets(&[&at(min_mib - 1)])).is_err());
        assert!(resolve(&[], &sets(&["gateway.resources.limits.memory=lots"])).is_err());
        assert_eq!(parse_memory("256Mi"), Some(256 << 20));
        assert_eq!(parse_memory("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_memory("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory("12Xi"), None);
    }

    #[test]
    fn defaults_parse_and_set_overrides_with_the_defaults_type() {
        let v = resolve(&[], &sets(&["image.tag=1.0", "gateway.replicas=3"])).unwrap();
        assert_eq!(v["image"]["tag"], Value::String("1.0".into()));
        assert_eq!(v["gateway"]["replicas"], Value::from(3u64));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_origin() {
        let err = resolve(&[], &sets(&["image.tagg=1"])).unwrap_err();
        assert!(err.to_string().contains("image.tagg"), "{err}");
        assert!(err.to_string().contains("--set"), "{err}");
        let file = ("v.yaml".to_owned(), "gateway:\n  replica: 2\n".to_owned());
        let err = resolve(&[file], &[]).unwrap_err();
        assert!(err.to_string().contains("gateway.replica"), "{err}");
        assert!(err.to_string().contains("v.yaml"), "{err}");
    }

    #[test]
    fn image_registry_points_at_image_repository() {
        let err = resolve(&[], &sets(&["image.registry=localhost:5000"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("--set image.repository=localhost:5000/mc"),
            "{err}"
        );
    }

    #[test]
    fn wrong_types_are_rejected() {
        assert!(resolve(&[], &sets(&["gateway.replicas=two"])).is_err());
        assert!(resolve(&[], &sets(&["gateway.replicas=-1"])).is_err());
        assert!(resolve(&[], &sets(&["image=x"])).is_err());
        let file = (
            "v.yaml".to_owned(),
            "gateway:\n  replicas: [1]\n".to_owned(),
        );
        assert!(resolve(&[file], &[]).is_err());
    }

    #[test]
    fn free_form_maps_take_any_string_key() {
        let v = resolve(
            &[],
            &sets(&["gateway.service.annotations.example.com/lb=internal"]),
        )
        .unwrap();
        assert_eq!(
            v["gateway"]["service"]["annotations"]["example.com/lb"],
            Value::String("internal".into())
        );
        let file = (
            "v.yaml".to_owned(),
            "podLabels:\n  team: net\nimage:\n  tag: 2\n".to_owned(),
        );
        let v = resolve(&[file], &[]).unwrap();
        assert_eq!(v["podLabels"]["team"], Value::String("net".into()));
        assert_eq!(v["image"]["tag"], Value::String("2".into()));
    }

    #[test]
    fn strings_in_values_files_keep_their_spelling() {
        let file = (
            "v.yaml".to_owned(),
            "image:\n  tag: 0.10\n  repository: null\ngateway:\n  replicas: 3\n  resources:\n    limits:\n      cpu: 1.50\npodLabels:\n  version: 1.20\n  enabled: true\nlogFilter: 010\n".to_owned(),
        );
        let v = resolve(&[file], &[]).unwrap();
        assert_eq!(v["image"]["tag"], Value::String("0.10".into()));
        assert_eq!(
            v["image"]["repository"],
            Value::String("ghcr.io/mc-dev/mc".into())
        );
        assert_eq!(v["gateway"]["replicas"], Value::from(3u64));
        assert_eq!(
            v["gateway"]["resources"]["limits"]["cpu"],
            Value::String("1.50".into())
        );
        assert_eq!(v["podLabels"]["version"], Value::String("1.20".into()));
        assert_eq!(v["podLabels"]["enabled"], Value::String("true".into()));
        assert_eq!(v["logFilter"], Value::String("010".into()));
    }

    #[test]
    fn values_files_that_are_empty_or_not_maps_are_handled() {
        for text in ["", "# only a comment\n", "~\n"] {
            let file = ("v.yaml".to_owned(), text.to_owned());
            assert_eq!(
                resolve(&[file], &[]).unwrap(),
                defaults().unwrap(),
                "{text:?}"
            );
        }
        let file = ("v.yaml".to_owned(), "- 1\n".to_owned());
        assert!(matches!(
            resolve(&[file], &[]),
            Err(ValuesError::NotAMap(_))
        ));
        let file = ("v.yaml".to_owned(), "image:\n  tag: {a: 1}\n".to_owned());
        let err = resolve(&[file], &[]).unwrap_err();
        let err = format!("{:#}", anyhow::Error::from(err));
        assert!(err.contains("image.tag"), "{err}");
        let file = (
            "v.yaml".to_owned(),
            "gateway:\n  replicas: 1.5\n".to_owned(),
        );
        let err = resolve(&[file], &[]).unwrap_err();
        assert!(err.to_string().contains("whole number"), "{err}");
    }

    #[test]
    fn yaml_errors_in_values_files_are_one_line_for_users() {
        for (yaml, needle) in [
            ("a: [\n", "line 1"),
            (
                "image:\n  tag: 1\n  tag: 2\n",
                "duplicate mapping key: tag at line 3",
            ),
            ("image:\n  tag: [1]\n", "\"image.tag\" must be a string"),
        ] {
            let file = ("v.yaml".to_owned(), yaml.to_owned());
            let err = resolve(&[file], &[]).unwrap_err();
            let text = format!("{:#}", anyhow::Error::from(err));
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(
                text.starts_with("the values file v.yaml is invalid: "),
                "{text}"
            );
            assert!(text.contains(needle), "{text}");
            assert!(!text.contains("Options"), "{text}");
        }
    }

    #[test]
    fn enums_and_the_port_range_are_checked() {
        assert!(resolve(&[], &sets(&["gateway.service.type=NodePort"])).is_ok());
        let err = resolve(&[], &sets(&["gateway.service.type=LoadBalancr"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("LoadBalancer, NodePort, ClusterIP"),
            "{err}"
        );
        assert!(resolve(&[], &sets(&["image.pullPolicy=always"])).is_err());
        assert_eq!(parse_port_range("10000-19999"), Some((10000, 19999)));
        for bad in [
            "",
            "10000",
            "2000-1000",
            "80-90",
            "4000-5000",
            "x-y",
            "10000-70000",
        ] {
            assert!(parse_port_range(bad).is_none(), "{bad}");
            let set = format!("gateway.outboundPortRange={bad}");
            assert!(resolve(&[], &sets(&[set.as_str()])).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_syntax_errors_are_caught() {
        for bad in ["novalue", "=x", "a..b=1", ".a=1"] {
            assert!(parse_set(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_set("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    }
}
