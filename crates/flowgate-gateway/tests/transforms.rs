//! Response transforms on a serving gateway: an answer over the threshold is compressed
//! with each coding the client accepts and decodes back (with the standard decoders) to
//! the same JSON, minified, with its `null` members dropped and its fields redacted by
//! name and by pointer; a small answer and a streamed one are not compressed; the cache
//! keeps the answer as the upstream gave it and each client gets its own transform —
//! unless `redact_cached`, when the stored copy is redacted too.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::io::Read;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::Full;
use serde_json::{Value, json};

fn big() -> Value {
    let users: Vec<Value> = (0..40)
        .map(|i| {
            json!({
                "id": i,
                "name": format!("user {i}"),
                "email": format!("u{i}@example.com"),
                "SSN": "123-45-6789",
                "manager": null,
                "score": 0.1 + f64::from(i),
            })
        })
        .collect();
    json!({"data": users, "next": null, "meta": {"api_key": "sk-123", "count": 40}})
}

/// `big()` as the route's transform should give it.
fn transformed() -> Value {
    let mut v = big();
    for u in v["data"].as_array_mut().unwrap() {
        let o = u.as_object_mut().unwrap();
        o.remove("manager");
        o.insert("email".into(), json!("[redacted]"));
        o.insert("SSN".into(), json!("[redacted]"));
    }
    let o = v.as_object_mut().unwrap();
    o.remove("next");
    v["meta"]["api_key"] = json!("[redacted]");
    v
}

fn respond(req: &str) -> String {
    let path = req
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let (ctype, body) = match path.as_str() {
        "/api/big" => (
            "application/json",
            serde_json::to_string_pretty(&big()).unwrap(),
        ),
        "/api/small" => (
            "application/json",
            "{\"ok\": true, \"gone\": null}".to_string(),
        ),
        _ => (
            "text/event-stream",
            "data: {\"n\": 1, \"pad\": \"".to_string()
                + &"x".repeat(900)
                + "\"}\n\ndata: [DONE]\n\n",
        ),
    };
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncache-control: max-age=300\r\n\
         etag: \"v1\"\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn get_with(gw: &flowgate_gateway::Running, path: &str, accept: Option<&str>) -> Reply {
    get_as(gw, path, accept, false).await
}

/// A GET, through the route without transforms (`raw`) that shares the cache's entries.
async fn get_as(
    gw: &flowgate_gateway::Running,
    path: &str,
    accept: Option<&str>,
    raw: bool,
) -> Reply {
    let mut req = http::Request::builder()
        .method("GET")
        .uri(format!("http://{}{path}", gw.data_addr));
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    if raw {
        req = req.header("x-view", "raw");
    }
    send(&client(), req.body(Full::new(Bytes::new())).unwrap()).await
}

fn decoded(r: &Reply) -> Vec<u8> {
    let body = &r.body[..];
    let mut out = Vec::new();
    match r
        .headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap())
    {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zstd") => out = zstd::decode_all(body).unwrap(),
        Some(other) => panic!("coding {other}"),
    }
    out
}

/// Two routes sharing the cache's entries: `raw` (with `x-view: raw`) transforms nothing,
/// `api` transforms with `transform` (and `extra` in it).
fn config(url: &str, extra: &str) -> String {
    format!(
        "[cache]\nenabled = true\n\n\
         [pools.api]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"raw\"\nkind = \"http\"\nprefix = \"/api\"\npool = \"api\"\n\
         headers = {{ \"x-view\" = \"raw\" }}\n\
         cache = {{ mode = \"deterministic\", namespace = \"shared\" }}\n\n\
         [[routes]]\nname = \"api\"\nkind = \"http\"\nprefix = \"/api\"\npool = \"api\"\n\
         cache = {{ mode = \"deterministic\", namespace = \"shared\" }}\n\
         transform = {{ compress = true, minify = true, drop_nulls = true, redact = [\"ssn\", \"email\", \"/meta/api_key\"]{extra} }}\n"
    )
}

