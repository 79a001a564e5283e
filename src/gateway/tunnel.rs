//! Splicing a TCP connection and an HTTP/2 CONNECT stream, with an idle timeout and byte counts.
//!
//! An abnormal end must look abnormal on both sides (RFC 9113 §8.5): a TCP error (RST included)
//! becomes RST_STREAM(CONNECT_ERROR) towards the peer, and any stream or connection error, an idle
//! timeout or a drain deadline becomes a TCP RST towards the local socket. Only a FIN on TCP
//! maps to END_STREAM and back. A generic `copy_bidirectional` cannot do this: it turns every
//! error into a shutdown, which a client takes for a complete response.
//!
//! Memory: an idle tunnel holds no buffer. The socket is read only once it is readable *and*
//! HTTP/2 send capacity was granted, at most that capacity, through a buffer on the stack; only
//! the bytes read are allocated. So the bytes in flight from TCP to HTTP/2 are bounded by the
//! peer's connection window, not by the number of tunnels. Received DATA frames are written to TCP as they come (no copy) and their window is
//! released only once written, so a slow reader is bounded by the stream and connection windows.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest read from TCP per DATA frame: one TLS record's worth. Larger reads barely help
/// throughput (records are 16 KiB anyway).
pub const BUF: usize = 16 * 1024;

/// Why a tunnel was reset; the `cause` label of `tunnel_resets_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The local TCP socket failed (RST from the client or backend, EPIPE, ...).
    TcpError,
    /// The peer reset the stream (RST_STREAM with any code, CANCEL included).
    PeerReset,
    /// The HTTP/2 connection failed or went away (peer killed, keepalive timeout, ...).
    ConnectionLost,
    /// No byte moved in either direction for the idle timeout.
    IdleTimeout,
    /// The gateway stopped (drain deadline) or the peer's authorization was withdrawn.
    Shutdown,
}

impl Cause {
    pub fn label(self) -> &'static str {
        match self {
            Cause::TcpError => "tcp_error",
            Cause::PeerReset => "peer_reset",
            Cause::ConnectionLost => "connection_lost",
            Cause::IdleTimeout => "idle_timeout",
            Cause::Shutdown => "shutdown",
        }
    }

    /// Classifies an HTTP/2 error seen on a stream.
    pub fn of_h2(e: &h2::Error) -> Self {
        if e.is_reset() {
            Cause::PeerReset
        } else {
            Cause::ConnectionLost
        }
    }
}

/// How a tunnel ended. `from_tcp`/`from_h2` count bytes read from each side.
#[derive(Debug)]
pub struct Outcome {
    pub from_tcp: u64,
    pub from_h2: u64,
    /// `Ok` when both directions ended with a FIN/END_STREAM; otherwise both sides were reset.
    pub result: Result<(), Cause>,
}

/// Resets a TCP socket: SO_LINGER 0, then close, which sends an RST instead of a FIN.
pub fn reset_tcp(tcp: TcpStream) {
    let _ = tcp.set_zero_linger();
    drop(tcp);
}

