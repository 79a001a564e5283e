//! Fault injection for tests and demos: make the cluster unreachable for a while, drop open
//! watches, compact history (watches from older resource versions get 410), add latency, and
//! fail a share of writes with 500 or 429 (with `Retry-After`). Admin-only: through the
//! library handle, or `POST /mc-sim/faults` with the admin token (see docs/simulator.md).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::sim::cluster::store::Store;
use crate::sim::semantics::status::{self, ApiError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteFailure {
    /// Share of writes that fail, 0.0..=1.0.
    pub share: f64,
    /// 500 (InternalError) or 429 (TooManyRequests, with Retry-After: 1).
    pub code: u16,
}

#[derive(Default)]
struct Settings {
    unreachable_until: Option<Instant>,
    latency: Duration,
    write_failure: Option<WriteFailure>,
}

/// Cheap to clone; all clones act on the same cluster.
#[derive(Clone)]
pub struct Faults {
    settings: Arc<Mutex<Settings>>,
    kill_connections: Arc<watch::Sender<u64>>,
    kill_watches: Arc<watch::Sender<u64>>,
    injected: Arc<std::sync::atomic::AtomicU64>,
    store: Arc<Store>,
}

impl Faults {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        Faults {
            settings: Arc::default(),
            kill_connections: Arc::new(watch::channel(0).0),
            kill_watches: Arc::new(watch::channel(0).0),
            injected: Arc::default(),
            store,
        }
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes every open connection and refuses new ones (closed right after accept) for `d`.
    pub fn unreachable_for(&self, d: Duration) {
        self.settings().unreachable_until = Some(Instant::now() + d);
        self.drop_all_connections();
    }

    /// Ends an outage early.
    pub fn reachable(&self) {
        self.settings().unreachable_until = None;
    }

    pub fn is_unreachable(&self) -> bool {
        self.settings()
            .unreachable_until
            .is_some_and(|t| Instant::now() < t)
    }

    /// Closes every open connection once (clients see a reset).
    pub fn drop_all_connections(&self) {
        self.kill_connections.send_modify(|n| *n += 1);
    }

    /// Ends every open watch stream cleanly (clients re-watch from their last RV).
    pub fn drop_watches(&self) {
        self.kill_watches.send_modify(|n| *n += 1);
    }

    /// Forgets the event history and drops open watches: every watch resumed from an
    /// earlier resource version gets an in-stream 410 Expired, so clients must re-list.
    pub fn compact(&self) {
        self.store.lock().compact();
        self.drop_watches();
    }

    /// Latency added before every request is handled.
    pub fn set_latency(&self, d: Duration) {
        self.settings().latency = d;
    }

    pub fn latency(&self) -> Duration {
        self.settings().latency
    }

    /// Fails `share` of writes (POST/PUT/PATCH/DELETE) with `code` 500 or 429.
    pub fn fail_writes(&self, share: f64, code: u16) {
        self.settings().write_failure = Some(WriteFailure {
            share: share.clamp(0.0, 1.0),
            code: if code == 429 { 429 } else { 500 },
        });
    }

    /// Removes every fault (outage, latency, write failures).
    pub fn clear(&self) {
        *self.settings() = Settings::default();
    }

    /// How many writes have been failed on purpose so far.
    pub fn injected_failures(&self) -> u64 {
        self.injected.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn maybe_fail_write(&self) -> Result<(), ApiError> {
        let Some(f) = self.settings().write_failure else {
            return Ok(());
        };
        if f.share <= 0.0 || rand::random::<f64>() >= f.share {
            return Ok(());
        }
        self.injected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if f.code == 429 {
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later (injected fault)",
            )
            .with_details(json!({"retryAfterSeconds": 1}));
            e.retry_after = Some(1);
            Err(e)
        } else {
            Err(status::internal(
                "an error on the server (\"injected fault\") has prevented the request from succeeding",
            ))
        }
    }

    pub(crate) fn connection_killer(&self) -> watch::Receiver<u64> {
        self.kill_connections.subscribe()
    }

    pub(crate) fn watch_killer(&self) -> watch::Receiver<u64> {
        self.kill_watches.subscribe()
    }
}

/// `POST /mc-sim/faults` with a JSON body `{"action": ..., ...}`; answers a `Status`.
pub(crate) fn handle_http(
    faults: &Faults,
    method: &http::Method,
    body: &[u8],
) -> Result<Value, ApiError> {
    if method != http::Method::POST {
        return Err(status::method_not_allowed());
    }
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| status::bad_request(format!("the fault request must be JSON: {e}")))?;
    let secs = |k: &str| body.get(k).and_then(Value::as_f64).unwrap_or(0.0).max(0.0);
    match body.get("action").and_then(Value::as_str).unwrap_or("") {
        "unreachable" => {
            // Reply first would be nicer, but the connection carrying this request drops too;
            // clients should expect an EOF here.
            faults.unreachable_for(Duration::from_secs_f64(secs("seconds")));
        }
        "reachable" => faults.reachable(),
        "drop-watches" => faults.drop_watches(),
        "compact" => faults.compact(),
        "latency" => faults.set_latency(Duration::from_secs_f64(secs("seconds"))),
        "fail-writes" => faults.fail_writes(
            body.get("share").and_then(Value::as_f64).unwrap_or(1.0),
            body.get("code").and_then(Value::as_u64).unwrap_or(500) as u16,
        ),
        "clear" => faults.clear(),
        other => {
            return Err(status::bad_request(format!(
                "unknown fault action {other:?}; use one of unreachable, reachable, drop-watches, compact, latency, fail-writes, clear"
            )));
        }
    }
    Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}))
}
