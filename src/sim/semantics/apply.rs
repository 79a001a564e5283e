//! Server-side apply and field ownership (`metadata.managedFields`), after the
//! structured-merge-diff semantics kube-apiserver uses.
//!
//! Every writer is a *manager*: appliers (`operation: Apply`, one entry per manager) own the
//! fields of their last applied configuration; other writes (`operation: Update`, one entry
//! per manager and apiVersion) own the fields they changed. Ownership is a set of field
//! paths, stored in the real FieldsV1 encoding: `f:<field>` for fields, `k:{"port":80,
//! "protocol":"TCP"}` for items of keyed lists (by their `listMapKeys`), `v:<json>` for set
//! members, and `".": {}` when a node is itself owned and also has owned children.
//!
//! An apply:
//! 1. conflicts if it would change a field another manager owns (unless `force`, which takes
//!    the field over);
//! 2. removes the fields this manager applied last time and no longer applies, unless
//!    another manager owns them too;
//! 3. merges the applied configuration into the live object (maps recursively, keyed lists
//!    item by item, sets by value, everything else replaced).
//!
//! Simplifications (documented in docs/simulator-libraries.md): no type schemas beyond the
//! list table of `patch::list_type`, so struct-versus-map distinctions for the `.` marker of
//! Update entries are a heuristic, and CR lists are atomic.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::patch::{ListType, list_type, map_is_atomic};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    pub manager: String,
    /// The field path as structured-merge-diff prints it: `.spec.ports[port=80,protocol="TCP"].name`.
    pub field: String,
    /// The cause message: `conflict with "other"` (Apply) or `conflict with "other" using v1` (Update).
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// 409 `Conflict` with `details.causes[{type: FieldManagerConflict, message, field}]`.
    #[error("{}", conflict_message(.causes))]
    Conflict { causes: Vec<ApplyConflict> },
    /// 422 `Invalid` / 400 `BadRequest`.
    #[error("{0}")]
    Invalid(String),
}

