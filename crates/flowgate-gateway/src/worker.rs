//! The thread-per-core data plane (docs/decisions/2026-11-22-thread-per-core.md).
//!
//! Each worker is an OS thread running a single-threaded tokio runtime with its own
//! listener socket on the data address (`SO_REUSEPORT`: the kernel spreads connections over
//! the sockets). A connection, its requests, the upstream connections they use and the
//! tasks that drive those connections all live on one thread, so a request is served
//! without cross-thread wake-ups. The control plane (admin API, reloads, telemetry tick,
//! idle reapers) runs on the caller's runtime.

use std::cell::Cell;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use flowgate_config::Config;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{oneshot, watch};

use crate::gateway::Gateway;

thread_local! {
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
    static SERVING: Cell<u32> = const { Cell::new(0) };
}

/// Marks a request as being served on this thread, from its arrival until its answer's
/// head is ready (dropped then).
///
/// The count tells an attempt whether to hold its upstream write back for the rest of the
/// event loop's turn (docs/decisions/2026-11-23-yield-only-with-company.md). A request
/// whose future moved to another thread (only possible off the workers, on a multi-thread
/// runtime) leaves the count too high on one thread and never below zero on the other:
/// that thread then always yields, as every request did before the count existed.
#[derive(Debug)]
pub(crate) struct Serving(());

impl Serving {
    pub(crate) fn enter() -> Serving {
        SERVING.with(|c| c.set(c.get().saturating_add(1)));
        Serving(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        SERVING.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Whether requests other than the caller's are being served on this thread.
pub(crate) fn serving_others() -> bool {
    SERVING.with(Cell::get) > 1
}

/// The index of the worker running on this thread, if this is a worker thread.
pub fn current() -> Option<usize> {
    SLOT.with(Cell::get)
}

/// How many workers `config` asks for: `server.workers`, or one per CPU core.
pub fn count(config: &Config) -> usize {
    config.server.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        NonZeroUsize::get,
    )
}

/// Binds `n` listener sockets on `addr` with `SO_REUSEPORT` (port 0: one free port, shared
/// by all of them) and returns the address they listen on.
pub(crate) fn bind(
    addr: SocketAddr,
    n: usize,
) -> std::io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let annotate =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
    let first = listener(addr).map_err(annotate)?;
    let bound = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..n {
        all.push(listener(bound).map_err(annotate)?);
    }
    Ok((bound, all))
}

fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// The running workers.
#[derive(Debug)]
pub(crate) struct Workers {
    done: Vec<oneshot::Receiver<()>>,
}

/// Starts one worker per listener; each serves until `stop` turns true, then drains.
pub(crate) fn start(
    gw: &Arc<Gateway>,
    listeners: Vec<std::net::TcpListener>,
    stop: &watch::Receiver<bool>,
) -> std::io::Result<Workers> {
    let mut done = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        let gw = gw.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("flowgate-worker-{i}"))
            .spawn(move || {
                run(i, gw, listener, stop);
                let _ = tx.send(());
            })?;
        done.push(rx);
    }
    Ok(Workers { done })
}

fn run(
    slot: usize,
    gw: Arc<Gateway>,
    listener: std::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    SLOT.set(Some(slot));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = slot, error = %e, "cannot start a worker runtime");
            return;
        }
    };
    rt.block_on(async move {
        tokio::spawn(timer_floor());
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                crate::server::serve(gw, listener, stopped).await;
            }
            Err(e) => tracing::error!(worker = slot, error = %e, "cannot register the listener"),
        }
    });
}

/// Keeps a timer due within [`TIMER_FLOOR`] on the worker's runtime, for good.
///
/// tokio wakes its I/O driver (an eventfd write and an extra `epoll_wait`) whenever a timer
/// is registered that is due before every other one, even on a current-thread runtime that
/// is busy running tasks and so cannot be parked (tokio-rs/tokio#5207). Each request arms
/// such timers (the header-read, request and body read timeouts), so without this one in
/// four requests paid that wake-up. With a timer always due within 100 ms, the per-request
/// timers (whose timeouts are longer) never come first. It costs ten wake-ups a second.
async fn timer_floor() {
    loop {
        tokio::time::sleep(TIMER_FLOOR).await;
    }
}

const TIMER_FLOOR: std::time::Duration = std::time::Duration::from_millis(100);

impl Workers {
    /// Waits until every worker has drained and stopped.
    pub(crate) async fn wait(self) {
        for rx in self.done {
            let _ = rx.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_alone_has_no_company_and_two_have() {
        assert!(!serving_others());
        let a = Serving::enter();
        assert!(!serving_others(), "the caller's own request is not company");
        let b = Serving::enter();
        assert!(serving_others());
        drop(a);
        assert!(!serving_others());
        drop(b);
        assert_eq!(SERVING.with(Cell::get), 0);
        // A count that went to another thread never takes this one below zero.
        drop(Serving(()));
        assert_eq!(SERVING.with(Cell::get), 0);
    }
}
