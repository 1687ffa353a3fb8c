//! An upstream answer's body, decoded straight off its pooled connection frame by frame as
//! bytes arrive (server-sent events are passed on chunk by chunk), with a read timeout
//! between frames. When the body ends, the connection goes back to its pool; when it fails
//! or is dropped unfinished, the connection is closed.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::Lease;
use crate::BoxError;
use crate::chunked::Decoder;
use crate::deadline::Deadline;

/// The upstream sent nothing for longer than the read timeout.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent nothing for {}", flowgate_clock::format_duration(*.0))]
pub struct ReadTimeout(pub Duration);

/// The body of an answer being read on a leased connection.
#[derive(Debug)]
pub struct ResponseBody {
    lease: Option<Lease>,
    decoder: Decoder,
    keep_alive: bool,
    /// The read timeout between frames.
    deadline: Deadline,
}

impl ResponseBody {
    /// Streams the body of the answer being read on `lease`'s connection, framed as
    /// `decoder` says; the connection is returned to the pool at the end when `keep_alive`
    /// (at once when the answer has no body).
    pub fn new(lease: Lease, decoder: Decoder, keep_alive: bool, read_timeout: Duration) -> Self {
        let mut body = ResponseBody {
            lease: Some(lease),
            decoder,
            keep_alive,
            deadline: Deadline::new(read_timeout),
        };
        if body.decoder.is_done() {
            body.release();
        }
        body
    }

    /// The body is complete: the connection goes back to the pool.
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release(self.keep_alive);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(wire) = this.lease.as_mut().and_then(Lease::wire) else {
            return Poll::Ready(None);
        };
        match wire.poll_body(&mut this.decoder, cx) {
            Poll::Ready(Some(Ok(data))) => {
                this.deadline.progressed();
                if this.decoder.is_done() {
                    this.release();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => {
                // The connection is closed, not reused.
                this.lease = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                this.release();
                Poll::Ready(None)
            }
            Poll::Pending => match this.deadline.poll(cx) {
                Poll::Ready(()) => {
                    this.lease = None;
                    Poll::Ready(Some(Err(Box::new(ReadTimeout(this.deadline.timeout())))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder
            .remaining()
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
