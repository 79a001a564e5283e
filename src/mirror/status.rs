//! A Link's status from what the controller observed, pure: conditions with reasons (transition
//! times kept while a condition holds), gateway probe numbers, counts, conflicts; and the
//! Events to record for each condition that changed.

use super::plan::LinkReport;
use crate::k8s::link::{Condition, GatewayStatus, LatencyMs, LinkStatus, condition};

/// Condition reasons, in one place (`mc check` and docs/linking.md use them).
pub mod reason {
    pub const READY: &str = "Ready";
    pub const WATCHING: &str = "Watching";
    pub const CONNECTING: &str = "Connecting";
    pub const UNREACHABLE: &str = "Unreachable";
    pub const CREDENTIALS_INVALID: &str = "CredentialsInvalid";
    pub const PROBE_SUCCEEDED: &str = "ProbeSucceeded";
    pub const PROBE_FAILED: &str = "ProbeFailed";
    pub const NOT_PROBED: &str = "NotProbedYet";
    pub const REMOTE_NOT_READY: &str = "RemoteNotReady";
    pub const GATEWAY_NOT_ALIVE: &str = "GatewayNotAlive";
    pub const DELETING: &str = "Deleting";
}

/// What the link's remote watch knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteHealth {
    /// A complete list has been received at least once.
    pub listed: bool,
    /// `Some(false)` while the remote API fails; `None` before the first answer.
    pub reachable: Option<bool>,
    /// When `reachable` last changed (RFC 3339).
    pub since: Option<String>,
    /// Last successful list or event from the remote (RFC 3339).
    pub last_sync: Option<String>,
    /// Last error, for messages.
    pub error: Option<String>,
    /// The credentials Secret is missing or unusable (the message says why).
    pub credentials_error: Option<String>,
}

/// What the link's gateway probe knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeHealth {
    /// `None` before the first probe.
    pub alive: Option<bool>,
    pub consecutive_failures: u32,
    pub latency: Option<LatencyMs>,
    pub last_probe_time: Option<String>,
    pub last_error: Option<String>,
}

/// An Event to record on the Link.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

fn cond(type_: &str, status: &str, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: String::new(),
    }
}

