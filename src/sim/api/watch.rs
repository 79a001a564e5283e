//! Watch streams: newline-delimited JSON events, flushed one per chunk. Replay from a resource
//! version out of the history ring (410 `Expired` in the stream when it is too old), current
//! objects as ADDED for RV unset/"0" or `sendInitialEvents`, BOOKMARKs, `timeoutSeconds`.
//! A watcher that falls behind the broadcast is dropped with an in-stream 410 rather than
//! slowing writers down.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::context::{Ctx, Reply, RequestInfo, TABLE_CONTENT_TYPE};
use super::list::{Filter, present};
use crate::sim::cluster::registry::ResourceType;
use crate::sim::cluster::store::{Event, EventType};
use crate::sim::semantics::status::{self, ApiError};
use crate::sim::semantics::table;

/// Server-side default when the client gives no timeoutSeconds (kube-apiserver picks 30-60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Chunks buffered toward one client before its task waits for the socket.
const CHANNEL_DEPTH: usize = 8;

struct WatchSpec {
    rt: Arc<ResourceType>,
    version: String,
    filter: Filter,
    table: bool,
    bookmarks: bool,
}

impl WatchSpec {
    fn line(&self, etype: &str, obj: &Value) -> Bytes {
        let obj = present(obj, &self.rt, &self.version);
        let object = if self.table {
            let rv = crate::sim::cluster::store::meta_str(&obj, "resourceVersion").to_string();
            table::table_for(
                &self.rt.group,
                &self.rt.plural,
                self.rt.printer_columns.as_ref(),
                &[obj],
                &rv,
                crate::sim::cluster::clock::now_unix(),
            )
        } else {
            obj
        };
        encode(&json!({"type": etype, "object": object}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        encode(&json!({
            "type": "BOOKMARK",
            "object": {"kind": self.rt.kind, "apiVersion": self.rt.api_version(&self.version), "metadata": meta},
        }))
    }

    /// The event as this watcher sees it: objects entering or leaving the selection become
    /// ADDED or DELETED, as with the watch cache of kube-apiserver.
    fn translate(&self, ev: &Event) -> Option<Bytes> {
        if ev.key != self.rt.key() {
            return None;
        }
        let now = self.filter.matches(&ev.object);
        let before = ev.old.as_ref().is_some_and(|o| self.filter.matches(o));
        let etype = match (ev.etype, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Deleted, _, true) => "DELETED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, false) => "DELETED",
            _ => return None,
        };
        Some(self.line(etype, &ev.object))
    }
}

enum Initial {
    /// Current objects, sent as ADDED (RV unset/"0", or `sendInitialEvents`).
    Snapshot(Vec<Arc<Value>>),
    /// History after the requested resource version.
    Replay(Vec<Arc<Event>>),
}

fn encode(v: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn expired_line(message: &str) -> Bytes {
    encode(&json!({"type": "ERROR", "object": status::expired(message).body()}))
}

pub fn watch(ctx: &Ctx, rt: &Arc<ResourceType>, info: &RequestInfo) -> Result<Reply, ApiError> {
    let mut filter = Filter::from_ctx(ctx, rt, info)?;
    if let Some(name) = &info.name {
        // A watch on one object is a watch with a name field selector.
        let by_name =
            crate::sim::semantics::selector::FieldSelector::parse(&format!("metadata.name={name}"))
                .map_err(|e| status::bad_request(e.to_string()))?;
        filter.fields = Some(match filter.fields.take() {
            None => by_name,
            Some(f) => {
                let combined = format!(
                    "{},metadata.name={name}",
                    ctx.q("fieldSelector").unwrap_or_default()
                );
                crate::sim::semantics::selector::FieldSelector::parse(&combined).unwrap_or(f)
            }
        });
    }
    let spec = WatchSpec {
        rt: rt.clone(),
        version: info.version.clone(),
        filter,
        table: ctx.wants_table(),
        bookmarks: ctx.q_bool("allowWatchBookmarks"),
    };
    let send_initial = ctx.q_bool("sendInitialEvents");
    let timeout = ctx
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let requested_rv = ctx.q("resourceVersion").unwrap_or("").to_string();
    let bookmark_every = ctx.shared.config.bookmark_interval;
    let mut kill = ctx.shared.faults.watch_killer();
    let mut conn_kill = ctx.shared.faults.connection_killer();

    // Everything up to `start_rv` comes from the snapshot/replay taken under the lock; the
    // broadcast subscription is taken under the same lock, so nothing falls in between.
    // Only Arcs are taken under the lock; filtering and serializing happen in the stream task.
    let (rx, start_rv, initial) = {
        let state = ctx.shared.store.lock();
        let rx = state.subscribe();
        let start = state.rv;
        let initial = if send_initial || requested_rv.is_empty() || requested_rv == "0" {
            Initial::Snapshot(state.list(&rt.key(), info.namespace.as_deref()))
        } else {
            let rv: u64 = requested_rv.parse().map_err(|_| {
                status::bad_request(format!("invalid resource version: {requested_rv}"))
            })?;
            match state.events_since(rv) {
                Ok(events) => Initial::Replay(events),
                Err(oldest) => {
                    drop(state);
                    let line = expired_line(&format!("too old resource version: {rv} ({oldest})"));
                    let frames = vec![Ok::<_, std::convert::Infallible>(Frame::data(line))];
                    return Ok(Reply::Stream {
                        body: StreamBody::new(futures::stream::iter(frames)).boxed_unsync(),
                        content_type: content_type(&spec),
                    });
                }
            }
        };
        (rx, start, initial)
    };

    let (tx, chunks) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let ct = content_type(&spec);
    tokio::spawn(async move {
        let mut rx: broadcast::Receiver<Arc<Event>> = rx;
        match initial {
            Initial::Snapshot(objects) => {
                for obj in objects {
                    if spec.filter.matches(&obj) && tx.send(spec.line("ADDED", &obj)).await.is_err()
                    {
                        return;
                    }
                }
                if send_initial
                    && spec.bookmarks
                    && tx.send(spec.bookmark(start_rv, true)).await.is_err()
                {
                    return;
                }
            }
            Initial::Replay(events) => {
                for ev in events {
                    if let Some(line) = spec.translate(&ev)
                        && tx.send(line).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        let mut last_rv = start_rv;
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Ok(ev) => {
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some(line) = spec.translate(&ev)
                            && tx.send(line).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let _ = tx.send(expired_line(&format!(
                            "the watcher fell {n} events behind; resource version {last_rv} is too old to resume"
                        ))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if spec.bookmarks => {
                    if tx.send(spec.bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = kill.changed() => return,
                _ = conn_kill.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(chunks, |mut chunks| async move {
        chunks
            .recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), chunks))
    });
    Ok(Reply::Stream {
        body: StreamBody::new(stream).boxed_unsync(),
        content_type: ct,
    })
}

fn content_type(spec: &WatchSpec) -> &'static str {
    if spec.table {
        TABLE_CONTENT_TYPE
    } else {
        "application/json"
    }
}
