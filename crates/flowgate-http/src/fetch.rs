//! Whole requests from the control plane (alert notifiers, exporters): a [`Fetcher`] keeps
//! one small [`Pool`] per origin (`http://` or `https://`, host and port), sends a request
//! with its whole body and reads the whole answer (up to [`MAX_BODY`]), all under one
//! deadline. A pooled connection the server closed meanwhile is replaced once, on a fresh
//! connection; anything else is the caller's to retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flowgate_clock::SharedClock;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body::Body;
use rustls::ClientConfig;

use crate::client::{ExchangeError, ReqFraming, RequestHead};
use crate::pool::{ConnectError, Pool, PoolMetrics, PoolSettings, Protocol, ResponseBody};
use crate::tls::Connector;

/// The most of an answer that is read; a longer one is an error.
pub const MAX_BODY: usize = 1 << 20;

/// Connections kept per origin.
const CONNECTIONS: usize = 4;

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a Uri,
    /// Fields besides `Host`, `Content-Length` and `User-Agent` (set by the fetcher unless
    /// given here).
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub body: Bytes,
    /// For the whole exchange: connecting, sending, reading the answer to its end.
    pub timeout: Duration,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Url(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Exchange(#[from] ExchangeError),
    #[error("no answer within {}", flowgate_clock::format_duration(*.0))]
    Timeout(Duration),
    #[error("the answer was cut: {0}")]
    Body(String),
    #[error("the answer is longer than {MAX_BODY} bytes")]
    TooLarge,
}

/// Pools by origin (see the module's documentation).
#[derive(Debug)]
pub struct Fetcher {
    pools: Mutex<HashMap<(bool, String), Arc<Pool>>>,
    tls: Arc<ClientConfig>,
    clock: SharedClock,
    user_agent: HeaderValue,
}

impl Fetcher {
    /// A fetcher verifying `https://` servers with `tls` (see
    /// [`crate::tls::client_config`]), sending `user_agent`.
    pub fn new(tls: Arc<ClientConfig>, clock: SharedClock, user_agent: &'static str) -> Self {
        Fetcher {
            pools: Mutex::new(HashMap::new()),
            tls,
            clock,
            user_agent: HeaderValue::from_static(user_agent),
        }
    }

    /// Sends `req` and reads its answer (see the module's documentation).
    pub async fn send(&self, req: &Request<'_>) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(req.timeout, self.exchange(req)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(req.timeout)),
        }
    }

    async fn exchange(&self, req: &Request<'_>) -> Result<Fetched, FetchError> {
        let origin = Origin::of(req.url)?;
        let pool = self.pool(&origin)?;
        let target = req.url.path_and_query().map_or("/", |p| p.as_str());
        let mut set: Vec<(&HeaderName, &[u8])> = vec![(&header::HOST, origin.host.as_bytes())];
        if !req.headers.iter().any(|(n, _)| n == header::USER_AGENT) {
            set.push((&header::USER_AGENT, self.user_agent.as_bytes()));
        }
        set.extend(req.headers.iter().map(|(n, v)| (n, v.as_bytes())));
        let head = RequestHead {
            method: &req.method,
            target,
            headers: &HeaderMap::new(),
            set: &set,
            omit: &[],
            framing: if req.body.is_empty() && req.method == Method::GET {
                ReqFraming::None
            } else {
                ReqFraming::Length(req.body.len() as u64)
            },
        };
        let mut fresh = false;
        loop {
            let mut lease = pool
                .checkout()
                .await
                .map_err(|e: ConnectError| FetchError::Connect(e.to_string()))?;
            let reused = lease.is_reused();
            let mut body = Whole(Some(req.body.clone()));
            let sent = match lease.write_request(&head, &mut body).await {
                Ok(()) => lease.read_head(req.method == Method::HEAD).await,
                Err(e) => Err(e),
            };
            let answer = match sent {
                Ok(a) => a,
                // A kept connection the server had closed: once more on a new one.
                Err(_) if reused && !fresh => {
                    fresh = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let mut body = ResponseBody::new(lease, answer.body, req.timeout);
            let mut buf = BytesMut::new();
            while let Some(frame) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
            {
                let frame = frame.map_err(|e| FetchError::Body(e.to_string()))?;
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > MAX_BODY {
                        return Err(FetchError::TooLarge);
                    }
                    buf.extend_from_slice(&data);
                }
            }
            return Ok(Fetched {
                status: answer.status,
                headers: answer.headers,
                body: buf.freeze(),
            });
        }
    }

    fn pool(&self, origin: &Origin) -> Result<Arc<Pool>, FetchError> {
        let mut pools = self
            .pools
            .lock()
            .map_err(|_| FetchError::Connect("the fetcher's pools are poisoned".into()))?;
        let key = (origin.tls, origin.authority.clone());
        if let Some(p) = pools.get(&key) {
            return Ok(p.clone());
        }
        let tls = if origin.tls {
            Some(
                Connector::new(self.tls.clone(), &origin.name)
                    .map_err(|e| FetchError::Url(e.to_string()))?,
            )
        } else {
            None
        };
        let pool = Pool::new(
            PoolSettings {
                authority: origin.authority.clone(),
                connect_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                max_idle: CONNECTIONS,
                max_connections: CONNECTIONS,
                tls,
                proxy: None,
                protocol: Protocol::Http1,
                h2_keepalive: Duration::from_secs(30),
            },
            PoolMetrics::default(),
            1,
            self.clock.clone(),
        );
        pools.insert(key, pool.clone());
        Ok(pool)
    }
}

/// Where a URL's requests go.
struct Origin {
    tls: bool,
    /// `host:port` to connect to.
    authority: String,
    /// The `Host` field: as the URL writes it.
    host: String,
    /// The name the server's certificate must carry.
    name: String,
}

impl Origin {
    fn of(url: &Uri) -> Result<Origin, FetchError> {
        let tls = match url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(FetchError::Url(format!("{url}: not an http(s) URL"))),
        };
        let Some(auth) = url.authority() else {
            return Err(FetchError::Url(format!("{url}: no host")));
        };
        let port = auth.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let name = auth.host().trim_start_matches('[').trim_end_matches(']');
        let authority = if name.contains(':') {
            format!("[{name}]:{port}")
        } else {
            format!("{name}:{port}")
        };
        Ok(Origin {
            tls,
            authority,
            host: auth.as_str().to_string(),
            name: name.to_string(),
        })
    }
}

/// A body sent in one frame.
struct Whole(Option<Bytes>);

impl Body for Whole {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.0
                .take()
                .filter(|b| !b.is_empty())
                .map(|b| Ok(http_body::Frame::data(b))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(Bytes::is_empty)
    }
}

#[cfg(test)]
mod tests;
