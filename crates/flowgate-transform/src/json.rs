//! JSON rewritten in one pass over its bytes: insignificant whitespace dropped, members
//! whose value is `null` dropped, configured fields' values replaced by `"[redacted]"`.
//! Numbers, strings and member order are copied as they are (a parse into a tree would
//! round numbers and sort keys). The body is checked to be JSON first; one that is not is
//! left alone.

/// What replaces a redacted value.
pub const REDACTED: &[u8] = b"\"[redacted]\"";

/// Fields to redact: by key name anywhere (any case), or by JSON pointer (RFC 6901;
/// a segment `*` matches any key or index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redaction {
    names: Vec<String>,
    pointers: Vec<Vec<String>>,
}

impl Redaction {
    /// From the config's list: an entry starting with `/` is a pointer, else a name.
    pub fn new(fields: &[String]) -> Result<Redaction, String> {
        let mut r = Redaction::default();
        for f in fields {
            if f.is_empty() {
                return Err("an empty field name".into());
            }
            if let Some(rest) = f.strip_prefix('/') {
                let segs = rest
                    .split('/')
                    .map(|s| s.replace("~1", "/").replace("~0", "~"))
                    .collect();
                r.pointers.push(segs);
            } else {
                r.names.push(f.to_ascii_lowercase());
            }
        }
        Ok(r)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.pointers.is_empty()
    }

    /// Whether the value at `path` (ending with `key` when it is an object's member) is
    /// redacted.
    fn hides(&self, path: &[String], key: Option<&str>) -> bool {
        key.is_some_and(|k| self.names.iter().any(|n| n.eq_ignore_ascii_case(k)))
            || self.pointers.iter().any(|p| {
                p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == "*" || a == b)
            })
    }
}

/// What to do to a JSON body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonRewrite {
    pub minify: bool,
    pub drop_nulls: bool,
    pub redact: Redaction,
}

/// The body is not JSON: left as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotJson;

impl JsonRewrite {
    /// Whether it changes anything.
    pub fn is_off(&self) -> bool {
        !self.minify && !self.drop_nulls && self.redact.is_empty()
    }

    /// `body` rewritten (compact, whatever was asked).
    pub fn apply(&self, body: &[u8]) -> Result<Vec<u8>, NotJson> {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|_| NotJson)?;
        let mut w = Walk {
            s: body,
            i: 0,
            out: Vec::with_capacity(body.len()),
            path: Vec::new(),
            t: self,
        };
        w.ws();
        w.value(None);
        Ok(w.out)
    }
}

struct Walk<'a> {
    s: &'a [u8],
    i: usize,
    out: Vec<u8>,
    path: Vec<String>,
    t: &'a JsonRewrite,
}