#[tokio::test]
async fn answers_are_transformed_per_client_and_the_cache_keeps_them_as_given() {
    let (url, asked) = scripted_upstream(respond).await;
    let gw = gateway(&config(&url, "")).await;
    let want = transformed();
    let mut caches = Vec::new();
    for (accept, coding) in [
        (Some("gzip"), Some("gzip")),
        (Some("gzip, br"), Some("br")),
        (Some("gzip, br, zstd"), Some("zstd")),
        (Some("br;q=0.5, gzip"), Some("gzip")),
        (None, None),
        (Some("identity"), None),
    ] {
        let r = get_with(&gw, "/api/big", accept).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.headers
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            coding,
            "{accept:?}"
        );
        assert!(
            r.headers
                .get_all("vary")
                .iter()
                .any(|v| v.to_str().unwrap().contains("accept-encoding")),
            "{:?}",
            r.headers
        );
        assert_eq!(
            r.headers["content-length"],
            r.body.len().to_string().as_str()
        );
        let plain = decoded(&r);
        // Minified: no whitespace outside strings.
        assert!(!plain.contains(&b'\n') && !plain.windows(2).any(|w| w == b": "));
        let v: Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(v, want, "{accept:?}");
        if coding.is_some() {
            assert!(
                r.body.len() < plain.len() / 2,
                "{accept:?}: {} bytes",
                r.body.len()
            );
            assert_eq!(r.headers["etag"], "W/\"v1\"");
        } else {
            assert_eq!(r.headers["etag"], "\"v1\"");
        }
        caches.push(cache_header(&r).to_string());
    }
    // One trip upstream: the cache kept the answer as given, each client got its own.
    assert_eq!(caches[0], "miss");
    assert!(
        caches[1..].iter().all(|c| c.starts_with("hit")),
        "{caches:?}"
    );
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The entry is the upstream's: the route without transforms gets it as given.
    let raw = get_as(&gw, "/api/big", Some("gzip"), true).await;
    assert!(cache_header(&raw).starts_with("hit"));
    assert!(raw.headers.get("content-encoding").is_none());
    assert_eq!(serde_json::from_slice::<Value>(&raw.body).unwrap(), big());

    // Under the threshold: not compressed, but rewritten.
    let r = get_with(&gw, "/api/small", Some("gzip, br, zstd")).await;
    assert!(r.headers.get("content-encoding").is_none());
    assert_eq!(&r.body[..], b"{\"ok\":true}");
    // A stream: never gathered, never compressed.
    let r = get_with(&gw, "/api/stream", Some("gzip")).await;
    assert!(r.headers.get("content-encoding").is_none());
    assert!(String::from_utf8_lossy(&r.body).ends_with("data: [DONE]\n\n"));
    gw.shutdown();
}

#[tokio::test]
async fn with_redact_cached_the_stored_copy_is_redacted_too() {
    let (url, _) = scripted_upstream(respond).await;
    let gw = gateway(&config(&url, ", redact_cached = true")).await;
    let r = get_with(&gw, "/api/big", None).await;
    assert_eq!(cache_header(&r), "miss");
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        transformed()
    );
    // The route without transforms reads the stored copy: redacted, nothing else done
    // (its nulls are there, its layout the upstream's).
    let raw = get_as(&gw, "/api/big", None, true).await;
    assert!(cache_header(&raw).starts_with("hit"));
    let text = String::from_utf8_lossy(&raw.body);
    assert!(
        !text.contains("123-45-6789") && !text.contains("sk-123") && !text.contains("@example.com"),
        "{text}"
    );
    let v: Value = serde_json::from_slice(&raw.body).unwrap();
    assert_eq!(v["data"][0]["SSN"], "[redacted]");
    assert!(
        v["data"][0]["manager"].is_null() && v.get("next").is_some(),
        "{v}"
    );
    gw.shutdown();
}
