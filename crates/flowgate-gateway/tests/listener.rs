//! The HTTP/1.1 listener on the wire: keep-alive and pipelining, bodies that arrive after
//! their head, `Expect: 100-continue`, HTTP/1.0 clients, HEAD, malformed heads, unread
//! bodies and draining, each over a raw TCP connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use flowgate_sim::EndpointSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response read off `s`: its head (lowercase field names kept as sent) and its body,
/// framed by content-length or chunked coding (no body for `bodiless`).
async fn response(s: &mut TcpStream, pending: &mut Vec<u8>, bodiless: bool) -> (String, Vec<u8>) {
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(s, pending).await;
    };
    let head = String::from_utf8(pending.drain(..head_end).collect()).unwrap();
    if bodiless || head.starts_with("HTTP/1.1 100") {
        return (head, Vec::new());
    }
    let lower = head.to_ascii_lowercase();
    if let Some(len) = field(&lower, "content-length") {
        let len: usize = len.parse().unwrap();
        while pending.len() < len {
            fill(s, pending).await;
        }
        return (head, pending.drain(..len).collect());
    }
    assert!(
        lower.contains("transfer-encoding: chunked"),
        "no framing: {head}"
    );
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            fill(s, pending).await;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&pending[..line_end]).unwrap(), 16).unwrap();
        pending.drain(..line_end + 2);
        while pending.len() < size + 2 {
            fill(s, pending).await;
        }
        body.extend(pending.drain(..size));
        pending.drain(..2);
        if size == 0 {
            return (head, body);
        }
    }
}

