//! Property tests of the CONNECT `:authority` parser and the inbound routing lookup: random
//! inputs, seeded, checked against an independent oracle. The default run is small (part of
//! `cargo test`); a long run:
//!
//! ```text
//! MC_PROPTEST_CASES=2000000 MC_PROPTEST_SEED=$RANDOM cargo test --release --lib config_props
//! ```
//!
//! Written on `rand` (already a dependency) instead of `proptest`: the generators are small and
//! a failing case is printed with its seed, which is enough to replay it.

use std::collections::HashMap;
use std::net::SocketAddr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{Refusal, ServiceEntry, Tables, parse_authority, remote_authority};

fn cases() -> u64 {
    std::env::var("MC_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

fn rng() -> (u64, StdRng) {
    let seed = std::env::var("MC_PROPTEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d63_6761_7465);
    (seed, StdRng::seed_from_u64(seed))
}

/// Strings biased towards the parser's edges: separators, digits, case, signs, non-ASCII.
fn noise(rng: &mut StdRng) -> String {
    const PIECES: &[&str] = &[
        "backend",
        "default",
        "svc",
        "cluster",
        "local",
        ".",
        ".",
        ":",
        ":",
        "-",
        "+",
        "0",
        "8888",
        "65535",
        "65536",
        "99999",
        "A",
        "a",
        "z9",
        "",
        "[",
        "]",
        "@",
        "%2e",
        "é",
        "\u{0}",
        " ",
        "xn--",
        "svc.cluster.local",
        "..",
    ];
    let n = rng.random_range(0..12);
    (0..n)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

fn label(rng: &mut StdRng) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
    let len = rng.random_range(1..=63);
    let mut s: String = (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    // Valid DNS labels neither start nor end with '-'.
    if s.starts_with('-') {
        s.replace_range(0..1, "a");
    }
    if s.ends_with('-') {
        s.pop();
        s.push('z');
    }
    s
}

/// The rules of docs/gateway.md, written independently of the parser.
fn oracle(authority: &str, domain: &str) -> Result<(String, String, u16), Refusal> {
    let Some(colon) = authority.rfind(':') else {
        return Err(Refusal::BadAuthority);
    };
    let (host, port) = (&authority[..colon], &authority[colon + 1..]);
    let port = match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) && port.chars().all(|c| c.is_ascii_digit()) => p as u16,
        _ => return Err(Refusal::BadAuthority),
    };
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() < 4 || parts[2] != "svc" {
        return Err(Refusal::BadAuthority);
    }
    let ok_label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !ok_label(parts[0]) || !ok_label(parts[1]) {
        return Err(Refusal::BadAuthority);
    }
    let rest = parts[3..].join(".");
    let rest = rest.strip_suffix('.').unwrap_or(&rest);
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if !rest.eq_ignore_ascii_case(domain) {
        return Err(Refusal::WrongDomain);
    }
    Ok((parts[0].to_owned(), parts[1].to_owned(), port))
}

#[test]
fn the_authority_parser_agrees_with_the_oracle_on_random_input() {
    let (seed, mut rng) = rng();
    for case in 0..cases() {
        let domain = if rng.random_bool(0.8) {
            "cluster.local".to_owned()
        } else {
            format!("{}.{}", label(&mut rng), label(&mut rng))
        };
        let authority = match rng.random_range(0..3) {
            0 => noise(&mut rng),
            1 => remote_authority(
                &label(&mut rng),
                &label(&mut rng),
                &domain,
                rng.random_range(1..=u16::MAX),
            ),
            // A valid authority with one random edit.
            _ => {
                let mut a = remote_authority(&label(&mut rng), "default", &domain, 8888);
                let at = rng.random_range(0..=a.len());
                let at = (0..=at).rev().find(|i| a.is_char_boundary(*i)).unwrap_or(0);
                a.insert_str(at, &noise(&mut rng));
                a
            }
        };
        let got = parse_authority(&authority, &domain)
            .map(|a| (a.name.to_owned(), a.namespace.to_owned(), a.port));
        let want = oracle(&authority, &domain);
        assert_eq!(
            got, want,
            "seed {seed}, case {case}: authority {authority:?}, domain {domain:?}"
        );
        if let Ok((name, namespace, port)) = got {
            // What the outbound side sends for it parses back to the same target.
            let again = remote_authority(&name, &namespace, &domain, port);
            assert_eq!(
                parse_authority(&again, &domain).map(|a| (a.name, a.namespace, a.port)),
                Ok((name.as_str(), namespace.as_str(), port)),
                "seed {seed}, case {case}"
            );
        }
    }
}

#[test]
fn the_routing_lookup_only_dials_exported_ports_of_known_services() {
    let (seed, mut rng) = rng();
    let names = ["backend", "private", "db", "web-1"];
    let namespaces = ["default", "prod", "kube-system"];
    for case in 0..cases() / 10 {
        let mut tables = Tables::default();
        for n in names {
            for ns in namespaces {
                if rng.random_bool(0.5) {
                    let backends: HashMap<u16, SocketAddr> = (0..rng.random_range(0..3))
                        .map(|i| {
                            let port = [80, 443, 8888][i];
                            (port, SocketAddr::from(([10, 0, 0, i as u8], port)))
                        })
                        .collect();
                    tables.apply_service(
                        ns,
                        n,
                        ServiceEntry {
                            exported: rng.random_bool(0.5),
                            backends,
                        },
                    );
                }
            }
        }
        for _ in 0..10 {
            let name = names[rng.random_range(0..names.len())];
            let ns = namespaces[rng.random_range(0..namespaces.len())];
            let port = [80, 443, 8888, 9][rng.random_range(0..4)];
            let authority = if rng.random_bool(0.9) {
                remote_authority(name, ns, "cluster.local", port)
            } else {
                noise(&mut rng)
            };
            let got = tables.route_inbound(&authority, "cluster.local");
            let want = oracle(&authority, "cluster.local").and_then(|(n, ns, port)| {
                let entry = tables.services.get(&(ns, n)).ok_or(Refusal::NoService)?;
                if !entry.exported {
                    return Err(Refusal::NotExported);
                }
                entry.backends.get(&port).copied().ok_or(Refusal::NoPort)
            });
            assert_eq!(got, want, "seed {seed}, case {case}: {authority:?}");
        }
    }
}
