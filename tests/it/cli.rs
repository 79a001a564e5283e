use std::process::Command;

fn mc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mc"))
}

#[test]
fn help_exits_zero_and_names_the_binary() {
    let out = mc().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: mc"));
}

#[test]
fn unknown_subcommand_is_a_usage_error_with_exit_2() {
    let out = mc().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn completions_for_bash_mention_the_binary() {
    let out = mc().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("_mc"));
}

#[test]
fn every_runnable_subcommand_has_examples_in_its_help() {
    use clap::CommandFactory;
    fn leaves(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        let subs: Vec<_> = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push((path.clone(), cmd.clone()));
        }
        for sub in subs {
            leaves(sub, format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut all = Vec::new();
    leaves(&mc::cli::Cli::command(), "mc".into(), &mut all);
    assert!(
        all.len() >= 7,
        "{:?}",
        all.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (path, mut cmd) in all {
        let help = cmd.render_long_help().to_string();
        assert!(
            help.contains("Example"),
            "`{path} --help` shows no example:\n{help}"
        );
    }
}

/// `--kubeconfig`/`--context` are global: kubectl users put them before or after the
/// subcommand. Both reach the cluster of that context (a sim without mc installed, so the
/// gateway stops at reading mc-config, which names the namespace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_flags_work_before_and_after_the_subcommand() {
    let west = crate::sim::start_sim("west").await;
    let kc = west.kubeconfig.to_str().unwrap().to_owned();
    let runs = [
        vec!["--kubeconfig", &kc, "--context", "west", "gateway"],
        vec!["gateway", "--kubeconfig", &kc, "--context", "west"],
    ];
    for args in runs {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mc"))
            .args(&args)
            .args([
                "--inbound-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ])
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("cannot read ConfigMap mc-system/mc-config"),
            "{args:?}: {err}"
        );
    }
    let out = mc()
        .args(["--kubeconfig", &kc, "--context", "nowhere", "gateway"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("context \"nowhere\""), "{err}");
}

/// Exit status 1 and one line on stderr that names `object` exactly once.
fn assert_named_once(out: &std::process::Output, object: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(
        stderr.matches(object).count(),
        1,
        "{object:?} not once in: {stderr}"
    );
}

#[test]
fn newcomer_errors_name_the_object_once_on_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let kc = tmp.path().join("missing/dir/kc");
    let out = mc()
        .args(["sim", "serve", "--kubeconfig-out"])
        .arg(&kc)
        .output()
        .unwrap();
    assert_named_once(&out, "missing/dir/kc");
    assert!(String::from_utf8_lossy(&out.stderr).contains("mkdir -p"));

    let nope = tmp.path().join("nope.kubeconfig");
    let out = mc()
        .args(["gateway", "--kubeconfig"])
        .arg(&nope)
        .output()
        .unwrap();
    assert_named_once(&out, "nope.kubeconfig");

    let broken = tmp.path().join("broken.kubeconfig");
    std::fs::write(&broken, "clusters: [\n").unwrap();
    let out = mc()
        .args(["gateway", "--kubeconfig"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_named_once(&out, "broken.kubeconfig");
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}
