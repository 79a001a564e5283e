//! `mc check` and `mc gateways stat`: diagnose an installation and its links.
//!
//! ```text
//! gather (I/O: API reads, one TLS handshake) ─▶ ClusterFacts ─▶ rules::evaluate (pure) ─▶ [Check]
//!                                                             ─▶ render (pure) ─▶ text / JSON
//! Links (status written by mc mirror) ─▶ stat::rows (pure) ─▶ gateways stat table / JSON
//! ```
//!
//! The checks read what the controllers observed (Link status and conditions) rather than
//! dialling remote API servers from the operator's machine, which may not reach addresses that
//! work inside the clusters. Several `--context`s, or `--direct` (the link's own credentials),
//! add live comparisons across clusters. May touch the network: `gather`, `tls`. Pure: the rest (`rbac` judges roles when impersonation is refused).

pub mod facts;
pub mod gather;
pub mod rbac;
pub mod render;
pub mod rules;
pub mod stat;
pub mod tls;

use serde::Serialize;

pub use facts::ClusterFacts;

/// Where the hints point: every check id is an anchor in this document.
pub const DOCS: &str = "docs/troubleshooting.md";

/// Result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Warning,
    Error,
}

/// Categories, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Kubernetes,
    Install,
    Identity,
    Links,
    Splits,
}

impl Category {
    /// Every category, in print order.
    pub const ALL: [Category; 5] = [
        Category::Kubernetes,
        Category::Install,
        Category::Identity,
        Category::Links,
        Category::Splits,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Category::Kubernetes => "kubernetes",
            Category::Install => "install",
            Category::Identity => "identity",
            Category::Links => "links",
            Category::Splits => "traffic splits",
        }
    }
}

/// One line of `mc check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub context: String,
    pub category: Category,
    /// Stable identifier, also the anchor in docs/troubleshooting.md.
    pub id: &'static str,
    /// What is checked, as a sentence (`mc-gateway Deployment is available`).
    pub name: String,
    /// The Link (target cluster name) the check is about, for the `links` category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub result: Outcome,
    pub message: String,
    /// What to do, with the docs anchor; only for warnings and errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Counts over a run of checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warnings: usize,
    pub errors: usize,
}

impl Summary {
    pub fn of(checks: &[Check]) -> Summary {
        let mut s = Summary::default();
        for c in checks {
            match c.result {
                Outcome::Ok => s.ok += 1,
                Outcome::Warning => s.warnings += 1,
                Outcome::Error => s.errors += 1,
            }
        }
        s
    }

    /// `Status check results are ✘: 2 failed, 1 warning` (symbols only when `fancy`).
    pub fn line(&self, fancy: bool) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mark = match (self.errors, self.warnings) {
            (0, 0) => render::symbol(Outcome::Ok, fancy),
            (0, _) => render::symbol(Outcome::Warning, fancy),
            _ => render::symbol(Outcome::Error, fancy),
        };
        let mut parts = Vec::new();
        if self.errors > 0 {
            parts.push(format!("{} failed", self.errors));
        }
        if self.warnings > 0 {
            parts.push(plural(self.warnings, "warning", "warnings"));
        }
        if parts.is_empty() {
            parts.push(plural(self.ok, "check passed", "checks passed"));
        }
        format!("Status check results are {mark}: {}", parts.join(", "))
    }
}
