//! `install.sh`: reports where mc went (`--root`, `CARGO_INSTALL_ROOT`, `CARGO_HOME`) and fails
//! when cargo left no new binary there. cargo is replaced by a stub through `$CARGO`: a real
//! release build takes minutes, and what is under test is the script's bookkeeping, not cargo.

use std::path::Path;
use std::process::{Command, Output};

/// Installs a fake `mc` into `--root DIR`/bin, else `$CARGO_HOME/bin`, like `cargo install`;
/// with `STUB_INSTALL_NOTHING` set it succeeds without installing anything.
const STUB: &str = r#"#!/usr/bin/env bash
set -eu
root="$CARGO_HOME"
while [ $# -gt 0 ]; do
  if [ "$1" = --root ]; then root=$2; shift; fi
  shift
done
[ -n "${STUB_INSTALL_NOTHING:-}" ] && exit 0
mkdir -p "$root/bin"
printf '#!/bin/sh\necho mc 0.1.0\n' > "$root/bin/mc"
chmod +x "$root/bin/mc"
"#;

fn run_script(cwd: &Path, stub_dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let stub = stub_dir.join("cargo");
    if !stub.exists() {
        std::fs::write(&stub, STUB).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cmd = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"));
    cmd.current_dir(cwd)
        .args(args)
        .env("CARGO", &stub)
        .env("CARGO_HOME", stub_dir.join("cargo-home"))
        .env_remove("CARGO_INSTALL_ROOT")
        .env_remove("STUB_INSTALL_NOTHING");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn assert_installed_to(out: &Output, bin: &Path) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bin.is_file(), "{} missing", bin.display());
    assert!(
        stdout.contains(&format!("installed mc 0.1.0 to {}", bin.display())),
        "{stdout}"
    );
}

#[test]
fn install_sh_reports_where_mc_went_for_root_env_and_default() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();

    // A relative --root is relative to where the script was started.
    let out = run_script(&cwd, tmp.path(), &["--root", "rel"], &[]);
    assert_installed_to(&out, &cwd.join("rel/bin/mc"));

    let env_root = tmp.path().join("env-root");
    let out = run_script(&cwd, tmp.path(), &[], &[("CARGO_INSTALL_ROOT", &env_root)]);
    assert_installed_to(&out, &env_root.join("bin/mc"));

    let out = run_script(&cwd, tmp.path(), &[], &[]);
    assert_installed_to(&out, &tmp.path().join("cargo-home/bin/mc"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("several minutes"), "{stderr}");
}

#[test]
fn install_sh_fails_when_no_new_mc_is_where_it_says() {
    let tmp = tempfile::tempdir().unwrap();
    // An older mc is already there; cargo "succeeds" but installs elsewhere.
    let out = run_script(tmp.path(), tmp.path(), &["--root", "r"], &[]);
    assert!(out.status.success());
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let bin = std::fs::File::options()
        .write(true)
        .open(tmp.path().join("r/bin/mc"))
        .unwrap();
    bin.set_modified(old).unwrap();
    let nothing = tmp.path().join("x");
    let out = run_script(
        tmp.path(),
        tmp.path(),
        &["--root", "r"],
        &[("STUB_INSTALL_NOTHING", &nothing)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no new mc is at"), "{stderr}");
    assert!(
        stderr.contains(&tmp.path().join("r/bin/mc").display().to_string()),
        "{stderr}"
    );
}

#[test]
fn the_rust_version_install_sh_checks_is_the_crates_and_the_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let msrv = env!("CARGO_PKG_RUST_VERSION");
    let minor = msrv.split('.').nth(1).expect("1.N");
    assert!(
        read("install.sh").contains(&format!("min_minor={minor}\n")),
        "install.sh must check for Rust {msrv}"
    );
    assert!(read("README.md").contains(&format!("Rust {msrv} or newer")));
    assert!(read("docs/installation.md").contains(&format!("({msrv}+")));
}
