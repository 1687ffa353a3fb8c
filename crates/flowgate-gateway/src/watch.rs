//! Policies that watch a response body on its way to the client: a [`Watch`] sees each
//! frame of data and the end, and [`Watched`] puts one on any body. The token meter
//! (`admission`), the concurrency permits (`queues`) and the copy into the cache
//! (`caching`) are watches, each defined by its policy, composed where the response is
//! built.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// What watches a body as it passes to the client (see [`Watched`]): a token meter, the
/// concurrency permits, the copy into the cache. Each policy implements it in its own
/// module.
pub trait Watch: Send + std::fmt::Debug {
    /// A frame of data passed; `false` to stop watching (the watch is dropped at once).
    fn data(&mut self, data: &Bytes) -> bool;
    /// The body ended whole. (A body that fails or is dropped early drops the watch.)
    fn end(self: Box<Self>);
}

/// A body with a [`Watch`] on it (boxed: most requests have none of a kind; a call
/// through its vtable per frame costs nothing next to the frame's read).
#[derive(Debug)]
pub struct Watched<B> {
    inner: B,
    watch: Option<Box<dyn Watch>>,
}

impl<B> Watched<B> {
    pub fn new<W: Watch + 'static>(inner: B, watch: Option<Box<W>>) -> Self {
        Watched {
            inner,
            watch: watch.map(|w| w as Box<dyn Watch>),
        }
    }

    /// `inner` with no watch on it (yet).
    pub fn bare(inner: B) -> Self {
        Watched { inner, watch: None }
    }

    /// Puts `watch` on the body (replacing any).
    pub fn set<W: Watch + 'static>(&mut self, watch: Option<Box<W>>) {
        self.watch = watch.map(|w| w as Box<dyn Watch>);
    }
}

impl<B> Body for Watched<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(w) = &mut this.watch {
            match &polled {
                Poll::Ready(Some(Ok(f))) => {
                    if let Some(d) = f.data_ref()
                        && !w.data(d)
                    {
                        this.watch = None;
                    } else if this.inner.is_end_stream()
                        && let Some(w) = this.watch.take()
                    {
                        w.end();
                    }
                }
                Poll::Ready(None) => {
                    if let Some(w) = this.watch.take() {
                        w.end();
                    }
                }
                Poll::Ready(Some(Err(_))) => this.watch = None,
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
