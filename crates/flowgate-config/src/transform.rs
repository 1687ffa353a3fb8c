//! A route's response transforms (`[routes.transform]`): compression, JSON
//! minification, `null` members dropped, fields redacted (docs/transforms.md).

use serde::Deserialize;

use crate::error::{Found, KeyPath};
use crate::units::ByteSize;

/// The codings a route may compress with, in the server's order of preference.
pub const CODINGS: [&str; 3] = ["zstd", "br", "gzip"];

/// `transform = { ... }` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTransform {
    pub compress: Option<toml::Value>,
    pub compress_above: Option<ByteSize>,
    pub minify: Option<bool>,
    pub drop_nulls: Option<bool>,
    pub redact: Option<Vec<String>>,
    pub redact_cached: Option<bool>,
}

/// A route's response transforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformConfig {
    /// Codings offered, most preferred first (`zstd`, `br`, `gzip`); empty: none.
    pub compress: Vec<String>,
    /// Bodies smaller than this are sent as they are (500 bytes).
    pub compress_above: u64,
    pub minify: bool,
    pub drop_nulls: bool,
    /// Key names (any case, anywhere) and JSON pointers (`/a/*/b`) whose values are
    /// replaced by `"[redacted]"`.
    pub redact: Vec<String>,
    /// The cache keeps JSON answers redacted too (so that no tier holds the fields).
    pub redact_cached: bool,
}

pub(crate) fn transform(raw: &RawTransform, key: &KeyPath, found: &mut Found) -> TransformConfig {
    let compress = match &raw.compress {
        None | Some(toml::Value::Boolean(false)) => Vec::new(),
        Some(toml::Value::Boolean(true)) => CODINGS.iter().map(|c| c.to_string()).collect(),
        Some(toml::Value::Array(list)) => {
            let mut out: Vec<String> = Vec::new();
            for v in list {
                match v.as_str().map(str::to_ascii_lowercase) {
                    Some(c) if CODINGS.contains(&c.as_str()) && !out.contains(&c) => out.push(c),
                    _ => found.push((
                        key.clone().key("compress"),
                        format!("{v}: a coding of zstd, br, gzip, each once"),
                    )),
                }
            }
            out
        }
        Some(v) => {
            found.push((
                key.clone().key("compress"),
                format!("{v}: true (zstd, br, gzip) or a list of them, most preferred first"),
            ));
            Vec::new()
        }
    };
    let redact = raw.redact.clone().unwrap_or_default();
    for f in &redact {
        let bad = f.is_empty() || f == "/" || (f.starts_with('/') && f.contains("//"));
        if bad {
            found.push((
                key.clone().key("redact"),
                format!("{f:?}: a key name (\"ssn\") or a JSON pointer (\"/data/*/email\")"),
            ));
        }
    }
    let redact_cached = raw.redact_cached.unwrap_or(false);
    if redact_cached && redact.is_empty() {
        found.push((
            key.clone().key("redact_cached"),
            "nothing to redact: name the fields in redact".into(),
        ));
    }
    TransformConfig {
        redact_cached,
        compress,
        compress_above: raw.compress_above.map_or(500, |b| b.0),
        minify: raw.minify.unwrap_or(false),
        drop_nulls: raw.drop_nulls.unwrap_or(false),
        redact,
    }
}

#[cfg(test)]
mod tests {
    use crate::parse;

    const BASE: &str = "[server]\nlisten = \"127.0.0.1:18180\"\nadmin_listen = \"127.0.0.1:18190\"\n\n\
        [pools.api]\nendpoints = [{ url = \"http://127.0.0.1:18081\" }]\n\n\
        [[routes]]\nname = \"api\"\nkind = \"http\"\nprefix = \"/api\"\npool = \"api\"\n";

    fn with(t: &str) -> String {
        format!("{BASE}transform = {{ {t} }}\n")
    }

    #[test]
    fn transforms_are_read_with_their_defaults() {
        let c = parse(
            &with("compress = true, redact = [\"ssn\", \"/a/*/b\"]"),
            "f.toml",
            std::iter::empty(),
        )
        .unwrap();
        let t = c.routes[0].transform.clone().unwrap();
        assert_eq!(t.compress, ["zstd", "br", "gzip"]);
        assert_eq!(t.compress_above, 500);
        assert!(!t.minify && !t.drop_nulls);
        assert_eq!(t.redact, ["ssn", "/a/*/b"]);
        let c = parse(
            &with("compress = [\"GZIP\"], compress_above = \"1KiB\", minify = true"),
            "f.toml",
            std::iter::empty(),
        )
        .unwrap();
        let t = c.routes[0].transform.clone().unwrap();
        assert_eq!(
            (t.compress, t.compress_above, t.minify),
            (vec!["gzip".to_string()], 1024, true)
        );
    }

    #[test]
    fn bad_transforms_name_their_keys() {
        for (t, key, says) in [
            (
                "compress = [\"deflate\"]",
                "routes[0].transform.compress",
                "a coding of zstd, br, gzip",
            ),
            (
                "compress = [\"gzip\", \"gzip\"]",
                "routes[0].transform.compress",
                "each once",
            ),
            (
                "compress = \"yes\"",
                "routes[0].transform.compress",
                "true (zstd, br, gzip) or a list",
            ),
            (
                "redact = [\"\"]",
                "routes[0].transform.redact",
                "a key name",
            ),
            (
                "redact = [\"/a//b\"]",
                "routes[0].transform.redact",
                "JSON pointer",
            ),
            ("gzip = true", "routes[0].transform.gzip", "unknown field"),
            (
                "redact_cached = true",
                "routes[0].transform.redact_cached",
                "nothing to redact",
            ),
        ] {
            let e = parse(&with(t), "f.toml", std::iter::empty()).unwrap_err();
            assert!(
                e.problems()
                    .iter()
                    .any(|p| p.key.to_string() == key && p.to_string().contains(says)),
                "{t}: {e}"
            );
        }
    }
}
