//! Label and field selectors as kube-apiserver parses them from `?labelSelector=` and
//! `?fieldSelector=` (LIST, WATCH, deletecollection).
//!
//! Label selectors follow `k8s.io/apimachinery/pkg/labels`: comma-joined requirements
//! `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, `k>n`, `k<n`.
//! Field selectors follow `k8s.io/apimachinery/pkg/fields`: `a=b`, `a==b`, `a!=b` with `\`
//! escaping `,`, `=` and `!`, on any dotted path of the object (the real server limits the
//! paths per type; the simulator accepts all of them and reads missing fields as "").

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("unable to parse requirement: found '{found}', expected: {expected}")]
    Unexpected {
        found: String,
        expected: &'static str,
    },
    #[error("unable to parse requirement: invalid label key \"{0}\": {1}")]
    InvalidKey(String, &'static str),
    #[error("unable to parse requirement: invalid label value \"{0}\": {1}")]
    InvalidValue(String, &'static str),
    #[error(
        "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer, got \"{0}\""
    )]
    NotAnInteger(String),
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    InvalidField(String, String),
    #[error("invalid selector: '{0}'; invalid escape sequence")]
    InvalidEscape(String),
    #[error("invalid label selector: {0}")]
    InvalidExpression(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match (&self.op, value) {
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, v) => v.is_none(),
            (Op::Equals(want), Some(v)) => v == want,
            (Op::In(set), Some(v)) => set.contains(v),
            (Op::NotEquals(want), Some(v)) => v != want,
            (Op::NotIn(set), Some(v)) => !set.contains(v),
            // Absent labels satisfy the negative operators, as in apimachinery.
            (Op::NotEquals(_) | Op::NotIn(_), None) => true,
            (Op::Equals(_) | Op::In(_), None) => false,
            (Op::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v > *n),
            (Op::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v < *n),
            (Op::Gt(_) | Op::Lt(_), None) => false,
        }
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::Not => "!".into(),
            Token::Eq => "=".into(),
            Token::DoubleEq => "==".into(),
            Token::NotEq => "!=".into(),
            Token::Gt => ">".into(),
            Token::Lt => "<".into(),
            Token::Comma => ",".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '>' | '<' | ',' | '(' | ')') || c.is_whitespace()
}

fn lex(s: &str) -> Vec<Token> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '!' if next == Some('=') => {
                out.push(Token::NotEq);
                i += 2;
            }
            '!' => {
                out.push(Token::Not);
                i += 1;
            }
            '=' if next == Some('=') => {
                out.push(Token::DoubleEq);
                i += 2;
            }
            '=' => {
                out.push(Token::Eq);
                i += 1;
            }
            '>' => {
                out.push(Token::Gt);
                i += 1;
            }
            '<' => {
                out.push(Token::Lt);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !is_special(chars[i]) {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
        }
    }
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn unexpected(found: Option<Token>, expected: &'static str) -> SelectorError {
        SelectorError::Unexpected {
            found: found.map_or_else(|| "EOS".into(), |t| t.describe()),
            expected,
        }
    }
    fn ident(&mut self, expected: &'static str) -> Result<String, SelectorError> {
        match self.next() {
            Some(Token::Ident(s)) => Ok(s),
            other => Err(Self::unexpected(other, expected)),
        }
    }
    /// A value may be empty (`k=` selects labels with the empty value).
    fn value(&mut self) -> Result<String, SelectorError> {
        match self.peek() {
            Some(Token::Ident(_)) => self.ident("identifier"),
            None | Some(Token::Comma) => Ok(String::new()),
            Some(_) => Err(Self::unexpected(self.next(), "identifier")),
        }
    }
    fn set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Some(Token::Open) => {}
            other => return Err(Self::unexpected(other, "'('")),
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Some(Token::Ident(s)) => {
                    validate_value(&s)?;
                    values.push(s);
                    match self.next() {
                        Some(Token::Comma) => {}
                        Some(Token::Close) => break,
                        other => return Err(Self::unexpected(other, "',' or ')'")),
                    }
                }
                // `k in (a,)` and `k in (,a)` add the empty value, as in apimachinery.
                Some(Token::Comma) => values.push(String::new()),
                // `k in ()` is the set {""} in apimachinery.
                Some(Token::Close) => {
                    values.push(String::new());
                    break;
                }
                other => return Err(Self::unexpected(other, "identifier")),
            }
        }
        values.sort();
        values.dedup();
        Ok(values)
    }
    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            let key = self.ident("identifier after '!'")?;
            validate_key(&key)?;
            return Ok(Requirement {
                key,
                op: Op::DoesNotExist,
            });
        }
        let key = self.ident("identifier")?;
        validate_key(&key)?;
        let op = match self.peek().cloned() {
            None | Some(Token::Comma) => Op::Exists,
            Some(Token::Eq | Token::DoubleEq) => {
                self.pos += 1;
                let v = self.value()?;
                validate_value(&v)?;
                Op::Equals(v)
            }
            Some(Token::NotEq) => {
                self.pos += 1;
                let v = self.value()?;
                validate_value(&v)?;
                Op::NotEquals(v)
            }
            Some(Token::Gt | Token::Lt) => {
                let gt = self.next() == Some(Token::Gt);
                let v = self.ident("integer")?;
                let n = v
                    .parse::<i64>()
                    .map_err(|_| SelectorError::NotAnInteger(v))?;
                if gt { Op::Gt(n) } else { Op::Lt(n) }
            }
            Some(Token::Ident(word)) if word == "in" => {
                self.pos += 1;
                Op::In(self.set()?)
            }
            Some(Token::Ident(word)) if word == "notin" => {
                self.pos += 1;
                Op::NotIn(self.set()?)
            }
            other => {
                self.pos += 1;
                return Err(Self::unexpected(
                    other,
                    "'=', '!=', '==', 'in', 'notin', '>', '<' or ','",
                ));
            }
        };
        Ok(Requirement { key, op })
    }
}

