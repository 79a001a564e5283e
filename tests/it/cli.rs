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
