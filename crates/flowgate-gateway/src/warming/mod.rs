//! Cache warming: requests replayed into the cache by the gateway itself, from the admin
//! API (`POST /api/v1/performance/cache/warm`), from the warm file named in config (at
//! start), or from the most requested recent keys ("top-N").
//!
//! A warming request goes the way a client's would (route, cache plan, the pool and its
//! timeouts) but is not counted in the cache's hit rate. An entry that is already fresh
//! is left alone; a stale one, or one due for refresh-ahead, is refreshed; a missing one is
//! fetched. One job runs at a time, one request at a time, and requests sent upstream are
//! paced at `cache.warm.rate` per second, so warming never crowds out live traffic.
//!
//! Top-N: the requests of recently requested keys are kept ([`Recent`]): a key's request
//! is copied when it misses (memory hits only count), at most `cache.warm.keep` of them,
//! ranked by requests with the space-saving rule (a newcomer replaces the least requested
//! and inherits its count) and aged by halving every 10 × `keep` requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use flowgate_cache::CacheKey;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use serde::{Deserialize, Serialize};

use crate::headers;

pub mod job;

/// Request bodies larger than this are not kept for top-N warming.
const MAX_KEPT_BODY: usize = 64 * 1024;
/// Requests one warming job takes at most.
pub const MAX_JOB: usize = 10_000;
/// Errors a job's status lists (the counts cover all of them).
const MAX_ERRORS: usize = 20;

/// A request to warm the cache with.
#[derive(Debug, Clone)]
pub struct WarmRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A warming request as written in the API and the warm file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    method: Option<String>,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// JSON sent as its text; a string is sent as it is.
    body: Option<serde_json::Value>,
}

impl WarmRequest {
    /// Reads `{"method"?, "path", "headers"?, "body"?}`: the method defaults to POST with a
    /// body and GET without; a JSON body gets `content-type: application/json` unless the
    /// request sets one.
    pub fn parse(v: serde_json::Value) -> Result<WarmRequest, String> {
        let raw: RawRequest = serde_json::from_value(v).map_err(|e| e.to_string())?;
        let method = match &raw.method {
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("invalid method {m:?}"))?,
            None if raw.body.is_some() => Method::POST,
            None => Method::GET,
        };
        if !raw.path.starts_with('/') {
            return Err(format!("path {:?} must start with '/'", raw.path));
        }
        let uri: Uri = raw
            .path
            .parse()
            .map_err(|e| format!("invalid path {:?}: {e}", raw.path))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &raw.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let v = HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value of header {name:?}"))?;
            headers.append(n, v);
        }
        let body = match raw.body {
            None => Bytes::new(),
            Some(serde_json::Value::String(s)) => Bytes::from(s),
            Some(json) => {
                if !headers.contains_key(header::CONTENT_TYPE) {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
                Bytes::from(json.to_string())
            }
        };
        Ok(WarmRequest {
            method,
            uri,
            headers,
            body,
        })
    }

    /// A client's request, kept for replay: without its hop-by-hop fields, request id and
    /// `cache-control` (a replay should fill the cache, not skip it); its body copied out
    /// of the connection's buffer.
    fn kept(parts: &http::request::Parts, body: &[u8]) -> WarmRequest {
        let mut headers = parts.headers.clone();
        headers::strip_hop_by_hop(&mut headers);
        headers.remove(&headers::REQUEST_ID);
        headers.remove(header::CACHE_CONTROL);
        WarmRequest {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers,
            body: Bytes::copy_from_slice(body),
        }
    }

    fn parts(&self) -> http::request::Parts {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = self.method.clone();
        parts.uri = self.uri.clone();
        parts.headers = self.headers.clone();
        parts
    }
}

/// Reads a warm file: JSON Lines, one request per line; blank lines and lines starting
/// with `#` are skipped. Each request is labelled with its file and line.
pub fn read_file(path: &std::path::Path) -> std::io::Result<Vec<Labelled>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .take(MAX_JOB)
        .map(|(i, line)| {
            let request = serde_json::from_str(line)
                .map_err(|e| e.to_string())
                .and_then(WarmRequest::parse);
            (format!("{}:{}", path.display(), i + 1), request)
        })
        .collect())
}

/// A warming request, or why it is not one, with where it came from.
pub type Labelled = (String, Result<WarmRequest, String>);

