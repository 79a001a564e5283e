//! `mc check` as text, pure: categories with one line per check, a hint under each problem, the
//! summary line. Symbols and colours only when the caller says the output is a terminal.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{Category, Check, Outcome, Summary};

/// How to draw: `fancy` for symbols (a terminal), `color` for ANSI colours (and not `NO_COLOR`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub fancy: bool,
    pub color: bool,
    /// Only warnings and errors (`-o short`).
    pub short: bool,
}

pub fn symbol(o: Outcome, fancy: bool) -> &'static str {
    match (o, fancy) {
        (Outcome::Ok, true) => "✔",
        (Outcome::Warning, true) => "‼",
        (Outcome::Error, true) => "✘",
        (Outcome::Ok, false) => "[ok]",
        (Outcome::Warning, false) => "[warn]",
        (Outcome::Error, false) => "[FAIL]",
    }
}

fn paint(text: &str, o: Outcome, color: bool) -> String {
    if !color {
        return text.to_owned();
    }
    let code = match o {
        Outcome::Ok => "32",
        Outcome::Warning => "33",
        Outcome::Error => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// `links: 1/2 healthy` (a link is healthy when none of its checks failed).
fn link_counts(checks: &[&Check]) -> Option<String> {
    let all: BTreeSet<&str> = checks.iter().filter_map(|c| c.link.as_deref()).collect();
    if all.is_empty() {
        return None;
    }
    let failing: BTreeSet<&str> = checks
        .iter()
        .filter(|c| c.result == Outcome::Error)
        .filter_map(|c| c.link.as_deref())
        .collect();
    Some(format!(
        "{}/{} healthy",
        all.len() - failing.len(),
        all.len()
    ))
}

/// The whole report, ending with the summary line.
pub fn text(checks: &[Check], style: Style) -> String {
    let mut out = String::new();
    let contexts: Vec<&str> = {
        let mut seen = Vec::new();
        for c in checks {
            if !seen.contains(&c.context.as_str()) {
                seen.push(c.context.as_str());
            }
        }
        seen
    };
    for context in &contexts {
        let shown = |c: &&Check| c.context == *context && (!style.short || c.result != Outcome::Ok);
        if !checks.iter().any(|c| shown(&c)) {
            continue;
        }
        if contexts.len() > 1 {
            let _ = writeln!(
                out,
                "context {context}\n{}\n",
                "=".repeat(8 + context.len())
            );
        }
        for category in Category::ALL {
            let lines: Vec<&Check> = checks
                .iter()
                .filter(|c| c.context == *context && c.category == category)
                .collect();
            let shown: Vec<&&Check> = lines
                .iter()
                .filter(|c| !style.short || c.result != Outcome::Ok)
                .collect();
            if shown.is_empty() {
                continue;
            }
            let title = match (category, link_counts(&lines)) {
                (Category::Links, Some(counts)) => format!("{} ({counts})", category.title()),
                _ => category.title().to_owned(),
            };
            let _ = writeln!(out, "{title}\n{}", "-".repeat(title.chars().count()));
            for c in shown {
                let mark = paint(symbol(c.result, style.fancy), c.result, style.color);
                match c.result {
                    Outcome::Ok => {
                        let _ = writeln!(out, "{mark} {} ({})", c.name, c.message);
                    }
                    _ => {
                        let _ = writeln!(out, "{mark} {}\n    {}", c.name, c.message);
                        if let Some(h) = &c.hint {
                            let _ = writeln!(out, "    hint: {h}");
                        }
                    }
                }
            }
            out.push('\n');
        }
    }
    let summary = Summary::of(checks);
    let worst = match (summary.errors, summary.warnings) {
        (0, 0) => Outcome::Ok,
        (0, _) => Outcome::Warning,
        _ => Outcome::Error,
    };
    let _ = writeln!(
        out,
        "{}",
        paint(&summary.line(style.fancy), worst, style.color)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(context: &str, category: Category, link: Option<&str>, result: Outcome) -> Check {
        Check {
            context: context.into(),
            category,
            id: "x",
            name: match link {
                Some(l) => format!("{l}: something holds"),
                None => "something holds".into(),
            },
            link: link.map(str::to_owned),
            result,
            message: "because".into(),
            hint: (result != Outcome::Ok).then(|| "fix it; see docs/troubleshooting.md#x".into()),
        }
    }

    #[test]
    fn plain_output_has_no_symbols_or_colours_and_ends_with_the_summary() {
        let checks = vec![
            check("east", Category::Kubernetes, None, Outcome::Ok),
            check("east", Category::Links, Some("west"), Outcome::Error),
            check("east", Category::Links, Some("north"), Outcome::Warning),
        ];
        let t = text(&checks, Style::default());
        assert!(!t.contains('✔') && !t.contains('\x1b'), "{t}");
        assert!(t.contains("links (1/2 healthy)"), "{t}");
        assert!(
            t.contains("[FAIL] west: something holds\n    because\n    hint: fix it"),
            "{t}"
        );
        assert!(
            t.ends_with("Status check results are [FAIL]: 1 failed, 1 warning\n"),
            "{t}"
        );
    }

    #[test]
    fn a_terminal_gets_symbols_and_colours_and_short_hides_passing_checks() {
        let checks = vec![
            check("east", Category::Kubernetes, None, Outcome::Ok),
            check("west", Category::Install, None, Outcome::Warning),
        ];
        let t = text(
            &checks,
            Style {
                fancy: true,
                color: true,
                short: true,
            },
        );
        assert!(t.contains("\x1b[33m‼\x1b[0m something holds"), "{t}");
        assert!(!t.contains("kubernetes"), "{t}");
        assert!(t.contains("context west"), "{t}");
        assert!(!t.contains("context east"), "nothing to show for east: {t}");
        assert!(
            t.ends_with("\x1b[33mStatus check results are ‼: 1 warning\x1b[0m\n"),
            "{t}"
        );
        let all_ok = [check("east", Category::Kubernetes, None, Outcome::Ok)];
        assert!(text(&all_ok, Style::default()).ends_with("are [ok]: 1 check passed\n"));
    }
}
