//! Key material and storage rules of requests on generic HTTP routes.
//!
//! A key holds the method (HEAD keyed as GET: a stored GET answers both), the path, the
//! query parameters (all of them, or the ones a route selects), the headers a route
//! selects, and the body. Percent-escapes of unreserved characters are decoded and the
//! others' hex digits upper-cased (RFC 3986 §6.2.2: `%7E` is `~`, `%2f` is `%2F`); nothing
//! else is decoded, since `+` and `%2B` mean different things to form decoders. Parameters
//! are sorted by name, keeping the order of one name's values.
//!
//! What the origin says about its answer counts too ([`storable`]): `no-store`, `private`
//! or `no-cache` keep it out of the cache, `s-maxage`/`max-age` give its TTL, and a `Vary`
//! on a header the key does not hold would let one client's answer reach another, so such
//! an answer is not stored.

use std::borrow::Cow;
use std::time::Duration;

use crate::key::KeyBuilder;

/// A query parameter's name and value, in canonical form.
type Param<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// Builds the key of one request.
#[derive(Debug)]
pub struct HttpKey {
    material: KeyBuilder,
}

impl HttpKey {
    /// Starts the key of a `method` request for `path`.
    pub fn new(method: &str, path: &str) -> Self {
        let mut material = KeyBuilder::new("http");
        let method = if method == "HEAD" { "GET" } else { method };
        material.field("method", method.as_bytes());
        material.field("path", &canonical(path.as_bytes()));
        HttpKey { material }
    }

    /// Adds the query string's parameters; only those named in `only` (sorted) when given.
    pub fn query(&mut self, query: Option<&str>, only: Option<&[String]>) {
        let mut params: Vec<Param<'_>> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (name, value) = p.split_once('=').unwrap_or((p, ""));
                (canonical(name.as_bytes()), canonical(value.as_bytes()))
            })
            .filter(|(name, _)| {
                only.is_none_or(|o| {
                    std::str::from_utf8(name)
                        .is_ok_and(|n| o.binary_search_by(|x| x.as_str().cmp(n)).is_ok())
                })
            })
            .collect();
        // Stable: one name's values keep their order.
        params.sort_by(|a, b| a.0.cmp(&b.0));
        self.material.count("query", params.len());
        for (name, value) in &params {
            self.material.pair(name, value);
        }
    }

    /// Adds a selected header's values (none: absent).
    pub fn header<'v>(&mut self, name: &str, values: impl Iterator<Item = &'v [u8]>) {
        let values: Vec<&[u8]> = values.collect();
        self.material.count(name, values.len());
        for v in values {
            self.material.pair(b"", v);
        }
    }

    /// Adds the request body.
    pub fn body(&mut self, body: &[u8]) {
        self.material.field("body", body);
    }

    pub fn finish(self) -> KeyBuilder {
        self.material
    }
}

/// Whether a request of `method` always gets the same answer: GET and HEAD.
pub fn deterministic(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// What an origin's answer allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storable {
    /// Not to be stored, and why.
    No(&'static str),
    /// May be stored; for this long when the origin says so.
    Yes { ttl: Option<Duration> },
}

/// Reads an answer's `Cache-Control` and `Vary` values; `keyed` tells whether a request
/// header (lower case) is part of the key.
pub fn storable<'v>(
    cache_control: impl Iterator<Item = &'v [u8]>,
    vary: impl Iterator<Item = &'v [u8]>,
    keyed: impl Fn(&str) -> bool,
) -> Storable {
    let mut max_age = None;
    let mut s_maxage = None;
    for value in cache_control {
        for part in String::from_utf8_lossy(value).split(',') {
            let part = part.trim();
            let (name, arg) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (part, None),
            };
            let seconds = || arg.and_then(|a| a.parse::<u64>().ok());
            match name.to_ascii_lowercase().as_str() {
                "no-store" => return Storable::No("the origin said no-store"),
                "private" => return Storable::No("the origin said private"),
                "no-cache" => return Storable::No("the origin said no-cache"),
                "max-age" => max_age = seconds(),
                "s-maxage" => s_maxage = seconds(),
                _ => {}
            }
        }
    }
    for value in vary {
        for name in String::from_utf8_lossy(value).split(',') {
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            if name == "*" || !keyed(&name) {
                return Storable::No("the answer varies on a header the key does not hold");
            }
        }
    }
    // A shared cache reads s-maxage before max-age.
    match s_maxage.or(max_age) {
        Some(0) => Storable::No("the origin gave it no freshness (max-age=0)"),
        Some(s) => Storable::Yes {
            ttl: Some(Duration::from_secs(s)),
        },
        None => Storable::Yes { ttl: None },
    }
}

