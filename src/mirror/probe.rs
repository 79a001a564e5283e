//! The gateway probe of one Link: every `probe.periodSeconds`, an HTTP GET of `probe.path` on
//! the target gateway's address and `probe.port`, through the same network path the tunnels
//! take to reach the target's load balancer. The gateway answers 200 on `/ready` only when it
//! holds a certificate and has synced its tables, so "alive" means: reachable from this cluster,
//! and able to serve. It does not cross the mTLS port (the controller holds no gateway identity):
//! a refused certificate shows up in the gateway's own metrics, not here (docs/linking.md).
//!
//! ```text
//! tick ─▶ GET http://<gatewayAddresses[i]>:<probe.port><probe.path> (timeout) ─▶ window ─▶ health
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::status::ProbeHealth;
use crate::k8s::link::{LatencyMs, ProbeSpec};

/// Latencies kept for the percentiles (at the default 3 s period: the last 5 minutes).
pub const WINDOW: usize = 100;

/// Sliding window of probe latencies.
#[derive(Debug, Default, Clone)]
pub struct Window {
    samples: VecDeque<Duration>,
}

impl Window {
    pub fn push(&mut self, d: Duration) {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(d);
    }

    /// Nearest-rank p50/p95/p99 in whole milliseconds (rounded up: a 0.4 ms probe is 1 ms).
    pub fn percentiles(&self) -> Option<LatencyMs> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v: Vec<Duration> = self.samples.iter().copied().collect();
        v.sort();
        let at = |q: f64| {
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            let d = v[rank - 1];
            u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
        };
        Some(LatencyMs {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        })
    }
}

/// The probe state machine: alive after a success, not alive after `failure_threshold`
/// failures in a row (one lost probe does not take endpoints out).
#[derive(Debug, Default, Clone)]
pub struct ProbeState {
    pub health: ProbeHealth,
    pub window: Window,
}

impl ProbeState {
    /// Records one probe; returns whether `alive` changed.
    pub fn record(
        &mut self,
        result: Result<Duration, String>,
        failure_threshold: u32,
        now: &str,
    ) -> bool {
        let before = self.health.alive;
        self.health.last_probe_time = Some(now.to_owned());
        match result {
            Ok(latency) => {
                self.window.push(latency);
                self.health.consecutive_failures = 0;
                self.health.last_error = None;
                self.health.alive = Some(true);
            }
            Err(e) => {
                self.health.consecutive_failures += 1;
                self.health.last_error = Some(e);
                if self.health.consecutive_failures >= failure_threshold.max(1) {
                    self.health.alive = Some(false);
                }
            }
        }
        self.health.latency = self.window.percentiles();
        before != self.health.alive
    }
}

/// One HTTP GET; the latency of a 200, or why not.
pub async fn probe_once(
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP handshake with {authority} failed: {e}"))?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, authority.as_str())
            .header(http::header::USER_AGENT, "mc-mirror-probe")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("probe request to {authority} failed: {e}"))?;
        if resp.status() == http::StatusCode::OK {
            Ok(started.elapsed())
        } else {
            Err(format!("{authority}{path} answered {}", resp.status()))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{authority}{path} did not answer within {timeout:?}"
        )),
    }
}

/// Probes until cancelled, publishing into `state` and waking the reconciler when `alive` flips.
pub async fn run(
    link: String,
    addresses: Vec<String>,
    spec: ProbeSpec,
    state: Arc<Mutex<ProbeState>>,
    changed: Arc<Notify>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let period = Duration::from_secs(u64::from(spec.period_seconds.max(1)));
    let timeout = Duration::from_secs(u64::from(spec.timeout_seconds.max(1)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut result = Err("the Link has no gatewayAddresses".to_owned());
        for host in &addresses {
            result = probe_once(host, spec.port, &spec.path, timeout).await;
            if result.is_ok() {
                break;
            }
        }
        metrics.record_probe(&link, &result);
        if let Err(e) = &result {
            tracing::debug!(link = %link, error = %e, "gateway probe failed");
        }
        let now = crate::mirror::now_rfc3339();
        let flipped = {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let flipped = s.record(result, spec.failure_threshold, &now);
            metrics.set_alive(&link, s.health.alive == Some(true));
            flipped
        };
        // Endpoint readiness follows `alive` at once; latency figures are picked up by the
        // status writer at its own pace.
        if flipped {
            changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_in_whole_milliseconds() {
        let mut w = Window::default();
        for ms in 1..=100u64 {
            w.push(Duration::from_millis(ms));
        }
        assert_eq!(
            w.percentiles(),
            Some(LatencyMs {
                p50: 50,
                p95: 95,
                p99: 99
            })
        );
        // The window slides: old samples leave.
        for _ in 0..100 {
            w.push(Duration::from_micros(300));
        }
        assert_eq!(
            w.percentiles(),
            Some(LatencyMs {
                p50: 1,
                p95: 1,
                p99: 1
            })
        );
    }

    #[test]
    fn alive_needs_threshold_failures_in_a_row_to_go_down_and_one_success_to_come_back() {
        let mut s = ProbeState::default();
        assert!(s.record(Ok(Duration::from_millis(2)), 3, "t"));
        assert_eq!(s.health.alive, Some(true));
        assert!(!s.record(Err("x".into()), 3, "t"));
        assert!(!s.record(Err("x".into()), 3, "t"));
        assert_eq!(s.health.alive, Some(true));
        assert!(s.record(Err("x".into()), 3, "t"));
        assert_eq!(
            (s.health.alive, s.health.consecutive_failures),
            (Some(false), 3)
        );
        assert!(s.record(Ok(Duration::from_millis(2)), 3, "t"));
        assert_eq!(s.health.consecutive_failures, 0);
    }

    #[tokio::test]
    async fn a_probe_of_a_closed_port_fails_with_the_address() {
        // Bound but not listening: the port stays ours and refuses connections.
        let held = tokio::net::TcpSocket::new_v4().unwrap();
        held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = held.local_addr().unwrap().port();
        let e = probe_once("127.0.0.1", port, "/ready", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
