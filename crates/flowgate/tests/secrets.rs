//! Upstream credentials and client keys never show: a canary secret is grepped for in
//! everything a running gateway writes or answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CANARY: &str = "sk-canary-7f3a9c1e";
const CLIENT_KEY: &str = "fgk_canary_client_key_55d1";
/// AWS credentials of a Bedrock pool: the secret and the session token never show.
const AWS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "AKIACANARYKEYID00000"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-canary-91b2"),
    ("AWS_SESSION_TOKEN", "aws-token-canary-c4e8"),
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 exchange; the whole response as text ("" when nothing answers).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_canary_secret_appears_in_no_log_answer_or_summary() {
    let dir = std::env::temp_dir().join(format!("flowgate-canary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (up, dead, data, admin) = (free_port(), free_port(), free_port(), free_port());
    let hash =
        flowgate_config::format_key_hash(&flowgate_admission::keys::hash(CLIENT_KEY.as_bytes()));
    let config = dir.join("flowgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{data}\"\nadmin_listen = \"127.0.0.1:{admin}\"\nworkers = 1\n\n\
             [pools.llm]\nendpoints = [\n  {{ url = \"http://127.0.0.1:{up}\", api_key_env = \"FLOWGATE_CANARY\" }},\n  \
             {{ url = \"http://127.0.0.1:{dead}\", api_key_env = \"FLOWGATE_CANARY\", api_key_header = \"x-api-key\" }},\n]\n\n\
             [pools.claude]\nprovider = \"anthropic\"\nendpoints = [{{ url = \"http://127.0.0.1:{up}\", api_key_env = \"FLOWGATE_CANARY\" }}]\n\n\
             [pools.azure]\nprovider = \"azure\"\nendpoints = [{{ url = \"http://127.0.0.1:{up}\", api_key_env = \"FLOWGATE_CANARY\" }}]\n\n\
             [[routes]]\nname = \"azure\"\nkind = \"openai\"\npath = \"/azure/v1/chat/completions\"\npool = \"azure\"\n\n\
             [pools.gemini]\nprovider = \"gemini\"\nendpoints = [{{ url = \"http://127.0.0.1:{up}\", api_key_env = \"FLOWGATE_CANARY\" }}]\n\n\
             [[routes]]\nname = \"gemini\"\nkind = \"openai\"\npath = \"/gemini/v1/chat/completions\"\npool = \"gemini\"\n\n\
             [pools.bedrock]\nprovider = \"bedrock\"\nmodel = \"anthropic.claude-3-5-sonnet-20240620-v1:0\"\nendpoints = [{{ url = \"http://127.0.0.1:{up}\", region = \"us-east-1\" }}]\n\n\
             [[routes]]\nname = \"bedrock\"\nkind = \"openai\"\npath = \"/bedrock/v1/chat/completions\"\npool = \"bedrock\"\n\n\
             [[routes]]\nname = \"claude\"\nkind = \"openai\"\npath = \"/claude/v1/chat/completions\"\npool = \"claude\"\n\n\
             [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n\n\
             [auth]\nenabled = true\nstore = \"{}\"\n\n[[auth.keys]]\nname = \"canary-client\"\nhash = \"{hash}\"\n",
            dir.join("keys.redb").display()
        ),
    )
    .unwrap();
    let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
    let _sim = Killed(
        Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(["sim", "--listen", &format!("127.0.0.1:{up}")])
            .envs(AWS)
            .stdout(log("sim.out"))
            .stderr(log("sim.err"))
            .spawn()
            .unwrap(),
    );
    let gateway = Killed(
        Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("FLOWGATE_CANARY", CANARY)
            .envs(AWS)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log("serve.out"))
            .stderr(log("serve.err"))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http(admin, "GET", "/ready", &[], "").contains("200 OK") {
        assert!(
            Instant::now() < deadline,
            "the gateway did not become ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    while !http(up, "GET", "/v1/models", &[], "").contains("HTTP/1.1") {
        assert!(Instant::now() < deadline, "the simulator did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let bearer = format!("Bearer {CLIENT_KEY}");
    let json = ("content-type", "application/json");
    let mut seen = Vec::new();
    let chat = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":3}"#;
    let stream = r#"{"model":"m","messages":[],"stream":true}"#;
    // Successes and connect failures (half the traffic picks the dead endpoint), both
    // through a credential, plus refused keys.
    for _ in 0..8 {
        seen.push(http(
            data,
            "POST",
            "/v1/chat/completions",
            &[json, ("authorization", &bearer)],
            chat,
        ));
    }
    seen.push(http(
        data,
        "POST",
        "/v1/chat/completions",
        &[json, ("authorization", &bearer)],
        stream,
    ));
    seen.push(http(
        data,
        "POST",
        "/v1/chat/completions",
        &[json, ("authorization", &format!("Bearer {CANARY}"))],
        chat,
    ));
    seen.push(http(data, "POST", "/v1/chat/completions", &[json], chat));
    // Through a pool of Anthropic's API (the key in x-api-key), one of Bedrock (signed
    // with the AWS key), one of Azure (the key in api-key) and one of Gemini (the key in
    // x-goog-api-key), whole and streamed.
    for path in [
        "/claude/v1/chat/completions",
        "/bedrock/v1/chat/completions",
    ] {
        for body in [
            chat,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        ] {
            let r = http(
                data,
                "POST",
                path,
                &[json, ("authorization", &bearer)],
                body,
            );
            assert!(r.starts_with("HTTP/1.1 200"), "{path}: {r}");
            seen.push(r);
        }
    }
    assert!(
        seen.iter().any(|r| r.starts_with("HTTP/1.1 200")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|r| r.starts_with("HTTP/1.1 401")),
        "{seen:?}"
    );
    // Everything the admin listener shows.
    let made = http(admin, "POST", "/api/v1/keys", &[json], r#"{"name":"made"}"#);
    assert!(made.starts_with("HTTP/1.1 201"), "{made}");
    for path in [
        "/health",
        "/metrics",
        "/api/v1/keys",
        "/api/v1/performance/metrics",
    ] {
        seen.push(http(admin, "GET", path, &[], ""));
    }
    let check = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check", "--config", config.to_str().unwrap()])
        .env("FLOWGATE_CANARY", CANARY)
        .envs(AWS)
        .output()
        .unwrap();
    assert!(check.status.success());
    seen.push(String::from_utf8_lossy(&check.stdout).into_owned());
    seen.push(String::from_utf8_lossy(&check.stderr).into_owned());
    drop(gateway);

    let logs = std::fs::read_to_string(dir.join("serve.err")).unwrap()
        + &std::fs::read_to_string(dir.join("serve.out")).unwrap();
    assert!(logs.contains("flowgate serving"), "{logs}");
    assert!(logs.contains("DEBUG"), "debug logging was on: {logs}");
    seen.push(logs);
    for text in &seen {
        assert!(!text.contains(CANARY), "the upstream secret leaked: {text}");
        assert!(!text.contains(CLIENT_KEY), "a client key leaked: {text}");
        for (var, value) in &AWS[1..] {
            assert!(!text.contains(value), "{var} leaked: {text}");
        }
    }
    assert!(
        seen.iter().any(|t| t.contains("$FLOWGATE_CANARY")),
        "the summary names the variable"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
