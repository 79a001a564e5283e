//! Splicing two byte streams together with an idle timeout and byte counts. The buffers are
//! allocated once per tunnel; the only shared state is two relaxed atomic counters per tunnel.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Per-direction copy buffer: one TLS record's worth. Larger buffers barely help throughput
/// (records are 16 KiB anyway) but cost memory on every open tunnel, on both gateways.
const BUF: usize = 16 * 1024;

/// How a tunnel ended.
#[derive(Debug)]
pub struct Outcome {
    pub to_server: u64,
    pub to_client: u64,
    pub result: Result<(), io::Error>,
}

/// Copies `client <-> server` until both directions are closed, one side fails, or no byte moved
/// for `idle`. Half-closes are forwarded (EOF on one side shuts down writing on the other).
pub async fn splice<C, S>(client: C, server: S, idle: Duration) -> Outcome
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let mut client = Counted {
        inner: client,
        read: up.clone(),
    };
    let mut server = Counted {
        inner: server,
        read: down.clone(),
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, BUF, BUF);
    tokio::pin!(copy);
    let mut last = 0u64;
    let result = loop {
        tokio::select! {
            r = &mut copy => break r.map(|_| ()),
            _ = tokio::time::sleep(idle) => {
                let seen = up.load(Ordering::Relaxed) + down.load(Ordering::Relaxed);
                if seen == last {
                    break Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout"));
                }
                last = seen;
            }
        }
    };
    Outcome {
        to_server: up.load(Ordering::Relaxed),
        to_client: down.load(Ordering::Relaxed),
        result,
    }
}

/// Counts bytes read from the inner stream.
struct Counted<T> {
    inner: T,
    read: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_flow_both_ways_and_are_counted() {
        let (client, mut client_far) = tokio::io::duplex(1024);
        let (server, mut server_far) = tokio::io::duplex(1024);
        let t = tokio::spawn(splice(client, server, Duration::from_secs(30)));
        client_far.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        server_far.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        server_far.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        client_far.read_exact(&mut buf).await.unwrap();
        drop(client_far);
        drop(server_far);
        let out = t.await.unwrap();
        assert_eq!((out.to_server, out.to_client), (5, 2));
    }

    #[tokio::test]
    async fn a_silent_tunnel_ends_with_an_idle_timeout() {
        let (client, _client_far) = tokio::io::duplex(1024);
        let (server, _server_far) = tokio::io::duplex(1024);
        let out = splice(client, server, Duration::from_millis(20)).await;
        assert_eq!(out.result.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