/// Label keys: optional DNS-1123 subdomain prefix (≤253) + `/` + name (≤63, alphanumeric
/// at both ends, `-_.` inside).
fn validate_key(key: &str) -> Result<(), SelectorError> {
    let bad = |why| Err(SelectorError::InvalidKey(key.to_string(), why));
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 {
            return bad("prefix part must be a DNS-1123 subdomain");
        }
        let ok = p.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
        if !ok {
            return bad("prefix part must be a DNS-1123 subdomain");
        }
    }
    if name.is_empty() {
        return bad("name part must be non-empty");
    }
    if !is_label_name(name) {
        return bad(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63)",
        );
    }
    Ok(())
}

fn is_label_name(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn validate_value(v: &str) -> Result<(), SelectorError> {
    if v.is_empty() || is_label_name(v) {
        Ok(())
    } else {
        Err(SelectorError::InvalidValue(
            v.to_string(),
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63)",
        ))
    }
}

impl LabelSelector {
    /// Parses the `labelSelector` query value.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut p = Parser {
            tokens: lex(s),
            pos: 0,
        };
        let mut requirements = Vec::new();
        if p.tokens.is_empty() {
            return Ok(Self::everything());
        }
        loop {
            requirements.push(p.requirement()?);
            match p.next() {
                None => break,
                Some(Token::Comma) => {}
                other => return Err(Parser::unexpected(other, "','")),
            }
        }
        Ok(Self { requirements })
    }

    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// A selector from a map of exact matches (Service `spec.selector`, `nodeSelector`).
    /// Keys and values are validated like `matchLabels`.
    pub fn from_map(labels: &BTreeMap<String, String>) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in labels {
            validate_key(k)?;
            validate_value(v)?;
            requirements.push(Requirement {
                key: k.clone(),
                op: Op::Equals(v.clone()),
            });
        }
        Ok(Self { requirements })
    }

    /// A selector from a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`
    /// with `In`, `NotIn`, `Exists`, `DoesNotExist`), as apimachinery's
    /// `LabelSelectorAsSelector`: the empty object selects everything.
    pub fn from_label_selector(selector: &Value) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if let Some(m) = selector.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                let v = v.as_str().unwrap_or_default();
                validate_key(k)?;
                validate_value(v)?;
                requirements.push(Requirement {
                    key: k.clone(),
                    op: Op::Equals(v.to_string()),
                });
            }
        }
        let exprs = selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            validate_key(key)?;
            let mut values: Vec<String> = super::strings(e.get("values"))
                .into_iter()
                .map(str::to_owned)
                .collect();
            for v in &values {
                validate_value(v)?;
            }
            values.sort();
            values.dedup();
            let operator = e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let op = match operator {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(SelectorError::InvalidExpression(format!(
                        "for 'in', 'notin' operators, values set can't be empty (key {key:?})"
                    )));
                }
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(SelectorError::InvalidExpression(format!(
                        "values set must be empty for exists and does not exist (key {key:?})"
                    )));
                }
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(SelectorError::InvalidExpression(format!(
                        "{other:?} is not a valid label selector operator"
                    )));
                }
            };
            requirements.push(Requirement {
                key: key.to_string(),
                op,
            });
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches against `metadata.labels` of a stored object (non-string values are ignored).
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_everything() {
            return true;
        }
        let labels: BTreeMap<String, String> = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        self.matches(&labels)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    path: Vec<String>,
    value: String,
    negate: bool,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Splits on unescaped `sep`, keeping escapes in place for the next stage.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

