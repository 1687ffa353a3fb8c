//! The data-plane listener: accepts connections (TLS first when the service has it),
//! serves HTTP/1.1 itself (`h1`) and HTTP/2 through hyper (`h2`: h2c by prior knowledge,
//! or h2 by ALPN), with the configured limits, and drains gracefully on shutdown. What a
//! request gets is up to the [`Service`] it serves.

mod body;
mod caps;
mod client_io;
mod conn_state;
mod h1;
mod h2;
mod service;
pub mod workers;

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub use body::{BodyTimeout, ClientBody, H2Body, Incoming};
pub use caps::Connections;
pub use service::{HeadError, Limits, Peer, Service, Settings};

/// The request-head parser, for the fuzzing entry points.
pub(crate) fn parse_for_fuzzing(
    buf: &mut bytes::BytesMut,
    limits: &Limits,
    names: &mut crate::fields::Names,
) -> Result<Option<http::Request<()>>, HeadError> {
    h1::parse(buf, limits, names).map(|h| h.map(|h| h.into_request()))
}

use client_io::ClientIo;
use conn_state::ConnState;

/// Serves the data plane on `listener` until `shutdown` resolves, then stops accepting and
/// gives in-flight requests the configured drain time to finish.
pub async fn serve<S: Service>(
    svc: Arc<S>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    // Each connection holds a receiver: the count of receivers is the count of connections,
    // and the sender's `closed` resolves when the last one ends.
    let (stop, _) = watch::channel(false);
    let accepted = svc.accepted_counter(crate::worker::current().unwrap_or(0));
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, peer)) => {
                    accepted.inc();
                    let s = svc.settings();
                    match svc.connections().admit(peer.ip(), s.max_connections, s.max_connections_per_address) {
                        Some(slot) => serve_conn(&svc, stream, peer, slot, stop.subscribe()),
                        // Over a cap: closed at once (a reset, not an answer: nothing was read).
                        None => {
                            svc.on_refused_connection();
                            drop(stream);
                        }
                    }
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
    svc.on_drain();
    let drain = svc.settings().drain_timeout;
    tracing::info!(connections = stop.receiver_count(), "draining");
    let _ = stop.send(true);
    tokio::select! {
        () = stop.closed() => tracing::info!("drained"),
        () = tokio::time::sleep(drain) => tracing::warn!("drain deadline passed; closing remaining connections"),
    }
}

fn serve_conn<S: Service>(
    svc: &Arc<S>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: caps::Admitted,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Settings { limits, http2, .. } = svc.settings();
    let tls = svc.tls();
    let svc = svc.clone();
    tokio::spawn(async move {
        // Counted against the caps until the connection's task ends.
        let _slot = slot;
        let mut stop = stop;
        let peer = Peer::new(peer);
        let (io, peer) = match tls {
            None => (ClientIo::Plain(stream), peer),
            Some(config) => {
                let timeout = limits.header_read_timeout;
                let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                let tls = tokio::select! {
                    r = tokio::time::timeout(timeout, accept) => r,
                    () = stopped(&mut stop) => return,
                };
                let tls = match tls {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => return svc.on_handshake_failed(crate::tls::classify(&e).reason),
                    Err(_) => return svc.on_handshake_failed("timeout"),
                };
                let peer = peer.over_tls();
                if http2 && tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    return h2::serve(svc, tls, peer, limits, stop).await;
                }
                (ClientIo::tls(tls), peer)
            }
        };
        let io = Arc::new(io);
        let state = Arc::new(ConnState::default());
        // The watchdog is a task of its own: the connection's task polls nothing but the
        // connection, however often it wakes.
        let watchdog = tokio::spawn(watch(
            svc.clone(),
            Arc::downgrade(&io),
            state.clone(),
            limits.header_read_timeout,
            stop.clone(),
        ));
        let mut conn = h1::Conn::new(io.clone(), state, peer.clone(), svc.clone(), limits, http2);
        let ended = conn.serve().await;
        watchdog.abort();
        drop(conn);
        // An HTTP/2 preface (prior knowledge) on a connection that began as HTTP/1.1.
        if let h1::Ended::Http2(start) = ended
            && let Ok(io) = Arc::try_unwrap(io)
        {
            let start = start.freeze();
            match io {
                ClientIo::Plain(s) => {
                    h2::serve(svc, h2::Rewind::new(start, s), peer, limits, stop).await
                }
                ClientIo::Tls(m) => {
                    let s = *m.into_inner().unwrap_or_else(PoisonError::into_inner);
                    h2::serve(svc, h2::Rewind::new(start, s), peer, limits, stop).await;
                }
            }
        }
    });
}

/// Ends an HTTP/1.1 connection that waited too long for a request head (with a 408 when part
/// of one arrived), or that is idle when the server stops; a busy one is told to close after
/// its answer. Closing is a shutdown of the socket: the connection's task then reads its end.
async fn watch<S: Service>(
    svc: Arc<S>,
    io: Weak<ClientIo>,
    state: Arc<ConnState>,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        partial = state.head_deadline(timeout) => {
            let Some(io) = io.upgrade() else { return };
            if partial {
                let resp = svc.refuse(&HeadError::Timeout(timeout));
                if let Some(answer) = h1::encode_whole(resp, svc.clock()) {
                    let mut bufs = [io::IoSlice::new(&answer)];
                    let _ = tokio::time::timeout(timeout, io.write_all(&mut bufs, timeout)).await;
                }
            }
            io.shutdown(Shutdown::Both);
        }
        () = stopped(&mut stop) => {
            state.drain();
            if state.is_idle() && let Some(io) = io.upgrade() {
                io.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Resolves once the server stops (or is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
