//! serde-saphyr errors as the one line the CLI prints: no source snippet, no advice addressed to
//! programmers using the library.

/// A YAML parse error shown on one line (serde-saphyr's Display adds a multi-line source snippet,
/// which breaks the one-line error contract of the CLI).
#[derive(Debug)]
pub struct YamlError(pub Box<serde_saphyr::Error>);

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&one_line(&self.0))
    }
}

impl std::error::Error for YamlError {}

/// `err` without its snippet, on one line.
pub fn one_line(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let mut text = text.trim().trim_start_matches("error: ").to_owned();
    if let Some(start) = text.find(", set DuplicateKeyPolicy")
        && let Some(len) = text[start..].find(" if acceptable")
    {
        text.replace_range(start..start + len + " if acceptable".len(), "");
    }
    text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}
