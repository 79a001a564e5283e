//! The documentation describes the binary that exists: every `mc ...` command line in a code
//! block of README.md or docs/*.md parses with this build's CLI, and every file the docs point at
//! is in the repository. New docs files are picked up without changing this test.

use std::path::{Path, PathBuf};

use clap::Parser as _;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file under docs/.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// `(line number, line)` of every line inside a fenced code block (any language but Rust).
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<bool> = None; // Some(is_rust) while inside a block
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(info.trim() == "rust"),
            };
            continue;
        }
        if fence == Some(false) {
            out.push((i + 1, line));
        }
    }
    out
}

/// The `mc` invocations of one shell line: the pieces between `|`, `;`, `&&`, `||`, `&`, `<` and
/// `>` that start with `mc ` (after an optional `$ ` prompt), without a trailing `# comment`.
fn mc_commands(line: &str) -> Vec<String> {
    let line = match line.find(" #") {
        Some(i) => &line[..i],
        None if line.trim_start().starts_with('#') => "",
        None => line,
    };
    line.split(['|', ';', '&', '>', '<'])
        .map(|piece| piece.trim().trim_start_matches("$ ").trim())
        .filter(|piece| piece.starts_with("mc "))
        .map(str::to_owned)
        .collect()
}

/// Shell-like words: whitespace-separated, with '…' and "…" quoting. `...` stands for arguments
/// shown on an earlier line and is dropped.
fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out.retain(|w| w != "...");
    out
}

#[test]
fn every_documented_mc_command_line_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).expect("readable doc");
        let name = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        for (n, line) in code_lines(&text) {
            for command in mc_commands(line) {
                checked += 1;
                if let Err(err) = mc::cli::Cli::try_parse_from(words(&command)) {
                    use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
                    if !matches!(err.kind(), DisplayHelp | DisplayVersion) {
                        let why = err.to_string();
                        let why = why.lines().next().unwrap_or_default().to_owned();
                        failures.push(format!("{name}:{n}: `{command}`: {why}"));
                    }
                }
            }
        }
    }
    assert!(checked >= 15, "only {checked} command lines found");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn documented_files_and_links_exist_in_the_repository() {
    let mut failures = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).expect("readable doc");
        let dir = file.parent().expect("doc dir");
        let name = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        for (n, line) in text.lines().enumerate() {
            // Markdown links to relative paths.
            for target in line.split("](").skip(1) {
                let target = target.split([')', '#']).next().unwrap_or_default();
                if target.is_empty() || target.contains("://") {
                    continue;
                }
                if !dir.join(target).exists() {
                    failures.push(format!("{name}:{}: link to missing {target}", n + 1));
                }
            }
            // Paths in backticks that leave the repository.
            for (i, span) in line.split('`').enumerate() {
                if i % 2 == 1 && (span.starts_with("../") || span.starts_with("/work/")) {
                    failures.push(format!(
                        "{name}:{}: path outside the repository {span}",
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_command_line_extractor_finds_pipelines_and_drops_comments() {
    assert_eq!(
        mc_commands("mc install --cluster-name w | kubectl apply -f -   # apply"),
        vec!["mc install --cluster-name w"]
    );
    assert_eq!(
        mc_commands("$ mc sim serve --name a &"),
        vec!["mc sim serve --name a"]
    );
    assert!(mc_commands("kubectl get svc # mc install").is_empty());
    assert!(mc_commands("# mc link --from a --to b").is_empty());
    assert_eq!(
        words("mc install ... --set 'a=b c' --values \"x y\""),
        vec!["mc", "install", "--set", "a=b c", "--values", "x y"]
    );
    assert!(mc::cli::Cli::try_parse_from(words("mc no-such-command --help")).is_err());
}

#[test]
fn every_example_in_the_help_texts_parses() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        if let Some(help) = cmd.get_after_help() {
            for line in help.to_string().lines() {
                out.extend(mc_commands(line));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut commands = Vec::new();
    walk(&mc::cli::Cli::command(), &mut commands);
    assert!(commands.len() >= 10, "{commands:?}");
    let failures: Vec<String> = commands
        .iter()
        .filter_map(|c| {
            let err = mc::cli::Cli::try_parse_from(words(c)).err()?;
            let why = err.to_string();
            Some(format!("`{c}`: {}", why.lines().next().unwrap_or_default()))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
