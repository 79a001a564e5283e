//! Startup, readiness and liveness probes (httpGet, tcpSocket) against the Pod IP, with the
//! kubelet's thresholds; results go to the container's supervisor as events.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spec::resolve_port;

/// Until readiness first succeeds the simulator probes this often instead of every
/// `periodSeconds`: nothing observable changes before the first success except how soon it
/// is seen, and start-up of a sim with mc installed stays fast.
const FIRST_READY_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, PartialEq)]
pub enum ProbeEvent {
    /// The startup probe succeeded (or there is none).
    Started,
    Ready(bool),
    /// Liveness (or startup) failed `failureThreshold` times: the container must restart.
    Failed(&'static str),
}

struct Probe {
    action: Action,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

enum Action {
    Http {
        port: u16,
        path: String,
        host: Option<IpAddr>,
    },
    Tcp {
        port: u16,
        host: Option<IpAddr>,
    },
    /// exec and gRPC probes are not run; they count as succeeding.
    Unsupported,
}

fn parse(container: &Value, probe: Option<&Value>) -> Option<Probe> {
    let p = probe?;
    let secs = |field: &str, default: u64| {
        Duration::from_secs(p.get(field).and_then(Value::as_u64).unwrap_or(default))
    };
    let host = |v: &Value| {
        v.get("host")
            .and_then(Value::as_str)
            .and_then(|h| h.parse().ok())
    };
    let action = if let Some(h) = p.get("httpGet") {
        match h.get("port").and_then(|port| resolve_port(container, port)) {
            Some(port) => Action::Http {
                port,
                path: h
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_string(),
                host: host(h),
            },
            None => Action::Unsupported,
        }
    } else if let Some(t) = p.get("tcpSocket") {
        match t.get("port").and_then(|port| resolve_port(container, port)) {
            Some(port) => Action::Tcp {
                port,
                host: host(t),
            },
            None => Action::Unsupported,
        }
    } else {
        Action::Unsupported
    };
    Some(Probe {
        action,
        initial_delay: secs("initialDelaySeconds", 0),
        period: secs("periodSeconds", 10).max(Duration::from_secs(1)),
        timeout: secs("timeoutSeconds", 1).max(Duration::from_secs(1)),
        success_threshold: p
            .get("successThreshold")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1) as u32,
        failure_threshold: p
            .get("failureThreshold")
            .and_then(Value::as_u64)
            .unwrap_or(3)
            .max(1) as u32,
    })
}

impl Probe {
    async fn once(&self, pod_ip: IpAddr) -> bool {
        let work = async {
            match &self.action {
                Action::Unsupported => true,
                Action::Tcp { port, host } => {
                    tokio::net::TcpStream::connect(SocketAddr::new(host.unwrap_or(pod_ip), *port))
                        .await
                        .is_ok()
                }
                Action::Http { port, path, host } => {
                    let addr = SocketAddr::new(host.unwrap_or(pod_ip), *port);
                    http_ok(addr, path).await.unwrap_or(false)
                }
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(false)
    }
}

/// One HTTP/1.1 GET as the kubelet sends it; 200-399 is success.
async fn http_ok(addr: SocketAddr, path: &str) -> std::io::Result<bool> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let read = s.read(&mut buf[n..]).await?;
        if read == 0 {
            break;
        }
        n += read;
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((200..400).contains(&code))
}

/// Runs the container's probes until the receiver goes away: startup first, then readiness
/// and liveness side by side.
pub async fn run(container: Value, pod_ip: IpAddr, tx: mpsc::Sender<ProbeEvent>) {
    let startup = parse(&container, container.get("startupProbe"));
    let readiness = parse(&container, container.get("readinessProbe"));
    let liveness = parse(&container, container.get("livenessProbe"));
    if let Some(p) = startup {
        tokio::time::sleep(p.initial_delay).await;
        let mut failures = 0;
        loop {
            if p.once(pod_ip).await {
                break;
            }
            failures += 1;
            if failures >= p.failure_threshold {
                let _ = tx.send(ProbeEvent::Failed("Startup probe failed")).await;
                return;
            }
            tokio::time::sleep(p.period).await;
        }
    }
    if tx.send(ProbeEvent::Started).await.is_err() {
        return;
    }
    let ready_tx = tx.clone();
    let ready = async move {
        let Some(p) = readiness else {
            let _ = ready_tx.send(ProbeEvent::Ready(true)).await;
            return;
        };
        tokio::time::sleep(p.initial_delay).await;
        let (mut ok_run, mut fail_run, mut ready, mut ever) = (0, 0, false, false);
        loop {
            if p.once(pod_ip).await {
                ok_run += 1;
                fail_run = 0;
                if !ready && ok_run >= p.success_threshold {
                    ready = true;
                    ever = true;
                    if ready_tx.send(ProbeEvent::Ready(true)).await.is_err() {
                        return;
                    }
                }
            } else {
                fail_run += 1;
                ok_run = 0;
                if ready && fail_run >= p.failure_threshold {
                    ready = false;
                    if ready_tx.send(ProbeEvent::Ready(false)).await.is_err() {
                        return;
                    }
                }
            }
            let wait = if ever {
                p.period
            } else {
                p.period.min(FIRST_READY_POLL)
            };
            tokio::time::sleep(wait).await;
        }
    };
    let live = async move {
        let Some(p) = liveness else {
            return std::future::pending::<()>().await;
        };
        tokio::time::sleep(p.initial_delay).await;
        let mut failures = 0;
        loop {
            tokio::time::sleep(p.period).await;
            if p.once(pod_ip).await {
                failures = 0;
            } else {
                failures += 1;
                if failures >= p.failure_threshold {
                    let _ = tx.send(ProbeEvent::Failed("Liveness probe failed")).await;
                    return;
                }
            }
        }
    };
    tokio::select! {
        _ = async { ready.await; std::future::pending::<()>().await } => {}
        _ = live => {}
    }
}
