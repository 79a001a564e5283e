//! Prometheus metrics of the gateway. Counters are bumped once per connection, stream or
//! handshake, never per byte: byte counts are added when a tunnel closes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `inbound` = remote gateways -> local services; `outbound` = local clients -> remote gateways.
pub const INBOUND: &str = "inbound";
pub const OUTBOUND: &str = "outbound";

/// Pool states, one gauge per (peer, state) set to 1 for the current state.
pub const POOL_STATES: [&str; 3] = ["connecting", "ready", "backoff"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SideResult {
    pub side: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SideCause {
    pub side: &'static str,
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Side {
    pub side: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Bytes {
    pub side: &'static str,
    /// `to_server`: from the caller towards the service; `to_client`: the answers.
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerResult {
    pub peer: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerState {
    pub peer: String,
    pub state: &'static str,
}

/// Handles resolved once for the per-tunnel path, so that a tunnel touches only atomics (no
/// label hashing, no family lock).
#[derive(Debug, Clone)]
pub struct SideHandles {
    pub ok: Counter,
    pub open: Gauge,
    pub to_server: Counter,
    pub to_client: Counter,
}

impl SideHandles {
    fn new(
        side: &'static str,
        streams: &Family<SideResult, Counter>,
        open: &Family<Side, Gauge>,
        bytes: &Family<Bytes, Counter>,
    ) -> Self {
        // One statement per handle: `get_or_create` returns a read guard that lives until the end
        // of its statement, and creating the next label in the same family needs the write lock.
        let ok = streams
            .get_or_create(&SideResult { side, result: "ok" })
            .clone();
        let open = open.get_or_create(&Side { side }).clone();
        let to_server = bytes
            .get_or_create(&Bytes {
                side,
                direction: "to_server",
            })
            .clone();
        let to_client = bytes
            .get_or_create(&Bytes {
                side,
                direction: "to_client",
            })
            .clone();
        Self {
            ok,
            open,
            to_server,
            to_client,
        }
    }

    pub fn add_bytes(&self, to_server: u64, to_client: u64) {
        self.to_server.inc_by(to_server);
        self.to_client.inc_by(to_client);
    }
}

#[derive(Debug)]
pub struct Metrics {
    pub inbound: SideHandles,
    pub outbound: SideHandles,
    pub registry: Registry,
    /// TCP/TLS connections accepted per side, by result (`ok` or the refusal; see the help text).
    pub connections: Family<SideResult, Counter>,
    /// CONNECT streams per side by result (`ok` or a refusal reason).
    pub streams: Family<SideResult, Counter>,
    pub open_streams: Family<Side, Gauge>,
    pub bytes: Family<Bytes, Counter>,
    pub handshake_failures: Family<Side, Counter>,
    /// Established HTTP/2 connections that ended abnormally, by cause.
    pub connection_ends: Family<SideCause, Counter>,
    /// Tunnels ended with resets (RST_STREAM and TCP RST) instead of clean ends, by cause.
    pub tunnel_resets: Family<SideCause, Counter>,
    pub peer_connects: Family<PeerResult, Counter>,
    /// Outbound clients waiting for a stream slot to their peer.
    pub queued_streams: Gauge,
    /// How long queued outbound clients waited (admitted or not).
    pub queue_wait: Histogram,
    pub peer_pool_state: Family<PeerState, Gauge>,
    /// Which pool generation owns each peer's `peer_pool_state` series: when a Link's address
    /// changes the old pool's task may still be winding down, and must not overwrite (or
    /// remove) the new pool's state.
    pool_owners: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    next_pool: std::sync::atomic::AtomicU64,
    pub dial_duration: Histogram,
    pub cert_expiry: Gauge,
    pub cert_rotations: Counter,
    pub anchor_changes: Counter,
    pub outbound_listeners: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mc_gateway");
        let connections = Family::<SideResult, Counter>::default();
        registry.register(
            "connections",
            "Connections accepted by side and result (ok or why not: no_certificate, certificate_rejected, certificate_expired, handshake_failed, handshake_timeout, h2_handshake_failed, h2_handshake_timeout, handshake_overload, handshake_source_limit, first_byte_timeout, evicted_silent, evicted_stale, evicted_by_newer)",
            connections.clone(),
        );
        let streams = Family::<SideResult, Counter>::default();
        registry.register(
            "streams",
            "CONNECT streams by side and result (ok or the refusal reason)",
            streams.clone(),
        );
        let open_streams = Family::<Side, Gauge>::default();
        registry.register(
            "open_streams",
            "Tunnels currently open",
            open_streams.clone(),
        );
        let bytes = Family::<Bytes, Counter>::default();
        registry.register(
            "bytes",
            "Bytes carried by closed tunnels, by side and direction",
            bytes.clone(),
        );
        let handshake_failures = Family::<Side, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed (bad or missing certificate, wrong identity, timeout)",
            handshake_failures.clone(),
        );
        let connection_ends = Family::<SideCause, Counter>::default();
        registry.register(
            "connection_errors",
            "Established gateway-to-gateway connections that ended abnormally, by side and cause (protocol_error, connection_lost)",
            connection_ends.clone(),
        );
        let tunnel_resets = Family::<SideCause, Counter>::default();
        registry.register(
            "tunnel_resets",
            "Tunnels ended abnormally, both sides reset (RST_STREAM CONNECT_ERROR / TCP RST), by side and cause",
            tunnel_resets.clone(),
        );
        let peer_connects = Family::<PeerResult, Counter>::default();
        registry.register(
            "peer_connects",
            "Attempts to (re)establish the pooled connection to a peer gateway",
            peer_connects.clone(),
        );
        let queued_streams = Gauge::default();
        registry.register(
            "queued_streams",
            "Outbound clients waiting for a stream slot to their peer (max-streams-per-peer reached)",
            queued_streams.clone(),
        );
        let queue_wait = Histogram::new(exponential_buckets(0.001, 4.0, 8));
        registry.register(
            "stream_queue_wait_seconds",
            "Time outbound clients spent queued for a stream slot (admitted, timed out or gone)",
            queue_wait.clone(),
        );
        let peer_pool_state = Family::<PeerState, Gauge>::default();
        registry.register(
            "peer_pool_state",
            "1 for the current state of the pooled connection to each peer (connecting, ready, backoff)",
            peer_pool_state.clone(),
        );
        let dial_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "backend_dial_duration_seconds",
            "Time to open the TCP connection to a local exported service",
            dial_duration.clone(),
        );
        let cert_expiry = Gauge::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of the gateway's current leaf certificate (Unix time)",
            cert_expiry.clone(),
        );
        let cert_rotations = Counter::default();
        registry.register(
            "certificate_rotations",
            "Leaf certificates minted after the first one",
            cert_rotations.clone(),
        );
        let anchor_changes = Counter::default();
        registry.register(
            "anchor_bundle_changes",
            "Changes of the trust anchor bundle applied without a restart",
            anchor_changes.clone(),
        );
        let outbound_listeners = Gauge::default();
        registry.register(
            "outbound_listeners",
            "Outbound ports currently listening",
            outbound_listeners.clone(),
        );
        Self {
            inbound: SideHandles::new(INBOUND, &streams, &open_streams, &bytes),
            outbound: SideHandles::new(OUTBOUND, &streams, &open_streams, &bytes),
            registry,
            connections,
            streams,
            open_streams,
            bytes,
            handshake_failures,
            connection_ends,
            tunnel_resets,
            peer_connects,
            queued_streams,
            queue_wait,
            peer_pool_state,
            pool_owners: Default::default(),
            next_pool: Default::default(),
            dial_duration,
            cert_expiry,
            cert_rotations,
            anchor_changes,
            outbound_listeners,
        }
    }

    pub fn connection(&self, side: &'static str, result: &'static str) {
        self.connections
            .get_or_create(&SideResult { side, result })
            .inc();
    }

    /// An established connection ended abnormally.
    pub fn connection_end(&self, side: &'static str, cause: &'static str) {
        self.connection_ends
            .get_or_create(&SideCause { side, cause })
            .inc();
    }

    pub fn stream(&self, side: &'static str, result: &'static str) {
        self.streams
            .get_or_create(&SideResult { side, result })
            .inc();
    }

    pub fn reset(&self, side: &'static str, cause: &'static str) {
        self.tunnel_resets
            .get_or_create(&SideCause { side, cause })
            .inc();
    }

    /// Makes a new pool the owner of `peer`'s pool-state series; returns its token.
    pub fn claim_pool_state(&self, peer: &str) -> u64 {
        let owner = self
            .next_pool
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.owners().insert(peer.to_owned(), owner);
        owner
    }

    /// Sets `peer`'s pool state, if `owner` still owns the series (rare: once per state change).
    pub fn set_pool_state(&self, peer: &str, owner: u64, state: &'static str) {
        let owners = self.owners();
        if owners.get(peer) != Some(&owner) {
            return;
        }
        for s in POOL_STATES {
            self.peer_pool_state
                .get_or_create(&PeerState {
                    peer: peer.to_owned(),
                    state: s,
                })
                .set(i64::from(s == state));
        }
    }

    /// A pool ended: its peer's pool-state series disappear, unless a newer pool owns them.
    pub fn release_pool_state(&self, peer: &str, owner: u64) {
        let mut owners = self.owners();
        if owners.get(peer) != Some(&owner) {
            return;
        }
        owners.remove(peer);
        for s in POOL_STATES {
            self.peer_pool_state.remove(&PeerState {
                peer: peer.to_owned(),
                state: s,
            });
        }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u64>> {
        // A panic elsewhere while holding it leaves a usable map.
        self.pool_owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(m: &Metrics) -> Vec<String> {
        m.encode()
            .lines()
            .filter(|l| l.starts_with("mc_gateway_peer_pool_state{"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_replaced_pool_cannot_overwrite_or_remove_the_new_pools_state() {
        let m = Metrics::new();
        let old = m.claim_pool_state("west");
        m.set_pool_state("west", old, "ready");
        let new = m.claim_pool_state("west");
        m.set_pool_state("west", new, "connecting");
        m.set_pool_state("west", old, "backoff");
        m.release_pool_state("west", old);
        let s = states(&m);
        assert!(
            s.iter()
                .any(|l| l == "mc_gateway_peer_pool_state{peer=\"west\",state=\"connecting\"} 1"),
            "{s:?}"
        );
        assert!(
            s.iter()
                .any(|l| l == "mc_gateway_peer_pool_state{peer=\"west\",state=\"backoff\"} 0"),
            "{s:?}"
        );
    }

    #[test]
    fn releasing_the_last_pool_of_a_peer_removes_its_series() {
        let m = Metrics::new();
        let owner = m.claim_pool_state("west");
        m.set_pool_state("west", owner, "ready");
        assert_eq!(states(&m).len(), POOL_STATES.len());
        m.release_pool_state("west", owner);
        assert_eq!(states(&m), Vec::<String>::new());
    }
}