/// The Status message kube-apiserver gives an apply conflict.
fn conflict_message(causes: &[ApplyConflict]) -> String {
    if let [only] = causes {
        return format!(
            "Apply failed with 1 conflict: {}: {}",
            only.message, only.field
        );
    }
    let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in causes {
        by_manager
            .entry(c.message.as_str())
            .or_default()
            .push(c.field.as_str());
    }
    let mut lines = Vec::new();
    for (message, fields) in by_manager {
        // "conflict with X" becomes "conflicts with X:" in the multi-conflict form.
        lines.push(format!("{}:", message.replacen("conflict", "conflicts", 1)));
        lines.extend(fields.iter().map(|f| format!("- {f}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        causes.len(),
        lines.join("\n")
    )
}

const OP_APPLY: &str = "Apply";
const OP_UPDATE: &str = "Update";

/// Fields the server owns; they never appear in a field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// `f:name`
    Field(String),
    /// `k:{...}`: the canonical JSON of the key fields, sorted by name.
    Key(String),
    /// `v:<json>`
    Value(String),
    /// `i:N` (only read from foreign entries; never produced).
    Index(usize),
}

impl Step {
    fn encode(&self) -> String {
        match self {
            Step::Field(f) => format!("f:{f}"),
            Step::Key(k) => format!("k:{k}"),
            Step::Value(v) => format!("v:{v}"),
            Step::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<Self> {
        let (prefix, rest) = s.split_at_checked(2)?;
        match prefix {
            "f:" => Some(Step::Field(rest.to_string())),
            "k:" => Some(Step::Key(rest.to_string())),
            "v:" => Some(Step::Value(rest.to_string())),
            "i:" => rest.parse().ok().map(Step::Index),
            _ => None,
        }
    }
}

fn display_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Step::Key(k) => {
                let parsed: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = parsed.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Step::Value(v) => out.push_str(&format!("[={v}]")),
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A set of field paths as a tree; `member` marks the node itself as owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FieldSet {
    member: bool,
    children: BTreeMap<Step, FieldSet>,
}

impl FieldSet {
    fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    fn child(&mut self, step: Step) -> &mut FieldSet {
        self.children.entry(step).or_default()
    }

    fn insert(&mut self, path: &[Step]) {
        match path.split_first() {
            None => self.member = true,
            Some((first, rest)) => self.child(first.clone()).insert(rest),
        }
    }

    fn node(&self, path: &[Step]) -> Option<&FieldSet> {
        match path.split_first() {
            None => Some(self),
            Some((first, rest)) => self.children.get(first)?.node(rest),
        }
    }

    fn has_member(&self, path: &[Step]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// True if the node at `path` or anything below it is owned.
    fn touches(&self, path: &[Step]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, v) in &other.children {
            self.child(k.clone()).union(v);
        }
    }

    fn remove_member(&mut self, path: &[Step]) {
        match path.split_first() {
            None => self.member = false,
            Some((first, rest)) => {
                if let Some(c) = self.children.get_mut(first) {
                    c.remove_member(rest);
                    if c.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    /// Removes the node at `path` and everything below it.
    fn remove_subtree(&mut self, path: &[Step]) {
        match path.split_first() {
            None => *self = FieldSet::default(),
            Some((first, [])) => {
                self.children.remove(first);
            }
            Some((first, rest)) => {
                if let Some(c) = self.children.get_mut(first) {
                    c.remove_subtree(rest);
                    if c.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    /// All member paths, parents before children.
    fn members(&self) -> Vec<Vec<Step>> {
        fn walk(set: &FieldSet, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
            if set.member {
                out.push(path.clone());
            }
            for (k, v) in &set.children {
                path.push(k.clone());
                walk(v, path, out);
                path.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, v) in &self.children {
            m.insert(k.encode(), v.to_fields_v1());
        }
        Value::Object(m)
    }

    fn from_fields_v1(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        let Some(m) = v.as_object() else {
            return set;
        };
        if m.is_empty() {
            set.member = true;
        }
        for (k, child) in m {
            if k == "." {
                set.member = true;
            } else if let Some(step) = Step::decode(k) {
                set.children.insert(step, FieldSet::from_fields_v1(child));
            }
        }
        set
    }
}

/// Schema context: the kind, and the field-name path (list steps add nothing) for `list_type`.
struct Ctx<'a> {
    api_version: &'a str,
    kind: &'a str,
}

impl Ctx<'_> {
    fn list_type(&self, names: &[String]) -> ListType {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        list_type(self.api_version, self.kind, &refs)
    }

    fn atomic_map(&self, names: &[String]) -> bool {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        map_is_atomic(self.api_version, self.kind, &refs)
    }
}

/// Canonical key of a keyed-list item, or an error naming the missing key.
fn item_key(item: &Value, keys: &[&str]) -> Result<String, String> {
    let mut m = BTreeMap::new();
    for k in keys {
        let v = match item.get(*k) {
            Some(v) if !v.is_null() => v.clone(),
            // The real server defaults `protocol` before computing ownership.
            _ if *k == "protocol" => json!("TCP"),
            _ => return Err((*k).to_string()),
        };
        m.insert(*k, v);
    }
    serde_json::to_string(&m).map_err(|e| e.to_string())
}

fn is_server_field(names: &[String]) -> bool {
    match names {
        [top] => top == "apiVersion" || top == "kind",
        [meta, f] => meta == "metadata" && SERVER_METADATA.contains(&f.as_str()),
        _ => false,
    }
}

/// The field set an applied configuration claims.
fn applied_set(ctx: &Ctx<'_>, applied: &Value) -> Result<FieldSet, ApplyError> {
    fn walk(
        ctx: &Ctx<'_>,
        v: &Value,
        names: &mut Vec<String>,
        path: &mut Vec<Step>,
        set: &mut FieldSet,
    ) -> Result<(), ApplyError> {
        match v {
            Value::Object(m) if !m.is_empty() && !ctx.atomic_map(names) => {
                for (k, child) in m {
                    names.push(k.clone());
                    if !is_server_field(names) && !child.is_null() {
                        path.push(Step::Field(k.clone()));
                        walk(ctx, child, names, path, set)?;
                        path.pop();
                    }
                    names.pop();
                }
                Ok(())
            }
            Value::Array(items) => match ctx.list_type(names) {
                ListType::Atomic => {
                    set.insert(path);
                    Ok(())
                }
                ListType::Set => {
                    for item in items {
                        path.push(Step::Value(item.to_string()));
                        set.insert(path);
                        path.pop();
                    }
                    Ok(())
                }
                ListType::Map { ssa_keys, .. } => {
                    let mut seen = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let key = item_key(item, ssa_keys).map_err(|k| {
                            ApplyError::Invalid(format!(
                                "{}: element {i}: associative list with keys has an element that omits key field {k:?} (and doesn't have default value)",
                                display_path(path)
                            ))
                        })?;
                        if seen.contains(&key) {
                            return Err(ApplyError::Invalid(format!(
                                "{}: duplicate entries for key {key}",
                                display_path(path)
                            )));
                        }
                        seen.push(key.clone());
                        path.push(Step::Key(key));
                        set.insert(path);
                        walk(ctx, item, names, path, set)?;
                        path.pop();
                    }
                    Ok(())
                }
            },
            _ => {
                set.insert(path);
                Ok(())
            }
        }
    }
    let mut set = FieldSet::default();
    walk(ctx, applied, &mut Vec::new(), &mut Vec::new(), &mut set)?;
    Ok(set)
}

/// The field-name path of a step path (list steps dropped), for schema lookups.
fn names_of(path: &[Step]) -> Vec<String> {
    path.iter()
        .filter_map(|s| match s {
            Step::Field(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn find_item<'v>(list: &'v [Value], key: &str, keys: &[&str]) -> Option<(usize, &'v Value)> {
    list.iter()
        .enumerate()
        .find(|(_, it)| item_key(it, keys).is_ok_and(|k| k == key))
}

fn value_at<'v>(ctx: &Ctx<'_>, root: &'v Value, path: &[Step]) -> Option<&'v Value> {
    let mut cur = root;
    for (i, step) in path.iter().enumerate() {
        cur = match step {
            Step::Field(f) => cur.get(f)?,
            Step::Key(k) => {
                let ListType::Map { ssa_keys, .. } = ctx.list_type(&names_of(&path[..i])) else {
                    return None;
                };
                find_item(cur.as_array()?, k, ssa_keys)?.1
            }
            Step::Value(v) => cur.as_array()?.iter().find(|it| it.to_string() == *v)?,
            Step::Index(n) => cur.as_array()?.get(*n)?,
        };
    }
    Some(cur)
}

fn remove_at(ctx: &Ctx<'_>, root: &mut Value, path: &[Step]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = root;
    for (i, step) in parent_path.iter().enumerate() {
        let next = match step {
            Step::Field(f) => cur.get_mut(f),
            Step::Key(k) => match ctx.list_type(&names_of(&parent_path[..i])) {
                ListType::Map { ssa_keys, .. } => {
                    let list = cur.as_array_mut();
                    let idx = list
                        .as_deref()
                        .and_then(|l| find_item(l, k, ssa_keys).map(|(i, _)| i));
                    list.zip(idx).and_then(|(l, i)| l.get_mut(i))
                }
                _ => None,
            },
            Step::Value(_) | Step::Index(_) => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Step::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Step::Key(k) => {
            if let ListType::Map { ssa_keys, .. } = ctx.list_type(&names_of(parent_path))
                && let Some(list) = cur.as_array_mut()
            {
                list.retain(|it| item_key(it, ssa_keys).map_or(true, |key| key != *k));
            }
        }
        Step::Value(v) => {
            if let Some(list) = cur.as_array_mut() {
                list.retain(|it| it.to_string().as_str() != v.as_str());
            }
        }
        Step::Index(_) => {}
    }
}

/// Merges the applied configuration into `live`: maps recursively, keyed lists by item,
/// sets by value, everything else replaced; `null` removes.
fn merge_applied(ctx: &Ctx<'_>, live: &mut Value, applied: &Value, names: &mut Vec<String>) {
    match (live, applied) {
        (live @ Value::Object(_), Value::Object(_)) if ctx.atomic_map(names) => {
            *live = strip_nulls(applied);
        }
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                names.push(k.clone());
                if is_server_field(names) && names.len() > 1 {
                    // metadata.name/namespace come from the live object or the request path.
                    if !l.contains_key(k) && !av.is_null() {
                        l.insert(k.clone(), av.clone());
                    }
                } else if av.is_null() {
                    l.remove(k);
                } else {
                    match l.get_mut(k) {
                        Some(lv) => merge_applied(ctx, lv, av, names),
                        None => {
                            let mut fresh = empty_like(av);
                            merge_applied(ctx, &mut fresh, av, names);
                            l.insert(k.clone(), fresh);
                        }
                    }
                }
                names.pop();
            }
        }
        (Value::Array(l), Value::Array(a)) => match ctx.list_type(names) {
            ListType::Atomic => *l = a.iter().map(strip_nulls).collect(),
            ListType::Set => {
                let key = |v: &Value| Some(v.to_string());
                *l = merge_list_items(l, a, key, |live, applied| {
                    live.cloned().unwrap_or_else(|| applied.clone())
                });
            }
            ListType::Map { ssa_keys, .. } => {
                let key = |v: &Value| item_key(v, ssa_keys).ok();
                *l = merge_list_items(l, a, key, |live, applied| {
                    let mut out = live.cloned().unwrap_or_else(|| json!({}));
                    merge_applied(ctx, &mut out, applied, names);
                    out
                });
            }
        },
        (live, applied) => {
            let mut fresh = empty_like(applied);
            if fresh.is_null() {
                *live = applied.clone();
            } else {
                merge_applied(ctx, &mut fresh, applied, names);
                *live = fresh;
            }
        }
    }
}

/// The item order of structured-merge-diff's list merge (`visitListItems`): live-only items
/// keep their place, applied items come in applied order, and items present in both move to
/// where the applied configuration puts them relative to each other.
fn merge_list_items(
    live: &[Value],
    applied: &[Value],
    key: impl Fn(&Value) -> Option<String>,
    mut merge: impl FnMut(Option<&Value>, &Value) -> Value,
) -> Vec<Value> {
    let lkeys: Vec<Option<String>> = live.iter().map(&key).collect();
    let rkeys: Vec<Option<String>> = applied.iter().map(&key).collect();
    let in_rhs = |k: &Option<String>| k.is_some() && rkeys.contains(k);
    let mut shared: std::collections::VecDeque<&Option<String>> = rkeys
        .iter()
        .filter(|k| k.is_some() && lkeys.contains(k))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: Vec<&Option<String>> = Vec::new();
    let live_item = |k: &Option<String>| {
        lkeys
            .iter()
            .position(|lk| lk.is_some() && lk == k)
            .and_then(|i| live.get(i))
    };
    let mut out = Vec::with_capacity(live.len() + applied.len());
    let (mut li, mut ri) = (0, 0);
    while li < live.len() || ri < applied.len() {
        if li < live.len() && ri < applied.len() {
            if lkeys[li].is_some() && lkeys[li] == rkeys[ri] {
                merged_rhs.push(&rkeys[ri]);
                out.push(merge(Some(&live[li]), &applied[ri]));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if in_rhs(&lkeys[li]) && next_shared.is_some_and(|n| *n != lkeys[li]) {
                li += 1;
                continue;
            }
        }
        if li < live.len() {
            if !in_rhs(&lkeys[li]) {
                out.push(live[li].clone());
                li += 1;
                continue;
            }
            if merged_rhs.contains(&&lkeys[li]) {
                li += 1;
                continue;
            }
        }
        if ri < applied.len() {
            let k = &rkeys[ri];
            if k.is_some() {
                merged_rhs.push(k);
                out.push(merge(live_item(k), &applied[ri]));
            }
            ri += 1;
            if next_shared.is_some_and(|n| n == k) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

fn empty_like(v: &Value) -> Value {
    match v {
        Value::Object(_) => json!({}),
        Value::Array(_) => json!([]),
        _ => Value::Null,
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// A parsed `metadata.managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    set: FieldSet,
}

impl Entry {
    fn cause_message(&self) -> String {
        let mut who = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            who = format!("{who} with subresource {sub:?}");
        }
        if self.operation == OP_UPDATE {
            format!("conflict with {who} using {}", self.api_version)
        } else {
            format!("conflict with {who}")
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), json!(s));
        }
        Value::Object(m)
    }
}

fn read_entries(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            Entry {
                manager: s("manager").unwrap_or_default(),
                operation: s("operation").unwrap_or_default(),
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time"),
                subresource: s("subresource").filter(|s| !s.is_empty()),
                set: e
                    .get("fieldsV1")
                    .map(FieldSet::from_fields_v1)
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// What an apply through `/status` may touch: identity, and `status`.
fn status_part(applied: &Value) -> Value {
    let mut out = Map::new();
    for k in ["apiVersion", "kind"] {
        if let Some(v) = applied.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    let mut meta = Map::new();
    for k in ["name", "namespace"] {
        if let Some(v) = applied.pointer(&format!("/metadata/{k}")) {
            meta.insert(k.into(), v.clone());
        }
    }
    out.insert("metadata".into(), Value::Object(meta));
    if let Some(status) = applied.get("status") {
        out.insert("status".into(), status.clone());
    }
    Value::Object(out)
}

fn str_field<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Server-side apply of `applied` by `manager` to the main resource. Returns the new object
/// (server-set metadata such as resourceVersion still to be set by the caller); `live` None
/// means create. For kinds with a status subresource the caller drops `status` from
/// `applied` first, as kube-apiserver ignores it on the main resource.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    server_side_apply_to(live, applied, manager, None, force, now)
}

/// Server-side apply through a subresource (`Some("status")` for `PATCH …/status` with an
/// apply patch). Only `status` of the applied configuration counts and nothing else of the
/// object changes; ownership goes to a separate entry with `subresource: status`, so a
/// manager that applies both spec (main resource) and status (subresource) never prunes one
/// with the other — as in kube-apiserver.
pub fn server_side_apply_to(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    let status_only;
    let applied = if subresource == Some("status") {
        status_only = status_part(applied);
        &status_only
    } else {
        applied
    };
    if manager.is_empty() {
        return Err(ApplyError::Invalid(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
        ));
    }
    if !applied.is_object() {
        return Err(ApplyError::Invalid(
            "the applied configuration must be an object".into(),
        ));
    }
    let api_version = str_field(applied, "apiVersion");
    let kind = str_field(applied, "kind");
    if api_version.is_empty() || kind.is_empty() {
        return Err(ApplyError::Invalid(
            "the applied configuration must set apiVersion and kind".into(),
        ));
    }
    if let Some(live) = live {
        let live_kind = str_field(live, "kind");
        if !live_kind.is_empty() && live_kind != kind {
            return Err(ApplyError::Invalid(format!(
                "the applied kind {kind:?} does not match the existing object's kind {live_kind:?}"
            )));
        }
    }
    if applied
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let ctx = Ctx { api_version, kind };
    let new_set = applied_set(&ctx, applied)?;
    let mut entries = read_entries(live);
    let mine = |e: &Entry| {
        e.manager == manager && e.operation == OP_APPLY && e.subresource.as_deref() == subresource
    };
    let previous = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.set.clone())
        .unwrap_or_default();

    let mut object = live.cloned().unwrap_or_else(|| json!({}));

    // 1. Conflicts: leaf fields of the applied configuration that another manager owns and
    //    that this apply would change.
    let mut causes = Vec::new();
    let mut taken = Vec::new();
    for path in new_set.members() {
        let is_leaf = new_set.node(&path).is_some_and(|n| n.children.is_empty());
        if !is_leaf {
            continue;
        }
        let (Some(live_v), Some(applied_v)) = (
            value_at(&ctx, &object, &path),
            value_at(&ctx, applied, &path),
        ) else {
            continue;
        };
        if strip_nulls(live_v) == strip_nulls(applied_v) {
            continue;
        }
        for e in entries.iter().filter(|e| !mine(e)) {
            if e.set.has_member(&path) {
                causes.push(ApplyConflict {
                    manager: e.manager.clone(),
                    field: display_path(&path),
                    message: e.cause_message(),
                });
                taken.push(path.clone());
            }
        }
    }
    if !causes.is_empty() && !force {
        return Err(ApplyError::Conflict { causes });
    }
    for e in entries.iter_mut().filter(|e| !mine(e)) {
        for path in &taken {
            e.set.remove_member(path);
        }
    }

    // 2. Fields applied last time and not now, unless someone else also owns them.
    let mut others = FieldSet::default();
    for e in entries.iter().filter(|e| !mine(e)) {
        others.union(&e.set);
    }
    for path in previous.members() {
        if new_set.touches(&path) || others.touches(&path) {
            continue;
        }
        remove_at(&ctx, &mut object, &path);
    }

    // 3. Merge.
    merge_applied(&ctx, &mut object, applied, &mut Vec::new());

    let entry = Entry {
        manager: manager.to_string(),
        operation: OP_APPLY.into(),
        api_version: api_version.to_string(),
        time: Some(now.to_string()),
        subresource: subresource.map(str::to_string),
        set: new_set,
    };
    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) => *e = entry,
        None => entries.push(entry),
    }
    write_entries(&mut object, &entries);
    Ok(object)
}

/// The paths that differ between `old` and `new`: `changed` are owned by the writer,
/// `removed` are no longer anyone's.
struct Diff {
    changed: FieldSet,
    removed: FieldSet,
}

/// Non-pointer structs of the built-in types (object and pod-template metadata, spec, status,
/// template, Deployment strategy): kube-apiserver never records them as owned themselves, so
/// Update entries show no `.` for them. Maps and pointer structs do get one.
fn is_struct_root(names: &[String]) -> bool {
    matches!(
        names.last().map(String::as_str),
        Some("metadata" | "spec" | "status" | "template" | "strategy" | "jobTemplate")
    )
}

fn add_all(
    ctx: &Ctx<'_>,
    v: &Value,
    names: &mut Vec<String>,
    path: &mut Vec<Step>,
    set: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() && !ctx.atomic_map(names) => {
            if !is_struct_root(names) && !path.is_empty() {
                set.insert(path);
            }
            for (k, child) in m {
                names.push(k.clone());
                if !is_server_field(names) {
                    path.push(Step::Field(k.clone()));
                    add_all(ctx, child, names, path, set);
                    path.pop();
                }
                names.pop();
            }
        }
        Value::Array(items) => {
            let list_type = ctx.list_type(names);
            match list_type {
                ListType::Atomic => {}
                ListType::Set => {
                    for item in items {
                        path.push(Step::Value(item.to_string()));
                        set.insert(path);
                        path.pop();
                    }
                }
                ListType::Map { ssa_keys, .. } => {
                    for item in items {
                        let Ok(key) = item_key(item, ssa_keys) else {
                            continue;
                        };
                        path.push(Step::Key(key));
                        add_all(ctx, item, names, path, set);
                        set.insert(path);
                        path.pop();
                    }
                }
            }
            // PodSpec.containers is the one required (non-omitempty) keyed list in scope:
            // kube-apiserver does not own the list node itself there.
            let required_list = matches!(list_type, ListType::Map { .. })
                && names.last().map(String::as_str) == Some("containers");
            if !required_list {
                set.insert(path);
            }
        }
        _ => set.insert(path),
    }
}

fn diff(
    ctx: &Ctx<'_>,
    old: &Value,
    new: &Value,
    names: &mut Vec<String>,
    path: &mut Vec<Step>,
    out: &mut Diff,
) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) if !n.is_empty() && !ctx.atomic_map(names) => {
            for (k, nv) in n {
                names.push(k.clone());
                if !is_server_field(names) {
                    path.push(Step::Field(k.clone()));
                    match o.get(k) {
                        Some(ov) => diff(ctx, ov, nv, names, path, out),
                        None => add_all(ctx, nv, names, path, &mut out.changed),
                    }
                    path.pop();
                }
                names.pop();
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                path.push(Step::Field(k.clone()));
                out.removed.insert(path);
                path.pop();
            }
        }
        (Value::Array(o), Value::Array(n)) => match ctx.list_type(names) {
            ListType::Map { ssa_keys, .. }
                if o.iter().chain(n).all(|it| item_key(it, ssa_keys).is_ok()) =>
            {
                for item in n {
                    let Ok(key) = item_key(item, ssa_keys) else {
                        continue;
                    };
                    path.push(Step::Key(key.clone()));
                    match find_item(o, &key, ssa_keys) {
                        Some((_, ov)) => diff(ctx, ov, item, names, path, out),
                        None => {
                            add_all(ctx, item, names, path, &mut out.changed);
                            out.changed.insert(path);
                        }
                    }
                    path.pop();
                }
                for item in o {
                    if let Ok(key) = item_key(item, ssa_keys)
                        && find_item(n, &key, ssa_keys).is_none()
                    {
                        path.push(Step::Key(key));
                        out.removed.insert(path);
                        path.pop();
                    }
                }
            }
            ListType::Set => {
                for item in n.iter().filter(|it| !o.contains(it)) {
                    path.push(Step::Value(item.to_string()));
                    out.changed.insert(path);
                    path.pop();
                }
                for item in o.iter().filter(|it| !n.contains(it)) {
                    path.push(Step::Value(item.to_string()));
                    out.removed.insert(path);
                    path.pop();
                }
            }
            _ => out.changed.insert(path),
        },
        _ => add_all(ctx, new, names, path, &mut out.changed),
    }
}

/// The ownership an update starts from, as kube-apiserver's field manager decides it: the
/// `managedFields` the client sent if they are non-empty and valid (this is how kubectl's
/// client-side-to-server-side apply migration rewrites them with a JSON patch), a reset if
/// the client sent exactly `[{}]`, otherwise the stored ones (clients that do not know the
/// field cannot drop it).
fn base_entries(old: Option<&Value>, new: &Value) -> Vec<Entry> {
    let sent = new
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    match sent.map(Vec::as_slice) {
        Some([only]) if only.as_object().is_some_and(Map::is_empty) => Vec::new(),
        Some(list) if !list.is_empty() && list.iter().all(valid_entry) => read_entries(Some(new)),
        _ => read_entries(old),
    }
}

fn valid_entry(e: &Value) -> bool {
    let op = e.get("operation").and_then(Value::as_str);
    e.get("manager").is_some_and(Value::is_string)
        && matches!(op, Some(OP_APPLY | OP_UPDATE))
        && e.get("fieldsV1").is_none_or(Value::is_object)
}

/// Records a non-apply write (create, update, patch) by `manager`: it takes ownership of the
/// fields that changed between `old` and `new` (others lose them), and fields that no longer
/// exist lose their owners. See [`base_entries`] for `managedFields` sent by the client.
pub fn track_update(old: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
    track_update_to(old, new, manager, None, now);
}

/// [`track_update`] for a write through a subresource (`Some("status")`): the writer's
/// ownership is recorded in its own entry with `subresource`, like kube-apiserver does.
pub fn track_update_to(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let api_version = str_field(new, "apiVersion").to_string();
    let kind = str_field(new, "kind").to_string();
    let ctx = Ctx {
        api_version: &api_version,
        kind: &kind,
    };
    let empty = json!({});
    let mut out = Diff {
        changed: FieldSet::default(),
        removed: FieldSet::default(),
    };
    diff(
        &ctx,
        old.unwrap_or(&empty),
        new,
        &mut Vec::new(),
        &mut Vec::new(),
        &mut out,
    );
    let mut entries = base_entries(old, new);
    let changed_members = out.changed.members();
    let removed_members = out.removed.members();
    for e in &mut entries {
        for path in &changed_members {
            e.set.remove_member(path);
        }
        for path in &removed_members {
            e.set.remove_subtree(path);
        }
    }
    let manager = if manager.is_empty() {
        "unknown"
    } else {
        manager
    };
    if !out.changed.is_empty() {
        let is_mine = |e: &Entry| {
            e.manager == manager
                && e.operation == OP_UPDATE
                && e.api_version == api_version
                && e.subresource.as_deref() == subresource
        };
        match entries.iter_mut().find(|e| is_mine(e)) {
            Some(e) => {
                e.set.union(&out.changed);
                e.time = Some(now.to_string());
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: OP_UPDATE.into(),
                api_version: api_version.clone(),
                time: Some(now.to_string()),
                subresource: subresource.map(str::to_string),
                set: out.changed,
            }),
        }
    }
    if !new.get("metadata").is_some_and(Value::is_object)
        && let Some(m) = new.as_object_mut()
    {
        m.insert("metadata".into(), json!({}));
    }
    write_entries(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const T1: &str = "2026-11-25T19:00:00Z";
    const T2: &str = "2026-11-25T19:05:00Z";

    fn cm(data: Value) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"demo"},"data":data})
    }

    fn managed(obj: &Value) -> Vec<(String, String, Value)> {
        obj["metadata"]["managedFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["manager"].as_str().unwrap().to_string(),
                            e["operation"].as_str().unwrap().to_string(),
                            e["fieldsV1"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn service(ports: Value) -> Value {
        json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"demo"},
               "spec":{"selector":{"app":"web"},"ports":ports}})
    }

    #[test]
    fn first_apply_creates_object_with_apply_entry_in_fields_v1() {
        let applied = service(json!([{"name":"http","port":80,"targetPort":8080}]));
        let got = server_side_apply(None, &applied, "kubectl", false, T1).unwrap();
        assert_eq!(got["spec"], applied["spec"]);
        assert_eq!(got["metadata"]["name"], "web");
        assert_eq!(
            got["metadata"]["managedFields"],
            json!([{"manager":"kubectl","operation":"Apply","apiVersion":"v1","time":T1,
                    "fieldsType":"FieldsV1","fieldsV1":{
                        "f:spec":{
                            "f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{
                                ".":{},"f:name":{},"f:port":{},"f:targetPort":{}}},
                            "f:selector":{}}}}])
        );
    }

    #[test]
    fn applying_again_without_a_field_removes_it() {
        let v1 = server_side_apply(None, &cm(json!({"a":"1","b":"2"})), "mgr", false, T1).unwrap();
        let v2 = server_side_apply(Some(&v1), &cm(json!({"a":"1"})), "mgr", false, T2).unwrap();
        assert_eq!(v2["data"], json!({"a":"1"}));
        assert_eq!(managed(&v2)[0].2, json!({"f:data":{"f:a":{}}}));
        assert_eq!(v2["metadata"]["managedFields"][0]["time"], T2);
    }

    #[test]
    fn dropped_keyed_list_item_is_removed_and_others_kept() {
        let v1 = server_side_apply(
            None,
            &service(json!([{"name":"http","port":80},{"name":"https","port":443}])),
            "mgr",
            false,
            T1,
        )
        .unwrap();
        let v2 = server_side_apply(
            Some(&v1),
            &service(json!([{"name":"https","port":443}])),
            "mgr",
            false,
            T2,
        )
        .unwrap();
        assert_eq!(v2["spec"]["ports"], json!([{"name":"https","port":443}]));
    }

    #[test]
    fn field_also_owned_by_another_manager_is_kept() {
        let v1 = server_side_apply(None, &cm(json!({"a":"1","b":"2"})), "one", false, T1).unwrap();
        // A second applier claims b with the same value: shared ownership, no conflict.
        let v2 = server_side_apply(Some(&v1), &cm(json!({"b":"2"})), "two", false, T1).unwrap();
        let v3 = server_side_apply(Some(&v2), &cm(json!({"a":"1"})), "one", false, T2).unwrap();
        assert_eq!(v3["data"], json!({"a":"1","b":"2"}));
        // Once "two" drops b too, nobody owns it and it goes.
        let v4 = server_side_apply(Some(&v3), &cm(json!({})), "two", false, T2).unwrap();
        assert_eq!(v4["data"], json!({"a":"1"}));
    }

    #[test]
    fn changing_a_field_owned_by_another_manager_conflicts_unless_forced() {
        let deploy = |replicas: i64| {
            json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
                   "spec":{"replicas":replicas}})
        };
        let v1 = server_side_apply(None, &deploy(1), "other", false, T1).unwrap();
        let err = server_side_apply(Some(&v1), &deploy(3), "mine", false, T2).unwrap_err();
        let ApplyError::Conflict { causes } = &err else {
            panic!("expected a conflict, got {err}");
        };
        assert_eq!(
            causes,
            &vec![ApplyConflict {
                manager: "other".into(),
                field: ".spec.replicas".into(),
                message: "conflict with \"other\"".into(),
            }]
        );
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"other\": .spec.replicas"
        );

        let forced = server_side_apply(Some(&v1), &deploy(3), "mine", true, T2).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let owners = managed(&forced);
        assert_eq!(owners.len(), 1, "other lost its only field: {owners:?}");
        assert_eq!(owners[0].0, "mine");
        assert_eq!(owners[0].2, json!({"f:spec":{"f:replicas":{}}}));
    }

    #[test]
    fn update_managers_conflict_with_apiversion_in_message() {
        let mut created = cm(json!({"x":"1","y":"1"}));
        track_update(None, &mut created, "kubectl-create", T1);
        let err = server_side_apply(
            Some(&created),
            &cm(json!({"x":"2","y":"2"})),
            "kubectl",
            false,
            T2,
        )
        .unwrap_err();
        let ApplyError::Conflict { causes } = &err else {
            panic!("expected a conflict, got {err}");
        };
        assert_eq!(causes.len(), 2);
        assert_eq!(
            causes[0].message,
            "conflict with \"kubectl-create\" using v1"
        );
        assert_eq!(causes[0].field, ".data.x");
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-create\" using v1:\n- .data.x\n- .data.y"
        );
        // The same values are no conflict: ownership becomes shared.
        let ok =
            server_side_apply(Some(&created), &cm(json!({"x":"1"})), "kubectl", false, T2).unwrap();
        assert_eq!(managed(&ok).len(), 2);
    }

    #[test]
    fn apply_merges_into_fields_set_by_others() {
        let mut live = service(json!([{"name":"http","port":80,"protocol":"TCP","targetPort":80}]));
        live["spec"]["clusterIP"] = json!("10.0.0.1");
        live["metadata"]["labels"] = json!({"team":"a"});
        let applied = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","labels":{"app":"web"}},
                              "spec":{"ports":[{"name":"http","port":80,"targetPort":8080}]}});
        let got = server_side_apply(Some(&live), &applied, "mgr", false, T1).unwrap();
        assert_eq!(got["spec"]["clusterIP"], "10.0.0.1");
        assert_eq!(got["spec"]["selector"], json!({"app":"web"}));
        assert_eq!(
            got["spec"]["ports"],
            json!([{"name":"http","port":80,"protocol":"TCP","targetPort":8080}])
        );
        assert_eq!(got["metadata"]["labels"], json!({"team":"a","app":"web"}));
        assert_eq!(got["metadata"]["namespace"], "demo");
    }

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        let deploy = |containers: Value| {
            json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
                   "spec":{"template":{"spec":{"containers":containers}}}})
        };
        let v1 = server_side_apply(
            None,
            &deploy(json!([{"name":"web","image":"nginx:1.25","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]},
                           {"name":"sidecar","image":"busybox"}])),
            "mgr",
            false,
            T1,
        )
        .unwrap();
        let v2 = server_side_apply(
            Some(&v1),
            &deploy(json!([{"name":"web","image":"nginx:1.26","env":[{"name":"A","value":"1"}]}])),
            "mgr",
            false,
            T2,
        )
        .unwrap();
        assert_eq!(
            v2["spec"]["template"]["spec"]["containers"],
            json!([{"name":"web","image":"nginx:1.26","env":[{"name":"A","value":"1"}]}])
        );
        let fields = &managed(&v2)[0].2;
        assert_eq!(
            fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:env"],
            json!({"k:{\"name\":\"A\"}":{".":{},"f:name":{},"f:value":{}}})
        );
    }

    #[test]
    fn atomic_selector_is_replaced_whole_and_owned_as_one_field() {
        let mut live = service(json!([{"port":80}]));
        live["spec"]["selector"] = json!({"app":"web","extra":"x"});
        let mut applied = service(json!([{"port":80}]));
        applied["spec"]["selector"] = json!({"app":"web2"});
        let got = server_side_apply(Some(&live), &applied, "mgr", false, T1).unwrap();
        assert_eq!(got["spec"]["selector"], json!({"app":"web2"}));
        assert_eq!(managed(&got)[0].2["f:spec"]["f:selector"], json!({}));
    }

    #[test]
    fn list_order_follows_structured_merge_diff() {
        let names = |v: &Value| -> Vec<String> {
            v["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect()
        };
        let port = |name: &str, port: i64| json!({"name":name,"port":port});
        let live = service(json!([port("a", 1), port("b", 2), port("extra", 3)]));
        // Shared items take the applied order, live-only items stay where the walk meets them,
        // new items come in applied order (structured-merge-diff's visitListItems).
        let applied = service(json!([port("b", 2), port("a", 1), port("new", 4)]));
        let got = server_side_apply(Some(&live), &applied, "m", false, T1).unwrap();
        assert_eq!(names(&got), ["b", "extra", "a", "new"]);
        let applied = service(json!([port("new", 4), port("a", 1)]));
        let got = server_side_apply(Some(&live), &applied, "m", false, T1).unwrap();
        assert_eq!(names(&got), ["new", "a", "b", "extra"]);
    }

    #[test]
    fn finalizers_are_a_set_with_value_paths() {
        let mut applied = cm(json!({"a":"1"}));
        applied["metadata"]["finalizers"] = json!(["mc.dev/cleanup"]);
        let got = server_side_apply(None, &applied, "mgr", false, T1).unwrap();
        assert_eq!(
            managed(&got)[0].2["f:metadata"],
            json!({"f:finalizers":{"v:\"mc.dev/cleanup\"":{}}})
        );
        let got = server_side_apply(Some(&got), &cm(json!({"a":"1"})), "mgr", false, T2).unwrap();
        assert_eq!(got["metadata"].get("finalizers"), Some(&json!([])));
    }

    #[test]
    fn invalid_applies_are_rejected() {
        let cases = [
            (json!([1]), "mgr"),
            (json!({"kind":"ConfigMap","metadata":{"name":"c"}}), "mgr"),
            (cm(json!({})), ""),
            (service(json!([{"name":"no-port"}])), "mgr"),
            (service(json!([{"port":80},{"port":80}])), "mgr"),
            (
                json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","managedFields":[{"manager":"x"}]}}),
                "mgr",
            ),
        ];
        for (applied, manager) in cases {
            assert!(
                matches!(
                    server_side_apply(None, &applied, manager, false, T1),
                    Err(ApplyError::Invalid(_))
                ),
                "{applied}"
            );
        }
        let live = service(json!([]));
        assert!(matches!(
            server_side_apply(Some(&live), &cm(json!({})), "mgr", false, T1),
            Err(ApplyError::Invalid(_))
        ));
    }

    #[test]
    fn track_update_records_changed_fields_with_dot_markers() {
        let mut created = json!({"apiVersion":"v1","kind":"ConfigMap",
            "metadata":{"name":"c","labels":{"app":"x"},"annotations":{"k":"v"}},"data":{"a":"1"}});
        track_update(None, &mut created, "kubectl-client-side-apply", T1);
        assert_eq!(
            created["metadata"]["managedFields"],
            json!([{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"v1","time":T1,
                    "fieldsType":"FieldsV1","fieldsV1":{
                        "f:data":{".":{},"f:a":{}},
                        "f:metadata":{"f:annotations":{".":{},"f:k":{}},"f:labels":{".":{},"f:app":{}}}}}])
        );
    }

    #[test]
    fn track_update_of_a_created_deployment_looks_like_kube_apiserver_fields_v1() {
        let mut d = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"app":"web"}},
            "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},
                    "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%"}},
                    "template":{"metadata":{"labels":{"app":"web"}},
                                "spec":{"containers":[{"name":"web","image":"nginx","ports":[{"containerPort":80}],"resources":{}}]}}}});
        track_update(None, &mut d, "kubectl-create", T1);
        assert_eq!(
            managed(&d)[0].2,
            json!({
                "f:metadata":{"f:labels":{".":{},"f:app":{}}},
                "f:spec":{
                    "f:replicas":{},
                    "f:selector":{},
                    "f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{}},"f:type":{}},
                    "f:template":{
                        "f:metadata":{"f:labels":{".":{},"f:app":{}}},
                        "f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{
                            ".":{},"f:image":{},"f:name":{},
                            "f:ports":{".":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}},
                            "f:resources":{}}}}}}})
        );
    }

    #[test]
    fn track_update_moves_ownership_of_changed_fields_and_forgets_removed_ones() {
        let v1 =
            server_side_apply(None, &cm(json!({"a":"1","b":"2"})), "applier", false, T1).unwrap();
        let mut v2 = v1.clone();
        v2["data"]["a"] = json!("changed");
        v2["data"].as_object_mut().unwrap().remove("b");
        v2["metadata"]["labels"] = json!({"l":"x"});
        track_update(Some(&v1), &mut v2, "kubectl-edit", T2);
        let owners = managed(&v2);
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owners[0].0, "kubectl-edit");
        assert_eq!(
            owners[0].2,
            json!({"f:data":{"f:a":{}},"f:metadata":{"f:labels":{".":{},"f:l":{}}}})
        );
        // A no-op update adds no entry.
        let mut v3 = v2.clone();
        track_update(Some(&v2), &mut v3, "noop", T2);
        assert_eq!(managed(&v3), owners);
    }

    #[test]
    fn client_sent_managed_fields_replace_stored_ones_and_single_empty_entry_resets() {
        let mut created = cm(json!({"a":"1"}));
        track_update(None, &mut created, "kubectl-client-side-apply", T1);

        // kubectl's CSA→SSA migration: a JSON patch that rewrites managedFields only.
        let mut migrated = created.clone();
        migrated["metadata"]["managedFields"] = json!([{"manager":"kubectl","operation":"Apply",
            "apiVersion":"v1","time":T2,"fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:a":{}}}}]);
        track_update(Some(&created), &mut migrated, "kubectl", T2);
        assert_eq!(
            managed(&migrated),
            vec![(
                "kubectl".into(),
                "Apply".into(),
                json!({"f:data":{"f:a":{}}})
            )]
        );
        // After the migration, dropping the field from the applied configuration prunes it.
        let pruned =
            server_side_apply(Some(&migrated), &cm(json!({})), "kubectl", false, T2).unwrap();
        assert_eq!(pruned["data"], json!({}));

        // A client that drops managedFields (or sends garbage) keeps the stored ones.
        let mut dropped = created.clone();
        dropped["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        track_update(Some(&created), &mut dropped, "x", T2);
        assert_eq!(managed(&dropped), managed(&created));
        let mut garbage = created.clone();
        garbage["metadata"]["managedFields"] = json!([{"nonsense":true}]);
        track_update(Some(&created), &mut garbage, "x", T2);
        assert_eq!(managed(&garbage), managed(&created));

        // [{}] resets; the writer then owns what it changed in the same request.
        let mut reset = created.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        reset["data"]["b"] = json!("2");
        track_update(Some(&created), &mut reset, "resetter", T2);
        assert_eq!(
            managed(&reset),
            vec![(
                "resetter".into(),
                "Update".into(),
                json!({"f:data":{"f:b":{}}})
            )]
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let fields = json!({"f:metadata":{"f:labels":{".":{},"f:a":{}}},
                            "f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}},
                                      "f:x":{"i:0":{}}}});
        assert_eq!(FieldSet::from_fields_v1(&fields).to_fields_v1(), fields);
        assert_eq!(
            display_path(&[
                Step::Field("spec".into()),
                Step::Field("ports".into()),
                Step::Key(r#"{"port":80,"protocol":"TCP"}"#.into()),
                Step::Field("name".into())
            ]),
            r#".spec.ports[port=80,protocol="TCP"].name"#
        );
    }

    #[test]
    fn realistic_lifecycle_apply_status_scale_conflict_force() {
        let manifest = |replicas: i64, image: &str| {
            json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"demo","labels":{"app":"web"}},
                   "spec":{"replicas":replicas,"selector":{"matchLabels":{"app":"web"}},
                           "template":{"metadata":{"labels":{"app":"web"}},
                                       "spec":{"containers":[{"name":"web","image":image,"ports":[{"containerPort":80}]}]}}}})
        };
        // kubectl apply --server-side creates it.
        let v1 = server_side_apply(None, &manifest(1, "nginx:1.25"), "kubectl", false, T1).unwrap();
        // A controller writes status (an Update through /status).
        let mut v2 = v1.clone();
        v2["status"] = json!({"replicas":1,"readyReplicas":1,"conditions":[{"type":"Available","status":"True"}]});
        track_update(Some(&v1), &mut v2, "kube-controller-manager", T1);
        // Re-applying the same manifest changes nothing and conflicts with nobody.
        let v3 =
            server_side_apply(Some(&v2), &manifest(1, "nginx:1.25"), "kubectl", false, T2).unwrap();
        assert_eq!(v3["status"], v2["status"]);
        assert_eq!(managed(&v3).len(), 2);
        // Someone scales with a plain update: they now own spec.replicas.
        let mut v4 = v3.clone();
        v4["spec"]["replicas"] = json!(5);
        track_update(Some(&v3), &mut v4, "kubectl-scale", T2);
        // Applying a new image with the old replicas conflicts on replicas only.
        let err = server_side_apply(Some(&v4), &manifest(1, "nginx:1.26"), "kubectl", false, T2)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"
        );
        // Dropping replicas from the manifest is the documented fix: no conflict, scale kept.
        let mut without = manifest(1, "nginx:1.26");
        without["spec"].as_object_mut().unwrap().remove("replicas");
        let v5 = server_side_apply(Some(&v4), &without, "kubectl", false, T2).unwrap();
        assert_eq!(v5["spec"]["replicas"], 5);
        assert_eq!(
            v5["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.26"
        );
        // Forcing takes replicas back.
        let v6 =
            server_side_apply(Some(&v4), &manifest(2, "nginx:1.26"), "kubectl", true, T2).unwrap();
        assert_eq!(v6["spec"]["replicas"], 2);
        let scale_owner = managed(&v6)
            .into_iter()
            .find(|(m, _, _)| m == "kubectl-scale");
        assert!(scale_owner.is_none(), "kubectl-scale lost its only field");
    }

    #[test]
    fn random_objects_never_panic_apply_or_tracking() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..3_000 {
            let spec_a = crate::sim::semantics::patch::tests::random_value(&mut rng, 5);
            let spec_b = crate::sim::semantics::patch::tests::random_value(&mut rng, 5);
            let mk = |spec: &Value| json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":spec});
            let mut live = mk(&spec_a);
            track_update(None, &mut live, "creator", T1);
            if let Ok(applied) = server_side_apply(Some(&live), &mk(&spec_b), "applier", false, T2)
            {
                let again = server_side_apply(Some(&applied), &mk(&spec_a), "applier", true, T2);
                if let Ok(mut next) = again {
                    let prev = next.clone();
                    next["spec"] = spec_b.clone();
                    track_update(Some(&prev), &mut next, "editor", T2);
                }
            }
        }
    }

    #[test]
    fn conflict_with_update_manager_reads_like_kube_apiserver() {
        // The brief's example: "other" wrote .spec.x with a plain update of a v1 object.
        let old = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}});
        let mut live =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"spec":{"x":"a"}});
        track_update(Some(&old), &mut live, "other", T1);
        let applied =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"spec":{"x":"b"}});
        let err = server_side_apply(Some(&live), &applied, "mine", false, T2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"other\" using v1: .spec.x"
        );
        let ApplyError::Conflict { causes } = err else {
            panic!("expected a conflict");
        };
        assert_eq!(
            causes,
            vec![ApplyConflict {
                manager: "other".into(),
                field: ".spec.x".into(),
                message: "conflict with \"other\" using v1".into(),
            }]
        );
        let forced = server_side_apply(Some(&live), &applied, "mine", true, T2).unwrap();
        assert_eq!(forced["spec"]["x"], "b");
    }

    #[test]
    fn status_applies_by_the_same_manager_never_prune_spec() {
        let link = |spec: Value, status: Option<Value>| {
            let mut o = json!({"apiVersion":"mc.dev/v1alpha1","kind":"Link",
                               "metadata":{"name":"west","namespace":"mc-system"},"spec":spec});
            if let Some(s) = status {
                o["status"] = s;
            }
            o
        };
        // `mc link` applies the spec; the controller applies status with the same manager.
        let v1 = server_side_apply(
            None,
            &link(json!({"gatewayPort":4143}), None),
            "mc",
            false,
            T1,
        )
        .unwrap();
        let status_patch = link(
            json!({"ignored":"spec in a status apply"}),
            Some(json!({"mirroredServices":2})),
        );
        let v2 = server_side_apply_to(Some(&v1), &status_patch, "mc", Some("status"), false, T2)
            .unwrap();
        assert_eq!(v2["spec"], json!({"gatewayPort":4143}));
        assert_eq!(v2["status"], json!({"mirroredServices":2}));
        let entries = v2["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["subresource"], "status");
        assert_eq!(
            entries[1]["fieldsV1"],
            json!({"f:status":{"f:mirroredServices":{}}})
        );
        // Re-applying the spec keeps the status, and re-applying status keeps the spec.
        let v3 = server_side_apply(
            Some(&v2),
            &link(json!({"gatewayPort":4144}), None),
            "mc",
            false,
            T2,
        )
        .unwrap();
        assert_eq!(v3["status"], json!({"mirroredServices":2}));
        let v4 = server_side_apply_to(
            Some(&v3),
            &link(json!({}), Some(json!({"mirroredServices":3}))),
            "mc",
            Some("status"),
            false,
            T2,
        )
        .unwrap();
        assert_eq!(v4["spec"], json!({"gatewayPort":4144}));
        assert_eq!(v4["status"], json!({"mirroredServices":3}));
        // Updates through /status get their own entry too.
        let mut v5 = v4.clone();
        v5["status"]["mirroredServices"] = json!(4);
        track_update_to(Some(&v4), &mut v5, "controller", Some("status"), T2);
        let last = v5["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["subresource"], "status");
        assert_eq!(last["operation"], "Update");
    }
}
