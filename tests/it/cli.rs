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
