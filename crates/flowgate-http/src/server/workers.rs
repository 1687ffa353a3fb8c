//! The data-plane worker threads: one listener socket each on the data address
//! (`SO_REUSEPORT`: the kernel spreads connections over the sockets), each served by a
//! single-threaded tokio runtime on a thread of its own ([`crate::worker`]). The control
//! plane (admin API, reloads, telemetry tick, idle reapers) runs on the caller's runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{oneshot, watch};

use super::Service;

/// Binds `n` listener sockets on `addr` with `SO_REUSEPORT` (port 0: one free port, shared
/// by all of them) and returns the address they listen on.
pub fn bind(
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
pub struct Workers {
    done: Vec<oneshot::Receiver<()>>,
}

/// Starts one worker per listener; each serves until `stop` turns true, then drains.
pub fn start<S: Service>(
    svc: &Arc<S>,
    listeners: Vec<std::net::TcpListener>,
    stop: &watch::Receiver<bool>,
) -> std::io::Result<Workers> {
    let mut done = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        let svc = svc.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("flowgate-worker-{i}"))
            .spawn(move || {
                run(i, svc, listener, stop);
                let _ = tx.send(());
            })?;
        done.push(rx);
    }
    Ok(Workers { done })
}

fn run<S: Service>(
    slot: usize,
    svc: Arc<S>,
    listener: std::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    crate::worker::become_worker(slot);
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
        tokio::spawn(timer_floor(slot));
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                super::serve(svc, listener, stopped).await;
            }
            Err(e) => tracing::error!(worker = slot, error = %e, "cannot register the listener"),
        }
    });
}

/// Keeps a timer due within [`TIMER_FLOOR`] on the worker's runtime, for good, and
/// measures the worker's event-loop lag with it: how much later than due it fires (time
/// the loop spent on other work before it could run a ready task).
///
/// tokio wakes its I/O driver (an eventfd write and an extra `epoll_wait`) whenever a timer
/// is registered that is due before every other one, even on a current-thread runtime that
/// is busy running tasks and so cannot be parked (tokio-rs/tokio#5207). Each request arms
/// such timers (the header-read, request and body read timeouts), so without this one in
/// four requests paid that wake-up. With a timer always due within 100 ms, the per-request
/// timers (whose timeouts are longer) never come first. It costs ten wake-ups a second.
async fn timer_floor(slot: usize) {
    let lag = LAG_MICROS.get(slot);
    WORKERS.fetch_max(slot + 1, Ordering::Relaxed);
    use flowgate_clock::Clock;
    let clock = flowgate_clock::SystemClock;
    let mut last = clock.now();
    loop {
        tokio::time::sleep(TIMER_FLOOR).await;
        let now = clock.now();
        let late = now.duration_since(last).saturating_sub(TIMER_FLOOR);
        if let Some(l) = lag {
            l.store(late.as_micros() as u64, Ordering::Relaxed);
        }
        last = now;
    }
}

const TIMER_FLOOR: Duration = Duration::from_millis(100);

/// Workers whose lag is kept (the config allows 256).
const MAX_LAGS: usize = 256;
/// Each worker's last event-loop lag, in microseconds, by slot.
static LAG_MICROS: [AtomicU64; MAX_LAGS] = [const { AtomicU64::new(0) }; MAX_LAGS];
/// Slots started so far (the highest, plus one).
static WORKERS: AtomicUsize = AtomicUsize::new(0);

/// Each started worker's event-loop lag, by slot, as last measured (every 100 ms): how
/// late a timer due then fired.
pub fn event_loop_lags() -> Vec<Duration> {
    LAG_MICROS[..WORKERS.load(Ordering::Relaxed).min(MAX_LAGS)]
        .iter()
        .map(|l| Duration::from_micros(l.load(Ordering::Relaxed)))
        .collect()
}

impl Workers {
    /// Waits until every worker has drained and stopped.
    pub async fn wait(self) {
        for rx in self.done {
            let _ = rx.await;
        }
    }
}
