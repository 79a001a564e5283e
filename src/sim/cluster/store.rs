//! The in-memory store: one lock, one global resource-version counter, a bounded history ring
//! for resuming watches, and a broadcast channel that never blocks writers (a lagging watcher
//! is told `410 Expired` and re-lists, as it would after an etcd compaction).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use super::registry::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub etype: EventType,
    /// `group/plural`.
    pub key: String,
    pub namespace: String,
    pub object: Arc<Value>,
    /// The state before this event (None for ADDED), for controllers.
    pub old: Option<Arc<Value>>,
}

pub type Objects = BTreeMap<(String, String), Arc<Value>>;

pub struct State {
    pub rv: u64,
    pub objects: HashMap<String, Objects>,
    pub history: VecDeque<Arc<Event>>,
    pub history_cap: usize,
    /// The history is also bounded by the (estimated) size of the objects it holds, so that
    /// large objects written often do not pin every version (see `SimConfig::history_bytes`).
    pub history_bytes_cap: usize,
    history_bytes: usize,
    /// Watches and continue tokens from a resource version below this one get 410.
    pub compacted_rv: u64,
    pub registry: Arc<Registry>,
    /// Events written but not yet seen by the controllers.
    pub pending: Vec<Arc<Event>>,
    /// Allocated ClusterIP offsets within the cluster's /16.
    pub cluster_ips: std::collections::BTreeSet<u32>,
    /// Where the next ClusterIP search starts, so allocation stays O(1) amortized.
    pub ip_cursor: u32,
    /// Owner uid -> dependents `(key, namespace, name)`, for garbage collection without scans.
    pub dependents: HashMap<String, BTreeSet<(String, String, String)>>,
    tx: broadcast::Sender<Arc<Event>>,
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl State {
    pub fn get(&self, key: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a type, in `(namespace, name)` order; `ns` None = all namespaces.
    pub fn list(&self, key: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some(objs) = self.objects.get(key) else {
            return Vec::new();
        };
        match ns {
            None => objs.values().cloned().collect(),
            Some(ns) => objs
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }

    /// Objects after `(ns, name)` (exclusive) for paging.
    pub fn list_after(
        &self,
        key: &str,
        ns: Option<&str>,
        after: Option<&(String, String)>,
    ) -> Vec<Arc<Value>> {
        let Some(objs) = self.objects.get(key) else {
            return Vec::new();
        };
        use std::ops::Bound;
        let lower = match after {
            Some(k) => Bound::Excluded(k.clone()),
            None => match ns {
                Some(ns) => Bound::Included((ns.to_string(), String::new())),
                None => Bound::Unbounded,
            },
        };
        objs.range((lower, Bound::Unbounded))
            .take_while(|((n, _), _)| ns.is_none_or(|ns| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Stores `obj` (metadata already complete except resourceVersion) and records the event.
    pub fn put(&mut self, key: &str, mut obj: Value, etype: EventType) -> Arc<Value> {
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let obj = Arc::new(obj);
        let old = self
            .objects
            .entry(key.to_string())
            .or_default()
            .insert((ns.clone(), name.clone()), obj.clone());
        let entry = (key.to_string(), ns.clone(), name);
        if let Some(o) = &old {
            self.unindex_owners(o, &entry);
        }
        for uid in owner_uids(&obj) {
            self.dependents
                .entry(uid)
                .or_default()
                .insert(entry.clone());
        }
        self.record(Event {
            rv,
            etype,
            key: key.to_string(),
            namespace: ns,
            object: obj.clone(),
            old,
        });
        obj
    }

    /// Removes an object; the DELETED event carries its last state with a new resourceVersion.
    pub fn remove(&mut self, key: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        let old = self
            .objects
            .get_mut(key)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.unindex_owners(&old, &(key.to_string(), ns.to_string(), name.to_string()));
        let rv = self.next_rv();
        let mut last = (*old).clone();
        set_rv(&mut last, rv);
        let last = Arc::new(last);
        self.record(Event {
            rv,
            etype: EventType::Deleted,
            key: key.to_string(),
            namespace: ns.to_string(),
            object: last.clone(),
            old: Some(old),
        });
        Some(last)
    }

    fn unindex_owners(&mut self, obj: &Value, entry: &(String, String, String)) {
        for uid in owner_uids(obj) {
            if let Some(set) = self.dependents.get_mut(&uid) {
                set.remove(entry);
                if set.is_empty() {
                    self.dependents.remove(&uid);
                }
            }
        }
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<(String, Arc<Value>)> {
        let Some(set) = self.dependents.get(uid) else {
            return Vec::new();
        };
        set.iter()
            .filter_map(|(k, ns, name)| self.get(k, ns, name).map(|o| (k.clone(), o)))
            .collect()
    }

    fn record(&mut self, event: Event) {
        let event = Arc::new(event);
        if self.history_cap > 0 {
            let size = approx_size(&event.object);
            while self.history.len() >= self.history_cap
                || (!self.history.is_empty() && self.history_bytes + size > self.history_bytes_cap)
            {
                if let Some(e) = self.history.pop_front() {
                    self.history_bytes -= approx_size(&e.object);
                    self.compacted_rv = self.compacted_rv.max(e.rv);
                }
            }
            self.history_bytes += size;
            self.history.push_back(event.clone());
        } else {
            self.compacted_rv = event.rv;
        }
        self.pending.push(event.clone());
        // No receivers is fine; lagging receivers notice on their side.
        let _ = self.tx.send(event);
    }

    /// Forget all history: every watch or continue token from before now gets 410. The counter
    /// moves on by one so that a fresh LIST's resourceVersion can be watched from.
    pub fn compact(&mut self) {
        self.history.clear();
        self.history_bytes = 0;
        let rv = self.next_rv();
        self.compacted_rv = rv;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Events after `rv` for replay, or Err(oldest retained) if `rv` is too old.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<Event>>, u64> {
        if rv < self.compacted_rv {
            return Err(self.compacted_rv + 1);
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Ok(self.history.iter().skip(start).cloned().collect())
    }
}

pub struct Store {
    state: Mutex<State>,
}

impl Store {
    pub fn new(registry: Registry, history_cap: usize, watch_buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(watch_buffer.max(16));
        Store {
            state: Mutex::new(State {
                rv: 0,
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_cap,
                history_bytes_cap: usize::MAX,
                history_bytes: 0,
                compacted_rv: 0,
                registry: Arc::new(registry),
                pending: Vec::new(),
                cluster_ips: Default::default(),
                ip_cursor: 2,
                dependents: HashMap::new(),
                tx,
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough data; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }
}

/// Roughly the bytes a JSON value holds: string and key lengths plus a little per node.
/// Cheap and deterministic; what matters is that large objects count as large.
pub fn approx_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 8,
        Value::Array(a) => a.iter().map(approx_size).sum::<usize>() + 8,
        Value::Object(m) => {
            m.iter()
                .map(|(k, v)| k.len() + approx_size(v))
                .sum::<usize>()
                + 8
        }
        _ => 8,
    }
}

pub fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ns: &str, name: &str) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":ns,"name":name}})
    }

    #[test]
    fn every_write_takes_the_next_global_resource_version() {
        let store = Store::new(Registry::builtin(), 10, 16);
        let mut s = store.lock();
        let a = s.put("/configmaps", obj("a", "x"), EventType::Added);
        let b = s.put("/secrets", obj("a", "y"), EventType::Added);
        assert_eq!(meta_str(&a, "resourceVersion"), "1");
        assert_eq!(meta_str(&b, "resourceVersion"), "2");
        let gone = s.remove("/configmaps", "a", "x").expect("exists");
        assert_eq!(meta_str(&gone, "resourceVersion"), "3");
    }

    #[test]
    fn history_ring_expires_old_resource_versions() {
        let store = Store::new(Registry::builtin(), 2, 16);
        let mut s = store.lock();
        for i in 0..4 {
            s.put("/configmaps", obj("a", &format!("c{i}")), EventType::Added);
        }
        assert!(s.events_since(1).is_err());
        assert_eq!(s.events_since(2).map(|e| e.len()), Ok(2));
        s.compact();
        assert!(s.events_since(4).is_err());
        assert_eq!(s.events_since(5).map(|e| e.len()), Ok(0));
    }

    #[test]
    fn namespace_listing_stays_inside_the_namespace() {
        let store = Store::new(Registry::builtin(), 10, 16);
        let mut s = store.lock();
        for (ns, n) in [("a", "1"), ("b", "1"), ("b", "2"), ("c", "1")] {
            s.put("/configmaps", obj(ns, n), EventType::Added);
        }
        assert_eq!(s.list("/configmaps", Some("b")).len(), 2);
        assert_eq!(s.list("/configmaps", None).len(), 4);
        let after = s.list_after("/configmaps", Some("b"), Some(&("b".into(), "1".into())));
        assert_eq!(after.len(), 1);
    }
}
