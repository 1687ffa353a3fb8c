//! The data-plane listener: accepts connections, serves HTTP/1.1 and h2c with the configured
//! limits, and drains gracefully on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use flowgate_config::Limits;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::error::request_timeout_http1;
use crate::gateway::Gateway;
use crate::headers::Peer;
use crate::io::{ConnState, WatchedStream};

/// Builds the connection settings for `limits`. hyper itself refuses heads beyond twice the
/// configured size (a bare 431, its own hard stop); between the two limits the gateway
/// answers with a JSON 431 that says which limit was hit. The head deadline is the
/// connection's watchdog ([`ConnState::head_deadline`]), not hyper's per-request timer.
fn conn_builder(limits: &Limits, http2: bool) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size((limits.max_header_bytes * 2).max(8192))
        .max_headers(limits.max_headers * 2);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes * 2).unwrap_or(u32::MAX));
    if http2 { b } else { b.http1_only() }
}

/// Serves the data plane on `listener` until `shutdown` resolves, then stops accepting and
/// gives in-flight requests the configured drain time to finish.
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let accepted = gw
        .telemetry()
        .metrics()
        .worker_connections(crate::worker::current().unwrap_or(0));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, peer)) => {
                    accepted.inc();
                    serve_conn(&gw, &graceful, stream, peer);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    gw.set_draining();
    let drain = gw.runtime().config.server.drain_timeout;
    let open = graceful.count();
    tracing::info!(connections = open, "draining");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("drained"),
        () = tokio::time::sleep(drain) => tracing::warn!("drain deadline passed; closing remaining connections"),
    }
}

fn serve_conn(gw: &Arc<Gateway>, graceful: &GracefulShutdown, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let rt = gw.runtime();
    let limits = rt.config.limits;
    let builder = conn_builder(&limits, rt.config.server.http2);
    drop(rt);
    // A second handle on the socket, to answer 408 once hyper's is dropped.
    let spare = stream_clone(stream);
    let Some((stream, spare)) = spare else { return };
    let state = Arc::new(ConnState::default());
    let io = TokioIo::new(WatchedStream::new(stream, state.clone()));
    let gw2 = gw.clone();
    let client = Arc::new(Peer::new(peer));
    let conn_state = state.clone();
    let svc = service_fn(move |req| {
        let gw = gw2.clone();
        let client = client.clone();
        let busy = conn_state.begin();
        async move {
            let resp = gw.handle(req, &client).await;
            Ok::<_, Infallible>(resp.map(|b| b.with_busy(busy)))
        }
    });
    let conn = graceful.watch(builder.serve_connection(io, svc).into_owned());
    tokio::spawn(async move {
        tokio::select! {
            _ = conn => {}
            partial = state.head_deadline(limits.header_read_timeout) => {
                if partial {
                    let mut spare = spare;
                    let _ = spare.write_all(&request_timeout_http1(limits.header_read_timeout));
                    let _ = spare.shutdown(std::net::Shutdown::Both);
                }
            }
        }
    });
}

/// Splits a stream into the async stream hyper uses and a std handle on the same socket.
fn stream_clone(stream: TcpStream) -> Option<(TcpStream, std::net::TcpStream)> {
    let std = stream.into_std().ok()?;
    let spare = std.try_clone().ok()?;
    let stream = TcpStream::from_std(std).ok()?;
    Some((stream, spare))
}