/// Copies `tcp <-> stream` until both directions ended cleanly, either side failed, no byte moved
/// for `idle`, or `cut` is cancelled. On any abnormal end, the stream gets RST_STREAM
/// (CONNECT_ERROR) and the socket an RST.
pub async fn splice(
    mut tcp: TcpStream,
    mut send: SendStream<Bytes>,
    mut recv: RecvStream,
    idle: Duration,
    cut: &CancellationToken,
) -> Outcome {
    let start = Instant::now();
    let from_tcp = AtomicU64::new(0);
    let from_h2 = AtomicU64::new(0);
    // Milliseconds since `start` of the last byte moved; read by the idle timer.
    let last = AtomicU64::new(0);
    let eos_sent = AtomicBool::new(false);
    let eos_notify = Notify::new();
    let result = {
        let (rd, wr) = tcp.split();
        let touch = || {
            last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        };
        let up = up(rd, &mut send, &from_tcp, &touch, &eos_sent, &eos_notify);
        let down = down(&mut recv, wr, &from_h2, &touch);
        let timer = async {
            loop {
                let deadline = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
                if deadline <= Instant::now() {
                    return Cause::IdleTimeout;
                }
                tokio::time::sleep_until(deadline).await;
            }
        };
        tokio::pin!(up, down, timer);
        let mut down_done = false;
        loop {
            tokio::select! {
                cause = &mut up => break Err(cause),
                r = &mut down, if !down_done => match r {
                    Err(cause) => break Err(cause),
                    Ok(()) if eos_sent.load(Ordering::Relaxed) => break Ok(()),
                    Ok(()) => down_done = true,
                },
                _ = eos_notify.notified(), if down_done => break Ok(()),
                cause = &mut timer => break Err(cause),
                _ = cut.cancelled() => break Err(Cause::Shutdown),
            }
        }
    };
    if result.is_err() {
        // A no-op if the peer already reset the stream.
        send.send_reset(Reason::CONNECT_ERROR);
        reset_tcp(tcp);
    }
    Outcome {
        from_tcp: from_tcp.load(Ordering::Relaxed),
        from_h2: from_h2.load(Ordering::Relaxed),
        result,
    }
}

