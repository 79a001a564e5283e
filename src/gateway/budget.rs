//! The gateway's memory budget: what the defaults are derived from and what `mc install` checks
//! values against (docs/performance.md, "Memory budget", has the arithmetic and measurements).
//!
//! Worst case for one gateway with one peer at its limits: the process itself, the buffers its
//! HTTP/2 connection windows allow (two inbound connections per peer identity, one outbound),
//! and the per-tunnel state of `max_streams_per_peer` tunnels in each direction. Copy buffers
//! do not multiply with tunnels: they are bounded by the connection windows (see `tunnel`).

/// Process, runtime, TLS, tables and Kubernetes watch caches (28 MiB measured with a static
/// config, debug build).
pub const BASE: u64 = 32 * MIB;
/// Per pending inbound handshake (unauthenticated): a TLS handshake message may be up to 64 KiB
/// and a record 16 KiB, plus connection state.
pub const PER_HANDSHAKE: u64 = 80 * 1024;
/// Per tunnel and direction: HTTP/2 stream state, task, two sockets (2.5-3.0 KiB measured per
/// tunnel at 10,000 tunnels; 5 KiB leaves room for allocator slack).
pub const PER_TUNNEL: u64 = 5 * 1024;
/// Share of the container limit the worst case may use; the rest is headroom (allocator
/// fragmentation, kernel accounting).
pub const USABLE_PERCENT: u64 = 75;

const MIB: u64 = 1024 * 1024;

/// Bytes one peer's connections may make the gateway buffer.
pub fn per_peer_windows() -> u64 {
    let windows = super::inbound::MAX_CONNECTIONS_PER_PEER as u64 + 1;
    windows * u64::from(super::CONNECTION_WINDOW)
}

/// What does not depend on the stream limit: the process, every handshake slot taken, one
/// peer's connection windows.
pub fn fixed() -> u64 {
    let handshakes = super::Settings::default().max_pending_handshakes as u64 * PER_HANDSHAKE;
    BASE + handshakes + per_peer_windows()
}

/// Worst-case bytes with one peer at `max_streams_per_peer` tunnels each way.
pub fn needed(max_streams_per_peer: u64) -> u64 {
    fixed() + 2 * max_streams_per_peer * PER_TUNNEL
}

/// The most streams per peer that fit `limit` bytes (0 if none do).
pub fn max_streams_for(limit: u64) -> u64 {
    let usable = limit / 100 * USABLE_PERCENT;
    usable.saturating_sub(fixed()) / (2 * PER_TUNNEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_stream_limit_fits_the_default_memory_limit() {
        let default = u64::from(super::super::Settings::default().max_streams_per_peer);
        let limit = 256 * MIB;
        assert!(
            needed(default) <= limit / 100 * USABLE_PERCENT,
            "{default} streams need {} MiB",
            needed(default) / MIB
        );
        assert!(max_streams_for(limit) >= default);
        assert_eq!(max_streams_for(16 * MIB), 0);
    }
}
