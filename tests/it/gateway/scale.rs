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
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::harness::*;
use super::pki;

/// This test's own loopback address (nothing else in the suite uses it).
const SCALE_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 8, 1);
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

/// Kills (by pid) the processes this test started, also when it fails.
struct Reap(Vec<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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

fn admin_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect((SCALE_IP, port)).ok()?;
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
    let mut reap = Reap(Vec::new());
    let mut echo = Command::new(std::env::current_exe().unwrap())
        .args([
            "gateway::scale::echo_server_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(ECHO_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = echo.stdout.take().unwrap();
    reap.0.push(echo);
    let backend = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("ECHO ").map(str::to_owned))
        .expect("the echo process printed its address");

    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let [wa, wc, wk] = pki.write(dir.path(), &pki.west, "west");
    let [ea, ec, ek] = pki.write(dir.path(), &pki.east, "east");
    // Ports on a loopback address of this test's own, held together while picked: the rest of
    // the suite's client connections take their ephemeral ports on 127.0.0.1, never here.
    let [west_in, west_admin, east_in, east_admin, port] = free_ports_on(SCALE_IP, 5)[..] else {
        unreachable!("five ports asked for")
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
    let east_cfg = dir.path().join("east.yaml");
    std::fs::write(
        &east_cfg,
        format!(
            "cluster: east\nanchors: {}\nissuerCert: {}\nissuerKey: {}\nlisteners:\n  - port: {port}\n    peer: west\n    authority: {BACKEND}\npeers:\n  - name: west\n    address: {SCALE_IP}:{west_in}\n    identity: {WEST_ID}\n",
            ea.display(),
            ec.display(),
            ek.display(),
        ),
    )
    .unwrap();
    // Default settings but the addresses; one worker thread each, as in the benchmark.
    let gateway = |cfg: &std::path::Path, inbound: u16, admin: u16| {
        Command::new(env!("CARGO_BIN_EXE_mc"))
            .args(["gateway", "--config"])
            .arg(cfg)
            .args(["--inbound-addr", &format!("{SCALE_IP}:{inbound}")])
            .args(["--admin-addr", &format!("{SCALE_IP}:{admin}")])
            .args(["--outbound-ip", &SCALE_IP.to_string()])
            .env("TOKIO_WORKER_THREADS", "1")
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    reap.0.push(gateway(&west_cfg, west_in, west_admin));
    reap.0.push(gateway(&east_cfg, east_in, east_admin));
    let (west_pid, east_pid) = (reap.0[1].id(), reap.0[2].id());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(eventually(
        "a first echo through the pair",
        super::LIMIT,
        || async { echoes_at((SCALE_IP, port).into()).await.then_some(()) },
    ));
    let (west_base, east_base) = (peak_rss(west_pid), peak_rss(east_pid));
    let open = rt.block_on(async {
        let gate = Arc::new(tokio::sync::Semaphore::new(256));
        let mut tasks = Vec::with_capacity(TUNNELS);
        for i in 0..TUNNELS {
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let mut s = TcpStream::connect((SCALE_IP, port)).await.unwrap();
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
    let open_gauge = |admin: u16, side: &str| {
        metric(
            &admin_get(admin, "/metrics").unwrap_or_default(),
            &format!("mc_gateway_open_streams{{side=\"{side}\"}}"),
        )
    };
    assert_eq!(open_gauge(east_admin, "outbound"), TUNNELS as f64);
    assert_eq!(open_gauge(west_admin, "inbound"), TUNNELS as f64);
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
