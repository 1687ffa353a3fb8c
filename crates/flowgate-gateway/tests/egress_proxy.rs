//! Egress through an HTTP CONNECT proxy: a pool's `proxy`, with basic credentials, and
//! `HTTPS_PROXY` / `NO_PROXY`; a proxy that refuses is a 502 that says so. Loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::connect_proxy::ConnectProxy;
use common::tls::{Pki, TlsFront};
use common::*;
use flowgate_sim::EndpointSpec;
use http::StatusCode;

fn pool(url: &str, extra: &str) -> String {
    format!(
        "[pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n{extra}\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    )
}

#[tokio::test]
async fn a_pools_proxy_tunnels_https_with_its_credentials() {
    let pki = Pki::new("egress");
    let up = sim(EndpointSpec::default()).await;
    let front = TlsFront::start(&pki.issue("server", &["localhost"]), up.addr(), None).await;
    // "user:p@ss", the password escaped in the URL.
    let proxy = ConnectProxy::start(Some("Basic dXNlcjpwQHNz"), None).await;
    let tls = format!(
        "[pools.llm.tls]\nca_file = {:?}",
        pki.ca_file().display().to_string()
    );
    let url = front.url("localhost");
    let extra = format!("proxy = \"http://user:p%40ss@{}\"\n{tls}", proxy.addr);
    let gw = gateway(&pool(&url, &extra)).await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.error_message());
    assert_eq!(
        proxy.asked(),
        [format!("localhost:{}", front.addr.port())],
        "the tunnel names the upstream; TLS runs inside it"
    );

    // Plain http:// upstreams go through the pool's proxy too.
    let gw = gateway(&pool(
        &up.url(),
        &format!("proxy = \"http://user:p%40ss@{}\"", proxy.addr),
    ))
    .await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.error_message());
    assert_eq!(proxy.asked().len(), 2);

    // Wrong credentials: the proxy's 407 is the 502's reason.
    let gw = gateway(&pool(
        &url,
        &format!("proxy = \"http://user:nope@{}\"\n{tls}", proxy.addr),
    ))
    .await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.error_code(), "upstream_unreachable");
    assert!(
        r.error_message().contains("refused CONNECT"),
        "{}",
        r.error_message()
    );
    assert!(r.error_message().contains("407"), "{}", r.error_message());
}

#[tokio::test]
async fn a_proxy_that_refuses_connect_is_a_502_that_says_so() {
    let up = sim(EndpointSpec::default()).await;
    let proxy = ConnectProxy::start(None, Some("403 Forbidden")).await;
    let gw = gateway(&pool(
        &up.url(),
        &format!("proxy = \"http://{}\"", proxy.addr),
    ))
    .await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let msg = r.error_message();
    assert!(
        msg.contains(&format!("proxy {} refused CONNECT", proxy.addr)),
        "{msg}"
    );
    assert!(msg.contains("403 Forbidden"), "{msg}");
    let dead = dead_port().await;
    let gw = gateway(&pool(
        &up.url(),
        &format!("proxy = \"http://127.0.0.1:{dead}\""),
    ))
    .await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.error_message().contains("cannot reach proxy"),
        "{}",
        r.error_message()
    );
}

#[tokio::test]
async fn https_proxy_from_the_environment_applies_to_https_unless_no_proxy_names_the_host() {
    let pki = Pki::new("env");
    let up = sim(EndpointSpec::default()).await;
    let front = TlsFront::start(&pki.issue("server", &["localhost"]), up.addr(), None).await;
    let proxy = ConnectProxy::start(None, None).await;
    let tls = format!(
        "[pools.llm.tls]\nca_file = {:?}",
        pki.ca_file().display().to_string()
    );
    let https_proxy = format!("http://{}", proxy.addr);
    let gw = gateway_env(
        &pool(&front.url("localhost"), &tls),
        &[("HTTPS_PROXY", &https_proxy)],
    )
    .await;
    assert_eq!(chat_once(&gw).await.status, StatusCode::OK);
    assert_eq!(proxy.asked().len(), 1, "https:// through HTTPS_PROXY");

    let gw = gateway_env(
        &pool(&front.url("localhost"), &tls),
        &[
            ("HTTPS_PROXY", &https_proxy),
            ("NO_PROXY", "example.com,localhost"),
        ],
    )
    .await;
    assert_eq!(chat_once(&gw).await.status, StatusCode::OK);
    let gw = gateway_env(&pool(&up.url(), ""), &[("HTTPS_PROXY", &https_proxy)]).await;
    assert_eq!(chat_once(&gw).await.status, StatusCode::OK);
    let gw = gateway_env(
        &pool(&front.url("localhost"), &format!("proxy = \"none\"\n{tls}")),
        &[("HTTPS_PROXY", &https_proxy)],
    )
    .await;
    assert_eq!(chat_once(&gw).await.status, StatusCode::OK);
    assert_eq!(
        proxy.asked().len(),
        1,
        "NO_PROXY, an http:// upstream and proxy = \"none\" go direct"
    );
}
