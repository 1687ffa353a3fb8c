//! Egress through an HTTP proxy: a connection to an upstream is a tunnel the proxy opens
//! with `CONNECT host:port` (RFC 9110 §9.3.6), optionally with `Proxy-Authorization: Basic`.
//! TLS to the upstream then runs inside the tunnel, so the proxy sees only the host name.

use std::io;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Largest answer head accepted from a proxy.
const MAX_HEAD: usize = 8 * 1024;

/// An HTTP proxy that tunnels connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `host:port` of the proxy.
    pub authority: String,
    /// `Basic …`, the value of `Proxy-Authorization`, when the proxy wants credentials.
    pub authorization: Option<String>,
}

/// Why no tunnel was opened.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot reach proxy {proxy}: {source}")]
    Connect { proxy: String, source: io::Error },
    #[error("proxy {proxy} refused CONNECT {target}: {status} {reason}")]
    Refused {
        proxy: String,
        target: String,
        status: u16,
        reason: String,
    },
    #[error("proxy {proxy} answered CONNECT {target} with something that is not HTTP: {what}")]
    Malformed {
        proxy: String,
        target: String,
        what: String,
    },
}

impl Proxy {
    /// A proxy at `authority`, with `user` and `password` when it asks for them.
    pub fn new(authority: String, credentials: Option<(&str, &str)>) -> Self {
        Proxy {
            authority,
            authorization: credentials
                .map(|(u, p)| format!("Basic {}", base64(format!("{u}:{p}").as_bytes()))),
        }
    }

    /// A TCP connection to `target` (`host:port`) through the proxy.
    pub async fn tunnel(&self, target: &str) -> Result<TcpStream, TunnelError> {
        let mut tcp = TcpStream::connect(self.authority.as_str())
            .await
            .map_err(|source| TunnelError::Connect {
                proxy: self.authority.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(a) = &self.authorization {
            head.push_str("Proxy-Authorization: ");
            head.push_str(a);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let io_err = |e: io::Error| TunnelError::Connect {
            proxy: self.authority.clone(),
            source: e,
        };
        tcp.write_all(head.as_bytes()).await.map_err(io_err)?;
        let malformed = |what: String| TunnelError::Malformed {
            proxy: self.authority.clone(),
            target: target.to_string(),
            what,
        };
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut slots);
            match resp.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    if !(200..300).contains(&status) {
                        return Err(TunnelError::Refused {
                            proxy: self.authority.clone(),
                            target: target.to_string(),
                            status,
                            reason: resp.reason.unwrap_or("").to_string(),
                        });
                    }
                    // The upstream speaks first only after our request: nothing may follow.
                    if len != buf.len() {
                        return Err(malformed("bytes after the answer to CONNECT".into()));
                    }
                    return Ok(tcp);
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                    return Err(malformed(format!("an answer head over {MAX_HEAD} bytes")));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(malformed(e.to_string())),
            }
            buf.reserve(1024);
            let n = std::future::poll_fn(|cx| crate::sock::poll_read_some(&tcp, cx, &mut buf))
                .await
                .map_err(io_err)?;
            if n == 0 {
                return Err(malformed("the connection closed before the answer".into()));
            }
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4), for `Basic` credentials.
fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_base64() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let p = Proxy::new("p:3128".into(), Some(("Aladdin", "open sesame")));
        assert_eq!(
            p.authorization.as_deref(),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
    }
}