/// TCP -> HTTP/2. Never returns on success: after END_STREAM it keeps watching for a reset of the
/// stream (which the other direction, maybe blocked on a peer that does not read, cannot see).
async fn up(
    mut rd: ReadHalf<'_>,
    send: &mut SendStream<Bytes>,
    counter: &AtomicU64,
    touch: &impl Fn(),
    eos_sent: &AtomicBool,
    eos_notify: &Notify,
) -> Cause {
    loop {
        tokio::select! {
            r = rd.as_ref().readable() => if r.is_err() { return Cause::TcpError },
            r = poll_fn(|cx| send.poll_reset(cx)) => return reset_cause(r),
        }
        // Ask for capacity only with something to send: capacity reserved by idle streams would
        // pin the connection window.
        send.reserve_capacity(BUF);
        let granted = poll_fn(|cx| {
            if let Poll::Ready(r) = send.poll_reset(cx) {
                return Poll::Ready(Err(reset_cause(r)));
            }
            loop {
                if send.capacity() > 0 {
                    return Poll::Ready(Ok(send.capacity()));
                }
                match send.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Cause::of_h2(&e))),
                    Poll::Ready(None) => return Poll::Ready(Err(Cause::ConnectionLost)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
        let granted = match granted {
            Ok(n) => n,
            Err(cause) => return cause,
        };
        match read_now(&mut rd, granted.min(BUF)) {
            Read::Eof => {
                send.reserve_capacity(0);
                if let Err(e) = send.send_data(Bytes::new(), true) {
                    return Cause::of_h2(&e);
                }
                break;
            }
            Read::Data(data) => {
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                touch();
                if let Err(e) = send.send_data(data, false) {
                    return Cause::of_h2(&e);
                }
                // Give what this read did not use back to the other streams.
                send.reserve_capacity(0);
            }
            Read::WouldBlock => send.reserve_capacity(0),
            Read::Failed => return Cause::TcpError,
        }
    }
    eos_sent.store(true, Ordering::Relaxed);
    eos_notify.notify_one();
    reset_cause(poll_fn(|cx| send.poll_reset(cx)).await)
}

enum Read {
    Data(Bytes),
    Eof,
    WouldBlock,
    Failed,
}

/// One non-blocking read of at most `limit` bytes, copied out of a stack buffer into a `Bytes` of
/// exactly the bytes read (a tunnel holds no buffer between reads, and a small read does not
/// pin a 16 KiB allocation until HTTP/2 has written it).
///
/// Through `poll_read`, not `try_read`: tokio clears the socket's readiness after a short read,
/// which saves the read that would only return EAGAIN (one syscall per request and side on a
/// keep-alive connection; measured with `bench/gateway.sh`, docs/performance.md).
fn read_now(rd: &mut ReadHalf<'_>, limit: usize) -> Read {
    let mut storage = [MaybeUninit::<u8>::uninit(); BUF];
    let mut buf = ReadBuf::uninit(&mut storage[..limit.min(BUF)]);
    // A no-op waker: on Pending the caller waits for `readable()`, which registers the real one.
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(rd).poll_read(&mut cx, &mut buf) {
        Poll::Pending => Read::WouldBlock,
        Poll::Ready(Err(_)) => Read::Failed,
        Poll::Ready(Ok(())) if buf.filled().is_empty() => Read::Eof,
        Poll::Ready(Ok(())) => Read::Data(Bytes::copy_from_slice(buf.filled())),
    }
}

/// HTTP/2 -> TCP: `Ok` after END_STREAM was forwarded as a FIN.
async fn down(
    recv: &mut RecvStream,
    mut wr: WriteHalf<'_>,
    counter: &AtomicU64,
    touch: &impl Fn(),
) -> Result<(), Cause> {
    loop {
        match recv.data().await {
            None => {
                return wr.shutdown().await.map_err(|_| Cause::TcpError);
            }
            Some(Ok(chunk)) => {
                let n = chunk.len();
                counter.fetch_add(n as u64, Ordering::Relaxed);
                touch();
                wr.write_all(&chunk).await.map_err(|_| Cause::TcpError)?;
                // The window reopens only once the bytes left: a backend that does not read
                // stops the peer instead of growing a buffer here.
                let _ = recv.flow_control().release_capacity(n);
            }
            Some(Err(e)) => return Err(Cause::of_h2(&e)),
        }
    }
}

fn reset_cause(r: Result<Reason, h2::Error>) -> Cause {
    match r {
        Ok(_) => Cause::PeerReset,
        Err(e) => Cause::of_h2(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A real HTTP/2 CONNECT stream over an in-memory pipe: `(tunnel's send, tunnel's recv,
    /// peer's send, peer's recv)`.
    async fn stream_pair() -> (SendStream<Bytes>, RecvStream, SendStream<Bytes>, RecvStream) {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut conn = h2::server::handshake(server_io).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            let send = respond
                .send_response(http::Response::new(()), false)
                .unwrap();
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            (send, req.into_body())
        });
        let (mut client, conn) = h2::client::handshake(client_io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method("CONNECT")
            .uri("backend.default.svc.cluster.local:80")
            .body(())
            .unwrap();
        let (response, peer_send) = client.send_request(req, false).unwrap();
        let (send, recv) = server.await.unwrap();
        let peer_recv = response.await.unwrap().into_body();
        (send, recv, peer_send, peer_recv)
    }

    /// The idle timeout counts from the last byte, to the millisecond: a byte 9 s into a 10 s
    /// timeout ends the tunnel at 19 s, not at the next multiple of the setting (20 s), which a
    /// timer checking "any byte in the last period?" once per period would do.
    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_fires_its_setting_after_the_last_byte() {
        let (send, recv, _peer_send, mut peer_recv) = stream_pair().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let idle = Duration::from_secs(10);
        let cut = CancellationToken::new();
        let tunnel = tokio::spawn(async move { splice(tcp, send, recv, idle, &cut).await });

        tokio::time::sleep(Duration::from_secs(9)).await;
        client.write_all(b"x").await.unwrap();
        let chunk = peer_recv.data().await.unwrap().unwrap();
        assert_eq!(&chunk[..], b"x");
        let last_byte = Instant::now();
        let outcome = tunnel.await.unwrap();
        let quiet = last_byte.elapsed();
        assert_eq!(outcome.result, Err(Cause::IdleTimeout));
        assert_eq!(outcome.from_tcp, 1);
        assert!(
            quiet >= idle && quiet <= idle + Duration::from_millis(5),
            "the tunnel ended {quiet:?} after its last byte, with a {idle:?} idle timeout"
        );
    }
}
