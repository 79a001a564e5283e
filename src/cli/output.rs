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
