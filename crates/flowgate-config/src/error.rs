//! Configuration errors that say where: file, line, column and key (or the environment
//! variable that set the value), and what was expected.

use std::fmt;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A key path such as `routes[0].pool`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

/// Where a bad value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A position in the config file (1-based line and column).
    File { line: usize, column: usize },
    /// An environment override such as `FLOWGATE__SERVER__LISTEN`.
    Env { var: String },
    /// The file, position unknown (e.g. a key that is missing altogether).
    Unknown,
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: String,
    pub location: Location,
    pub key: KeyPath,
    pub message: String,
    /// The named array element the key is in (`route "chat"`), when it has a name.
    pub within: Option<String>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", ProblemList(.0))]
    Invalid(Vec<Problem>),
}

struct ProblemList<'a>(&'a [Problem]);

impl KeyPath {
    pub fn key(mut self, k: &str) -> Self {
        self.0.push(Seg::Key(k.to_string()));
        self
    }

    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Seg::Index(i));
        self
    }

    pub fn parse(dotted: &str) -> Self {
        let mut path = KeyPath::default();
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            let (name, rest) = part.split_once('[').unwrap_or((part, ""));
            if !name.is_empty() {
                path.0.push(Seg::Key(name.to_string()));
            }
            for idx in rest.split('[') {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    path.0.push(Seg::Index(i));
                }
            }
        }
        path
    }

    pub fn starts_with(&self, other: &KeyPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::File { line, column } => write!(f, "{}:{line}:{column}: ", self.origin)?,
            Location::Env { var } => write!(f, "environment variable {var}: ")?,
            Location::Unknown => write!(f, "{}: ", self.origin)?,
        }
        match &self.within {
            Some(w) => write!(f, "key `{}` ({w}): {}", self.key, self.message),
            None => write!(f, "key `{}`: {}", self.key, self.message),
        }
    }
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// The problems found, empty for I/O errors.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(p) => p,
            ConfigError::Io { .. } => &[],
        }
    }
}

/// 1-based line and column of byte offset `at` in `src`.
pub(crate) fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = src.get(..at).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Byte offset of the deepest part of `path` that exists in the TOML source.
pub(crate) fn locate(src: &str, path: &KeyPath) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(src).ok()?;
    let mut table = Some(root.get_ref());
    let mut array = None;
    let mut found = None;
    for seg in &path.0 {
        let next = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                .map(|(key, v)| (key.span().start, v)),
            (Seg::Index(i), _, Some(a)) => {
                let a: &toml::de::DeArray<'_> = a;
                a.get(*i).map(|v| (v.span().start, v))
            }
            _ => None,
        };
        let Some((start, value)) = next else { break };
        found = Some(start);
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => {}
        }
    }
    found
}

/// Problems found while checking a config: where, and what.
pub(crate) type Found = Vec<(KeyPath, String)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_round_trip() {
        let p = KeyPath::parse("routes[2].headers.x");
        assert_eq!(p.to_string(), "routes[2].headers.x");
        assert_eq!(KeyPath::default().key("a").index(1).to_string(), "a[1]");
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("a\nbc\nd", 0), (1, 1));
        assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col("a\nbc\nd", 5), (3, 1));
    }

    #[test]
    fn locates_nested_keys() {
        let src = "[server]\nlisten = 1\n\n[[routes]]\npool = 'a'\n[[routes]]\n  pool = 'b'\n";
        let at = locate(src, &KeyPath::parse("routes[1].pool")).unwrap();
        assert_eq!(line_col(src, at), (7, 3));
        let at = locate(src, &KeyPath::parse("server.listen")).unwrap();
        assert_eq!(line_col(src, at), (2, 1));
    }
}