async fn fill(s: &mut TcpStream, pending: &mut Vec<u8>) {
    let mut buf = [0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("no answer within 5 s")
        .unwrap();
    assert!(
        n > 0,
        "closed early; had {:?}",
        String::from_utf8_lossy(pending)
    );
    pending.extend_from_slice(&buf[..n]);
}

fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether the peer closed `s` (reads nothing more within 3 s).
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

fn echoed(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

async fn fleet() -> (flowgate_sim::SimServer, flowgate_gateway::Running) {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    (up, gw)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (_up, gw) = fleet().await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(
        b"GET /echo/first HTTP/1.1\r\nhost: a\r\n\r\n\
          POST /echo/second HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc\
          GET /echo/third HTTP/1.1\r\nhost: a\r\n\r\n",
    )
    .await
    .unwrap();
    let mut pending = Vec::new();
    for (path, bytes) in [("/echo/first", 0), ("/echo/second", 3), ("/echo/third", 0)] {
        let (head, body) = response(&mut s, &mut pending, false).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let v = echoed(&body);
        assert_eq!(
            (v["path"].as_str(), v["body_bytes"].as_u64()),
            (Some(path), Some(bytes))
        );
    }
}

#[tokio::test]
async fn bodies_that_arrive_after_their_head_are_read_and_the_connection_kept() {
    let (up, gw) = fleet().await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    let mut pending = Vec::new();
    // An http route streams it; an openai route reads it whole and checks it.
    let chat = chat_body(false);
    let (half, rest) = chat.split_at(chat.len() / 2);
    s.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            chat.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(half).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(rest).await.unwrap();
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("chat.completion"));

    s.write_all(b"POST /echo/up HTTP/1.1\r\nhost: a\r\ncontent-length: 200000\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..4 {
        s.write_all(&[b'x'; 50_000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(echoed(&body)["body_bytes"], 200_000);

    // A chunked body, in pieces.
    s.write_all(b"POST /echo/chunks HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    s.write_all(b"6\r\n world\r\n0\r\n\r\n").await.unwrap();
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(echoed(&body)["body_bytes"], 11);
    assert_eq!(up.stats().requests, 3, "each request went upstream once");
}

#[tokio::test]
async fn expect_100_continue_gets_a_go_ahead_before_the_body() {
    let (_up, gw) = fleet().await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(
        b"POST /echo/upload HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
    )
    .await
    .unwrap();
    let mut pending = Vec::new();
    let (head, _) = response(&mut s, &mut pending, false).await;
    assert_eq!(head, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v = echoed(&body);
    assert_eq!(v["body_bytes"], 5);
    assert!(
        v["headers"].get("expect").is_none(),
        "answered here, not forwarded: {v}"
    );

    // Refused before the body is read: no go-ahead, the answer, and the connection closes.
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(
        b"POST /nowhere HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
    )
    .await
    .unwrap();
    let mut pending = Vec::new();
    let (head, _) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn http10_clients_are_closed_unless_they_ask_to_keep_the_connection() {
    let (_up, gw) = fleet().await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(b"GET /echo/old HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut pending = Vec::new();
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(echoed(&body)["path"], "/echo/old");
    assert!(closed(&mut s).await);

    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /echo/old HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = response(&mut s, &mut pending, false).await;
        assert!(head.contains("connection: keep-alive"), "{head}");
    }
}

#[tokio::test]
async fn head_requests_get_the_fields_without_a_body() {
    let (_up, gw) = fleet().await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    let mut pending = Vec::new();
    s.write_all(b"HEAD /echo/h HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = response(&mut s, &mut pending, true).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = field(&head, "content-length")
        .expect("length kept")
        .parse()
        .unwrap();
    assert!(len > 0, "{head}");
    // No body bytes follow: the next answer on the connection starts right away.
    s.write_all(b"GET /echo/after HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(echoed(&body)["path"], "/echo/after");
}

#[tokio::test]
async fn malformed_heads_get_400_as_json_and_a_date() {
    let (up, gw) = fleet().await;
    for raw in [
        &b"GET /echo/x HTTP/1.1\r\nhost: a\r\nbad header line\r\n\r\n"[..],
        b"POST /echo/x HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
        b"POST /echo/x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip\r\n\r\n",
        b"POST /echo/x HTTP/1.1\r\nhost: a\r\ncontent-length: 1x\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
        b"POST /echo/x HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let resp = raw_exchange(gw.data_addr, raw, Duration::from_secs(3)).await;
        assert!(resp.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{resp}");
        assert!(resp.contains("\"code\":\"invalid_request\""), "{resp}");
        assert!(resp.contains("connection: close"), "{resp}");
        assert!(resp.contains("\r\ndate: "), "{resp}");
    }
    assert_eq!(up.stats().requests, 0);
}

#[tokio::test]
async fn other_transfer_codings_get_501_and_broken_bodies_400_without_blaming_the_upstream() {
    let (up, gw) = fleet().await;
    let resp = raw_exchange(
        gw.data_addr,
        b"POST /echo/x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 501 Not Implemented\r\n"),
        "{resp}"
    );
    assert!(resp.contains("\"code\":\"not_implemented\""), "{resp}");

    // A chunked body that breaks off with a bare LF where the trailers end, and a
    // pipelined request behind it: a 400 for the body, the connection closed, and the
    // second request never read as part of the first.
    let resp = raw_exchange(
        gw.data_addr,
        b"POST /echo/x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\n\nGET /echo/smuggled HTTP/1.1\r\nhost: a\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{resp}");
    assert!(resp.contains("\"code\":\"invalid_body\""), "{resp}");
    assert_eq!(resp.matches("HTTP/1.1 ").count(), 1, "one answer: {resp}");
    let lb = send(
        &client(),
        get(gw.admin_addr, "/api/v1/performance/load-balancer/metrics"),
    )
    .await
    .json();
    assert_eq!(
        lb["pools"][0]["endpoints"][0]["failures"], 0,
        "the upstream is not blamed for the client's body: {lb}"
    );
    drop(up);
}

#[tokio::test]
async fn an_unread_body_closes_the_connection_after_the_answer() {
    let (up, gw) = fleet().await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    // No route: the body is never read, and part of it is still coming.
    s.write_all(b"POST /nowhere HTTP/1.1\r\nhost: a\r\ncontent-length: 100000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[b'x'; 30_000]).await.unwrap();
    let mut pending = Vec::new();
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("route_not_found"));
    // The client may go on sending; the answer was not lost to a reset.
    let _ = s.write_all(&[b'x'; 30_000]).await;
    assert!(closed(&mut s).await);
    assert_eq!(up.stats().requests, 0);
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_at_once() {
    let (_up, gw) = fleet().await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(b"GET /echo/x HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut pending = Vec::new();
    let (head, _) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let t0 = Instant::now();
    gw.shutdown();
    gw.wait().await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "an idle connection held the drain for {:?}",
        t0.elapsed()
    );
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn a_trickled_body_gets_408_after_the_body_read_timeout() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[limits]\nbody_read_timeout = \"1s\"\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let t0 = Instant::now();
    // An openai route reads the body whole; ten bytes of a hundred arrive, then nothing.
    let resp = raw_exchange(
        gw.data_addr,
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"model\":",
        Duration::from_secs(10),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 408 "), "{resp}");
    assert!(resp.contains("\"code\":\"request_timeout\""), "{resp}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(up.stats().requests, 0);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
    // 32 MiB: more than the socket buffers of both ends hold.
    let size = 32 << 20;
    let (url, _) = canned_upstream(format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n{}",
        "x".repeat(size)
    ))
    .await;
    let gw = gateway(&format!(
        "[limits]\nsend_timeout = \"1s\"\n\n[pools.p]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"big\"\nkind = \"http\"\nprefix = \"/\"\npool = \"p\"\n"
    ))
    .await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let in_flight = || async {
        let m = send(&client(), get(gw.admin_addr, "/metrics")).await;
        metric(
            &String::from_utf8_lossy(&m.body),
            "flowgate_requests_in_flight",
        )
    };
    let t0 = Instant::now();
    while in_flight().await != 1.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the answer never began"
        );
    }
    // Never read: the gateway gives up on the client, and lets go of the upstream.
    let t0 = Instant::now();
    while in_flight().await != 0.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "still sending to a client that does not read"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(s);
}

#[tokio::test]
async fn a_slow_upload_is_neither_timed_nor_blamed_as_the_upstreams() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(&[up.url()], "request_timeout = \"1s\"")).await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(
        b"POST /echo/upload HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await
    .unwrap();
    // The client takes longer than the pool's request timeout to send the rest.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.write_all(b"6\r\n world\r\n0\r\n\r\n").await.unwrap();
    let mut pending = Vec::new();
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(echoed(&body)["body_bytes"], 11);
    let lb = send(
        &client(),
        get(gw.admin_addr, "/api/v1/performance/load-balancer/metrics"),
    )
    .await
    .json();
    assert_eq!(lb["pools"][0]["endpoints"][0]["failures"], 0, "{lb}");
    assert!(
        lb["pools"][0]["endpoints"][0]["latency_ms"]
            .as_f64()
            .unwrap()
            < 1000.0,
        "the upload is not the endpoint's latency: {lb}"
    );
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_as_they_come() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[limits]\nmax_connections_per_address = 2\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let mut first = TcpStream::connect(gw.data_addr).await.unwrap();
    let mut second = TcpStream::connect(gw.data_addr).await.unwrap();
    let mut pending = Vec::new();
    // Both are served (and so counted) before the third arrives.
    for s in [&mut first, &mut second] {
        s.write_all(b"GET /echo/a HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = response(s, &mut pending, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    let mut third = TcpStream::connect(gw.data_addr).await.unwrap();
    let _ = third
        .write_all(b"GET /echo/a HTTP/1.1\r\nhost: a\r\n\r\n")
        .await;
    assert!(
        closed(&mut third).await,
        "a third connection from one address is refused"
    );
    let m = send(&client(), get(gw.admin_addr, "/metrics")).await;
    assert_eq!(
        metric(
            &String::from_utf8_lossy(&m.body),
            "flowgate_refused_connections_total"
        ),
        1.0
    );
    // One of the two leaves: there is room again.
    drop(first);
    // The gateway notices the close on its own time: connect until one is served.
    let t0 = Instant::now();
    loop {
        let mut again = TcpStream::connect(gw.data_addr).await.unwrap();
        let _ = again
            .write_all(b"GET /echo/a HTTP/1.1\r\nhost: a\r\n\r\n")
            .await;
        let mut buf = [0u8; 12];
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(3), again.read_exact(&mut buf)).await
        {
            assert_eq!(&buf, b"HTTP/1.1 200");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "no room came back");
    }
}

#[tokio::test]
async fn an_h2c_connection_that_never_answers_is_closed() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[limits]\nheader_read_timeout = \"1s\"\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let mut s = TcpStream::connect(gw.data_addr).await.unwrap();
    // The HTTP/2 preface and an empty SETTINGS frame, then silence: no ACK, no PING answer.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => continue, // the server's SETTINGS and PINGs, unanswered
            Err(_) => break false,
        }
    };
    assert!(closed, "still open after 10 s");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}
