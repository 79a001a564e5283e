//! Container output, as `kubectl logs` reads it: the current run and the previous one per
//! container, bounded, with followers woken on every write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::sim::semantics::status::{self, ApiError};

/// Output kept per run of a container; older bytes are dropped (kubelet rotates at 10 MiB).
const MAX_BYTES: usize = 4 * 1024 * 1024;

type Key = (String, String, String);

#[derive(Default)]
pub struct Logs {
    containers: Mutex<HashMap<Key, Arc<ContainerLog>>>,
}

pub struct ContainerLog {
    inner: Mutex<Runs>,
    /// Bumped on every write and at the end of a run.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct Runs {
    current: Vec<u8>,
    /// Bytes dropped from the front of `current`, so that followers' offsets stay valid.
    dropped: usize,
    previous: Option<Vec<u8>>,
    /// Which run `current` is; followers stop when it changes or ends.
    run: u64,
    running: bool,
}

impl Logs {
    pub fn container(&self, ns: &str, pod: &str, container: &str) -> Arc<ContainerLog> {
        let mut map = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((ns.to_string(), pod.to_string(), container.to_string()))
            .or_insert_with(|| {
                Arc::new(ContainerLog {
                    inner: Mutex::new(Runs::default()),
                    changed: watch::channel(0).0,
                })
            })
            .clone()
    }

    fn find(&self, ns: &str, pod: &str, container: &str) -> Option<Arc<ContainerLog>> {
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ns.to_string(), pod.to_string(), container.to_string()))
            .cloned()
    }

    pub fn forget_pod(&self, ns: &str, pod: &str) {
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, p, _), _| !(n == ns && p == pod));
    }
}

impl ContainerLog {
    fn runs(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new run starts: the current output becomes the previous one.
    pub fn start_run(&self) {
        let mut r = self.runs();
        if r.run > 0 {
            r.previous = Some(std::mem::take(&mut r.current));
        }
        r.dropped = 0;
        r.run += 1;
        r.running = true;
        drop(r);
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn end_run(&self) {
        self.runs().running = false;
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn write(&self, bytes: &[u8]) {
        let mut r = self.runs();
        r.current.extend_from_slice(bytes);
        if r.current.len() > MAX_BYTES {
            let cut = r.current.len() - MAX_BYTES;
            r.current.drain(..cut);
            r.dropped += cut;
        }
        drop(r);
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The last `n` lines of `bytes`.
fn tail(bytes: &[u8], n: usize) -> &[u8] {
    let mut seen = 0;
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    if n == 0 { &[] } else { bytes }
}

/// What `GET .../pods/{name}/log` asked for.
pub struct LogQuery {
    pub container: Option<String>,
    pub previous: bool,
    pub follow: bool,
    pub tail_lines: Option<usize>,
}

pub enum LogOutput {
    Text(String),
    /// Chunks as they are written, until the run ends or the reader goes away.
    Follow(mpsc::Receiver<Bytes>),
}

impl Logs {
    /// The log of one of `pod`'s containers, with the API server's messages for the cases
    /// where there is none.
    pub fn read(&self, pod: &Value, q: LogQuery) -> Result<LogOutput, ApiError> {
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ns = pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let containers: Vec<String> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let container = match q.container {
            Some(c) if !c.is_empty() => c,
            _ if containers.len() == 1 => containers[0].clone(),
            _ => {
                return Err(status::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                )));
            }
        };
        if !containers.contains(&container) {
            return Err(status::bad_request(format!(
                "container {container} is not valid for pod {name}"
            )));
        }
        let waiting = || {
            status::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: {}",
                pod.pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
                    .and_then(|c| c.pointer("/state/waiting/reason"))
                    .and_then(Value::as_str)
                    .unwrap_or("ContainerCreating")
            ))
        };
        let log = self.find(ns, name, &container).ok_or_else(waiting)?;
        if q.previous {
            let r = log.runs();
            let Some(prev) = &r.previous else {
                return Err(status::bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{name}\" not found"
                )));
            };
            let out = q.tail_lines.map_or(&prev[..], |n| tail(prev, n));
            return Ok(LogOutput::Text(String::from_utf8_lossy(out).into_owned()));
        }
        let (snapshot, offset, run) = {
            let r = log.runs();
            if r.run == 0 {
                return Err(waiting());
            }
            let out = q.tail_lines.map_or(&r.current[..], |n| tail(&r.current, n));
            let offset = r.dropped + r.current.len();
            (Bytes::copy_from_slice(out), offset, r.run)
        };
        if !q.follow {
            return Ok(LogOutput::Text(
                String::from_utf8_lossy(&snapshot).into_owned(),
            ));
        }
        let (tx, rx) = mpsc::channel::<Bytes>(8);
        let mut changed = log.changed.subscribe();
        tokio::spawn(async move {
            if tx.send(snapshot).await.is_err() {
                return;
            }
            let mut offset = offset;
            loop {
                let (chunk, done) = {
                    let r = log.runs();
                    if r.run != run {
                        (Bytes::new(), true)
                    } else {
                        let start = offset.saturating_sub(r.dropped).min(r.current.len());
                        let chunk = Bytes::copy_from_slice(&r.current[start..]);
                        offset = r.dropped + r.current.len();
                        (chunk, !r.running)
                    }
                };
                if !chunk.is_empty() && tx.send(chunk).await.is_err() {
                    return;
                }
                if done || changed.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(LogOutput::Follow(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 5), b"a\nb\nc");
        assert_eq!(tail(b"a\n", 0), b"");
    }

    #[test]
    fn a_new_run_moves_the_output_to_previous() {
        let logs = Logs::default();
        let c = logs.container("ns", "p", "c");
        c.start_run();
        c.write(b"first\n");
        c.end_run();
        c.start_run();
        c.write(b"second\n");
        let r = c.runs();
        assert_eq!(r.previous.as_deref(), Some(&b"first\n"[..]));
        assert_eq!(r.current, b"second\n");
    }
}
