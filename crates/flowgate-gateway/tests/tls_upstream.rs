//! `https://` upstreams: verified against a private CA, failing with a 502 that names the
//! endpoint and the reason (counted by reason), mTLS, SNI, and the TLS material checked at
//! load. Certificates are made at test time; every server is on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;

use common::tls::{Pki, TlsFront};
use common::*;
use flowgate_sim::EndpointSpec;
use http::StatusCode;

/// One pool `llm` of `urls` with `tls` as its `[pools.llm.tls]` table, and a chat route.
fn config(urls: &[String], tls: &str) -> String {
    let eps: Vec<String> = urls
        .iter()
        .map(|u| format!("{{ url = \"{u}\" }}"))
        .collect();
    format!(
        "[pools.llm]\nendpoints = [{}]\n\n[pools.llm.tls]\n{tls}\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n",
        eps.join(", ")
    )
}

fn ca(pki: &Pki) -> String {
    format!("ca_file = {:?}", pki.ca_file().display().to_string())
}

#[tokio::test]
async fn an_https_upstream_signed_by_the_pools_ca_answers_and_keeps_its_connection() {
    let pki = Pki::new("ok");
    let up = sim(EndpointSpec::default()).await;
    let front = TlsFront::start(&pki.issue("server", &["localhost"]), up.addr(), None).await;
    // One worker: idle connections are kept per worker.
    let gw = gateway_with("workers = 1", &config(&[front.url("localhost")], &ca(&pki))).await;
    for _ in 0..3 {
        let r = chat_once(&gw).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.error_message());
        assert!(r.json()["choices"][0]["message"]["content"].is_string());
    }
    assert_eq!(
        front.handshakes.load(Ordering::Relaxed),
        1,
        "one handshake: the connection is pooled and reused"
    );
}

#[tokio::test]
async fn an_unknown_issuer_is_a_502_naming_the_endpoint_and_the_reason_and_is_counted() {
    let pki = Pki::new("unknown");
    let up = sim(EndpointSpec::default()).await;
    let front = TlsFront::start(&pki.issue("server", &["localhost"]), up.addr(), None).await;
    // The bundled roots do not know the test's CA.
    let gw = gateway(&config(&[front.url("localhost")], "roots = \"bundled\"")).await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.error_code(), "upstream_unreachable");
    let msg = r.error_message();
    assert!(msg.contains("unknown_issuer"), "{msg}");
    assert!(
        msg.contains(&format!("localhost:{}", front.addr.port())),
        "names the endpoint: {msg}"
    );
    assert_eq!(front.handshakes.load(Ordering::Relaxed), 0);
    let m = send(&client(), get(gw.admin_addr, "/metrics")).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        metric(
            &text,
            "flowgate_upstream_tls_errors_total{pool=\"llm\",endpoint="
        ) >= 1.0,
        "{text}"
    );
    assert!(text.contains("reason=\"unknown_issuer\""), "{text}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_a_502_unless_sni_names_it() {
    let pki = Pki::new("mismatch");
    let up = sim(EndpointSpec::default()).await;
    let front = TlsFront::start(&pki.issue("server", &["api.internal"]), up.addr(), None).await;
    let url = front.url("localhost");
    let gw = gateway(&config(std::slice::from_ref(&url), &ca(&pki))).await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.error_message().contains("name_mismatch"),
        "{}",
        r.error_message()
    );

    let gw = gateway(&config(
        &[url],
        &format!("{}\nsni = \"api.internal\"", ca(&pki)),
    ))
    .await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.error_message());
}

#[tokio::test]
async fn an_expired_certificate_is_a_502_that_says_so() {
    let pki = Pki::new("expired");
    let up = sim(EndpointSpec::default()).await;
    let old = pki.issue_with("server", &["localhost"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let front = TlsFront::start(&old, up.addr(), None).await;
    let gw = gateway(&config(&[front.url("localhost")], &ca(&pki))).await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.error_message().contains("expired"),
        "{}",
        r.error_message()
    );
}

#[tokio::test]
async fn a_failed_handshake_fails_over_to_another_endpoint() {
    let good = Pki::new("good");
    let other = Pki::new("other");
    let up = sim(EndpointSpec::default()).await;
    let ok = TlsFront::start(&good.issue("server", &["localhost"]), up.addr(), None).await;
    let bad = TlsFront::start(&other.issue("server", &["localhost"]), up.addr(), None).await;
    let gw = gateway(&config(
        &[bad.url("localhost"), ok.url("localhost")],
        &format!("{}\n", ca(&good)),
    ))
    .await;
    for _ in 0..6 {
        let r = chat_once(&gw).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.error_message());
    }
}

#[tokio::test]
async fn an_upstream_that_requires_a_client_certificate_gets_the_pools() {
    let servers = Pki::new("servers");
    let clients = Pki::new("clients");
    let up = sim(EndpointSpec::default()).await;
    let front = TlsFront::start(
        &servers.issue("server", &["localhost"]),
        up.addr(),
        Some(&clients.ca_file()),
    )
    .await;
    let me = clients.issue("gateway", &["gateway.flowgate"]);
    let with = format!(
        "{}\ncert_file = {:?}\nkey_file = {:?}",
        ca(&servers),
        me.cert.display().to_string(),
        me.key.display().to_string()
    );
    let gw = gateway(&config(&[front.url("localhost")], &with)).await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.error_message());

    let gw = gateway(&config(&[front.url("localhost")], &ca(&servers))).await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "without the certificate");
    assert!(
        r.error_message().to_lowercase().contains("certificate"),
        "says what the server wanted: {}",
        r.error_message()
    );
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate() {
    let pki = Pki::new("insecure");
    let up = sim(EndpointSpec::default()).await;
    let front = TlsFront::start(&pki.issue("server", &["elsewhere"]), up.addr(), None).await;
    let gw = gateway(&config(
        &[front.url("localhost")],
        "insecure_skip_verify = true",
    ))
    .await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.error_message());
}

#[test]
fn unusable_tls_files_are_config_errors_with_their_keys() {
    let pki = Pki::new("files");
    let a = pki.issue("a", &["a"]);
    let b = pki.issue("b", &["b"]);
    let junk = pki.dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let check = |tls: &str| {
        let src = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n{}",
            config(&["https://localhost:1".into()], tls)
        );
        match flowgate_config::parse_with(
            &src,
            "t.toml",
            std::iter::empty(),
            flowgate_gateway::check_external,
        ) {
            Ok(_) => panic!("accepted: {tls}"),
            Err(e) => e.problems().to_vec(),
        }
    };
    let p = check(&format!("ca_file = {:?}", junk.display().to_string()));
    assert_eq!(p[0].key.to_string(), "pools.llm.tls.ca_file");
    assert!(p[0].message.contains("no CERTIFICATE"), "{}", p[0].message);
    assert!(
        matches!(p[0].location, flowgate_config::Location::File { .. }),
        "located in the file: {:?}",
        p[0].location
    );
    let p = check(&format!(
        "cert_file = {:?}\nkey_file = {:?}",
        a.cert.display().to_string(),
        b.key.display().to_string()
    ));
    assert_eq!(p[0].key.to_string(), "pools.llm.tls.key_file");
    assert!(p[0].message.contains("does not match"), "{}", p[0].message);
    let p = check(&format!(
        "key_file = {:?}\ncert_file = {:?}",
        a.cert.display().to_string(),
        a.cert.display().to_string()
    ));
    assert_eq!(p[0].key.to_string(), "pools.llm.tls.key_file");
    assert!(p[0].message.contains("no PRIVATE KEY"), "{}", p[0].message);
}