/// The requests of recently requested keys.
#[derive(Debug)]
pub struct Recent {
    keep: usize,
    inner: Mutex<RecentInner>,
}

#[derive(Debug, Default)]
struct RecentInner {
    kept: HashMap<CacheKey, Kept>,
    /// Requests counted since the counts were last halved.
    since_aging: usize,
}

#[derive(Debug)]
struct Kept {
    request: Arc<WarmRequest>,
    count: u64,
}

/// A kept request, for top-N warming and the warming status.
#[derive(Debug, Clone)]
pub struct Popular {
    pub key: CacheKey,
    pub request: Arc<WarmRequest>,
    pub count: u64,
}

impl Recent {
    pub fn new(keep: usize) -> Self {
        Recent {
            keep,
            inner: Mutex::new(RecentInner::default()),
        }
    }

    /// A memory hit: counted when its key is kept.
    pub fn hit(&self, key: &CacheKey) {
        if self.keep == 0 {
            return;
        }
        if let Ok(mut g) = self.inner.lock() {
            if let Some(k) = g.kept.get_mut(key) {
                k.count += 1;
            }
            self.age(&mut g);
        }
    }

    /// A request that missed memory: counted, and kept when it is new.
    pub fn miss(&self, key: &CacheKey, parts: &http::request::Parts, body: &[u8]) {
        if self.keep == 0 || body.len() > MAX_KEPT_BODY {
            return;
        }
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        if let Some(k) = g.kept.get_mut(key) {
            k.count += 1;
        } else {
            let mut count = 1;
            if g.kept.len() >= self.keep {
                // Space-saving: the least requested makes room and leaves its count.
                let least = g
                    .kept
                    .iter()
                    .min_by_key(|(_, k)| k.count)
                    .map(|(key, k)| (key.clone(), k.count));
                if let Some((least, n)) = least {
                    g.kept.remove(&least);
                    count += n;
                }
            }
            g.kept.insert(
                key.clone(),
                Kept {
                    request: Arc::new(WarmRequest::kept(parts, body)),
                    count,
                },
            );
        }
        self.age(&mut g);
    }

    /// Halves every count each 10 × `keep` requests, so that "recent" means recent.
    fn age(&self, g: &mut RecentInner) {
        g.since_aging += 1;
        if g.since_aging >= self.keep.saturating_mul(10) {
            g.since_aging = 0;
            g.kept.retain(|_, k| {
                k.count /= 2;
                k.count > 0
            });
        }
    }

    /// The `n` most requested kept requests, most requested first.
    pub fn top(&self, n: usize) -> Vec<Popular> {
        let Ok(g) = self.inner.lock() else {
            return Vec::new();
        };
        let mut all: Vec<Popular> = g
            .kept
            .iter()
            .map(|(key, k)| Popular {
                key: key.clone(),
                request: k.request.clone(),
                count: k.count,
            })
            .collect();
        all.sort_unstable_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.key.hash().cmp(&b.key.hash()))
        });
        all.truncate(n);
        all
    }

    /// The `n` most requested kept requests, labelled for a warming job.
    pub fn top_labelled(&self, n: usize) -> Vec<Labelled> {
        self.top(n)
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("top[{i}] {}", p.key), Ok((*p.request).clone())))
            .collect()
    }

    /// How many requests are kept at most.
    pub fn keep(&self) -> usize {
        self.keep
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |g| g.kept.len())
    }
}

/// The progress of a warming job.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub id: u64,
    /// `api`, `file` or `top`.
    pub source: &'static str,
    /// `running` or `done`.
    pub state: &'static str,
    pub total: usize,
    pub done: usize,
    pub stored: usize,
    pub fresh: usize,
    pub skipped: usize,
    pub failed: usize,
    /// The first problems, each with the request's position (`requests[3]`, `file:line`).
    pub errors: Vec<String>,
}

/// The warming jobs of a gateway and its recent requests.
#[derive(Debug)]
pub struct Warming {
    pub recent: Recent,
    running: AtomicBool,
    next_id: AtomicU64,
    last: Mutex<Option<JobStatus>>,
}

/// A job is already running.
#[derive(Debug)]
pub struct Busy(pub JobStatus);