/// `raw` with escapes of unreserved characters decoded and other escapes' hex upper-cased.
fn canonical(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let escape = (raw[i] == b'%')
            .then(|| raw.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| Some((hex(h[0])? << 4) | hex(h[1])?));
        match escape {
            Some(c) if c.is_ascii_alphanumeric() || b"-._~".contains(&c) => {
                out.push(c);
                i += 3;
            }
            Some(_) => {
                out.push(b'%');
                out.extend(raw[i + 1..i + 3].iter().map(u8::to_ascii_uppercase));
                i += 3;
            }
            None => {
                out.push(raw[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::CacheKey;
    use proptest::prelude::*;

    struct Req<'a> {
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        accept: Option<&'a str>,
        body: &'a [u8],
    }

    const GET: Req<'static> = Req {
        method: "GET",
        path: "/v1/report",
        query: Some("id=7&lang=en"),
        accept: None,
        body: b"",
    };

    fn key(r: &Req<'_>, only: Option<&[String]>) -> CacheKey {
        let mut k = HttpKey::new(r.method, r.path);
        k.query(r.query, only);
        k.header("accept", r.accept.map(str::as_bytes).into_iter());
        k.body(r.body);
        k.finish().finish("api".into())
    }

    #[test]
    fn parameter_order_and_equivalent_escapes_share_a_key() {
        let base = key(&GET, None);
        for query in ["lang=en&id=7", "l%61ng=en&id=%37", "&id=7&&lang=en"] {
            let q = Req {
                query: Some(query),
                ..GET
            };
            assert_eq!(key(&q, None), base, "{query}");
        }
        let head = Req {
            method: "HEAD",
            ..GET
        };
        assert_eq!(key(&head, None), base);
        let a = Req {
            query: Some("q=a%2fb"),
            ..GET
        };
        let b = Req {
            query: Some("q=a%2Fb"),
            ..GET
        };
        assert_eq!(key(&a, None), key(&b, None));
    }

    #[test]
    fn what_changes_the_answer_changes_the_key() {
        let base = key(&GET, None);
        let variants = [
            Req {
                method: "POST",
                ..GET
            },
            Req {
                path: "/v1/report/",
                ..GET
            },
            Req {
                query: Some("id=8&lang=en"),
                ..GET
            },
            Req {
                query: Some("id=7&lang=en&x"),
                ..GET
            },
            Req {
                query: Some("id=7"),
                ..GET
            },
            Req {
                accept: Some("text/csv"),
                ..GET
            },
            Req { body: b"x", ..GET },
        ];
        for v in &variants {
            assert_ne!(key(v, None), base);
        }
        // `+` and `%2B` differ for form decoders; so do `%2F` and `/`.
        let plus = |q| {
            key(
                &Req {
                    query: Some(q),
                    ..GET
                },
                None,
            )
        };
        assert_ne!(plus("q=a+b"), plus("q=a%2Bb"));
        assert_ne!(plus("q=a/b"), plus("q=a%2Fb"));
        // One name's values keep their order.
        assert_ne!(plus("a=1&a=2"), plus("a=2&a=1"));
    }

    #[test]
    fn a_route_can_select_its_parameters() {
        let only = ["id".to_string()];
        let tracked = Req {
            query: Some("id=7&utm_source=mail"),
            ..GET
        };
        assert_eq!(key(&tracked, Some(&only)), key(&GET, Some(&only)));
        let other = Req {
            query: Some("id=8"),
            ..GET
        };
        assert_ne!(key(&other, Some(&only)), key(&GET, Some(&only)));
    }

    #[test]
    fn the_origin_decides_what_may_be_stored() {
        let s = |cc: &str, vary: &str| {
            storable(
                std::iter::once(cc.as_bytes()),
                std::iter::once(vary.as_bytes()),
                |h| h == "accept",
            )
        };
        assert_eq!(s("", ""), Storable::Yes { ttl: None });
        assert_eq!(
            s("public, max-age=60", "Accept"),
            Storable::Yes {
                ttl: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(
            s("max-age=60, s-maxage=600", ""),
            Storable::Yes {
                ttl: Some(Duration::from_secs(600))
            }
        );
        for (cc, vary) in [
            ("no-store", ""),
            ("Private", ""),
            ("no-cache", ""),
            ("max-age=0", ""),
            ("", "*"),
            ("", "accept, Accept-Language"),
        ] {
            assert!(matches!(s(cc, vary), Storable::No(_)), "{cc} / {vary}");
        }
    }

    /// Every alphanumeric character percent-encoded.
    fn escaped(v: &str) -> String {
        v.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    format!("%{:02x}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn values_share_a_key_exactly_when_they_mean_the_same(
            a in "[a-zA-Z0-9._~+/-]{0,12}",
            b in "[a-zA-Z0-9._~+/-]{0,12}",
        ) {
            let k = |v: &str| key(&Req { query: Some(&format!("q={v}")), ..GET }, None);
            prop_assert_eq!(k(&a) == k(&b), a == b);
            prop_assert_eq!(k(&a), k(&escaped(&a)));
        }
    }
}