/// The status to write, and the transitions to record as Events.
pub fn link_status(
    previous: Option<&LinkStatus>,
    target: &str,
    deleting: bool,
    report: &LinkReport,
    remote: &RemoteHealth,
    probe: &ProbeHealth,
    now: &str,
) -> (LinkStatus, Vec<Transition>) {
    let remote_cond = if let Some(e) = &remote.credentials_error {
        cond(
            condition::REMOTE_REACHABLE,
            "False",
            reason::CREDENTIALS_INVALID,
            format!("{e}; re-run `mc link` to write fresh credentials"),
        )
    } else {
        match remote.reachable {
            Some(false) => cond(
                condition::REMOTE_REACHABLE,
                "False",
                reason::UNREACHABLE,
                format!(
                    "cannot watch Services in {target} since {}: {}; existing mirrors are kept",
                    remote.since.as_deref().unwrap_or("start"),
                    remote.error.as_deref().unwrap_or("unknown error")
                ),
            ),
            Some(true) if remote.listed => cond(
                condition::REMOTE_REACHABLE,
                "True",
                reason::WATCHING,
                format!(
                    "watching exported Services in {target}; mirroring {}",
                    services(report.mirrored)
                ),
            ),
            _ => cond(
                condition::REMOTE_REACHABLE,
                "Unknown",
                reason::CONNECTING,
                format!("connecting to the API server of {target}"),
            ),
        }
    };
    let gateway_cond = match probe.alive {
        Some(true) => cond(
            condition::GATEWAY_ALIVE,
            "True",
            reason::PROBE_SUCCEEDED,
            match &probe.latency {
                Some(l) => format!(
                    "the gateway of {target} answers its probe (p50 {} ms)",
                    l.p50
                ),
                None => format!("the gateway of {target} answers its probe"),
            },
        ),
        Some(false) => cond(
            condition::GATEWAY_ALIVE,
            "False",
            reason::PROBE_FAILED,
            format!(
                "the gateway of {target} failed {} probes in a row: {}; its mirrors' endpoints are not ready",
                probe.consecutive_failures,
                probe.last_error.as_deref().unwrap_or("no answer")
            ),
        ),
        None => cond(
            condition::GATEWAY_ALIVE,
            "Unknown",
            reason::NOT_PROBED,
            format!("the gateway of {target} has not been probed yet"),
        ),
    };
    let ready = if deleting {
        cond(
            condition::READY,
            "False",
            reason::DELETING,
            "the Link is being deleted; its mirrors are being removed".into(),
        )
    } else if remote_cond.status != "True" {
        // Unknown while the first answer is awaited: a new Link is not a failure.
        cond(
            condition::READY,
            &remote_cond.status,
            reason::REMOTE_NOT_READY,
            remote_cond.message.clone(),
        )
    } else if gateway_cond.status != "True" {
        cond(
            condition::READY,
            &gateway_cond.status,
            reason::GATEWAY_NOT_ALIVE,
            gateway_cond.message.clone(),
        )
    } else {
        cond(
            condition::READY,
            "True",
            reason::READY,
            format!(
                "mirroring {} of {target}{}",
                services(report.mirrored),
                match report.conflicts.len() {
                    0 => String::new(),
                    n => format!("; {n} not mirrored (see status.conflicts)"),
                }
            ),
        )
    };
    let mut transitions = Vec::new();
    let conditions = [ready, remote_cond, gateway_cond]
        .into_iter()
        .map(|mut c| {
            let old = previous.and_then(|p| p.conditions.iter().find(|o| o.type_ == c.type_));
            match old {
                Some(o) if o.status == c.status => {
                    c.last_transition_time = o.last_transition_time.clone();
                }
                _ => {
                    c.last_transition_time = now.to_owned();
                    // The first Unknown of a new Link is not news.
                    if old.is_some() || c.status != "Unknown" {
                        transitions.push(Transition {
                            warning: c.status == "False",
                            reason: c.reason.clone(),
                            message: c.message.clone(),
                        });
                    }
                }
            }
            c
        })
        .collect();
    let status = LinkStatus {
        conditions,
        gateway: probe.alive.map(|alive| GatewayStatus {
            alive,
            latency_ms: probe.latency.clone(),
            last_probe_time: probe.last_probe_time.clone(),
            consecutive_failures: probe.consecutive_failures,
        }),
        mirrored_services: Some(report.mirrored),
        last_sync_time: remote.last_sync.clone(),
        conflicts: report.conflicts.clone(),
    };
    (status, transitions)
}

fn services(n: u32) -> String {
    if n == 1 {
        "1 Service".to_owned()
    } else {
        format!("{n} Services")
    }
}

