//! How serious an alert is: a rule's `severity`, a notifier's `min_severity`.

use serde::{Deserialize, Serialize};

use crate::error::{Found, KeyPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// `written` (at `key`), or `default` when it is not written; an unknown one is said
    /// in `found` and read as `default`.
    pub(crate) fn read(
        written: Option<&str>,
        default: Severity,
        key: KeyPath,
        found: &mut Found,
    ) -> Severity {
        match written {
            None => default,
            Some("info") => Severity::Info,
            Some("warning") => Severity::Warning,
            Some("critical") => Severity::Critical,
            Some(s) => {
                found.push((
                    key,
                    format!(
                        "unknown severity {s:?}: expected \"info\", \"warning\" or \"critical\""
                    ),
                ));
                default
            }
        }
    }
}
