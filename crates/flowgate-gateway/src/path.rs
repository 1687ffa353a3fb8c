//! Request paths as routed and forwarded: dot-segments (`.` and `..`, also written `%2e`)
//! are removed before routing (RFC 3986 §5.2.4), so that `/public/../admin` is routed, and
//! forwarded, as `/admin`, and a route's prefix cannot be escaped by a path an upstream
//! would resolve differently. A path that climbs above the root is refused.

use http::Uri;
use http::uri::PathAndQuery;

use crate::error::ProxyError;

/// `uri` with its path's dot-segments removed, or `None` when it has none (the common case,
/// found without allocating).
pub fn normalize(uri: &Uri) -> Result<Option<Uri>, ProxyError> {
    let path = uri.path();
    if !has_dots(path) {
        return Ok(None);
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match dot_kind(seg) {
            Some(Dots::One) => trailing_slash = i == last,
            Some(Dots::Two) => {
                if out.pop().is_none() {
                    return Err(ProxyError::BadRequest(format!(
                        "the path {path:?} climbs above the root"
                    )));
                }
                trailing_slash = i == last;
            }
            None => {
                out.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut normal = String::with_capacity(path.len());
    for seg in &out {
        normal.push('/');
        normal.push_str(seg);
    }
    if trailing_slash || normal.is_empty() {
        normal.push('/');
    }
    if let Some(q) = uri.query() {
        normal.push('?');
        normal.push_str(q);
    }
    let pq = PathAndQuery::try_from(normal)
        .map_err(|e| ProxyError::BadRequest(format!("bad request target: {e}")))?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    Uri::from_parts(parts)
        .map(Some)
        .map_err(|e| ProxyError::BadRequest(format!("bad request target: {e}")))
}

enum Dots {
    One,
    Two,
}

/// Whether `path` may hold a dot-segment: a `.` or `%2e` right after a `/`.
fn has_dots(path: &str) -> bool {
    let b = path.as_bytes();
    b.windows(2).any(|w| w == b"/.")
        || b.windows(4)
            .any(|w| w[0] == b'/' && w[1] == b'%' && w[2] == b'2' && (w[3] | 0x20) == b'e')
}

/// A segment that is `.` or `..`, the dots written plainly or as `%2e`.
fn dot_kind(seg: &str) -> Option<Dots> {
    let mut dots = 0;
    let mut rest = seg.as_bytes();
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && (rest[2] | 0x20) == b'e'
        {
            rest = &rest[3..];
        } else {
            return None;
        }
        dots += 1;
    }
    match dots {
        1 => Some(Dots::One),
        2 => Some(Dots::Two),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, ()> {
        let uri: Uri = s.parse().unwrap();
        match normalize(&uri) {
            Ok(Some(u)) => Ok(u.to_string()),
            Ok(None) => Ok(uri.to_string()),
            Err(_) => Err(()),
        }
    }

    #[test]
    fn dot_segments_are_removed_plain_or_encoded() {
        assert_eq!(
            norm("/v1/chat/completions"),
            Ok("/v1/chat/completions".into())
        );
        assert_eq!(norm("/public/../admin"), Ok("/admin".into()));
        assert_eq!(norm("/a/./b/../c?x=/../y"), Ok("/a/c?x=/../y".into()));
        assert_eq!(norm("/a/%2E%2e/b"), Ok("/b".into()));
        assert_eq!(norm("/a/.%2e/b/."), Ok("/b/".into()));
        assert_eq!(norm("/a/b/.."), Ok("/a/".into()));
        assert_eq!(norm("/a/.."), Ok("/".into()));
        assert_eq!(
            norm("/a/.hidden/...x/..."),
            Ok("/a/.hidden/...x/...".into())
        );
        assert_eq!(norm("/.."), Err(()));
        assert_eq!(norm("/a/../../etc/passwd"), Err(()));
        assert_eq!(norm("/%2e%2e/x"), Err(()));
    }
}
