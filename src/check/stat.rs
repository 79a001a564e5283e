//! `mc gateways stat`, pure: one row per Link per source cluster, from the Link status that the
//! mirror controller writes (probe window p50/p95/p99), so that only read access to Links is
//! needed.

use serde::Serialize;
use tabled::Tabled;
use time::OffsetDateTime;

use crate::k8s::Link;
use crate::k8s::link::condition;

/// One row; JSON field names are the column names in camelCase, latencies in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRow {
    pub source: String,
    pub target: String,
    pub alive: Option<bool>,
    pub services: Option<u32>,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    /// RFC 3339.
    pub last_probe_time: Option<String>,
    /// Seconds between the last probe and the time of the command.
    pub last_probe_age_seconds: Option<i64>,
    /// `Ready`, or the reason the Link is not ready.
    pub status: String,
}

#[derive(Tabled)]
struct Cells {
    #[tabled(rename = "SOURCE")]
    source: String,
    #[tabled(rename = "TARGET")]
    target: String,
    #[tabled(rename = "ALIVE")]
    alive: String,
    #[tabled(rename = "SERVICES")]
    services: String,
    #[tabled(rename = "P50")]
    p50: String,
    #[tabled(rename = "P95")]
    p95: String,
    #[tabled(rename = "P99")]
    p99: String,
    #[tabled(rename = "LAST PROBE")]
    last_probe: String,
    #[tabled(rename = "STATUS")]
    status: String,
}

/// Rows of the Links of `source`, sorted by target.
pub fn rows(source: &str, links: &[Link], now: OffsetDateTime) -> Vec<GatewayRow> {
    let mut rows: Vec<GatewayRow> = links
        .iter()
        .map(|link| {
            let status = link.status.as_ref();
            let gw = status.and_then(|s| s.gateway.as_ref());
            let latency = gw.and_then(|g| g.latency_ms.as_ref());
            let last = gw.and_then(|g| g.last_probe_time.clone());
            let age = last
                .as_deref()
                .and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                })
                .map(|t| (now - t).whole_seconds().max(0));
            let ready =
                status.and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::READY));
            GatewayRow {
                source: source.to_owned(),
                target: link.metadata.name.clone().unwrap_or_default(),
                alive: gw.map(|g| g.alive),
                services: status.and_then(|s| s.mirrored_services),
                p50_ms: latency.map(|l| l.p50),
                p95_ms: latency.map(|l| l.p95),
                p99_ms: latency.map(|l| l.p99),
                last_probe_time: last,
                last_probe_age_seconds: age,
                status: match ready {
                    Some(c) if c.status == "True" => "Ready".into(),
                    Some(c) => c.reason.clone(),
                    None => "Unknown".into(),
                },
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
    rows
}

/// The table, `-` where a value is unknown.
pub fn table(rows: &[GatewayRow]) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let ms = |v: Option<u64>| dash(v.map(|v| format!("{v}ms")));
    let cells = rows.iter().map(|r| Cells {
        source: r.source.clone(),
        target: r.target.clone(),
        alive: dash(r.alive.map(|a| if a { "yes" } else { "no" }.to_owned())),
        services: dash(r.services.map(|s| s.to_string())),
        p50: ms(r.p50_ms),
        p95: ms(r.p95_ms),
        p99: ms(r.p99_ms),
        last_probe: dash(
            r.last_probe_age_seconds
                .map(|s| format!("{} ago", super::rules::age(time::Duration::seconds(s)))),
        ),
        status: r.status.clone(),
    });
    let mut t = tabled::Table::new(cells);
    t.with(tabled::settings::Style::blank());
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::LinkSpec;
    use crate::k8s::link::{Condition, GatewayStatus, LatencyMs, LinkStatus};

    fn link(target: &str, status: Option<LinkStatus>) -> Link {
        let mut l = Link::new(
            target,
            LinkSpec {
                target_cluster_name: target.into(),
                target_cluster_domain: "cluster.local".into(),
                target_trust_domain: "cluster.local".into(),
                api_server: "https://127.0.0.1:1".into(),
                credentials_secret: format!("mc-link-{target}"),
                gateway_addresses: vec!["127.0.0.1".into()],
                gateway_port: 4143,
                gateway_identity: "x".into(),
                probe: Default::default(),
                selector: "mc.dev/exported=true".into(),
            },
        );
        l.status = status;
        l
    }

    #[test]
    fn rows_are_sorted_with_numbers_and_dashes_where_unknown() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_010).unwrap();
        let probed = LinkStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "GatewayNotAlive".into(),
                message: String::new(),
                last_transition_time: String::new(),
            }],
            gateway: Some(GatewayStatus {
                alive: false,
                latency_ms: Some(LatencyMs {
                    p50: 1,
                    p95: 7,
                    p99: 12,
                }),
                last_probe_time: Some("2027-01-15T08:00:00Z".into()),
                consecutive_failures: 3,
            }),
            mirrored_services: Some(4),
            ..Default::default()
        };
        let rows = rows(
            "east",
            &[link("west", Some(probed)), link("north", None)],
            now,
        );
        assert_eq!(rows[0].target, "north");
        assert_eq!(rows[0].alive, None);
        assert_eq!(rows[0].status, "Unknown");
        assert_eq!(rows[1].p99_ms, Some(12));
        assert_eq!(rows[1].last_probe_age_seconds, Some(10));
        assert_eq!(rows[1].status, "GatewayNotAlive");
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        for column in [
            "SOURCE",
            "TARGET",
            "ALIVE",
            "SERVICES",
            "P50",
            "P95",
            "P99",
            "LAST PROBE",
            "STATUS",
        ] {
            assert!(lines[0].contains(column), "{t}");
        }
        assert!(
            lines[1].contains("north") && lines[1].contains(" - "),
            "{t}"
        );
        assert!(
            lines[2].contains("12ms") && lines[2].contains("10s ago") && lines[2].contains(" no "),
            "{t}"
        );
    }
}
