//! 10,000 concurrent checksummed tunnels through one pair of `mc gateway` processes at their
//! default settings, within the default memory limit (templates/values.yaml: 256Mi). The peak
//! RSS per 1,000 tunnels is printed (`--nocapture`) for docs/performance.md.
//!
//! The echo backend runs in a child process (this test binary, re-run with a filter) because one
//! process holding both the 10,000 clients and the 10,000 backend sockets would exceed the usual
//! 20,000-descriptor limit. It runs alone (ignored in the main run; `.ci/run` runs it after it
//! with `cargo test --test it gateway::scale -- --ignored --nocapture`), so that its 20,000
//! loopback connections and CPU load do not starve the other tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::harness::*;
use super::pki;

const TUNNELS: usize = 10_000;
/// The gateway container's default memory limit.
const LIMIT_BYTES: u64 = 256 * 1024 * 1024;
const ECHO_ENV: &str = "MC_TEST_ECHO_SERVER";

/// Not a test: the echo backend of [`ten_thousand_tunnels_fit_the_default_memory_limit`], run in
/// a child process. Prints its address, then echoes until killed.
#[test]
#[ignore = "helper process of the scale test"]
fn echo_server_process() {
    if std::env::var_os(ECHO_ENV).is_none() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let e = echo().await;
        println!("ECHO {}", e.addr);
        std::io::stdout().flush().unwrap();
        std::future::pending::<()>().await;
    });
}

fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

fn admin_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// A payload unique to tunnel `i`, so that a crossed or corrupted tunnel shows.
fn payload(i: usize) -> Vec<u8> {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..512)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
#[ignore = "20,000 sockets and two gateway processes: run alone, as .ci/run does"]
fn ten_thousand_tunnels_fit_the_default_memory_limit() {
    init();
    // Killed and reaped when the test ends, however it ends (as the gateways are).
    let mut echo = crate::support::spawn(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "gateway::scale::echo_server_process",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(ECHO_ENV, "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdout = echo.stdout.take().unwrap();
    let backend = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("ECHO ").map(str::to_owned))
        .expect("the echo process printed its address");

    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let [wa, wc, wk] = pki.write(dir.path(), &pki.west, "west");
    let [ea, ec, ek] = pki.write(dir.path(), &pki.east, "east");
    // Every listener on a loopback address of this test's own: the gateways pick their inbound
    // and admin ports and report them; east's outbound port is fixed by its configuration.
    let lo = Loopback::lease();
    let outbound = lo.addr(OUTBOUND_PORT);
    // Default settings but the addresses; one worker thread each, as in the benchmark.
    let gateway = |cfg: &std::path::Path| {
        spawn_gateway(
            Command::new(env!("CARGO_BIN_EXE_mc"))
                .args(["gateway", "--config"])
                .arg(cfg)
                .args(["--inbound-addr", &format!("{}:0", lo.ip)])
                .args(["--admin-addr", &format!("{}:0", lo.ip)])
                .args(["--outbound-ip", &lo.ip.to_string()])
                .env("TOKIO_WORKER_THREADS", "1"),
        )
    };
    let west_cfg = dir.path().join("west.yaml");
    std::fs::write(
        &west_cfg,
        format!(
            "cluster: west\nanchors: {}\nissuerCert: {}\nissuerKey: {}\nexports:\n  - name: backend\n    namespace: default\n    ports: [{{port: 8888, backend: \"{backend}\"}}]\n",
            wa.display(),
            wc.display(),
            wk.display(),
        ),
    )
    .unwrap();
    let west = gateway(&west_cfg);
    let east_cfg = dir.path().join("east.yaml");
    std::fs::write(
        &east_cfg,
        format!(
            "cluster: east\nanchors: {}\nissuerCert: {}\nissuerKey: {}\nlisteners:\n  - port: {OUTBOUND_PORT}\n    peer: west\n    authority: {BACKEND}\npeers:\n  - name: west\n    address: {}\n    identity: {WEST_ID}\n",
            ea.display(),
            ec.display(),
            ek.display(),
            west.inbound,
        ),
    )
    .unwrap();
    let east = gateway(&east_cfg);
    let (west_pid, east_pid) = (west.child.id(), east.child.id());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(eventually(
        "a first echo through the pair",
        super::LIMIT,
        || async { echoes(outbound).await.then_some(()) },
    ));
    let (west_base, east_base) = (peak_rss(west_pid), peak_rss(east_pid));
    let open = rt.block_on(async {
        let gate = Arc::new(tokio::sync::Semaphore::new(256));
        let mut tasks = Vec::with_capacity(TUNNELS);
        for i in 0..TUNNELS {
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let mut s = TcpStream::connect(outbound).await.unwrap();
                let sent = payload(i);
                s.write_all(&sent).await.unwrap();
                let mut back = vec![0u8; sent.len()];
                s.read_exact(&mut back).await.unwrap();
                assert!(back == sent, "tunnel {i} carried different bytes back");
                s
            }));
        }
        let mut open = Vec::with_capacity(TUNNELS);
        for t in tasks {
            open.push(t.await.unwrap());
        }
        open
    });
    assert_eq!(open.len(), TUNNELS);
    let open_gauge = |admin: std::net::SocketAddr, side: &str| {
        metric(
            &admin_get(admin, "/metrics").unwrap_or_default(),
            &format!("mc_gateway_open_streams{{side=\"{side}\"}}"),
        )
    };
    assert_eq!(open_gauge(east.admin, "outbound"), TUNNELS as f64);
    assert_eq!(open_gauge(west.admin, "inbound"), TUNNELS as f64);
    let (west_peak, east_peak) = (peak_rss(west_pid), peak_rss(east_pid));
    let mib = |b: u64| b as f64 / 1048576.0;
    let per_k = |peak: u64, base: u64| mib(peak - base) / (TUNNELS / 1000) as f64;
    eprintln!(
        "peak RSS with {TUNNELS} tunnels: west (inbound) {:.1} MiB (base {:.1}, {:.2} MiB per 1,000); east (outbound) {:.1} MiB (base {:.1}, {:.2} MiB per 1,000)",
        mib(west_peak),
        mib(west_base),
        per_k(west_peak, west_base),
        mib(east_peak),
        mib(east_base),
        per_k(east_peak, east_base),
    );
    assert!(west_peak < LIMIT_BYTES, "west peaked at {west_peak} bytes");
    assert!(east_peak < LIMIT_BYTES, "east peaked at {east_peak} bytes");
    drop(open);
}
