//! Lets an HTTP/2 connection write the frames of many streams together.
//!
//! Each stream task that queues a frame (HEADERS to open a tunnel, DATA, END_STREAM) wakes the
//! connection's task, and tokio runs a task woken by the running one next (its LIFO slot). The
//! connection then writes, and TLS seals and sends, one small record per frame: one syscall per
//! frame, three or more per short-lived tunnel. Putting each wake-up of the connection behind the
//! tasks that are already runnable lets the frames they queue meanwhile go out in one write,
//! as hyper's client did by passing requests to its connection task through a channel
//! (`bench/gateway.sh`, new connections per second; docs/performance.md).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

/// Drives `inner` to completion, yielding to the other runnable tasks before each poll that
/// follows a wake-up. Costs one trip through the run queue per wake-up; an idle runtime runs it
/// again at once.
pub async fn drive<F: Future + Unpin>(mut inner: F) -> F::Output {
    loop {
        if let Poll::Ready(out) = poll_fn(|cx| Poll::Ready(Pin::new(&mut inner).poll(cx))).await {
            return out;
        }
        woken().await;
        tokio::task::yield_now().await;
    }
}

/// Pending once, without registering a waker (the inner future registered the task's), then
/// ready: resolves on the next poll of the task, i.e. after a wake-up.
async fn woken() {
    let mut first = true;
    poll_fn(|_| {
        if std::mem::take(&mut first) {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}
