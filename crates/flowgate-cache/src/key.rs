//! Cache keys: a namespace and a 128-bit XXH3 hash of the request's canonical form.
//!
//! Key material is fed field by field into a streaming hash, never assembled into a string:
//! every field is written as its name and its value, each prefixed with its length, and JSON
//! values are written in a tagged canonical form (object members sorted by name, numbers by
//! value so that `0`, `0.0` and `-0.0` agree). Distinct requests therefore feed distinct
//! byte sequences; equal-meaning JSON (member order, whitespace) feeds the same one. XXH3 is
//! stable across processes and versions, so keys can be shared through Redis and kept on
//! disk. [`SCHEMA`] is hashed first: changing how keys are built changes every key.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use xxhash_rust::xxh3::Xxh3;

/// Version of the key derivation. Bump it whenever key material changes meaning.
pub const SCHEMA: u32 = 1;

/// Identifies one cached response.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey {
    namespace: Arc<str>,
    hash: u128,
}

impl CacheKey {
    /// The namespace: the route, a tenant, or a name routes share.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn hash(&self) -> u128 {
        self.hash
    }

    /// The key whose text form ([`fmt::Display`]) is `s`; `None` for another schema version
    /// or a malformed name.
    pub fn parse(s: &str) -> Option<CacheKey> {
        let rest = s.strip_prefix('v')?;
        let (version, rest) = rest.split_once(':')?;
        let (namespace, hex) = rest.rsplit_once(':')?;
        if version.parse::<u32>().ok()? != SCHEMA || hex.len() != 32 || namespace.is_empty() {
            return None;
        }
        Some(CacheKey {
            namespace: Arc::from(namespace),
            hash: u128::from_str_radix(hex, 16).ok()?,
        })
    }
}

/// `v1:<namespace>:<32 hex digits>`: the form used in the admin API and in shared tiers.
impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{SCHEMA}:{}:{:032x}", self.namespace, self.hash)
    }
}

/// Accumulates the material of one key.
pub struct KeyBuilder {
    hasher: Xxh3,
}

impl fmt::Debug for KeyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBuilder")
    }
}

impl KeyBuilder {
    /// Starts a key for requests of `kind` (`openai`, `http`): kinds never share keys.
    pub fn new(kind: &str) -> Self {
        let mut b = KeyBuilder {
            hasher: Xxh3::new(),
        };
        b.hasher.update(&SCHEMA.to_le_bytes());
        b.bytes(kind.as_bytes());
        b
    }

    /// Adds a field whose value is raw bytes.
    pub fn field(&mut self, name: &str, value: &[u8]) {
        self.bytes(name.as_bytes());
        self.tag(b'b');
        self.bytes(value);
    }

    /// Adds a field made of `n` items, each added next with [`KeyBuilder::pair`].
    pub fn count(&mut self, name: &str, n: usize) {
        self.bytes(name.as_bytes());
        self.tag(b'c');
        self.len(n);
    }

    /// Adds one item of a counted field: a name and a value.
    pub fn pair(&mut self, name: &[u8], value: &[u8]) {
        self.bytes(name);
        self.bytes(value);
    }

    /// Adds a field whose value is JSON, in canonical form. `None` (absent) differs from
    /// `null`.
    pub fn json(&mut self, name: &str, value: Option<&Value>) {
        self.bytes(name.as_bytes());
        match value {
            None => self.tag(b'-'),
            Some(v) => self.value(v),
        }
    }

    pub fn finish(self, namespace: Arc<str>) -> CacheKey {
        CacheKey {
            namespace,
            hash: self.hasher.digest128(),
        }
    }

    fn tag(&mut self, t: u8) {
        self.hasher.update(&[t]);
    }

