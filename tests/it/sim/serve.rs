//! The `mc sim serve` command: several clusters, a 0600 kubeconfig, clean exit on SIGTERM that
//! removes it.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::have_kubectl;
use crate::support::{kubectl, spawn};

#[test]
fn sim_serve_runs_two_clusters_writes_a_private_kubeconfig_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("sim.kubeconfig");
    let mut child = spawn(
        Command::new(env!("CARGO_BIN_EXE_mc"))
            .args([
                "sim",
                "serve",
                "--clusters",
                "east,west",
                "--kubeconfig-out",
            ])
            .arg(&kc)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut listening = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while listening.len() < 2 && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("cluster ") => listening.push(line),
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    assert_eq!(listening.len(), 2, "{listening:?}");
    assert!(listening[0].starts_with("cluster east listening on https://127.0.0.1:"));
    assert!(listening[1].starts_with("cluster west listening on https://127.0.0.1:"));
    // The kubeconfig line comes after the listening lines: the file is complete by then.
    let rest = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(rest.contains("kubeconfig written"), "{rest}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&kc)
            .expect("kubeconfig")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    if have_kubectl() {
        for ctx in ["east", "west"] {
            let out = kubectl(dir.path())
                .arg("--kubeconfig")
                .arg(&kc)
                .args(["--context", ctx, "get", "ns", "default", "-o", "name"])
                .output()
                .expect("kubectl");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "namespace/default",
                "{ctx}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(code) = child.try_wait().expect("wait") {
            assert!(code.success(), "exit {code:?}");
            assert!(!kc.exists(), "the kubeconfig outlived the sim");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mc sim serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sim_serve_rejects_invalid_cluster_names_with_a_hint() {
    let out = Command::new(env!("CARGO_BIN_EXE_mc"))
        .args(["sim", "serve", "--clusters", "East"])
        .output()
        .expect("mc runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cluster name \"East\" is not a DNS label"),
        "{err}"
    );
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let mut child = spawn(
        Command::new(env!("CARGO_BIN_EXE_mc"))
            .args(["sim", "serve", "--name", "west"])
            .env_remove("MC_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let stderr = child.stderr.take().expect("stderr");
    let line = std::io::BufReader::new(stderr).lines().next();
    drop(child);
    let line = line.expect("a log line").expect("utf-8");
    assert!(line.contains("simulated cluster listening"), "{line}");
    assert!(!line.contains('\x1b'), "{line:?}");
}