impl Walk<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(b'\0')
    }

    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    /// The string at `i` (valid JSON: it ends), its raw bytes with the quotes.
    fn string(&mut self) -> &[u8] {
        let start = self.i;
        self.i += 1;
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    break;
                }
                _ => self.i += 1,
            }
        }
        &self.s[start..self.i]
    }

    /// Moves past the number, `true`, `false` or `null` at `i`.
    fn scalar(&mut self) {
        while !matches!(
            self.peek(),
            b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | b'\0'
        ) {
            self.i += 1;
        }
    }

    /// Skips the value at `i`.
    fn skip(&mut self) {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                b'"' => {
                    self.string();
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                }
                b'}' | b']' => {
                    depth -= 1;
                    self.i += 1;
                }
                b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                _ => self.scalar(),
            }
            if depth == 0 {
                return;
            }
        }
    }

    /// Copies (or rewrites) the value at `i`, a member `key`'s when in an object.
    fn value(&mut self, key: Option<&str>) {
        if self.t.redact.hides(&self.path, key) {
            self.skip();
            self.out.extend_from_slice(REDACTED);
            return;
        }
        match self.peek() {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => {
                let start = self.i;
                self.string();
                self.out.extend_from_slice(&self.s[start..self.i]);
            }
            _ => {
                let start = self.i;
                self.scalar();
                self.out.extend_from_slice(&self.s[start..self.i]);
            }
        }
    }

    fn object(&mut self) {
        self.i += 1;
        self.out.push(b'{');
        let mut first = true;
        loop {
            self.ws();
            if self.peek() == b'}' {
                self.i += 1;
                break;
            }
            if self.peek() == b',' {
                self.i += 1;
                self.ws();
            }
            let raw = self.string().to_vec();
            let key: String = serde_json::from_slice(&raw).unwrap_or_default();
            self.ws();
            self.i += 1; // ':'
            self.ws();
            if self.t.drop_nulls && self.s[self.i..].starts_with(b"null") {
                self.i += 4;
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            self.out.extend_from_slice(&raw);
            self.out.push(b':');
            self.path.push(key.clone());
            self.value(Some(&key));
            self.path.pop();
        }
        self.out.push(b'}');
    }

    fn array(&mut self) {
        self.i += 1;
        self.out.push(b'[');
        let mut index = 0usize;
        loop {
            self.ws();
            match self.peek() {
                b']' => {
                    self.i += 1;
                    break;
                }
                b',' => {
                    self.i += 1;
                    continue;
                }
                _ => {}
            }
            if index > 0 {
                self.out.push(b',');
            }
            self.path.push(index.to_string());
            self.value(None);
            self.path.pop();
            index += 1;
        }
        self.out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(t: &JsonRewrite, s: &str) -> String {
        String::from_utf8(t.apply(s.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn minified_as_it_was_written_numbers_and_order_kept() {
        let t = JsonRewrite {
            minify: true,
            ..JsonRewrite::default()
        };
        let body = "{ \"z\" : 1.230000000000000000001 ,\n \"a\": [ 1, 2 , {\"s\": \"a \\\" b } ]\"} ],\"n\": null }";
        assert_eq!(
            rewrite(&t, body),
            "{\"z\":1.230000000000000000001,\"a\":[1,2,{\"s\":\"a \\\" b } ]\"}],\"n\":null}"
        );
        // The same value as the original.
        let a: serde_json::Value = serde_json::from_str(body).unwrap();
        let b: serde_json::Value = serde_json::from_str(&rewrite(&t, body)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn nulls_go_and_fields_are_redacted_by_name_and_pointer() {
        let t = JsonRewrite {
            minify: false,
            drop_nulls: true,
            redact: Redaction::new(&[
                "SSN".into(),
                "/choices/*/message/api_key".into(),
                "/a~1b".into(),
            ])
            .unwrap(),
        };
        let body = r#"{"id": "x", "gone": null, "user": {"ssn": "123-45-6789", "email": null, "deep": [{"Ssn": {"nested": 1}}]},
            "choices": [{"message": {"api_key": "sk-1", "content": "hi"}}, {"message": {"api_key": null}}],
            "a/b": [1, 2], "api_key": "top level is not the pointer", "list": [null, 1]}"#;
        assert_eq!(
            rewrite(&t, body),
            r#"{"id":"x","user":{"ssn":"[redacted]","deep":[{"Ssn":"[redacted]"}]},"choices":[{"message":{"api_key":"[redacted]","content":"hi"}},{"message":{}}],"a/b":"[redacted]","api_key":"top level is not the pointer","list":[null,1]}"#
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_left_alone() {
        let t = JsonRewrite {
            minify: true,
            ..JsonRewrite::default()
        };
        assert_eq!(t.apply(b"{\"a\": 1"), Err(NotJson));
        assert_eq!(t.apply(b"hello"), Err(NotJson));
        assert_eq!(t.apply(b"  42 "), Ok(b"42".to_vec()));
        assert!(Redaction::new(&[String::new()]).is_err());
    }
}