    fn len(&mut self, n: usize) {
        self.hasher.update(&(n as u64).to_le_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.hasher.update(b);
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.tag(b'n'),
            Value::Bool(b) => self.tag(if *b { b't' } else { b'f' }),
            Value::Number(n) => match canonical_number(n) {
                Number::Int(i) => {
                    self.tag(b'i');
                    self.hasher.update(&i.to_le_bytes());
                }
                Number::Float(f) => {
                    self.tag(b'd');
                    self.hasher.update(&f.to_bits().to_le_bytes());
                }
            },
            Value::String(s) => {
                self.tag(b's');
                self.bytes(s.as_bytes());
            }
            Value::Array(items) => {
                self.tag(b'a');
                self.len(items.len());
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(members) => {
                self.tag(b'o');
                self.len(members.len());
                let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (name, value) in sorted {
                    self.bytes(name.as_bytes());
                    self.value(value);
                }
            }
        }
    }
}

enum Number {
    Int(i128),
    Float(f64),
}

/// JSON does not tell `1` from `1.0`: both are the integer 1 here, and `-0.0` is 0.
fn canonical_number(n: &serde_json::Number) -> Number {
    if let Some(i) = n.as_i64() {
        return Number::Int(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Number::Int(i128::from(u));
    }
    let f = n.as_f64().unwrap_or(0.0);
    // Below 2^53 every integral f64 is exact.
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Number::Int(f as i128)
    } else {
        Number::Float(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn key_of(v: &Value) -> CacheKey {
        let mut b = KeyBuilder::new("openai");
        b.json("body", Some(v));
        b.finish(Arc::from("ns"))
    }

    #[test]
    fn equal_meaning_json_shares_a_key() {
        let a: Value =
            serde_json::from_str(r#"{"a":1,"b":[true,null,"x"],"c":{"d":0.0}}"#).unwrap();
        let b: Value = serde_json::from_str(
            "{ \"c\" : { \"d\" : -0 } ,\n \"b\":[true, null,\"x\"], \"a\":1.0}",
        )
        .unwrap();
        assert_eq!(key_of(&a), key_of(&b));
        assert_ne!(key_of(&a), key_of(&json!({"a": 1, "b": [true, null, "x"]})));
    }

    #[test]
    fn absent_null_and_kinds_differ() {
        let mut a = KeyBuilder::new("openai");
        a.json("seed", None);
        let mut b = KeyBuilder::new("openai");
        b.json("seed", Some(&Value::Null));
        let mut c = KeyBuilder::new("http");
        c.json("seed", None);
        let (a, b, c) = (
            a.finish("n".into()),
            b.finish("n".into()),
            c.finish("n".into()),
        );
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string().len(), "v1:n:".len() + 32);
        assert_eq!(CacheKey::parse(&a.to_string()), Some(a.clone()));
        assert_eq!(
            CacheKey::parse(&a.to_string().replacen("v1", "v2", 1)),
            None
        );
        assert_eq!(CacheKey::parse("v1:n:xyz"), None);
    }

    #[test]
    fn namespaces_separate_equal_requests() {
        let v = json!({"m": "x"});
        let mut a = KeyBuilder::new("openai");
        a.json("body", Some(&v));
        let mut b = KeyBuilder::new("openai");
        b.json("body", Some(&v));
        assert_ne!(a.finish("tenant-a".into()), b.finish("tenant-b".into()));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|i| json!(i)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            "[a-z\"\\\\ ]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// JSON equality, with numbers compared by value (`1` is `1.0`).
    fn same_meaning(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                match (canonical_number(x), canonical_number(y)) {
                    (Number::Int(i), Number::Int(j)) => i == j,
                    (Number::Float(f), Number::Float(g)) => f.to_bits() == g.to_bits(),
                    _ => false,
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_meaning(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| same_meaning(v, w)))
            }
            _ => a == b,
        }
    }

    /// Writes `v` as JSON with object members in reverse order and random-looking spacing.
    fn reordered(v: &Value, out: &mut String) {
        match v {
            Value::Array(items) => {
                out.push_str("[ ");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" ,\n");
                    }
                    reordered(item, out);
                }
                out.push(']');
            }
            Value::Object(m) => {
                out.push('{');
                for (i, (k, item)) in m.iter().rev().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push_str(" :\t");
                    reordered(item, out);
                }
                out.push_str(" }");
            }
            other => out.push_str(&other.to_string()),
        }
    }

    proptest! {
        #[test]
        fn keys_are_injective_on_meaning(a in arb_json(), b in arb_json()) {
            // Different values (as JSON sees them) never share a key.
            prop_assert_eq!(key_of(&a) == key_of(&b), same_meaning(&a, &b));
        }

        #[test]
        fn member_order_and_whitespace_do_not_matter(v in arb_json()) {
            let mut text = String::new();
            reordered(&v, &mut text);
            // Both sides parsed from text, as requests are (serde_json's float parsing is
            // not an exact round trip of a float it printed, but it is deterministic).
            let reordered_parse: Value = serde_json::from_str(&text).unwrap();
            let plain_parse: Value = serde_json::from_str(&v.to_string()).unwrap();
            prop_assert_eq!(key_of(&reordered_parse), key_of(&plain_parse));
        }
    }
}
