//! What is routed is what is forwarded: dot-segments, plain or percent-encoded, are removed
//! before routing; a path that climbs above the root is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

#[tokio::test]
async fn dot_segments_are_resolved_before_routing_and_the_routed_path_is_forwarded() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let (url, _) = scripted_upstream(move |req| {
        log.lock()
            .unwrap()
            .push(req.lines().next().unwrap_or("").to_string());
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".into()
    })
    .await;
    let gw = gateway(&format!(
        "[pools.p]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"public\"\nkind = \"http\"\nprefix = \"/public\"\npool = \"p\"\n"
    ))
    .await;
    for (path, status) in [
        ("/public/a/./b/../c?q=1", "200"),
        ("/other/../public/x", "200"),
        ("/public/%2e%2E/admin", "404"),
        ("/public/../../etc/passwd", "400"),
    ] {
        let resp = raw_exchange(
            gw.data_addr,
            format!("GET {path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {status} ")),
            "{path}: {resp}"
        );
    }
    assert_eq!(
        *seen.lock().unwrap(),
        ["GET /public/a/c?q=1 HTTP/1.1", "GET /public/x HTTP/1.1"],
        "the upstream sees the path that was routed, and nothing that escaped the prefix"
    );
}
