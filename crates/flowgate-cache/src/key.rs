//! Cache keys: a namespace and a 128-bit XXH3 hash of the request's canonical form.
//!
//! Key material is fed field by field into a streaming hash, never assembled into a string:
//! every field is written as its name and its value, each prefixed with its length. JSON
//! values are read straight from the request text into a digest of their canonical form
//! ([`Canon`]), without building a tree: object members are sorted by name (each member's
//! value hashed apart, then the sorted names and digests), arrays keep their order, numbers
//! are written by value so that `0`, `0.0` and `-0.0` agree. Distinct requests therefore
//! feed distinct byte sequences; equal-meaning JSON (member order, whitespace) feeds the
//! same one. XXH3 is stable across processes and versions, so keys can be shared through
//! Redis and kept on disk. [`SCHEMA`] is hashed first: changing how keys are built changes
//! every key.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use xxhash_rust::xxh3::Xxh3;

/// Version of the key derivation. Bump it whenever key material changes meaning.
/// 2: JSON values hashed as they are read ([`Canon`]).
pub const SCHEMA: u32 = 2;

/// Identifies one cached response.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey {
    namespace: Arc<str>,
    hash: u128,
}

impl CacheKey {
    /// The key of `hash` (a [`KeyBuilder::digest`]) in `namespace`.
    pub fn new(namespace: Arc<str>, hash: u128) -> Self {
        CacheKey { namespace, hash }
    }

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

/// `v<SCHEMA>:<namespace>:<32 hex digits>`: the form used in the admin API and in shared tiers.
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

    /// Adds a field whose value is JSON, by its canonical digest. `None` (absent) differs
    /// from `null`.
    pub fn canon(&mut self, name: &str, value: Option<&Canon<'_>>) {
        self.bytes(name.as_bytes());
        match value {
            None => self.tag(b'-'),
            Some(c) => {
                self.tag(b'j');
                self.hasher.update(&c.digest.to_le_bytes());
            }
        }
    }

    pub fn finish(self, namespace: Arc<str>) -> CacheKey {
        CacheKey::new(namespace, self.digest())
    }

    /// The hash of the material, for [`CacheKey::new`].
    pub fn digest(self) -> u128 {
        self.hasher.digest128()
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
}

/// A JSON value read into the digest of its canonical form, and what it is at the top (the
/// facts caching decisions need: a model name, a temperature, null or not).
#[derive(Debug)]
pub struct Canon<'a> {
    pub digest: u128,
    pub top: Top<'a>,
}

/// What a JSON value is.
#[derive(Debug, Clone, PartialEq)]
pub enum Top<'a> {
    Null,
    Bool(bool),
    /// Its value as a float, and whether it is a non-negative integer that fits a u64.
    Number(f64, Option<u64>),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl<'de> Deserialize<'de> for Canon<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut h = Xxh3::new();
        let top = d.deserialize_any(Feed {
            h: &mut h,
            keep: true,
        })?;
        Ok(Canon {
            digest: h.digest128(),
            top,
        })
    }
}

/// Hashes one JSON value into `h`; `keep`: the top value, whose string is kept.
struct Feed<'h> {
    h: &'h mut Xxh3,
    keep: bool,
}

