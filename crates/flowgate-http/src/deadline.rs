//! A deadline that moves with progress: `timeout` after the last piece of a body, read or
//! written. Made on the first wait (a body that never waits never registers a timer) and
//! pushed back only before a wait that follows progress.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

#[derive(Debug)]
pub(crate) struct Deadline {
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// Progress was made since the timer was last set.
    stale: bool,
}

impl Deadline {
    pub(crate) fn new(timeout: Duration) -> Self {
        Deadline {
            timeout,
            timer: None,
            stale: false,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Progress was made: the next wait starts a full timeout.
    pub(crate) fn progressed(&mut self) {
        self.stale = true;
    }

    /// Ready once `timeout` passed with no progress.
    #[allow(clippy::disallowed_methods)] // timers follow tokio's clock (paused in tests)
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timer = match &mut self.timer {
            Some(t) => {
                if self.stale {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.stale = false;
        timer.as_mut().poll(cx)
    }
}
