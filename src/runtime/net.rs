//! Listening sockets and the one accept loop: every server in mc (gateway inbound and outbound
//! listeners, admin servers, the simulator) accepts through [`accept_loop`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;

/// Accept-queue length asked of the kernel (capped by `net.core.somaxconn`). The default of 128
/// overflows when hundreds of clients connect at once, and an overflowed queue turns into
/// retransmits and resets instead of connections.
pub const LISTEN_BACKLOG: u32 = 4096;

/// First and longest pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Binds a listener with `SO_REUSEADDR` (restart on the same port while old connections linger
/// in TIME_WAIT) and a deep accept queue.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts until `stop`, handing each connection to `on_accept` (which spawns what it needs).
/// A failed accept (usually EMFILE: out of descriptors) backs off instead of spinning a core
/// until a descriptor frees; the next success resets the back-off.
pub async fn accept_loop<F>(
    listener: TcpListener,
    what: &'static str,
    stop: CancellationToken,
    mut on_accept: F,
) where
    F: FnMut(TcpStream, SocketAddr),
{
    let mut backoff = Backoff::new(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, remote)) => {
                backoff.reset();
                on_accept(tcp, remote);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(listener = what, addr = ?local, error = %e, retry_in = ?delay, "accept failed");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    tracing::debug!(listener = what, addr = ?local, "stopped accepting");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn accepts_until_stopped() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = CancellationToken::new();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let task = tokio::spawn(accept_loop(l, "test", stop.clone(), move |_, _| {
            seen.fetch_add(1, Ordering::SeqCst);
        }));
        for _ in 0..3 {
            let _c = TcpStream::connect(addr).await.unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while count.load(Ordering::SeqCst) < 3 {
            assert!(std::time::Instant::now() < deadline, "accepted {count:?}");
            tokio::task::yield_now().await;
        }
        stop.cancel();
        task.await.unwrap();
    }
}
