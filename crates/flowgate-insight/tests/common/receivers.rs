//! Real receivers for the notifiers' tests, on free loopback ports: an HTTP server that
//! records what it is sent and answers as told, and a private `aiosmtpd` (PyPI) SMTP
//! server, killed when dropped, whose received messages the test reads.

#![allow(
    dead_code, // each test file uses its part
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A request the HTTP receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

type Script = Arc<Mutex<VecDeque<(u16, Vec<(&'static str, String)>)>>>;

/// An HTTP receiver (see the module's documentation): answers 200 unless told otherwise.
pub struct HttpReceiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    script: Script,
}

impl HttpReceiver {
    pub async fn start() -> HttpReceiver {
        Self::on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// On `port` (a test that needs a known address).
    pub async fn on_port(port: u16) -> HttpReceiver {
        Self::on(TcpListener::bind(("127.0.0.1", port)).await.unwrap())
    }

    fn on(l: TcpListener) -> HttpReceiver {
        let addr = l.local_addr().unwrap();
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let script: Script = Arc::default();
        let (g, s) = (got.clone(), script.clone());
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = l.accept().await else {
                    return;
                };
                let (g, s) = (g.clone(), s.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (g, s) = (g.clone(), s.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            g.lock().unwrap().push(Got {
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                                body,
                                at: Instant::now(),
                            });
                            let (status, headers) =
                                s.lock().unwrap().pop_front().unwrap_or((200, Vec::new()));
                            let mut resp = http::Response::builder().status(status);
                            for (k, v) in headers {
                                resp = resp.header(k, v);
                            }
                            Ok::<_, std::convert::Infallible>(
                                resp.body(Full::new(Bytes::from_static(b"ok"))).unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        HttpReceiver { addr, got, script }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request gets `status` and `headers` (then 200s again).
    pub fn answer_next(&self, status: u16, headers: Vec<(&'static str, String)>) {
        self.script.lock().unwrap().push_back((status, headers));
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests came (at most `within`); what came.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Got> {
        let end = Instant::now() + within;
        loop {
            let got = self.got();
            if got.len() >= n || Instant::now() > end {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The Python that has `aiosmtpd`: `FLOWGATE_TEST_PYTHON` (scripts/test.sh sets it), else
/// the test venv scripts/test.sh makes under `target/`, else `python3`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FLOWGATE_TEST_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-python/bin/python");
    if venv.exists() {
        return venv;
    }
    "python3".into()
}

/// A private SMTP server (see the module's documentation).
pub struct SmtpReceiver {
    pub port: u16,
    child: Child,
    out: Arc<Mutex<String>>,
}

impl SmtpReceiver {
    /// Plain SMTP, or with `tls` (certificate and key files) STARTTLS, which it then
    /// requires before any mail.
    pub async fn start(tls: Option<(&Path, &Path)>) -> SmtpReceiver {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        Self::on_port(port, tls).await
    }

    /// The same on `port`.
    pub async fn on_port(port: u16, tls: Option<(&Path, &Path)>) -> SmtpReceiver {
        let py = python();
        let ok = Command::new(&py)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{} cannot import aiosmtpd: run scripts/test.sh (it installs aiosmtpd from PyPI into \
             target/test-python), or set FLOWGATE_TEST_PYTHON to a Python that has it",
            py.display()
        );
        let mut cmd = Command::new(&py);
        cmd.args(["-u", "-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"));
        if let Some((cert, key)) = tls {
            cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start aiosmtpd with {}: {e}", py.display()));
        let out: Arc<Mutex<String>> = Arc::default();
        let mut stdout = child.stdout.take().unwrap();
        let o = out.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                o.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let end = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < end,
                "aiosmtpd did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SmtpReceiver { port, child, out }
    }

    /// The messages received so far, each as aiosmtpd printed it (head and body).
    pub fn messages(&self) -> Vec<String> {
        let out = self.out.lock().unwrap();
        out.split("---------- MESSAGE FOLLOWS ----------")
            .skip(1)
            .filter(|m| m.contains("------------ END MESSAGE ------------"))
            .filter_map(|m| m.split("------------ END MESSAGE ------------").next())
            .map(|m| m.trim().replace("\r\n", "\n"))
            .collect()
    }

    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<String> {
        let end = Instant::now() + within;
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > end {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
