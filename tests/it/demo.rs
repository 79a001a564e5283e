//! `mc demo -o json`, run as a user runs it, judged by its summary: both clusters answered, the
//! split follows the weights, failover and recovery happen, checks pass, nothing is left running.

use serde_json::Value;

/// A live process (a zombie is not).
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

fn share(phase: &Value, cluster: &str) -> f64 {
    let n = phase["connections"].as_f64().unwrap();
    phase["counts"][cluster].as_f64().unwrap_or(0.0) * 100.0 / n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_splits_fails_over_recovers_and_leaves_nothing_behind() {
    let out = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mc"))
            .args(["demo", "-o", "json"])
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mc demo failed:\n{stderr}");
    // Every step names the command that does it on a real cluster.
    for command in [
        "$ mc link --from east --to west",
        "$ mc --context west export backend-svc",
        "kubectl --context east apply -f split.yaml",
    ] {
        assert!(stderr.contains(command), "{command} not shown:\n{stderr}");
    }
    let s: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary on stdout");
    let phases = s["phases"].as_array().unwrap();
    let phase = |name: &str| {
        phases
            .iter()
            .find(|p| p["phase"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no phase {name} in {s:#}"))
    };

    let split = phase("split");
    assert_eq!(split["connections"], 1000, "{s:#}");
    assert_eq!(split["failures"], 0, "{s:#}");
    for cluster in ["east", "west"] {
        let pct = share(split, cluster);
        assert!(
            (pct - 50.0).abs() <= 5.0,
            "{cluster} answered {pct}%: {s:#}"
        );
    }

    let probe = s["probePeriodMs"].as_u64().unwrap();
    let moved = s["failover"]["trafficMs"].as_u64().unwrap();
    assert!(moved <= 3 * probe, "failover took {moved} ms: {s:#}");
    let failover = phase("failover");
    assert_eq!(failover["counts"]["east"], failover["connections"], "{s:#}");
    assert_eq!(s["westGatewayAliveDuringFailover"], false, "{s:#}");

    let recovered = phase("recovered");
    assert_eq!(recovered["failures"], 0, "{s:#}");
    for cluster in ["east", "west"] {
        let pct = share(recovered, cluster);
        assert!(
            (pct - 50.0).abs() <= 5.0,
            "after recovery {cluster} answered {pct}%: {s:#}"
        );
    }

    let checks = s["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "{s:#}");
    for c in checks {
        assert_eq!(c["status"], "passed", "{c}");
    }

    let pids: Vec<u64> = s["podProcesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    // Two gateways, a mirror controller per cluster, the client, and the two killed gateways.
    assert!(pids.len() >= 7, "{pids:?}");
    let left: Vec<u64> = pids.iter().copied().filter(|p| running(*p)).collect();
    assert!(left.is_empty(), "Pod processes left running: {left:?}");
}
