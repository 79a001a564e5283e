//! The demo's tallies as people read them: a table of connections per cluster and a bar chart.
//! Pure.

use std::collections::BTreeMap;

/// Connections of one phase, by the cluster that answered.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    pub phase: String,
    pub connections: u32,
    /// Cluster → connections it answered.
    pub counts: BTreeMap<String, u32>,
    pub failures: u32,
    pub elapsed_ms: u64,
}

impl Tally {
    /// Percentage of the connections that `cluster` answered.
    pub fn percent(&self, cluster: &str) -> f64 {
        if self.connections == 0 {
            return 0.0;
        }
        f64::from(self.counts.get(cluster).copied().unwrap_or(0)) * 100.0
            / f64::from(self.connections)
    }
}

/// The cluster an answer names: agnhost answers its Pod name, `backend-<cluster>-<rs>-<id>`.
pub fn cluster_of(answer: &str) -> Option<&str> {
    answer
        .strip_prefix("backend-")?
        .split('-')
        .next()
        .filter(|c| !c.is_empty())
}

/// One row per phase; the clusters are east and west (the demo's two). Columns are padded by
/// hand: five columns do not justify a table dependency.
pub fn table(tallies: &[Tally]) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "PHASE".into(),
        "CONNECTIONS".into(),
        "EAST".into(),
        "WEST".into(),
        "FAILED".into(),
    ]];
    for t in tallies {
        let cell = |c: &str| {
            format!(
                "{} ({:.1}%)",
                t.counts.get(c).copied().unwrap_or(0),
                t.percent(c)
            )
        };
        rows.push([
            t.phase.clone(),
            t.connections.to_string(),
            cell("east"),
            cell("west"),
            t.failures.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// One bar per cluster, `width` characters for 100%.
pub fn bars(t: &Tally, width: usize) -> String {
    let mut out = String::new();
    for cluster in ["east", "west"] {
        let pct = t.percent(cluster);
        let n = ((pct / 100.0) * width as f64).round() as usize;
        out.push_str(&format!(
            "  {cluster:<5} {}{} {pct:5.1}%\n",
            "█".repeat(n),
            "·".repeat(width.saturating_sub(n)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(east: u32, west: u32) -> Tally {
        Tally {
            phase: "split".into(),
            connections: east + west,
            counts: BTreeMap::from([("east".into(), east), ("west".into(), west)]),
            ..Default::default()
        }
    }

    #[test]
    fn answers_name_their_cluster() {
        assert_eq!(cluster_of("backend-west-7d9c5b6f4-x2k8p"), Some("west"));
        assert_eq!(cluster_of("backend-east-1-2"), Some("east"));
        assert_eq!(cluster_of("client-1"), None);
        assert_eq!(cluster_of("backend-"), None);
    }

    #[test]
    fn bars_are_proportional_and_the_table_shows_percentages() {
        let t = tally(750, 250);
        let bars = bars(&t, 20);
        assert!(
            bars.contains(&format!("{}{}  75.0%", "█".repeat(15), "·".repeat(5))),
            "{bars}"
        );
        assert!(bars.contains(" 25.0%"), "{bars}");
        let table = table(&[t]);
        assert!(
            table.contains("750 (75.0%)") && table.contains("250 (25.0%)"),
            "{table}"
        );
        assert_eq!(tally(0, 0).percent("east"), 0.0);
    }
}
