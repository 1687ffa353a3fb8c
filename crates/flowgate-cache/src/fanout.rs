//! Fan-out of one upstream stream to every client asking the same thing.
//!
//! The leader of a flight whose answer is a stream publishes a [`Share`]; the bytes read
//! from upstream are pushed into it once and reach every [`Subscription`] chunk by chunk, in
//! the upstream's own chunking. A client joining mid-stream first gets what it missed: the
//! share keeps the chunks so far, up to a byte bound past which it stops taking new
//! subscribers (those go upstream themselves) while the ones it has keep streaming. A slow
//! subscriber never slows the others: chunks are reference-counted and queued per
//! subscriber, and one that falls more than the same byte bound behind is cut off (its
//! stream ends as a cut one) rather than queueing without end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
    subscribers: Vec<Subscriber>,
}

/// A subscriber's queue, and the bytes waiting in it.
#[derive(Debug)]
struct Subscriber {
    tx: mpsc::UnboundedSender<Item>,
    queued: Arc<AtomicUsize>,
}

impl Subscriber {
    /// Queues `chunk`; `false` when the subscriber is gone, or would be more than `limit`
    /// bytes behind (then it is told the stream was cut).
    fn send(&self, chunk: &Bytes, limit: usize) -> bool {
        if self.queued.load(Ordering::Relaxed) + chunk.len() > limit {
            let _ = self.tx.send(Err(StreamCut));
            return false;
        }
        self.queued.fetch_add(chunk.len(), Ordering::Relaxed);
        self.tx.send(Ok(chunk.clone())).is_ok()
    }
}

/// One client's view of a [`Share`]: the stream from its first byte.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<Item>,
    queued: Arc<AtomicUsize>,
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
        let sub = Subscriber {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
        };
        // The backlog is within the bound (else the share is not joinable).
        for chunk in &s.backlog {
            sub.send(chunk, usize::MAX);
        }
        let queued = sub.queued.clone();
        match s.end {
            Some(Ok(())) => {}
            Some(Err(cut)) => _ = sub.tx.send(Err(cut)),
            None => s.subscribers.push(sub),
        }
        Some(Subscription { rx, queued })
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
        // Subscribers that went away, or fell too far behind, are dropped here.
        let limit = s.backlog_limit;
        s.subscribers.retain(|sub| sub.send(&chunk, limit));
    }

    /// The stream is complete (`Ok`) or was cut: every subscriber's stream ends so.
    pub fn end(&self, how: Result<(), StreamCut>) {
        let mut s = self.lock();
        if s.end.is_some() {
            return;
        }
        s.end = Some(how);
        for sub in std::mem::take(&mut s.subscribers) {
            if let Err(cut) = how {
                let _ = sub.tx.send(Err(cut));
            }
        }
    }

    /// Subscribers still listening.
    pub fn listeners(&self) -> usize {
        let mut s = self.lock();
        s.subscribers.retain(|sub| !sub.tx.is_closed());
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
        let item = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(b))) = &item {
            self.queued.fetch_sub(b.len(), Ordering::Relaxed);
        }
        item
    }

    /// The next chunk (see [`Subscription::poll_next`]).
    pub async fn next(&mut self) -> Option<Item> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
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
        let mut early = share.subscribe().unwrap();
        let mut got = Vec::new();
        share.push(Bytes::from_static(b"ab"));
        assert!(share.joinable());
        got.extend_from_slice(&early.next().await.unwrap().unwrap());
        share.push(Bytes::from_static(b"cd"));
        assert!(!share.joinable());
        assert!(share.subscribe().is_none());
        got.extend_from_slice(&early.next().await.unwrap().unwrap());
        share.push(Bytes::from_static(b"e"));
        share.end(Ok(()));
        let (rest, end) = drain(early).await;
        got.extend_from_slice(&rest);
        assert_eq!((got, end), (b"abcde".to_vec(), None));
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_too_far_behind_is_cut_and_the_others_go_on() {
        let share = Share::new(vec![], 4);
        let mut reader = share.subscribe().unwrap();
        let idle = share.subscribe().unwrap();
        let mut got = Vec::new();
        for chunk in [&b"ab"[..], b"cd", b"ef", b"gh"] {
            share.push(Bytes::copy_from_slice(chunk));
            // The reader keeps up; the idle one never reads.
            got.extend_from_slice(&reader.next().await.unwrap().unwrap());
        }
        share.end(Ok(()));
        assert_eq!(got, b"abcdefgh");
        assert!(reader.next().await.is_none());
        assert_eq!(
            drain(idle).await,
            (b"abcd".to_vec(), Some(StreamCut)),
            "4 bytes behind at most, then cut"
        );
        assert_eq!(share.listeners(), 0);
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
