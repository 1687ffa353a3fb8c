//! Helpers for the gateway's integration tests: a gateway and simulated upstreams on free
//! loopback ports, an HTTP client, and raw TCP exchanges for malformed or slow clients.
#![allow(
    dead_code,
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod connect_proxy;
pub mod h2;
pub mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use flowgate_gateway::Running;
use flowgate_sim::{EndpointSpec, SimServer};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub async fn sim(spec: EndpointSpec) -> SimServer {
    SimServer::start(loopback(), spec)
        .await
        .expect("start simulator")
}

/// An upstream that answers every request with `response` (a whole HTTP/1.1 response, which
/// should close the connection) and counts the requests; its URL.
pub async fn canned_upstream(
    response: String,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    scripted_upstream(move |_| response.clone()).await
}

/// An upstream that answers each request (its head and body, as text) with what `respond`
/// makes of it (a whole HTTP/1.1 response, which should close the connection) and counts
/// the requests; its URL.
pub async fn scripted_upstream(
    respond: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let respond = std::sync::Arc::new(respond);
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (seen, respond) = (seen.clone(), respond.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 8192];
                // The head, then as many body bytes as it announces.
                loop {
                    if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let response = respond(&String::from_utf8_lossy(&got));
                let _ = s.write_all(response.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (url, count)
}

/// An upstream answering chat completions with 200, or with 500 while `failing` is set;
/// its URL.
pub async fn switchable_upstream(failing: std::sync::Arc<std::sync::atomic::AtomicBool>) -> String {
    scripted_upstream(move |_| {
        let (code, reason) = if failing.load(std::sync::atomic::Ordering::Relaxed) {
            (500, "Internal Server Error")
        } else {
            (200, "OK")
        };
        let body = r#"{"id":"c","object":"chat.completion","choices":[]}"#;
        format!(
            "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    })
    .await
    .0
}

/// A port nothing listens on.
pub async fn dead_port() -> u16 {
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    l.local_addr().unwrap().port()
}

/// A gateway on free ports; `body` is the config after its `[server]` section.
pub async fn gateway(body: &str) -> Running {
    gateway_with("", body).await
}

/// Like [`gateway`], with `server` added to the `[server]` section.
pub async fn gateway_with(server: &str, body: &str) -> Running {
    launch_on(server, body, flowgate_clock::SystemClock::shared(), &[]).await
}

/// Like [`gateway`], on `clock` (a manual clock moves cache freshness without waiting).
pub async fn gateway_on(clock: flowgate_clock::SharedClock, body: &str) -> Running {
    launch_on("", body, clock, &[]).await
}

/// Like [`gateway`], with `env` as the environment its config is read in.
pub async fn gateway_env(body: &str, env: &[(&str, &str)]) -> Running {
    launch_on("", body, flowgate_clock::SystemClock::shared(), env).await
}

pub async fn launch_on(
    server: &str,
    body: &str,
    clock: flowgate_clock::SharedClock,
    env: &[(&str, &str)],
) -> Running {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndrain_timeout = \"5s\"\n{server}\n\n{body}"
    );
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let cfg = flowgate_config::parse(&toml, "test.toml", env).unwrap_or_else(|e| panic!("{e}"));
    let telemetry = flowgate_telemetry::Telemetry::new(clock);
    flowgate_gateway::launch(cfg, None, telemetry)
        .await
        .expect("launch gateway")
}

/// One pool `llm` over `urls` and an openai route on `/v1` plus an http route on `/echo`.
pub fn fleet_config(urls: &[String], pool_extra: &str) -> String {
    let eps: Vec<String> = urls
        .iter()
        .map(|u| format!("{{ url = \"{u}\" }}"))
        .collect();
    format!(
        "[pools.llm]\nendpoints = [{}]\n{pool_extra}\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n\n\
         [[routes]]\nname = \"echo\"\nkind = \"http\"\nprefix = \"/echo\"\npool = \"llm\"\n",
        eps.join(", ")
    )
}

/// `cfg` (from [`fleet_config`]) with its `chat` route letting clients pick a cache
/// namespace (`x-flowgate-cache-namespace`).
pub fn with_namespace_header(cfg: &str) -> String {
    let chat = "name = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n";
    assert!(cfg.contains(chat), "no chat route in {cfg}");
    cfg.replacen(
        chat,
        &format!("{chat}cache = {{ namespace_header = true }}\n"),
        1,
    )
}

/// One non-streamed chat request to `gw`'s `/v1/chat/completions`, on a fresh client.
pub async fn chat_once(gw: &Running) -> Reply {
    send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
    )
    .await
}

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Asserts the status, showing the body when it is another.
    pub fn expect(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

pub async fn send(c: &TestClient, req: Request<Full<Bytes>>) -> Reply {
    let resp = tokio::time::timeout(Duration::from_secs(20), c.request(req))
        .await
        .expect("no answer in 20 s")
        .expect("request failed");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn chat_body(stream: bool) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}],\"stream\":{stream},\"max_tokens\":5}}"
    ))
}

