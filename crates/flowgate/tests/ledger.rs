//! The spend ledger after `kill -9`: a gateway killed with no chance to write loses at
//! most what came after its last write (every second), and the file it leaves opens;
//! `flowgate cost` reports from it.
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

use flowgate_cost::ledger::{Ledger, Query, Retention};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One chat request; its status line ("" when nothing answers).
fn chat(port: u16, n: usize) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"question {n}"}}]}}"#
    );
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_string()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_for(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn after_kill_9_the_ledger_opens_and_holds_everything_before_the_last_write() {
    let dir = std::env::temp_dir().join(format!("flowgate-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (up, data, admin) = (free_port(), free_port(), free_port());
    let _sim = spawn(&[
        "sim",
        "--listen",
        &format!("127.0.0.1:{up}"),
        "--tokens",
        "4",
    ]);
    let config = dir.join("flowgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{data}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
             workers = 1\ndata_dir = \"data\"\n\n\
             [pools.llm]\nendpoints = [{{ url = \"http://127.0.0.1:{up}\" }}]\n\n\
             [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
        ),
    )
    .unwrap();
    wait_for(up);
    let mut gw = spawn(&["serve", "--config", config.to_str().unwrap()]);
    wait_for(data);
    let before = 40;
    for n in 0..before {
        assert!(chat(data, n).contains("200"), "request {n}");
    }
    // Two writes' time: all of these are written.
    std::thread::sleep(Duration::from_millis(2500));
    let after = 20;
    for n in before..before + after {
        assert!(chat(data, n).contains("200"), "request {n}");
    }
    gw.0.kill().unwrap(); // SIGKILL: no drain, no last write.
    gw.0.wait().unwrap();
    let path = dir.join("data").join("ledger.redb");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (ledger, moved) = Ledger::open(&path, Retention::default(), now).unwrap();
    assert_eq!(moved, None, "the file opens as a ledger after the kill");
    let q = Query {
        from: now - 600,
        to: now + 60,
        now,
        filter: Vec::new(),
    };
    let t = ledger.summary(&q, None).unwrap()[0].1;
    assert!(
        (before as u64..=(before + after) as u64).contains(&t.requests),
        "{} requests in the ledger: every one before the pause ({before}), at most the {after} after",
        t.requests
    );
    assert!(t.usd > rust_decimal::Decimal::ZERO, "priced: {t:?}");
    drop(ledger);
    // `flowgate cost` reports from the same file.
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args([
            "cost",
            "--config",
            config.to_str().unwrap(),
            "--by",
            "model",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("spent ${}", t.usd.normalize())),
        "{text}"
    );
    assert!(text.contains(&format!("requests {}", t.requests)), "{text}");
    assert!(text.contains("gpt-4o-mini"), "{text}");
    assert!(text.contains("per hour:"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_cost_report_says_why_when_there_is_no_ledger() {
    let dir = std::env::temp_dir().join(format!("flowgate-noledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("flowgate.toml");
    let pool = "[pools.llm]\nendpoints = [{ url = \"http://127.0.0.1:9\" }]\n\n\
                [[routes]]\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n";
    for (server, says) in [
        ("", "kept in memory only"),
        ("[server]\ndata_dir = \"data\"\n", "no ledger yet"),
    ] {
        std::fs::write(&config, format!("{server}{pool}")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(["cost", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{says}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
