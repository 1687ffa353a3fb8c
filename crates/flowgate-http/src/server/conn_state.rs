//! Client connections: what state a connection is in, and the deadline on request heads.
//!
//! `limits.header_read_timeout` bounds how long an HTTP/1 connection may wait for a request
//! head: a head that started arriving and did not finish gets a 408; a keep-alive connection
//! that sent nothing is closed quietly. A timer per request head would be registered (and
//! would wake the runtime's driver) for every request; this watchdog is one timer per
//! connection that looks at the connection a few times per timeout, and costs the request
//! path two atomic writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// How many times per timeout the watchdog looks: a head deadline fires between 1 and
/// 1 + 1/`LOOKS` timeouts after the wait began.
const LOOKS: u32 = 4;

/// Shared between the stream, the requests of the connection and its watchdog.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Requests dispatched whose responses are not finished.
    active: AtomicU32,
    /// Changes whenever the connection starts waiting for a head and when a head's first
    /// bytes arrive: the watchdog fires only on a wait it saw for the whole timeout.
    epoch: AtomicU32,
    /// Bytes of a request head arrived since the connection last went idle.
    partial: AtomicBool,
    /// The server is shutting down: finish the request in hand, then close.
    draining: AtomicBool,
}

impl ConnState {
    /// Whether a 408 is owed: bytes of a head arrived and the head is not complete.
    pub fn is_partial(&self) -> bool {
        self.partial.load(Ordering::Relaxed)
    }

    /// Whether the connection waits for a request with nothing of it received.
    pub fn is_idle(&self) -> bool {
        self.active.load(Ordering::Relaxed) == 0 && !self.is_partial()
    }

    /// Asks the connection to close after the request in hand.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks a request dispatched; the connection is busy until its response is written
    /// (the guard is dropped then).
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.partial.store(false, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Notes that bytes of a request head arrived.
    pub fn on_read(&self) {
        if self.active.load(Ordering::Relaxed) == 0 && !self.partial.load(Ordering::Relaxed) {
            self.partial.store(true, Ordering::Relaxed);
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Resolves once an HTTP/1 connection has waited `timeout` for a request head, with
    /// whether part of the head had arrived. Never resolves while a request is being served.
    /// (HTTP/2 connections have no head deadline: the listener stops watching them.)
    pub async fn head_deadline(&self, timeout: Duration) -> bool {
        let mut looks = tokio::time::interval((timeout / LOOKS).max(Duration::from_millis(1)));
        looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        looks.tick().await; // the first tick is immediate
        let mut seen: Option<u32> = None;
        let mut count = 0;
        loop {
            looks.tick().await;
            if self.active.load(Ordering::Relaxed) > 0 {
                seen = None;
                continue;
            }
            let epoch = self.epoch.load(Ordering::Relaxed);
            if seen == Some(epoch) {
                count += 1;
                // Seen at LOOKS + 1 looks in a row: the wait began at least LOOKS
                // intervals ago.
                if count > LOOKS {
                    return self.is_partial();
                }
            } else {
                seen = Some(epoch);
                count = 1;
            }
        }
    }
}

/// A request being served on a connection.
#[derive(Debug)]
pub struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        let s = &self.0;
        s.active.fetch_sub(1, Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline(state: &Arc<ConnState>) -> tokio::task::JoinHandle<bool> {
        let s = state.clone();
        tokio::spawn(async move { s.head_deadline(Duration::from_secs(8)).await })
    }

    /// Moves paused time on by `secs` and a millisecond, so that timers due at the end ran.
    async fn advance(secs: u64) {
        tokio::time::sleep(Duration::from_millis(secs * 1000 + 1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_time_out_quietly_within_a_quarter_over() {
        let state = Arc::new(ConnState::default());
        let dl = deadline(&state);
        advance(7).await;
        assert!(!dl.is_finished());
        advance(3).await;
        assert!(dl.is_finished());
        assert!(!dl.await.unwrap(), "nothing arrived: no 408");
    }

    #[tokio::test(start_paused = true)]
    async fn partial_heads_owe_a_408_and_busy_connections_never_time_out() {
        let state = Arc::new(ConnState::default());
        let dl = deadline(&state);
        advance(5).await;
        state.on_read();
        // The wait restarts with the first bytes: 5 s + 8 s.
        advance(7).await;
        assert!(!dl.is_finished());
        let busy = state.begin();
        // A response that streams for a minute keeps the connection.
        advance(60).await;
        assert!(!dl.is_finished());
        drop(busy);
        advance(9).await;
        assert!(!dl.await.unwrap());
        let dl = deadline(&state);
        state.on_read();
        advance(11).await;
        assert!(dl.await.unwrap(), "a head began: 408");
    }
}