/// A deterministic (or, with a temperature above 0, sampled) chat request for `content`.
pub fn chat(temperature: f64, content: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"gpt-4o-mini\",\"temperature\":{temperature},\"max_tokens\":5,\
          \"messages\":[{{\"role\":\"user\",\"content\":\"{content}\"}}]}}"
    ))
}

/// The `x-flowgate-cache` field of a reply ("" when absent).
pub fn cache_header(r: &Reply) -> &str {
    r.headers
        .get("x-flowgate-cache")
        .map_or("", |v| v.to_str().unwrap())
}

pub fn post(addr: SocketAddr, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap()
}

/// `POST /api/v1/performance/cache/invalidate` with the selector `body`, to the admin
/// listener at `admin`.
pub fn invalidate(admin: SocketAddr, body: &str) -> Request<Full<Bytes>> {
    post(
        admin,
        "/api/v1/performance/cache/invalidate",
        Bytes::from(body.to_string()),
    )
}

pub fn get(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Writes `raw` to `addr` and reads until the server closes or `wait` passes.
pub async fn raw_exchange(addr: SocketAddr, raw: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `f` until it is true (at most 5 s).
pub async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5 s");
}

/// `s` as a query value.
pub fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One minute of a gateway on a manual clock: `n` requests to its `chat` route (an
/// openai route), each answered 200; then, once the metrics have counted them (a record
/// is sent as its answer's body ends, so after the client has it), the clock moved a
/// minute on, and back once the history has stored the route's point of that minute
/// (the writer closes it at its next tick, within about a second).
pub async fn chat_minute(gw: &Running, clock: &flowgate_clock::ManualClock, n: usize) {
    const ANSWERED: &str = "flowgate_requests_total{route=\"chat\",pool=\"llm\",status=\"200\"}";
    let c = client();
    let counted = || async {
        let m = send(&client(), get(gw.admin_addr, "/metrics")).await;
        metric(&String::from_utf8_lossy(&m.body), ANSWERED)
    };
    let before = counted().await;
    for _ in 0..n {
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await
        .expect(StatusCode::OK);
    }
    let mut waited = 0;
    while counted().await < before + n as f64 {
        assert!(waited < 500, "{n} requests were never counted");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let now = flowgate_clock::Clock::unix_millis(clock) / 1000;
    let start = now - now % 60;
    clock.advance(Duration::from_secs(60));
    let path = format!(
        "/api/v1/metrics/history?series={}&from={start}&to={}&step=1m",
        query_value("requests_per_second{route=\"chat\"}"),
        start + 60
    );
    let mut waited = 0;
    loop {
        let (_, v) = admin(gw, "GET", &path, "").await;
        if v["points"].as_array().is_some_and(|p| !p.is_empty()) {
            return;
        }
        assert!(
            waited < 500,
            "the minute from {start} was never stored: {v}"
        );
        waited += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A gateway serving the config file at `file`, watching it for hot reload.
pub async fn gateway_from_file(file: &std::path::Path) -> Running {
    let cfg = flowgate_config::load(file).unwrap_or_else(|e| panic!("{e}"));
    let telemetry = flowgate_telemetry::Telemetry::new(flowgate_clock::SystemClock::shared());
    flowgate_gateway::launch(cfg, Some(file.to_path_buf()), telemetry)
        .await
        .expect("launch gateway")
}

/// Sends `n` chat requests at once (each on its own connection) and returns their statuses.
pub async fn concurrent_chats(c: &TestClient, addr: SocketAddr, n: usize) -> Vec<StatusCode> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                send(&c, post(addr, "/v1/chat/completions", chat_body(false)))
                    .await
                    .status
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("request task"));
    }
    out
}

/// The value of the first sample in a Prometheus exposition whose line starts with `prefix`
/// (0 when there is none).
pub fn metric(exposition: &str, prefix: &str) -> f64 {
    exposition
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A private `redis-server` on a free loopback port, killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::on_port(dead_port().await).await
    }

    /// Starts one on `port` (to bring a killed one back at the same address).
    pub async fn on_port(port: u16) -> Self {
        Self::with_args(port, &[]).await
    }

    /// Starts one on `port` with extra `redis-server` arguments.
    pub async fn with_args(port: u16, extra: &[&str]) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(extra)
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install it (`apt-get install redis-server`; \
                     scripts/test.sh does this)"
                )
            });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                s.write_all(b"PING\r\n").await.unwrap();
                let mut buf = [0u8; 7];
                if s.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n" {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        RedisServer {
            port,
            child: Some(child),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends one command to the Redis on `port` and returns its reply: the first line, or for