/// Whether two statuses differ in more than the probe's clock and latency figures (those are
/// written at most every few seconds; everything else is written at once).
pub fn differs_beyond_probe_figures(a: &LinkStatus, b: &LinkStatus) -> bool {
    let strip = |s: &LinkStatus| {
        let mut s = s.clone();
        if let Some(g) = s.gateway.as_mut() {
            g.last_probe_time = None;
            g.latency_ms = None;
        }
        for c in &mut s.conditions {
            if c.type_ == condition::GATEWAY_ALIVE || c.type_ == condition::READY {
                // Messages quote the p50.
                c.message.clear();
            }
        }
        s.last_sync_time = None;
        s
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> (RemoteHealth, ProbeHealth) {
        (
            RemoteHealth {
                listed: true,
                reachable: Some(true),
                last_sync: Some("t0".into()),
                ..Default::default()
            },
            ProbeHealth {
                alive: Some(true),
                latency: Some(LatencyMs {
                    p50: 1,
                    p95: 2,
                    p99: 3,
                }),
                last_probe_time: Some("t0".into()),
                ..Default::default()
            },
        )
    }

    fn get<'a>(s: &'a LinkStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn a_healthy_link_is_ready_with_counts() {
        let (r, p) = healthy();
        let report = LinkReport {
            mirrored: 3,
            remote_listed: true,
            ..Default::default()
        };
        let (s, events) = link_status(None, "west", false, &report, &r, &p, "t1");
        assert_eq!(get(&s, "Ready").status, "True");
        assert_eq!(get(&s, "Ready").last_transition_time, "t1");
        assert_eq!(s.mirrored_services, Some(3));
        assert_eq!(
            s.gateway.as_ref().unwrap().latency_ms.as_ref().unwrap().p99,
            3
        );
        assert_eq!(events.len(), 3);
        // Nothing changes: transition times stay, no events.
        let (s2, events) = link_status(Some(&s), "west", false, &report, &r, &p, "t2");
        assert_eq!(get(&s2, "Ready").last_transition_time, "t1");
        assert!(events.is_empty());
    }

    #[test]
    fn a_new_link_waiting_for_its_first_answer_is_unknown_not_a_warning() {
        let (_, p) = healthy();
        let (s, events) = link_status(
            None,
            "west",
            false,
            &LinkReport::default(),
            &RemoteHealth::default(),
            &p,
            "t1",
        );
        assert_eq!(get(&s, "Ready").status, "Unknown");
        assert!(events.iter().all(|e| !e.warning), "{events:?}");
    }

    #[test]
    fn an_unreachable_remote_says_since_when_and_makes_the_link_not_ready() {
        let (mut r, p) = healthy();
        r.reachable = Some(false);
        r.since = Some("2026-12-03T04:00:00Z".into());
        r.error = Some("connection refused".into());
        let (s, events) = link_status(None, "west", false, &LinkReport::default(), &r, &p, "t1");
        let rr = get(&s, "RemoteReachable");
        assert_eq!(
            (rr.status.as_str(), rr.reason.as_str()),
            ("False", reason::UNREACHABLE)
        );
        assert!(
            rr.message.contains("since 2026-12-03T04:00:00Z"),
            "{}",
            rr.message
        );
        assert_eq!(get(&s, "Ready").reason, reason::REMOTE_NOT_READY);
        assert!(
            events
                .iter()
                .any(|e| e.warning && e.reason == reason::UNREACHABLE)
        );
    }

    #[test]
    fn a_failing_probe_makes_gateway_alive_false_with_the_count() {
        let (r, mut p) = healthy();
        p.alive = Some(false);
        p.consecutive_failures = 3;
        p.last_error = Some("connect timeout".into());
        let (s, _) = link_status(None, "west", false, &LinkReport::default(), &r, &p, "t1");
        let g = get(&s, "GatewayAlive");
        assert_eq!(g.status, "False");
        assert!(g.message.contains("3 probes"), "{}", g.message);
        assert!(!s.gateway.unwrap().alive);
    }

    #[test]
    fn only_probe_figures_changing_is_not_worth_an_immediate_write() {
        let (r, mut p) = healthy();
        let (a, _) = link_status(None, "west", false, &LinkReport::default(), &r, &p, "t1");
        p.latency = Some(LatencyMs {
            p50: 9,
            p95: 9,
            p99: 9,
        });
        p.last_probe_time = Some("t2".into());
        let (b, _) = link_status(
            Some(&a),
            "west",
            false,
            &LinkReport::default(),
            &r,
            &p,
            "t2",
        );
        assert!(!differs_beyond_probe_figures(&a, &b));
        p.alive = Some(false);
        let (c, _) = link_status(
            Some(&a),
            "west",
            false,
            &LinkReport::default(),
            &r,
            &p,
            "t3",
        );
        assert!(differs_beyond_probe_figures(&a, &c));
    }
}
