//! Trust changes apply to open connections within seconds: a deleted Link resets its tunnels, an
//! anchor added to the bundle is accepted without a restart, and a removed anchor cuts the
//! connections that were verified against it.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mc::gateway::{IssuerMaterial, MaterialSource, TableFeed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::LIMIT;
use super::harness::*;
use super::pki::Pki;

async fn ends_with_reset(s: &mut tokio::net::TcpStream) -> bool {
    let mut buf = Vec::new();
    matches!(
        tokio::time::timeout(LIMIT, s.read_to_end(&mut buf)).await,
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_link_resets_its_open_tunnels() {
    let p = pair().await;
    let mut open = open_tunnel(p.outbound, b"before").await;
    p.east.update(|t| t.peers.clear());
    assert!(
        ends_with_reset(&mut open).await,
        "a tunnel through a deleted Link must be reset, not kept or closed cleanly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_anchor_is_accepted_live_and_a_removed_one_cuts_its_connections() {
    init();
    let pki = Pki::new();
    let backend = echo().await;
    let private = echo().await;
    let material = Arc::new(Mutex::new(pki.material(&pki.west)));
    let source_material = material.clone();
    let source: MaterialSource = Arc::new(move || {
        let m: IssuerMaterial = source_material.lock().unwrap().clone();
        Box::pin(async move { Ok(m) })
    });
    let (_tables_tx, tables) = watch::channel(Arc::new(west_tables(&backend, &private)));
    let (_synced_tx, synced) = watch::channel(true);
    let west = mc::gateway::start(
        mc::gateway::Settings {
            anchor_poll: Duration::from_millis(50),
            ..settings()
        },
        name("west"),
        source,
        TableFeed { tables, synced },
    )
    .await
    .unwrap();
    let lo = Loopback::lease();
    let _east = start_gw(
        settings_on(&lo),
        "east",
        pki.material(&pki.east),
        east_tables(OUTBOUND_PORT, west.inbound_addr, WEST_ID, BACKEND),
    )
    .await;
    let mut open = open_tunnel(lo.addr(OUTBOUND_PORT), b"before").await;

    // A gateway certificate from another anchor: refused until that anchor is in the bundle.
    let gw_east = "mc-gateway.mc-system.east.cluster.local";
    let stranger = client_config(
        &pki.anchor.cert_pem,
        Some(issuer_leaf(&pki.stranger_issuer, &[gw_east], &[])),
    );
    assert!(
        connect_once(west.inbound_addr, stranger.clone(), BACKEND)
            .await
            .is_err()
    );
    material.lock().unwrap().anchors_pem =
        format!("{}{}", pki.anchor.cert_pem, pki.stranger.cert_pem);
    eventually("the added anchor to be accepted", LIMIT, || {
        let stranger = stranger.clone();
        async move {
            (connect_once(west.inbound_addr, stranger, BACKEND).await == Ok((200, String::new())))
                .then_some(())
        }
    })
    .await;
    // Adding an anchor disturbs nothing.
    open.write_all(b"during").await.unwrap();
    let mut buf = [0u8; 6];
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"during");

    // Removing the anchor east chains to cuts east's connection: its tunnel is reset.
    material.lock().unwrap().anchors_pem = pki.stranger.cert_pem.clone();
    assert!(
        ends_with_reset(&mut open).await,
        "a tunnel admitted under a removed anchor must be reset"
    );
    west.kill();
}