/// a bulk string (`$N`) its N bytes.
pub async fn redis_cmd(port: u16, args: &[&str]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        line.push(byte[0]);
    }
    let line = String::from_utf8(line).unwrap().trim_end().to_string();
    match line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => {
            let mut bulk = vec![0u8; n];
            s.read_exact(&mut bulk).await.unwrap();
            String::from_utf8(bulk).unwrap()
        }
        None => line,
    }
}

/// A private Redis Cluster of three primaries on free loopback ports.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "flowgate-redis-cluster-{}-{}",
            std::process::id(),
            dead_port().await
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = dead_port().await;
            let conf = dir.join(format!("nodes-{port}.conf"));
            let conf = conf.to_str().unwrap();
            let args = ["--cluster-enabled", "yes", "--cluster-config-file", conf];
            nodes.push(RedisServer::with_args(port, &args).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): it comes with redis-server"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Every node must know every slot before the test starts.
        for n in &nodes {
            let port = n.port;
            let mut ok = false;
            for _ in 0..500 {
                let info = redis_cmd(port, &["CLUSTER", "INFO"]).await;
                if info.contains("cluster_state:ok") {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(ok, "the cluster did not converge on node {port}");
        }
        RedisCluster { nodes, dir }
    }

    /// Keys stored on each node.
    pub async fn sizes(&self) -> Vec<u64> {
        let mut sizes = Vec::new();
        for n in &self.nodes {
            let reply = redis_cmd(n.port, &["DBSIZE"]).await;
            sizes.push(reply.trim_start_matches(':').parse().unwrap());
        }
        sizes
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// POSTs `body` to `path` and reads the streamed OpenAI answer: its `data:` events as JSON
/// (`[DONE]` left out), and whether it ended with `data: [DONE]`. Asserts a 200 in
/// `text/event-stream`.
pub async fn openai_stream(
    addr: SocketAddr,
    path: &str,
    body: Bytes,
) -> (Vec<serde_json::Value>, bool) {
    use http_body_util::BodyExt;
    let resp = client().request(post(addr, path, body)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let events = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (events, text.ends_with("data: [DONE]\n\n"))
}

/// A call to the admin API with a JSON `body`: its status and JSON answer (null when it is
/// not JSON).
#[allow(dead_code)]
pub async fn admin(
    gw: &Running,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", gw.admin_addr))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let r = send(&client(), req).await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or_default(),
    )
}