fn unescape(whole: &str, s: &str) -> Result<String, SelectorError> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('\\' | ',' | '=' | '!')) => out.push(n),
                _ => return Err(SelectorError::InvalidEscape(whole.to_string())),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Finds the first unescaped operator in a term: `!=`, `==` or `=`.
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], "!=", &term[i + 2..]));
            }
            b'=' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], "==", &term[i + 2..]));
            }
            b'=' => return Some((&term[..i], "=", &term[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

fn field_string(obj: &Value, path: &[String]) -> String {
    let mut cur = obj;
    for seg in path {
        match cur.get(seg.as_str()) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

impl FieldSelector {
    /// Parses the `fieldSelector` query value.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        for term in split_unescaped(s, ',') {
            let Some((field, op, value)) = split_term(&term) else {
                return Err(SelectorError::InvalidField(s.to_string(), term));
            };
            let field = unescape(s, field.trim())?;
            if field.is_empty() || field.split('.').any(str::is_empty) {
                return Err(SelectorError::InvalidField(s.to_string(), term.clone()));
            }
            requirements.push(FieldRequirement {
                path: field.split('.').map(str::to_string).collect(),
                value: unescape(s, value)?,
                negate: op == "!=",
            });
        }
        Ok(Self { requirements })
    }

    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements
            .iter()
            .all(|r| (field_string(obj, &r.path) == r.value) != r.negate)
    }
}

impl FieldSelector {
    /// The first field label that the type `group/plural` does not support, as kube-apiserver
    /// refuses it (`field label not supported: ...`).
    pub fn unsupported_label(&self, group: &str, plural: &str) -> Option<String> {
        let extra = supported_field_labels(group, plural)?;
        self.requirements
            .iter()
            .map(|r| r.path.join("."))
            .find(|l| {
                !matches!(l.as_str(), "metadata.name" | "metadata.namespace")
                    && !extra.contains(&l.as_str())
            })
    }
}

/// Field labels beyond `metadata.name` and `metadata.namespace` that a type's field-label
/// conversion accepts (kube-apiserver 1.32); None: not checked (`events.k8s.io` Events).
fn supported_field_labels(group: &str, plural: &str) -> Option<&'static [&'static str]> {
    Some(match (group, plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => return None,
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "services") => &["spec.clusterIP", "spec.type"],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        _ => &[],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_operators_match_like_apimachinery() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let db = labels(&[("app", "db")]);
        let cases: &[(&str, bool, bool)] = &[
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("tier!=front", false, true), // absent label satisfies !=
            ("app in (web,db)", true, true),
            ("app in (web)", true, false),
            ("app notin (web)", false, true),
            ("tier notin (back)", true, true), // absent label satisfies notin
            ("app=web,tier=front", true, false),
            ("app=web,tier=back", false, false),
            (" app = web , tier ", true, false),
            ("n>4", true, false),
            ("n<4", false, false),
            ("app=", false, false),
            ("mc.dev/exported", false, false),
        ];
        for (sel, want_web, want_db) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&web), *want_web, "{sel} on web");
            assert_eq!(s.matches(&db), *want_db, "{sel} on db");
        }
    }

    #[test]
    fn label_selector_rejects_malformed_input() {
        for sel in [
            "app=web=x",
            "app in web",
            "app in (web",
            "=web",
            "!",
            "app web",
            "-app=web",
            "app=-web",
            "n>x",
            "app,,tier",
            "a/b/c",
            "UPPER.example/x",
            "app in (a b)",
        ] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel} should fail");
        }
    }

    #[test]
    fn label_selector_reads_object_labels_and_empty_is_everything() {
        let obj = json!({"metadata":{"name":"x","labels":{"mc.dev/exported":"true"}}});
        assert!(
            LabelSelector::parse("mc.dev/exported=true")
                .unwrap()
                .matches_object(&obj)
        );
        assert!(
            !LabelSelector::parse("mc.dev/exported=false")
                .unwrap()
                .matches_object(&obj)
        );
        let no_labels = json!({"metadata":{"name":"x"}});
        assert!(
            LabelSelector::parse("!mc.dev/exported")
                .unwrap()
                .matches_object(&no_labels)
        );
        assert!(LabelSelector::parse("").unwrap().is_everything());
        assert!(LabelSelector::everything().matches_object(&no_labels));
        assert!(!LabelSelector::parse("a").unwrap().is_everything());
    }

    #[test]
    fn field_selector_matches_metadata_and_spec_paths() {
        let pod = json!({"metadata":{"name":"web-1","namespace":"demo"},
                         "spec":{"nodeName":"n1","hostNetwork":false,"priority":3},
                         "status":{"phase":"Running"}});
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name==web-1", true),
            ("metadata.name!=web-1", false),
            ("metadata.name=web-1,metadata.namespace=demo", true),
            ("metadata.name=web-1,metadata.namespace=other", false),
            ("spec.nodeName=n1", true),
            ("status.phase!=Pending", true),
            ("spec.hostNetwork=false", true),
            ("spec.priority=3", true),
            ("spec.missing=", true),
            ("spec.missing!=", false),
        ];
        for (sel, want) in cases {
            let s = FieldSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&pod), *want, "{sel}");
        }
    }

    #[test]
    fn field_selector_honours_escapes_and_rejects_garbage() {
        let obj = json!({"metadata":{"name":"a,b=c"}});
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c").unwrap();
        assert!(s.matches(&obj));
        for sel in [
            "metadata.name",
            "=x",
            "metadata..name=x",
            r"metadata.name=a\x",
        ] {
            assert!(FieldSelector::parse(sel).is_err(), "{sel} should fail");
        }
    }

    #[test]
    fn random_selector_strings_never_panic() {
        use rand::{Rng, SeedableRng};
        let alphabet: Vec<char> = "ab=!,() \\.-/_inotéx<>0".chars().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let obj = json!({"metadata":{"name":"a","labels":{"a":"b"}}});
        for _ in 0..20_000 {
            let len = rng.random_range(0..16);
            let s: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if let Ok(sel) = LabelSelector::parse(&s) {
                let _ = sel.matches_object(&obj);
            }
            if let Ok(sel) = FieldSelector::parse(&s) {
                let _ = sel.matches(&obj);
            }
        }
    }

    #[test]
    fn selectors_from_label_selector_objects_and_maps() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            (json!({}), true),
            (json!({"matchLabels":{"app":"web"}}), true),
            (json!({"matchLabels":{"app":"db"}}), false),
            (
                json!({"matchExpressions":[{"key":"tier","operator":"In","values":["front","back"]}]}),
                true,
            ),
            (
                json!({"matchExpressions":[{"key":"tier","operator":"NotIn","values":["front"]}]}),
                false,
            ),
            (
                json!({"matchExpressions":[{"key":"zone","operator":"DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchLabels":{"app":"web"},"matchExpressions":[{"key":"zone","operator":"Exists"}]}),
                false,
            ),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::from_label_selector(&sel).unwrap();
            assert_eq!(s.matches(&web), want, "{sel}");
        }
        for bad in [
            json!({"matchExpressions":[{"key":"a","operator":"In","values":[]}]}),
            json!({"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]}),
            json!({"matchExpressions":[{"key":"a","operator":"Gt","values":["1"]}]}),
            json!({"matchLabels":{"bad key":"x"}}),
        ] {
            assert!(LabelSelector::from_label_selector(&bad).is_err(), "{bad}");
        }
        let svc = LabelSelector::from_map(&labels(&[("app", "web")])).unwrap();
        assert!(svc.matches(&web));
        assert!(!svc.matches(&labels(&[("app", "db")])));
        assert!(
            LabelSelector::from_map(&labels(&[]))
                .unwrap()
                .is_everything()
        );
    }
}
