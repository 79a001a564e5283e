//! Log lines that unauthenticated clients can trigger are rate-limited per cause, while the
//! metrics still count every event.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::LIMIT;
use super::harness::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn rejected_certificates_are_all_counted_but_logged_a_few_times() {
    init();
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // One thread: every task of the gateways logs through this subscriber.
    let _default = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let p = pair().await;
        let addr = p.west.running.inbound_addr;
        // Trusted issuer, not a gateway identity: rejected by the verifier.
        let config = client_config(
            &p.pki.anchor.cert_pem,
            Some(issuer_leaf(
                &p.pki.east,
                &["backend.default.east.cluster.local"],
                &[],
            )),
        );
        const ATTEMPTS: usize = 20;
        for _ in 0..ATTEMPTS {
            assert!(connect_once(addr, config.clone(), BACKEND).await.is_err());
        }
        eventually("every rejection to be counted", LIMIT, || async {
            (p.west.metric(
                "mc_gateway_connections_total{side=\"inbound\",result=\"certificate_rejected\"}",
            ) == ATTEMPTS as f64)
                .then_some(())
        })
        .await;
    });
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    let limit = mc::gateway::loglimit::BURST as usize;
    let rejected = count("refused an inbound client certificate");
    let not_gateway = count("does not name a gateway");
    assert!(
        (1..=limit).contains(&rejected) && (1..=limit).contains(&not_gateway),
        "{rejected} and {not_gateway} lines for 20 rejections:\n{text}"
    );
}
