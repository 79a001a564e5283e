//! Admission of outbound streams to one peer: at most `limit` open at once; beyond it, clients
//! wait in one FIFO queue per service, served round-robin, so that one busy service cannot
//! starve the others. A waiter gives up at its deadline or when its client leaves; a slot is
//! never handed to a waiter that is gone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// One open stream's slot; released (handed to the next waiter) when dropped.
pub struct Slot {
    admission: Option<Arc<Admission>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(a) = self.admission.take() {
            a.release();
        }
    }
}

pub struct Admission {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_use: usize,
    /// Waiters per service (authority), oldest first.
    queues: HashMap<Arc<str>, VecDeque<oneshot::Sender<Slot>>>,
    /// Services with waiters, in serving order.
    turn: VecDeque<Arc<str>>,
}

/// A waiter's ticket: resolves to a slot.
pub enum Ticket {
    Now(Slot),
    Queued(oneshot::Receiver<Slot>),
}

impl Admission {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot now if one is free and nobody waits, else a place in `service`'s queue.
    pub fn enter(self: &Arc<Self>, service: &str) -> Ticket {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.in_use < self.limit && st.turn.is_empty() {
            st.in_use += 1;
            return Ticket::Now(Slot {
                admission: Some(self.clone()),
            });
        }
        let (tx, rx) = oneshot::channel();
        let key: Arc<str> = service.into();
        let queue = st.queues.entry(key.clone()).or_default();
        if queue.is_empty() {
            st.turn.push_back(key);
        }
        queue.push_back(tx);
        Ticket::Queued(rx)
    }

    /// Hands the slot to the next live waiter (round-robin over services), or frees it.
    fn release(self: &Arc<Self>) {
        let mut guard = self.lock();
        let st = &mut *guard;
        while let Some(service) = st.turn.pop_front() {
            let Some(queue) = st.queues.get_mut(&service) else {
                continue;
            };
            let waiter = queue.pop_front();
            if queue.is_empty() {
                st.queues.remove(&service);
            } else {
                st.turn.push_back(service);
            }
            let Some(waiter) = waiter else { continue };
            let slot = Slot {
                admission: Some(self.clone()),
            };
            match waiter.send(slot) {
                Ok(()) => return,
                // The waiter left: disarm the slot (we are releasing it right here) and go on.
                Err(mut slot) => {
                    slot.admission = None;
                }
            }
        }
        st.in_use -= 1;
    }

    /// Waiters currently queued (all services).
    pub fn queued(&self) -> usize {
        self.lock().queues.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(t: Ticket) -> Slot {
        match t {
            Ticket::Now(s) => s,
            Ticket::Queued(_) => panic!("queued"),
        }
    }

    fn queued(t: Ticket) -> oneshot::Receiver<Slot> {
        match t {
            Ticket::Queued(r) => r,
            Ticket::Now(_) => panic!("admitted at once"),
        }
    }

    #[test]
    fn beyond_the_limit_services_are_served_round_robin() {
        let a = Admission::new(1);
        let first = now(a.enter("busy"));
        let mut busy1 = queued(a.enter("busy"));
        let mut busy2 = queued(a.enter("busy"));
        let mut quiet = queued(a.enter("quiet"));
        assert_eq!(a.queued(), 3);
        drop(first);
        let s = busy1.try_recv().unwrap();
        drop(s);
        // The quiet service goes before the busy one's second waiter.
        let s = quiet.try_recv().unwrap();
        assert!(busy2.try_recv().is_err());
        drop(s);
        busy2.try_recv().unwrap();
    }

    #[test]
    fn a_slot_skips_waiters_that_left_and_is_freed_when_none_is_left() {
        let a = Admission::new(1);
        let first = now(a.enter("svc"));
        let gone = queued(a.enter("svc"));
        let mut live = queued(a.enter("other"));
        drop(gone);
        drop(first);
        let s = live.try_recv().unwrap();
        drop(s);
        assert_eq!(a.queued(), 0);
        // The slot was freed, not leaked.
        drop(now(a.enter("svc")));
        let again = now(a.enter("svc"));
        drop(again);
    }
}
