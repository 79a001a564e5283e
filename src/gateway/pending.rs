//! Slots for inbound connections that have not finished their TLS handshake: everything an
//! unauthenticated client can make the inbound side hold.
//!
//! A real peer gateway sends its ClientHello at once and finishes the handshake within a few
//! round trips; it reconnects rarely (its connection is pooled). So when every slot is taken,
//! the newcomer is admitted by cutting, in order of preference, the oldest connection that has
//! not sent a byte yet, then the oldest that has been in its handshake longer than [`STALE`];
//! only if neither exists is the newcomer refused. One source address holds at most
//! [`PER_SOURCE`] slots, so filling them takes many hosts, and keeping a real peer out then takes
//! all of them reopening every slot faster than once per [`STALE`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Slots one source address (IPv6: one /64) may hold.
pub const PER_SOURCE: usize = 64;
/// A handshake in progress this long is no longer a peer's: real ones take a few round trips.
pub const STALE: Duration = Duration::from_secs(1);
/// A client must send its first byte (the ClientHello) this soon after connecting.
pub const FIRST_BYTE: Duration = Duration::from_secs(3);

struct Entry {
    source: IpAddr,
    since: Instant,
    silent: bool,
    cut: CancellationToken,
}

#[derive(Default)]
struct Table {
    next: u64,
    /// By admission order (oldest first).
    entries: BTreeMap<u64, Entry>,
    by_source: HashMap<IpAddr, usize>,
}

pub struct Pending {
    max: usize,
    table: Mutex<Table>,
}

/// Why a connection was not admitted or was cut; the `connections_total` result label.
pub const REFUSED_FULL: &str = "handshake_overload";
pub const REFUSED_SOURCE: &str = "handshake_source_limit";

/// A connection's slot; freed when dropped. `cut` is cancelled if it is evicted.
pub struct Slot {
    pending: Arc<Pending>,
    id: u64,
    pub cut: CancellationToken,
}

/// What admitting a connection did.
pub struct Admitted {
    pub slot: Slot,
    /// An older connection cut to make room: `"evicted_silent"` or `"evicted_stale"`.
    pub evicted: Option<&'static str>,
}

fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::from(o)
        }
    }
}

impl Pending {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            table: Mutex::new(Table::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn admit(self: &Arc<Self>, source: IpAddr, now: Instant) -> Result<Admitted, &'static str> {
        let source = source_key(source);
        let mut guard = self.lock();
        let t = &mut *guard;
        if t.by_source.get(&source).copied().unwrap_or(0) >= PER_SOURCE.min(self.max) {
            return Err(REFUSED_SOURCE);
        }
        let mut evicted = None;
        if t.entries.len() >= self.max {
            let victim = t
                .entries
                .iter()
                .find(|(_, e)| e.silent)
                .map(|(id, _)| (*id, "evicted_silent"))
                .or_else(|| {
                    t.entries
                        .iter()
                        .next()
                        .filter(|(_, e)| now.duration_since(e.since) >= STALE)
                        .map(|(id, _)| (*id, "evicted_stale"))
                });
            let Some((id, why)) = victim else {
                return Err(REFUSED_FULL);
            };
            if let Some(e) = t.entries.remove(&id) {
                e.cut.cancel();
                release_source(&mut t.by_source, e.source);
            }
            evicted = Some(why);
        }
        let id = t.next;
        t.next += 1;
        let cut = CancellationToken::new();
        t.entries.insert(
            id,
            Entry {
                source,
                since: now,
                silent: true,
                cut: cut.clone(),
            },
        );
        *t.by_source.entry(source).or_default() += 1;
        Ok(Admitted {
            slot: Slot {
                pending: self.clone(),
                id,
                cut,
            },
            evicted,
        })
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn release_source(by_source: &mut HashMap<IpAddr, usize>, source: IpAddr) {
    if let Some(n) = by_source.get_mut(&source) {
        *n -= 1;
        if *n == 0 {
            by_source.remove(&source);
        }
    }
}

impl Slot {
    /// The client sent its first byte: it is no longer the first to be evicted.
    pub fn spoke(&self) {
        if let Some(e) = self.pending.lock().entries.get_mut(&self.id) {
            e.silent = false;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.pending.lock();
        let t = &mut *guard;
        if let Some(e) = t.entries.remove(&self.id) {
            release_source(&mut t.by_source, e.source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn when_full_the_oldest_silent_connection_makes_room() {
        let p = Pending::new(2);
        let now = Instant::now();
        let a = p.admit(ip("10.0.0.1"), now).unwrap().slot;
        let b = p.admit(ip("10.0.0.2"), now).unwrap().slot;
        a.spoke();
        let c = p.admit(ip("10.0.0.3"), now).unwrap();
        assert_eq!(c.evicted, Some("evicted_silent"));
        assert!(b.cut.is_cancelled() && !a.cut.is_cancelled());
        assert_eq!(p.len(), 2);
        drop(b);
        assert_eq!(p.len(), 2, "an evicted slot is freed once, at eviction");
    }

    #[test]
    fn when_full_of_fresh_handshakes_the_newcomer_is_refused_and_stale_ones_make_room() {
        let p = Pending::new(2);
        let now = Instant::now();
        let a = p.admit(ip("10.0.0.1"), now).unwrap().slot;
        let b = p.admit(ip("10.0.0.2"), now).unwrap().slot;
        a.spoke();
        b.spoke();
        assert_eq!(p.admit(ip("10.0.0.3"), now).err(), Some(REFUSED_FULL));
        let later = now + STALE;
        let c = p.admit(ip("10.0.0.3"), later).unwrap();
        assert_eq!(c.evicted, Some("evicted_stale"));
        assert!(a.cut.is_cancelled());
    }

    #[test]
    fn one_source_holds_at_most_its_share() {
        let p = Pending::new(1000);
        let now = Instant::now();
        let held: Vec<_> = (0..PER_SOURCE)
            .map(|_| p.admit(ip("2001:db8::1"), now).unwrap().slot)
            .collect();
        // Same /64.
        assert_eq!(p.admit(ip("2001:db8::2"), now).err(), Some(REFUSED_SOURCE));
        assert!(p.admit(ip("2001:db8:0:1::1"), now).is_ok());
        drop(held);
        assert!(p.admit(ip("2001:db8::2"), now).is_ok());
    }
}
