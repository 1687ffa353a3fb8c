//! Request bodies as the listener hands them over: [`ClientBody`], whole when the body
//! came with its head, else read off the connection as it is polled ([`Incoming`]), or an
//! HTTP/2 stream's.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use super::client_io::ClientIo;
use crate::BoxError;
use crate::chunked::{Decoder, Step};
use crate::deadline::Deadline;

/// The read buffer of a connection, and how much room a read wants.
pub(super) const BUF: usize = 8 * 1024;
pub(super) const MIN_ROOM: usize = 2 * 1024;

/// A request body as the listener hands it over.
#[derive(Debug)]
pub enum ClientBody {
    /// All of it (or nothing), read with the head: most request bodies.
    Full(Option<Bytes>),
    /// The rest of an HTTP/1.1 body, read off the connection as it is polled.
    H1(Incoming),
    /// An HTTP/2 stream's body.
    H2(H2Body),
}

/// An HTTP/2 request body, with the same longest gap between two pieces as an HTTP/1.1 one.
#[derive(Debug)]
pub struct H2Body {
    body: hyper::body::Incoming,
    deadline: Deadline,
}

impl H2Body {
    pub(super) fn new(body: hyper::body::Incoming, timeout: Duration) -> Self {
        H2Body {
            body,
            deadline: Deadline::new(timeout),
        }
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline.progressed();
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.deadline.poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Some(Err(Box::new(BodyTimeout(this.deadline.timeout())))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ClientBody::H1(b) => Pin::new(b).poll_frame(cx),
            ClientBody::H2(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Full(b) => b.is_none(),
            ClientBody::H1(b) => b.is_end_stream(),
            ClientBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ClientBody::H1(b) => b.size_hint(),
            ClientBody::H2(b) => b.size_hint(),
        }
    }
}

/// The rest of a request body, read off the client connection as the gateway polls it.
#[derive(Debug)]
pub struct Incoming {
    stream: Arc<ClientIo>,
    shared: Arc<Mutex<Reading>>,
    /// Longest gap between two pieces of the body.
    deadline: Deadline,
}

/// The client sent nothing of its body for longer than the body read timeout.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing of its request body for {}", flowgate_clock::format_duration(*.0))]
pub struct BodyTimeout(pub Duration);

/// The connection's buffer while a body has it.
#[derive(Debug)]
pub(super) struct Reading {
    pub(super) buf: BytesMut,
    pub(super) decoder: Decoder,
    /// `Expect: 100-continue` is owed before the first read.
    pub(super) continue_owed: bool,
    /// How much of the `100 Continue` went out.
    pub(super) continue_sent: usize,
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Incoming {
    pub(super) fn new(stream: Arc<ClientIo>, reading: Reading, timeout: Duration) -> Self {
        Incoming {
            stream,
            shared: Arc::new(Mutex::new(reading)),
            deadline: Deadline::new(timeout),
        }
    }

    /// The connection's buffer: the connection takes it back when the body is done.
    pub(super) fn shared(&self) -> Arc<Mutex<Reading>> {
        self.shared.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Body for Incoming {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let stream = &this.stream;
        let mut guard = this.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let r = &mut *guard;
        loop {
            match r.decoder.step(&mut r.buf) {
                Step::Data(b) => {
                    this.deadline.progressed();
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Step::End => return Poll::Ready(None),
                Step::Error(e) => return Poll::Ready(Some(Err(e.into()))),
                Step::NeedMore => {}
            }
            if r.continue_owed {
                let sent = &mut r.continue_sent;
                if let Err(e) = ready!(stream.poll_send(cx, CONTINUE, sent)) {
                    return Poll::Ready(Some(Err(e.into())));
                }
                r.continue_owed = false;
            }
            if r.buf.capacity() - r.buf.len() < MIN_ROOM {
                r.buf.reserve(BUF);
            }
            match stream.poll_read_some(cx, &mut r.buf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Some(Err(
                        "the client closed the connection before the end of the body".into(),
                    )));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Pending => {
                    return match this.deadline.poll(cx) {
                        Poll::Ready(()) => {
                            Poll::Ready(Some(Err(Box::new(BodyTimeout(this.deadline.timeout())))))
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.lock().decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.lock()
            .decoder
            .remaining()
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
