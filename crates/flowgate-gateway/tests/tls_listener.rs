//! TLS on the data-plane listener (`[server.tls]`): HTTP/1.1 and h2 (by ALPN) clients,
//! the certificate swapped when its files change while open connections keep going, a bad
//! new certificate keeping the old, client certificates (mTLS), handshake deadlines, and
//! the files checked at load. Certificates are made at test time; everything is loopback.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::tls::{Issued, Pki, client_config, connect, leaf, served};
use common::*;
use flowgate_sim::EndpointSpec;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;

fn tls_table(id: &Issued, extra: &str) -> String {
    format!(
        "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n{extra}\n",
        id.cert.display().to_string(),
        id.key.display().to_string()
    )
}

/// A gateway serving HTTPS with `id` in front of the simulator.
async fn https_gateway(
    id: &Issued,
    server: &str,
    extra: &str,
) -> (flowgate_gateway::Running, flowgate_sim::SimServer) {
    let up = sim(EndpointSpec::default()).await;
    let body = format!(
        "{}\n{}",
        tls_table(id, extra),
        fleet_config(&[up.url()], "")
    );
    (gateway_with(server, &body).await, up)
}

fn chat_request(uri: &str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(chat_body(false)))
        .unwrap()
}

type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 connection over `tls`.
async fn h1(tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> H1 {
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

async fn chat_h1(send: &mut H1) -> (StatusCode, Bytes) {
    send.ready().await.unwrap();
    let resp = send
        .send_request(chat_request("/v1/chat/completions"))
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

async fn metrics(gw: &flowgate_gateway::Running) -> String {
    let m = send(&client(), get(gw.admin_addr, "/metrics")).await;
    String::from_utf8(m.body.to_vec()).unwrap()
}

#[tokio::test]
async fn http11_and_h2_clients_are_served_over_tls() {
    let pki = Pki::new("listen");
    let id = pki.issue("server", &["localhost"]);
    let (gw, _up) = https_gateway(&id, "", "").await;

    let tls = connect(
        gw.data_addr,
        client_config(&pki.ca_file(), &[b"http/1.1"], None),
    )
    .await
    .unwrap();
    assert_eq!(served(&tls), leaf(&id.cert));
    assert_eq!(
        tls.get_ref().1.negotiated_cipher_suite().unwrap().suite(),
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
        "the server's order of suites, whose hashing has CPU instructions"
    );
    let mut send = h1(tls).await;
    for _ in 0..2 {
        let (status, body) = chat_h1(&mut send).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
    }

    let tls = connect(
        gw.data_addr,
        client_config(&pki.ca_file(), &[b"h2", b"http/1.1"], None),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(chat_request("https://localhost/v1/chat/completions"))
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("choices"),
        "{body:?}"
    );
}

#[tokio::test]
async fn the_upstream_is_told_the_client_used_https() {
    let pki = Pki::new("proto");
    let id = pki.issue("server", &["localhost"]);
    let seen = Arc::new(Mutex::new(String::new()));
    let keep = seen.clone();
    let (url, _) = scripted_upstream(move |req| {
        *keep.lock().unwrap() = req.to_ascii_lowercase();
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into()
    })
    .await;
    let body = format!("{}\n{}", tls_table(&id, ""), fleet_config(&[url], ""));
    let gw = gateway(&body).await;
    let tls = connect(
        gw.data_addr,
        client_config(&pki.ca_file(), &[b"http/1.1"], None),
    )
    .await
    .unwrap();
    let (status, _) = chat_h1(&mut h1(tls).await).await;
    assert_eq!(status, StatusCode::OK);
    let req = seen.lock().unwrap().clone();
    assert!(req.contains("x-forwarded-proto: https\r\n"), "{req}");
    assert!(req.contains(";proto=https"), "{req}");
}

/// Connects until the served certificate is `want` (at most 5 s).
async fn until_served(addr: SocketAddr, ca: &std::path::Path, want: &Issued) {
    let want = leaf(&want.cert);
    for _ in 0..100 {
        if let Ok(tls) = connect(addr, client_config(ca, &[b"http/1.1"], None)).await
            && served(&tls) == want
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the new certificate was not served within 5 s");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_while_open_connections_keep_going() {
    let pki = Pki::new("renew");
    let first = pki.issue("server", &["localhost"]);
    let (gw, _up) = https_gateway(&first, "", "").await;
    let ca = pki.ca_file();
    let tls = connect(gw.data_addr, client_config(&ca, &[b"http/1.1"], None))
        .await
        .unwrap();
    let old = served(&tls);
    assert_eq!(old, leaf(&first.cert));
    let mut open = h1(tls).await;
    assert_eq!(chat_h1(&mut open).await.0, StatusCode::OK);

    // Renewal writes a new certificate and key over the same files.
    let renewed = pki.issue("server", &["localhost"]);
    assert_ne!(old, leaf(&renewed.cert));
    until_served(gw.data_addr, &ca, &renewed).await;

    // The connection opened before the swap is still served, on the same connection.
    assert_eq!(chat_h1(&mut open).await.0, StatusCode::OK);
    assert!(
        metric(
            &metrics(&gw).await,
            "flowgate_listener_certificate_reloads_total{result=\"ok\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &metrics(&gw).await,
            "flowgate_listener_certificate_expiry_timestamp_seconds"
        ) > 1.7e9
    );
}

#[tokio::test]
async fn a_bad_new_certificate_keeps_the_served_one_and_is_counted() {
    let pki = Pki::new("bad");
    let id = pki.issue("server", &["localhost"]);
    let (gw, _up) = https_gateway(&id, "", "").await;
    let served_before = leaf(&id.cert);
    std::fs::write(&id.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let gw_ref = &gw;
    let mut errors = 0.0;
    for _ in 0..100 {
        errors = metric(
            &metrics(gw_ref).await,
            "flowgate_listener_certificate_reloads_total{result=\"error\"}",
        );
        if errors >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(errors >= 1.0, "the failed reload is counted");
    let tls = connect(
        gw.data_addr,
        client_config(&pki.ca_file(), &[b"http/1.1"], None),
    )
    .await
    .unwrap();
    assert_eq!(
        served(&tls),
        served_before,
        "the old certificate is still served"
    );
    assert_eq!(chat_h1(&mut h1(tls).await).await.0, StatusCode::OK);
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_its_certificates_are_served() {
    let pki = Pki::new("mtls");
    let id = pki.issue("server", &["localhost"]);
    let clients = Pki::new("mtls-clients");
    let alice = clients.issue("alice", &["alice"]);
    let extra = format!(
        "client_ca_file = {:?}",
        clients.ca_file().display().to_string()
    );
    let (gw, _up) = https_gateway(&id, "", &extra).await;
    let ca = pki.ca_file();

    let tls = connect(
        gw.data_addr,
        client_config(&ca, &[b"http/1.1"], Some(&alice)),
    )
    .await
    .unwrap();
    assert_eq!(chat_h1(&mut h1(tls).await).await.0, StatusCode::OK);

    // Without a certificate (TLS 1.3: the refusal arrives after the client's side is done).
    let refused = async {
        let tls = connect(gw.data_addr, client_config(&ca, &[b"http/1.1"], None)).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        send.send_request(chat_request("/v1/chat/completions"))
            .await
            .map_err(std::io::Error::other)
    };
    assert!(
        refused.await.is_err(),
        "a client without a certificate is not served"
    );
    // A certificate from another CA.
    let stranger = pki.issue("mallory", &["mallory"]);
    let refused = connect(
        gw.data_addr,
        client_config(&ca, &[b"http/1.1"], Some(&stranger)),
    );
    if let Ok(tls) = refused.await {
        let mut send = h1(tls).await;
        let r = send
            .send_request(chat_request("/v1/chat/completions"))
            .await;
        assert!(r.is_err(), "a certificate from another CA is refused");
    }
    let m = metrics(&gw).await;
    assert!(metric(&m, "flowgate_client_tls_errors_total") >= 1.0, "{m}");
}

#[tokio::test]
async fn a_connection_that_never_completes_its_handshake_is_closed_and_counted() {
    let pki = Pki::new("slow");
    let id = pki.issue("server", &["localhost"]);
    let up = sim(EndpointSpec::default()).await;
    let body = format!(
        "{}\n[limits]\nheader_read_timeout = \"300ms\"\n\n{}",
        tls_table(&id, ""),
        fleet_config(&[up.url()], "")
    );
    let gw = gateway(&body).await;
    let mut silent = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("closed within the head deadline");
    assert!(matches!(n, Ok(0) | Err(_)), "closed without an answer");

    // Cleartext HTTP to the TLS port: not a handshake, closed.
    let out = raw_exchange(
        gw.data_addr,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(!out.starts_with("HTTP/1.1 200"), "{out}");
    let m = metrics(&gw).await;
    assert_eq!(
        metric(&m, "flowgate_client_tls_errors_total{reason=\"timeout\"}"),
        1.0,
        "{m}"
    );
}

fn check(src_tls: &str) -> Result<flowgate_config::Config, Vec<flowgate_config::Problem>> {
    let src = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n{src_tls}\n\
         [pools.llm]\nendpoints = [{{ url = \"http://127.0.0.1:1\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    flowgate_config::parse_with(
        &src,
        "t.toml",
        std::iter::empty(),
        flowgate_gateway::check_external,
    )
    .map_err(|e| e.problems().to_vec())
}

#[test]
fn unusable_listener_files_are_config_errors_with_their_keys() {
    let pki = Pki::new("files");
    let a = pki.issue("a", &["localhost"]);
    let b = pki.issue("b", &["localhost"]);

    let p = check(&tls_table(
        &Issued {
            cert: a.cert.clone(),
            key: b.key.clone(),
        },
        "",
    ))
    .unwrap_err();
    assert_eq!(p[0].key.to_string(), "server.tls.key_file");
    assert!(p[0].message.contains("does not match"), "{}", p[0].message);

    let p = check(&tls_table(
        &Issued {
            cert: pki.dir.join("missing.pem"),
            key: a.key.clone(),
        },
        "",
    ))
    .unwrap_err();
    assert_eq!(p[0].key.to_string(), "server.tls.cert_file");
    assert!(p[0].message.contains("cannot read"), "{}", p[0].message);

    let p = check("[server.tls]\ncert_file = \"x.pem\"\n").unwrap_err();
    assert!(
        p.iter().any(|p| p.key.to_string() == "server.tls.key_file"),
        "{p:?}"
    );

    let expired = pki.issue_with("old", &["localhost"], |params| {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let p = check(&tls_table(&expired, "")).unwrap_err();
    assert_eq!(p[0].key.to_string(), "server.tls.cert_file");
    assert!(p[0].message.contains("expired on"), "{}", p[0].message);
}

#[test]
fn a_certificate_that_expires_soon_is_warned_of_with_the_days_left() {
    let pki = Pki::new("soon");
    let soon = pki.issue_with("soon", &["localhost"], |params| {
        let end = std::time::SystemTime::now() + Duration::from_secs(10 * 86_400 + 3_600);
        params.not_after = end.into();
    });
    let cfg = check(&tls_table(&soon, "")).unwrap();
    let w = flowgate_gateway::tls_warnings(&cfg);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("server.tls.cert_file"), "{}", w[0]);
    assert!(w[0].contains("expires in 10 day(s)"), "{}", w[0]);

    let fresh = pki.issue("fresh", &["localhost"]);
    let cfg = check(&tls_table(&fresh, "")).unwrap();
    assert!(flowgate_gateway::tls_warnings(&cfg).is_empty());
}
