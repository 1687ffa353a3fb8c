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
use crate::client::ResponseFraming;
use crate::deadline::Deadline;

/// The upstream sent nothing for longer than the read timeout.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent nothing for {}", flowgate_clock::format_duration(*.0))]
pub struct ReadTimeout(pub Duration);

/// The body of an answer being read on a leased connection (or HTTP/2 stream).
#[derive(Debug)]
pub struct ResponseBody {
    lease: Option<Lease>,
    framing: ResponseFraming,
    /// The read timeout between frames.
    deadline: Deadline,
}

impl ResponseBody {
    /// Streams the body of the answer being read on `lease`, framed as `framing` says; the
    /// connection is returned to the pool at the end (at once when the answer has no body).
    pub fn new(lease: Lease, framing: ResponseFraming, read_timeout: Duration) -> Self {
        let mut body = ResponseBody {
            lease: Some(lease),
            framing,
            deadline: Deadline::new(read_timeout),
        };
        if body.framing.is_done() {
            body.release();
        }
        body
    }

    /// The body is complete: the connection goes back to the pool.
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            let keep_alive = match &self.framing {
                ResponseFraming::H1 { keep_alive, .. } => *keep_alive,
                ResponseFraming::H2(_) => true,
            };
            lease.release(keep_alive);
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
        let Some(lease) = this.lease.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = match &mut this.framing {
            ResponseFraming::H1 { decoder, .. } => match lease.wire() {
                Some(wire) => wire.poll_body(decoder, cx),
                None => return Poll::Ready(None),
            },
            ResponseFraming::H2(recv) => crate::client::h2::poll_body(recv, cx),
        };
        match polled {
            Poll::Ready(Some(Ok(data))) => {
                this.deadline.progressed();
                if this.framing.is_done() {
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
        self.framing.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.framing {
            ResponseFraming::H1 { decoder, .. } => decoder
                .remaining()
                .map_or_else(SizeHint::default, SizeHint::with_exact),
            ResponseFraming::H2(_) => SizeHint::default(),
        }
    }
}
