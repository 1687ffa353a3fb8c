use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use flowgate_clock::SystemClock;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{FetchError, Fetcher, MAX_BODY, Request};
use crate::tls::{ClientSettings, Roots, client_config};

fn fetcher(settings: &ClientSettings) -> Fetcher {
    Fetcher::new(
        client_config(settings).unwrap(),
        SystemClock::shared(),
        "flowgate-test",
    )
}

/// Reads one request (head and `Content-Length` body); its head and body.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut b).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut b).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&b[..n]);
    }
    Some((head, body))
}

async fn answer<S: AsyncWrite + Unpin>(s: &mut S, status: &str, body: &[u8], close: bool) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n{}\r\n",
        body.len(),
        if close { "connection: close\r\n" } else { "" }
    );
    // The client may be gone (an answer too long for it): not this server's concern.
    if s.write_all(head.as_bytes()).await.is_ok() {
        let _ = s.write_all(body).await;
    }
}

#[tokio::test]
async fn posts_a_body_and_reads_the_answer_keeping_the_connection() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while let Some((head, body)) = read_request(&mut s).await {
                    let echo = format!(
                        "{}|{}|{}",
                        head.lines().next().unwrap(),
                        head.lines()
                            .find(|l| l.to_ascii_lowercase().starts_with("x-sig"))
                            .unwrap_or(""),
                        String::from_utf8_lossy(&body)
                    );
                    answer(&mut s, "202 Accepted", echo.as_bytes(), false).await;
                }
            });
        }
    });
    let f = fetcher(&ClientSettings::default());
    let url: Uri = format!("http://{addr}/hook?x=1").parse().unwrap();
    let headers = [(
        HeaderName::from_static("x-sig"),
        HeaderValue::from_static("abc"),
    )];
    for i in 0..3 {
        let got = f
            .send(&Request {
                method: Method::POST,
                url: &url,
                headers: &headers,
                body: Bytes::from(format!("{{\"n\":{i}}}")),
                timeout: Duration::from_secs(5),
            })
            .await
            .unwrap();
        assert_eq!(got.status, 202);
        assert_eq!(
            got.body,
            format!("POST /hook?x=1 HTTP/1.1|x-sig: abc|{{\"n\":{i}}}")
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one kept connection");
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_is_replaced_once() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            // Answers one request as if it would keep the connection, then closes it.
            tokio::spawn(async move {
                if read_request(&mut s).await.is_some() {
                    answer(&mut s, "200 OK", b"ok", false).await;
                }
            });
        }
    });
    let f = fetcher(&ClientSettings::default());
    let url: Uri = format!("http://{addr}/").parse().unwrap();
    for _ in 0..3 {
        let got = f
            .send(&Request {
                method: Method::POST,
                url: &url,
                headers: &[],
                body: Bytes::from_static(b"x"),
                timeout: Duration::from_secs(5),
            })
            .await
            .unwrap();
        assert_eq!(got.body, "ok");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_silent_server_times_out_and_a_closed_port_fails_to_connect() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut kept = Vec::new();
        loop {
            let (s, _) = l.accept().await.unwrap();
            kept.push(s);
        }
    });
    let f = fetcher(&ClientSettings::default());
    let url: Uri = format!("http://{addr}/").parse().unwrap();
    let err = f
        .send(&Request {
            method: Method::POST,
            url: &url,
            headers: &[],
            body: Bytes::from_static(b"x"),
            timeout: Duration::from_millis(200),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Timeout(_)), "{err}");
    assert_eq!(err.to_string(), "no answer within 200ms");

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone: Uri = format!("http://{}/", closed.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(closed);
    let err = f
        .send(&Request {
            method: Method::POST,
            url: &gone,
            headers: &[],
            body: Bytes::new(),
            timeout: Duration::from_secs(2),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Connect(_)), "{err}");
}

#[tokio::test]
async fn bad_urls_and_long_answers_are_errors() {
    let f = fetcher(&ClientSettings::default());
    for bad in ["ftp://127.0.0.1/", "/relative"] {
        let url: Uri = bad.parse().unwrap();
        let err = f
            .send(&Request {
                method: Method::GET,
                url: &url,
                headers: &[],
                body: Bytes::new(),
                timeout: Duration::from_secs(1),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Url(_)), "{bad}: {err}");
    }
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        answer(&mut s, "200 OK", &vec![b'a'; MAX_BODY + 1], true).await;
    });
    let url: Uri = format!("http://{addr}/").parse().unwrap();
    let err = f
        .send(&Request {
            method: Method::GET,
            url: &url,
            headers: &[],
            body: Bytes::new(),
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::TooLarge), "{err}");
}

#[tokio::test]
async fn https_verified_by_a_private_ca() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("flowgate-fetch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.pem()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut s = acceptor.accept(s).await.unwrap();
        let (head, _) = read_request(&mut s).await.unwrap();
        let host = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("host:"))
            .unwrap()
            .to_string();
        answer(&mut s, "200 OK", host.as_bytes(), true).await;
        s.shutdown().await.ok();
    });
    let f = fetcher(&ClientSettings {
        roots: Roots::None,
        ca_file: Some(ca),
        ..ClientSettings::default()
    });
    let url: Uri = format!("https://localhost:{port}/v2/enqueue")
        .parse()
        .unwrap();
    let got = f
        .send(&Request {
            method: Method::POST,
            url: &url,
            headers: &[],
            body: Bytes::from_static(b"{}"),
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
    assert_eq!(got.body, format!("host: localhost:{port}"));
    std::fs::remove_dir_all(dir).ok();
}
