//! The gateway's memory budget: what the defaults are derived from and what `mc install` checks
//! values against (docs/performance.md, "Memory budget", has the arithmetic and measurements).
//!
//! Worst case for one gateway with one peer at its limits: the process itself, the buffers its
//! HTTP/2 connection windows allow (two inbound connections per peer identity, one outbound),
//! and the per-tunnel state of `max_streams_per_peer` tunnels in each direction. Copy buffers
//! do not multiply with tunnels: they are bounded by the connection windows (see `tunnel`).

/// Process, runtime, TLS, tables and Kubernetes watch caches (28 MiB measured with a static
/// config; the rest is room for the API caches of a large cluster).
pub const BASE: u64 = 48 * MIB;
/// Per tunnel and direction: HTTP/2 stream state, task, two sockets (3 KiB measured per tunnel
/// at 10,000 tunnels; doubled for allocator slack and larger frames).
pub const PER_TUNNEL: u64 = 6 * 1024;
/// Share of the container limit the worst case may use; the rest is headroom (allocator
/// fragmentation, kernel accounting).
pub const USABLE_PERCENT: u64 = 75;

const MIB: u64 = 1024 * 1024;

/// Bytes one peer's connections may make the gateway buffer.
pub fn per_peer_windows() -> u64 {
    let windows = super::inbound::MAX_CONNECTIONS_PER_PEER as u64 + 1;
    windows * u64::from(super::CONNECTION_WINDOW)
}

/// Worst-case bytes with one peer at `max_streams_per_peer` tunnels each way.
pub fn needed(max_streams_per_peer: u64) -> u64 {
    BASE + per_peer_windows() + 2 * max_streams_per_peer * PER_TUNNEL
}

/// The most streams per peer that fit `limit` bytes (0 if none do).
pub fn max_streams_for(limit: u64) -> u64 {
    let usable = limit / 100 * USABLE_PERCENT;
    usable.saturating_sub(BASE + per_peer_windows()) / (2 * PER_TUNNEL)
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
