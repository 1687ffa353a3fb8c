//! Secrets read from the environment, and the hashes keys and tokens are known by.

/// `blake3:` and the 64 hex digits of a key hash.
pub fn format_key_hash(h: &[u8; 32]) -> String {
    format!("blake3:{}", crate::units::hex(h))
}

/// The hash in `blake3:HEX64`.
pub fn parse_key_hash(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("blake3:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A secret read from the environment or a file: never printed (`Debug` and `Display`
/// show its variable's name, or its file's path, only).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    var: String,
    value: String,
    /// Read from the file `var` names rather than the environment.
    file: bool,
}

impl Secret {
    pub fn new(var: impl Into<String>, value: impl Into<String>) -> Self {
        Secret {
            var: var.into(),
            value: value.into(),
            file: false,
        }
    }

    /// A secret read from the file at `path`.
    pub fn from_file(path: impl Into<String>, value: impl Into<String>) -> Self {
        Secret {
            var: path.into(),
            value: value.into(),
            file: true,
        }
    }

    /// The environment variable it came from, if it came from one.
    pub fn env_var(&self) -> Option<&str> {
        (!self.file).then_some(self.var.as_str())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The environment variable it came from.
    pub fn var(&self) -> &str {
        &self.var
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({self})")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.file {
            write!(f, "file {}", self.var)
        } else {
            write!(f, "${}", self.var)
        }
    }
}
