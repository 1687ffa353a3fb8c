//! An HTTP/2 upstream for the tests (hyper's server): over TLS with ALPN `h2`, or h2c. It
//! counts its connections and requests, records the version each request came in, and can
//! cap the streams per connection, say GOAWAY after some requests on a connection, wait
//! before answering, or stream its answer in timed chunks.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, Version};
use http_body::{Body, Frame};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

use super::loopback;
use super::tls::{Issued, leaf};

/// What the upstream does.
#[derive(Default, Clone)]
pub struct H2Options {
    /// Serve TLS with this certificate (ALPN `h2` only); else h2c.
    pub tls: Option<Issued>,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_streams: Option<u32>,
    /// Say GOAWAY (gracefully) once a connection has received this many requests.
    pub goaway_after: Option<usize>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Answer with this many SSE chunks, this far apart, instead of one JSON body.
    pub chunks: Option<(usize, Duration)>,
}

pub struct H2Upstream {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    pub versions: Arc<Mutex<Vec<Version>>>,
    /// Requests being answered now, and the most at once.
    pub in_flight: Arc<AtomicUsize>,
    pub most_in_flight: Arc<AtomicUsize>,
}

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

impl H2Upstream {
    pub async fn start(opts: H2Options) -> Self {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = H2Upstream {
            addr,
            connections: Arc::default(),
            requests: Arc::default(),
            versions: Arc::default(),
            in_flight: Arc::default(),
            most_in_flight: Arc::default(),
        };
        let acceptor = opts.tls.as_ref().map(|id| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![leaf(&id.cert)],
                    PrivateKeyDer::from_pem_file(&id.key).unwrap(),
                )
                .unwrap();
            config.alpn_protocols = vec![b"h2".to_vec()];
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let (conns, reqs, versions, in_flight, most) = (
            up.connections.clone(),
            up.requests.clone(),
            up.versions.clone(),
            up.in_flight.clone(),
            up.most_in_flight.clone(),
        );
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let opts = opts.clone();
                let acceptor = acceptor.clone();
                let (reqs, versions, in_flight, most) = (
                    reqs.clone(),
                    versions.clone(),
                    in_flight.clone(),
                    most.clone(),
                );
                tokio::spawn(async move {
                    let on_conn = Arc::new(AtomicUsize::new(0));
                    let goaway = Arc::new(Notify::new());
                    let (o, on, ga) = (opts.clone(), on_conn.clone(), goaway.clone());
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (o, on, ga) = (o.clone(), on.clone(), ga.clone());
                        let (reqs, versions, in_flight, most) = (
                            reqs.clone(),
                            versions.clone(),
                            in_flight.clone(),
                            most.clone(),
                        );
                        async move {
                            reqs.fetch_add(1, Ordering::SeqCst);
                            versions.lock().unwrap().push(req.version());
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            if o.goaway_after
                                .is_some_and(|n| on.fetch_add(1, Ordering::SeqCst) + 1 == n)
                            {
                                ga.notify_one();
                            }
                            tokio::time::sleep(o.delay).await;
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(answer(o.chunks))
                        }
                    });
                    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    b.timer(TokioTimer::new());
                    if let Some(n) = opts.max_streams {
                        b.max_concurrent_streams(n);
                    }
                    match acceptor {
                        Some(a) => {
                            let Ok(tls) = a.accept(tcp).await else { return };
                            serve(b, TokioIo::new(tls), svc, goaway).await;
                        }
                        None => serve(b, TokioIo::new(tcp), svc, goaway).await,
                    }
                });
            }
        });
        up
    }

    pub fn url(&self, scheme: &str, host: &str) -> String {
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve<I, S>(
    b: hyper::server::conn::http2::Builder<TokioExecutor>,
    io: I,
    svc: S,
    goaway: Arc<Notify>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = ChunkBody> + Send + 'static,
    S::Future: Send + 'static,
{
    let mut conn = pin!(b.serve_connection(io, svc));
    tokio::select! {
        _ = conn.as_mut() => return,
        () = goaway.notified() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

fn answer(chunks: Option<(usize, Duration)>) -> Response<ChunkBody> {
    let (tx, rx) = mpsc::channel(16);
    let mut resp = Response::new(ChunkBody(rx));
    match chunks {
        None => {
            resp.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            let _ = tx.try_send(Bytes::from_static(ANSWER.as_bytes()));
        }
        Some((n, gap)) => {
            resp.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            tokio::spawn(async move {
                for i in 0..n {
                    if i > 0 {
                        tokio::time::sleep(gap).await;
                    }
                    let chunk = format!(
                        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{i}\"}}}}]}}\n\n"
                    );
                    if tx.send(Bytes::from(chunk)).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
            });
        }
    }
    resp
}

/// A body fed by a channel, a frame per message.
pub struct ChunkBody(mpsc::Receiver<Bytes>);

impl ChunkBody {
    /// A body and the sender of its pieces (it ends when the sender is dropped).
    pub fn channel() -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(16);
        (tx, ChunkBody(rx))
    }
}

impl Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}
