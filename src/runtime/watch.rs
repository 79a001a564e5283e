//! The watch driver: feeds a synchronous [`Index`] from any stream of kube-runtime watcher
//! events, owning what every watch consumer otherwise re-implements.
//!
//! ```text
//! Stream<Event<K>> ──▶ Init: start a buffer; InitApply: buffer; InitDone: index.reset(buffer)
//!                      Apply/Delete: index.apply/delete          Err: log (back-off upstream)
//!                  ──▶ on_change(&index, synced) after every change
//! ```
//!
//! A re-list (after a restart, a 410 Gone or a dropped watch) replaces the index's whole content,
//! so objects deleted while the watch was away disappear. The driver never builds watchers
//! itself: callers pass `kube::runtime::watcher(..).default_backoff()` or, in tests, a hand-made
//! stream.

use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

/// What a watch consumer keeps: applied, deleted and re-listed synchronously.
pub trait Index<K> {
    fn apply(&mut self, obj: K);
    fn delete(&mut self, obj: K);
    /// Replaces everything with a complete list.
    fn reset(&mut self, objs: Vec<K>);
}

/// The per-stream state between events: the re-list being buffered and whether one finished.
#[derive(Debug)]
pub struct Driver<K> {
    relist: Option<Vec<K>>,
    synced: bool,
}

impl<K> Default for Driver<K> {
    fn default() -> Self {
        Self {
            relist: None,
            synced: false,
        }
    }
}

impl<K> Driver<K> {
    /// Applies one event; returns whether the index changed.
    pub fn handle<I: Index<K> + ?Sized>(
        &mut self,
        event: watcher::Event<K>,
        index: &mut I,
    ) -> bool {
        match event {
            watcher::Event::Apply(obj) => {
                index.apply(obj);
                true
            }
            watcher::Event::Delete(obj) => {
                index.delete(obj);
                true
            }
            watcher::Event::Init => {
                self.relist = Some(Vec::new());
                false
            }
            watcher::Event::InitApply(obj) => {
                self.relist.get_or_insert_with(Vec::new).push(obj);
                false
            }
            watcher::Event::InitDone => {
                index.reset(self.relist.take().unwrap_or_default());
                self.synced = true;
                true
            }
        }
    }

    /// Whether a complete list has been applied at least once.
    pub fn synced(&self) -> bool {
        self.synced
    }
}

/// Drives `index` from `events` until the stream ends or `stop`. After each change, calls
/// `on_change` with the index (still locked) and whether this stream has synced once.
/// Errors are logged and skipped: the stream's own back-off (kube's `default_backoff`) paces
/// the retries, and the index keeps its last known content meanwhile.
pub async fn drive<K, S, I, F>(
    what: &'static str,
    events: S,
    index: Arc<Mutex<I>>,
    stop: CancellationToken,
    mut on_change: F,
) where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    I: Index<K>,
    F: FnMut(&I, bool),
{
    let mut driver = Driver::default();
    let mut events = std::pin::pin!(events);
    let mut failing = false;
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            n = events.next() => n,
        };
        let Some(next) = next else { break };
        match next {
            Ok(event) => {
                // The watcher announces each re-list attempt with `Init`; only what follows
                // it proves the API answers.
                if failing && !matches!(event, watcher::Event::Init) {
                    tracing::info!(watch = what, "watch recovered");
                    failing = false;
                }
                let mut guard = index.lock().unwrap_or_else(|p| p.into_inner());
                if driver.handle(event, &mut *guard) {
                    on_change(&guard, driver.synced());
                }
            }
            Err(e) => {
                // First failure at warn, repeats at debug: an outage must not flood the logs.
                if failing {
                    tracing::debug!(watch = what, error = %e, "watch still failing");
                } else {
                    tracing::warn!(watch = what, error = %e, "watch failed; retrying with back-off");
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[derive(Default)]
    struct Names(BTreeSet<String>);

    impl Index<String> for Names {
        fn apply(&mut self, obj: String) {
            self.0.insert(obj);
        }
        fn delete(&mut self, obj: String) {
            self.0.remove(&obj);
        }
        fn reset(&mut self, objs: Vec<String>) {
            self.0 = objs.into_iter().collect();
        }
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn a_relist_removes_objects_deleted_while_the_watch_was_away() {
        use watcher::Event::*;
        let mut d = Driver::default();
        let mut idx = Names::default();
        for ev in [
            Init,
            InitApply(s("a")),
            InitApply(s("b")),
            InitDone,
            Apply(s("c")),
        ] {
            d.handle(ev, &mut idx);
        }
        assert!(d.synced());
        assert_eq!(idx.0, BTreeSet::from([s("a"), s("b"), s("c")]));
        // Disconnect; "a" and "c" were deleted meanwhile; the restart lists only "b" and "d".
        let changed: Vec<bool> = [Init, InitApply(s("b")), InitApply(s("d"))]
            .into_iter()
            .map(|ev| d.handle(ev, &mut idx))
            .collect();
        assert_eq!(changed, [false, false, false], "nothing applies mid-relist");
        assert_eq!(
            idx.0.len(),
            3,
            "the old content stays until the list is complete"
        );
        assert!(d.handle(InitDone, &mut idx));
        assert_eq!(idx.0, BTreeSet::from([s("b"), s("d")]));
    }

    #[tokio::test]
    async fn drive_survives_errors_and_reports_sync_after_the_first_complete_list() {
        use watcher::Event::*;
        let events = futures::stream::iter(vec![
            Err(watcher::Error::NoResourceVersion),
            Ok(Init),
            Ok(InitApply(s("a"))),
            Ok(InitDone),
            Err(watcher::Error::NoResourceVersion),
            Ok(Delete(s("a"))),
            Ok(Apply(s("b"))),
        ]);
        let index = Arc::new(Mutex::new(Names::default()));
        let mut seen = Vec::new();
        drive(
            "test",
            events,
            index.clone(),
            CancellationToken::new(),
            |idx, synced| {
                seen.push((idx.0.iter().cloned().collect::<Vec<_>>(), synced));
            },
        )
        .await;
        assert_eq!(
            seen,
            vec![(vec![s("a")], true), (vec![], true), (vec![s("b")], true),]
        );
    }
}
