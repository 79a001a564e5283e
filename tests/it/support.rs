//! What every test module shares for child processes: a child that dies with its test, and
//! kubectl runs that keep their cache in the test's temp dir and say so when kubectl is missing.
//!
//! Children stay in the test binary's process group on purpose: Ctrl-C in a terminal then reaches
//! them too. A failing test unwinds, and `KillOnDrop` kills and reaps its children on the way.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Child, Command, Output};

/// A child process killed and reaped when dropped, also while a failing test unwinds.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Spawns `cmd`; a missing program is named, with what to install.
pub fn spawn(cmd: &mut Command) -> KillOnDrop {
    match cmd.spawn() {
        Ok(child) => KillOnDrop(child),
        Err(err) => panic!("{}", spawn_error(cmd, &err)),
    }
}

/// Runs `cmd` to completion; a missing program is named, with what to install.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|err| panic!("{}", spawn_error(cmd, &err)))
}

/// Why `cmd` could not start, naming kubectl's installation when that is what is missing.
pub fn spawn_error(cmd: &Command, err: &std::io::Error) -> String {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if err.kind() == std::io::ErrorKind::NotFound && program == "kubectl" {
        "this test needs kubectl on PATH (any 1.27+ client); install it, or run .ci/run, which checks for it first".to_owned()
    } else {
        format!("could not run {program}: {err}")
    }
}

/// `kubectl` with its discovery and HTTP caches under `dir` instead of `~/.kube/cache`, and no
/// `KUBECONFIG` from the environment: tests never read or write the user's kube files.
pub fn kubectl(dir: &Path) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--cache-dir")
        .arg(dir.join("kubectl-cache"))
        .env_remove("KUBECONFIG");
    cmd
}

/// Whether the real kubectl can be used; with `MC_REQUIRE_KUBECTL=1` (set by .ci/run) a missing
/// one fails the test instead of skipping it.
pub fn have_kubectl() -> bool {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("MC_REQUIRE_KUBECTL").as_deref() == Ok("1") {
        panic!("kubectl is required (MC_REQUIRE_KUBECTL=1) but was not found on PATH");
    }
    if !found {
        eprintln!("skipped: this test needs kubectl on PATH (any 1.27+ client)");
    }
    found
}

#[test]
fn a_dropped_child_is_killed_and_reaped() {
    let child = spawn(Command::new("sleep").arg("600"));
    let pid = child.id();
    drop(child);
    // Reaped: the pid no longer names a process (not even a zombie) of ours.
    let alive = Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!alive.success(), "sleep {pid} outlived its guard");
}

#[test]
fn a_missing_kubectl_is_named_with_what_to_do() {
    let err = std::io::Error::from(std::io::ErrorKind::NotFound);
    let text = spawn_error(&Command::new("kubectl"), &err);
    assert!(text.contains("needs kubectl on PATH"), "{text}");
}
