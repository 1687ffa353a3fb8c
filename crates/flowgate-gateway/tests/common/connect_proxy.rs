//! A small HTTP CONNECT proxy on loopback for the tests: it opens the tunnels it is asked
//! for (optionally only with the right `Proxy-Authorization`), or refuses every one with a
//! given status, and remembers the targets it was asked for.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::loopback;

pub struct ConnectProxy {
    pub addr: SocketAddr,
    /// The `CONNECT` targets asked for, tunnelled or not.
    pub asked: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    /// `authorization`: the `Proxy-Authorization` value required (407 otherwise);
    /// `refuse`: answer every CONNECT with this status line instead.
    pub async fn start(authorization: Option<&str>, refuse: Option<&str>) -> Self {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (want, refuse) = (authorization.map(String::from), refuse.map(String::from));
        let seen = asked.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (want, refuse, seen) = (want.clone(), refuse.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut b).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(b[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let target = head
                        .strip_prefix("CONNECT ")
                        .and_then(|r| r.split(' ').next())
                        .unwrap_or("")
                        .to_string();
                    seen.lock().unwrap().push(target.clone());
                    let answer = |s: &str| format!("HTTP/1.1 {s}\r\ncontent-length: 0\r\n\r\n");
                    if let Some(status) = refuse {
                        let _ = client.write_all(answer(&status).as_bytes()).await;
                        return;
                    }
                    if let Some(want) = want {
                        let given = head.lines().find_map(|l| {
                            l.strip_prefix("Proxy-Authorization: ")
                                .or_else(|| l.strip_prefix("proxy-authorization: "))
                        });
                        if given != Some(want.as_str()) {
                            let _ = client
                                .write_all(answer("407 Proxy Authentication Required").as_bytes())
                                .await;
                            return;
                        }
                    }
                    let Ok(mut upstream) = TcpStream::connect(&target).await else {
                        let _ = client.write_all(answer("502 Bad Gateway").as_bytes()).await;
                        return;
                    };
                    let _ = client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        ConnectProxy { addr, asked }
    }

    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}
