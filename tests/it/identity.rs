//! `mc identity init|issue|inspect` through the built binary, checked with x509-parser and
//! rustls-webpki.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use mc::identity::{self, pki};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

pub fn mc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mc"))
}

pub fn run(args: &[&str]) -> Output {
    mc().args(args).output().expect("run mc")
}

/// Exit status 1 and exactly one line on stderr that mentions `needle`.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn der(path: &Path) -> CertificateDer<'static> {
    pki::parse_cert_pems(&std::fs::read(path).unwrap())
        .unwrap()
        .remove(0)
}

fn init_and_issue(dir: &Path, cluster: &str) {
    let d = dir.to_str().unwrap();
    let out = run(&["identity", "init", "--dir", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["identity", "issue", "--dir", d, "--cluster-name", cluster]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn issued_chain_verifies_with_path_len_zero_and_ca_key_usage() {
    let tmp = tempfile::tempdir().unwrap();
    init_and_issue(tmp.path(), "west");
    let anchor_der = der(&tmp.path().join("anchor.crt"));
    let issuer_der = der(&tmp.path().join("west/issuer.crt"));
    let (_, anchor) = X509Certificate::from_der(&anchor_der).unwrap();
    let (_, issuer) = X509Certificate::from_der(&issuer_der).unwrap();

    assert!(anchor.is_ca());
    assert!(anchor.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert!(issuer.is_ca());
    assert!(issuer.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert_eq!(
        issuer
            .basic_constraints()
            .unwrap()
            .unwrap()
            .value
            .path_len_constraint,
        Some(0)
    );
    issuer
        .verify_signature(Some(anchor.public_key()))
        .expect("issuer is signed by the anchor");
    assert!(
        issuer.validity().not_after <= anchor.validity().not_after,
        "issuer outlives anchor"
    );

    // A gateway leaf minted from the issuer on disk verifies with rustls-webpki.
    let signer = identity::load_issuer(
        &std::fs::read_to_string(tmp.path().join("west/issuer.crt")).unwrap(),
        &std::fs::read_to_string(tmp.path().join("west/issuer.key")).unwrap(),
    )
    .unwrap();
    let leaf = identity::issue_gateway_leaf(
        &signer,
        identity::IDENTITY_NAMESPACE,
        "west",
        "cluster.local",
        time::OffsetDateTime::now_utc(),
        identity::GATEWAY_LEAF_LIFETIME,
    )
    .unwrap();
    let leaf_der = pki::parse_cert_pems(leaf.cert_pem.as_bytes())
        .unwrap()
        .remove(0);
    identity::verify_chain(
        &leaf_der,
        std::slice::from_ref(&issuer_der),
        std::slice::from_ref(&anchor_der),
        std::time::SystemTime::now(),
    )
    .expect("leaf → issuer → anchor");
    let (_, leaf_cert) = X509Certificate::from_der(&leaf_der).unwrap();
    let sans = format!(
        "{:?}",
        leaf_cert.subject_alternative_name().unwrap().unwrap().value
    );
    assert!(
        sans.contains("mc-gateway.mc-system.west.cluster.local"),
        "{sans}"
    );
    assert!(
        sans.contains("spiffe://cluster.local/cluster/west/ns/mc-system/sa/mc-gateway"),
        "{sans}"
    );
}

#[test]
fn key_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    init_and_issue(tmp.path(), "west");
    for key in ["anchor.key", "west/issuer.key"] {
        let mode = std::fs::metadata(tmp.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
}

#[test]
fn init_and_issue_refuse_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    init_and_issue(tmp.path(), "west");
    let d = tmp.path().to_str().unwrap();
    let anchor_before = std::fs::read(tmp.path().join("anchor.key")).unwrap();
    let issuer_before = std::fs::read(tmp.path().join("west/issuer.key")).unwrap();

    assert_one_line_error(&run(&["identity", "init", "--dir", d]), "anchor");
    assert_one_line_error(
        &run(&["identity", "issue", "--dir", d, "--cluster-name", "west"]),
        "issuer",
    );
    assert_eq!(
        std::fs::read(tmp.path().join("anchor.key")).unwrap(),
        anchor_before
    );
    assert_eq!(
        std::fs::read(tmp.path().join("west/issuer.key")).unwrap(),
        issuer_before
    );

    let out = run(&[
        "identity",
        "issue",
        "--dir",
        d,
        "--cluster-name",
        "west",
        "--force",
    ]);
    assert!(out.status.success());
    assert_ne!(
        std::fs::read(tmp.path().join("west/issuer.key")).unwrap(),
        issuer_before
    );
}

#[test]
fn trust_domain_is_recorded_in_the_anchor_and_used_by_issue() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let out = run(&[
        "identity",
        "init",
        "--dir",
        d,
        "--trust-domain",
        "example.org",
    ]);
    assert!(out.status.success());
    let out = run(&["identity", "issue", "--dir", d, "--cluster-name", "east"]);
    assert!(out.status.success());
    let issuer = der(&tmp.path().join("east/issuer.crt"));
    assert_eq!(
        pki::trust_domain_of(&issuer).as_deref(),
        Some("example.org")
    );
}

#[test]
fn inspect_reports_the_chain_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    init_and_issue(tmp.path(), "west");
    let anchor = tmp.path().join("anchor.crt");
    let issuer = tmp.path().join("west/issuer.crt");
    let out = run(&[
        "identity",
        "inspect",
        anchor.to_str().unwrap(),
        issuer.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let infos: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0]["chain"]["status"], "is-anchor");
    assert_eq!(infos[1]["chain"]["status"], "ok");
    assert_eq!(infos[1]["ca"], true);
    assert_eq!(infos[1]["pathLen"], 0);
    assert_eq!(infos[1]["keyType"], "ECDSA P-256");
    assert!(infos[1]["daysLeft"].as_i64().unwrap() >= 364);

    // Against another anchor the same issuer does not chain.
    let other = tempfile::tempdir().unwrap();
    init_and_issue(other.path(), "west");
    let out = run(&[
        "identity",
        "inspect",
        issuer.to_str().unwrap(),
        "--anchor",
        other.path().join("anchor.crt").to_str().unwrap(),
        "-o",
        "yaml",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("status: invalid"));

    let anchor = tmp.path().join("anchor.crt");
    let table = run(&[
        "identity",
        "inspect",
        anchor.to_str().unwrap(),
        issuer.to_str().unwrap(),
    ]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("days left"), "{text}");
    assert!(text.contains("chain      ok"), "{text}");
    // Fits a terminal: the temp-dir path is the only long part of any line.
    let base = tmp.path().to_str().unwrap().len();
    for line in text.lines() {
        assert!(line.len() <= 80 + base, "{} columns: {line}", line.len());
    }
}

#[test]
fn inspect_refuses_bad_files_with_one_line_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let empty = tmp.path().join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let bad_base64 = tmp.path().join("bad.crt");
    std::fs::write(
        &bad_base64,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let not_der = tmp.path().join("notder.crt");
    std::fs::write(
        &not_der,
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for path in [&garbage, &empty, &bad_base64, &not_der] {
        let p = path.to_str().unwrap();
        assert_one_line_error(&run(&["identity", "inspect", p]), p);
    }
    let dir = tmp.path().to_str().unwrap();
    assert_one_line_error(&run(&["identity", "inspect", dir]), "is a directory");
    let missing = tmp.path().join("missing.crt");
    assert_one_line_error(
        &run(&["identity", "inspect", missing.to_str().unwrap()]),
        "missing.crt",
    );
}

#[test]
fn invalid_names_and_validities_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    assert_one_line_error(
        &run(&[
            "identity",
            "init",
            "--dir",
            d,
            "--trust-domain",
            "Not A Domain",
        ]),
        "trust domain",
    );
    init_and_issue(tmp.path(), "west");
    assert_one_line_error(
        &run(&["identity", "issue", "--dir", d, "--cluster-name", "West_1"]),
        "West_1",
    );
    // A validity clap cannot parse is a usage error.
    let out = run(&["identity", "init", "--dir", d, "--validity", "forever"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn issue_without_an_anchor_hints_at_init() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let out = run(&["identity", "issue", "--dir", d, "--cluster-name", "west"]);
    assert_one_line_error(&out, "anchor.crt");
    assert!(String::from_utf8_lossy(&out.stderr).contains("mc identity init"));
}

#[test]
fn every_identity_subcommand_has_examples_in_its_help() {
    for sub in [
        &["identity"][..],
        &["identity", "init"],
        &["identity", "issue"],
        &["identity", "inspect"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = run(&args);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Examples:"),
            "{sub:?}"
        );
    }
}

#[test]
fn init_and_issue_warn_when_the_directory_is_inside_a_git_work_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    let trust = repo.join("trust");
    let d = trust.to_str().unwrap();
    for args in [
        vec!["identity", "init", "--dir", d],
        vec!["identity", "issue", "--dir", d, "--cluster-name", "west"],
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("warning:") && stderr.contains("inside the git work tree"),
            "{args:?}: {stderr}"
        );
    }
    let outside = tmp.path().join("trust");
    let out = run(&["identity", "init", "--dir", outside.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("git work tree"), "{stderr}");
}
