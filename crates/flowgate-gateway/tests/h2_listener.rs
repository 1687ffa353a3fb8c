//! HTTP/2 clients of the data plane (h2c by prior knowledge): an idle connection is closed
//! like an HTTP/1.1 keep-alive one, and a request body that stops arriving gets 408 after
//! the body read timeout, as over HTTP/1.1.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::h2::ChunkBody;
use common::*;
use flowgate_sim::EndpointSpec;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// An h2c connection to `gw`: its request sender and the connection's own future.
async fn h2c<B>(
    gw: &flowgate_gateway::Running,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
)
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    (send, tokio::spawn(conn))
}

fn chat<B>(body: B) -> Request<B> {
    Request::post("http://localhost/v1/chat/completions")
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn an_idle_h2c_connection_is_closed_after_the_head_deadline() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[limits]\nheader_read_timeout = \"500ms\"\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let (mut send, conn) = h2c::<Full<Bytes>>(&gw).await;
    let resp = send
        .send_request(chat(Full::new(chat_body(false))))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.unwrap();
    let t0 = Instant::now();
    // The client answers the server's PINGs: only idleness can end the connection.
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle connection is closed")
        .unwrap()
        .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn a_busy_h2c_connection_is_not_idle() {
    let up = sim(EndpointSpec {
        latency: flowgate_sim::LatencyDist::Fixed(Duration::from_millis(1200)),
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&format!(
        "[limits]\nheader_read_timeout = \"500ms\"\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let (mut send, _conn) = h2c::<Full<Bytes>>(&gw).await;
    // Its answer takes longer than the idle timeout: the stream keeps the connection.
    let resp = send
        .send_request(chat(Full::new(chat_body(false))))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.into_body().collect().await.is_ok());
}

#[tokio::test]
async fn an_h2_request_body_that_stops_arriving_gets_408() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[limits]\nbody_read_timeout = \"1s\"\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let (mut send, _conn) = h2c::<ChunkBody>(&gw).await;
    let (tx, body) = ChunkBody::channel();
    tx.send(Bytes::from_static(b"{\"model\":")).await.unwrap();
    let t0 = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(10), send.send_request(chat(body)))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&text).contains("request_timeout"),
        "{text:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(up.stats().requests, 0);
    drop(tx);
}
