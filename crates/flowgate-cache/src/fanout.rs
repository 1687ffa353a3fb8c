//! Fan-out of one upstream stream to every client asking the same thing.
//!
//! The leader of a flight whose answer is a stream publishes a [`Share`]; the bytes read
//! from upstream are pushed into it once and reach every [`Subscription`] chunk by chunk, in
//! the upstream's own chunking. A client joining mid-stream first gets what it missed: the
//! share keeps the chunks so far, up to a byte bound past which it stops taking new
//! subscribers (those go upstream themselves) while the ones it has keep streaming. A slow
//! subscriber never slows the others: chunks are reference-counted and queued per
//! subscriber.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

/// The upstream stream ended before it was complete.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("the shared upstream stream was cut")]
pub struct StreamCut;

type Item = Result<Bytes, StreamCut>;

/// One upstream stream, shared.
#[derive(Debug)]
pub struct Share {
    /// Response header fields the subscribers repeat (the gateway's choice).
    headers: Vec<(String, Bytes)>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Everything pushed so far, for late subscribers; emptied once over `backlog_limit`.
    backlog: Vec<Bytes>,
    backlog_bytes: usize,
    backlog_limit: usize,
    joinable: bool,
    end: Option<Result<(), StreamCut>>,
    subscribers: Vec<mpsc::UnboundedSender<Item>>,
}

/// One client's view of a [`Share`]: the stream from its first byte.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<Item>,
}

impl Share {
    /// A share that replays up to `backlog_limit` bytes to late subscribers.
    pub fn new(headers: Vec<(String, Bytes)>, backlog_limit: usize) -> Self {
        Share {
            headers,
            state: Mutex::new(State {
                backlog: Vec::new(),
                backlog_bytes: 0,
                backlog_limit,
                joinable: true,
                end: None,
                subscribers: Vec::new(),
            }),
        }
    }

    pub fn headers(&self) -> &[(String, Bytes)] {
        &self.headers
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a new subscriber can still get the whole stream.
    pub fn joinable(&self) -> bool {
        self.lock().joinable
    }

    /// The stream from its start, or `None` once the backlog was given up.
    pub fn subscribe(&self) -> Option<Subscription> {
        let mut s = self.lock();
        if !s.joinable {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for chunk in &s.backlog {
            let _ = tx.send(Ok(chunk.clone()));
        }
        match s.end {
            Some(Ok(())) => {}
            Some(Err(cut)) => _ = tx.send(Err(cut)),
            None => s.subscribers.push(tx),
        }
        Some(Subscription { rx })
    }

    /// The next bytes from upstream.
    pub fn push(&self, chunk: Bytes) {
        let mut s = self.lock();
        if s.joinable {
            s.backlog_bytes += chunk.len();
            if s.backlog_bytes > s.backlog_limit {
                s.joinable = false;
                s.backlog = Vec::new();
            } else {
                s.backlog.push(chunk.clone());
            }
        }
        // Subscribers that went away are dropped here.
        s.subscribers
            .retain(|tx| tx.send(Ok(chunk.clone())).is_ok());
    }

    /// The stream is complete (`Ok`) or was cut: every subscriber's stream ends so.
    pub fn end(&self, how: Result<(), StreamCut>) {
        let mut s = self.lock();
        if s.end.is_some() {
            return;
        }
        s.end = Some(how);
        for tx in std::mem::take(&mut s.subscribers) {
            if let Err(cut) = how {
                let _ = tx.send(Err(cut));
            }
        }
    }

    /// Subscribers still listening.
    pub fn listeners(&self) -> usize {
        let mut s = self.lock();
        s.subscribers.retain(|tx| !tx.is_closed());
        s.subscribers.len()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        // A share dropped before its end (the task feeding it died) cuts its subscribers.
        self.end(Err(StreamCut));
    }
}

impl Subscription {
    /// The next chunk; `None` at the end of a complete stream.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.rx.poll_recv(cx)
    }

    /// The next chunk (see [`Subscription::poll_next`]).
    pub async fn next(&mut self) -> Option<Item> {
        self.rx.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn drain(mut s: Subscription) -> (Vec<u8>, Option<StreamCut>) {
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(cut) => return (out, Some(cut)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn every_subscriber_gets_the_whole_stream_even_when_joining_late() {
        let share = Share::new(vec![], 1024);
        let early = share.subscribe().unwrap();
        share.push(Bytes::from_static(b"ab"));
        let late = share.subscribe().unwrap();
        share.push(Bytes::from_static(b"cd"));
        share.end(Ok(()));
        let after_end = share.subscribe().unwrap();
        for s in [early, late, after_end] {
            assert_eq!(drain(s).await, (b"abcd".to_vec(), None));
        }
    }

    #[tokio::test]
    async fn past_the_backlog_bound_new_subscribers_are_refused_but_old_ones_continue() {
        let share = Share::new(vec![], 3);
        let early = share.subscribe().unwrap();
        share.push(Bytes::from_static(b"ab"));
        assert!(share.joinable());
        share.push(Bytes::from_static(b"cd"));
        assert!(!share.joinable());
        assert!(share.subscribe().is_none());
        share.push(Bytes::from_static(b"e"));
        share.end(Ok(()));
        assert_eq!(drain(early).await, (b"abcde".to_vec(), None));
    }

    #[tokio::test]
    async fn a_cut_or_abandoned_stream_ends_every_subscriber_with_an_error() {
        let share = Share::new(vec![], 1024);
        let a = share.subscribe().unwrap();
        share.push(Bytes::from_static(b"x"));
        share.end(Err(StreamCut));
        assert_eq!(drain(a).await, (b"x".to_vec(), Some(StreamCut)));
        let late = share.subscribe().unwrap();
        assert_eq!(drain(late).await, (b"x".to_vec(), Some(StreamCut)));

        let share = Share::new(vec![], 1024);
        let b = share.subscribe().unwrap();
        let gone = share.subscribe().unwrap();
        drop(gone);
        assert_eq!(share.listeners(), 1);
        drop(share);
        assert_eq!(drain(b).await, (vec![], Some(StreamCut)));
    }
}
