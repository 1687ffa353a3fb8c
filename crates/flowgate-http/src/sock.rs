//! Socket reads and writes shared by the listener and the upstream client.

use std::io::{self, IoSlice};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Waits until the socket is readable and reads what it holds into `buf`'s spare room
/// (`Ok(0)` at the end of the stream), by [`read_some`].
pub(crate) fn poll_read_some(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_read_ready(cx))?;
        match read_some(stream, buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return Poll::Ready(r),
        }
    }
}

/// Writes every byte of `bufs`; a client that takes none of them for `timeout` (it stopped
/// reading) is an error (`TimedOut`). The timer exists only while a write waits.
pub(crate) async fn write_all(
    stream: &TcpStream,
    mut bufs: &mut [IoSlice<'_>],
    timeout: Duration,
) -> io::Result<()> {
    loop {
        while bufs.first().is_some_and(|b| b.is_empty()) {
            bufs = &mut bufs[1..];
        }
        if bufs.is_empty() {
            return Ok(());
        }
        match stream.try_write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::timeout(timeout, stream.writable())
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads what the socket holds into `buf`'s spare room (`Ok(0)` at the end of the stream).
///
/// A read that leaves room unfilled has emptied the socket, so its read readiness is dropped
/// at once, as tokio's own `poll_read` does with edge-triggered selectors; otherwise the
/// next wait would first learn it from a read that fails: one more syscall per request on
/// every keep-alive client connection, and per chunk of an answer streamed from upstream.
/// Data that arrives later raises a new edge, and a closed stream stays readable (tokio
/// never clears the closed states).
fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let n = stream.try_read_buf(buf)?;
    if EDGE_TRIGGERED && 0 < n && n < room {
        // No I/O in the closure: the short read above is what says the socket is empty.
        let _ = stream.try_io(tokio::io::Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
    Ok(n)
}

/// Whether tokio's selector here is edge-triggered (epoll, kqueue): the list tokio's own
/// short-read rule applies to.
const EDGE_TRIGGERED: bool = cfg!(any(
    target_os = "android",
    target_os = "illumos",
    target_os = "linux",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "ios",
    target_os = "macos",
    target_os = "netbsd",
    target_os = "openbsd",
));

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_short_read_drops_readiness_and_later_data_and_the_close_still_wake() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let not_ready = |s: &TcpStream| {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            s.poll_read_ready(&mut cx).is_pending()
        };

        tokio::io::AsyncWriteExt::write_all(&mut client, b"first")
            .await
            .unwrap();
        server.readable().await.unwrap();
        assert_eq!(read_some(&server, &mut buf).unwrap(), 5);
        assert!(
            not_ready(&server),
            "a short read leaves the socket waiting, with no failed read to learn it"
        );

        // A later request raises a new edge: the wait ends and nothing is lost.
        tokio::io::AsyncWriteExt::write_all(&mut client, b"second")
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), server.readable())
            .await
            .expect("data sent after a short read wakes the reader")
            .unwrap();
        assert_eq!(read_some(&server, &mut buf).unwrap(), 6);
        assert_eq!(&buf[..], b"firstsecond");

        // The client goes away: the wait ends with the end of the stream.
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), server.readable())
            .await
            .expect("a close after a short read wakes the reader")
            .unwrap();
        assert_eq!(read_some(&server, &mut buf).unwrap(), 0);
    }
}