impl Warming {
    pub fn new(keep: usize) -> Self {
        Warming {
            recent: Recent::new(keep),
            running: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            last: Mutex::new(None),
        }
    }

    /// The running job, or the last one.
    pub fn status(&self) -> Option<JobStatus> {
        self.last.lock().ok().and_then(|g| g.clone())
    }

    fn update(&self, f: impl FnOnce(&mut JobStatus)) {
        if let Ok(mut g) = self.last.lock()
            && let Some(s) = g.as_mut()
        {
            f(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(n: u8) -> CacheKey {
        let mut b = flowgate_cache::KeyBuilder::new("http");
        b.field("n", &[n]);
        b.finish("ns".into())
    }

    fn parts() -> http::request::Parts {
        http::Request::get("/r").body(()).unwrap().into_parts().0
    }

    #[test]
    fn requests_are_read_with_their_defaults_and_errors() {
        let r = WarmRequest::parse(json!({"path": "/v1/chat/completions", "body": {"model": "m"}}))
            .unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(&r.body[..], br#"{"model":"m"}"#);
        let r = WarmRequest::parse(json!({"path": "/a?b=1", "headers": {"accept": "text/csv"}}))
            .unwrap();
        assert_eq!((r.method, r.uri.query()), (Method::GET, Some("b=1")));
        assert!(r.body.is_empty());
        let r = WarmRequest::parse(json!({"method": "put", "path": "/a", "body": "raw"})).unwrap();
        assert_eq!((r.method, &r.body[..]), (Method::PUT, &b"raw"[..]));
        assert!(!r.headers.contains_key(header::CONTENT_TYPE));
        for (bad, why) in [
            (json!({"path": "a"}), "must start with '/'"),
            (
                json!({"path": "/a", "headers": {"bad name": "x"}}),
                "invalid header name",
            ),
            (json!({"path": "/a", "extra": 1}), "unknown field"),
            (json!({"method": "G T", "path": "/a"}), "invalid method"),
            (json!({}), "missing field `path`"),
        ] {
            let e = WarmRequest::parse(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn the_warm_file_names_the_line_of_a_bad_request() {
        let dir = std::env::temp_dir().join(format!("fg-warm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("warm.jsonl");
        std::fs::write(
            &f,
            "# chats\n{\"path\": \"/a\"}\n\nnot json\n{\"path\": \"b\"}\n",
        )
        .unwrap();
        let got = read_file(&f).unwrap();
        let labels: Vec<String> = got.iter().map(|(l, _)| l.clone()).collect();
        let at = |line: u32| format!("{}:{line}", f.display());
        assert_eq!(labels, [at(2), at(4), at(5)]);
        assert!(got[0].1.is_ok());
        assert!(got[1].1.is_err());
        let e = got[2].1.as_ref().unwrap_err();
        assert!(e.contains("must start with"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_most_requested_keys_are_kept_and_newcomers_inherit_the_least_count() {
        let r = Recent::new(2);
        let p = parts();
        for _ in 0..4 {
            r.miss(&key(1), &p, b"one");
        }
        r.miss(&key(2), &p, b"two");
        r.hit(&key(2));
        // Full: key 3 replaces key 2 (2 requests) and starts from its count.
        r.miss(&key(3), &p, b"three");
        let top = r.top(5);
        let got: Vec<(CacheKey, u64)> = top.iter().map(|p| (p.key.clone(), p.count)).collect();
        assert_eq!(got, [(key(1), 4), (key(3), 3)]);
        assert_eq!(&top[1].request.body[..], b"three");
        // A hit of a key not kept counts nothing; bodies over the bound are not kept.
        r.hit(&key(2));
        r.miss(&key(4), &p, &vec![0; MAX_KEPT_BODY + 1]);
        assert_eq!(r.len(), 2);
        assert_eq!(r.top(1).len(), 1);
    }

    #[test]
    fn counts_age_so_that_old_popularity_fades() {
        let r = Recent::new(1);
        let p = parts();
        r.miss(&key(1), &p, b"");
        for _ in 0..8 {
            r.hit(&key(1));
        }
        // 10 × keep requests counted: every count is halved.
        r.hit(&key(1));
        assert_eq!(r.top(1)[0].count, 5);
        let quiet = Recent::new(0);
        quiet.miss(&key(1), &p, b"");
        assert_eq!(quiet.len(), 0);
    }
}
