//! Which entries an invalidation removes.
//!
//! Entries are named by their key's text form, `v<schema>:<namespace>:<hash>` (as the admin API
//! and the shared tiers show them). A selector matches those names: one exact key, a
//! prefix, a glob (`*` any run of characters, `?` one character), a namespace, or all;
//! or it names a tag the entry carries (tiers keep an index of tags, so that a tag does not
//! walk every entry outside memory).

/// What to invalidate. Serialized (`{"key": "..."}`, `"all"`) when a replica announces an
/// invalidation to the others.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selector {
    Key(String),
    Prefix(String),
    Glob(String),
    Namespace(String),
    Tag(String),
    All,
}

impl Selector {
    /// The selector as one glob over key names (`None` for a tag, which is not in names).
    pub fn glob(&self) -> Option<String> {
        Some(match self {
            Selector::Key(k) => escape(k),
            Selector::Prefix(p) => format!("{}*", escape(p)),
            Selector::Glob(g) => g.clone(),
            Selector::Namespace(ns) => format!("v{}:{}:*", crate::key::SCHEMA, escape(ns)),
            Selector::Tag(_) => return None,
            Selector::All => "*".into(),
        })
    }

    /// Whether the entry named `name`, tagged `tags`, is selected.
    pub fn matches(&self, name: &str, tags: &[String]) -> bool {
        match self {
            Selector::Key(k) => name == k,
            Selector::Prefix(p) => name.starts_with(p.as_str()),
            Selector::Glob(g) => glob_match(g.as_bytes(), name.as_bytes()),
            Selector::Namespace(ns) => name
                .strip_prefix(&format!("v{}:", crate::key::SCHEMA))
                .and_then(|rest| rest.strip_prefix(ns.as_str()))
                .is_some_and(|rest| rest.starts_with(':')),
            Selector::Tag(t) => tags.contains(t),
            Selector::All => true,
        }
    }
}

/// Makes `*`, `?` and Redis's `[`, `]`, `\` literal (they never occur in key names).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `*` and `?` globbing (with `\` escaping the next character), in linear time.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(b'?') => {
                p += 1;
                t += 1;
                continue;
            }
            Some(b'\\') if pattern.get(p + 1) == Some(&text[t]) => {
                p += 2;
                t += 1;
                continue;
            }
            Some(&c) if c != b'\\' && c == text[t] => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"v1:chat:*", b"v1:chat:abc"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"v1:*:a?c", b"v1:x:y:abc"));
        assert!(!glob_match(b"v1:chat:*", b"v1:chatty:abc"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(glob_match(b"a\\*c", b"a*c"));
        assert!(!glob_match(b"a\\*c", b"abc"));
        assert!(glob_match(b"*b*b*", b"abbab"));
    }

    #[test]
    fn selectors_match_names_and_translate_to_globs() {
        let name = "v2:chat:00ff";
        for s in [
            Selector::Key(name.into()),
            Selector::Prefix("v2:ch".into()),
            Selector::Glob("v2:*:00??".into()),
            Selector::Namespace("chat".into()),
            Selector::All,
        ] {
            let glob = s.glob().unwrap();
            assert!(s.matches(name, &[]), "{s:?}");
            assert!(glob_match(glob.as_bytes(), name.as_bytes()), "{s:?}");
            assert!(
                !s.matches("v2:other:11", &[]) || s == Selector::All,
                "{s:?}"
            );
        }
        assert!(!Selector::Namespace("cha".into()).matches(name, &[]));
        assert!(!glob_match(
            Selector::Namespace("cha".into()).glob().unwrap().as_bytes(),
            name.as_bytes()
        ));
        assert_eq!(Selector::Prefix("a*".into()).glob().unwrap(), "a\\**");
        let tag = Selector::Tag("billing".into());
        assert!(tag.matches(name, &["x".into(), "billing".into()]));
        assert!(!tag.matches(name, &["billing-2".into()]));
        assert_eq!(tag.glob(), None);
    }
}
