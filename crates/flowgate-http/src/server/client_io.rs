//! A client connection as the HTTP/1.1 server reads and writes it: plain TCP, or TLS over
//! it. Both are used through `&self` by the connection's task, the body it lends and the
//! head-deadline watchdog; a TLS session sits behind a mutex that no one holds across a
//! wait (each poll takes it and lets it go), so it is never contended for long.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// How much a TLS read asks for at a time (a TLS record holds at most 16 KiB).
const TLS_READ: usize = 16 * 1024;

/// One client connection.
#[derive(Debug)]
pub(super) enum ClientIo {
    Plain(TcpStream),
    /// Boxed: rustls's state is large.
    Tls(Mutex<Box<TlsStream<TcpStream>>>),
}

impl ClientIo {
    pub(super) fn tls(stream: TlsStream<TcpStream>) -> Self {
        ClientIo::Tls(Mutex::new(Box::new(stream)))
    }

    fn lock(m: &Mutex<Box<TlsStream<TcpStream>>>) -> MutexGuard<'_, Box<TlsStream<TcpStream>>> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until data arrives and appends it to `buf`'s spare room (`Ok(0)` at the end of
    /// the stream).
    pub(super) fn poll_read_some(
        &self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        match self {
            ClientIo::Plain(s) => crate::sock::poll_read_some(s, cx, buf),
            ClientIo::Tls(m) => {
                let mut s = Self::lock(m);
                let start = buf.len();
                let room = (buf.capacity() - start).clamp(1, TLS_READ);
                buf.resize(start + room, 0);
                let mut read = ReadBuf::new(&mut buf[start..]);
                let polled = Pin::new(&mut **s).poll_read(cx, &mut read);
                let n = read.filled().len();
                buf.truncate(start + n);
                polled.map_ok(|()| n)
            }
        }
    }

    /// Writes every byte of `bufs`. A plain write that makes no progress for `timeout` is
    /// `TimedOut`; a TLS one must be done (written and flushed) within it.
    pub(super) async fn write_all(
        &self,
        bufs: &mut [IoSlice<'_>],
        timeout: Duration,
    ) -> io::Result<()> {
        match self {
            ClientIo::Plain(s) => crate::sock::write_all(s, bufs, timeout).await,
            ClientIo::Tls(m) => {
                let mut bufs = bufs;
                let write = poll_fn(|cx| {
                    let mut s = Self::lock(m);
                    loop {
                        while bufs.first().is_some_and(|b| b.is_empty()) {
                            bufs = &mut std::mem::take(&mut bufs)[1..];
                        }
                        if bufs.is_empty() {
                            return Pin::new(&mut **s).poll_flush(cx);
                        }
                        match ready!(Pin::new(&mut **s).poll_write_vectored(cx, bufs)) {
                            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
                            Err(e) => return Poll::Ready(Err(e)),
                        }
                    }
                });
                tokio::time::timeout(timeout, write)
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
            }
        }
    }

    /// Sends the short `data` whole (an interim answer), `sent` counting what went out.
    pub(super) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        data: &[u8],
        sent: &mut usize,
    ) -> Poll<io::Result<()>> {
        match self {
            ClientIo::Plain(s) => {
                while *sent < data.len() {
                    ready!(s.poll_write_ready(cx))?;
                    match s.try_write(&data[*sent..]) {
                        Ok(n) => *sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                Poll::Ready(Ok(()))
            }
            ClientIo::Tls(m) => {
                let mut s = Self::lock(m);
                if *sent < data.len() {
                    // The session takes plaintext into its own buffer whole; the flush
                    // below is what waits for the socket.
                    io::Write::write_all(&mut s.get_mut().1.writer(), &data[*sent..])?;
                    *sent = data.len();
                }
                Pin::new(&mut **s).poll_flush(cx)
            }
        }
    }

    /// Shuts the socket down (the watchdog's way of ending a connection its task serves).
    pub(super) fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            ClientIo::Plain(s) => SockRef::from(s).shutdown(how),
            ClientIo::Tls(m) => SockRef::from(Self::lock(m).get_ref().0).shutdown(how),
        };
    }

    /// Stops sending: a TLS connection says so first (`close_notify`).
    pub(super) async fn close_write(&self, timeout: Duration) {
        match self {
            ClientIo::Plain(_) => self.shutdown(Shutdown::Write),
            ClientIo::Tls(m) => {
                let close = poll_fn(|cx| Pin::new(&mut **Self::lock(m)).poll_shutdown(cx));
                let _ = tokio::time::timeout(timeout, close).await;
                self.shutdown(Shutdown::Write);
            }
        }
    }
}