impl Feed<'_> {
    fn tag(&mut self, t: u8) {
        self.h.update(&[t]);
    }

    fn len(&mut self, n: usize) {
        self.h.update(&(n as u64).to_le_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.h.update(b);
    }

    fn int(&mut self, i: i128) {
        self.tag(b'i');
        self.h.update(&i.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.tag(b's');
        self.bytes(s.as_bytes());
    }
}

impl<'de> DeserializeSeed<'de> for Feed<'_> {
    type Value = Top<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Feed<'_> {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(mut self) -> Result<Top<'de>, E> {
        self.tag(b'n');
        Ok(Top::Null)
    }

    fn visit_none<E>(mut self) -> Result<Top<'de>, E> {
        self.tag(b'n');
        Ok(Top::Null)
    }

    fn visit_bool<E>(mut self, b: bool) -> Result<Top<'de>, E> {
        self.tag(if b { b't' } else { b'f' });
        Ok(Top::Bool(b))
    }

    fn visit_i64<E>(mut self, i: i64) -> Result<Top<'de>, E> {
        self.int(i128::from(i));
        Ok(Top::Number(i as f64, u64::try_from(i).ok()))
    }

    fn visit_u64<E>(mut self, u: u64) -> Result<Top<'de>, E> {
        self.int(i128::from(u));
        Ok(Top::Number(u as f64, Some(u)))
    }

    fn visit_f64<E>(mut self, f: f64) -> Result<Top<'de>, E> {
        // JSON does not tell `1` from `1.0`: both are the integer 1 here, and `-0.0` is 0.
        // Below 2^53 every integral f64 is exact.
        if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            self.int(f as i128);
        } else {
            self.tag(b'd');
            self.h.update(&f.to_bits().to_le_bytes());
        }
        Ok(Top::Number(f, None))
    }

    fn visit_borrowed_str<E>(mut self, s: &'de str) -> Result<Top<'de>, E> {
        self.string(s);
        Ok(Top::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(mut self, s: &str) -> Result<Top<'de>, E> {
        self.string(s);
        Ok(Top::Str(if self.keep {
            Cow::Owned(s.to_string())
        } else {
            Cow::Borrowed("")
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Top<'de>, A::Error> {
        self.tag(b'a');
        let mut n = 0usize;
        while seq
            .next_element_seed(Feed {
                h: &mut *self.h,
                keep: false,
            })?
            .is_some()
        {
            n += 1;
        }
        // Items are self-delimiting: the end tag and count close the array.
        self.tag(b']');
        self.len(n);
        Ok(Top::Array)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Top<'de>, A::Error> {
        // Members in any order mean the same: each value is hashed apart, and the sorted
        // names and digests are hashed.
        let mut members: Vec<(Cow<'de, str>, u128)> = Vec::new();
        while let Some(Name(name)) = map.next_key()? {
            let mut h = Xxh3::new();
            map.next_value_seed(Feed {
                h: &mut h,
                keep: false,
            })?;
            members.push((name, h.digest128()));
        }
        members.sort_unstable();
        self.tag(b'o');
        self.len(members.len());
        for (name, digest) in &members {
            self.bytes(name.as_bytes());
            self.h.update(&digest.to_le_bytes());
        }
        Ok(Top::Object)
    }
}

/// A member name, borrowed from the text when it has no escapes.
pub struct Name<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The key of a request whose body is the JSON `text`.
    fn key_of(text: &str) -> CacheKey {
        let c: Canon<'_> = serde_json::from_str(text).unwrap();
        let mut b = KeyBuilder::new("openai");
        b.canon("body", Some(&c));
        b.finish(Arc::from("ns"))
    }

    #[test]
    fn equal_meaning_json_shares_a_key() {
        let a = r#"{"a":1,"b":[true,null,"x"],"c":{"d":0.0}}"#;
        let b = "{ \"c\" : { \"d\" : -0 } ,\n \"b\":[true, null,\"x\"], \"a\":1.0}";
        assert_eq!(key_of(a), key_of(b));
        assert_ne!(key_of(a), key_of(r#"{"a":1,"b":[true,null,"x"]}"#));
        // Escapes are read: the same string, spelled two ways.
        assert_eq!(key_of(r#"{"k":"\u0041"}"#), key_of(r#"{"k":"A"}"#));
        // Nesting is not ambiguous.
        assert_ne!(key_of("[[1],2]"), key_of("[[1,2]]"));
        assert_ne!(key_of(r#"{"a":{"b":1}}"#), key_of(r#"{"a":{},"b":1}"#));
    }

    #[test]
    fn the_top_of_a_value_is_kept() {
        let c: Canon<'_> = serde_json::from_str(r#""gpt-4o""#).unwrap();
        assert_eq!(c.top, Top::Str(Cow::Borrowed("gpt-4o")));
        let c: Canon<'_> = serde_json::from_str("0.0").unwrap();
        assert_eq!(c.top, Top::Number(0.0, None));
        let c: Canon<'_> = serde_json::from_str("5").unwrap();
        assert_eq!(c.top, Top::Number(5.0, Some(5)));
        let c: Canon<'_> = serde_json::from_str("null").unwrap();
        assert_eq!(c.top, Top::Null);
    }

    #[test]
    fn absent_null_and_kinds_differ() {
        let null: Canon<'_> = serde_json::from_str("null").unwrap();
        let mut a = KeyBuilder::new("openai");
        a.canon("seed", None);
        let mut b = KeyBuilder::new("openai");
        b.canon("seed", Some(&null));
        let mut c = KeyBuilder::new("http");
        c.canon("seed", None);
        let (a, b, c) = (
            a.finish("n".into()),
            b.finish("n".into()),
            c.finish("n".into()),
        );
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string().len(), "v2:n:".len() + 32);
        assert_eq!(CacheKey::parse(&a.to_string()), Some(a.clone()));
        assert_eq!(
            CacheKey::parse(&a.to_string().replacen("v2", "v1", 1)),
            None
        );
        assert_eq!(CacheKey::parse("v2:n:xyz"), None);
    }

    #[test]
    fn namespaces_separate_equal_requests() {
        let v: Canon<'_> = serde_json::from_str(r#"{"m":"x"}"#).unwrap();
        let mut a = KeyBuilder::new("openai");
        a.canon("body", Some(&v));
        let mut b = KeyBuilder::new("openai");
        b.canon("body", Some(&v));
        assert_ne!(a.finish("tenant-a".into()), b.finish("tenant-b".into()));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|i| serde_json::json!(i)),
            (-1e6f64..1e6).prop_map(|f| serde_json::json!(f)),
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

    /// A number's value: integers (and integral floats) as integers, `-0.0` as 0.
    fn number(n: &serde_json::Number) -> (Option<i128>, u64) {
        if let Some(i) = n.as_i64() {
            return (Some(i128::from(i)), 0);
        }
        if let Some(u) = n.as_u64() {
            return (Some(i128::from(u)), 0);
        }
        let f = n.as_f64().unwrap_or(0.0);
        if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            (Some(f as i128), 0)
        } else {
            (None, f.to_bits())
        }
    }

    /// JSON equality, with numbers compared by value (`1` is `1.0`).
    fn same_meaning(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => number(x) == number(y),
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
            // Both read back from their text, as requests are (serde_json's float parsing
            // is not an exact round trip of a float it printed, but it is deterministic).
            let (ta, tb) = (a.to_string(), b.to_string());
            let pa: Value = serde_json::from_str(&ta).unwrap();
            let pb: Value = serde_json::from_str(&tb).unwrap();
            // Different values (as JSON sees them) never share a key.
            prop_assert_eq!(key_of(&ta) == key_of(&tb), same_meaning(&pa, &pb));
        }

        #[test]
        fn member_order_and_whitespace_do_not_matter(v in arb_json()) {
            let mut text = String::new();
            reordered(&v, &mut text);
            prop_assert_eq!(key_of(&text), key_of(&v.to_string()));
        }
    }
}
