//! `-o table|json|yaml` for every command that prints data.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

/// Prints `value` as JSON or YAML; tables are the caller's job since only it knows the columns.
pub fn print_structured<T: Serialize>(format: OutputFormat, value: &T) -> anyhow::Result<()> {
    match format {
        OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(value)?),
        // Tables are the caller's job (only it knows the columns); JSON is the safe fallback.
        OutputFormat::Json | OutputFormat::Table => {
            println!("{}", serde_json::to_string_pretty(value)?)
        }
    }
    Ok(())
}

/// The error chain as the one line users see: `outer: inner: cause`, each message's first line
/// only (a library's multi-line source snippet is not for a terminal), and a message dropped
/// when the one above already contains it (libraries often put their source's text into their
/// own message and also return it as the source, which printed the same cause twice).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut shown: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.lines().next().unwrap_or_default().trim().to_owned();
        if text.is_empty() || shown.last().is_some_and(|prev| prev.contains(&text)) {
            continue;
        }
        shown.push(text);
    }
    shown.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_its_parents_message_is_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        #[derive(Debug, thiserror::Error)]
        #[error("failed to read '/x': {0}")]
        struct Lib(#[source] std::io::Error);
        let err = anyhow::Error::from(Lib(io)).context("cannot read kubeconfig /x");
        assert_eq!(
            error_line(&err),
            "cannot read kubeconfig /x: failed to read '/x': entity not found"
        );
    }

    #[test]
    fn multi_line_messages_keep_their_first_line() {
        let err = anyhow::anyhow!("bad YAML at line 1\n  |\n1 | x: [\n").context("kubeconfig k");
        assert_eq!(error_line(&err), "kubeconfig k: bad YAML at line 1");
    }
}
